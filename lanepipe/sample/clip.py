"""The sample workflow: :func:`render_sample` (frames + ground truth), :func:`sample_metadata` and
:func:`write_sample` (video, masks, ``sample_gt.json``).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.geometry.camera import PinholeCamera
from lanepipe.io import video
from lanepipe.sample.render import (
    GRAIN_PAD,
    Scene,
    car_poses,
    check_args,
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
    CAR_SIZE_M,
    DASH_M,
    DOUBLE_LINE_SPACE_M,
    DOUBLE_LINE_WIDTH_M,
    EGO_OFFSET_M,
    GAP_M,
    LANE_WIDTH_M,
    LAYOUT,
    LINE_WIDTH_M,
    PAVED_D,
    RADIUS_M,
    STRAIGHT_M,
    SUN_DIR_WORLD,
    _LineSpec,
)
from lanepipe.sample.texture import coarse_texture, fine_texture
from lanepipe.sample.truth import SampleClip

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Floats = npt.NDArray[np.floating[Any]]  # float32 or float64
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


def render_sample(num_frames: int = 48, fps: float = 8.0, width: int = 960, height: int = 540,
                  seed: int = 0, layout: tuple[_LineSpec, ...] = LAYOUT) -> SampleClip:
    """Render the synthetic sample clip and its ground truth.

    Args:
        num_frames: number of frames T (>= 1). The ego drives 15 m/s, so 48 frames at 8 fps cover 90 m.
        fps: frame rate; sets how far the ego moves between frames. ``num_frames / fps`` is at most 30 s.
        width, height: image size W, H in pixels (>= 32). The camera keeps a 70 deg horizontal FOV.
        seed: seeds the asphalt texture, cracks, patches, tree line, car colour and sensor grain.
        layout: the painted lines (default ``LAYOUT``; e.g. :func:`~lanepipe.sample.road.with_centre_line` for
            another double-line spacing or a passing zone).

    Returns:
        A :class:`SampleClip`: ``(T, H, W, 3) uint8`` frames, ``(T, H, W) bool`` road and car masks, lane
        polylines in pixels, ``(T, 4)`` world ego poses and the camera.

    Raises:
        ConfigError: a non-positive frame count or fps, a size under 32 pixels, a clip over 30 s.
    """
    check_args(num_frames, fps, width, height)
    rng = np.random.default_rng(seed)
    cam = PinholeCamera.from_fov(width, height, CAMERA_FOV_DEG, mount_height_m=CAMERA_HEIGHT_M,
                                 pitch_deg=CAMERA_PITCH_DEG)
    coarse = coarse_texture(rng)
    fine = fine_texture(rng)
    tree_dist, tree_height = tree_profile(rng)
    paints = np.array([[0.55, 0.06, 0.06], [0.62, 0.63, 0.65], [0.08, 0.18, 0.42], [0.85, 0.85, 0.83]],
                      dtype=np.float32)
    paint = paints[int(rng.integers(len(paints)))]
    grain_seeds = rng.integers(GRAIN_PAD * GRAIN_PAD, size=num_frames)
    grain = 0.006 * rng.standard_normal((height + GRAIN_PAD, width + GRAIN_PAD, 1), dtype=np.float32)
    scene = Scene(cam=cam, geo=geometry(cam, coarse, fine), coarse=coarse, fine=fine, tree_dist=tree_dist,
                   tree_height=tree_height, paint=paint, sun=SUN_DIR_WORLD / np.linalg.norm(SUN_DIR_WORLD),
                   grain=grain, layout=layout)
    ego = ego_poses(num_frames, fps)
    cars = car_poses(num_frames, fps)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    road = np.empty((num_frames, height, width), dtype=bool)
    vehicle = np.empty((num_frames, height, width), dtype=bool)

    def one(t: int) -> None:
        frames[t], road[t], vehicle[t] = render_frame(scene, ego[t], cars[t], int(grain_seeds[t]))

    # numpy and OpenCV release the GIL on large arrays, so two threads use two cores; frames are independent
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(num_frames)))
    lanes = [lane_lines(cam, ego[t], layout) for t in range(num_frames)]
    return SampleClip(frames=frames, road_masks=road, vehicle_masks=vehicle, lanes=lanes, ego=ego, camera=cam,
                      fps=float(fps), vehicle=cars)


def sample_metadata(sample: SampleClip) -> dict[str, Any]:
    """The JSON ground truth of a sample (what :func:`write_sample` stores in ``sample_gt.json``)."""
    frames = []
    for t in range(sample.num_frames):
        x, y, yaw, speed = (float(v) for v in sample.ego[t])
        entry: dict[str, Any] = {"index": t, "time_s": t / sample.fps,
                                 "ego": {"x": x, "y": y, "yaw": yaw, "speed": speed},
                                 "lanes": [ln.to_dict() for ln in sample.lanes[t]]}
        if sample.vehicle.shape[0] == sample.num_frames:
            vx, vy, vyaw = (float(v) for v in sample.vehicle[t])
            entry["vehicle"] = {"x": vx, "y": vy, "yaw": vyaw, "length_m": CAR_SIZE_M[0],
                                "width_m": CAR_SIZE_M[1], "height_m": CAR_SIZE_M[2]}
        frames.append(entry)
    return {
        "format": "lanepipe.sample/1",
        "fps": sample.fps,
        "num_frames": sample.num_frames,
        "width": sample.camera.width,
        "height": sample.camera.height,
        "camera": sample.camera.to_dict(),
        "frames_note": ("ego pose is world x, y (m), yaw (rad), speed (m/s) of the ground point under the "
                        "camera; lane points are (u, v) pixels, near to far, not cut by the car's occlusion"),
        "layout": {
            "lane_width_m": LANE_WIDTH_M, "line_width_m": LINE_WIDTH_M,
            "double_line_width_m": DOUBLE_LINE_WIDTH_M, "double_line_space_m": DOUBLE_LINE_SPACE_M,
            "dash_m": DASH_M, "gap_m": GAP_M, "straight_m": STRAIGHT_M, "radius_m": RADIUS_M,
            "curve": "left", "paved_d_m": list(PAVED_D), "ego_offset_m": EGO_OFFSET_M,
            "lines": [{"id": sp.id, "side": sp.side, "color": sp.color, "pattern": sp.pattern,
                       "count": sp.count, "offset_m": sp.offset_m} for sp in LAYOUT],
            "standard": "US MUTCD 2009: §3A.06 widths and patterns, §3B.01 centre, §3B.04 lane, §3B.06 edge",
        },
        "frames": frames,
    }


def write_sample(out_dir: str | Path, **kwargs: Any) -> Path:
    """Render the sample and write it to ``out_dir``.

    Writes ``sample.mp4`` (H.264, ``fps``), ``sample_gt.npz`` (``road_masks`` and ``vehicle_masks``,
    ``(T, H, W) bool``, ``ego`` ``(T, 4) float64``; compressed) and ``sample_gt.json``
    (see :func:`sample_metadata`).

    Args:
        out_dir: local folder; created if missing.
        **kwargs: passed to :func:`render_sample` (``num_frames``, ``fps``, ``width``, ``height``, ``seed``).

    Returns:
        The path of ``sample.mp4``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = render_sample(**kwargs)
    mp4 = out / "sample.mp4"
    video.encode(sample.frames, str(mp4), sample.fps)
    np.savez_compressed(out / "sample_gt.npz", road_masks=sample.road_masks, vehicle_masks=sample.vehicle_masks,
                        ego=sample.ego)
    (out / "sample_gt.json").write_text(json.dumps(sample_metadata(sample), separators=(",", ":")))
    return mp4
