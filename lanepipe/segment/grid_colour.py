"""Pass 1 of the grid segmenter: road colour models from seeds around the grid points (CIE Lab), shared
over a clip, the Mahalanobis road-colour distance, and the paint map that keeps paint out of the seeds.

Coordinates are image pixels ``(x, y)``, x to the right, y down, at work resolution."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.lanes.paint import tophat
from lanepipe.segment.base import grid_points_px
from lanepipe.segment.config import GridConfig

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


def sample_seeds(frame: U8, cfg: GridConfig, hood_top: npt.NDArray[np.int32] | None = None) -> FrameSeeds:
    """Pass 1: downscale, Lab, paint map and the frame's road colour models.

    ``hood_top``: ``(W,)`` first hood row per column in frame pixels (:mod:`lanepipe.segment.hood`); grid
    points on the hood are not road and are dropped.

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
    if hood_top is not None:
        cols = np.clip(np.rint(seeds[:, 0] * (width / w)).astype(np.int64), 0, width - 1)
        seeds = seeds[(seeds[:, 1] + 1) * (height / h) <= hood_top[cols]]
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


