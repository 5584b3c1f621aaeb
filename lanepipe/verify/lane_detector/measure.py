"""Step 4 of the lane detector: a traced line's attributes (count, coverage, colour, passing zone)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector.observations import FrameGeometry, LineObs, hist_peaks, smooth1d
from lanepipe.verify.lane_detector.paint import PaintMap

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


def measure_line(pm: PaintMap, g: FrameGeometry, rows_f: F64, xc: F64, cfg: LaneDetectorConfig) -> LineObs | None:
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
    p = smooth1d(profile, 1.0)
    peak_idx = hist_peaks(p, 0.3 * float(p.max()))
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
