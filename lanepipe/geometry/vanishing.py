"""Vanishing point of the road's straight lines, smoothing over a clip, and camera pose from it.

Two estimators share the segment extraction (:func:`hough_segments`):

* **consensus** (:func:`consensus_vanishing_point`): the pairwise intersection of segments supported by the most
  segment length, refined by weighted least squares over its supporters. Used on paint maps
  (:func:`paint_vanishing_point`, painter and lane-keep pose) and on Canny edges (:func:`edge_vanishing_point`,
  grid segmenter); the two differ only in their :class:`ConsensusParams`.
* **vote** (:func:`voted_vanishing_point`): segments leaning left and right vote on a grid of candidate points
  by a Gaussian of the angle to each point; a point scores the geometric mean of the two sides (the verifier's
  lane detector, which must not let one-sided clutter win).

Coordinates are image pixels ``(u, v)`` (``x`` to the right, ``y`` down) of the image they are measured in.
A segment is ``(x1, y1, x2, y2)``. All functions are pure numpy / OpenCV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.geometry.camera import PinholeCamera

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


def hough_segments(binary: U8, *, threshold: int, min_length: int, max_gap: int, min_deg: float, max_deg: float,
                   dtype: type[np.float32] | type[np.float64] = np.float64) -> npt.NDArray[np.floating]:
    """Probabilistic Hough segments whose angle from horizontal lies strictly between ``min_deg`` and ``max_deg``.

    Lines of the road ahead are neither horizontal (hood edge, bumpers, horizon) nor vertical (poles, trunks).
    The angle is computed in ``dtype``.

    Shape:
        binary ``(h, w) uint8`` (non-zero = on) → ``(N, 4)`` ``x1, y1, x2, y2`` in ``dtype``.
    """
    lines = cv2.HoughLinesP(binary, 1, np.pi / 180, threshold=threshold, minLineLength=min_length, maxLineGap=max_gap)
    if lines is None:
        return np.zeros((0, 4), dtype)
    segs: npt.NDArray[np.floating] = lines.reshape(-1, 4).astype(dtype)
    ang = np.degrees(np.arctan2(np.abs(segs[:, 3] - segs[:, 1]), np.abs(segs[:, 2] - segs[:, 0])))
    out: npt.NDArray[np.floating] = segs[(ang > min_deg) & (ang < max_deg)]
    return out


@dataclass(frozen=True)
class ConsensusParams:
    """Settings of :func:`consensus_vanishing_point`.

    Attributes:
        top_k: only the ``top_k`` longest segments take part.
        min_det: least ``|sin|`` of the angle between two segments for their intersection to be a candidate.
        box: candidates must lie in ``u_lo w < u < u_hi w`` and ``v_lo h < v < v_hi h`` (fractions of the size).
        tol_px: a segment supports a candidate passing within ``tol_px`` of it and ending below it (``tol_px``).
        two_sided: how the supporters must show two directions: ``"lean"`` — some leaning each way (down to the
            right and down to the left); ``"spread"`` — not all within about 5.7 degrees of the longest one.
    """

    top_k: int
    min_det: float
    box: tuple[float, float, float, float]
    tol_px: float
    two_sided: Literal["lean", "spread"]


#: Paint maps (lane lines): stricter angles between pairs, a wide box, both lean directions.
PAINT_CONSENSUS = ConsensusParams(top_k=40, min_det=0.15, box=(-0.2, 1.2, 0.05, 0.9), tol_px=3.0, two_sided="lean")
#: Canny edges around the road (segmenter): more segments, a tighter box and tolerance.
EDGE_CONSENSUS = ConsensusParams(top_k=48, min_det=0.1, box=(-0.25, 1.25, 0.1, 0.75), tol_px=2.0, two_sided="spread")


def consensus_vanishing_point(segs: npt.NDArray[np.floating], shape: tuple[int, int],
                              p: ConsensusParams) -> tuple[float, float, int] | None:
    """Vanishing point of segments by length-weighted consensus of their pairwise intersections.

    The ``p.top_k`` longest segments, as lines ``n · x = c`` (unit normal ``n``); every pair at least ``p.min_det``
    apart inside ``p.box`` gives a candidate; a segment supports a candidate within ``p.tol_px`` of its line that
    it ends below; the candidate with the most supporting length is refined by least squares over its supporters
    (weights ``sqrt(length)``), who must show two directions (``p.two_sided``).

    Shape:
        segs ``(N, 4)`` float (computed in float64), shape ``(h, w)`` → ``(u, v, n_supporters)`` pixels, or None.
    """
    h, w = shape
    s = np.asarray(segs, dtype=np.float64)
    if len(s) < 2:
        return None
    dx, dy = s[:, 2] - s[:, 0], s[:, 3] - s[:, 1]
    length = np.hypot(dx, dy)
    top = np.argsort(-length)[: p.top_k]
    s, dx, dy, length = s[top], dx[top], dy[top], length[top]
    n = np.stack([dy, -dx], axis=1) / length[:, None]
    c = (n * s[:, :2]).sum(axis=1)
    i, j = np.triu_indices(len(s), k=1)
    det = n[i, 0] * n[j, 1] - n[i, 1] * n[j, 0]
    ok = np.abs(det) > p.min_det
    i, j, det = i[ok], j[ok], det[ok]
    if len(i) == 0:
        return None
    px = (c[i] * n[j, 1] - c[j] * n[i, 1]) / det
    py = (n[i, 0] * c[j] - n[j, 0] * c[i]) / det
    u_lo, u_hi, v_lo, v_hi = p.box
    inside = (px > u_lo * w) & (px < u_hi * w) & (py > v_lo * h) & (py < v_hi * h)
    px, py = px[inside], py[inside]
    if len(px) == 0:
        return None
    ymin = np.minimum(s[:, 1], s[:, 3])
    res = np.abs(n @ np.stack([px, py]) - c[:, None])  # (segments, candidates)
    support = ((res < p.tol_px) & (ymin[:, None] >= py[None, :] - p.tol_px)) * length[:, None]
    inl = support[:, int(np.argmax(support.sum(axis=0)))] > 0
    if inl.sum() < 2:
        return None
    if p.two_sided == "lean":
        lean = np.sign(dx * dy)  # + : going down to the right (right-hand lines), - : left-hand lines
        if not ((lean[inl] > 0).any() and (lean[inl] < 0).any()):
            return None
    elif np.abs(n[inl] @ n[inl][np.argmax(length[inl])]).min() > 0.995:
        return None
    wts = np.sqrt(length[inl])
    sol, *_ = np.linalg.lstsq(n[inl] * wts[:, None], c[inl] * wts, rcond=None)
    return float(sol[0]), float(sol[1]), int(inl.sum())


def paint_vanishing_point(binary: U8, v_min: int) -> tuple[float, float, int] | None:
    """Vanishing point of straight segments of a paint map below row ``v_min``.

    Hough segments 20-80 degrees from horizontal, then :func:`consensus_vanishing_point` with
    :data:`PAINT_CONSENSUS`.

    Shape:
        binary ``(h, w) uint8`` (non-zero = paint) → ``(u, v, n_supporters)`` pixels, or None.
    """
    h, w = binary.shape
    img = binary.copy()
    img[:v_min] = 0
    segs = hough_segments(img, threshold=12, min_length=max(8, w // 40), max_gap=max(3, w // 80),
                          min_deg=20, max_deg=80)
    return consensus_vanishing_point(segs, (h, w), PAINT_CONSENSUS)


def edge_vanishing_point(light: U8, region: Bool) -> Point | None:
    """Vanishing point ``(u, v)`` of straight Canny edges inside ``region``, or None when they do not agree.

    Canny (40, 120) → Hough segments 15-80 degrees from horizontal → :func:`consensus_vanishing_point` with
    :data:`EDGE_CONSENSUS`.

    Shape:
        light ``(h, w) uint8`` lightness, region ``(h, w) bool`` → ``(u, v)`` pixels.
    """
    h, w = light.shape
    edges = np.asarray(cv2.Canny(light, 40, 120), dtype=np.uint8)
    edges[~region] = 0
    segs = hough_segments(edges, threshold=10, min_length=max(6, w // 32), max_gap=2, min_deg=15, max_deg=80)
    found = consensus_vanishing_point(segs, (h, w), EDGE_CONSENSUS)
    return None if found is None else (found[0], found[1])


def longest_per_side(segs: F32, k: int) -> F32:
    """Up to ``k`` longest segments leaning each way, near-duplicates (same line) dropped.

    Lane lines are the longest straight paint in a road scene; a thick line yields many overlapping Hough
    segments, which would otherwise take every place. Two segments within 3 degrees whose midpoint distance to
    the other's line is under 6 px are the same line.

    Shape:
        segs ``(N, 4) float32`` → ``(M, 4) float32``, left-leaning (``x`` falls as ``y`` grows) first.
    """
    if len(segs) == 0:
        return segs
    d = segs[:, 2:] - segs[:, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    ang = np.arctan2(d[:, 1], d[:, 0]) % np.pi
    left = d[:, 0] * d[:, 1] < 0
    keep: list[int] = []
    for side in (left, ~left):
        chosen: list[int] = []
        for i in np.argsort(-length):
            if not side[i]:
                continue
            dup = False
            for j in chosen:
                da = abs(ang[i] - ang[j])
                if min(da, np.pi - da) < np.radians(3):
                    # distance of i's midpoint from j's line
                    m = (segs[i, :2] + segs[i, 2:]) / 2 - segs[j, :2]
                    dist = abs(m[0] * d[j, 1] - m[1] * d[j, 0]) / max(length[j], 1e-6)
                    if dist < 6.0:
                        dup = True
                        break
            if not dup:
                chosen.append(int(i))
            if len(chosen) >= k:
                break
        keep += chosen
    out: F32 = segs[keep]
    return out


def voted_vanishing_point(seg_e: F32, seg_p: F32, shape: tuple[int, int], min_len: int) -> tuple[Point, float] | None:
    """Point where edge segments ``seg_e`` and paint segments ``seg_p`` converge, with a vote score.

    A segment supports a candidate point above it on its own line, by a Gaussian (sigma 0.025 in ``sin``) of the
    angle between the segment and the direction to the point, weighted by its length squared (paint) or 0.3 times
    its length (edges), in units of ``min_len``, and by how low it lies (``(mean y / h)²``). Segments leaning left
    (left of the lane) and right vote separately and a point's score is the geometric mean of the two, so a bundle
    of one-sided clutter (trees, a barrier) cannot win alone. Candidates: a grid of step ``max(4, w // 80)`` over
    ``0.1-0.9 w`` x ``0.15-0.75 h``, then every pixel around the best.

    Shape:
        seg_e, seg_p ``(N, 4) float32``, shape ``(h, w)`` → ``((u, v), score)`` pixels, score in [0, 1] (share of
        the vote weight that supports it); None without segments on both sides.
    """
    h, w = shape
    segs = np.concatenate([seg_e, seg_p])
    if len(segs) < 2:
        return None
    d = segs[:, 2:] - segs[:, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    rel = length / min_len
    low = ((segs[:, 1] + segs[:, 3]) / (2 * h)) ** 2
    # long straight paint segments low in the frame are lane lines: they outvote trees, cars and buildings
    weight = np.where(np.arange(len(segs)) < len(seg_e), 0.3 * rel, rel**2) * low
    mid = (segs[:, :2] + segs[:, 2:]) / 2
    u = d / length[:, None]
    left = u[:, 0] * u[:, 1] < 0  # x falls as y grows: a line left of the lane
    if not (left.any() and (~left).any()):
        return None
    total = float(weight.sum())

    def score(cx: F64, cy: F64) -> F64:
        # candidates (K,) x segments (N,)
        vx = cx[:, None] - mid[None, :, 0]
        vy = cy[:, None] - mid[None, :, 1]
        dist = np.hypot(vx, vy) + 1e-6
        sin = np.abs(vx * u[None, :, 1] - vy * u[None, :, 0]) / dist
        sup = np.exp(-((sin / 0.025) ** 2)) * (vy < -2.0) * weight[None, :]
        s_l = sup[:, left].sum(axis=1)
        s_r = sup[:, ~left].sum(axis=1)
        out: F64 = np.sqrt(s_l * s_r)
        return out

    step = max(4, w // 80)
    gx, gy = np.meshgrid(np.arange(0.1 * w, 0.9 * w, step), np.arange(0.15 * h, 0.75 * h, step))
    cx, cy = gx.ravel().astype(np.float64), gy.ravel().astype(np.float64)
    s = score(cx, cy)
    i = int(np.argmax(s))
    if s[i] <= 0:
        return None
    fx, fy = np.meshgrid(np.arange(cx[i] - step, cx[i] + step + 1, 1.0),
                         np.arange(cy[i] - step, cy[i] + step + 1, 1.0))
    fs = score(fx.ravel(), fy.ravel())
    j = int(np.argmax(fs))
    return (float(fx.ravel()[j]), float(fy.ravel()[j])), float(2 * fs[j] / max(total, 1e-9))


# ---------------------------------------------------------------------------------------------- over a clip
def median_point(points: Sequence[Point]) -> Point:
    """Coordinate-wise median of ``(u, v)`` points (at least one)."""
    arr = np.asarray(points)
    return float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))


def smooth_vanishing_points(points: list[Point | None], radius: int) -> list[Point | None]:
    """Median of the valid vanishing points within ``radius`` frames; gaps take the nearest valid one."""
    valid = [k for k, p in enumerate(points) if p is not None]
    if not valid:
        return [None] * len(points)
    arr = np.full((len(points), 2), np.nan)
    for k in valid:
        arr[k] = points[k]
    out: list[Point | None] = []
    for k in range(len(points)):
        win = arr[max(0, k - radius): k + radius + 1]
        win = win[~np.isnan(win[:, 0])]
        if len(win) == 0:
            nearest = min(valid, key=lambda v: abs(v - k))
            win = arr[nearest: nearest + 1]
        out.append((float(np.median(win[:, 0])), float(np.median(win[:, 1]))))
    return out


# ---------------------------------------------------------------------------------------------- pose
def pose_from_vanishing_point(cam: PinholeCamera, u: float, v: float) -> tuple[float, float]:
    """Pitch and yaw (radians) that put the vanishing point of the ego x axis at pixel ``(u, v)``.

    With yaw ψ and pitch θ the forward direction projects to ``v = cy - fy tan θ`` and
    ``u = cx + fx tan ψ / cos θ``.
    """
    pitch = math.atan((cam.cy - v) / cam.fy)
    yaw = math.atan((u - cam.cx) * math.cos(pitch) / cam.fx)
    return pitch, yaw


@dataclass(frozen=True)
class VpPose:
    """Camera pose read from a clip's vanishing points.

    Attributes:
        source: ``"vanishing point"`` when the pose was found, else why the prior is kept:
            ``"pitch prior (no vanishing point)"`` or ``"pitch prior (implausible vanishing point)"``.
        frames: frames that gave a vanishing point.
        vp: the median vanishing point ``(u, v)`` in the camera's pixels, when enough frames gave one.
        pitch_rad, yaw_rad: the pose (None unless ``source == "vanishing point"``).
    """

    source: str
    frames: int
    vp: Point | None = None
    pitch_rad: float | None = None
    yaw_rad: float | None = None


def pose_from_vanishing_points(cam: PinholeCamera, points: Sequence[Point], min_points: int,
                               max_angle_rad: float = math.radians(20)) -> VpPose:
    """Pitch and yaw from the median of per-frame vanishing points (pixels of ``cam``).

    Fewer than ``min_points`` points, or a pitch or yaw beyond ``max_angle_rad``, keep the prior (``pitch_rad``
    None) and say why in ``source``.
    """
    if len(points) < min_points or not points:
        return VpPose(source="pitch prior (no vanishing point)", frames=len(points))
    u, v = median_point(points)
    pitch, yaw = pose_from_vanishing_point(cam, u, v)
    if abs(pitch) > max_angle_rad or abs(yaw) > max_angle_rad:
        return VpPose(source="pitch prior (implausible vanishing point)", frames=len(points), vp=(u, v))
    return VpPose(source="vanishing point", frames=len(points), vp=(u, v), pitch_rad=pitch, yaw_rad=yaw)
