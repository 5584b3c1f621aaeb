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

Coordinates are image pixels ``(x, y)``, x to the right, y down, in the frame they are measured in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.vanishing import edge_vanishing_point, smooth_vanishing_points
from lanepipe.lanes.paint import tophat
from lanepipe.segment.base import grid_points_px
from lanepipe.segment.config import GridConfig
from lanepipe.types import Clip, RoadMasks

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Point = tuple[float, float]

#: Seeds (and models across frames) join a group when their Lab medians differ by less than
#: ``_GROUP_DIST`` times these scales (L, a, b) in every channel.
_GROUP_SCALE = np.asarray([15.0, 4.0, 4.0], dtype=np.float32)
_GROUP_DIST = 1.5
#: A seed group whose median chroma (distance from grey in a, b) exceeds this is paint, grass or a car.
_MAX_SEED_CHROMA = 14.0
#: A seed patch whose lightness spread exceeds this straddles an edge (car outline, shadow border).
_MAX_SEED_STD = 22.0
#: Smallest robust spread (L, a, b) used when trimming a seed patch.
_MAD_FLOOR = np.asarray([4.0, 1.5, 1.5], dtype=np.float32)
#: Limits for keeping a lone seed (see ``_seed_models``).
_SINGLE_MAX_STD = 10.0
_SINGLE_MAX_CHROMA = 10.0
_SINGLE_MAX_DL = 45.0
_SINGLE_MAX_DC = 6.0
#: Covariance floor of a colour model (L, a, b variances): a uniform road still gets a tolerance.
_COV_FLOOR = np.diag([9.0, 0.5, 0.5])
#: Most colour models a frame uses (its own first, then the clip's most frequent).
_MAX_MODELS = 4


@dataclass(frozen=True)
class ColourModel:
    """A Gaussian road colour in OpenCV 8-bit Lab (L in [0, 255], a and b offset by 128).

    Attributes:
        mean: ``(3,) float32``.
        cov: ``(3, 3) float32``.
        support: number of seeds it was fitted on.
    """

    mean: F32
    cov: F32
    support: int


@dataclass(frozen=True)
class FrameSeeds:
    """Pass 1 for one frame, at work resolution ``(h, w)``.

    Attributes:
        lab: ``(h, w, 3) uint8`` Lab (blurred 3x3).
        marking: ``(h, w) bool`` paint-like pixels (thin bright structures, yellow), not yet checked for
            pavement beside them.
        models: the frame's own road colour models.
        seeds: ``(S, 2) int64`` ``(x, y)`` of the seeds whose group was kept.
    """

    lab: U8
    marking: Bool
    models: list[ColourModel]
    seeds: Ints


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


def work_size(width: int, height: int, work_width: int) -> tuple[int, int]:
    """``(w, h)`` at which a ``width`` x ``height`` frame is analysed (never upscaled)."""
    w = min(width, work_width)
    return w, max(8, round(height * w / width))


def marking_map(lab: F32) -> Bool:
    """Paint-like pixels: thin bright structures (horizontal white top-hat), yellow, or thin faint yellow
    (top-hat of the b channel: a worn edge line, not a field of dry grass).

    Shape:
        lab ``(h, w, 3) float32`` Lab → ``(h, w) bool``.
    """
    size = (max(3, lab.shape[1] // 24) | 1, 1)
    bright_hat = tophat(lab[..., 0].astype(np.uint8), size)
    yellow_hat = tophat(lab[..., 2].astype(np.uint8), size)
    a = lab[..., 1] - 128.0
    b = lab[..., 2] - 128.0
    yellow = (b - np.abs(a) > 6.0) & ((b > 18.0) | (yellow_hat > 4))
    out: Bool = (bright_hat > 18) | yellow
    return out


def _patches(lab: F32, keep: Bool, seeds: Ints, radius: int) -> F32:
    """``(S, P, 3)`` Lab pixels around each seed, NaN where ``keep`` is False or outside the frame."""
    h, w = keep.shape
    pad = radius
    lab_p = np.pad(lab, ((pad, pad), (pad, pad), (0, 0)), constant_values=np.nan)
    keep_p = np.pad(keep, pad, constant_values=False)
    d = np.arange(-radius, radius + 1)
    ys = (seeds[:, 1, None, None] + pad + d[None, :, None]).clip(0, h + 2 * pad - 1)
    xs = (seeds[:, 0, None, None] + pad + d[None, None, :]).clip(0, w + 2 * pad - 1)
    px = lab_p[ys, xs].reshape(len(seeds), -1, 3)
    ok = keep_p[ys, xs].reshape(len(seeds), -1)
    px[~ok] = np.nan
    out: F32 = px.astype(np.float32)
    return out


def _nan_median(x: F32) -> F32:
    """Lower median over axis 1 ignoring NaN (cheaper than ``np.nanmedian`` on small patches).

    Shape: ``(S, P, C)`` → ``(S, C)``; a row with no valid value gives NaN.
    """
    valid = (~np.isnan(x)).sum(axis=1)  # (S, C)
    srt = np.sort(np.where(np.isnan(x), np.inf, x), axis=1)
    idx = np.maximum(valid - 1, 0) // 2
    out: F32 = np.take_along_axis(srt, idx[:, None, :], axis=1)[:, 0, :]
    out[valid == 0] = np.nan
    return out


def _fit(px: F32, support: int) -> ColourModel:
    """Trimmed Gaussian of ``(P, 3)`` Lab pixels (up to 3 rounds dropping Mahalanobis² > 9)."""
    x = px.astype(np.float64)
    mu = np.median(x, axis=0)
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        cov = np.cov(x[keep].T) + _COV_FLOOR if keep.sum() > 3 else 4 * _COV_FLOOR
        d = x - mu
        new_keep = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) < 9.0
        if new_keep.sum() < 4:
            break
        keep = new_keep
        mu = x[keep].mean(axis=0)
    cov = np.cov(x[keep].T) + _COV_FLOOR if keep.sum() > 3 else 4 * _COV_FLOOR
    return ColourModel(mu.astype(np.float32), cov.astype(np.float32), support)


def _seed_models(lab: F32, marking: Bool, seeds: Ints, radius: int) -> tuple[list[ColourModel], list[int]]:
    """Colour models from the seed patches and the indices of the seeds they came from."""
    paint = cv2.dilate(marking.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # paint and its rim
    px = _patches(lab, ~paint, seeds, radius)
    n_ok = np.sum(~np.isnan(px[..., 0]), axis=1)
    few = n_ok < px.shape[1] // 4  # mostly paint: use the whole patch
    if few.any():
        px[few] = _patches(lab, np.ones_like(marking), seeds[few], radius)
    med = _nan_median(px)
    mad = np.maximum(1.4826 * _nan_median(np.abs(px - med[:, None])), _MAD_FLOOR)
    outlier = np.any(np.abs(px - med[:, None]) > 2.5 * mad[:, None], axis=2)  # a car's edge, a shadow border
    px[outlier] = np.nan
    med = _nan_median(px)
    light = px[..., 0]
    ok = ~np.isnan(light)
    cnt = np.maximum(ok.sum(axis=1), 1)
    mean_l = np.where(ok, light, 0.0).sum(axis=1) / cnt
    std = np.sqrt(np.where(ok, (light - mean_l[:, None]) ** 2, 0.0).sum(axis=1) / cnt)
    chroma = np.hypot(med[:, 1] - 128.0, med[:, 2] - 128.0)
    h, w = marking.shape
    # Seeds nearest the bottom centre found groups first: they are the most likely to be road.
    order = np.argsort(np.abs(seeds[:, 0] - w / 2) / w + np.abs(seeds[:, 1] - 0.8 * h) / h, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        for g in groups:
            if float(np.max(np.abs(med[i] - med[g[0]]) / _GROUP_SCALE)) < _GROUP_DIST:
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
    good = [g for g in groups
            if int(np.sum(std[g] <= _MAX_SEED_STD)) >= 2 and float(chroma[g].mean()) <= _MAX_SEED_CHROMA]
    if not good:  # no two seeds agree: trust the largest group
        good = [max(groups, key=len)]
    # A lone seed may be another lane's paving (lighter concrete): keep it when it is smooth, grey and not far
    # in lightness from the main group. Cars and markings are rarely all three.
    main = med[good[0][0]]
    for g in groups:
        i = g[0]
        if (len(g) == 1 and g not in good and std[i] <= _SINGLE_MAX_STD and chroma[i] <= _SINGLE_MAX_CHROMA
                and abs(float(med[i, 0] - main[0])) <= _SINGLE_MAX_DL
                and float(np.hypot(*(med[i, 1:] - main[1:]))) <= _SINGLE_MAX_DC):
            good.append(g)
    models = []
    for g in good:
        p = px[g].reshape(-1, 3)
        models.append(_fit(p[~np.isnan(p[:, 0])], len(g)))
    return models, sorted(i for g in good for i in g)


def sample_seeds(frame: U8, cfg: GridConfig) -> FrameSeeds:
    """Pass 1: downscale, Lab, paint map and the frame's road colour models.

    Shape:
        frame ``(H, W, 3) uint8`` RGB → maps at ``work_size(W, H, cfg.work_width)``.
    """
    height, width = frame.shape[:2]
    w, h = work_size(width, height, cfg.work_width)
    frame = np.ascontiguousarray(frame)
    small = frame if (w, h) == (width, height) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    lab8 = np.asarray(cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_RGB2LAB), dtype=np.uint8)
    lab = lab8.astype(np.float32)
    marking = marking_map(lab)
    seeds = np.rint(grid_points_px(w, h)).astype(np.int64)
    models, used = _seed_models(lab, marking, seeds, max(2, w // 80))
    return FrameSeeds(lab8, marking, models, seeds[used])


def share_models(per_frame: list[list[ColourModel]], min_frames: int,
                 shadow_ratio: float) -> list[list[ColourModel]]:
    """Each frame's models plus the clip's recurring ones (seen in ``min_frames`` frames or more).

    Models are clustered across frames like seeds are within one; a cluster is represented by its
    best-supported member. A frame keeps its own models and adds clusters it lacks, most frequent first,
    up to ``_MAX_MODELS``, if their lightness is within ``shadow_ratio`` (either way) of the frame's main
    model: a dark car's colour seen in a few frames must not turn every wall in shade into road.
    """
    clusters: list[tuple[ColourModel, set[int]]] = []
    for t, models in enumerate(per_frame):
        for m in models:
            for k, (rep, frames) in enumerate(clusters):
                if float(np.max(np.abs(m.mean - rep.mean) / _GROUP_SCALE)) < _GROUP_DIST:
                    frames.add(t)
                    if m.support > rep.support:
                        clusters[k] = (m, frames)
                    break
            else:
                clusters.append((m, {t}))
    common = sorted((c for c in clusters if len(c[1]) >= min_frames), key=lambda c: -len(c[1]))
    out = []
    for models in per_frame:
        mine = list(models)
        ref = float(mine[0].mean[0])
        for rep, _ in common:
            if len(mine) >= _MAX_MODELS:
                break
            light = float(rep.mean[0])
            if (shadow_ratio * ref <= light <= ref / shadow_ratio
                    and all(float(np.max(np.abs(rep.mean - m.mean) / _GROUP_SCALE)) >= _GROUP_DIST for m in mine)):
                mine.append(rep)
        out.append(mine)
    return out


def road_colour_distance(lab: F32, models: list[ColourModel], shadow_ratio: float, tol: float) -> tuple[F32, F32]:
    """Squared Mahalanobis distance to the nearest model, and the darkest lightness each pixel may have lit.

    Darker pixels are shadow candidates: a lightness deficit is shrunk so that a pixel of a model's chroma
    at ``shadow_ratio`` times the main (first) model's lightness lands exactly on the tolerance ``tol``.

    Shape:
        lab ``(h, w, 3) float32`` → ``(h, w) float32`` distances; the lit floor is a scalar per model,
        returned as the minimum over models, ``() float32``.
    """
    best: F32 | None = None
    lit_floor = np.float32(np.inf)
    darkest = shadow_ratio * float(models[0].mean[0])  # relative to the main (lit) road colour
    light = np.ascontiguousarray(lab[..., 0])
    ones = np.ones((1, 3), dtype=np.float32)
    for m in models:
        chol = np.linalg.cholesky(np.linalg.inv(m.cov.astype(np.float64))).T.astype(np.float32)
        sd_l = float(np.sqrt(m.cov[0, 0]))
        k = min(1.0, tol * sd_l / max(1e-3, float(m.mean[0]) - darkest))
        dl = light - m.mean[0]
        dl = np.where(dl < 0, dl * np.float32(k), dl)
        # y = chol · (dl, a - mu_a, b - mu_b): the offsets fold into a 3x4 affine transform of (dl, a, b).
        shift = -(chol[:, 1:] @ m.mean[1:])
        d = lab.copy()
        d[..., 0] = dl
        y = cv2.transform(d, np.hstack([chol, shift[:, None]]).astype(np.float32))
        d2 = np.asarray(cv2.transform(cv2.multiply(y, y), ones), dtype=np.float32)
        if d2.ndim == 3:  # OpenCV usually drops the single channel, but not always
            d2 = d2[..., 0]
        best = d2 if best is None else np.minimum(best, d2)
        lit_floor = min(lit_floor, np.float32(m.mean[0] - tol * sd_l))
    assert best is not None
    return best, np.asarray(lit_floor, dtype=np.float32)


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


def segment_frames(frames: U8, cfg: GridConfig) -> Bool:
    """Road masks of a frame sequence (the pure function behind ``GridSegmenter``).

    Shape:
        frames ``(T, H, W, 3) uint8`` RGB → ``(T, H, W) bool``, True = road (lane markings included).
    """
    t_count, height, width = frames.shape[:3]
    seeds = [sample_seeds(frames[t], cfg) for t in range(t_count)]
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
        return RoadMasks(segment_frames(f, self.cfg), self.name)
