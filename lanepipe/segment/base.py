"""Segmentation backend Protocol and the 9-point prompt grid."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lanepipe.types import Clip, RoadMasks

#: Positive prompt points ``(x, y)`` normalised to [0, 1] of width and height (DESIGN.md §1):
#: a grid over the road just ahead of the ego vehicle, bottom-centre of a front camera image.
GRID_POINTS: tuple[tuple[float, float], ...] = (
    (0.5, 0.85), (0.4, 0.75), (0.6, 0.75),
    (0.3, 0.70), (0.7, 0.70), (0.5, 0.65),
    (0.35, 0.80), (0.65, 0.80), (0.5, 0.75),
)


def grid_points_px(width: int, height: int) -> npt.NDArray[np.float32]:
    """The 9 prompt points in pixels, ``(9, 2) float32`` as (x, y) image coordinates."""
    pts = np.asarray(GRID_POINTS, dtype=np.float32)
    return pts * np.asarray([width - 1, height - 1], dtype=np.float32)


@runtime_checkable
class Segmenter(Protocol):
    """A road segmentation backend. Built once per worker; ``segment`` is called per clip."""

    name: str

    def segment(self, clip: Clip) -> RoadMasks:
        """Road mask for every frame of ``clip``: ``(T, H, W) bool`` matching ``clip.frames``."""
        ...
