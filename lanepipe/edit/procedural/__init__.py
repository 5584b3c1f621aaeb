"""The procedural painter: the embedded default edit backend (CPU, no weights).

For one clip, its road masks and a :class:`~lanepipe.lanes.instructions.LaneSpec` it

1. **analyses the clip once** (cached across QA retries): frames are shrunk to ``work_width``; paint-like pixels
   are found with row-scaled horizontal top-hats of lightness and yellowness (:mod:`lanepipe.lanes.paint`).
   The camera is the clip's own (``meta["camera"]``, a :class:`~lanepipe.geometry.camera.PinholeCamera` or its dict;
   an f-theta camera, e.g. PhysicalAI-AV's, is painted through a level pinhole view at its centre and the edit mapped
   back: :mod:`~lanepipe.edit.procedural.rectify`) or the fallback pinhole (``fov_deg``, ``mount_height_m``) whose
   pitch and yaw come from the vanishing point of the existing lines (Hough segments, median over frames). Each
   frame's paint is warped to a bird's-eye view (BEV) where the ego lane's left and right boundaries are followed
   with sliding windows and fitted with a cubic ``y(x)`` (offset, heading, curvature and its change, straight beyond
   the fitted range); where both are seen they share heading and curvature (weighted by their paint support), and the
   weaker one (a dashed line) is tracked again with its windows following the stronger one's course; tracks are gated
   and smoothed over time by a Gaussian over neighbouring frames weighted by their agreement with the median course
   (a curve the car drives into is not flattened); a missing side is put one lane width from the other, and with no
   line at all a 3.66 m lane centred on the camera is assumed. With the fallback camera the mount height is rescaled
   so that the measured lane is ``lane_width_m`` wide. Ego speed comes from ``meta["ego"]`` (``(T, 4)`` x, y, yaw,
   speed) or ``meta["speed_mps"]``, else from the road texture moving down a lane-aligned BEV between frames
   (normalised cross-correlation), else ``default_speed_mps``;
2. **erases** the old paint of the named boundaries (``none@both``: the ego lane's two; other lines keep
   theirs): in a corridor along each boundary's track, paint strokes found by hysteresis on the paint
   evidence, down to the lowest road row, also where the road mask misses a yellow line (shade, bright
   paving); filled with push-pull interpolation of the pavement colour plus texture copied from beside the line
   (:mod:`lanepipe.edit.erase`); pavement, shoulders, kerbs and cars are not paint and are left alone;
3. **paints** the requested lines: every road pixel near the boundary gets its ground coordinates ``(x, y)``;
   its coverage is the exact overlap of the pixel's ground footprint (widened by the image blur) with each
   stripe, across the line and, for broken lines, along it, with the dash pattern anchored to the road (its
   phase advances by the distance driven). This is the BEV drawing resampled with a box filter per pixel —
   analytic anti-aliasing, equivalent to supersampling it. Colour is the local pavement's brightness times the
   clip's own paint gain (measured on its markings, or a standard; :mod:`~lanepipe.edit.procedural.appearance`),
   so white stays brighter than concrete, shade and night asphalt alike, keeping the asphalt's grain, with a
   road-anchored wear texture. New paint goes only inside the road mask.

Sizes come from :class:`~lanepipe.lanes.instructions.MarkingSizes` (US MUTCD 2009 §3A.06).
"""

from lanepipe.edit.procedural.painter import ProceduralPainter
from lanepipe.edit.procedural.params import PaintedLine, PaintParams, PaintResult

__all__ = ["PaintParams", "PaintResult", "PaintedLine", "ProceduralPainter"]
