"""Classical lane-attribute detector: the embedded default verifier (CPU, no weights).

It reads the pixels only (it knows nothing of any instruction) and reports, for the ego lane's left and right
boundary, how many lines there are (none / single / double), their colour and their pattern. Each analysed
frame (at most ``max_frames``, evenly spread over the clip) is processed at ``work_width``:

1. **Paint.** Lane paint is thin and brighter (white) or yellower (yellow) than the pavement around it: a
   square morphological top-hat of Lab lightness L and of b* gives a paint-strength map, thresholded against
   the top-hat noise of the frame's lower part and gated to white or yellow chroma. A structure-tensor
   coherence test keeps the part that forms oriented ridges (``lines``): foliage, gravel and car highlights
   drop out.
2. **Geometry.** The longest straight ``lines`` segments (and, weakly, Canny edges) vote for the vanishing
   point; segments leaning left and right must agree (geometric mean of the two votes), and the clip's
   median is used. A pixel ``(x, y)`` below it lies at lateral ``X = (x - vp_x) h / (y - vp_y)`` metres and
   at a depth proportional to ``1 / (y - vp_y)`` (``h`` = assumed camera height). The ego vehicle's hood,
   if visible, is found as a long horizontal edge below which the road lines stop.
3. **Lines.** Peaks of a histogram of paint over lateral ``X`` are line candidates. From the camera centre
   outwards, each candidate is traced band by band from the bottom of the road up to the far limit
   (prediction towards the vanishing point, observation = paint near it) and fitted with a quadratic
   ``x(y)``, which follows curves and lens distortion. The first candidate on each side that looks like paint
   (long enough, thin enough, brighter or yellower than the pavement beside it) is the boundary.
4. **Attributes.** Along the traced curve: a cross profile in lateral metres (two humps with a gap = double),
   paint coverage over equal steps of *ground depth* (solid ~1; dashed, 10 ft lines with 30 ft gaps,
   ~0.25-0.5 with blur), and the paint's Lab b* against the pavement beside it (yellow vs white; a dimly lit
   double line, at night, needs less: its colour is weak and double lines are mostly yellow centre lines).
5. **Vote.** Frames vote on count; colour and coverage are pooled over the frames that saw the line (median,
   mean); the confidence combines the vote shares and the margins to the decision thresholds.

A single still frame is analysed the same way (T = 1) but a dash gap or an occlusion then weighs more.
Coordinates are image pixels ``(x, y)``: x to the right, y down, in the frame they are measured in (work
resolution inside, input resolution in reports).
"""

from lanepipe.verify.base import verdict
from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector.detector import LaneDetector

__all__ = ["LaneDetector", "LaneDetectorConfig", "verdict"]
