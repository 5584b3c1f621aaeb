"""Steps 5-6 of ``lane_keep``: the lane centre from its boundaries, and pure pursuit along it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lanepipe.predict.lane_keep.boundaries import Boundary, fit_parallel
from lanepipe.predict.lane_keep.config import LaneKeepConfig
from lanepipe.types import DT, FUTURE_STEPS

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


_SUBSTEPS = 5  # integration substeps per 0.1 s waypoint


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
