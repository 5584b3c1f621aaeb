"""Lane boundaries on the ground, found in a bird's-eye view (BEV): sliding-window tracking and a ridge fit.

A boundary is the cubic ``y(x) = sum_k coefs[k] x**k`` (ego metres, x forward, y left;
:data:`~lanepipe.geometry.road.DEGREE` + 1 coefficients, evaluated with
:func:`~lanepipe.geometry.road.poly_eval`). The BEV grid is a :class:`~lanepipe.geometry.road.BevGrid`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lanepipe.geometry.road import DEGREE, BevGrid, poly_eval

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
_X_SCALE = 30.0  # fits use u = x / 30 m for conditioning


@dataclass(frozen=True)
class LineFit:
    """One boundary found in one frame: ``y = sum_k coefs[k] x**k`` (ego metres, ``DEGREE + 1`` coefficients)
    and its support."""

    coefs: F64
    support: float
    points: int


def fit_boundary(xs: F64, ys: F64, wts: F64, degree: int, ridge: tuple[float, ...]) -> F64:
    """Weighted least squares of ``y = sum_k c_k x**k`` (``k <= degree``), ridge toward 0 on the normalised
    higher terms (``ridge[k]`` times the total weight), returned as ``DEGREE + 1`` coefficients in metres."""
    u = xs / _X_SCALE
    a = np.stack([u**k for k in range(degree + 1)], axis=1)
    sw = np.sqrt(wts)
    lam = np.sqrt(np.asarray(ridge[: degree + 1], dtype=np.float64) * wts.sum())
    lhs = np.concatenate([a * sw[:, None], np.diag(lam)])
    rhs = np.concatenate([ys * sw, np.zeros(degree + 1)])
    p, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    out = np.zeros(DEGREE + 1)
    out[: degree + 1] = p / _X_SCALE ** np.arange(degree + 1)
    return out


#: Ridge of :func:`track_line`'s fit on the normalised heading, curvature and curvature-change terms (times the total
#: weight, near windows weigh up to 1): weak, so that a 250 m highway curve (AASHTO's minimum radii at 100-110 km/h are
#: 400-600 m, tighter on ramps) is followed rather than flattened; it only steadies fits on few, noisy windows.
TRACK_RIDGE = (0.0, 1e-4, 1e-4, 1e-3)


def track_line(evidence: F32, grid: BevGrid, y_start: float, window_m: float, bands: int,
               min_weight: float, guide: F64 | None = None) -> LineFit | None:
    """Follow one line up the BEV from ``y_start`` with sliding windows and fit a cubic (fewer terms on a short
    or sparse track).

    Args:
        evidence: ``(rows, cols) float32`` paint score on ``grid``.
        y_start: lateral position (metres) to start the search at, near the ego.
        window_m: half-width of each search window (metres).
        bands: number of windows along x.
        min_weight: least evidence sum for a window to count.
        guide: a boundary cubic (e.g. the lane's other boundary, tracked on stronger evidence) whose course the
            search follows at the offset last seen: across the gaps of a dashed line on a curve the window then
            bends with the road instead of running on along the last heading. None: the windows follow the
            line's own heading.

    Returns:
        The fit, or None with fewer than two supported windows.
    """
    rows, _ = evidence.shape
    xs_all, ys_all = grid.xs, grid.ys
    edges = np.linspace(rows, 0, bands + 1).astype(int)
    pts_x: list[float] = []
    pts_y: list[float] = []
    pts_w: list[float] = []
    y_pred, slope = y_start, 0.0
    offset: float | None = None  # y - guide(x) of the line, when guided
    for k in range(bands):
        r1, r0 = edges[k], edges[k + 1]  # rows r0..r1 (far..near); walk from near to far
        xc = float(xs_all[(r0 + r1 - 1) // 2])
        if guide is not None:
            if offset is None:
                offset = y_start - float(poly_eval(guide, xc))
            y_pred = float(poly_eval(guide, xc)) + offset
        lo = int(np.clip(np.floor((grid.y_max - (y_pred + window_m)) / grid.dy), 0, len(ys_all) - 1))
        hi = int(np.clip(np.ceil((grid.y_max - (y_pred - window_m)) / grid.dy), 0, len(ys_all) - 1)) + 1
        block = evidence[r0:r1, lo:hi]
        col_w = block.sum(axis=0, dtype=np.float64)
        tot = float(col_w.sum())
        if tot >= min_weight:
            yc = float((col_w * ys_all[lo:hi]).sum() / tot)
            # the point sits where the evidence is along x too: a dash filling part of the band is not at its
            # centre (on a curve that would read as a lateral error)
            xm = float((block.sum(axis=1, dtype=np.float64) * xs_all[r0:r1]).sum() / tot)
            if pts_x:
                slope = 0.5 * slope + 0.5 * (yc - pts_y[-1]) / max(xm - pts_x[-1], 1e-3)
            pts_x.append(xm)
            pts_y.append(yc)
            pts_w.append(tot)
            y_pred = yc
            if guide is not None:
                offset = yc - float(poly_eval(guide, xm))
        nxt = float(xs_all[(edges[k + 1] + edges[min(k + 2, bands)] - 1) // 2]) if k + 1 < bands else xc
        y_pred += slope * (nxt - xc)
    if len(pts_x) < 2:
        return None
    px, py, pw = np.asarray(pts_x), np.asarray(pts_y), np.asarray(pts_w)
    # near windows weigh more: their lateral position is measured with more pixels per metre
    pw = pw / pw.max() / (1.0 + (px / 20.0) ** 2)
    span = px.max() - px.min()
    degree = DEGREE if len(px) >= 5 and span > 15.0 else (2 if len(px) >= 4 and span > 10.0 else 1)
    ridge = TRACK_RIDGE
    coefs = fit_boundary(px, py, pw, degree, ridge)
    # one pass of outlier rejection
    res = np.abs(py - poly_eval(coefs, px))
    keep = res < max(0.25, 2.5 * float(np.median(res)))
    if keep.sum() >= 2 and not keep.all():
        coefs = fit_boundary(px[keep], py[keep], pw[keep], min(degree, int(keep.sum()) - 1), ridge)
    return LineFit(coefs=coefs, support=float(np.asarray(pts_w).sum()), points=int(keep.sum()))


def column_peaks(evidence: F32, grid: BevGrid, near_rows: int, lo_m: float, hi_m: float) -> list[tuple[float, float]]:
    """Peaks ``(y metres, strength)`` of the evidence summed over the ``near_rows`` nearest BEV rows,
    between ``lo_m`` and ``hi_m``, strongest first."""
    prof = evidence[-near_rows:].sum(axis=0, dtype=np.float64)
    prof = np.convolve(prof, np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0, mode="same")
    ys = grid.ys
    sel = (ys >= lo_m) & (ys <= hi_m)
    peaks: list[tuple[float, float]] = []
    idx = np.flatnonzero(sel)
    for i in idx:
        if 0 < i < len(prof) - 1 and prof[i] > 0 and prof[i] >= prof[i - 1] and prof[i] > prof[i + 1]:
            peaks.append((float(ys[i]), float(prof[i])))
    peaks.sort(key=lambda p: -p[1])
    return peaks
