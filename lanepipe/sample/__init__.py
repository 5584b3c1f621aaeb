"""A synthetic driving clip with exact ground truth: road masks, lane polylines, ego poses, camera.

The clip is rendered physically, not drawn: every pixel below the horizon is ray-cast through a
:class:`~lanepipe.geometry.camera.PinholeCamera` to the ground plane, the ground point is moved to the world frame
with the ego pose, and then to road coordinates ``(s, d)`` (arc length along the road's reference line and
lateral offset, positive to the left). Colours come from those coordinates, so markings, dashes and texture
stay consistent with the ground truth at any distance.

Road (all lengths in metres; pavement-marking rules from the US MUTCD, 2009 edition):

* Reference line: straight for ``STRAIGHT_M`` then a left-hand arc of radius ``RADIUS_M``.
* Three 12 ft (3.66 m) lanes on a two-way road: one opposing lane (d in [0, 3.66]), the ego lane
  (d in [-3.66, 0]) and a second same-direction lane on the right (d in [-7.32, -3.66]).
* Lines, left to right in the image (``LAYOUT``):

  - id 0 ``edge``: solid white edge line of the opposing lane at d = +3.66 (MUTCD §3B.06),
  - id 1 ``left``: double solid yellow centre line at d = 0, the ego lane's left boundary (§3B.01,
    two-direction no-passing marking); two 0.12 m lines with a 0.10 m (about 4 in) space,
  - id 2 ``right``: broken (dashed) white lane line at d = -3.66 (§3B.04), 3.05 m (10 ft) segments with
    9.14 m (30 ft) gaps (§3A.06), the ego lane's right boundary,
  - id 3 ``edge``: solid white edge line at d = -7.32 (§3B.06).

  Line widths follow §3A.06 ("normal line 4 to 6 in wide"): 0.15 m for single lines. The dash phase is
  measured along the reference line ``s``.
* Pavement extends ``PAVED_MARGIN_M`` beyond each edge line; then an unpaved gravel shoulder, then grass.

The ego drives 15 m/s along the centre of its lane; the camera (70 deg FOV, 1.5 m high, pitched 5 deg down)
is fixed to it. A car drives in the right lane, 27 m ahead at first and 1 m/s slower (never closer than 12 m).
The road mask is the visible paved area, markings included, excluding the car, the shoulder, grass, trees
and sky. Lane polylines are *not* cut where the car hides them.

Frames are ``(T, H, W, 3) uint8`` RGB. Rendering is deterministic for a given seed.

Modules: :mod:`~lanepipe.sample.road` (sizes, layout, road coordinates), :mod:`~lanepipe.sample.texture`
(ground textures), :mod:`~lanepipe.sample.render` (one frame, ray-cast), :mod:`~lanepipe.sample.truth`
(:class:`LaneLine`, :class:`SampleClip`), :mod:`~lanepipe.sample.clip` (:func:`render_sample`,
:func:`write_sample`) and :mod:`~lanepipe.sample.rig` (the same road through a wide, a tele and two cross
cameras). The names below are the sample's public API.
"""

from __future__ import annotations

from lanepipe.sample.clip import render_sample, sample_metadata, write_sample
from lanepipe.sample.road import (
    DASH_M,
    EGO_OFFSET_M,
    EGO_SPEED_MPS,
    GAP_M,
    LANE_WIDTH_M,
    LAYOUT,
    RADIUS_M,
    STRAIGHT_M,
    road_pose,
    world_to_road,
)
from lanepipe.sample.truth import LaneLine, SampleClip

__all__ = ["DASH_M", "EGO_OFFSET_M", "EGO_SPEED_MPS",
           "GAP_M", "LANE_WIDTH_M", "LAYOUT", "RADIUS_M", "STRAIGHT_M", "LaneLine", "SampleClip", "render_sample",
           "road_pose", "sample_metadata", "world_to_road", "write_sample"]
