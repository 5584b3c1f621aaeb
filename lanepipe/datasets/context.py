"""What a clip carries besides pixels: camera model, ego-motion, other cameras.

Sources, tried in order:
- a synthetic sample clip (``sample_gt.json`` beside the mp4): exact camera and ego-motion;
- a PhysicalAI-AV clip (``<clip_id>.<camera>.mp4`` under a dataset root given in config): f-theta calibration,
  ego-motion, the other cameras;
- anything else: a fallback pinhole camera (the one the edit stage estimated from the clip's vanishing point
  and lane width when available, else FOV/height/pitch from config) and no ego-motion — metrics against ground
  truth are then reported as absent, never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ego import EgoMotion


@dataclass(frozen=True)
class ClipContext:
    """Calibration and motion for one clip.

    Attributes:
        camera: front camera model (``project(points_ego) -> (pixels, valid)``).
        ego: pose timeline or None; ``clip time + time_offset`` = ego time.
        time_offset: seconds to add to a clip timestamp to get an ego-motion timestamp.
        speed_hint: m/s to assume when there is no ego-motion (estimated from the image, or config).
        kind: ``sample`` | ``physical_ai_av`` | ``fallback``.
        extra_cameras: name → callable(times_s) -> CameraView for multi-camera predictors.
    """

    camera: Any
    ego: EgoMotion | None
    time_offset: float = 0.0
    speed_hint: float | None = None
    kind: str = "fallback"
    notes: list[str] = field(default_factory=list)
    extra_cameras: dict[str, Any] = field(default_factory=dict)


def fallback_camera(width: int, height: int, fov_deg: float, mount_height_m: float, pitch_deg: float,
                    estimated: dict[str, Any] | None = None) -> tuple[PinholeCamera, str]:
    """The edit stage's estimated pinhole (rescaled to this size) if given, else one from FOV/height/pitch."""
    if estimated and estimated.get("model", "pinhole") == "pinhole":
        cam = PinholeCamera.from_dict(estimated)
        if (cam.width, cam.height) != (width, height):
            cam = cam.rescaled(width, height)
        return cam, "camera estimated by the edit stage (vanishing point + lane width)"
    cam = PinholeCamera.from_fov(width, height, fov_deg, mount_height_m=mount_height_m, pitch_deg=pitch_deg)
    return cam, f"fallback pinhole (fov {fov_deg} deg, height {mount_height_m} m, pitch {pitch_deg} deg)"


def load_context(source: str, width: int, height: int, *, fov_deg: float = 60.0, mount_height_m: float = 1.5,
                 pitch_deg: float = 2.0, estimated_camera: dict[str, Any] | None = None,
                 speed_hint: float | None = None) -> ClipContext:
    """Find the calibration and ego-motion of the clip at ``source`` (see module docstring)."""
    if source.startswith("zip://") and "::" in source:
        ctx = _paiav_context(source)
        if ctx is not None:
            return ctx
    p = Path(source)
    if p.suffix == ".mp4" and (p.parent / "sample_gt.json").is_file():
        from lanepipe.datasets.sample_context import load_sample_context

        cam, ego = load_sample_context(p)
        extra = _sample_rig_views(p)
        notes = ["sample ground truth"] + ([f"rig cameras {sorted(extra)}"] if extra else [])
        return ClipContext(camera=cam, ego=ego, kind="sample", notes=notes, extra_cameras=extra)
    cam, note = fallback_camera(width, height, fov_deg, mount_height_m, pitch_deg, estimated_camera)
    return ClipContext(camera=cam, ego=None, speed_hint=speed_hint, kind="fallback",
                       notes=[note, "no ego-motion: minADE/minFDE absent"])


def _sample_rig_views(mp4: Path) -> dict[str, Any]:
    """The other cameras of a sample rig (``rig.json`` beside the sample): name → callable(t0_s) -> CameraView with
    that camera's last 4 frames at or before t0 (empty without a rig)."""
    import numpy as np

    from lanepipe.datasets.rig import load_rig
    from lanepipe.io.clip_cache import decode_cached
    from lanepipe.types import CameraView

    rig = load_rig(str(mp4))
    if rig is None:
        return {}

    def view_at(cam: str) -> Any:
        model = rig.cameras[cam].model

        def at(t0_s: float) -> CameraView:
            clip = decode_cached(rig.videos[cam], name=f"{mp4.parent.name}.{cam}", target_fps=None, max_frames=10_000)
            keep = np.flatnonzero(clip.timestamps <= t0_s + 1e-6)[-4:]
            return CameraView(name=cam, frames=clip.frames[keep], timestamps=clip.timestamps[keep] - t0_s, camera=model)

        return at

    return {cam: view_at(cam) for cam in rig.cameras if cam != rig.front}


def _paiav_context(source: str) -> ClipContext | None:
    """Context of a PhysicalAI-AV camera video addressed as ``zip://<clip>.<camera>.mp4::<root>/camera/…zip``."""
    import numpy as np

    from lanepipe.datasets.physical_ai_av import DEFAULT_CAMERAS, open_clip, parse_edited_name
    from lanepipe.types import CameraView

    member, archive = source[len("zip://"):].split("::", 1)
    try:
        clip_id, camera = parse_edited_name(member)
    except Exception:
        return None
    root = Path(archive).parents[2]  # <root>/camera/<camera>/<camera>.chunk_NNNN.zip
    clip = open_clip(root, clip_id)
    first_s = float(clip.frame_timestamps(camera)[0]) / 1e6

    def view_at(cam: str) -> Any:
        model = clip.camera_model(cam)

        def at(t0_s: float) -> CameraView:
            ts = np.round((t0_s + np.array([-0.3, -0.2, -0.1, 0.0])) * 1e6).astype(np.int64)
            _, picked = clip.select_frames(cam, ts)
            return CameraView(name=cam, frames=clip.frames(cam, ts), timestamps=picked / 1e6 - t0_s, camera=model)

        return at

    extra = {cam: view_at(cam) for cam in DEFAULT_CAMERAS if cam != camera and cam in clip.cameras}
    return ClipContext(camera=clip.camera_model(camera), ego=clip.egomotion(), time_offset=first_s,
                       kind="physical_ai_av", notes=[f"PhysicalAI-AV clip {clip_id}, front = {camera}"],
                       extra_cameras=extra)


def camera_from_dict(d: dict[str, Any]) -> Any:
    """Rebuild a camera model written by ``to_dict()`` (pinhole or f-theta)."""
    if d.get("model", "pinhole") == "pinhole":
        return PinholeCamera.from_dict(d)
    if d.get("model") == "ftheta":
        from lanepipe.geometry.ftheta import FThetaCamera

        return FThetaCamera.from_dict(d)
    raise ValueError(f"camera dict: unknown model {d.get('model')!r}")
