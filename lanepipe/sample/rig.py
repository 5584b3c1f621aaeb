"""The sample's multi-camera rig: the same road, car and ego motion rendered by four calibrated cameras, with exact
ground truth per camera (:func:`render_rig`, :func:`write_rig`).

Cameras (rig frame = the sample's ego frame: origin on the ground under the front camera, x forward, y left):

* ``front_wide``: the single-camera sample's own pinhole (70 deg, 1.5 m high, pitched 5 deg down); its frames are
  exactly :func:`lanepipe.sample.render_sample`'s;
* ``front_tele``: a 30 deg pinhole at the same mount, pitched 1.5 deg down (it sees 20-150 m ahead);
* ``cross_left`` / ``cross_right``: 120 deg f-theta lenses (``r = f θ (1 - 0.05 θ²)``) on the front corners of the
  roof line, 0.85 m either side of the axis and 1.25 m high, turned 60 deg out and pitched 14 deg down, so they see
  the lane boundaries beside and ahead of the vehicle (as cross-traffic cameras do).

No ego body is rendered (the road is visible down to each camera's image border). Rendering is ray-cast per camera
with :mod:`lanepipe.sample.render`: colours come from road coordinates, so every camera shows the same markings at
the same road position.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.errors import ConfigError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ftheta import FThetaCamera, camera_rotation, fit_backward_poly
from lanepipe.geometry.quaternion import matrix_to_quat_xyzw
from lanepipe.geometry.rig import RigCamera
from lanepipe.io import video
from lanepipe.sample.clip import render_sample, sample_metadata
from lanepipe.sample.render import (
    GRAIN_PAD,
    Scene,
    car_poses,
    ego_poses,
    geometry,
    lane_lines,
    render_frame,
    tree_profile,
)
from lanepipe.sample.road import (
    CAMERA_FOV_DEG,
    CAMERA_HEIGHT_M,
    CAMERA_PITCH_DEG,
    SUN_DIR_WORLD,
    road_pose,
    world_to_ego,
    world_to_road,
)
from lanepipe.sample.texture import coarse_texture, fine_texture
from lanepipe.sample.truth import LaneLine, SampleClip

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

#: Camera names of the rig, in the order they are rendered and listed.
RIG_CAMERAS: tuple[str, ...] = ("front_wide", "front_tele", "cross_left", "cross_right")
FRONT = "front_wide"
TELE_FOV_DEG = 30.0
TELE_PITCH_DEG = 1.5
CROSS_FOV_DEG = 120.0
CROSS_YAW_DEG = 60.0
CROSS_PITCH_DEG = 14.0
CROSS_MOUNT = (0.0, 0.85, 1.25)  # x, |y|, z in the rig frame (metres)


def _ftheta(width: int, height: int, fov_deg: float, yaw_deg: float, pitch_deg: float,
            translation: tuple[float, float, float], name: str) -> FThetaCamera:
    """An f-theta lens ``r = f θ (1 - 0.05 θ²)`` whose horizontal field of view spans the image width."""
    half = math.radians(fov_deg) / 2
    f = (width / 2) / (half * (1 - 0.05 * half**2))
    fw = (0.0, f, 0.0, -0.05 * f, 0.0)
    bw = fit_backward_poly(fw, max_angle_rad=min(1.2 * math.hypot(1.0, height / width) * half, 1.5))
    q = matrix_to_quat_xyzw(camera_rotation(math.radians(yaw_deg), math.radians(pitch_deg)))
    return FThetaCamera(width=width, height=height, cx=(width - 1) / 2, cy=(height - 1) / 2, fw_poly=fw,
                        bw_poly=bw, quat_xyzw=(float(q[0]), float(q[1]), float(q[2]), float(q[3])),
                        translation=translation, name=name)


def rig_cameras(width: int, height: int) -> dict[str, RigCamera]:
    """The four cameras of the rig for ``width`` x ``height`` images (see the module docstring)."""
    x, y, z = CROSS_MOUNT
    return {
        "front_wide": RigCamera("front_wide", PinholeCamera.from_fov(
            width, height, CAMERA_FOV_DEG, mount_height_m=CAMERA_HEIGHT_M, pitch_deg=CAMERA_PITCH_DEG)),
        "front_tele": RigCamera("front_tele", PinholeCamera.from_fov(
            width, height, TELE_FOV_DEG, mount_height_m=CAMERA_HEIGHT_M, pitch_deg=TELE_PITCH_DEG)),
        "cross_left": RigCamera("cross_left", _ftheta(width, height, CROSS_FOV_DEG, CROSS_YAW_DEG, CROSS_PITCH_DEG,
                                                      (x, y, z), "cross_left")),
        "cross_right": RigCamera("cross_right", _ftheta(width, height, CROSS_FOV_DEG, -CROSS_YAW_DEG,
                                                        CROSS_PITCH_DEG, (x, -y, z), "cross_right")),
    }


@dataclass(frozen=True)
class RigView:
    """One camera of the rendered rig: ``(T, H, W, 3) uint8`` frames, ``(T, H, W) bool`` road masks, lane polylines
    (pixels) per frame and the camera."""

    camera: RigCamera
    frames: U8
    road_masks: Bool
    lanes: list[list[LaneLine]]


@dataclass(frozen=True)
class RigSample:
    """The front sample (:class:`SampleClip`, identical to :func:`render_sample`'s) and every rig camera's view."""

    front: SampleClip
    views: dict[str, RigView]

    @property
    def ego(self) -> F64:
        return self.front.ego

    @property
    def fps(self) -> float:
        return self.front.fps


def render_rig(num_frames: int = 48, fps: float = 8.0, width: int = 960, height: int = 540, seed: int = 0,
               cameras: tuple[str, ...] = RIG_CAMERAS) -> RigSample:
    """Render the rig: :func:`render_sample` for ``front_wide``, the same scene through every other camera.

    Args:
        num_frames, fps, width, height, seed: as :func:`render_sample` (every camera has the same image size).
        cameras: which of :data:`RIG_CAMERAS` to render (``front_wide`` always is).

    Raises:
        ConfigError: an unknown camera name, or :func:`render_sample`'s argument errors.
    """
    unknown = [c for c in cameras if c not in RIG_CAMERAS]
    if unknown:
        raise ConfigError(f"render_rig: unknown camera(s) {unknown}; choose from {list(RIG_CAMERAS)}")
    front = render_sample(num_frames=num_frames, fps=fps, width=width, height=height, seed=seed)
    cams = rig_cameras(width, height)
    # the same random draws as render_sample, in the same order: one scene, several cameras
    rng = np.random.default_rng(seed)
    coarse = coarse_texture(rng)
    fine = fine_texture(rng)
    tree_dist, tree_height = tree_profile(rng)
    paints = np.array([[0.55, 0.06, 0.06], [0.62, 0.63, 0.65], [0.08, 0.18, 0.42], [0.85, 0.85, 0.83]],
                      dtype=np.float32)
    paint = paints[int(rng.integers(len(paints)))]
    grain_seeds = rng.integers(GRAIN_PAD * GRAIN_PAD, size=num_frames)
    grain = 0.006 * rng.standard_normal((height + GRAIN_PAD, width + GRAIN_PAD, 1), dtype=np.float32)
    ego = ego_poses(num_frames, fps)
    cars = car_poses(num_frames, fps)
    views = {FRONT: RigView(cams[FRONT], front.frames, front.road_masks, front.lanes)}
    for name in cameras:
        if name == FRONT:
            continue
        model = cams[name].model
        scene = Scene(cam=model, geo=geometry(model, coarse, fine), coarse=coarse, fine=fine, tree_dist=tree_dist,
                      tree_height=tree_height, paint=paint, sun=SUN_DIR_WORLD / np.linalg.norm(SUN_DIR_WORLD),
                      grain=grain)
        frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
        road = np.empty((num_frames, height, width), dtype=bool)
        car = np.empty((num_frames, height, width), dtype=bool)

        def one(t: int, sc: Scene = scene, fr: U8 = frames, rd: Bool = road, cm: Bool = car) -> None:
            fr[t], rd[t], cm[t] = render_frame(sc, ego[t], cars[t], int(grain_seeds[t]))

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(one, range(num_frames)))
        views[name] = RigView(cams[name], frames, road, [lane_lines(model, ego[t]) for t in range(num_frames)])
    return RigSample(front=front, views=views)


def ground_truth_line(ego_pose: F64, offset_m: float, behind_m: float = 20.0, ahead_m: float = 150.0,
                      step_m: float = 0.25) -> F64:
    """``(N, 2)`` rig-frame ``(x, y)`` of the road line ``offset_m`` left of the reference line, from ``behind_m``
    behind to ``ahead_m`` ahead of the ego (along the road), at frame pose ``ego_pose`` ``(4,)``."""
    s_ego, _, _ = world_to_road(ego_pose[:1], ego_pose[1:2])
    s = float(s_ego[0]) + np.arange(-behind_m, ahead_m + step_m / 2, step_m)
    wx, wy, _ = road_pose(s, np.full_like(s, offset_m))
    ex, ey = world_to_ego(wx, wy, ego_pose)
    return np.stack([ex, ey], axis=1)


def rig_metadata(rig: RigSample) -> dict[str, Any]:
    """``rig.json``: the cameras (calibration, offset, files) and per camera and frame the lane polylines."""
    cams = []
    for name, view in rig.views.items():
        entry = view.camera.to_dict()
        entry.update(video="sample.mp4" if name == FRONT else f"rig/{name}.mp4",
                     masks="sample_gt.npz" if name == FRONT else f"rig/{name}_gt.npz",
                     lanes=[[ln.to_dict() for ln in lines] for lines in view.lanes])
        cams.append(entry)
    return {"format": "lanepipe.rig/1", "frame": "rig = sample ego frame: origin on the ground under front_wide, "
            "x forward, y left, z up (metres)", "front": FRONT, "fps": rig.fps, "num_frames": rig.front.num_frames,
            "body": None, "cameras": cams}


def write_rig(out_dir: str | Path, **kwargs: Any) -> Path:
    """Render the rig and write it to ``out_dir``: the single-camera sample's files (``sample.mp4``,
    ``sample_gt.npz``, ``sample_gt.json``, unchanged), ``rig/<camera>.mp4`` and ``rig/<camera>_gt.npz``
    (``road_masks``) for every other camera, and ``rig.json`` (:func:`rig_metadata`).

    Returns:
        The path of ``sample.mp4``.
    """
    out = Path(out_dir)
    (out / "rig").mkdir(parents=True, exist_ok=True)
    rig = render_rig(**kwargs)
    s = rig.front
    video.encode(s.frames, str(out / "sample.mp4"), s.fps)
    np.savez_compressed(out / "sample_gt.npz", road_masks=s.road_masks, vehicle_masks=s.vehicle_masks, ego=s.ego)
    (out / "sample_gt.json").write_text(json.dumps(sample_metadata(s), separators=(",", ":")))
    for name, view in rig.views.items():
        if name == FRONT:
            continue
        video.encode(view.frames, str(out / "rig" / f"{name}.mp4"), s.fps)
        np.savez_compressed(out / "rig" / f"{name}_gt.npz", road_masks=view.road_masks)
    tmp = out / "rig.json.tmp"
    tmp.write_text(json.dumps(rig_metadata(rig), separators=(",", ":")))
    tmp.replace(out / "rig.json")
    return out / "sample.mp4"
