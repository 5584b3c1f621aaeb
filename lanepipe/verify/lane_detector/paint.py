"""Step 1 of the lane detector: paint evidence of one frame, and its vanishing point (step 2)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.geometry.vanishing import hough_segments, longest_per_side, voted_vanishing_point
from lanepipe.lanes.paint import tophat
from lanepipe.verify.config import LaneDetectorConfig

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


@dataclass(frozen=True)
class PaintMap:
    """Paint evidence of one frame at work resolution ``(h, w)``.

    Attributes:
        strength: ``(h, w) float32`` top-hat paint strength (Lab units above the pavement).
        mask: ``(h, w) bool`` strength above the frame's threshold (and inside the road, when given).
        lines: ``(h, w) bool`` the part of ``mask`` that forms oriented ridges like road lines ahead.
        lab: ``(h, w, 3) uint8`` OpenCV Lab image.
        gray: ``(h, w) uint8`` lightness.
        threshold: the strength threshold used.
    """

    strength: F32
    mask: Bool
    lines: Bool
    lab: U8
    gray: U8
    threshold: float


def paint_map(rgb: U8, cfg: LaneDetectorConfig, road: Bool | None = None) -> PaintMap:
    """Paint evidence of one ``(h, w, 3) uint8`` RGB frame (already at work resolution).

    Args:
        rgb: ``(h, w, 3) uint8`` RGB.
        road: optional ``(h, w) bool`` road region; paint outside it (after a small dilation) is dropped.
    """
    h, w = rgb.shape[:2]
    lab = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), dtype=np.uint8)
    k = max(5, round(cfg.tophat_width * w) | 1)
    th_l = tophat(lab[:, :, 0].astype(np.float32), (k, k))
    th_b = tophat(lab[:, :, 2].astype(np.float32), (k, k))
    strength = np.maximum(th_l, 2.0 * th_b).astype(np.float32)
    lower = strength[int(0.6 * h):]  # mostly road: its texture sets the noise level
    noise = float(np.median(lower)) if lower.size else 0.0
    thr = max(cfg.min_contrast, cfg.noise_factor * noise)
    # paint is white (grey-ish chroma) or yellow (b* up, a* near neutral); not green, blue or red
    a_c = lab[:, :, 1].astype(np.int16) - 128
    b_c = lab[:, :, 2].astype(np.int16) - 128
    paint_colour = ((np.abs(a_c) < 14) & (np.abs(b_c) < 20)) | ((b_c > 10) & (a_c > -10) & (a_c < 32))
    mask = (strength > thr) & paint_colour
    # lone specks are not lines
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 1), np.uint8)).astype(bool)
    if road is not None:
        grow = max(3, w // 80)
        road_d = cv2.dilate(road.astype(np.uint8), np.ones((grow, 2 * grow + 1), np.uint8)).astype(bool)
        mask &= road_d
    return PaintMap(strength=strength, mask=mask, lines=mask & _road_line_orientation(strength, thr), lab=lab,
                    gray=lab[:, :, 0], threshold=thr)


def _road_line_orientation(strength: F32, thr: float) -> Bool:
    """Where the paint strength forms oriented ridges running 15-85 deg from horizontal.

    Structure-tensor coherence of the (clipped) strength map in an 11 x 11 window: lines give a coherent
    orientation, foliage, gravel and car highlights do not; horizontal (hood edge, bumpers) and vertical
    (poles, trunks) structures are not lines of the road ahead.
    """
    s = np.minimum(strength, 3.0 * thr)
    gx = cv2.Sobel(s, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(s, cv2.CV_32F, 0, 1, ksize=3)
    k = (11, 11)
    jxx = cv2.boxFilter(gx * gx, -1, k)
    jyy = cv2.boxFilter(gy * gy, -1, k)
    jxy = cv2.boxFilter(gx * gy, -1, k)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-3)
    grad = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # gradient direction; the ridge runs across it
    ridge = np.degrees(np.abs(np.arctan(np.tan(grad + np.pi / 2))))  # 0 = horizontal, 90 = vertical
    out: Bool = (coherence > 0.5) & (ridge > 15) & (ridge < 85)
    return out


def _segments(binary: U8, min_len: int) -> F32:
    """Probabilistic Hough segments ``(N, 4) float32`` as ``x1, y1, x2, y2``, 18 to 82 deg from horizontal."""
    out: F32 = hough_segments(binary, threshold=max(10, min_len // 2), min_length=min_len,
                              max_gap=max(3, min_len // 6), min_deg=18, max_deg=82, dtype=np.float32)
    return out


def vanishing_point(pm: PaintMap, road: Bool | None = None) -> tuple[Point, float] | None:
    """Point where the frame's road-going straight segments converge, with a vote score.

    The longest straight segments (probabilistic Hough) of the ``lines`` paint and, weakly, of Canny edges,
    below the top 30 % of the frame and 18 to 82 deg from horizontal, vote for candidate points on a grid: a
    segment supports a point above it on its own line, by a Gaussian of the angle between the segment and
    the direction to the point, weighted by its length squared (paint) or length (edges) and by how low it
    lies.
    Segments leaning left (left of the lane) and right vote separately and a point's score is the geometric
    mean of the two, so a bundle of one-sided clutter (trees, a barrier) cannot win alone.

    Returns:
        ``((x, y), score)`` in work pixels (score in [0, 1]: share of the vote weight that supports it), or
        None when there are no segments on both sides.
    """
    h, w = pm.gray.shape
    top = int(0.3 * h)
    blur = cv2.GaussianBlur(pm.gray, (5, 5), 0)
    edges = np.asarray(cv2.Canny(blur, 40, 120), dtype=np.uint8)
    edges[:top] = 0
    if road is not None:
        grow = max(5, w // 40)
        edges &= np.asarray(cv2.dilate(road.astype(np.uint8), np.ones((grow, grow), np.uint8)), dtype=np.uint8) * 255
    paint = pm.lines.astype(np.uint8) * 255
    paint[:top] = 0
    min_len = max(10, w // 40)
    seg_e = longest_per_side(_segments(edges, min_len), 12)
    seg_p = longest_per_side(_segments(paint, min_len), 6)
    return voted_vanishing_point(seg_e, seg_p, (h, w), min_len)
