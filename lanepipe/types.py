"""Frozen data types passed between stages.

Shapes use one notation throughout: ``(T, H, W, 3) uint8`` RGB frames, ``(T, H, W) bool`` masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

FramesU8 = npt.NDArray[np.uint8]
MaskBool = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
HISTORY_STEPS = 16
FUTURE_STEPS = 64
DT = 0.1
# Predictor I/O: ego frame at t0 (x forward, y left, z up, metres); waypoints at 10 Hz,
# ``trajectories[k, i]`` = ego position at ``t0 + (i + 1) * DT`` s for sample ``k``.


@dataclass(frozen=True)
class Clip:
    """A decoded video clip.

    Attributes:
        name: clip id, safe for use as a folder name.
        source: where it came from (path or URL).
        frames: ``(T, H, W, 3) uint8`` RGB frames.
        fps: frame rate of ``frames`` (after resampling).
        timestamps: ``(T,) float64`` seconds from the clip's first decoded frame.
        source_fps: frame rate of the source file.
        source_indices: ``(T,) int64`` index in the source video of each kept frame.
        meta: free-form extras (e.g. camera model of a synthetic clip).
    """

    name: str
    source: str
    frames: FramesU8
    fps: float
    timestamps: FloatArray
    source_fps: float
    source_indices: npt.NDArray[np.int64]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise InputError(self.source, "frames of shape (T, H, W, 3) uint8", f"{f.shape} {f.dtype}")
        if len(self.timestamps) != f.shape[0] or len(self.source_indices) != f.shape[0]:
            raise InputError(
                self.source,
                f"{f.shape[0]} timestamps and source indices (one per frame)",
                f"{len(self.timestamps)} timestamps, {len(self.source_indices)} indices",
            )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


@dataclass(frozen=True)
class RoadMasks:
    """Per-frame road region to edit.

    Attributes:
        masks: ``(T, H, W) bool``, True = road (region lane markings may be painted in).
        backend: name of the segmentation backend that made them.
        hood_top: ``(W,) int32`` first row of the ego vehicle's hood in each column (``H`` where a column shows
            none; :mod:`lanepipe.segment.hood`), already cut from ``masks``; None when no hood was found.
    """

    masks: MaskBool
    backend: str
    hood_top: npt.NDArray[np.int32] | None = None

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or self.masks.dtype != np.bool_:
            raise InputError(
                f"masks from {self.backend}", "(T, H, W) bool", f"{self.masks.shape} {self.masks.dtype}"
            )

    def check_matches(self, clip: Clip) -> None:
        """Raise InputError unless the masks have the clip's frame count and size."""
        if self.masks.shape != clip.frames.shape[:3]:
            raise InputError(
                clip.source,
                f"road masks of shape {clip.frames.shape[:3]} (T, H, W) to match the clip",
                f"{self.masks.shape}",
            )


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
