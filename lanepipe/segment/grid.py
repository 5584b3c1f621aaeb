"""Grid-seeded classical road segmentation: the embedded default backend (CPU, no weights).

Frames are analysed at a reduced width (``GridConfig.work_width``, 320 px by default) in three passes:

1. **Colour models.** Pixels around the 9 grid points (``segment.base.GRID_POINTS``) are sampled in CIE Lab,
   lane paint and outliers removed, and the seeds grouped by colour. Groups of two or more smooth grey seeds
   each give a Gaussian; a lone seed is kept only if it looks like other paving. Models seen in several
   frames of a clip are shared by all its frames (asphalt ahead stays road while the car is on a bridge).
2. **Evidence.** Road-coloured pixels (Mahalanobis distance to the nearest model); darker pixels of the same
   chroma (shadows); smooth pixels of the same chroma but another lightness (other lanes' paving); paint
   (thin bright structures, yellow) lying next to pavement; and a vanishing point voted by straight edges
   (Canny + probabilistic Hough) around the seeded road, median-filtered over the clip.
3. **Region.** Below the horizon and within a wedge at the vanishing point, the connected components that
   contain a seed, grown across paint; shadows count only within the lit road's lateral extent (not a wall
   in shade beside it). A closing and a fill of small holes put markings inside the road while large holes
   (cars ahead) stay out. Masks are then voted over neighbouring frames and upsampled to the clip's size.
4. **Hood.** The ego vehicle's hood, found once per clip by :mod:`lanepipe.segment.hood` (shared by every
   backend), carries no seed and is cut from every mask.

Coordinates are image pixels ``(x, y)``, x to the right, y down, in the frame they are measured in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.vanishing import edge_vanishing_point, smooth_vanishing_points
from lanepipe.segment.config import GridConfig
from lanepipe.segment.grid_colour import ColourModel, FrameSeeds, road_colour_distance, sample_seeds, share_models
from lanepipe.segment.hood import Hood, detect_hood
from lanepipe.types import Clip, RoadMasks

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Point = tuple[float, float]

@dataclass(frozen=True)
class FrameEvidence:
    """Pass 2 for one frame: ``(h, w) bool`` maps at work resolution and the vanishing point.

    Attributes:
        candidate: road-coloured pixels (shadows included).
        shadow: the part of ``candidate`` darker than every model's lit range.
        loose: other smooth paving of a model's chroma (not in ``candidate``).
        marking: paint with pavement within a marking width to its left or right.
        seeds: ``(S, 2) int64`` ``(x, y)`` of the kept seeds.
        vanishing_point: ``(x, y)`` work pixels, or None when the straight edges did not agree.
    """

    candidate: Bool
    shadow: Bool
    loose: Bool
    marking: Bool
    seeds: Ints
    vanishing_point: Point | None


def _loose_paving(lab: F32, models: list[ColourModel], cfg: GridConfig) -> Bool:
    """Smooth pixels of a model's chroma, lightness in ``[loose_dark, loose_bright]`` times the model's.

    Catches other lanes' paving (older, lighter concrete) that no seed landed on. Shape: ``(h, w) bool``.
    """
    light = np.ascontiguousarray(lab[..., 0])
    mean = cv2.boxFilter(light, -1, (3, 3))
    sq = cv2.boxFilter(light * light, -1, (3, 3))
    a = np.ascontiguousarray(lab[..., 1])
    b = np.ascontiguousarray(lab[..., 2])
    out = np.zeros(light.shape, dtype=bool)
    for m in models:
        chroma = cv2.magnitude(a - m.mean[1], b - m.mean[2]) < cfg.loose_chroma
        out |= chroma & (light > cfg.loose_dark * m.mean[0]) & (light < cfg.loose_bright * m.mean[0])
    smooth: Bool = (sq - mean * mean) < cfg.loose_texture**2
    return out & smooth


def _seed_components(mask: Bool, seeds: Ints) -> Bool:
    """Union of the 4-connected components of ``mask`` that contain a seed."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    hit = np.zeros(n, dtype=bool)
    hit[labels[seeds[:, 1], seeds[:, 0]]] = True
    hit[0] = False
    out: Bool = hit[labels]
    return out


def road_evidence(fs: FrameSeeds, models: list[ColourModel], cfg: GridConfig) -> FrameEvidence:
    """Pass 2: road colour, shadows, other paving, paint beside pavement and the vanishing point."""
    lab = fs.lab.astype(np.float32)
    tol = cfg.color_tolerance
    d2, lit_floor = road_colour_distance(lab, models, cfg.shadow_ratio, tol)
    candidate: Bool = d2 < tol * tol
    shadow: Bool = candidate & (lab[..., 0] < lit_floor)
    loose: Bool = (_loose_paving(lab, models, cfg) & ~candidate) if cfg.loose_chroma > 0 \
        else np.zeros_like(candidate)
    # Paint lies on pavement: keep paint with pavement within a marking width to its left or right
    # (the bright trim of a car or a wall is flanked by body panels instead).
    reach = 2 * (max(3, lab.shape[1] // 24) // 2) + 3
    flank = cv2.dilate((candidate | loose).astype(np.uint8), np.ones((1, reach), np.uint8)) > 0
    marking: Bool = fs.marking & flank
    rough = _seed_components(candidate, fs.seeds)
    region = cv2.dilate(rough.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    vp = edge_vanishing_point(fs.lab[..., 0].copy(), region)
    return FrameEvidence(candidate, shadow, loose, marking, fs.seeds, vp)


def horizon_prior(shape: tuple[int, int], vp: Point | None, cfg: GridConfig) -> Bool:
    """Pixels allowed to be road: below the horizon and within a wedge of half-slope ``wedge_slope``.

    The horizon is the vanishing point's row (minus ``horizon_margin`` of the height); without a vanishing
    point it is ``fallback_horizon`` of the height, centred. Shape: ``(h, w) bool``.
    """
    h, w = shape
    xv, yv = vp if vp is not None else (w / 2.0, cfg.fallback_horizon * h)
    yv -= cfg.horizon_margin * h
    depth = np.arange(h, dtype=np.float32)[:, None] - np.float32(yv)
    xx = np.arange(w, dtype=np.float32)[None, :]
    out: Bool = (depth > 0) & (np.abs(xx - np.float32(xv)) <= cfg.wedge_slope * depth)
    return out


def _row_extent(mask: Bool, rows: int, margin: int, vp: Point) -> Bool:
    """Pixels between the leftmost and rightmost pixel of ``mask`` in the same row or, scaled towards the
    vanishing point ``vp`` by perspective, in rows up to ``rows`` away; widened by ``margin``.

    Shape: ``(h, w) bool``.
    """
    h, w = mask.shape
    xv, yv = vp
    has = mask.any(axis=1)
    left = np.where(has, np.argmax(mask, axis=1), np.inf)
    right = np.where(has, w - 1 - np.argmax(mask[:, ::-1], axis=1), -np.inf)
    r = np.arange(h, dtype=np.float64)
    depth = np.maximum(r - yv, 0.5)
    lo, hi = left.copy(), right.copy()
    for k in range(-rows, rows + 1):
        if k == 0:
            continue
        src = np.clip(r + k, 0, h - 1).astype(np.int64)
        scale = depth / np.maximum(r[src] - yv, 0.5)  # a row's width is proportional to its depth below vp
        lo = np.minimum(lo, xv + (left[src] - xv) * scale)
        hi = np.maximum(hi, xv + (right[src] - xv) * scale)
    xx = np.arange(w, dtype=np.float64)[None, :]
    out: Bool = (xx >= (lo - margin)[:, None]) & (xx <= (hi + margin)[:, None])
    return out


def finish_mask(ev: FrameEvidence, vp: Point | None, cfg: GridConfig) -> Bool:
    """Pass 3: the seeded road region below the horizon of ``vp``, closed and hole-filled.

    Shape: ``(h, w) bool`` at work resolution.
    """
    prior = horizon_prior(ev.candidate.shape, vp, cfg)
    h, w = prior.shape
    # Paint is road and the region grows across it (a solid line does not cut off the lane beyond); it is
    # dilated by one pixel because its blurred rim matches neither paint nor pavement.
    paint = cv2.dilate(ev.marking.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    lit = (ev.candidate & ~ev.shadow) | paint
    base = lit.copy()
    if ev.shadow.any():
        # Shadows only within the lit road's lateral extent: a wall in shade beside the road is not road.
        lit_road = _seed_components((lit | ev.loose) & prior, ev.seeds)
        centre = vp if vp is not None else (w / 2.0, cfg.fallback_horizon * h)
        base |= ev.shadow & _row_extent(lit_road, max(2, h // 12), 2, centre)
    base |= ev.loose
    road = _seed_components(base & prior, ev.seeds)
    if not road.any():
        return road
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.close_px, cfg.close_px))
    m = np.asarray(cv2.morphologyEx(road.astype(np.uint8), cv2.MORPH_CLOSE, kernel), dtype=np.uint8)
    # Fill holes smaller than hole_fill of the frame (markings, tar seams, distant cars); keep large ones.
    _, labels, stats, _ = cv2.connectedComponentsWithStats(1 - m, connectivity=4)
    fill = stats[:, cv2.CC_STAT_AREA] < cfg.hole_fill * h * w
    fill[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = False
    fill[0] = False
    m = m | fill[labels].astype(np.uint8)
    if cfg.grow_px > 0:  # edge lines lying half outside the region
        m = np.asarray(cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cfg.grow_px + 1,) * 2)))
    out: Bool = m.astype(bool) & prior
    return out


def _temporal_average(masks: U8, radius: int) -> U8:
    """Triangular-weighted vote of ``(T, h, w) {0, 1}`` masks over ±``radius`` frames, as ``uint8`` 0..255.

    A pixel is road when the vote reaches one half (value ≥ 128).
    """
    t_count = masks.shape[0]
    if radius == 0 or t_count == 1:
        return masks * np.uint8(255)
    out = np.empty_like(masks)
    acc = np.empty(masks.shape[1:], dtype=np.uint16)
    for t in range(t_count):
        acc.fill(0)
        norm = 0
        for off in range(-radius, radius + 1):
            if 0 <= t + off < t_count:
                wgt = radius + 1 - abs(off)
                acc += masks[t + off] * np.uint16(wgt)
                norm += wgt
        # round(255 * acc / norm); exactly half the weight gives 128 (road).
        out[t] = (acc * np.uint16(255 * 2) + np.uint16(norm)) // np.uint16(2 * norm)
    return out


def segment_frames(frames: U8, cfg: GridConfig, hood: Hood | None = None) -> Bool:
    """Road masks of a frame sequence (the pure function behind ``GridSegmenter``).

    ``hood``: the ego vehicle's hood (:func:`lanepipe.segment.hood.detect_hood`): no seed on it, and it is cut
    from every mask.

    Shape:
        frames ``(T, H, W, 3) uint8`` RGB → ``(T, H, W) bool``, True = road (lane markings included).
    """
    t_count, height, width = frames.shape[:3]
    hood_top = None if hood is None else hood.top
    seeds = [sample_seeds(frames[t], cfg, hood_top) for t in range(t_count)]
    shared = share_models([s.models for s in seeds], max(2, min(cfg.model_min_frames, t_count)), cfg.shadow_ratio)
    evidence = [road_evidence(s, m, cfg) for s, m in zip(seeds, shared, strict=True)]
    del seeds
    vps = smooth_vanishing_points([e.vanishing_point for e in evidence], cfg.vp_radius)
    h, w = evidence[0].candidate.shape
    work = np.empty((t_count, h, w), dtype=np.uint8)
    for t, (ev, vp) in enumerate(zip(evidence, vps, strict=True)):
        work[t] = finish_mask(ev, vp, cfg)
    soft = _temporal_average(work, cfg.temporal_radius)
    out = np.empty((t_count, height, width), dtype=bool)
    for t in range(t_count):
        up = soft[t] if (w, h) == (width, height) else cv2.resize(soft[t], (width, height))
        np.greater(up, 127, out=out[t])
    if hood is not None:
        out &= ~hood.mask()[None]
    return out


def segment_frame(frame: U8, cfg: GridConfig | None = None) -> Bool:
    """Road mask of one frame. Shape: ``(H, W, 3) uint8`` RGB → ``(H, W) bool``."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        found = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputError("frame", "an (H, W, 3) uint8 RGB image", found)
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise InputError("frame", "an image of at least 8x8 pixels", f"{frame.shape[1]}x{frame.shape[0]}")
    out: Bool = segment_frames(frame[None], cfg or GridConfig())[0]
    return out


class GridSegmenter:
    """Grid-seeded classical road segmentation (CPU, no weights); see the module docstring.

    Args:
        cfg: thresholds and sizes; ``GridConfig()`` gives the defaults.
    """

    name = "grid"

    def __init__(self, cfg: GridConfig | None = None) -> None:
        self.cfg = cfg or GridConfig()

    def segment(self, clip: Clip) -> RoadMasks:
        """Road mask per frame: ``(T, H, W) bool`` matching ``clip.frames``, True = road incl. markings.

        Raises:
            InputError: ``clip`` is not a Clip, or has no frames or frames smaller than 8x8.
        """
        if not isinstance(clip, Clip):
            raise InputError(repr(clip)[:80], "a lanepipe.types.Clip", type(clip).__name__,
                             "decode a video with lanepipe.io.video.decode")
        f = clip.frames
        if f.shape[0] == 0 or f.shape[1] < 8 or f.shape[2] < 8:
            raise InputError(clip.source, "a clip with at least one frame of at least 8x8 pixels",
                             f"frames of shape {f.shape}")
        hood = detect_hood(f, self.cfg.hood) if self.cfg.hood.enabled else None
        return RoadMasks(segment_frames(f, self.cfg, hood), self.name, None if hood is None else hood.top)
