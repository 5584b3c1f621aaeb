"""Where a PAI-AV copy keeps each feature: camera and sensor names, column sets, ``features.csv`` templates
(:class:`FeatureSpec`, :func:`read_features`) and the edited-video name patterns.
"""


from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanepipe.errors import InputError

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


#: Camera names of the dataset (``camera_front_tele_sat_30fov`` in some revisions).
CAMERA_NAMES: tuple[str, ...] = (
    "camera_front_wide_120fov", "camera_front_tele_30fov", "camera_front_tele_sat_30fov",
    "camera_cross_left_120fov", "camera_cross_right_120fov", "camera_rear_left_70fov",
    "camera_rear_right_70fov", "camera_rear_tele_30fov",
)
#: The four cameras Alpamayo-R1 reads (NVlabs/alpamayo ``load_physical_aiavdataset.py``), in its index order.
DEFAULT_CAMERAS: tuple[str, ...] = (
    "camera_cross_left_120fov", "camera_front_wide_120fov", "camera_cross_right_120fov", "camera_front_tele_30fov",
)
FRONT_CAMERA = "camera_front_wide_120fov"
EGOMOTION_COLUMNS: tuple[str, ...] = (
    "timestamp", "x", "y", "z", "qx", "qy", "qz", "qw", "vx", "vy", "vz", "ax", "ay", "az", "curvature",
)
#: Columns a pose needs; the others may be NaN without harm.
POSE_COLUMNS: tuple[str, ...] = ("timestamp", "x", "y", "z", "qx", "qy", "qz", "qw")
VEHICLE_DIMENSION_COLUMNS: tuple[str, ...] = (
    "length", "width", "height", "rear_axle_to_bbox_center", "wheelbase", "track_width",
)
EDITED_FPS = 8.0
US = 1_000_000

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_CAM = r"camera_[A-Za-z0-9_]*?\d+fov"
EDITED_UUID = re.compile(rf"^(?P<clip>{_UUID})[._](?P<cam>{_CAM})(?:$|[._-])")
EDITED_DOTTED = re.compile(rf"^(?P<clip>[^./\\]+)\.(?P<cam>{_CAM})(?:$|[._-])")


# ---------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class FeatureSpec:
    """Where one feature lives: ``chunk_path`` (``{chunk_id:04d}`` template) and zip members by alias."""

    directory: str
    chunk_path: str
    members: Mapping[str, str] | None = None

    def path(self, root: Path, chunk: int) -> Path:
        return root / self.chunk_path.format(chunk_id=chunk)

    def member(self, alias: str, clip_id: str) -> str:
        if not self.members or alias not in self.members:
            raise InputError(self.chunk_path, f"a zip member alias {alias!r} in features.csv",
                             f"aliases {sorted(self.members or {})}")
        return self.members[alias].format(clip_id=clip_id)


def _camera_spec(cam: str) -> FeatureSpec:
    return FeatureSpec("camera", f"camera/{cam}/{cam}.chunk_{{chunk_id:04d}}.zip",
                       {"video": f"{{clip_id}}.{cam}.mp4", "frame_timestamps": f"{{clip_id}}.{cam}.timestamps.parquet"})


def default_features() -> dict[str, FeatureSpec]:
    """The documented layout, used when ``features.csv`` is absent."""
    feats = {cam: _camera_spec(cam) for cam in CAMERA_NAMES}
    feats["egomotion"] = FeatureSpec("labels", "labels/egomotion/egomotion.chunk_{chunk_id:04d}.zip",
                                     {"egomotion": "{clip_id}.egomotion.parquet"})
    for name in ("camera_intrinsics", "sensor_extrinsics", "vehicle_dimensions"):
        feats[name] = FeatureSpec("calibration", f"calibration/{name}/{name}.chunk_{{chunk_id:04d}}.parquet")
    return feats


def read_features(root: Path) -> dict[str, FeatureSpec]:
    """``features.csv`` under ``root`` merged over :func:`default_features`.

    Raises:
        InputError: the csv lacks the columns ``feature, directory, chunk_path``.
    """
    feats = default_features()
    path = root / "features.csv"
    if not path.is_file():
        return feats
    df = pd.read_csv(path)
    need = {"feature", "directory", "chunk_path"}
    if not need <= set(df.columns):
        raise InputError(str(path), f"columns {sorted(need)} (+ clip_files_in_zip)", f"{list(df.columns)}")
    for row in df.itertuples(index=False):
        raw = getattr(row, "clip_files_in_zip", None)
        members = json.loads(raw) if isinstance(raw, str) and raw.strip() else None
        feats[str(row.feature)] = FeatureSpec(str(row.directory), str(row.chunk_path), members)
    return feats


def read_parquet_bytes(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))
