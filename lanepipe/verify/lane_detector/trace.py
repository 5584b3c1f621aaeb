"""Step 3 of the lane detector: line candidates from a lateral paint histogram, traced up the road."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector.observations import FrameGeometry, hist_peaks, smooth1d
from lanepipe.verify.lane_detector.paint import PaintMap

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


def line_candidates(pm: PaintMap, g: FrameGeometry, cfg: LaneDetectorConfig) -> list[tuple[float, float]]:
    """Line candidates as ``(lateral_m, mass)``: peaks of paint over lateral ground position, left to right.

    Each line of a double line is its own peak; :func:`measure_line` finds the partner of the one chosen.
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
    hist = smooth1d(hist.astype(np.float64), 0.05 / bin_m)
    centres = (edges[:-1] + edges[1:]) / 2
    peak_idx = hist_peaks(hist, 0.015 * float(hist.max()) if hist.max() > 0 else 1.0)
    return sorted((float(centres[i]), float(hist[i])) for i in peak_idx)


def trace_line(pm: PaintMap, g: FrameGeometry, lat0: float, cfg: LaneDetectorConfig) -> tuple[F64, F64] | None:
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
