"""One frame through steps 1-4 of the lane detector: hood, road bottom, both ego-lane boundaries."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector.measure import measure_line
from lanepipe.verify.lane_detector.observations import FrameGeometry, FrameObs, LineObs
from lanepipe.verify.lane_detector.paint import PaintMap, paint_map
from lanepipe.verify.lane_detector.strokes import StrokeObs, lab_channels, read_strokes
from lanepipe.verify.lane_detector.trace import line_candidates, trace_line

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


def hood_row(pm: PaintMap) -> int | None:
    """Top row of the ego vehicle's hood (bonnet) seen at the bottom of the frame, or None.

    The hood's edge is a long, nearly horizontal edge across the bottom third: a row at which Canny edges
    (within 3 rows, to follow a slight curve) cover 60 % of the central columns, with little road-line paint
    just below it compared with just above (which tells it from a shadow edge or a change of pavement).
    The highest such row wins.
    """
    h, w = pm.gray.shape
    top = int(0.68 * h)
    edges = cv2.Canny(cv2.GaussianBlur(pm.gray[top:], (5, 5), 0), 30, 90)
    near = cv2.dilate(edges, np.ones((7, 1), np.uint8)) > 0
    frac = near[:, int(0.2 * w):int(0.8 * w)].mean(axis=1)
    per_row = pm.lines.sum(axis=1).astype(np.float64)
    band = max(4, int(0.06 * h))
    for r in np.nonzero(frac > 0.6)[0]:
        y = top + int(r)
        above = per_row[max(0, y - band):y - 2].mean()
        below = per_row[y + 5:y + 5 + band].mean() if y + 5 < h else 0.0
        if below <= 0.3 * above:
            return y
    return None


def _bottom_row(pm: PaintMap, road: Bool | None, hood: int | None) -> int:
    """Last road row (exclusive): above the hood, and the lowest row of the road mask when given."""
    h = pm.mask.shape[0]
    bottom = h if hood is None else hood
    if road is not None:
        rows = np.nonzero(road.any(axis=1))[0]
        if len(rows):
            bottom = min(bottom, int(rows.max()) + 1)
    return bottom


def with_strokes(obs: LineObs, st: StrokeObs | None, cfg: LaneDetectorConfig) -> LineObs:
    """``obs`` with its count and per-line coverage from the input-resolution stroke reading, where there is one."""
    if st is None:
        return obs
    base = obs.coverage if obs.count == 1 else max(obs.sub_coverage, default=obs.coverage)
    mixed = st.count == 2 and min(st.together) < cfg.stroke_together
    if mixed and obs.yellowness <= cfg.yellow_b:
        # a solid line beside a broken one is a passing zone, and passing zones are yellow centre lines
        # (MUTCD 2009 §3B.01, §3B.02); a white line's "broken partner" is a kerb, a seam or a shoulder's edge
        return replace(obs, count=1, sub_coverage=(), passing=False, strokes=True, coverage=base)
    if st.count == 2:
        # the pair's painted share at the work resolution (both strokes merge there, so it is the share of
        # the more continuous one) scaled, per stroke, by how often it is painted where the other one is: wear
        # and distance take both strokes alike, a passing zone's dashes take only one
        sub = tuple(base if t >= cfg.stroke_together else base * t for t in st.together)
        # a yellow solid line beside a broken one is a passing zone (the clip-level vote knows that its dashes
        # are resolved in some frames only)
        return replace(obs, count=2, sub_coverage=sub, coverage=base, passing=mixed, strokes=True)
    return replace(obs, count=1, sub_coverage=(), passing=False, strokes=True, coverage=base)


def observe_frame(rgb: U8, cfg: LaneDetectorConfig, vp: Point, road: Bool | None = None,
                  pm: PaintMap | None = None, hood: int | None = None, full_lab: U8 | None = None,
                  scale: float = 1.0) -> FrameObs:
    """The ego lane's boundaries in one work-resolution frame, given the vanishing point and hood row.

    ``full_lab`` (OpenCV Lab of the input-resolution frame, ``scale`` = work width / input width) lets each
    boundary's strokes be read at the input resolution (:func:`read_strokes`); without it the work-resolution
    frame is used for that.
    """
    pm = pm if pm is not None else paint_map(rgb, cfg, road)
    h, w = pm.mask.shape
    g = FrameGeometry(vp=vp, bottom=_bottom_row(pm, road, hood), h_m=cfg.camera_height_m)
    if g.road_height < 0.1 * h:
        return FrameObs(None, None, vp)
    ego_lat = (vp[0] - w / 2) * g.h_m / g.road_height
    cands = line_candidates(pm, g, cfg)
    left = right = None
    chans: tuple[F32, F32] | None = None  # the input frame's L* and b*, made when a boundary is first read
    lefts = sorted((c for c in cands if c[0] - ego_lat >= cfg.min_lateral_m), key=lambda c: c[0])
    rights = sorted((c for c in cands if ego_lat - c[0] >= cfg.min_lateral_m), key=lambda c: -c[0])
    for side, group in (("left", lefts), ("right", rights)):
        for lat0, _mass in group:
            if abs(lat0 - ego_lat) > cfg.max_lateral_m:
                break
            trace = trace_line(pm, g, lat0, cfg)
            if trace is None:
                continue
            obs = measure_line(pm, g, trace[0], trace[1], cfg)
            if (obs is None or obs.seen_coverage < cfg.min_coverage or obs.width_m > cfg.max_width_m
                    or obs.contrast < cfg.min_contrast):
                continue  # not paint: too short, too wide (glare, kerb, car) or not brighter/yellower
            if chans is None:
                chans = lab_channels(full_lab if full_lab is not None else pm.lab)
            obs = with_strokes(obs, read_strokes(chans, scale if full_lab is not None else 1.0, g, trace[0],
                                                 trace[1], cfg), cfg)
            d = obs.lateral_m - ego_lat
            if (side == "left" and d < cfg.min_lateral_m) or (side == "right" and -d < cfg.min_lateral_m):
                continue
            if side == "left":
                left = obs
            else:
                right = obs
            break
    return FrameObs(left, right, vp)
