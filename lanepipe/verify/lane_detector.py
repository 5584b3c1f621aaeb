"""Classical lane-attribute detector: the embedded default verifier (CPU, no weights).

It reads the pixels only (it knows nothing of any instruction) and reports, for the ego lane's left and right
boundary, how many lines there are (none / single / double), their colour and their pattern. Each analysed
frame (at most ``max_frames``, evenly spread over the clip) is processed at ``work_width``:

1. **Paint.** Lane paint is thin and brighter (white) or yellower (yellow) than the pavement around it: a
   square morphological top-hat of Lab lightness L and of b* gives a paint-strength map, thresholded against
   the top-hat noise of the frame's lower part and gated to white or yellow chroma. A structure-tensor
   coherence test keeps the part that forms oriented ridges (``lines``): foliage, gravel and car highlights
   drop out.
2. **Geometry.** The longest straight ``lines`` segments (and, weakly, Canny edges) vote for the vanishing
   point; segments leaning left and right must agree (geometric mean of the two votes), and the clip's
   median is used. A pixel ``(x, y)`` below it lies at lateral ``X = (x - vp_x) h / (y - vp_y)`` metres and
   at a depth proportional to ``1 / (y - vp_y)`` (``h`` = assumed camera height). The ego vehicle's hood,
   if visible, is found as a long horizontal edge below which the road lines stop.
3. **Lines.** Peaks of a histogram of paint over lateral ``X`` are line candidates. From the camera centre
   outwards, each candidate is traced band by band from the bottom of the road up to the far limit
   (prediction towards the vanishing point, observation = paint near it) and fitted with a quadratic
   ``x(y)``, which follows curves and lens distortion. The first candidate on each side that looks like paint
   (long enough, thin enough, brighter or yellower than the pavement beside it) is the boundary.
4. **Attributes.** Along the traced curve: a cross profile in lateral metres (two humps with a gap = double),
   paint coverage over equal steps of *ground depth* (solid ~1; dashed, 10 ft lines with 30 ft gaps,
   ~0.25-0.5 with blur), and the paint's Lab b* against the pavement beside it (yellow vs white).
5. **Vote.** Frames vote on count; colour and coverage are pooled over the frames that saw the line (median,
   mean); the confidence combines the vote shares and the margins to the decision thresholds.

A single still frame is analysed the same way (T = 1) but a dash gap or an occlusion then weighs more.
Coordinates are image pixels ``(x, y)``: x to the right, y down, in the frame they are measured in (work
resolution inside, input resolution in reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.verify.base import BoundaryReport, ColorSeen, InspectingVerifier, LaneReport, PatternSeen, verdict
from lanepipe.verify.config import LaneDetectorConfig

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]

__all__ = ["LaneDetector", "LaneDetectorConfig", "verdict"]


# --------------------------------------------------------------------------------------------------------
# Frame-level measurements
# --------------------------------------------------------------------------------------------------------
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
    kern = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    lum = lab[:, :, 0].astype(np.float32)
    yel = lab[:, :, 2].astype(np.float32)
    th_l = cv2.morphologyEx(lum, cv2.MORPH_TOPHAT, kern)
    th_b = cv2.morphologyEx(yel, cv2.MORPH_TOPHAT, kern)
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
    """Probabilistic Hough segments ``(N, 4) float32`` as ``x1, y1, x2, y2``, 18 to 82 deg from horizontal.

    Lines of the road ahead are neither horizontal (hood edge, car bumpers, horizon) nor vertical (poles,
    car sides, trunks).
    """
    lines = cv2.HoughLinesP(binary, 1, np.pi / 180, threshold=max(10, min_len // 2), minLineLength=min_len,
                            maxLineGap=max(3, min_len // 6))
    if lines is None:
        return np.zeros((0, 4), np.float32)
    segs = lines.reshape(-1, 4).astype(np.float32)
    ang = np.degrees(np.arctan2(np.abs(segs[:, 3] - segs[:, 1]), np.abs(segs[:, 2] - segs[:, 0])))
    out: F32 = segs[(ang > 18) & (ang < 82)]
    return out


def _longest(segs: F32, k: int) -> F32:
    """Up to ``k`` longest segments leaning each way, near-duplicates (same line) dropped.

    Lane lines are the longest straight paint in a road scene; a thick line yields many overlapping Hough
    segments, which would otherwise take every place.
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
    seg_e = _longest(_segments(edges, min_len), 12)
    seg_p = _longest(_segments(paint, min_len), 6)
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


@dataclass(frozen=True)
class LineObs:
    """One boundary seen in one frame (work resolution).

    Attributes:
        lateral_m: lateral position at the bottom, metres from the vanishing point's column (+ = left).
        x_bottom: x of the fitted curve at the bottom of the road (work pixels).
        count: 1 or 2 (double line).
        coverage: painted share of the visible length, over equal steps of ground depth.
        sub_coverage: coverage of each line of a double (left, right in the image), else empty.
        passing: the double is a solid line with a weak dashed partner (passing zone), found where the two
            are resolved.
        yellowness: median paint b* minus median pavement b* beside it.
        paint_px: number of paint pixels that support the line.
        paint_lab, road_lab: median OpenCV Lab of the paint and of the pavement beside it.
        seen_coverage: painted share over the whole traced range (up to the far limit), or ``coverage``
            when larger; decides whether a line is there at all.
        width_m: full width at half maximum of the (widest) line's cross profile, metres.
        contrast: paint lightness above the pavement's, or twice its b* excess when larger (yellow paint).
        rows: first and last row of the traced centre curve (work pixels).
        xs: the curve's x, sampled evenly over those rows (work pixels), for drawing.
    """

    lateral_m: float
    x_bottom: float
    count: int
    coverage: float
    sub_coverage: tuple[float, ...]
    yellowness: float
    paint_px: int
    seen_coverage: float = 0.0
    width_m: float = 0.0
    contrast: float = 0.0
    rows: tuple[int, int] = (0, 0)
    xs: tuple[float, ...] = ()
    paint_lab: tuple[float, ...] = (0.0, 128.0, 128.0)
    road_lab: tuple[float, ...] = (0.0, 128.0, 128.0)
    passing: bool = False


@dataclass(frozen=True)
class FrameObs:
    """What one frame shows: the ego lane's boundaries (None = no line found) and the vanishing point."""

    left: LineObs | None
    right: LineObs | None
    vp: Point


def _smooth1d(x: F64, sigma: float) -> F64:
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    out: F64 = np.convolve(x, k / k.sum(), mode="same")
    return out


def _peaks(hist: F64, min_height: float) -> list[int]:
    """Indices of local maxima of ``hist`` at least ``min_height`` high."""
    if len(hist) < 3:
        return []
    mid = hist[1:-1]
    idx = np.nonzero((mid >= hist[:-2]) & (mid > hist[2:]) & (mid >= min_height))[0] + 1
    return [int(i) for i in idx]


@dataclass(frozen=True)
class _Geometry:
    vp: Point
    bottom: int  # last road row (work pixels), exclusive
    h_m: float

    @property
    def road_height(self) -> float:
        return self.bottom - self.vp[1]


def _candidates(pm: PaintMap, g: _Geometry, cfg: LaneDetectorConfig) -> list[tuple[float, float]]:
    """Line candidates as ``(lateral_m, mass)``: peaks of paint over lateral ground position, left to right.

    Each line of a double line is its own peak; :func:`_measure` finds the partner of the one chosen.
    """
    vx, vy = g.vp
    vr = g.road_height
    y0 = math.ceil(vy + cfg.far_limit * vr)
    ys, xs = np.nonzero(pm.mask[y0:g.bottom])
    if len(ys) == 0:
        return []
    v = ys.astype(np.float64) + y0 - vy
    lat = (vx - xs.astype(np.float64)) * g.h_m / v  # + = left
    wgt = np.minimum(pm.strength[ys + y0, xs] / max(pm.threshold, 1e-6), 3.0) * (v / vr)
    span = cfg.max_lateral_m + 2.0
    bin_m = 0.03
    edges = np.arange(-span, span + bin_m, bin_m)
    hist, _ = np.histogram(lat, bins=edges, weights=wgt)
    hist = _smooth1d(hist.astype(np.float64), 0.05 / bin_m)
    centres = (edges[:-1] + edges[1:]) / 2
    peak_idx = _peaks(hist, 0.015 * float(hist.max()) if hist.max() > 0 else 1.0)
    return sorted((float(centres[i]), float(hist[i])) for i in peak_idx)


def _trace(pm: PaintMap, g: _Geometry, lat0: float, cfg: LaneDetectorConfig) -> tuple[F64, F64] | None:
    """Follow the line at lateral ``lat0`` from the bottom of the road up to the far limit.

    The road is cut into 24 horizontal bands; in each (from near to far) the paint within 0.4 m (on the
    ground) of the predicted position gives an observation, and the prediction for the next band runs from
    the last observation towards the vanishing point (through the gaps of a dashed line too). The
    observations are then fitted with ``x = p0 + p1 y + p2 y^2`` (robustly; straight when they span less
    than half the road), which follows curves and lens distortion that a line through the vanishing point
    would miss.

    Returns:
        ``(rows, x)``: ``(R,) float64`` row indices from the far limit to the road's bottom and the line's
        centre ``x`` on each (work pixels), or None when the line was seen in fewer than 3 bands.
    """
    vx, vy = g.vp
    vr = g.road_height
    y_top = math.ceil(vy + cfg.far_limit * vr)
    y_bot = g.bottom
    if y_bot - y_top < 8:
        return None
    h_m = g.h_m
    x_last, y_last = vx - lat0 * (y_bot - vy) / h_m, float(y_bot)
    obs_y: list[float] = []
    obs_x: list[float] = []
    obs_w: list[float] = []
    n_bands = 24
    edges = np.linspace(y_bot, y_top, n_bands + 1)
    w = pm.mask.shape[1]
    for k in range(n_bands):
        r1, r0 = round(edges[k]), round(edges[k + 1])
        if r1 - r0 < 1:
            continue
        yc = (r0 + r1) / 2
        xp = vx + (x_last - vx) * (yc - vy) / (y_last - vy)  # towards the vanishing point
        half = max(3.0, 0.4 * (yc - vy) / h_m)
        lo, hi = max(0, int(xp - half)), min(w, int(xp + half) + 1)
        if hi - lo < 2:
            continue
        ys, xs = np.nonzero(pm.mask[r0:r1, lo:hi])
        if len(ys) < max(2, 0.3 * (r1 - r0)):
            continue
        wt = pm.strength[ys + r0, xs + lo] * (1.0 + 2.0 * pm.lines[ys + r0, xs + lo])
        if not np.isfinite(wt).all() or wt.sum() <= 0:  # paint pixels without strength: no observation
            continue
        xo = float(np.average(xs + lo, weights=wt))
        yo = float(np.average(ys + r0, weights=wt))
        obs_y.append(yo)
        obs_x.append(xo)
        obs_w.append(float(wt.sum()))
        x_last, y_last = xo, max(yo, vy + 1.0)
    if len(obs_y) < 3:
        return None
    oy, ox, ow = np.asarray(obs_y), np.asarray(obs_x), np.sqrt(np.asarray(obs_w))
    span = float(oy.max() - oy.min())
    deg = 2 if span > 0.5 * (y_bot - y_top) and len(oy) >= 6 else 1
    keep = np.ones(len(oy), bool)
    coef = np.polyfit(oy, ox, deg, w=ow)
    for _ in range(2):
        res = np.abs(np.polyval(coef, oy) - ox)
        keep = res <= max(2.0, 2.5 * float(np.median(res)))
        if keep.sum() < deg + 2:
            break
        coef = np.polyfit(oy[keep], ox[keep], deg, w=ow[keep])
    rows = np.arange(y_top, y_bot, dtype=np.float64)
    x = np.asarray(np.polyval(coef, rows), dtype=np.float64)
    # beyond the farthest observation a quadratic may swing: continue with its tangent there
    y_far = float(oy[keep].min()) if keep.any() else float(oy.min())
    if deg == 2:
        tangent = 2 * coef[0] * y_far + coef[1]
        far = rows < y_far
        x[far] = np.polyval(coef, y_far) + tangent * (rows[far] - y_far)
    return rows, x


def _measure(pm: PaintMap, g: _Geometry, rows_f: F64, xc: F64, cfg: LaneDetectorConfig) -> LineObs | None:
    """Count, coverage and colour of the line (or double line) centred on ``xc`` (one x per row of ``rows_f``).

    Two passes over the rows between the far limit and the road's bottom: first the cross profile (paint per
    lateral bin, near rows only, every row weighted equally) decides single or double and where each line
    lies; then each line is followed row by row and a row counts as painted where enough paint sits within
    a line width of it.
    """
    w = pm.mask.shape[1]
    vx, vy = g.vp
    vr = g.road_height
    rows = rows_f.astype(int)
    if len(rows) < 4:
        return None
    v = (rows - vy).astype(np.float64)
    px_per_m = v / g.h_m
    band_m = cfg.double_max_gap_m / 2 + 0.15
    prof_bins = np.arange(-band_m, band_m + 1e-9, 0.02)
    profile = np.zeros(len(prof_bins) - 1)
    valid = np.zeros(len(rows), bool)
    offsets: list[F64] = []
    xs_rows: list[npt.NDArray[np.intp]] = []
    for i, y in enumerate(rows):
        c = xc[i]
        r_px = band_m * px_per_m[i] + 1.0
        lo, hi = math.floor(c - r_px), math.ceil(c + r_px) + 1
        if lo < 0 or hi > w:
            offsets.append(np.zeros(0))
            xs_rows.append(np.zeros(0, np.intp))
            continue
        valid[i] = True
        xs = np.nonzero(pm.mask[y, lo:hi])[0] + lo
        off = (xs - c) / px_per_m[i]
        offsets.append(off)
        xs_rows.append(xs)
        if v[i] > 0.35 * vr and len(xs):
            hist, _ = np.histogram(off, bins=prof_bins)
            profile += hist / max(1.0, 0.02 * px_per_m[i])  # every row counts equally
    if not valid.any() or profile.max() <= 0:
        return None
    centres, widths = _line_centres(profile, prof_bins, cfg)
    # rows where two lines double_min_gap_m apart are resolved (their gap spans pixels): only there can each
    # line of a double be followed on its own; farther away they merge into one blob
    near = valid & (v >= cfg.pattern_far_limit * vr)
    resolved = near & (cfg.double_min_gap_m * px_per_m >= cfg.double_resolve_px)
    passing: tuple[float, float] | None = None  # (left, right) coverage of a passing zone found below
    if len(centres) == 1 and _yellowish(pm, rows, xs_rows, resolved, cfg):
        # a passing zone: the dashed partner of a solid line is a weak hump (paint in 1/4 of the rows) that
        # merges into the solid one's shoulder over the profile's rows; look again where they are resolved
        b_star = [pm.lab[y, xs, 2].astype(np.float64) if ok else np.zeros(0)
                  for y, xs, ok in zip(rows, xs_rows, resolved, strict=True)]
        found = _passing_partner(offsets, resolved, v, px_per_m, centres[0], b_star, cfg)
        if found is not None and found[1] >= cfg.solid_coverage and found[2] < cfg.solid_coverage:
            partner, cm, cp, partner_b = found
            passing = (cm, cp) if centres[0] < partner else (cp, cm)
            centres, widths = sorted([centres[0], partner]), widths * 2
    cover = _cover(pm, rows, valid, offsets, xs_rows, xc, px_per_m, centres)
    if passing is not None and not _passing_colours_ok(cover, partner_b, cfg):
        main = 0 if passing[0] >= passing[1] else 1
        centres, widths, passing = [centres[main]], widths[:1], None
        cover = _cover(pm, rows, valid, offsets, xs_rows, xc, px_per_m, centres)
    covered, separate, paint_b, road_b, _ = cover
    any_cov: Bool = np.asarray(covered.any(axis=0), dtype=bool)
    if not any_cov.any():
        return None
    # visible range: from the far limit to the nearest row where the line is seen (hood, bottom clutter)
    valid[int(np.nonzero(any_cov)[0].max()) + 1:] = False
    # existence is judged over the whole range (a 10 ft dash may be alone in the near part), the pattern
    # only where the 30 ft gaps stay resolved
    seen_cov = _depth_coverage(v, any_cov, valid)
    valid &= v >= cfg.pattern_far_limit * vr
    covs = [_depth_coverage(v, covered[k], valid) for k in range(len(centres))]
    if len(centres) == 2:
        # each line of a double on its own: only rows where the two are resolved, each pixel to its nearer line
        res2 = valid & (abs(centres[1] - centres[0]) * px_per_m >= cfg.double_resolve_px)
        sep = [_depth_coverage(v, separate[k], res2) for k in range(2)]
        if passing is not None:
            covs = list(passing)
        elif all(c is not None for c in sep):
            covs = sep
    if seen_cov is None or any(cv is None for cv in covs):
        return None
    sub = tuple(float(cv) for cv in covs if cv is not None)
    pb = np.concatenate(paint_b) if paint_b else np.zeros((0, 3))
    rb = np.concatenate(road_b) if road_b else np.zeros((0, 3))
    paint_lab = tuple(float(q) for q in np.median(pb, axis=0)) if len(pb) else (0.0, 128.0, 128.0)
    road_lab = tuple(float(q) for q in np.median(rb, axis=0)) if len(rb) else paint_lab
    yellowness = paint_lab[2] - road_lab[2]
    mid = float(np.mean(centres))
    c_bottom = float(xc[-1]) + mid * v[-1] / g.h_m
    lat = (vx - c_bottom) * g.h_m / v[-1]
    return LineObs(lateral_m=lat, x_bottom=c_bottom, count=len(centres), coverage=max(sub),
                   sub_coverage=sub if len(sub) == 2 else (), yellowness=yellowness,
                   paint_px=int(sum(len(o) for o in offsets)), paint_lab=paint_lab, road_lab=road_lab,
                   seen_coverage=max(seen_cov, *sub), width_m=max(widths),
                   contrast=max(paint_lab[0] - road_lab[0], 2.0 * yellowness),
                   rows=(int(rows[0]), int(rows[-1])), xs=tuple(float(q) for q in xc[:: max(1, len(xc) // 16)]),
                   passing=passing is not None)


_Cover = tuple[Bool, Bool, list[F64], list[F64], list[list[F64]]]


def _cover(pm: PaintMap, rows: npt.NDArray[np.intp], valid: Bool, offsets: list[F64],
           xs_rows: list[npt.NDArray[np.intp]], xc: F64, px_per_m: F64, centres: list[float]) -> _Cover:
    """Row by row, whether each line (offset ``centres``) is painted, and the Lab samples of paint and pavement.

    Returns:
        ``(covered, separate, paint_lab, road_lab, line_lab)``: ``covered`` ``(K, R) bool`` enough paint
        within a line width (and a pixel) of each centre; ``separate`` the same with each pixel given to its
        nearer centre and the tolerance held under half the spacing of a double (so one line's paint never
        counts for the other); Lab samples of the paint on the lines, of the pavement beside them and, per
        line, of its own (separate) paint.
    """
    w = pm.mask.shape[1]
    k_n = len(centres)
    cen = np.asarray(centres)
    half_gap = 0.5 * float(np.ptp(cen)) if k_n > 1 else math.inf
    covered = np.zeros((k_n, len(rows)), bool)
    separate = np.zeros((k_n, len(rows)), bool)
    paint_b: list[F64] = []
    road_b: list[F64] = []
    line_b: list[list[F64]] = [[] for _ in range(k_n)]
    for i, y in enumerate(rows):
        if not valid[i]:
            continue
        off, xs = offsets[i], xs_rows[i]
        tol = 0.1 + 1.0 / px_per_m[i]
        tol_s = min(tol, 0.8 * half_gap)
        need = max(1.0, 0.4 * 0.1 * px_per_m[i])
        on_line = np.zeros(len(off), bool)
        nearest = np.argmin(np.abs(off[:, None] - cen[None, :]), axis=1) if len(off) else np.zeros(0, np.intp)
        for k, ck in enumerate(centres):
            dist = np.abs(off - ck)
            near = dist <= tol
            covered[k, i] = near.sum() >= need
            own = (nearest == k) & (dist <= tol_s)
            separate[k, i] = own.sum() >= need
            if separate[k, i]:
                line_b[k].append(pm.lab[y, xs[own]].astype(np.float64))
            on_line |= near
        if covered[:, i].any():
            paint_b.append(pm.lab[y, xs[on_line]].astype(np.float64))
        # pavement beside the line: 0.4-0.8 m beyond the outer lines on each side, unpainted
        c = xc[i]
        for sgn, edge in ((-1.0, min(centres)), (1.0, max(centres))):
            p0 = round(c + (edge + sgn * 0.4) * px_per_m[i])
            p1 = round(c + (edge + sgn * 0.8) * px_per_m[i])
            p0, p1 = max(0, min(p0, p1)), min(w, max(p0, p1) + 1)
            if p1 > p0:
                road_b.append(pm.lab[y, p0:p1][~pm.mask[y, p0:p1]].astype(np.float64))
    return covered, separate, paint_b, road_b, line_b


def _yellowish(pm: PaintMap, rows: npt.NDArray[np.intp], xs_rows: list[npt.NDArray[np.intp]], resolved: Bool,
               cfg: LaneDetectorConfig) -> bool:
    """Cheap gate before the passing-zone search: the paint near the line is at least somewhat yellow (median
    b* half ``yellow_b`` above neutral); white lines are never a passing zone."""
    idx = np.nonzero(resolved)[0]
    ys = np.concatenate([np.full(len(xs_rows[i]), rows[i]) for i in idx]) if len(idx) else np.zeros(0, np.intp)
    xs = np.concatenate([xs_rows[i] for i in idx]) if len(idx) else np.zeros(0, np.intp)
    return bool(len(xs)) and float(np.median(pm.lab[ys, xs, 2])) > 128.0 + 0.5 * cfg.yellow_b


def _passing_partner(offsets: list[F64], resolved: Bool, v: F64, px_per_m: F64, c0: float, b_star: list[F64],
                     cfg: LaneDetectorConfig) -> tuple[float, float, float, float] | None:
    """A weak second line beside the line at ``c0`` (a passing zone's dashed line), or None.

    Row by row where two lines are resolved, the paint splits into runs (unpainted pixels between): the run
    nearest ``c0`` is the main line and the nearest run beside it, ``double_min_gap_m`` to
    ``passing_max_gap_m`` from it, a partner. The side with more partner rows wins; rows whose spacing
    stays within 0.05 m of the median count. Measured from the main run row by row, the spacing does not
    suffer from the traced curve's drift.

    Args:
        b_star: per row, the Lab b* of the paint pixels whose offsets ``offsets`` holds.

    Returns:
        ``(offset, main_coverage, partner_coverage, partner_b)``: the partner's offset (m, like ``c0``), the
        coverage over ground depth of the two in the resolved rows and the partner paint's median b*; None
        when there is no partner in at least ``passing_min_presence`` of the rows.
    """
    idx = np.nonzero(resolved)[0]
    if len(idx) < 8:
        return None
    main_on = np.zeros(len(resolved), bool)
    dist = np.full((2, len(resolved)), np.nan)  # per side (image left, right): spacing to the partner run
    run_b: list[list[F64]] = [[] for _ in resolved]  # per row, per side: b* of the partner run
    width = np.full(len(resolved), np.nan)  # per row: width (m) of the main run
    for i in idx:
        off = offsets[i]
        if not len(off):
            continue
        px = np.round(off * px_per_m[i]).astype(np.int64)
        cut = np.nonzero(np.diff(px) > 1)[0] + 1
        parts = np.split(off, cut)
        runs = [float(r.mean()) for r in parts]
        bs = np.split(b_star[i], cut)
        run_b[i] = [np.zeros(0), np.zeros(0)]
        k0 = int(np.argmin([abs(r - c0) for r in runs]))
        if abs(runs[k0] - c0) > 0.1 + 1.0 / px_per_m[i]:
            continue
        main_on[i] = True
        width[i] = float(np.ptp(parts[k0])) + 1.0 / px_per_m[i]
        for side, nb in ((0, k0 - 1), (1, k0 + 1)):
            if 0 <= nb < len(runs):
                d = abs(runs[nb] - runs[k0])
                if cfg.double_min_gap_m <= d <= cfg.passing_max_gap_m:
                    dist[side, i] = d
                    run_b[i][side] = bs[nb]
    seen = np.isfinite(dist).sum(axis=1)
    side = int(np.argmax(seen))
    if seen[side] < max(3, cfg.passing_min_presence * len(idx)):
        return None
    d_med = float(np.nanmedian(dist[side]))
    partner_on = np.abs(np.nan_to_num(dist[side], nan=-1.0) - d_med) <= 0.05
    # rows where the pair merged into one run (wider than the main line alone by half the spacing) tell
    # nothing about the partner: they are left out of both coverages
    w_main = float(np.nanmedian(width[partner_on])) if partner_on.any() else math.nan
    merged = np.nan_to_num(width, nan=0.0) >= w_main + 0.5 * d_med
    rows_ok = resolved & ~merged
    cm = _depth_coverage(v, main_on, rows_ok)
    cp = _depth_coverage(v, partner_on, rows_ok)
    if cm is None or cp is None or cp < cfg.passing_min_presence:
        return None
    pb = np.concatenate([run_b[i][side] for i in np.nonzero(partner_on)[0]])
    return c0 + (d_med if side == 1 else -d_med), cm, cp, float(np.median(pb))


def _passing_colours_ok(cover: _Cover, partner_b: float, cfg: LaneDetectorConfig) -> bool:
    """Whether both lines of a found pair are yellow (paint b* above the pavement's beside them)."""
    _, _, paint_b, road_b, _ = cover
    if not road_b or not paint_b:
        return False
    road = float(np.median(np.concatenate(road_b)[:, 2]))
    paint = float(np.median(np.concatenate(paint_b)[:, 2]))
    return min(paint, partner_b) - road > cfg.yellow_b

def _depth_coverage(v: F64, covered: Bool, valid: Bool, n_bins: int = 24) -> float | None:
    """Painted share of the visible length, measured in equal steps of ground depth (depth ~ 1 / v)."""
    if valid.sum() < 3:
        return None
    z = 1.0 / v[valid]
    cv_ = covered[valid].astype(np.float64)
    edges = np.linspace(z.min(), z.max() + 1e-12, n_bins + 1)
    idx = np.clip(np.digitize(z, edges) - 1, 0, n_bins - 1)
    sums = np.bincount(idx, weights=cv_, minlength=n_bins)
    cnt = np.bincount(idx, minlength=n_bins)
    have = cnt > 0
    # far bins may hold no row: they take the value of the nearest row (interpolate in depth)
    frac = np.interp(np.arange(n_bins), np.nonzero(have)[0], sums[have] / cnt[have])
    return float(frac.mean())


def _line_centres(profile: F64, bins: F64, cfg: LaneDetectorConfig) -> tuple[list[float], list[float]]:
    """Lateral offsets (m, relative to the traced centre) of the one or two lines in a cross profile.

    Two humps of similar height, ``double_min_gap_m`` to ``double_max_gap_m`` apart, with a clear dip between
    them make a double line; otherwise the highest hump is a single line.

    Returns:
        ``(centres, widths)``: offset and full width at half maximum (m) of each line.
    """
    centres = (bins[:-1] + bins[1:]) / 2
    step = float(bins[1] - bins[0])
    p = _smooth1d(profile, 1.0)
    peak_idx = _peaks(p, 0.3 * float(p.max()))
    best: list[int] = [int(np.argmax(p))]
    best_score = 0.0
    for ii, i in enumerate(peak_idx):
        for j in peak_idx[ii + 1:]:
            gap = centres[j] - centres[i]
            if not (cfg.double_min_gap_m <= gap <= cfg.double_max_gap_m):
                continue
            low = min(p[i], p[j])
            dip = float(p[i:j + 1].min())
            if low >= 0.35 * p.max() and dip <= 0.55 * low and low - dip > best_score:
                best, best_score = [i, j], low - dip
    widths = []
    for i in best:
        half = 0.5 * p[i]
        lo = i
        while lo > 0 and p[lo - 1] >= half:
            lo -= 1
        hi = i
        while hi < len(p) - 1 and p[hi + 1] >= half:
            hi += 1
        widths.append((hi - lo + 1) * step)
    return [float(centres[i]) for i in best], widths


def hood_row(pm: PaintMap) -> int | None:
    """Top row of the ego vehicle's hood (bonnet) seen at the bottom of the frame, or None.

    The hood's edge is a long, nearly horizontal edge across the bottom third: a row at which Canny edges
    (within 3 rows, to follow a slight curve) cover 60 % of the central columns, with little road-line paint
    just below it compared with just above (which tells it from a shadow edge or a change of pavement).
    The highest such row wins.
    """
    h, w = pm.gray.shape
    top = int(0.68 * h)
    edges = cv2.Canny(cv2.GaussianBlur(pm.gray[top:], (5, 5), 0), 30, 90)
    near = cv2.dilate(edges, np.ones((7, 1), np.uint8)) > 0
    frac = near[:, int(0.2 * w):int(0.8 * w)].mean(axis=1)
    per_row = pm.lines.sum(axis=1).astype(np.float64)
    band = max(4, int(0.06 * h))
    for r in np.nonzero(frac > 0.6)[0]:
        y = top + int(r)
        above = per_row[max(0, y - band):y - 2].mean()
        below = per_row[y + 5:y + 5 + band].mean() if y + 5 < h else 0.0
        if below <= 0.3 * above:
            return y
    return None


def _bottom_row(pm: PaintMap, road: Bool | None, hood: int | None) -> int:
    """Last road row (exclusive): above the hood, and the lowest row of the road mask when given."""
    h = pm.mask.shape[0]
    bottom = h if hood is None else hood
    if road is not None:
        rows = np.nonzero(road.any(axis=1))[0]
        if len(rows):
            bottom = min(bottom, int(rows.max()) + 1)
    return bottom


def observe_frame(rgb: U8, cfg: LaneDetectorConfig, vp: Point, road: Bool | None = None,
                  pm: PaintMap | None = None, hood: int | None = None) -> FrameObs:
    """The ego lane's boundaries in one work-resolution frame, given the vanishing point and hood row."""
    pm = pm if pm is not None else paint_map(rgb, cfg, road)
    h, w = pm.mask.shape
    g = _Geometry(vp=vp, bottom=_bottom_row(pm, road, hood), h_m=cfg.camera_height_m)
    if g.road_height < 0.1 * h:
        return FrameObs(None, None, vp)
    ego_lat = (vp[0] - w / 2) * g.h_m / g.road_height
    cands = _candidates(pm, g, cfg)
    left = right = None
    lefts = sorted((c for c in cands if c[0] - ego_lat >= cfg.min_lateral_m), key=lambda c: c[0])
    rights = sorted((c for c in cands if ego_lat - c[0] >= cfg.min_lateral_m), key=lambda c: -c[0])
    for side, group in (("left", lefts), ("right", rights)):
        for lat0, _mass in group:
            if abs(lat0 - ego_lat) > cfg.max_lateral_m:
                break
            trace = _trace(pm, g, lat0, cfg)
            if trace is None:
                continue
            obs = _measure(pm, g, trace[0], trace[1], cfg)
            if (obs is None or obs.seen_coverage < cfg.min_coverage or obs.width_m > cfg.max_width_m
                    or obs.contrast < cfg.min_contrast):
                continue  # not paint: too short, too wide (glare, kerb, car) or not brighter/yellower
            d = obs.lateral_m - ego_lat
            if (side == "left" and d < cfg.min_lateral_m) or (side == "right" and -d < cfg.min_lateral_m):
                continue
            if side == "left":
                left = obs
            else:
                right = obs
            break
    return FrameObs(left, right, vp)


# --------------------------------------------------------------------------------------------------------
# Clip-level vote
# --------------------------------------------------------------------------------------------------------
def _frame_pattern(o: LineObs, cfg: LaneDetectorConfig) -> PatternSeen:
    """One frame's pattern: each line of a double on its own, else the line's coverage."""
    if o.count == 2 and len(o.sub_coverage) == 2:
        solid = [c >= cfg.solid_coverage for c in o.sub_coverage]
        return "solid" if all(solid) else "dashed" if not any(solid) else "solid-dashed"
    return "solid" if o.coverage >= cfg.solid_coverage else "dashed"


def _vote_boundary(obs: list[LineObs | None], cfg: LaneDetectorConfig, scale: float) -> BoundaryReport:
    n = len(obs)
    seen = [o for o in obs if o is not None]
    share_seen = len(seen) / n if n else 0.0
    if not seen or share_seen < cfg.min_frame_share:
        return BoundaryReport(count=0, color=None, pattern=None, confidence=round(1.0 - share_seen, 3),
                              frames_seen=len(seen), frames_used=n, votes={"count": 1.0 - share_seen})
    n_seen = len(seen)
    if sum(o.passing for o in seen) < 2:
        # one frame's weak partner may be wear of a single line (or of a double's second line): a passing
        # zone needs its dashes in two frames at least; alone, such a frame counts as its solid line
        seen = [replace(o, count=1, sub_coverage=(), passing=False) if o.passing else o for o in seen]
    doubles = sum(o.count == 2 for o in seen)
    count = 2 if doubles > len(seen) / 2 else 1
    count_share = (doubles if count == 2 else len(seen) - doubles) / len(seen)
    yel = float(np.median([o.yellowness for o in seen]))
    # a passing zone's dashed line is resolved only near the camera, where a 10 ft dash comes and goes: a
    # yellow line whose frames show the pair often enough (the others: the solid line alone) is one
    passing = [o for o in seen if o.passing]
    if count == 1 and yel > cfg.yellow_b and len(passing) >= cfg.passing_min_frame_share * len(seen):
        solid_alone = sum(o.count == 1 and o.coverage >= cfg.solid_coverage for o in seen)
        count, count_share = 2, (len(passing) + solid_alone) / n_seen
        seen = passing  # the pair's attributes come from the frames that resolved it
    yel_votes = sum(o.yellowness > cfg.yellow_b for o in seen) / len(seen)
    color: ColorSeen = "yellow" if yel > cfg.yellow_b else "white"
    color_share = yel_votes if color == "yellow" else 1.0 - yel_votes
    cov = float(np.mean([o.coverage for o in seen]))
    pattern: PatternSeen
    if count == 2:
        subs = [o.sub_coverage for o in seen if o.count == 2 and len(o.sub_coverage) == 2]
        sl = float(np.mean([s[0] for s in subs])) if subs else cov
        sr = float(np.mean([s[1] for s in subs])) if subs else cov
        solid_l, solid_r = sl >= cfg.solid_coverage, sr >= cfg.solid_coverage
        pattern = "solid" if solid_l and solid_r else "dashed" if not (solid_l or solid_r) else "solid-dashed"
        pat_margin = min(abs(sl - cfg.solid_coverage), abs(sr - cfg.solid_coverage))
    else:
        pattern = "solid" if cov >= cfg.solid_coverage else "dashed"
        pat_margin = abs(cov - cfg.solid_coverage)
    pat_votes = sum(_frame_pattern(o, cfg) == pattern for o in seen) / len(seen)
    pat_conf = min(1.0, pat_margin / 0.2) * 0.5 + 0.5 * pat_votes
    col_conf = min(1.0, abs(yel - cfg.yellow_b) / 10.0) * 0.5 + 0.5 * color_share
    conf = share_seen * count_share * math.sqrt(pat_conf * col_conf)
    xb = float(np.median([o.x_bottom for o in seen])) / scale
    return BoundaryReport(count=count, color=color, pattern=pattern, confidence=round(float(conf), 3),
                          x_bottom=xb, lateral_m=float(np.median([o.lateral_m for o in seen])), coverage=cov,
                          yellowness=yel, frames_seen=n_seen, frames_used=n,
                          votes={"seen": share_seen, "count": count_share, "color": color_share,
                                 "pattern": pat_votes})


def _check_inputs(frames: object, road_masks: object) -> None:
    if not isinstance(frames, np.ndarray):
        raise InputError("frames", "a numpy array (T, H, W, 3) uint8", type(frames).__name__)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError("frames", "(T, H, W, 3) uint8 RGB frames", f"{frames.shape} {frames.dtype}",
                         "pass clip.frames (add a leading axis for a single image)")
    if frames.shape[0] < 1 or frames.shape[1] < 32 or frames.shape[2] < 32:
        raise InputError("frames", "at least one frame of at least 32x32 pixels", f"{frames.shape}")
    if road_masks is None:
        return
    if not isinstance(road_masks, np.ndarray):
        raise InputError("road_masks", "a numpy array (T, H, W) bool or None", type(road_masks).__name__)
    if road_masks.dtype != np.bool_ or road_masks.shape != frames.shape[:3]:
        raise InputError("road_masks", f"(T, H, W) bool matching the frames, i.e. {frames.shape[:3]} bool",
                         f"{road_masks.shape} {road_masks.dtype}")


class LaneDetector(InspectingVerifier):
    """Classical lane-attribute verifier (``verify.backend=lane_detector``); see the module docstring."""

    name = "lane_detector"

    def __init__(self, cfg: LaneDetectorConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else LaneDetectorConfig()

    def inspect(self, frames: npt.NDArray[np.uint8],
                road_masks: npt.NDArray[np.bool_] | None = None) -> LaneReport:
        """What the ego lane's boundaries look like in ``frames``.

        Args:
            frames: ``(T, H, W, 3) uint8`` RGB frames of a forward camera (T >= 1; a still is T = 1).
            road_masks: optional ``(T, H, W) bool``, True = road; paint outside it is ignored.

        Returns:
            A :class:`LaneReport`; ``x_bottom`` values are in input pixels.

        Raises:
            InputError: frames or masks of the wrong type, dtype or shape.
        """
        _check_inputs(frames, road_masks)
        cfg = self.cfg
        t, h, w = frames.shape[:3]
        idx = np.unique(np.linspace(0, t - 1, min(t, cfg.max_frames)).round().astype(int))
        ww = min(cfg.work_width, w)
        scale = ww / w
        wh = max(16, round(h * scale))
        smalls: list[U8] = []
        roads: list[Bool | None] = []
        pms: list[PaintMap] = []
        vps: list[Point] = []
        for i in idx:
            small = cv2.resize(frames[i], (ww, wh), interpolation=cv2.INTER_AREA) if ww != w else frames[i]
            road = None
            if road_masks is not None:
                road = cv2.resize(road_masks[i].astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0
            pm = paint_map(small, cfg, road)
            smalls.append(small)
            roads.append(road)
            pms.append(pm)
            found = vanishing_point(pm, road)
            if found is not None:
                vps.append(found[0])
        if vps:
            arr = np.asarray(vps)
            med = (float(np.median(arr[:, 0])), float(np.median(arr[:, 1])))
        else:
            med = (ww / 2, 0.55 * wh)
        hoods = [hood_row(pm) for pm in pms]
        found_hoods = [r for r in hoods if r is not None]
        # the hood does not move: a clip's frames share the median of the frames that show it
        hood = int(np.median(found_hoods)) if len(found_hoods) > len(hoods) / 2 else None
        obs: list[FrameObs] = []
        for small, road, pm in zip(smalls, roads, pms, strict=True):
            obs.append(observe_frame(small, cfg, med, road, pm, hood))
        left = _vote_boundary([o.left for o in obs], cfg, scale)
        right = _vote_boundary([o.right for o in obs], cfg, scale)
        diag = {"frames_used": len(idx), "vanishing_point": (med[0] / scale, med[1] / scale),
                "vp_found_in": len(vps), "hood_row": None if hood is None else hood / scale,
                "work_size": (ww, wh)}
        return LaneReport(left=left, right=right, verifier=self.name, diagnostics=diag)
