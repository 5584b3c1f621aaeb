"""Predictor Protocol and its input/output types.

All coordinates are in the ego frame at t0 (x forward, y left, z up, metres). Waypoints are at 10 Hz:
``trajectories[k, i]`` is the ego position at ``t0 + (i + 1) * 0.1`` s for sample ``k``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lanepipe.errors import ConfigError, InputError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
HISTORY_STEPS = 16
FUTURE_STEPS = 64
DT = 0.1
ENTRY_POINT_GROUP = "lanepipe.predictors"


@dataclass(frozen=True)
class CameraView:
    """One camera's frames around t0.

    Attributes:
        name: camera name, e.g. ``camera_front_wide_120fov`` or ``front``.
        frames: ``(T, H, W, 3) uint8`` RGB.
        timestamps: ``(T,) float64`` seconds relative to t0 (≤ 0 for frames before t0).
        camera: a camera model with ``project(points_ego (N, 3)) -> (pixels (N, 2), valid (N,))``.
    """

    name: str
    frames: npt.NDArray[np.uint8]
    timestamps: F64
    camera: Any


@dataclass(frozen=True)
class EgoState:
    """Ego history at t0: ``xyz (16, 3) float32`` and ``rot (16, 3, 3) float32`` in the t0 ego frame, at
    ``t0 - 1.5 … t0`` s in 0.1 s steps (last row = t0 = identity pose), plus current speed in m/s."""

    xyz: F32
    rot: F32
    speed: float

    def __post_init__(self) -> None:
        if self.xyz.shape != (HISTORY_STEPS, 3) or self.rot.shape != (HISTORY_STEPS, 3, 3):
            raise InputError("ego history", f"xyz ({HISTORY_STEPS}, 3) and rot ({HISTORY_STEPS}, 3, 3)",
                             f"{self.xyz.shape} and {self.rot.shape}")
        if not (np.all(np.isfinite(self.xyz)) and np.all(np.isfinite(self.rot)) and np.isfinite(self.speed)):
            raise InputError("ego history", "finite values", "NaN or inf")


@dataclass(frozen=True)
class PredictorInput:
    """Everything a predictor sees for one clip at t0."""

    clip: str
    cameras: dict[str, CameraView]
    ego: EgoState
    front: str = "front"
    t0: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """``trajectories (K, 64, 3) float32`` in the t0 ego frame at 10 Hz, optional reasoning text per sample."""

    trajectories: F32
    reasoning: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.trajectories
        if t.ndim != 3 or t.shape[1:] != (FUTURE_STEPS, 3):
            raise InputError("prediction", f"trajectories (K, {FUTURE_STEPS}, 3)", f"{t.shape}")
        if not np.all(np.isfinite(t)):
            raise InputError("prediction", "finite waypoints", "NaN or inf")


@runtime_checkable
class Predictor(Protocol):
    """A trajectory predictor. Built once per worker; ``predict`` is called per clip."""

    name: str

    def predict(self, inp: PredictorInput) -> Prediction: ...


def load_predictor_class(spec: str) -> type[Any]:
    """Resolve a user predictor: ``package.module:ClassName`` or an entry point in ``lanepipe.predictors``.

    Raises:
        ConfigError: nothing by that name, listing the installed entry points.
    """
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"predict.backend {spec!r}: cannot import {attr} from {mod_name} ({e})") from None
        return cls  # type: ignore[no-any-return]
    eps = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if spec in eps:
        return eps[spec].load()  # type: ignore[no-any-return]
    raise ConfigError(f"predict.backend {spec!r}: not a built-in predictor, not 'module:Class', and no "
                      f"'{ENTRY_POINT_GROUP}' entry point by that name (installed: {', '.join(sorted(eps)) or 'none'})")
