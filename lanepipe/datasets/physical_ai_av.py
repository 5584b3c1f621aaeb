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
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
import pandas as pd

from lanepipe.datasets.trajectory import ego_state_at, future_at, future_times, history_times
from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.ego import EgoMotion
from lanepipe.geometry.ftheta import (
    EXTRINSICS_COLUMNS,
    INTRINSICS_COLUMNS,
    FThetaCamera,
    camera_rotation,
    fit_backward_poly,
)
from lanepipe.geometry.quaternion import matrix_to_quat_xyzw
from lanepipe.types import CameraView, EgoState, PredictorInput

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
_EDITED_UUID = re.compile(rf"^(?P<clip>{_UUID})[._](?P<cam>{_CAM})(?:$|[._-])")
_EDITED_DOTTED = re.compile(rf"^(?P<clip>[^./\\]+)\.(?P<cam>{_CAM})(?:$|[._-])")


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


def _read_parquet_bytes(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


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
        for pattern in (_EDITED_UUID, _EDITED_DOTTED):
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


def load_edited_video(path: str | Path, clip: PaiavClip, *, camera: str | None = None, fps: float = EDITED_FPS,
                      first_timestamp_us: int | None = None, max_frames: int = 10_000) -> EditedVideo:
    """Decode an edited video of ``clip`` and place its frames on the clip's timeline.

    Args:
        path: the edited mp4; its name (or a parent folder's) gives clip id and camera (:func:`parse_edited_name`)
            unless ``camera`` is given.
        clip: the clip it was edited from.
        camera: the camera it replaces (default: from the name).
        fps: the rate the edited clip was sampled at (8 fps in the edit stage); all frames are kept.
        first_timestamp_us: timestamp of its first frame (default: the camera's first frame timestamp).

    Raises:
        InputError: the name names another clip, the camera is not in the clip, or the video is unreadable.
    """
    from lanepipe.io.video import decode

    if camera is None:
        clip_id, camera = parse_edited_name(path)
        if clip_id != clip.clip_id:
            raise InputError(str(path), f"an edited video of clip {clip.clip_id}", f"one named for clip {clip_id}")
    clip.require_cameras([camera])
    first = int(clip.frame_timestamps(camera)[0]) if first_timestamp_us is None else int(first_timestamp_us)
    decoded = decode(str(path), target_fps=None, max_frames=max_frames, min_frames=1)
    return EditedVideo.from_frames(clip.clip_id, camera, decoded.frames, first, fps, source=str(path))


# ---------------------------------------------------------------------------------------------- clip
class PaiavClip:
    """One PAI-AV clip under a local dataset root. Build it with :func:`open_clip`.

    Attributes:
        root: dataset root folder.
        clip_id: the clip's id (UUID string).
        chunk: its chunk index.
        cameras: cameras whose zip holds this clip's video and timestamps, sorted by name.
    """

    def __init__(self, root: Path, clip_id: str, chunk: int, cameras: tuple[str, ...],
                 features: Mapping[str, FeatureSpec]) -> None:
        self.root = root
        self.clip_id = clip_id
        self.chunk = chunk
        self.cameras = cameras
        self._features = dict(features)
        self._timestamps: dict[str, I64] = {}

    def __repr__(self) -> str:
        return f"PaiavClip({self.clip_id!r}, chunk={self.chunk}, cameras={list(self.cameras)})"

    @property
    def label(self) -> str:
        return f"PAI-AV clip {self.clip_id}"

    # -------------------------------------------------------------------- cameras
    def require_cameras(self, cameras: Sequence[str]) -> None:
        """Raise InputError naming the clip and every camera of ``cameras`` it lacks."""
        missing = [c for c in cameras if c not in self.cameras]
        if missing:
            raise InputError(self.label, f"camera(s) {list(cameras)}",
                             f"no {missing} (cameras here: {list(self.cameras) or 'none'})",
                             f"look for {self._features[missing[0]].chunk_path.format(chunk_id=self.chunk)}"
                             if missing[0] in self._features else None)

    def video_url(self, camera: str) -> str:
        """fsspec URL of a camera's mp4 inside its chunk zip (``zip://member::archive``), for :func:`decode`."""
        self.require_cameras([camera])
        spec = self._features[camera]
        return f"zip://{spec.member('video', self.clip_id)}::{spec.path(self.root, self.chunk).resolve()}"

    def _zip_read(self, feature: str, alias: str) -> bytes:
        spec = self._features[feature]
        path = spec.path(self.root, self.chunk)
        member = spec.member(alias, self.clip_id)
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.read(member)
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            raise InputError(f"{self.label} ({path})", f"zip member {member}", f"an error reading it: {e}") from None

    def frame_timestamps(self, camera: str) -> I64:
        """``(N,) int64`` µs timestamps of every frame of ``camera`` (strictly increasing).

        Raises:
            InputError: camera missing, or timestamps empty / not strictly increasing.
        """
        self.require_cameras([camera])
        if camera not in self._timestamps:
            df = _read_parquet_bytes(self._zip_read(camera, "frame_timestamps"))
            if "timestamp" not in df.columns:
                raise InputError(f"{self.label} {camera} timestamps", "a column 'timestamp' (int64 µs)",
                                 f"columns {list(df.columns)}")
            ts = df["timestamp"].to_numpy()
            if len(ts) == 0 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
                raise InputError(f"{self.label} {camera} timestamps", "one or more strictly increasing timestamps",
                                 f"{len(ts)} values, not strictly increasing or not finite")
            self._timestamps[camera] = ts.astype(np.int64)
        return self._timestamps[camera]

    def select_frames(self, camera: str, timestamps_us: Any) -> tuple[I64, I64]:
        """Frame indices ``(T,)`` and their timestamps ``(T,) int64 µs``: the last frame with ``timestamp <= t``.

        Raises:
            InputError: a requested time is before the first or after the last frame of ``camera``.
        """
        ts = self.frame_timestamps(camera)
        req = np.atleast_1d(np.asarray(timestamps_us, dtype=np.int64))
        if len(req) == 0:
            raise InputError(f"{self.label} {camera}", "at least one requested timestamp", "none")
        if req.min() < ts[0] or req.max() > ts[-1]:
            raise InputError(f"{self.label} {camera}", f"frames covering {req.min()} … {req.max()} µs",
                             f"frames from {ts[0]} to {ts[-1]} µs", "pick a t0 inside the clip")
        idx = (np.searchsorted(ts, req, side="right") - 1).astype(np.int64)
        return idx, ts[idx]

    def frames(self, camera: str, timestamps_us: Any) -> U8:
        """``(T, H, W, 3) uint8`` RGB frames of ``camera`` at ``timestamps_us`` (µs; last frame at or before each).

        Raises:
            InputError: missing camera, a time outside the video, or an unreadable / short video.
        """
        idx, _ = self.select_frames(camera, timestamps_us)
        data = self._zip_read(camera, "video")
        wanted = set(int(i) for i in idx)
        got: dict[int, U8] = {}
        source = f"{self.label} {camera} video"
        try:
            with av.open(io.BytesIO(data), mode="r") as container:
                if not container.streams.video:
                    raise InputError(source, "a video stream", "none")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                last = max(wanted)
                n = 0
                for n, frame in enumerate(container.decode(stream)):
                    if n in wanted:
                        got[n] = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    if n >= last:
                        break
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise InputError(source, "a decodable mp4", f"{type(e).__name__}: {e}") from None
        if len(got) != len(wanted):
            raise InputError(source, f"frame {max(wanted)} (one per row of the timestamps parquet)",
                             f"a video of {n + 1 if got or n else 0} frames")
        return np.stack([got[int(i)] for i in idx])

    # -------------------------------------------------------------------- ego-motion
    def egomotion_table(self) -> pd.DataFrame:
        """The raw ego-motion parquet (columns ``timestamp, x…z, qx…qw, vx…vz, ax…az, curvature``)."""
        return _read_parquet_bytes(self._zip_read("egomotion", "egomotion"))

    def egomotion(self) -> EgoMotion:
        """Rig poses in the clip's world frame; timestamps in seconds (µs / 1e6).

        Raises:
            InputError: a pose column missing, NaN/inf in one, or timestamps not strictly increasing.
        """
        df = self.egomotion_table()
        source = f"{self.label} egomotion"
        missing = [c for c in POSE_COLUMNS if c not in df.columns]
        if missing:
            raise InputError(source, f"columns {list(EGOMOTION_COLUMNS)}", f"missing {missing}")
        arr = df[list(POSE_COLUMNS)].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            cols = [c for c, b in zip(POSE_COLUMNS, bad.any(axis=0), strict=True) if b]
            rows = np.nonzero(bad.any(axis=1))[0]
            raise InputError(source, f"finite values in {list(POSE_COLUMNS)}",
                             f"NaN or inf in {cols} on {len(rows)} row(s), first at row {rows[0]}")
        return EgoMotion.from_quaternions(arr[:, 0] / US, arr[:, 1:4], arr[:, 4:8], source=source)

    def ego_state(self, t0_us: int, ego: EgoMotion | None = None) -> EgoState:
        """16-step history at ``t0 - 1.5 … t0`` s (0.1 s steps) in the t0 ego frame, plus speed at t0.

        Raises:
            InputError: ego-motion does not cover ``t0 - 1.5 s … t0``.
        """
        ego = ego or self.egomotion()
        self._require_ego(ego, history_times(int(t0_us) / US), "history", t0_us)
        return ego_state_at(ego, int(t0_us) / US)

    def future(self, t0_us: int, ego: EgoMotion | None = None) -> F32:
        """``(64, 3) float32`` ground-truth positions at ``t0 + 0.1 … t0 + 6.4`` s in the t0 ego frame.

        Raises:
            InputError: ego-motion ends before ``t0 + 6.4 s``.
        """
        ego = ego or self.egomotion()
        self._require_ego(ego, future_times(int(t0_us) / US), "future", t0_us)
        return future_at(ego, int(t0_us) / US)

    def _require_ego(self, ego: EgoMotion, t: F64, what: str, t0_us: int) -> None:
        if not ego.covers(t):
            span = f"t0 {'- 1.5 s … t0' if what == 'history' else '… t0 + 6.4 s'}"
            raise InputError(self.label, f"ego-motion covering the {what} {span} = {round(t[0] * US)} … "
                             f"{round(t[-1] * US)} µs (t0 = {int(t0_us)} µs)",
                             f"ego-motion from {round(ego.timestamps[0] * US)} to {round(ego.timestamps[-1] * US)} µs",
                             "pick a t0 at least 1.5 s after the clip's start" if what == "history" else None)

    # -------------------------------------------------------------------- calibration
    def _calibration_row(self, feature: str, sensor: str) -> pd.Series:
        path = self._features[feature].path(self.root, self.chunk)
        if not path.is_file():
            raise InputError(self.label, f"calibration file {path}", "no such file")
        df = pd.read_parquet(path)
        try:
            row = df.loc[(self.clip_id, sensor)]
        except KeyError:
            raise InputError(f"{self.label} ({path.name})", f"a row ({self.clip_id}, {sensor})",
                             "none for that clip and sensor") from None
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        return row

    def camera_model(self, camera: str) -> FThetaCamera:
        """The f-theta model of ``camera`` from the clip's intrinsics and extrinsics rows.

        Raises:
            InputError: a calibration file, row or column is missing.
        """
        intr = self._calibration_row("camera_intrinsics", camera)
        extr = self._calibration_row("sensor_extrinsics", camera)
        return FThetaCamera.from_intrinsics_row(intr, extr, name=camera)

    # -------------------------------------------------------------------- predictor input
    def predictor_input(self, t0_us: int, cameras: Sequence[str] = DEFAULT_CAMERAS, *, num_frames: int = 4,
                        frame_step_us: int = 100_000, replace: Mapping[str, EditedVideo] | None = None,
                        front: str = FRONT_CAMERA) -> PredictorInput:
        """Everything a predictor sees at ``t0_us``: ``num_frames`` frames per camera at ``t0 - (n-1)·step … t0``,
        the 16-step ego history and, where ego-motion reaches ``t0 + 6.4 s``, the ground-truth future.

        Each camera's frames are the last ones at or before each requested time; a camera in ``replace`` takes
        its frames from the edited video instead (at the edited size; its ``camera`` model stays the native
        one). ``CameraView.timestamps`` are seconds relative to t0. ``meta`` holds ``t0_us``, ``clip_id``,
        ``frame_timestamps_us`` per camera, ``replaced_cameras`` and ``future_xyz`` ``(64, 3)`` when known.

        Raises:
            InputError: a camera missing, frames or ego-motion not covering the window, NaN in ego-motion.
        """
        if num_frames < 1:
            raise ConfigError(f"num_frames: expected >= 1, found {num_frames}")
        replace = dict(replace or {})
        for cam, ed in replace.items():
            if ed.clip_id != self.clip_id or ed.camera != cam:
                raise InputError(ed.source, f"an edited {cam} of clip {self.clip_id}",
                                 f"an edited {ed.camera} of clip {ed.clip_id}")
        self.require_cameras(list(cameras))
        ego = self.egomotion()
        state = self.ego_state(t0_us, ego)
        req = int(t0_us) - np.arange(num_frames - 1, -1, -1, dtype=np.int64) * int(frame_step_us)
        views: dict[str, CameraView] = {}
        picked: dict[str, I64] = {}
        for cam in cameras:
            model = self.camera_model(cam)
            if cam in replace:
                ed = replace[cam]
                if req.min() < ed.timestamps_us[0] or req.max() > ed.timestamps_us[-1]:
                    raise InputError(f"{self.label} edited {cam} ({ed.source})",
                                     f"frames covering {req.min()} … {req.max()} µs",
                                     f"frames from {ed.timestamps_us[0]} to {ed.timestamps_us[-1]} µs")
                idx = np.searchsorted(ed.timestamps_us, req, side="right") - 1
                frames, ts = ed.frames[idx], ed.timestamps_us[idx]
            else:
                idx, ts = self.select_frames(cam, req)
                frames = self.frames(cam, req)
            picked[cam] = ts
            views[cam] = CameraView(name=cam, frames=frames, timestamps=(ts - int(t0_us)) / US, camera=model)
        meta: dict[str, Any] = {"source": "physical_ai_av", "clip_id": self.clip_id, "chunk": self.chunk,
                                "t0_us": int(t0_us), "frame_timestamps_us": picked,
                                "replaced_cameras": sorted(replace)}
        if ego.covers(future_times(int(t0_us) / US)):
            meta["future_xyz"] = self.future(t0_us, ego)
        return PredictorInput(clip=self.clip_id, cameras=views, ego=state,
                              front=front if front in views else next(iter(views)), t0=int(t0_us) / US, meta=meta)


def _read_clip_index(root: Path) -> pd.DataFrame:
    path = root / "clip_index.parquet"
    if not path.is_file():
        raise InputError(str(root), "a PAI-AV dataset root with clip_index.parquet", "no clip_index.parquet",
                         "point it at the folder holding clip_index.parquet, camera/, labels/, calibration/")
    df = pd.read_parquet(path)
    if "clip_id" in df.columns:
        df = df.set_index("clip_id")
    if "chunk" not in df.columns:
        raise InputError(str(path), "a column 'chunk' indexed by clip_id", f"columns {list(df.columns)}")
    return df


def list_clips(root: str | Path) -> list[str]:
    """Clip ids listed in ``clip_index.parquet`` under ``root``."""
    return [str(c) for c in _read_clip_index(Path(root)).index]


def open_clip(root: str | Path, clip_id: str) -> PaiavClip:
    """Open one clip of a local PAI-AV copy; finds its chunk and which cameras are present.

    Raises:
        InputError: no dataset at ``root`` or the clip is not in its ``clip_index.parquet``.
    """
    rootp = Path(root)
    index = _read_clip_index(rootp)
    if clip_id not in index.index:
        raise InputError(f"PAI-AV clip {clip_id}", f"a clip listed in {rootp / 'clip_index.parquet'}",
                         f"none by that id ({len(index)} clips listed)")
    chunk = int(index.at[clip_id, "chunk"])
    feats = read_features(rootp)
    cams: list[str] = []
    for name, spec in feats.items():
        if spec.directory != "camera" or not spec.members:
            continue
        path = spec.path(rootp, chunk)
        if not path.is_file():
            continue
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile):
            continue
        if {spec.member("video", clip_id), spec.member("frame_timestamps", clip_id)} <= names:
            cams.append(name)
    return PaiavClip(rootp, clip_id, chunk, tuple(sorted(cams)), feats)


# ---------------------------------------------------------------------------------------------- fixture
FIXTURE_CLIP_ID = "00000000-0000-4000-8000-00000000c11b"
_FIXTURE_POSE: dict[str, tuple[float, float, tuple[float, float, float], float]] = {
    # name: (yaw, pitch, translation in the rig frame, horizontal fov in degrees)
    "camera_front_wide_120fov": (0.0, 0.05, (1.7, 0.0, 1.45), 120.0),
    "camera_front_tele_30fov": (0.0, 0.02, (1.7, 0.1, 1.45), 30.0),
    "camera_front_tele_sat_30fov": (0.0, 0.02, (1.7, 0.1, 1.45), 30.0),
    "camera_cross_left_120fov": (math.pi / 2, 0.1, (1.9, 0.9, 1.0), 120.0),
    "camera_cross_right_120fov": (-math.pi / 2, 0.1, (1.9, -0.9, 1.0), 120.0),
    "camera_rear_left_70fov": (3 * math.pi / 4, 0.1, (0.5, 0.9, 1.2), 70.0),
    "camera_rear_right_70fov": (-3 * math.pi / 4, 0.1, (0.5, -0.9, 1.2), 70.0),
    "camera_rear_tele_30fov": (math.pi, 0.02, (-1.0, 0.0, 1.5), 30.0),
}
_BIT_PX = 10
_BITS = 10


def fixture_camera(camera: str, width: int, height: int) -> FThetaCamera:
    """The fixture's f-theta model for ``camera``: ``r = f θ (1 - 0.05 θ²)`` with the name's FOV across the width."""
    yaw, pitch, t, fov = _FIXTURE_POSE.get(camera, (0.0, 0.0, (1.5, 0.0, 1.4), 120.0))
    half = math.radians(fov) / 2
    f = (width / 2) / (half * (1 - 0.05 * half**2))
    fw = (0.0, f, 0.0, -0.05 * f, 0.0)
    bw = fit_backward_poly(fw, max_angle_rad=min(1.2 * math.hypot(1.0, height / width) * half, 1.5))
    q = matrix_to_quat_xyzw(camera_rotation(yaw, pitch))
    return FThetaCamera(width=width, height=height, cx=width / 2 - 0.3, cy=height / 2 + 0.4, fw_poly=fw, bw_poly=bw,
                        quat_xyzw=(float(q[0]), float(q[1]), float(q[2]), float(q[3])), translation=t, name=camera)


def _fixture_frames(n: int, width: int, height: int, cam_idx: int, seed: int) -> U8:
    """Synthetic frames: sky, road, a per-camera tint and the frame index written as bit blocks (top-left)."""
    rng = np.random.default_rng(seed + cam_idx)
    base = np.zeros((height, width, 3), np.uint8)
    base[: height // 2] = (110 + 20 * cam_idx % 100, 150, 210)
    base[height // 2 :] = (80, 80, 84)
    noise = rng.integers(0, 12, size=(height, width, 3), dtype=np.uint8)
    base = np.asarray(np.clip(base.astype(np.int16) + noise, 0, 255), dtype=np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for k in range(n):
        x = int((k * 3) % max(width - 8, 1))
        frames[k, height // 2 + 4 : height // 2 + 10, x : x + 8] = 240  # a moving marker
        frames[k, 0 : _BIT_PX + 4, 0 : _BITS * _BIT_PX + 4] = 128
        for b in range(_BITS):
            val = 255 if (k >> b) & 1 else 0
            frames[k, 2 : 2 + _BIT_PX, 2 + b * _BIT_PX : 2 + (b + 1) * _BIT_PX] = val
    return frames


def fixture_frame_index(frame: U8) -> int:
    """The frame index :func:`write_fixture` wrote into a decoded ``(H, W, 3)`` frame."""
    k = 0
    for b in range(_BITS):
        block = frame[4:_BIT_PX, 4 + b * _BIT_PX : (b + 1) * _BIT_PX, :]
        if float(block.mean()) > 128:
            k |= 1 << b
    return k


def _merge_parquet(path: Path, new: pd.DataFrame, clip_id: str) -> None:
    if path.is_file():
        old = pd.read_parquet(path)
        keep = old.index.get_level_values(0) != clip_id
        new = pd.concat([old[keep], new])
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_parquet(path)


def _zip_add(path: Path, members: Mapping[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode: Literal["a", "w"] = "a" if path.is_file() else "w"
    with zipfile.ZipFile(path, mode, compression=zipfile.ZIP_STORED) as zf:
        clash = set(members) & set(zf.namelist())
        if clash:
            raise ConfigError(f"write_fixture: {path} already holds {sorted(clash)}; use another clip_id or root")
        for name, data in members.items():
            zf.writestr(name, data)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def write_fixture(root: str | Path, clip_id: str = FIXTURE_CLIP_ID, cameras: Sequence[str] = DEFAULT_CAMERAS,
                  seconds: float = 4.0, fps: float = 30.0, size: tuple[int, int] = (192, 108), chunk: int = 0, *,
                  egomotion_seconds: float | None = None, egomotion_hz: float = 100.0, speed_mps: float = 10.0,
                  yaw_rate_rps: float = 0.05, seed: int = 0,
                  egomotion_edit: Any = None) -> Path:
    """Write a tiny clip in the PAI-AV layout under ``root`` (see the module docstring); returns ``root``.

    Each camera gets ``round(seconds * fps)`` frames of ``size = (W, H)`` as an H.264 mp4 plus its timestamps
    parquet, in ``camera/<cam>/<cam>.chunk_NNNN.zip``; camera ``i`` starts at ``1000 + 137 i`` µs (cameras are
    not synchronised). Every frame carries its index as bit blocks (:func:`fixture_frame_index`). Ego-motion at
    ``egomotion_hz`` from 0 µs to ``egomotion_seconds`` (default ``seconds``) follows a gentle left curve at
    ``speed_mps`` and ``yaw_rate_rps`` from a non-trivial world pose. Calibration parquets get f-theta intrinsics
    (:func:`fixture_camera`) and extrinsics rows with the dataset's MultiIndex; ``clip_index.parquet``,
    ``features.csv`` and ``metadata/feature_presence.parquet`` are written or extended. Several clips may share
    a root and chunk. ``egomotion_edit(df) -> df`` may alter the ego-motion table before it is written.

    Raises:
        ConfigError: bad sizes, an unknown camera, or the clip already in a zip.
    """
    from lanepipe.io.video import encode

    rootp = Path(root)
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise ConfigError(f"write_fixture: expected an even size of at least 16x16, found {w}x{h}")
    unknown = [c for c in cameras if c not in CAMERA_NAMES]
    if unknown:
        raise ConfigError(f"write_fixture: unknown camera(s) {unknown}; choose from {list(CAMERA_NAMES)}")
    n = round(seconds * fps)
    if n < 2 or not fps > 0:
        raise ConfigError(f"write_fixture: expected at least 2 frames, found seconds={seconds}, fps={fps}")
    feats = default_features()

    intr_rows, extr_rows = [], []
    tmp = rootp / ".fixture_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for i, cam in enumerate(cameras):
        start = 1000 + 137 * i
        ts = start + np.round(np.arange(n) * US / fps).astype(np.int64)
        mp4 = tmp / f"{clip_id}.{cam}.mp4"
        encode(_fixture_frames(n, w, h, CAMERA_NAMES.index(cam), seed), str(mp4), fps, crf=12)
        spec = feats[cam]
        _zip_add(spec.path(rootp, chunk), {
            spec.member("video", clip_id): mp4.read_bytes(),
            spec.member("frame_timestamps", clip_id): _parquet_bytes(pd.DataFrame({"timestamp": ts})),
        })
        mp4.unlink()
        model = fixture_camera(cam, w, h)
        intr_rows.append({"clip_id": clip_id, "camera_name": cam, "width": w, "height": h, "cx": model.cx,
                          "cy": model.cy, **{f"bw_poly_{j}": model.bw_poly[j] for j in range(5)},
                          **{f"fw_poly_{j}": model.fw_poly[j] for j in range(5)}})
        extr_rows.append({"clip_id": clip_id, "sensor_name": cam, **dict(zip(("qx", "qy", "qz", "qw"),
                          model.quat_xyzw, strict=True)), **dict(zip("xyz", model.translation, strict=True))})
    tmp.rmdir()

    # ego-motion: a left curve of radius speed / yaw_rate from world pose (100, -50) heading 0.3 rad
    dur = seconds if egomotion_seconds is None else egomotion_seconds
    te = np.round(np.arange(round(dur * egomotion_hz) + 1) * US / egomotion_hz).astype(np.int64)
    s = te / US
    yaw0, x0, y0 = 0.3, 100.0, -50.0
    w_ = yaw_rate_rps
    yaw = yaw0 + w_ * s
    if abs(w_) > 1e-9:
        lx, ly = speed_mps / w_ * np.sin(w_ * s), speed_mps / w_ * (1 - np.cos(w_ * s))
    else:
        lx, ly = speed_mps * s, np.zeros_like(s)
    c0, s0 = math.cos(yaw0), math.sin(yaw0)
    ego = pd.DataFrame({
        "timestamp": te, "x": x0 + c0 * lx - s0 * ly, "y": y0 + s0 * lx + c0 * ly, "z": np.full_like(s, 0.2),
        "qx": np.zeros_like(s), "qy": np.zeros_like(s), "qz": np.sin(yaw / 2), "qw": np.cos(yaw / 2),
        "vx": speed_mps * np.cos(yaw), "vy": speed_mps * np.sin(yaw), "vz": np.zeros_like(s),
        "ax": -speed_mps * w_ * np.sin(yaw), "ay": speed_mps * w_ * np.cos(yaw), "az": np.zeros_like(s),
        "curvature": np.full_like(s, w_ / speed_mps if speed_mps else 0.0),
    })
    if egomotion_edit is not None:
        ego = egomotion_edit(ego)
    spec = feats["egomotion"]
    _zip_add(spec.path(rootp, chunk), {spec.member("egomotion", clip_id): _parquet_bytes(ego)})

    cal = rootp / "calibration"
    _merge_parquet(feats["camera_intrinsics"].path(rootp, chunk),
                   pd.DataFrame(intr_rows).set_index(["clip_id", "camera_name"]), clip_id)
    _merge_parquet(feats["sensor_extrinsics"].path(rootp, chunk),
                   pd.DataFrame(extr_rows).set_index(["clip_id", "sensor_name"]), clip_id)
    _merge_parquet(cal / "vehicle_dimensions" / f"vehicle_dimensions.chunk_{chunk:04d}.parquet",
                   pd.DataFrame([{"clip_id": clip_id, "length": 4.9, "width": 1.9, "height": 1.7,
                                  "rear_axle_to_bbox_center": 1.4, "wheelbase": 2.9, "track_width": 1.6}])
                   .set_index("clip_id"), clip_id)
    _merge_parquet(rootp / "clip_index.parquet",
                   pd.DataFrame([{"clip_id": clip_id, "chunk": int(chunk), "clip_is_valid": True}])
                   .set_index("clip_id"), clip_id)
    presence = {f: False for f in feats}
    presence.update({c: True for c in cameras})
    presence.update({"egomotion": True, "camera_intrinsics": True, "sensor_extrinsics": True,
                     "vehicle_dimensions": True})
    _merge_parquet(rootp / "metadata" / "feature_presence.parquet",
                   pd.DataFrame([{"clip_id": clip_id, **presence}]).set_index("clip_id"), clip_id)
    rows = [{"feature": name, "directory": sp.directory, "chunk_path": sp.chunk_path,
             "clip_files_in_zip": json.dumps(dict(sp.members)) if sp.members else ""} for name, sp in feats.items()]
    pd.DataFrame(rows).to_csv(rootp / "features.csv", index=False)
    return rootp


__all__ = [
    "CAMERA_NAMES", "DEFAULT_CAMERAS", "EDITED_FPS", "EGOMOTION_COLUMNS", "EXTRINSICS_COLUMNS", "FIXTURE_CLIP_ID",
    "INTRINSICS_COLUMNS", "EditedVideo", "FeatureSpec", "PaiavClip", "default_features", "edited_t0_us",
    "fixture_camera", "fixture_frame_index", "list_clips", "load_edited_video", "open_clip",
    "parse_edited_name", "read_features", "write_fixture",
]
