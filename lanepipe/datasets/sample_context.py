"""Camera, ego-motion and ground truth of a clip written by :func:`lanepipe.sample.write_sample`.

``sample_gt.json`` (beside ``sample.mp4``) records the camera and, per frame, the ego pose in the sample's
world frame (x, y, yaw, speed; the ego drives the centre of its lane at constant speed). The ego-motion
returned here covers the clip **and** :data:`EXTEND_S` seconds beyond both ends, continued analytically along
the sample's road (same lateral offset, same rate of progress along the road as the clip's first / last two
frames, :func:`lanepipe.sample.road_pose`), so that a 1.5 s
history and a 6.4 s ground-truth future exist at every frame, including the last one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe import sample as sample_mod
from lanepipe.datasets.trajectory import ego_state_at, future_at
from lanepipe.errors import InputError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ego import EgoMotion
from lanepipe.types import CameraView, EgoState, PredictorInput

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

#: Seconds of analytic ego-motion added before the first and after the last frame (6.4 s future + margin).
EXTEND_S = 6.6
_EXTEND_DT = 0.05


@dataclass(frozen=True)
class SampleContext:
    """What a predictor and its evaluation need besides the frames.

    Attributes:
        camera: the sample's pinhole camera (ego frame: origin on the ground under the camera).
        ego: pose timeline, world frame of the sample, clock = seconds from the first frame; covers
            ``-EXTEND_S … (T - 1) / fps + EXTEND_S``.
        frame_times: ``(T,) float64`` time of each frame (s).
        fps: frame rate of the sample.
        source: the ``sample_gt.json`` path.
    """

    camera: PinholeCamera
    ego: EgoMotion
    frame_times: F64
    fps: float
    source: str

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``camera, ego`` (the pair :mod:`lanepipe.datasets.context` reads)."""
        return iter((self.camera, self.ego))

    @property
    def t_last(self) -> float:
        """Time of the last frame (s), the default t0."""
        return float(self.frame_times[-1])

    def ego_state(self, t0: float | None = None) -> EgoState:
        """16-step history at ``t0`` (default: the last frame)."""
        return ego_state_at(self.ego, self.t_last if t0 is None else t0)

    def future(self, t0: float | None = None) -> F32:
        """Ground truth ``(64, 3) float32`` in the t0 ego frame (default t0: the last frame)."""
        return future_at(self.ego, self.t_last if t0 is None else t0)

    def predictor_input(self, frames: U8, timestamps: F64 | None = None, t0: float | None = None,
                        clip: str = "sample", camera_name: str = "front") -> PredictorInput:
        """A :class:`PredictorInput` with one front camera (frames at or before t0) and the ego history.

        Args:
            frames: ``(T, H, W, 3) uint8`` RGB frames of this sample (original or edited; any size with the
                camera's aspect ratio).
            timestamps: ``(T,) float64`` frame times in the sample's clock (default ``frame_times``).
            t0: prediction time (default: the last frame).
            clip, camera_name: names carried in the input.
        """
        ts = self.frame_times if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        if frames.ndim != 4 or frames.shape[0] != len(ts):
            raise InputError(clip, f"frames (T, H, W, 3) with T = {len(ts)} timestamps", f"shape {frames.shape}")
        t0v = self.t_last if t0 is None else float(t0)
        keep = ts <= t0v + 1e-6
        cam = self.camera
        h, w = frames.shape[1:3]
        if (w, h) != (cam.width, cam.height):
            if abs(w / h - cam.width / cam.height) > 0.01:
                raise InputError(clip, f"frames with the camera's aspect ratio ({cam.width}x{cam.height})",
                                 f"{w}x{h}")
            cam = cam.rescaled(w, h)
        view = CameraView(name=camera_name, frames=frames[keep], timestamps=ts[keep] - t0v, camera=cam)
        return PredictorInput(clip=clip, cameras={camera_name: view}, ego=self.ego_state(t0v), front=camera_name,
                              t0=t0v, meta={"source": self.source})


def _rot_z(yaw: F64) -> F64:
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((len(yaw), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


def _extension(x: float, y: float, s_rate: float, dt: F64) -> tuple[F64, F64, F64]:
    """World ``x, y, yaw`` ``dt`` s (any sign) away from ``(x, y)``, keeping its lateral offset ``d`` on the road
    while the road coordinate ``s`` changes at ``s_rate`` (m/s along the reference line, as
    :mod:`lanepipe.sample` moves its ego)."""
    s0, d0, _ = sample_mod.world_to_road(np.array([x]), np.array([y]))
    s = float(s0[0]) + s_rate * dt
    wx, wy, heading = sample_mod.road_pose(s, np.full_like(s, float(d0[0])))
    return wx, wy, heading


def load_sample_context(path: str | Path) -> SampleContext:
    """Load the camera and ego-motion of a sample clip.

    Args:
        path: ``sample.mp4``, ``sample_gt.json`` or the folder holding them.

    Returns:
        :class:`SampleContext` (world frame of the sample, clock = seconds from the first frame).

    Raises:
        InputError: no ``sample_gt.json``, another format, a road layout other than this version's
            :mod:`lanepipe.sample` (the analytic extension would be wrong), or malformed poses.
    """
    p = Path(path)
    gt = p if p.suffix == ".json" else (p / "sample_gt.json" if p.is_dir() else p.with_name("sample_gt.json"))
    if not gt.is_file():
        raise InputError(str(gt), "sample_gt.json written by lanepipe.sample.write_sample", "no such file",
                         "write the sample with `lanepipe.sample.write_sample(out_dir)`")
    try:
        meta: dict[str, Any] = json.loads(gt.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(str(gt), "JSON", f"unparsable text ({e})") from None
    if meta.get("format") != "lanepipe.sample/1":
        raise InputError(str(gt), "format 'lanepipe.sample/1'", repr(meta.get("format")))
    layout = meta.get("layout", {})
    expect = {"straight_m": sample_mod.STRAIGHT_M, "radius_m": sample_mod.RADIUS_M}
    if any(abs(float(layout.get(k, np.nan)) - v) > 1e-9 for k, v in expect.items()):
        raise InputError(str(gt), f"the road layout of this lanepipe version {expect}",
                         f"{ {k: layout.get(k) for k in expect} }", "re-render the sample with this version")
    fps = float(meta["fps"])
    frames = meta.get("frames", [])
    if not frames:
        raise InputError(str(gt), "at least one frame entry", "none")
    ego = np.array([[f["ego"]["x"], f["ego"]["y"], f["ego"]["yaw"], f["ego"]["speed"]] for f in frames],
                   dtype=np.float64)
    times = np.array([float(f.get("time_s", f["index"] / fps)) for f in frames], dtype=np.float64)
    s_road, _, _ = sample_mod.world_to_road(ego[:, 0], ego[:, 1])
    if len(times) >= 2:  # the clip's own rate of progress along the road, at each end
        rate_first = float((s_road[1] - s_road[0]) / (times[1] - times[0]))
        rate_last = float((s_road[-1] - s_road[-2]) / (times[-1] - times[-2]))
    else:
        rate_first = rate_last = float(ego[0, 3])
    n_ext = int(np.ceil(EXTEND_S / _EXTEND_DT))
    dt_ext = _EXTEND_DT * np.arange(1, n_ext + 1, dtype=np.float64)
    bx, by, byaw = _extension(float(ego[0, 0]), float(ego[0, 1]), rate_first, -dt_ext[::-1])
    ax, ay, ayaw = _extension(float(ego[-1, 0]), float(ego[-1, 1]), rate_last, dt_ext)
    t_all = np.concatenate([times[0] - dt_ext[::-1], times, times[-1] + dt_ext])
    x_all = np.concatenate([bx, ego[:, 0], ax])
    y_all = np.concatenate([by, ego[:, 1], ay])
    yaw_all = np.unwrap(np.concatenate([byaw, ego[:, 2], ayaw]))
    xyz = np.stack([x_all, y_all, np.zeros_like(x_all)], axis=1)
    motion = EgoMotion(timestamps=t_all, xyz=xyz, rot=_rot_z(yaw_all), source=str(gt))
    return SampleContext(camera=PinholeCamera.from_dict(meta["camera"]), ego=motion, frame_times=times, fps=fps,
                         source=str(gt))
