"""One PAI-AV clip under a local root (:class:`PaiavClip`: frames, calibration, ego motion, predictor input),
:func:`list_clips`, :func:`open_clip` and :func:`load_edited_video`.
"""


from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pandas as pd

from lanepipe.datasets.physical_ai_av.edited import EditedVideo, parse_edited_name
from lanepipe.datasets.physical_ai_av.layout import (
    DEFAULT_CAMERAS,
    EDITED_FPS,
    EGOMOTION_COLUMNS,
    FRONT_CAMERA,
    POSE_COLUMNS,
    US,
    FeatureSpec,
    read_features,
    read_parquet_bytes,
)
from lanepipe.datasets.trajectory import ego_state_at, future_at, future_times, history_times
from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.ego import EgoMotion
from lanepipe.geometry.ftheta import (
    FThetaCamera,
)
from lanepipe.types import CameraView, EgoState, PredictorInput

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]



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
            df = read_parquet_bytes(self._zip_read(camera, "frame_timestamps"))
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
        return read_parquet_bytes(self._zip_read("egomotion", "egomotion"))

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

    def vehicle_dimensions(self) -> dict[str, float] | None:
        """The clip's ``vehicle_dimensions`` row (``length, width, height, rear_axle_to_bbox_center, wheelbase,
        track_width`` metres), or None when the dataset copy has no such file or row."""
        spec = self._features.get("vehicle_dimensions")
        path = spec.path(self.root, self.chunk) if spec is not None else None
        if path is None or not path.is_file():
            return None
        df = pd.read_parquet(path)
        if "clip_id" in df.columns:
            df = df.set_index("clip_id")
        if self.clip_id not in df.index:
            return None
        row = df.loc[self.clip_id]
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        return {str(k): float(v) for k, v in row.items()}

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
