"""Step 4b of the lane detector: the strokes of one traced boundary, read at the input resolution.

A double line is two strokes 4-6 in (0.10-0.15 m) wide separated by a space about as wide as one stroke (US
MUTCD 2009 §3A.06: "double lines shall consist of two parallel lines separated by a discernible space";
normal lines 4 to 6 in wide; §3B.01 two-direction no-passing and passing-zone centre lines). At the work
resolution (640 px wide) the 0.10 m space spans fewer than 2 pixels beyond ~10 m of a 720p dashcam, so the pair
merges into one blob there; at the input resolution it stays resolved two to three times farther.

For each input row between the far limit and the road's bottom, the frame is resampled across the traced
boundary on a grid of lateral **metres** on the ground (1 cm steps, ±0.8 m; the pixels per metre of a row follow
from its distance below the vanishing point and the assumed camera height). A 1-D opening 0.5 m wide (wider
than a double line, narrower than a lane) gives the pavement under each row, and paint is what is brighter
(Lab L*) or yellower (2 b*) than it by the frame's threshold. Only rows where a 0.10 m space spans
``stroke_resolve_px`` input pixels are used. The rows are re-centred on one stroke, followed row by row (the
work-resolution trace may sit on either stroke or drift between them); the paint share per lateral offset over
those rows is the cross profile: one hump is a single line, two humps 0.12-0.6 m apart with a valley between
them a double line. Whether a stroke is painted in the rows where the other one is tells its pattern: wear and
distance take both strokes of a double alike, a passing zone's 10 ft dashes (30 ft gaps) only one, so a mixed
double reads as ``solid-dashed`` with each stroke known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector.observations import FrameGeometry, hist_peaks, smooth1d

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

#: lateral sampling grid across a boundary (metres on the ground, + = right in the image)
_STEP_M = 0.01
_HALF_M = 0.8
_GRID = np.arange(-_HALF_M, _HALF_M + 1e-9, _STEP_M)
#: the opening that gives the pavement under a row: wider than a double line (two 4-6 in lines and a space about
#: as wide, 0.3-0.45 m; MUTCD §3A.06), so paint is removed by it, narrower than a lane
_OPEN_M = 0.5
#: where a boundary's strokes are looked for: within 0.45 m of the trace
_CORE = np.abs(_GRID) <= 0.45
#: share of the central 0.9 m above which a row is bright across, not striped
_FLAT_SHARE = 0.45
#: most grid steps a followed stroke moves from one row to the next
_MAX_STEP = 10
#: the space between the two lines of a double (about one line width, 4 in; MUTCD §3A.06)
DOUBLE_SPACE_M = 0.10


@dataclass(frozen=True)
class StrokeObs:
    """The strokes of one boundary in one frame (input resolution).

    Attributes:
        count: 1 (single line) or 2 (double line).
        offsets_m: lateral offset of each stroke from the (re-centred) boundary centre, left to right in the
            image (metres on the ground).
        coverage: each stroke's painted share of the resolved rows, over equal steps of ground depth, same order.
        together: per stroke of a double, the share of the rows where the other stroke is painted in which it
            is painted too: about 1 for a solid stroke or for two strokes worn or dashed alike, about a
            quarter for the dashed stroke of a passing zone (10 ft dashes, 30 ft gaps, MUTCD §3A.06) beside a
            solid one; ``()`` for a single line.
        rows: number of input rows in which a double's space is resolved.
        depth_span: far / near ground distance ratio of those rows (1 = one row; a dash cycle needs ~2+).
    """

    count: int
    offsets_m: tuple[float, ...]
    coverage: tuple[float, ...]
    together: tuple[float, ...]
    rows: int
    depth_span: float


def _sample(chan: F32, ys: F64, centre: F64, ppm: F64) -> F32:
    mx = (centre[:, None] + _GRID[None, :] * ppm[:, None]).astype(np.float32)
    my = np.broadcast_to(ys[:, None], mx.shape).astype(np.float32)
    out: F32 = np.asarray(cv2.remap(chan, mx, np.ascontiguousarray(my), cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE), dtype=np.float32)
    return out


def _paint(l_chan: F32, b_chan: F32, ys: F64, centre: F64, ppm: F64, yellow: bool = False) -> F32:
    """Paint strength ``(R, G)`` on the metre grid: L* or 2 b* above a 0.5 m opening of each row."""
    k = np.ones((1, round(_OPEN_M / _STEP_M) | 1), np.uint8)
    sl = _sample(l_chan, ys, centre, ppm)
    sb = _sample(b_chan, ys, centre, ppm)
    th_l = sl - cv2.morphologyEx(sl, cv2.MORPH_OPEN, k)
    th_b = sb - cv2.morphologyEx(sb, cv2.MORPH_OPEN, k)
    out: F32 = th_b if yellow else np.maximum(th_l, 2.0 * th_b)
    return out


def _depth_share(v: F64, on: Bool, n_bins: int = 16) -> float:
    """Painted share over equal steps of ground depth (depth ~ 1 / v); empty bins take the nearest value."""
    z = 1.0 / v
    edges = np.linspace(z.min(), z.max() + 1e-12, n_bins + 1)
    idx = np.clip(np.digitize(z, edges) - 1, 0, n_bins - 1)
    sums = np.bincount(idx, weights=on.astype(np.float64), minlength=n_bins)
    cnt = np.bincount(idx, minlength=n_bins)
    have = cnt > 0
    frac = np.interp(np.arange(n_bins), np.nonzero(have)[0], sums[have] / cnt[have])
    return float(frac.mean())


def lab_channels(lab: U8) -> tuple[F32, F32]:
    """The L* and b* planes of an OpenCV Lab frame as float32 (what :func:`read_strokes` samples)."""
    return (np.ascontiguousarray(lab[:, :, 0], dtype=np.float32),
            np.ascontiguousarray(lab[:, :, 2], dtype=np.float32))


def read_strokes(chans: tuple[F32, F32], scale: float, g: FrameGeometry, rows_w: F64, xc_w: F64,
                 cfg: LaneDetectorConfig) -> StrokeObs | None:
    """Single or double, and each stroke's coverage, of the boundary traced at ``(rows_w, xc_w)``.

    Args:
        chans: L* and b* planes of the input frame (input resolution), from :func:`lab_channels`.
        scale: work width / input width.
        g: the frame's geometry at work resolution.
        rows_w, xc_w: the traced centre curve (work pixels), rows increasing.

    Returns:
        A :class:`StrokeObs`, or None when fewer than ``stroke_min_rows`` rows resolve a double's space or
        no paint is seen there (the work-resolution reading then stands).
    """
    l_chan, b_chan = chans
    w = l_chan.shape[1]
    vy = g.vp[1] / scale
    bottom = g.bottom / scale
    vr = bottom - vy
    y0 = math.ceil(vy + cfg.far_limit * vr)
    ys_all = np.arange(y0, math.floor(bottom), dtype=np.float64)
    if len(ys_all) < 8:
        return None
    v = ys_all - vy
    ppm = v / g.h_m
    # rows where the space of a double spans enough input pixels to be seen
    res = ppm * DOUBLE_SPACE_M >= cfg.stroke_resolve_px
    ys, v, ppm = ys_all[res], v[res], ppm[res]
    if len(ys) > 360:  # cap the work on tall frames: evenly spaced rows
        pick = np.unique(np.linspace(0, len(ys) - 1, 360).round().astype(int))
        ys, v, ppm = ys[pick], v[pick], ppm[pick]
    centre = np.interp(ys * scale, rows_w, xc_w) / scale
    inside = (centre - 0.5 * ppm >= 0) & (centre + 0.5 * ppm <= w - 1)
    ys, v, ppm, centre = ys[inside], v[inside], ppm[inside], centre[inside]
    if len(ys) < cfg.stroke_min_rows:
        return None
    s = _paint(l_chan, b_chan, ys, centre, ppm)
    thr = max(cfg.min_contrast, cfg.noise_factor * float(np.median(s)))
    # re-centre every row on one stroke: the trace may sit on either stroke or drift between them, so the
    # stroke is followed row by row (a path over the metre grid that keeps to paint and moves at most 1.5 px per
    # row), then the strip is sampled again around it
    # (on at most 120 rows, evenly spread; a stroke's path is smooth in between)
    sub = np.unique(np.linspace(0, len(ys) - 1, min(len(ys), 120)).round().astype(int))
    found_path = _follow(s[sub], thr, ppm[sub], np.diff(ys[sub], prepend=ys[sub][0] - 1.0))
    if found_path is None:
        return None
    path = np.interp(ys, ys[sub], found_path)
    centre = centre + path * ppm
    s = _paint(l_chan, b_chan, ys, centre, ppm)
    # a row bright across most of the strip (a crossing, a shadow's edge, the hood's rim) is not a stroke
    flat = (s[:, _CORE] > thr).mean(axis=1) > _FLAT_SHARE
    ys, v, ppm, centre = ys[~flat], v[~flat], ppm[~flat], centre[~flat]
    if len(ys) < cfg.stroke_min_rows:
        return None
    s = _paint(l_chan, b_chan, ys, centre, ppm)
    on = s > thr
    yel = _paint(l_chan, b_chan, ys, centre, ppm, yellow=True)  # b* above the pavement
    # every row weighs 1 / v: between counting image rows (which crowd near the camera, where a 10 ft dash may
    # be missing altogether) and counting ground length (d depth ~ dv / v^2, which would hand the profile to
    # the far, blurred rows)
    wz = 1.0 / v
    wz /= wz.sum()
    found = _pair(on, wz, cfg)
    if found is None:
        return None
    i1, best, _ = found
    near = ppm * DOUBLE_SPACE_M >= 2.0 * cfg.stroke_resolve_px
    if best is None and near.sum() >= cfg.stroke_min_rows and not near.all():
        # the pixels may be softer than their size (an upscaled or blurred frame): the nearest rows, where the
        # space spans twice as many pixels, may still resolve a pair that merged farther away
        again = _pair(on[near], wz[near] / wz[near].sum(), cfg)
        if again is not None and again[1] is not None:
            i1, best, _ = again
    z = 1.0 / v
    span = float(z.max() / z.min())
    if best is None:
        cov1 = _depth_share(v, _stroke_rows(on, ppm, i1, None))
        return StrokeObs(count=1, offsets_m=(float(_GRID[i1]),), coverage=(cov1,),
                         together=(), rows=len(ys), depth_span=span)
    lo, hi = best
    on_l, on_r = _stroke_rows(on, ppm, lo, hi), _stroke_rows(on, ppm, hi, lo)
    yel_l, yel_r = _stroke_b(on, yel, ppm, lo, hi), _stroke_b(on, yel, ppm, hi, lo)
    if max(yel_l, yel_r) > cfg.yellow_b and min(yel_l, yel_r) < cfg.stroke_yellow_share * max(yel_l, yel_r):
        # the two lines of a double have one colour (MUTCD 2009 §3A.05: yellow centre lines, white lane lines);
        # a grey seam or a concrete shoulder's edge beside a yellow line is not its partner
        cov1 = _depth_share(v, _stroke_rows(on, ppm, i1, None))
        return StrokeObs(count=1, offsets_m=(float(_GRID[i1]),), coverage=(cov1,),
                         together=(), rows=len(ys), depth_span=span)
    covs = (_depth_share(v, on_l), _depth_share(v, on_r))
    both_w = float(wz[on_l & on_r].sum())
    tog = (both_w / max(float(wz[on_r].sum()), 1e-12), both_w / max(float(wz[on_l].sum()), 1e-12))
    return StrokeObs(count=2, offsets_m=(float(_GRID[lo]), float(_GRID[hi])), coverage=covs,
                     together=tog, rows=len(ys), depth_span=span)


def _follow(s: F32, thr: float, ppm: F64, dy: F64, px_cost: float = 0.25) -> F64 | None:
    """The lateral offset (m) per row of the strongest stroke in ``s`` ``(R, G)``, by dynamic programming.

    A row's score at an offset is its paint strength in units of ``thr`` (clipped to [-0.5, 2], so pavement
    costs a little and glare cannot buy a jump); from row to row the path moves at most 1.5 input pixels per
    input row ``dy`` between them (a line's slope in the image differs little from the trace's), each pixel
    costing ``px_cost``; a row bright across the strip scores nothing. Returns None when no row has paint within
    0.45 m of the trace.
    """
    core = _CORE
    if not (s[:, core] > thr).any():
        return None
    score = np.clip(s / thr - 0.5, -0.5, 2.0).astype(np.float64)
    score[:, ~core] = -1.0
    score[(s[:, core] > thr).mean(axis=1) > _FLAT_SHARE] = 0.0  # rows bright across: no evidence
    r_n, g_n = score.shape
    reach = np.clip(np.ceil(1.5 * dy / (ppm * _STEP_M)), 1, _MAX_STEP).astype(int)  # grid steps per row
    moves = range(-_MAX_STEP, _MAX_STEP + 1)
    acc = score[0].copy()
    back = np.zeros((r_n, g_n), np.int8)
    for r in range(1, r_n):
        cand = np.full((len(moves), g_n), -np.inf)
        cost = px_cost * _STEP_M * ppm[r]
        for k, d in enumerate(moves):  # arriving at j from j - d
            if abs(d) > reach[r]:
                continue
            if d >= 0:
                cand[k, d:] = acc[:g_n - d] - cost * d
            else:
                cand[k, :d] = acc[-d:] + cost * d
        choice = np.argmax(cand, axis=0)
        acc = cand[choice, np.arange(g_n)] + score[r]
        back[r] = choice - _MAX_STEP
    idx = np.empty(r_n, np.intp)
    idx[-1] = int(np.argmax(acc))
    for r in range(r_n - 1, 0, -1):
        idx[r - 1] = idx[r] - back[r, idx[r]]
    out: F64 = _GRID[idx].astype(np.float64)
    return out


def _pair(on: Bool, wz: F64, cfg: LaneDetectorConfig) -> tuple[int, tuple[int, int] | None, float] | None:
    """The cross profile of paint ``on`` ``(R, G)`` (rows weighted ``wz``): its highest hump's grid index, the
    pair of humps that make a double (grid indices, left to right) or None, and the highest hump's height; None
    when no hump reaches ``stroke_min_presence``."""
    prof = smooth1d((on * wz[:, None]).sum(axis=0).astype(np.float64), 1.5)
    prof[np.abs(_GRID) > 0.55] = 0.0
    top = float(prof.max())
    if top < cfg.stroke_min_presence:
        return None
    i1 = int(np.argmax(prof))
    best: tuple[int, int] | None = None
    best_score = 0.0
    for j in hist_peaks(prof, cfg.stroke_min_presence):
        gap = abs(_GRID[j] - _GRID[i1])
        if not (cfg.double_min_gap_m <= gap <= cfg.double_max_gap_m):
            continue
        lo, hi = min(i1, j), max(i1, j)
        dip = float(prof[lo:hi + 1].min())
        low = float(prof[j])
        if dip <= cfg.stroke_valley * low and low - dip > best_score:
            best, best_score = (lo, hi), low - dip
    return i1, best, top


def _stroke_b(on: Bool, yel: F32, ppm: F64, i: int, other: int) -> float:
    """Median b* above the pavement of the paint of the stroke at grid index ``i`` (0 when it has none)."""
    half = np.minimum(0.05 + 1.0 / ppm, 0.45 * abs(_GRID[other] - _GRID[i]))
    win = np.abs(_GRID[None, :] - _GRID[i]) <= half[:, None]
    vals = yel[on & win]
    return float(np.median(vals)) if len(vals) else 0.0


def _stroke_rows(on: Bool, ppm: F64, i: int, other: int | None) -> Bool:
    """Rows in which the stroke centred on grid index ``i`` is painted: at least
    a third of a 0.10 m window (plus a pixel each side, held within half the spacing to ``other``) is paint."""
    half = 0.05 + 1.0 / ppm
    if other is not None:
        half = np.minimum(half, 0.45 * abs(_GRID[other] - _GRID[i]))
    dist = np.abs(_GRID[None, :] - _GRID[i])
    win = dist <= half[:, None]
    share = (on & win).sum(axis=1) / np.maximum(win.sum(axis=1), 1)
    out: Bool = share >= 1.0 / 3.0
    return out
