"""The sample's road (metres): MUTCD sizes, the line layout, road coordinates ``(s, d)`` and the world frame,
and the anti-aliased coverage of stripes and dashes. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Floats = npt.NDArray[np.floating[Any]]  # float32 or float64
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


# --- Road geometry and markings (metres) ---------------------------------------------------------------
LANE_WIDTH_M = 3.66  # 12 ft
LINE_WIDTH_M = 0.15  # 6 in, MUTCD 2009 §3A.06: normal line 4-6 in (0.10-0.15 m)
DOUBLE_LINE_WIDTH_M = 0.12  # each line of the double yellow
DOUBLE_LINE_SPACE_M = 0.10  # about 4 in between the two lines of a double line
DASH_M = 3.05  # broken line: 10 ft segments ...
GAP_M = 9.14  # ... and 30 ft gaps (MUTCD 2009 §3A.06)
STRAIGHT_M = 40.0
RADIUS_M = 250.0  # left-hand curve after the straight
PAVED_MARGIN_M = 0.45  # pavement beyond the centre of each edge line
GRAVEL_M = 1.6  # unpaved shoulder beyond the pavement

# --- Scene -----------------------------------------------------------------------------------------
EGO_SPEED_MPS = 15.0
EGO_OFFSET_M = -LANE_WIDTH_M / 2  # centre of the ego lane
CAR_OFFSET_M = -1.5 * LANE_WIDTH_M  # centre of the right lane
CAR_GAP_M = 27.0  # initial distance ahead (rear axle to ego origin, along the road)
CAR_SPEED_MPS = 14.0
CAR_MIN_GAP_M = 12.0
CAR_SIZE_M = (4.6, 1.86, 1.46)  # length, width, height
MAX_DURATION_S = 30.0  # the ego then is 450 m down the road; the arc turns 180 deg at 825 m
HAZE_M = 380.0  # distance at which 63 % of the colour is haze
CAMERA_FOV_DEG = 70.0
CAMERA_PITCH_DEG = 5.0
CAMERA_HEIGHT_M = 1.5
SUN_DIR_WORLD = np.array([-0.35, -0.55, 0.76])  # towards the sun, world frame (normalised below)

Side = Literal["left", "right", "edge"]
Color = Literal["white", "yellow"]
Pattern = Literal["solid", "dashed"]



@dataclass(frozen=True)
class _LineSpec:
    id: int
    side: Side
    color: Color
    pattern: Pattern
    count: int
    offset_m: float
    space_m: float = DOUBLE_LINE_SPACE_M  # between the two lines of a double
    stroke_patterns: tuple[Pattern, ...] = ()  # per stripe (as :meth:`stripes`), when they differ

    def stripes(self) -> list[tuple[float, float]]:
        """``(centre d, width)`` of each painted stripe (a double: the + d one first)."""
        if self.count == 2:
            h = (self.space_m + DOUBLE_LINE_WIDTH_M) / 2
            return [(self.offset_m + h, DOUBLE_LINE_WIDTH_M), (self.offset_m - h, DOUBLE_LINE_WIDTH_M)]
        return [(self.offset_m, LINE_WIDTH_M)]

    def stripe_pattern(self, k: int) -> Pattern:
        return self.stroke_patterns[k] if self.stroke_patterns else self.pattern


LAYOUT: tuple[_LineSpec, ...] = (
    _LineSpec(0, "edge", "white", "solid", 1, LANE_WIDTH_M),
    _LineSpec(1, "left", "yellow", "solid", 2, 0.0),
    _LineSpec(2, "right", "white", "dashed", 1, -LANE_WIDTH_M),
    _LineSpec(3, "edge", "white", "solid", 1, -2 * LANE_WIDTH_M),
)


def with_centre_line(space_m: float = DOUBLE_LINE_SPACE_M,
                     stroke_patterns: tuple[Pattern, Pattern] = ("solid", "solid")) -> tuple[_LineSpec, ...]:
    """``LAYOUT`` with another double yellow centre line (id 1): ``space_m`` between its lines and a pattern per
    line, the opposing lane's (+ d) first; ``("dashed", "solid")`` is a passing zone for the ego lane (MUTCD
    §3B.02: the solid line on the side of the lane that may not pass)."""
    if not 0.0 < space_m < 1.0:
        raise ValueError(f"with_centre_line: space_m should be in (0, 1) m but is {space_m!r}")
    return tuple(_LineSpec(sp.id, sp.side, sp.color, sp.pattern, sp.count, sp.offset_m, space_m, stroke_patterns)
                 if sp.id == 1 else sp for sp in LAYOUT)


PAVED_D = (-2 * LANE_WIDTH_M - PAVED_MARGIN_M, LANE_WIDTH_M + PAVED_MARGIN_M)  # (right, left) limits


# --------------------------------------------------------------------------------------------------------
# Road geometry
# --------------------------------------------------------------------------------------------------------
def road_pose(s: Any, d: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """World position and heading of road coordinates.

    Args:
        s: ``(N,)`` arc length along the reference line (m); d: ``(N,)`` lateral offset (m, + = left).

    Returns:
        ``x, y`` (``(N,) float64`` world metres) and ``heading`` (``(N,) float64`` rad, road direction).
    """
    s = np.asarray(s, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    phi = np.maximum(s - STRAIGHT_M, 0.0) / RADIUS_M
    arc = s > STRAIGHT_M
    rr = RADIUS_M - d
    x = np.where(arc, STRAIGHT_M + rr * np.sin(phi), s)
    y = np.where(arc, RADIUS_M - rr * np.cos(phi), d)
    return x, y, phi


def _floats(a: Any) -> Any:
    """``a`` as a float array, keeping float32 (fast path) and turning anything else into float64."""
    arr = np.asarray(a)
    return arr if arr.dtype == np.float32 else arr.astype(np.float64)


def world_to_road(x: Any, y: Any) -> tuple[Floats, Floats, Floats]:
    """Road coordinates of world points (inverse of :func:`road_pose`).

    Args:
        x, y: ``(N,)`` world metres.

    Returns:
        ``s, d`` (``(N,)`` metres) and the road heading at ``s`` (``(N,)`` rad); float32 for float32 input,
        float64 otherwise.
    """
    x, y = _floats(x), _floats(y)
    dx = x - STRAIGHT_M
    dy = y - RADIUS_M
    arc = dx > 0
    phi = np.where(arc, np.arctan2(np.maximum(dx, 0.0), -dy), 0.0)
    s = np.where(arc, STRAIGHT_M + RADIUS_M * phi, x)
    d = np.where(arc, RADIUS_M - np.hypot(dx, dy), y)
    return s, d, phi


def world_to_ego(px: FloatArray, py: FloatArray, pose: FloatArray) -> tuple[FloatArray, FloatArray]:
    c, s_ = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = px - pose[0], py - pose[1]
    return c * dx + s_ * dy, -s_ * dx + c * dy




# --------------------------------------------------------------------------------------------------------
# Anti-aliasing helpers: box-filter coverage of intervals
# --------------------------------------------------------------------------------------------------------
def cover(x: Floats, half: Floats, lo: float, hi: float) -> F32:
    """Fraction of the pixel footprint ``[x - half, x + half]`` inside ``[lo, hi]``; ``(N,) float32``."""
    inter = np.minimum(x + half, hi) - np.maximum(x - half, lo)
    return np.clip(inter / (2 * half), 0.0, 1.0).astype(np.float32)


def dash_integral(s: FloatArray) -> FloatArray:
    """Painted length of the broken line in ``[0, s]`` (dashes start at multiples of the period)."""
    period = DASH_M + GAP_M
    out: FloatArray = np.floor(s / period) * DASH_M + np.clip(np.mod(s, period), 0.0, DASH_M)
    return out
