"""Steps 2-4 of ``lane_keep``: BEV axes, paint score, boundary seeds, tracking and the parallel fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.lanes.paint import tophat
from lanepipe.predict.lane_keep.config import LaneKeepConfig

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Boundary:
    """One lane boundary on the ground: ``y(x) = a + b x + c x²`` (t0 ego metres).

    Attributes:
        coefs: ``(3,) float64`` ``(a, b, c)``: offset (m, + = left), heading (slope), half the curvature (1/m).
        support: painted length (m) the fit rests on.
        x_range: ``(near, far)`` forward distances (m) of the windows used.
        points: ``(N, 3) float64`` the windows' ``x, y`` (m) and painted length (m) the fit used.
    """

    coefs: F64
    support: float
    x_range: tuple[float, float]
    points: F64

    def scaled(self, k: float) -> Boundary:
        """The same boundary with all ground lengths multiplied by ``k`` (a camera height rescaled by ``k``)."""
        return Boundary(coefs=self.coefs * np.array([k, 1.0, 1.0 / k]), support=self.support * k,
                        x_range=(self.x_range[0] * k, self.x_range[1] * k), points=self.points * k)


def bev_grid(near_m: float, cfg: LaneKeepConfig) -> tuple[F64, F64]:
    """BEV axes: ``xs (R,)`` forward distances (ascending, near first) and ``ys (C,)`` lateral (ascending)."""
    xs = np.arange(near_m, cfg.bev_far_m + 1e-9, cfg.bev_dx_m)
    ys = np.arange(-cfg.bev_half_width_m, cfg.bev_half_width_m + 1e-9, cfg.bev_dy_m)
    return xs, ys


def paint_score(bev: F32, valid: npt.NDArray[np.bool_], cfg: LaneKeepConfig) -> F32:
    """Soft paint score ``(R, C) float32`` in [0, 1] of one BEV ``(R, C, 2)`` (lightness, yellowness).

    Horizontal top-hats ``tophat_width_m`` wide; each channel's threshold is ``max(min_*, noise_factor · median
    top-hat over valid cells)``; the score rises from 0 at the threshold to 1 at twice it. Cells within the
    kernel of the BEV's invalid area (outside the image) score 0.
    """
    k = max(3, round(cfg.tophat_width_m / cfg.bev_dy_m) | 1)
    inner = cv2.erode(valid.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (k, 3))) > 0
    out = np.zeros(bev.shape[:2], dtype=np.float32)
    if not inner.any():
        return out
    for ch, floor in ((0, cfg.min_contrast), (1, cfg.min_yellow)):
        img = np.where(valid, bev[..., ch], np.float32(np.median(bev[..., ch][valid])))
        th = tophat(img.astype(np.float32), (k, 1))
        thr = max(floor, cfg.noise_factor * float(np.median(th[inner])))
        out = np.maximum(out, np.clip((th - thr) / thr, 0.0, 1.0))
    out[~inner] = 0.0
    return out


def seed_profile(score: F32, xs: F64, ys: F64, cfg: LaneKeepConfig) -> tuple[F64, F64, F64]:
    """Painted length along the best curve through each lateral offset: a small Hough transform.

    For every hypothesis ``y = y0 + b x + c x²`` with ``b`` in ``±seed_heading_rad`` and ``2 c`` in
    ``±seed_curvature`` (grid steps from the config), the score is summed along the curve over the BEV rows
    within ``seed_range_m`` of the nearest ground (columns first blurred over about ±0.1 m).

    Returns:
        ``(P, b, c)``, each ``(C,) float64``: for each ``y0 = ys[j]``, the best hypothesis' painted length (m)
        and its ``b`` and ``c``.
    """
    rows = np.flatnonzero(xs <= xs[0] + cfg.seed_range_m)
    sig = max(0.5, 0.06 / cfg.bev_dy_m)
    gain = np.float32(cfg.bev_dx_m * cfg.bev_dy_m / 0.15 * sig * math.sqrt(2 * math.pi) / 3.0)
    blur = gain * np.asarray(cv2.GaussianBlur(score[rows].astype(np.float32), (2 * math.ceil(3 * sig) + 1, 1),
                                              sigmaX=sig), dtype=np.float32)
    x = xs[rows]
    n_b = math.floor(cfg.seed_heading_rad / cfg.seed_heading_step + 1e-9)
    n_k = math.floor(cfg.seed_curvature / cfg.seed_curvature_step + 1e-9)
    heads = cfg.seed_heading_step * np.arange(-n_b, n_b + 1)
    halfc = 0.5 * cfg.seed_curvature_step * np.arange(-n_k, n_k + 1)
    hb, hc = (v.ravel() for v in np.meshgrid(heads, halfc, indexing="ij"))
    n_cols = len(ys)
    shift = np.rint((hb[:, None] * x[None, :] + hc[:, None] * x[None, :] ** 2) / cfg.bev_dy_m).astype(np.intp)
    pad = int(np.abs(shift).max()) + 1
    padded = np.zeros((len(rows), n_cols + 2 * pad), dtype=np.float32)
    padded[:, pad: pad + n_cols] = blur
    cols = np.arange(n_cols)
    r_idx = np.arange(len(rows))[:, None]
    best = np.full(n_cols, -1.0)
    arg = np.zeros(n_cols, dtype=np.intp)
    for h in range(len(hb)):
        prof = padded[r_idx, cols[None, :] + shift[h][:, None] + pad].sum(axis=0, dtype=np.float64)
        better = prof > best
        best[better] = prof[better]
        arg[better] = h
    return best, hb[arg], hc[arg]


def _seed(profile: F64, ys: F64, lo: float, hi: float, min_strength: float, rel: float) -> int | None:
    """Column of the peak nearest the ego among the strong peaks of ``profile`` with ``ys`` in ``[lo, hi]``.

    A peak's strength is its prominence over the lowest profile value within ±0.75 m (textured pavement, e.g.
    concrete, raises the whole profile); a strong peak has ``>= min_strength`` and ``>= rel`` times the side's
    most prominent one.
    """
    dy = float(ys[1] - ys[0])
    w = max(1, round(0.75 / dy))
    floor = cv2.erode(profile.astype(np.float32)[None, :], np.ones((1, 2 * w + 1), np.uint8),
                      borderType=cv2.BORDER_REPLICATE)[0].astype(np.float64)
    above = profile - floor
    sel = np.flatnonzero((ys >= lo) & (ys <= hi))
    peaks = [int(i) for i in sel if 0 < i < len(profile) - 1 and profile[i] >= profile[i - 1]
             and profile[i] > profile[i + 1] and above[i] >= min_strength]
    if not peaks:
        return None
    top = max(above[i] for i in peaks)
    return min((i for i in peaks if above[i] >= rel * top), key=lambda i: abs(ys[i]))


def _fit_quadratic(x: F64, y: F64, w: F64, ridge: float) -> F64:
    """Weighted least squares ``y = a + b x + c x²`` (degree by span and count), ridge on ``c`` (scaled x)."""
    span = float(x.max() - x.min())
    deg = 2 if len(x) >= 4 and span >= 12.0 else (1 if len(x) >= 2 and span > 1e-6 else 0)
    u = x / 30.0
    a = np.stack([u**k for k in range(deg + 1)], axis=1)
    sw = np.sqrt(w)
    lam = np.zeros(deg + 1)
    if deg == 2:
        lam[2] = math.sqrt(ridge * float(w.sum()))
    lhs = np.concatenate([a * sw[:, None], np.diag(lam)])
    rhs = np.concatenate([y * sw, np.zeros(deg + 1)])
    p, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    out = np.zeros(3)
    out[: deg + 1] = p / 30.0 ** np.arange(deg + 1)
    return out


def _line_position(weight: F64, y: F64, sigma: float, stroke_m: float = 0.15, steps: int = 10) -> float:
    """A window's line position from its column weights ``weight`` at lateral positions ``y`` (ascending, even
    spacing): the peak of the weight summed over one stroke width (``stroke_m``; MUTCD 2009 §3A.05: a normal
    line is 4 to 6 in, 0.10-0.15 m, wide), refined by a mean shift with a Gaussian kernel of ``sigma`` (the
    two strokes of a double about 0.2 m apart, centre to centre, end up at their middle). Clutter or a brighter
    stroke edge at the window's sides (a kerb, a seam, a light concrete shoulder next to recoloured paint) pulls
    it far less than the plain centroid of the whole window did."""
    dy = float(y[1] - y[0]) if len(y) > 1 else 1.0
    k = max(1, round(0.5 * stroke_m / dy))
    m = float(y[int(np.argmax(np.convolve(weight, np.ones(2 * k + 1), mode="same")))])
    for _ in range(steps):
        kw = weight * np.exp(-0.5 * ((y - m) / sigma) ** 2)
        tot = float(kw.sum())
        if tot <= 0:
            break
        new = float((kw * y).sum() / tot)
        if abs(new - m) < 1e-4:
            return new
        m = new
    return m


def track_boundary(score: F32, xs: F64, ys: F64, y_seed: float, cfg: LaneKeepConfig,
                   shape: tuple[float, float] = (0.0, 0.0)) -> Boundary | None:
    """Follow one boundary from ``y_seed`` up the BEV and fit ``y = a + b x + c x²``.

    Args:
        score: ``(R, C) float32`` pooled paint score on the grid ``xs (R,)`` (ascending), ``ys (C,)`` (ascending).
        y_seed: lateral position (m) of the line at ``x = 0`` (extrapolated).
        shape: ``(b, c)`` expected heading and half-curvature (e.g. from the other boundary), used to predict the
            windows until the line's own fit takes over.

    Returns:
        The fit, or None when the windows that saw paint span less than ``min_fit_span_m``.
    """
    band_rows = max(1, round(cfg.band_m / cfg.bev_dx_m))
    unit = cfg.bev_dx_m * cfg.bev_dy_m / 0.15  # score sum → painted length (m) of a 0.15 m line
    px: list[float] = []
    py: list[float] = []
    pw: list[float] = []
    prior = np.array([y_seed, shape[0], shape[1]])
    coefs = prior
    for r0 in range(0, len(xs), band_rows):
        r1 = min(len(xs), r0 + band_rows)
        xc = float(xs[r0:r1].mean())
        y_pred = float(coefs[0] + coefs[1] * xc + coefs[2] * xc * xc)
        if not (ys[0] <= y_pred - cfg.window_m and y_pred + cfg.window_m <= ys[-1]):
            break  # the window leaves the BEV: a cut window would pull the centroid inwards
        cols = np.flatnonzero(np.abs(ys - y_pred) <= cfg.window_m)
        col_w = score[r0:r1, cols].sum(axis=0, dtype=np.float64)
        tot = float(col_w.sum()) * unit
        if tot >= cfg.min_band_m:
            px.append(xc)
            py.append(_line_position(col_w, ys[cols], cfg.position_sigma_m))
            pw.append(min(tot, cfg.band_m))  # a wider or brighter stroke is not more line
            x_arr = np.asarray(px)
            if len(px) >= 3 and x_arr[-1] - x_arr[0] >= 6.0:
                coefs = _fit_quadratic(x_arr, np.asarray(py), np.asarray(pw) / (1.0 + (x_arr / 20.0) ** 2),
                                       cfg.curvature_ridge)
            else:  # too little of the line yet: keep the expected shape through its points
                coefs = prior.copy()
                coefs[0] = float(np.mean(np.asarray(py) - prior[1] * x_arr - prior[2] * x_arr**2))
    if len(px) < 2 or px[-1] - px[0] < cfg.min_fit_span_m:
        return None
    x, y, w = np.asarray(px), np.asarray(py), np.asarray(pw)
    w_fit = w / (1.0 + (x / 20.0) ** 2)
    coefs = _fit_quadratic(x, y, w_fit, cfg.curvature_ridge)
    res = np.abs(y - (coefs[0] + coefs[1] * x + coefs[2] * x * x))
    keep = res < max(0.2, 3.0 * float(np.median(res)))
    if 2 <= keep.sum() < len(x) and x[keep].max() - x[keep].min() >= cfg.min_fit_span_m:
        coefs = _fit_quadratic(x[keep], y[keep], w_fit[keep], cfg.curvature_ridge)
        x, y, w = x[keep], y[keep], w[keep]
    return Boundary(coefs=coefs, support=float(w.sum()), x_range=(float(x.min()), float(x.max())),
                    points=np.stack([x, y, w], axis=1))


def find_boundaries(score: F32, xs: F64, ys: F64, cfg: LaneKeepConfig) -> dict[str, Boundary | None]:
    """The ego lane's ``left`` and ``right`` boundaries in a pooled BEV paint score (see the module docstring).

    Seeds come from :func:`seed_profile` (the curve through each lateral offset with the most paint): on each
    side the nearest of the strong peaks (``≥ seed_rel`` of the side's strongest, ``≥ min_seed_m``), tracked
    with its curve as the prior shape. A track must start within ``max_start_m`` of the nearest visible
    ground. Then the side with less support is tracked again from the same seed with the better side's shape;
    that result replaces the first when it has more support.
    """
    prof, heads, halfc = seed_profile(score, xs, ys, cfg)
    ranges = {"left": (cfg.search_min_m, cfg.search_max_m), "right": (-cfg.search_max_m, -cfg.search_min_m)}
    seeds: dict[str, int | None] = {}
    out: dict[str, Boundary | None] = {}

    def track(side: str, j: int, shape: tuple[float, float]) -> Boundary | None:
        lo, hi = ranges[side]
        b = track_boundary(score, xs, ys, float(ys[j]), cfg, shape)
        if b is None or not (lo - 0.5 <= b.coefs[0] <= hi + 0.5) or b.x_range[0] > xs[0] + cfg.max_start_m:
            return None
        return b

    for side, (lo, hi) in ranges.items():
        j = seeds[side] = _seed(prof, ys, lo, hi, cfg.min_seed_m, cfg.seed_rel)
        out[side] = None if j is None else track(side, j, (float(heads[j]), float(halfc[j])))
    found = [b for b in out.values() if b is not None]
    if found:
        ref = max(found, key=lambda b: b.support)
        other = "right" if ref is out["left"] else "left"
        j = seeds[other]
        again = None if j is None else track(other, j, (float(ref.coefs[1]), float(ref.coefs[2])))
        first = out[other]
        if again is not None and (first is None or again.support > first.support):
            out[other] = again
    return out


@dataclass(frozen=True)
class ParallelFit:
    """Boundaries fitted as parallel curves ``y = a_i + b x + c x²`` (t0 ego metres).

    Attributes:
        offsets: ``a_i`` per boundary (m); heading: ``b``; half_curvature: ``c`` (1/m);
        curvature_sigma: standard error of ``2 c`` from the weighted residuals (1/m; inf with no dof left).
    """

    offsets: tuple[float, ...]
    heading: float
    half_curvature: float
    curvature_sigma: float


def fit_parallel(bounds: list[Boundary], ridge: float) -> ParallelFit:
    """Joint weighted least squares of one or more parallel boundaries (one offset each, shared shape).

    The windows keep their painted-length weights (and the near-range emphasis of :func:`track_boundary`),
    so a solid line shapes the curve more than a dashed one. The curvature term is dropped (0, sigma inf)
    when the points span less than 12 m or number fewer than 5.
    """
    n_b = len(bounds)
    rows, rhs, wts = [], [], []
    for i, bd in enumerate(bounds):
        p = bd.points
        u = p[:, 0] / 30.0
        ind = np.zeros((len(p), n_b))
        ind[:, i] = 1.0
        rows.append(np.column_stack([ind, u, u * u]))
        rhs.append(p[:, 1])
        wts.append(p[:, 2] / (1.0 + (p[:, 0] / 20.0) ** 2))
    a = np.concatenate(rows)
    w = np.concatenate(wts)
    w = w / w.mean()
    y = np.concatenate(rhs)
    span = max(float(bd.points[:, 0].max() - bd.points[:, 0].min()) for bd in bounds)
    keep_c = len(y) >= 5 and span >= 12.0
    n_p = n_b + (2 if keep_c else 1)
    a = a[:, :n_p]
    lam = np.zeros((n_p, n_p))
    if keep_c:
        lam[-1, -1] = math.sqrt(ridge * float(w.sum()))
    sw = np.sqrt(w)
    sol, *_ = np.linalg.lstsq(np.concatenate([a * sw[:, None], lam]), np.concatenate([y * sw, np.zeros(n_p)]),
                              rcond=None)
    sigma = math.inf
    if keep_c and len(y) > n_p:
        res = y - a @ sol
        s2 = float((w * res**2).sum()) / (len(y) - n_p)
        cov = s2 * np.linalg.pinv(a.T @ (a * w[:, None]) + lam.T @ lam)
        sigma = 2.0 * math.sqrt(max(float(cov[-1, -1]), 0.0)) / 900.0
    c = float(sol[n_b + 1]) / 900.0 if keep_c else 0.0
    return ParallelFit(offsets=tuple(float(v) for v in sol[:n_b]), heading=float(sol[n_b]) / 30.0,
                       half_curvature=c, curvature_sigma=sigma)
