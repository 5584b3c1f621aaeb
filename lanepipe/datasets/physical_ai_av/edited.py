"""Edited videos of a PAI-AV camera: names (:func:`parse_edited_name`), timeline (:func:`edited_t0_us`) and
:class:`EditedVideo` (frames with absolute µs timestamps).
"""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import numpy.typing as npt

from lanepipe.datasets.physical_ai_av.layout import EDITED_DOTTED, EDITED_FPS, EDITED_UUID, US
from lanepipe.errors import ConfigError, InputError

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------- edited videos
def parse_edited_name(name: str | PurePath) -> tuple[str, str]:
    """``(clip_id, camera)`` from an edited video's path.

    Accepts ``<clip_id>.<camera>….mp4`` (the dataset's own member names) and, for UUID clip ids, ``_`` as the
    separator (``<clip_id>_<camera>…``, the folder-safe clip names lanepipe runs use). The file name is tried
    first, then its parent folders, nearest first.

    Raises:
        InputError: no name in the path has that form.
    """
    p = PurePath(str(name))
    for part in (p.name, *(q.name for q in p.parents)):
        for pattern in (EDITED_UUID, EDITED_DOTTED):
            m = pattern.match(part)
            if m:
                return m.group("clip"), m.group("cam")
    raise InputError(str(name), "a file or folder named '<clip_id>.<camera>…' (or '<uuid>_<camera>…'), "
                     "camera like camera_front_wide_120fov", f"{p.name!r}",
                     "rename the edited video after the clip and camera it replaces")


def edited_t0_us(num_frames: int, first_timestamp_us: int, fps: float = EDITED_FPS, t0_frame: int | None = None) -> int:
    """t0 (absolute µs) of an edited clip: ``first_timestamp_us + t0_frame / fps``, ``t0_frame`` = last frame.

    With the default 8 fps and ``num_frames`` frames, t0 is ``(num_frames - 1) * 0.125 s`` into the clip.

    Raises:
        ConfigError: ``fps <= 0`` or ``t0_frame`` outside ``0 … num_frames - 1``.
    """
    if not fps > 0:
        raise ConfigError(f"edited video fps: expected > 0, found {fps}")
    k = num_frames - 1 if t0_frame is None else t0_frame
    if not 0 <= k < num_frames:
        raise ConfigError(f"edited video t0_frame: expected 0 … {num_frames - 1}, found {k}")
    return int(first_timestamp_us) + round(k * US / fps)


@dataclass(frozen=True)
class EditedVideo:
    """An edited copy of one camera of a clip.

    Attributes:
        clip_id: the PAI-AV clip it was made from.
        camera: the camera it replaces.
        frames: ``(T, H, W, 3) uint8`` RGB, any size (resized to the camera's native size by the predictor).
        timestamps_us: ``(T,) int64`` absolute clip timestamps (µs) of the frames, strictly increasing.
        source: where it came from (path), for messages.
    """

    clip_id: str
    camera: str
    frames: U8
    timestamps_us: I64
    source: str = "edited video"

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise InputError(self.source, "frames (T, H, W, 3) uint8", f"{f.shape} {f.dtype}")
        if self.timestamps_us.shape != (f.shape[0],) or np.any(np.diff(self.timestamps_us) <= 0):
            raise InputError(self.source, f"{f.shape[0]} strictly increasing timestamps",
                             f"shape {self.timestamps_us.shape}")

    @property
    def t0_us(self) -> int:
        """The last frame's timestamp: the default t0 of an edited clip."""
        return int(self.timestamps_us[-1])

    @classmethod
    def from_frames(cls, clip_id: str, camera: str, frames: U8, first_timestamp_us: int, fps: float = EDITED_FPS,
                    source: str = "edited video") -> EditedVideo:
        """Frames sampled at ``fps`` from ``first_timestamp_us``: frame ``k`` at ``first + k / fps``."""
        if not fps > 0:
            raise ConfigError(f"edited video fps: expected > 0, found {fps}")
        ts = int(first_timestamp_us) + np.round(np.arange(len(frames)) * US / fps).astype(np.int64)
        return cls(clip_id, camera, np.asarray(frames), ts, source)
