"""The camera rig a clip belongs to (:func:`load_rig`): which other cameras saw the same road, their calibration,
where their videos are, and the ego body.

Sources:

* a synthetic rig sample (``rig.json`` beside ``sample.mp4``, :func:`lanepipe.sample.rig.write_rig`): four cameras
  with exact calibration; the front is ``front_wide``, posed at the rig origin; no ego body;
* a PhysicalAI-AV camera video (``zip://<clip>.<camera>.mp4::…``): the cameras Alpamayo-R1 reads that the clip has,
  with their f-theta calibration (already in the rig frame), the front being the clip's own camera (its ground
  point, the origin of the painter's pinhole frame, is the camera's translation), and the ego body from
  ``vehicle_dimensions`` when the dataset has it;
* anything else: no rig (only the front camera can be edited).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.geometry.rig import EgoBody, RigCamera


@dataclass(frozen=True)
class ClipRig:
    """The rig of one clip.

    Attributes:
        front: name of the clip's own camera (the one the pipeline segments and the painter edits first).
        cameras: name -> calibrated camera, in the rig frame.
        videos: name -> URL of that camera's video (decode it like the clip).
        front_offset: the front painter's pinhole ego-frame origin (the ground under the front camera) in the rig
            frame, ``(x, y)`` metres.
        body: the ego body, or None.
        kind: ``sample`` or ``physical_ai_av``.
    """

    front: str
    cameras: dict[str, RigCamera]
    videos: dict[str, str]
    front_offset: tuple[float, float] = (0.0, 0.0)
    body: EgoBody | None = None
    kind: str = "sample"

    def select(self, wanted: str | Sequence[str]) -> list[str]:
        """The cameras ``edit.cameras`` names, front first: ``front`` (the clip's own only), ``all``, or names
        (``front`` stands for the clip's own camera).

        Raises:
            ConfigError: a name this rig does not have (the message lists those it has).
        """
        if isinstance(wanted, str):
            if wanted == "all":
                return [self.front, *(c for c in self.cameras if c != self.front)]
            wanted = [wanted]
        names = [self.front if w == "front" else w for w in wanted]
        unknown = [n for n in names if n not in self.cameras]
        if unknown:
            raise ConfigError(f"edit.cameras: {unknown} not in this clip's rig; it has {list(self.cameras)} "
                              f"('front' = {self.front}, or 'all')")
        return [self.front, *dict.fromkeys(n for n in names if n != self.front)]


def load_rig(source: str) -> ClipRig | None:
    """The rig of the clip at ``source``, or None when it has none (see the module docstring).

    Raises:
        InputError: a ``rig.json`` or dataset calibration that cannot be read.
    """
    if source.startswith("zip://") and "::" in source:
        return _paiav_rig(source)
    p = Path(source)
    if p.suffix == ".mp4" and (p.parent / "rig.json").is_file():
        return _sample_rig(p.parent / "rig.json")
    return None


def _sample_rig(path: Path) -> ClipRig:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        entries = list(doc["cameras"])
        front = str(doc["front"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(str(path), "a rig.json with 'front' and 'cameras' (lanepipe.rig/1)", f"{e}") from None
    cams = {str(e["name"]): RigCamera.from_dict(e) for e in entries}
    videos = {str(e["name"]): str(path.parent / e["video"]) for e in entries}
    if front not in cams:
        raise InputError(str(path), f"the front camera {front!r} among the cameras", f"{list(cams)}")
    return ClipRig(front=front, cameras=cams, videos=videos, front_offset=cams[front].offset)


def _paiav_rig(source: str) -> ClipRig | None:
    from lanepipe.datasets.physical_ai_av import DEFAULT_CAMERAS, open_clip, parse_edited_name

    member, archive = source[len("zip://"):].split("::", 1)
    try:
        clip_id, camera = parse_edited_name(member)
    except InputError:
        return None
    root = Path(archive).parents[2]  # <root>/camera/<camera>/<camera>.chunk_NNNN.zip
    clip = open_clip(root, clip_id)
    names = [camera, *(c for c in DEFAULT_CAMERAS if c != camera and c in clip.cameras)]
    cams: dict[str, RigCamera] = {n: RigCamera(n, clip.camera_model(n)) for n in names}
    front = cams[camera].model
    offset = (float(front.centre_ego[0]), float(front.centre_ego[1])) if isinstance(front, FThetaCamera) \
        else (0.0, 0.0)
    return ClipRig(front=camera, cameras=cams, videos={n: clip.video_url(n) for n in names}, front_offset=offset,
                   body=_paiav_body(clip), kind="physical_ai_av")


def _paiav_body(clip: Any) -> EgoBody | None:
    """The ego body from the clip's ``vehicle_dimensions`` (None when the dataset copy has none)."""
    dims = clip.vehicle_dimensions()
    if dims is None:
        return None
    need = ("length", "width", "rear_axle_to_bbox_center")
    if any(k not in dims for k in need):
        raise InputError(f"{clip.label} vehicle_dimensions", f"columns {list(need)}", f"columns {list(dims)}")
    return EgoBody.from_dimensions(dims["length"], dims["width"], dims["rear_axle_to_bbox_center"])
