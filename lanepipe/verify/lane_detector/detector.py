"""Step 5 of the lane detector: the clip-level vote, and the :class:`LaneDetector` verifier itself."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.vanishing import median_point
from lanepipe.verify.base import BoundaryReport, ColorSeen, InspectingVerifier, LaneReport, PatternSeen
from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector.frame import hood_row, observe_frame
from lanepipe.verify.lane_detector.observations import FrameObs, LineObs
from lanepipe.verify.lane_detector.paint import PaintMap, paint_map, vanishing_point

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]


def _frame_pattern(o: LineObs, cfg: LaneDetectorConfig) -> PatternSeen:
    """One frame's pattern: each line of a double on its own, else the line's coverage."""
    if o.count == 2 and len(o.sub_coverage) == 2:
        solid = [c >= cfg.solid_coverage for c in o.sub_coverage]
        return "solid" if all(solid) else "dashed" if not any(solid) else "solid-dashed"
    return "solid" if o.coverage >= cfg.solid_coverage else "dashed"


def _yellow_threshold(seen: list[LineObs], count: int, cfg: LaneDetectorConfig) -> float:
    """Paint b* above the pavement's that makes a boundary yellow.

    In daylight yellow paint stands ``yellow_b`` or more above the pavement in b*, white paint well under it.
    Under street lights and headlights the paint is dim and its colour weak: night yellow paint may stand only
    4-6 b* above an amber-lit pavement, no more than white paint does (the shared night stills: a double yellow
    at +5, white edge lines at +4 and +6, all with paint lightness under 110 of 255, where most daylight paint
    is brighter than 160). There the colour alone cannot tell them apart and the kind of line
    decides: a dim double line is a yellow centre line (MUTCD 2009 §3A.05: yellow separates opposing traffic;
    double white lines, §3B.04, are rare) when its paint is at least ``dim_double_yellow_b`` yellower than the
    pavement; a dim single line keeps the daylight threshold. Deep shade dims paint the same way.
    """
    paint_l = float(np.median([o.paint_lab[0] for o in seen]))
    if count == 2 and paint_l < cfg.dim_paint_l:
        return min(cfg.yellow_b, cfg.dim_double_yellow_b)
    return cfg.yellow_b


def _vote_boundary(obs: list[LineObs | None], cfg: LaneDetectorConfig, scale: float,
                   side: str = "left") -> BoundaryReport:
    n = len(obs)
    seen = [o for o in obs if o is not None]
    share_seen = len(seen) / n if n else 0.0
    if not seen or share_seen < cfg.min_frame_share:
        return BoundaryReport(count=0, color=None, pattern=None, confidence=round(1.0 - share_seen, 3),
                              frames_seen=len(seen), frames_used=n, votes={"count": 1.0 - share_seen})
    n_seen = len(seen)
    if sum(o.passing for o in seen) < 2:
        # one frame's weak partner may be wear of a single line (or of a double's second line): a passing
        # zone needs its dashes in two frames at least; alone, such a frame counts as its solid line (unless
        # the pair was read stroke by stroke at the input resolution, where each line's paint was seen apart)
        seen = [replace(o, count=1, sub_coverage=(), passing=False) if o.passing and not o.strokes else o
                for o in seen]
    doubles = sum(o.count == 2 for o in seen)
    count = 2 if doubles > len(seen) / 2 else 1
    count_share = (doubles if count == 2 else len(seen) - doubles) / len(seen)
    yel = float(np.median([o.yellowness for o in seen]))
    # a passing zone's dashed line is resolved only near the camera, where a 10 ft dash comes and goes: a
    # yellow line whose frames show the pair often enough (the others: the solid line alone) is one
    passing = [o for o in seen if o.passing]
    if count == 1 and yel > cfg.yellow_b and len(passing) >= cfg.passing_min_frame_share * len(seen):
        solid_alone = sum(o.count == 1 and o.coverage >= cfg.solid_coverage for o in seen)
        count, count_share = 2, (len(passing) + solid_alone) / n_seen
        seen = passing  # the pair's attributes come from the frames that resolved it
    yel_b = _yellow_threshold(seen, count, cfg)
    yel_votes = sum(o.yellowness > yel_b for o in seen) / len(seen)
    color: ColorSeen = "yellow" if yel > yel_b else "white"
    color_share = yel_votes if color == "yellow" else 1.0 - yel_votes
    cov = float(np.mean([o.coverage for o in seen]))
    pattern: PatternSeen
    if count == 2:
        subs = [o.sub_coverage for o in seen if o.count == 2 and len(o.sub_coverage) == 2]
        sl = float(np.mean([s[0] for s in subs])) if subs else cov
        sr = float(np.mean([s[1] for s in subs])) if subs else cov
        solid_l, solid_r = sl >= cfg.solid_coverage, sr >= cfg.solid_coverage
        pattern = "solid" if solid_l and solid_r else "dashed" if not (solid_l or solid_r) else "solid-dashed"
        pat_margin = min(abs(sl - cfg.solid_coverage), abs(sr - cfg.solid_coverage))
        # image left to right; the left boundary's ego-side line is its right one, and vice versa
        both: tuple[Literal["solid", "dashed"], ...] = ("solid" if solid_l else "dashed",
                                                        "solid" if solid_r else "dashed")
        strokes = both[::-1] if side == "left" else both
    else:
        pattern = "solid" if cov >= cfg.solid_coverage else "dashed"
        pat_margin = abs(cov - cfg.solid_coverage)
        strokes = ("solid",) if pattern == "solid" else ("dashed",)
    pat_votes = sum(_frame_pattern(o, cfg) == pattern for o in seen) / len(seen)
    pat_conf = min(1.0, pat_margin / 0.2) * 0.5 + 0.5 * pat_votes
    col_conf = min(1.0, abs(yel - yel_b) / 10.0) * 0.5 + 0.5 * color_share
    conf = share_seen * count_share * math.sqrt(pat_conf * col_conf)
    xb = float(np.median([o.x_bottom for o in seen])) / scale
    return BoundaryReport(count=count, color=color, pattern=pattern, confidence=round(float(conf), 3),
                          x_bottom=xb, lateral_m=float(np.median([o.lateral_m for o in seen])), coverage=cov,
                          yellowness=yel, frames_seen=n_seen, frames_used=n,
                          votes={"seen": share_seen, "count": count_share, "color": color_share,
                                 "pattern": pat_votes}, strokes=strokes)


def _check_inputs(frames: object, road_masks: object) -> None:
    if not isinstance(frames, np.ndarray):
        raise InputError("frames", "a numpy array (T, H, W, 3) uint8", type(frames).__name__)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError("frames", "(T, H, W, 3) uint8 RGB frames", f"{frames.shape} {frames.dtype}",
                         "pass clip.frames (add a leading axis for a single image)")
    if frames.shape[0] < 1 or frames.shape[1] < 32 or frames.shape[2] < 32:
        raise InputError("frames", "at least one frame of at least 32x32 pixels", f"{frames.shape}")
    if road_masks is None:
        return
    if not isinstance(road_masks, np.ndarray):
        raise InputError("road_masks", "a numpy array (T, H, W) bool or None", type(road_masks).__name__)
    if road_masks.dtype != np.bool_ or road_masks.shape != frames.shape[:3]:
        raise InputError("road_masks", f"(T, H, W) bool matching the frames, i.e. {frames.shape[:3]} bool",
                         f"{road_masks.shape} {road_masks.dtype}")


class LaneDetector(InspectingVerifier):
    """Classical lane-attribute verifier (``verify.backend=lane_detector``); see the module docstring."""

    name = "lane_detector"

    def __init__(self, cfg: LaneDetectorConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else LaneDetectorConfig()

    def inspect(self, frames: npt.NDArray[np.uint8],
                road_masks: npt.NDArray[np.bool_] | None = None) -> LaneReport:
        """What the ego lane's boundaries look like in ``frames``.

        Args:
            frames: ``(T, H, W, 3) uint8`` RGB frames of a forward camera (T >= 1; a still is T = 1).
            road_masks: optional ``(T, H, W) bool``, True = road; paint outside it is ignored.

        Returns:
            A :class:`LaneReport`; ``x_bottom`` values are in input pixels.

        Raises:
            InputError: frames or masks of the wrong type, dtype or shape.
        """
        _check_inputs(frames, road_masks)
        cfg = self.cfg
        t, h, w = frames.shape[:3]
        idx = np.unique(np.linspace(0, t - 1, min(t, cfg.max_frames)).round().astype(int))
        ww = min(cfg.work_width, w)
        scale = ww / w
        wh = max(16, round(h * scale))
        smalls: list[U8] = []
        fulls: list[U8 | None] = []
        roads: list[Bool | None] = []
        pms: list[PaintMap] = []
        vps: list[Point] = []
        for i in idx:
            small = cv2.resize(frames[i], (ww, wh), interpolation=cv2.INTER_AREA) if ww != w else frames[i]
            road = None
            if road_masks is not None:
                road = cv2.resize(road_masks[i].astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0
            pm = paint_map(small, cfg, road)
            smalls.append(small)
            # strokes are read at the input resolution (at most full HD: beyond it a double is resolved anyway)
            big = frames[i] if w <= 1920 else cv2.resize(frames[i], (1920, round(h * 1920 / w)),
                                                          interpolation=cv2.INTER_AREA)
            fulls.append(np.asarray(cv2.cvtColor(big, cv2.COLOR_RGB2LAB), dtype=np.uint8) if ww != w else None)
            roads.append(road)
            pms.append(pm)
            found = vanishing_point(pm, road)
            if found is not None:
                vps.append(found[0])
        med = median_point(vps) if vps else (ww / 2, 0.55 * wh)
        hoods = [hood_row(pm) for pm in pms]
        found_hoods = [r for r in hoods if r is not None]
        # the hood does not move: a clip's frames share the median of the frames that show it
        hood = int(np.median(found_hoods)) if len(found_hoods) > len(hoods) / 2 else None
        obs: list[FrameObs] = []
        for small, road, pm, full in zip(smalls, roads, pms, fulls, strict=True):
            big_scale = ww / full.shape[1] if full is not None else 1.0
            obs.append(observe_frame(small, cfg, med, road, pm, hood, full, big_scale))
        left = _vote_boundary([o.left for o in obs], cfg, scale, "left")
        right = _vote_boundary([o.right for o in obs], cfg, scale, "right")
        diag = {"frames_used": len(idx), "vanishing_point": (med[0] / scale, med[1] / scale),
                "vp_found_in": len(vps), "hood_row": None if hood is None else hood / scale,
                "work_size": (ww, wh)}
        return LaneReport(left=left, right=right, verifier=self.name, diagnostics=diag)
