"""A tiny PAI-AV copy written from scratch for tests (:func:`write_fixture`): frames that encode their index
(:func:`fixture_frame_index`), f-theta calibration, ego motion; same layout and file formats as the dataset.
"""


from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanepipe.datasets.physical_ai_av.layout import CAMERA_NAMES, DEFAULT_CAMERAS, US, default_features
from lanepipe.errors import ConfigError
from lanepipe.geometry.ftheta import FThetaCamera, camera_rotation, fit_backward_poly
from lanepipe.geometry.quaternion import matrix_to_quat_xyzw

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


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
