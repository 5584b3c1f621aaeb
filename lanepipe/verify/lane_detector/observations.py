"""What the lane detector sees in one frame: line observations, the frame's road geometry, small helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


@dataclass(frozen=True)
class LineObs:
    """One boundary seen in one frame (work resolution).

    Attributes:
        lateral_m: lateral position at the bottom, metres from the vanishing point's column (+ = left).
        x_bottom: x of the fitted curve at the bottom of the road (work pixels).
        count: 1 or 2 (double line).
        coverage: painted share of the visible length, over equal steps of ground depth.
        sub_coverage: coverage of each line of a double (left, right in the image), else empty.
        passing: the double is a solid line with a weak dashed partner (passing zone), found where the two
            are resolved.
        strokes: count and ``sub_coverage`` were read stroke by stroke at the input resolution
            (:mod:`~lanepipe.verify.lane_detector.strokes`), not at the work resolution.
        yellowness: median paint b* minus median pavement b* beside it.
        paint_px: number of paint pixels that support the line.
        paint_lab, road_lab: median OpenCV Lab of the paint and of the pavement beside it.
        seen_coverage: painted share over the whole traced range (up to the far limit), or ``coverage``
            when larger; decides whether a line is there at all.
        width_m: full width at half maximum of the (widest) line's cross profile, metres.
        contrast: paint lightness above the pavement's, or twice its b* excess when larger (yellow paint).
        rows: first and last row of the traced centre curve (work pixels).
        xs: the curve's x, sampled evenly over those rows (work pixels), for drawing.
    """

    lateral_m: float
    x_bottom: float
    count: int
    coverage: float
    sub_coverage: tuple[float, ...]
    yellowness: float
    paint_px: int
    seen_coverage: float = 0.0
    width_m: float = 0.0
    contrast: float = 0.0
    rows: tuple[int, int] = (0, 0)
    xs: tuple[float, ...] = ()
    paint_lab: tuple[float, ...] = (0.0, 128.0, 128.0)
    road_lab: tuple[float, ...] = (0.0, 128.0, 128.0)
    passing: bool = False
    strokes: bool = False


@dataclass(frozen=True)
class FrameObs:
    """What one frame shows: the ego lane's boundaries (None = no line found) and the vanishing point."""

    left: LineObs | None
    right: LineObs | None
    vp: Point


def smooth1d(x: F64, sigma: float) -> F64:
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    out: F64 = np.convolve(x, k / k.sum(), mode="same")
    return out


def hist_peaks(hist: F64, min_height: float) -> list[int]:
    """Indices of local maxima of ``hist`` at least ``min_height`` high."""
    if len(hist) < 3:
        return []
    mid = hist[1:-1]
    idx = np.nonzero((mid >= hist[:-2]) & (mid > hist[2:]) & (mid >= min_height))[0] + 1
    return [int(i) for i in idx]


@dataclass(frozen=True)
class FrameGeometry:
    """The road in one frame: vanishing point ``vp`` (work pixels), last road row ``bottom`` and the assumed
    camera height ``h_m`` (metres) that turns pixels into lateral metres."""

    vp: Point
    bottom: int  # last road row (work pixels), exclusive
    h_m: float

    @property
    def road_height(self) -> float:
        """Rows between the vanishing point and the bottom of the road."""
        return self.bottom - self.vp[1]
