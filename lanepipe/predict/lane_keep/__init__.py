"""``lane_keep``: the embedded default trajectory predictor (CPU, no weights).

It looks at the paint in the front camera and keeps the lane it sees:

1. **Frames.** The front camera's last ``frames_used`` frames at or before t0 (no older than ``max_frame_age_s``).
2. **Bird's-eye view (BEV).** A ground grid in the **t0 ego frame** (x forward ``near … bev_far_m``, y left
   ``±bev_half_width_m``) is projected into each frame with the view's camera model (``project``), after moving
   the grid into that frame's ego pose (interpolated from the 16-step ego history), so that older frames line
   up with the newest and fill the gaps of dashed lines. Lightness and yellowness are resampled onto it.
3. **Paint.** A horizontal top-hat ``tophat_width_m`` wide on each BEV row keeps thin bright / yellow stripes;
   the score is soft-thresholded against the BEV's own top-hat noise and pooled over the frames.
4. **Boundaries.** A small Hough transform over the near ``seed_range_m`` of the BEV (offset, heading,
   curvature) gives, for each lateral offset, the painted length along its best curve; on each side the peak
   nearest the ego among the strong ones, ``search_min_m … search_max_m`` away, seeds the ego lane's boundary.
   Each seed is followed up the BEV with sliding windows (the line at the paint's stroke-wide peak, refined by a
   ``position_sigma_m`` Gaussian mean shift, so a double line counts by its middle and paint beside the line
   does not pull it), its curve predicting the windows, and fitted with ``y(x) = a + b x + c x²`` (offset,
   heading, half the curvature), weighted by painted length (at most the window's length) and towards the near
   range. Two boundaries are refitted jointly as parallel curves.
5. **Lane centre.** Mean of the two boundaries when both are found and ``min_lane_width_m ≤ width ≤
   max_lane_width_m``; one boundary ∓ ``lane_width_m / 2`` when only one is (or the width is implausible: the
   better supported one is kept); straight ahead when none is. Heading and curvature are bounded
   (``max_heading_rad``, ``max_curvature``). A fallback camera (the view has none) is posed from the lines'
   vanishing point and its height scaled so the measured lane is ``lane_width_m`` wide.
6. **Drive.** A kinematic vehicle starts at the origin heading +x and follows the lane centre (a circle of the
   fitted offset, heading and curvature) with pure pursuit, lookahead ``max(min_lookahead_m, speed ·
   lookahead_s)``, curvature command bounded by ``max_curvature``, at the current speed (``EgoState.speed`` or
   ``speed_mps``) for 6.4 s → ``(1, 64, 3) float32`` waypoints at 10 Hz (z = 0, the t0 ground plane).

On a circle pure pursuit commands exactly the circle's curvature, so a car on the lane centre stays on it; a
lateral offset is removed over about one lookahead distance. Shifting or removing a painted boundary moves
the fitted centre and therefore the path: that is the point of the predictor.

Coordinates: ego frame at t0, x forward, y left, z up, metres (:mod:`lanepipe.predict.base`).
"""

from lanepipe.predict.lane_keep.boundaries import (
    Boundary,
    ParallelFit,
    bev_grid,
    find_boundaries,
    fit_parallel,
    paint_score,
    seed_profile,
    track_boundary,
)
from lanepipe.predict.lane_keep.config import LANE_WIDTH_M, LaneKeepConfig
from lanepipe.predict.lane_keep.drive import LaneCentre, drive_lane, lane_centre
from lanepipe.predict.lane_keep.predictor import LaneKeepPredictor

__all__ = ["LANE_WIDTH_M", "Boundary", "LaneCentre", "LaneKeepConfig", "LaneKeepPredictor", "ParallelFit", "bev_grid",
           "drive_lane", "find_boundaries", "fit_parallel", "lane_centre", "paint_score", "seed_profile",
           "track_boundary"]
