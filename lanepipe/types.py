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
    """

    masks: MaskBool
    backend: str

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
