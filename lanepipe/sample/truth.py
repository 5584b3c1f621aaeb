"""Ground-truth types of the sample: :class:`LaneLine` (one painted line in one frame) and :class:`SampleClip`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.geometry.camera import PinholeCamera
from lanepipe.sample.road import Color, Pattern, Side
from lanepipe.types import Clip

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Floats = npt.NDArray[np.floating[Any]]  # float32 or float64
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]



@dataclass(frozen=True)
class LaneLine:
    """One painted longitudinal line (or double line) in one frame.

    Attributes:
        id: stable id across frames (see ``LAYOUT``).
        side: ``"left"`` / ``"right"`` boundary of the ego lane, or ``"edge"`` (an edge line of the road).
        color: ``"white"`` or ``"yellow"``.
        pattern: ``"solid"`` or ``"dashed"``.
        count: 1 for a single line, 2 for a double line (``points`` then follow the middle of the pair).
        points: ``(N, 2) float64`` ``(u, v)`` image pixels of the line's centre curve, ordered near to far,
            only points that project inside the image; not cut where the car occludes the line.
        offset_m: lateral offset of the line centre from the road reference line (metres, + = left).
    """

    id: int
    side: Side
    color: Color
    pattern: Pattern
    count: int
    points: FloatArray
    offset_m: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; points rounded to 0.01 px."""
        return {"id": self.id, "side": self.side, "color": self.color, "pattern": self.pattern,
                "count": self.count, "offset_m": self.offset_m,
                "points": np.round(self.points, 2).tolist()}


@dataclass(frozen=True)
class SampleClip:
    """The rendered sample and its ground truth.

    Attributes:
        frames: ``(T, H, W, 3) uint8`` RGB frames.
        road_masks: ``(T, H, W) bool``, True = visible paved road (markings included; car and shoulder not).
        vehicle_masks: ``(T, H, W) bool``, True = pixels of the car ahead.
        lanes: per frame, the visible lane lines (``LaneLine``, ordered by ``id``).
        ego: ``(T, 4) float64`` ego pose per frame in the world frame: ``x, y`` (m), ``yaw`` (rad), ``speed``
            (m/s). The ego origin is on the ground under the camera.
        camera: the camera, fixed to the ego vehicle.
        fps: frame rate.
        vehicle: ``(T, 3) float64`` pose of the car ahead in the world frame: centre ``x, y`` (m), ``yaw``.
    """

    frames: npt.NDArray[np.uint8]
    road_masks: BoolArray
    vehicle_masks: BoolArray
    lanes: list[list[LaneLine]]
    ego: FloatArray
    camera: PinholeCamera
    fps: float
    vehicle: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def to_clip(self, name: str = "sample") -> Clip:
        """The frames as a :class:`~lanepipe.types.Clip` (camera dict in ``meta["camera"]``)."""
        t = self.num_frames
        return Clip(name=name, source=f"synthetic:{name}", frames=self.frames, fps=self.fps,
                    timestamps=np.arange(t, dtype=np.float64) / self.fps, source_fps=self.fps,
                    source_indices=np.arange(t, dtype=np.int64), meta={"camera": self.camera.to_dict()})
