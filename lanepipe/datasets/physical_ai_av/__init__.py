"""NVIDIA PhysicalAI-Autonomous-Vehicles (PAI-AV) clips read from a local copy of the dataset.

Layout under ``root`` (physical_ai_av 0.2.3, ``features.csv`` templates; see DESIGN.md §6 and shared/data/README.md)::

    features.csv                      optional; index "feature", columns directory, chunk_path, clip_files_in_zip
    clip_index.parquet                index clip_id -> column chunk (int)
    camera/<cam>/<cam>.chunk_NNNN.zip {clip}.<cam>.mp4 + {clip}.<cam>.timestamps.parquet (column timestamp, int64 µs)
    labels/egomotion/egomotion.chunk_NNNN.zip       {clip}.egomotion.parquet
    calibration/camera_intrinsics/camera_intrinsics.chunk_NNNN.parquet   MultiIndex (clip_id, camera_name)
    calibration/sensor_extrinsics/sensor_extrinsics.chunk_NNNN.parquet   MultiIndex (clip_id, sensor_name)

When ``features.csv`` is present its ``chunk_path`` and ``clip_files_in_zip`` templates are used, as the devkit
does; otherwise the templates above. Frame lookup follows the devkit's ``VideoReader``: for each requested µs
timestamp, the last frame with ``timestamp <= t`` (``np.searchsorted(..., side="right") - 1``), and requests
outside the first…last frame timestamps are refused.

Ego-motion poses are of the rig frame (x forward, y left, z up) in a clip-local world frame; timestamps are
µs in the files and seconds in :class:`~lanepipe.geometry.ego.EgoMotion`. Ego-motion is interpolated
linearly (positions) and by slerp (rotations); the devkit uses a cubic spline for positions — at 100 Hz
the two differ by millimetres.

Edited videos (one camera replaced by an edited copy, e.g. ``<clip_id>.<camera>….mp4`` sampled at 8 fps) are
aligned by :func:`edited_t0_us`: frame ``k`` sits at ``first frame timestamp + k / fps`` and t0 is the last frame.

Modules: :mod:`~lanepipe.datasets.physical_ai_av.layout` (names, feature templates),
:mod:`~lanepipe.datasets.physical_ai_av.edited` (edited videos) and :mod:`~lanepipe.datasets.physical_ai_av.clip`
(:class:`PaiavClip`, :func:`open_clip`). A tiny copy for tests is written by :mod:`lanepipe.testing.paiav`.
"""

from __future__ import annotations

from lanepipe.datasets.physical_ai_av.clip import PaiavClip, list_clips, load_edited_video, open_clip
from lanepipe.datasets.physical_ai_av.edited import EditedVideo, edited_t0_us, parse_edited_name
from lanepipe.datasets.physical_ai_av.layout import (
    CAMERA_NAMES,
    DEFAULT_CAMERAS,
    EDITED_FPS,
    EGOMOTION_COLUMNS,
    FRONT_CAMERA,
    FeatureSpec,
    default_features,
    read_features,
)
from lanepipe.geometry.ftheta import EXTRINSICS_COLUMNS, INTRINSICS_COLUMNS

__all__ = [
    "CAMERA_NAMES", "DEFAULT_CAMERAS", "EDITED_FPS", "EGOMOTION_COLUMNS", "EXTRINSICS_COLUMNS", "FRONT_CAMERA",
    "INTRINSICS_COLUMNS", "EditedVideo", "FeatureSpec", "PaiavClip", "default_features", "edited_t0_us",
    "list_clips", "load_edited_video", "open_clip", "parse_edited_name", "read_features",
]
