"""``lane_keep``: the embedded default trajectory predictor (CPU, no weights).

It looks at the paint in the front camera and keeps the lane it sees:

1. **Frames.** The front camera's last ``frames_used`` frames at or before t0 (no older than ``max_frame_age_s``).
2. **Bird's-eye view (BEV).** A ground grid in the **t0 ego frame** (x forward ``near … bev_far_m``, y left
   ``±bev_half_width_m``) is projected into each frame with the view's camera model (``project``), after moving
   the grid into that frame's ego pose (interpolated from the 16-step ego history), so that older frames line
   up with the newest and fill the gaps of dashed lines. Lightness and yellowness are resampled onto it.
3. **Paint.** A horizontal top-hat ``tophat_width_m`` wide on each BEV row keeps thin bright / yellow stripes;
   the score is soft-thresholded against the BEV's own top-hat noise and pooled over the frames.
4. **Boundaries.** A small Hough transform over the near ``seed_range_m`` of the BEV (offset, heading,
   curvature) gives, for each lateral offset, the painted length along its best curve; on each side the peak
   nearest the ego among the strong ones, ``search_min_m … search_max_m`` away, seeds the ego lane's boundary.
   Each seed is followed up the BEV with sliding windows (centroid of paint, so a double line counts by its
   middle), its curve predicting the windows, and fitted with ``y(x) = a + b x + c x²`` (offset, heading, half
   the curvature), weighted towards the near range. Two boundaries are refitted jointly as parallel curves.
5. **Lane centre.** Mean of the two boundaries when both are found and ``min_lane_width_m ≤ width ≤
   max_lane_width_m``; one boundary ∓ ``lane_width_m / 2`` when only one is (or the width is implausible: the
   better supported one is kept); straight ahead when none is. Heading and curvature are bounded
   (``max_heading_rad``, ``max_curvature``). A fallback camera (the view has none) is posed from the lines'
   vanishing point and its height scaled so the measured lane is ``lane_width_m`` wide.
6. **Drive.** A kinematic vehicle starts at the origin heading +x and follows the lane centre (a circle of the
   fitted offset, heading and curvature) with pure pursuit, lookahead ``max(min_lookahead_m, speed ·
   lookahead_s)``, curvature command bounded by ``max_curvature``, at the current speed (``EgoState.speed`` or
   ``speed_mps``) for 6.4 s → ``(1, 64, 3) float32`` waypoints at 10 Hz (z = 0, the t0 ground plane).

On a circle pure pursuit commands exactly the circle's curvature, so a car on the lane centre stays on it; a
lateral offset is removed over about one lookahead distance. Shifting or removing a painted boundary moves
the fitted centre and therefore the path: that is the point of the predictor.

Coordinates: ego frame at t0, x forward, y left, z up, metres (:mod:`lanepipe.predict.base`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lanepipe.errors import InputError
from lanepipe.geometry import road as geo
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.lanes.paint import paint_channels, pose_from_paint, tophat
from lanepipe.types import DT, FUTURE_STEPS, HISTORY_STEPS, CameraView, EgoState, Prediction, PredictorInput

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

#: Standard lane width (12 ft), kept from a single seen boundary.
LANE_WIDTH_M = 3.66
_SUBSTEPS = 5  # integration substeps per 0.1 s waypoint


class LaneKeepConfig(BaseModel):
    """Settings of the ``lane_keep`` predictor (lengths in metres on the ground, angles in radians)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames_used: int = Field(4, ge=1, le=16, description="frames at or before t0 pooled into the BEV")
    max_frame_age_s: float = Field(0.6, gt=0, le=1.5, description="oldest frame used (s before t0)")
    motion_compensation: bool = Field(True, description="align older frames with the ego history")
    work_width: int = Field(960, ge=160, description="frames wider than this are shrunk first")
    bev_far_m: float = Field(45.0, gt=10, le=120, description="farthest ground distance analysed")
    bev_half_width_m: float = Field(6.0, gt=2, le=15, description="BEV extent either side of the ego")
    bev_dx_m: float = Field(0.25, gt=0.02, le=2.0, description="BEV row spacing (forward)")
    bev_dy_m: float = Field(0.05, gt=0.01, le=0.5, description="BEV column spacing (lateral)")
    tophat_width_m: float = Field(0.6, gt=0.1, le=2.0, description="stripes narrower than this count as paint")
    min_contrast: float = Field(8.0, gt=0, description="least lightness top-hat (grey levels) of paint")
    min_yellow: float = Field(6.0, gt=0, description="least yellowness top-hat ((R+G)/2-B units) of paint")
    noise_factor: float = Field(3.0, gt=0, description="paint threshold in multiples of the median top-hat")
    search_min_m: float = Field(0.5, ge=0, description="an ego boundary lies at least this far from the ego")
    search_max_m: float = Field(3.8, gt=0.5, le=8, description="... and at most this far (near range)")
    seed_range_m: float = Field(25.0, gt=5, description="seeds: paint summed over this far from the nearest ground")
    seed_heading_rad: float = Field(0.04, ge=0, le=0.3, description="seeds: headings searched, ± this")
    seed_heading_step: float = Field(0.01, gt=0, description="seeds: heading spacing")
    seed_curvature: float = Field(0.012, ge=0, description="seeds: curvatures searched, ± this (1/m)")
    seed_curvature_step: float = Field(0.0006, gt=0, description="seeds: curvature spacing (1/m)")
    min_seed_m: float = Field(0.8, gt=0, description="least painted length (m) along a seed curve")
    max_start_m: float = Field(12.0, gt=0, description="a boundary must start within this of the nearest ground")
    seed_rel: float = Field(0.3, gt=0, le=1, description="seed: least strength relative to the side's strongest")
    window_m: float = Field(0.45, gt=0.05, le=2, description="half-width of the tracking window")
    band_m: float = Field(3.0, gt=0.25, le=20, description="length of one tracking window along x")
    min_band_m: float = Field(0.5, gt=0, description="least painted length (m) for a window to count")
    min_fit_span_m: float = Field(6.0, gt=0, description="a boundary must be followed at least this far")
    lane_width_m: float = Field(LANE_WIDTH_M, gt=2.0, le=6.0, description="nominal lane width")
    min_lane_width_m: float = Field(2.4, gt=1.0, description="narrowest plausible measured lane")
    max_lane_width_m: float = Field(5.2, gt=2.0, description="widest plausible measured lane")
    max_curvature: float = Field(0.02, gt=0, le=0.5, description="bound on lane and path curvature (1/m)")
    max_heading_rad: float = Field(0.35, gt=0, lt=1.5, description="bound on the lane heading at the ego")
    curvature_shrink: float = Field(1.0, ge=0, description="shrink curvature towards 0 by this many std. errors")
    curvature_ridge: float = Field(1e-4, ge=0, description="ridge on the curvature term (per total weight)")
    lookahead_s: float = Field(1.2, gt=0, le=10, description="pure-pursuit lookahead time")
    min_lookahead_m: float = Field(8.0, gt=0.5, description="shortest pure-pursuit lookahead")
    speed_mps: float | None = Field(None, ge=0, le=80, description="speed to drive; None: EgoState.speed")
    fallback_fov_deg: float = Field(60.0, gt=10, lt=170, description="FOV of the fallback pinhole (no camera)")
    fallback_mount_height_m: float = Field(1.5, gt=0.3, le=5, description="its height above the road")
    fallback_pitch_deg: float = Field(2.0, gt=-30, lt=30, description="its pitch without a vanishing point")
    estimate_pose: bool = Field(True, description="fallback camera: pitch and yaw from the vanishing point")
    calibrate_height: bool = Field(True, description="fallback camera: scale height to the measured lane width")

    @model_validator(mode="after")
    def _check(self) -> LaneKeepConfig:
        if not self.search_min_m < self.search_max_m <= self.bev_half_width_m:
            raise ValueError(f"expected search_min_m < search_max_m <= bev_half_width_m, found "
                             f"{self.search_min_m}, {self.search_max_m}, {self.bev_half_width_m}")
        if not self.min_lane_width_m < self.lane_width_m < self.max_lane_width_m:
            raise ValueError(f"expected min_lane_width_m < lane_width_m < max_lane_width_m, found "
                             f"{self.min_lane_width_m}, {self.lane_width_m}, {self.max_lane_width_m}")
        return self


# ============================================================================================== pure functions
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


@dataclass(frozen=True)
class LaneCentre:
    """The lane centre at the ego: offset (m, + = left), heading (rad, + = to the left), curvature (1/m,
    + = turning left), which boundaries it came from (``both``, ``left``, ``right`` or ``none``) and the
    standard error of the fitted curvature before shrinking (1/m)."""

    offset: float
    heading: float
    curvature: float
    source: Literal["both", "left", "right", "none"]
    curvature_sigma: float = 0.0


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
            py.append(float((col_w * ys[cols]).sum() / col_w.sum()))
            pw.append(tot)
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


def lane_centre(left: Boundary | None, right: Boundary | None, cfg: LaneKeepConfig) -> LaneCentre:
    """Combine the boundaries into the lane centre at the ego (bounded heading and curvature).

    Both boundaries (plausible width): their parallel fit, centred. One: its fit moved ``lane_width_m / 2``
    inwards. None: straight ahead. The curvature ``k`` is shrunk towards 0 by its standard error ``s``,
    ``k · k² / (k² + (curvature_shrink · s)²)``, then clipped to ``±max_curvature``.
    """
    half = cfg.lane_width_m / 2
    if left is not None and right is not None:
        width = float(left.coefs[0] - right.coefs[0])
        if not cfg.min_lane_width_m <= width <= cfg.max_lane_width_m:
            if left.support >= right.support:
                right = None
            else:
                left = None
    source: Literal["both", "left", "right", "none"]
    if left is not None and right is not None:
        fit = fit_parallel([left, right], cfg.curvature_ridge)
        offset, source = 0.5 * (fit.offsets[0] + fit.offsets[1]), "both"
    elif left is not None or right is not None:
        one = left if left is not None else right
        assert one is not None
        fit = fit_parallel([one], cfg.curvature_ridge)
        source = "left" if left is not None else "right"
        offset = fit.offsets[0] + (-half if left is not None else half)
    else:
        return LaneCentre(offset=0.0, heading=0.0, curvature=0.0, source="none")
    b, c = fit.heading, fit.half_curvature
    heading = float(np.clip(math.atan(b), -cfg.max_heading_rad, cfg.max_heading_rad))
    kappa = 2.0 * c / (1.0 + b * b) ** 1.5
    noise = cfg.curvature_shrink * fit.curvature_sigma
    if noise > 0:
        kappa = kappa * kappa**2 / (kappa**2 + noise**2) if math.isfinite(noise) else 0.0
    kappa = float(np.clip(kappa, -cfg.max_curvature, cfg.max_curvature))
    return LaneCentre(offset=offset, heading=heading, curvature=kappa, source=source,
                      curvature_sigma=fit.curvature_sigma)


def _centre_points(c: LaneCentre, u: F64) -> F64:
    """Points ``(N, 2)`` of the lane-centre circle at arc lengths ``u`` from ``(0, offset)``."""
    h, k = c.heading, c.curvature
    if abs(k) < 1e-9:
        return np.stack([u * math.cos(h), c.offset + u * math.sin(h)], axis=1)
    return np.stack([(np.sin(h + k * u) - math.sin(h)) / k, c.offset + (math.cos(h) - np.cos(h + k * u)) / k], axis=1)


def drive_lane(centre: LaneCentre, speed: float, cfg: LaneKeepConfig, steps: int = FUTURE_STEPS) -> F32:
    """Drive the lane centre with pure pursuit from the origin (heading +x) at ``speed`` m/s.

    Returns:
        ``(steps, 3) float32`` positions at ``0.1, 0.2, …`` s in the t0 ego frame (z = 0).
    """
    look = max(cfg.min_lookahead_m, speed * cfg.lookahead_s)
    total = speed * steps * DT
    u = np.arange(-5.0, total + look + 10.0, 0.05)
    pts = _centre_points(centre, u)
    x = y = th = 0.0
    dt = DT / _SUBSTEPS
    out = np.zeros((steps, 3), dtype=np.float32)
    for i in range(steps * _SUBSTEPS):
        j = int(np.argmin((pts[:, 0] - x) ** 2 + (pts[:, 1] - y) ** 2))
        goal = _centre_points(centre, np.array([u[j] + look]))[0]
        dx, dy = goal[0] - x, goal[1] - y
        dist = max(math.hypot(dx, dy), 1e-6)
        alpha = math.atan2(dy, dx) - th
        kappa = float(np.clip(2.0 * math.sin(alpha) / dist, -cfg.max_curvature, cfg.max_curvature))
        th_new = th + speed * kappa * dt
        if abs(kappa) > 1e-9:
            x += (math.sin(th_new) - math.sin(th)) / kappa
            y += (math.cos(th) - math.cos(th_new)) / kappa
        else:
            x += speed * dt * math.cos(th)
            y += speed * dt * math.sin(th)
        th = th_new
        if (i + 1) % _SUBSTEPS == 0:
            out[(i + 1) // _SUBSTEPS - 1, :2] = (x, y)
    return out


# ============================================================================================== predictor
def _history_pose(ego: EgoState, t: float) -> tuple[float, float, float]:
    """Ego ``x, y, yaw`` at time ``t`` (s relative to t0, in ``[-1.5, 0]``) in the t0 frame."""
    times = DT * (np.arange(HISTORY_STEPS) - (HISTORY_STEPS - 1))
    yaw = np.unwrap(np.arctan2(ego.rot[:, 1, 0].astype(np.float64), ego.rot[:, 0, 0].astype(np.float64)))
    return (float(np.interp(t, times, ego.xyz[:, 0])), float(np.interp(t, times, ego.xyz[:, 1])),
            float(np.interp(t, times, yaw)))


class LaneKeepPredictor:
    """Lane-keeping planner on the front camera's paint (see the module docstring).

    Args:
        cfg: settings (defaults when None).
    """

    name = "lane_keep"
    config_class: ClassVar[type[LaneKeepConfig]] = LaneKeepConfig

    def __init__(self, cfg: LaneKeepConfig | None = None) -> None:
        self.cfg = cfg or LaneKeepConfig()

    # ------------------------------------------------------------------------------------------ inputs
    def _check_inputs(self, inp: PredictorInput) -> tuple[CameraView, npt.NDArray[np.intp]]:
        if inp.front not in inp.cameras:
            raise InputError(f"clip {inp.clip}", f"a front camera named {inp.front!r} (PredictorInput.front)",
                             f"cameras {sorted(inp.cameras) or 'none'}", "pass the front camera's frames")
        view = inp.cameras[inp.front]
        f = view.frames
        if not isinstance(f, np.ndarray) or f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or not len(f):
            raise InputError(f"clip {inp.clip} camera {view.name}", "frames (T, H, W, 3) uint8 with T >= 1",
                             f"{getattr(f, 'shape', type(f))} {getattr(f, 'dtype', '')}")
        ts = np.asarray(view.timestamps, dtype=np.float64)
        if ts.shape != (len(f),) or not np.all(np.isfinite(ts)):
            raise InputError(f"clip {inp.clip} camera {view.name}", f"{len(f)} finite timestamps (s from t0)",
                             f"shape {ts.shape}" if ts.shape != (len(f),) else "NaN or inf")
        ego = inp.ego
        if not isinstance(ego, EgoState):
            raise InputError(f"clip {inp.clip}", "an EgoState", type(ego).__name__)
        if not (np.all(np.isfinite(ego.xyz)) and np.all(np.isfinite(ego.rot)) and math.isfinite(ego.speed)):
            raise InputError(f"clip {inp.clip} ego history", "finite values", "NaN or inf")
        if ego.speed < 0:
            raise InputError(f"clip {inp.clip} ego speed", "a speed >= 0 m/s", f"{ego.speed}")
        recent = np.flatnonzero((ts <= 1e-6) & (ts >= -self.cfg.max_frame_age_s - 1e-6))
        if len(recent) == 0:
            raise InputError(f"clip {inp.clip} camera {view.name}",
                             f"a frame within {self.cfg.max_frame_age_s} s before t0 (timestamps ≤ 0)",
                             f"timestamps {ts.min():.3f}…{ts.max():.3f} s")
        order = recent[np.argsort(ts[recent])][-self.cfg.frames_used:]
        return view, order

    def _camera(self, view: CameraView, use: npt.NDArray[np.intp], diag: dict[str, Any]) -> tuple[Any, bool]:
        """The camera model for the view's frame size, and whether it is the fallback pinhole."""
        h, w = view.frames.shape[1:3]
        cam = view.camera
        if isinstance(cam, dict):
            if cam.get("model", "pinhole") != "pinhole":
                raise InputError(f"camera {view.name}", "a pinhole camera dict or a model with project()",
                                 f"model {cam.get('model')!r}")
            cam = PinholeCamera.from_dict(cam)
        if isinstance(cam, PinholeCamera):
            if abs(cam.width / cam.height - w / h) > 0.01:
                raise InputError(f"camera {view.name}", f"a camera for {w}x{h} frames (or the same aspect ratio)",
                                 f"a camera for {cam.width}x{cam.height}")
            diag["camera_source"] = "camera view"
            return (cam.rescaled(w, h) if (cam.width, cam.height) != (w, h) else cam), False
        if cam is not None:
            if not callable(getattr(cam, "project", None)):
                raise InputError(f"camera {view.name}", "a camera model with project(points_ego)", type(cam).__name__)
            diag["camera_source"] = f"camera view ({type(cam).__name__})"
            return cam, False
        cfg = self.cfg
        fb = PinholeCamera.from_fov(w, h, cfg.fallback_fov_deg, cfg.fallback_mount_height_m, cfg.fallback_pitch_deg)
        diag["camera_source"] = f"fallback pinhole (fov {cfg.fallback_fov_deg} deg)"
        if cfg.estimate_pose:
            fb = self._pose_from_vanishing_point(fb, view, use, diag)
        return fb, True

    def _pose_from_vanishing_point(self, cam: PinholeCamera, view: CameraView, use: npt.NDArray[np.intp],
                                   diag: dict[str, Any]) -> PinholeCamera:
        h, w = view.frames.shape[1:3]
        ww = min(w, 640)
        hw = max(8, round(h * ww / w))
        idx = np.unique(np.concatenate([np.linspace(0, len(view.frames) - 1, min(8, len(view.frames))).astype(int),
                                        use]))
        chans = (paint_channels(np.asarray(cv2.resize(view.frames[t], (ww, hw), interpolation=cv2.INTER_AREA),
                                           dtype=np.uint8)) for t in idx.tolist())
        found = pose_from_paint(cam.rescaled(ww, hw), chans, 18.0, 6.0, hood_frac=0.92)
        diag["vanishing_point_frames"] = found.frames
        diag["pose_source"] = found.source
        if found.pitch_rad is None or found.yaw_rad is None:
            return cam
        return geo.with_pose(cam, pitch_rad=found.pitch_rad, yaw_rad=found.yaw_rad)

    # ------------------------------------------------------------------------------------------ BEV
    def _near_range(self, cam: Any) -> float:
        """Nearest forward distance (m) whose ground point straight ahead is in the image (at least 1 m)."""
        xs = np.arange(0.5, 40.0, 0.25)
        pix, ok = cam.project(np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], axis=1))
        h = int(getattr(cam, "height", 0)) or None
        inside = ok & np.isfinite(pix[:, 1])
        if h is not None:
            inside &= pix[:, 1] <= h - 1
        return max(1.0, float(xs[np.flatnonzero(inside)[0]])) if inside.any() else 3.0

    def _pooled_score(self, view: CameraView, use: npt.NDArray[np.intp], cam: Any, ego: EgoState,
                      xs: F64, ys: F64) -> F32:
        cfg = self.cfg
        h, w = view.frames.shape[1:3]
        ww = min(w, cfg.work_width)
        hw = max(8, round(h * ww / w))
        s = ww / w
        gx, gy = np.meshgrid(xs, ys, indexing="ij")  # (R, C)
        acc = np.zeros(gx.shape, dtype=np.float32)
        for t in use.tolist():
            tf = float(view.timestamps[t])
            px, py, yaw = _history_pose(ego, max(tf, -DT * (HISTORY_STEPS - 1))) if cfg.motion_compensation \
                else (0.0, 0.0, 0.0)
            c, sn = math.cos(yaw), math.sin(yaw)
            dx, dy = gx - px, gy - py
            pts = np.stack([c * dx + sn * dy, -sn * dx + c * dy, np.zeros_like(dx)], axis=-1).reshape(-1, 3)
            pix, ok = cam.project(pts)
            mu = np.where(ok, (pix[:, 0] + 0.5) * s - 0.5, -1e4).reshape(gx.shape).astype(np.float32)
            mv = np.where(ok, (pix[:, 1] + 0.5) * s - 0.5, -1e4).reshape(gx.shape).astype(np.float32)
            frame = view.frames[t] if ww == w else np.asarray(
                cv2.resize(view.frames[t], (ww, hw), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            chans = paint_channels(frame, "float32")
            bev = cv2.remap(chans, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            valid = (mu >= 0) & (mu <= ww - 1) & (mv >= 0) & (mv <= hw - 1)
            acc += paint_score(np.asarray(bev, dtype=np.float32), valid, cfg)
        out: F32 = (acc / len(use)).astype(np.float32)
        return out

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, inp: PredictorInput) -> Prediction:
        """Predict the ego's next 6.4 s by keeping the lane seen in the front camera.

        Args:
            inp: the front camera (``inp.cameras[inp.front]``: ``(T, H, W, 3) uint8`` frames, timestamps in s
                relative to t0, a camera model with ``project`` or None for the fallback pinhole) and the ego
                history (speed from ``EgoState.speed`` unless ``speed_mps`` is set).

        Returns:
            :class:`Prediction` with ``trajectories (1, 64, 3) float32`` in the t0 ego frame, one reasoning line,
            and ``meta`` holding the boundaries, the lane centre, the camera source and the speed used.

        Raises:
            InputError: no front camera, malformed frames or timestamps, no frame within ``max_frame_age_s``
                before t0, a non-finite ego history, a negative speed, a camera of another aspect ratio.
        """
        cfg = self.cfg
        view, use = self._check_inputs(inp)
        diag: dict[str, Any] = {"backend": self.name, "frames_used": len(use),
                                "frame_times_s": [round(float(view.timestamps[i]), 3) for i in use]}
        cam, fallback = self._camera(view, use, diag)
        xs, ys = bev_grid(self._near_range(cam), cfg)
        score = self._pooled_score(view, use, cam, inp.ego, xs, ys)
        bounds = find_boundaries(score, xs, ys, cfg)
        left, right = bounds["left"], bounds["right"]
        if fallback and cfg.calibrate_height and left is not None and right is not None:
            width = float(left.coefs[0] - right.coefs[0])
            if 0.5 * cfg.min_lane_width_m <= width <= 2.0 * cfg.max_lane_width_m:
                k = float(np.clip(cfg.lane_width_m / width, 0.5, 2.0))
                left, right = left.scaled(k), right.scaled(k)
                diag["height_calibration_scale"] = round(k, 4)
        centre = lane_centre(left, right, cfg)
        speed = float(cfg.speed_mps if cfg.speed_mps is not None else inp.ego.speed)
        traj = drive_lane(centre, speed, cfg)
        for side, b in (("left", left), ("right", right)):
            diag[side] = None if b is None else {
                "offset_m": round(float(b.coefs[0]), 3), "heading": round(float(b.coefs[1]), 5),
                "curvature": round(float(2 * b.coefs[2]), 6), "support_m": round(b.support, 1),
                "x_range_m": [round(v, 1) for v in b.x_range]}
        diag["centre"] = {"offset_m": round(centre.offset, 3), "heading_rad": round(centre.heading, 5),
                          "curvature": round(centre.curvature, 6), "source": centre.source,
                          "curvature_sigma": round(centre.curvature_sigma, 6)
                          if math.isfinite(centre.curvature_sigma) else None}
        diag["speed_mps"] = round(speed, 3)
        what = {"both": "both boundaries", "left": "the left boundary only (nominal width)",
                "right": "the right boundary only (nominal width)", "none": "no boundary: keeping straight"}
        text = (f"lane_keep: {what[centre.source]}; lane centre {centre.offset:+.2f} m, heading "
                f"{math.degrees(centre.heading):+.1f} deg, curvature {centre.curvature:+.4f} 1/m; "
                f"{speed:.1f} m/s for {FUTURE_STEPS * DT:.1f} s")
        return Prediction(trajectories=traj[None], reasoning=[text], meta=diag)
