"""The ego vehicle's hood (bonnet, dashboard) at the bottom of a clip: found once, cut from every backend's mask.

A front camera mounted behind the windscreen often sees part of its own car along the bottom edge. The hood
moves with the camera, so across a clip its picture keeps its structure (its reflections brighten and darken
with the exposure, but stay in place) while the road just above it streams past. Detection, at a reduced width
(``HoodConfig.work_width``):

1. **Staticness.** The normalised cross-correlation of 9x9 patches between frames a fixed interval apart,
   averaged over the clip: near 1 where the picture does not move (invariant to the exposure's gain and offset),
   near 0 on moving road texture. A patch that is flat in every frame and keeps its brightness (a matt, dark
   hood) counts as static as well.
2. **Run from the bottom.** Per column, the static pixels that reach the bottom row without a gap; the run's top
   is the column's candidate hood edge (runs reaching ``max_height`` of the frame are a scene that did not move,
   not a hood).
3. **Edge check.** A hood's top is a long, nearly horizontal edge that is the same in every frame. The candidate
   is kept only where the clip-mean vertical gradient within a few rows of it is strong and consistent
   (``|mean Gy|`` against ``mean |G|``). Smooth, static road (a featureless motorway at the bottom of the
   frame) has no such edge, so it is never taken for a hood.
4. **Profile.** Kept columns are median-filtered across the width; the clip has a hood when they cover at least
   ``min_coverage`` of it. Columns in between are interpolated, columns beyond the outermost kept ones have no
   hood (the bonnet curves down out of view).

The result is a per-column profile (:class:`Hood`), in clip pixels, stored with the road masks
(``RoadMasks.hood_top``) and in the segment stage's ``meta.json`` (``hood_row``, ``hood_top``), so the painter and
the verifier can use it. A single frame has no motion to tell the hood from the road: no hood is reported for
fewer than ``min_frames`` frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.segment.config import HoodConfig
from lanepipe.types import RoadMasks

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
I32 = npt.NDArray[np.int32]

__all__ = ["Hood", "detect_hood", "exclude_hood"]


@dataclass(frozen=True)
class Hood:
    """The hood seen at the bottom of a clip.

    Attributes:
        top: ``(W,) int32`` first hood row of each column in clip pixels; ``height`` where the column shows none.
        height: the clip's frame height.
    """

    top: I32
    height: int

    @property
    def row(self) -> int:
        """Highest hood row (the smallest ``top``): every row below it may be hood."""
        return int(self.top.min())

    def mask(self) -> Bool:
        """``(H, W) bool``: True on the hood."""
        rows = np.arange(self.height, dtype=np.int32)[:, None]
        out: Bool = rows >= self.top[None, :]
        return out


def _gray_work(frames: npt.NDArray[np.uint8], cfg: HoodConfig) -> F32:
    """Up to ``cfg.max_frames`` frames spread over the clip, grey, at ``cfg.work_width``: ``(T, h, w) float32``."""
    t_count, height, width = frames.shape[:3]
    w = min(cfg.work_width, width)
    h = max(8, round(height * w / width))
    idx = np.unique(np.linspace(0, t_count - 1, min(t_count, cfg.max_frames)).round().astype(np.int64))
    out = np.empty((len(idx), h, w), dtype=np.float32)
    for i, t in enumerate(idx):
        g = cv2.cvtColor(np.ascontiguousarray(frames[t]), cv2.COLOR_RGB2GRAY)
        out[i] = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
    return out


def _staticness(g: F32, cfg: HoodConfig) -> F32:
    """``(h, w) float32`` in [0, 1]: how well each pixel's picture stays in place over the clip (step 1 of the
    module docstring); 1 for a flat patch of steady brightness."""
    t_count = g.shape[0]
    lag = max(1, t_count // 4)
    k = (cfg.patch, cfg.patch)
    means = np.stack([cv2.boxFilter(x, -1, k) for x in g])
    var = np.stack([cv2.boxFilter(x * x, -1, k) for x in g]) - means * means
    acc = np.zeros(g.shape[1:], dtype=np.float32)
    for t in range(t_count - lag):
        cov = cv2.boxFilter(g[t] * g[t + lag], -1, k) - means[t] * means[t + lag]
        acc += cov / np.sqrt(np.maximum(var[t], 1.0) * np.maximum(var[t + lag], 1.0))
    ncc = acc / max(1, t_count - lag)
    flat = (np.sqrt(np.maximum(var, 0.0)).max(axis=0) < cfg.flat_std) & (means.std(axis=0) < cfg.flat_std)
    out: F32 = np.where(flat, 1.0, np.clip(ncc, 0.0, 1.0)).astype(np.float32)
    return out


def _static_edge(g: F32) -> tuple[F32, F32]:
    """Clip-mean vertical gradient strength ``|mean Gy|`` and its consistency ``|mean Gy| / mean |G|``."""
    gy = np.stack([cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3) for x in g])
    gx = np.stack([cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3) for x in g])
    strength = np.abs(gy.mean(axis=0))
    consistency = strength / (np.sqrt(gx * gx + gy * gy).mean(axis=0) + 1e-3)
    return strength, consistency


def _smooth_path(score: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Row per column, moving at most one row between neighbouring columns, of the largest total ``score``.

    ``score``: ``(h, w)``; dynamic programming over the columns. Returns ``(w,) int64``.
    """
    h, w = score.shape
    acc = score[:, 0].copy()
    back = np.zeros((h, w), dtype=np.int64)
    idx = np.arange(h)
    for x in range(1, w):
        up = np.concatenate([[-np.inf], acc[:-1]])  # from row r - 1
        down = np.concatenate([acc[1:], [-np.inf]])  # from row r + 1
        stack = np.stack([up, acc, down])
        j = np.argmax(stack, axis=0)
        back[:, x] = idx + (j - 1)
        acc = stack[j, idx] + score[:, x]
    path = np.empty(w, dtype=np.int64)
    path[-1] = int(np.argmax(acc))
    for x in range(w - 1, 0, -1):
        path[x - 1] = back[path[x], x]
    return path


def _refine(frames: npt.NDArray[np.uint8], edge: F64, scale: float, cfg: HoodConfig) -> F64:
    """The hood's edge at full resolution: per column, the row within ``1.5 * scale`` (a work pixel and a half)
    of ``edge`` where the clip-mean vertical gradient is strongest, median-filtered across the width.

    ``edge``: ``(W,)`` rows in frame pixels; returns ``(W,)`` rows (between two pixel rows: ``r + 0.5`` is the
    boundary between rows ``r`` and ``r + 1``).
    """
    t_count, height, width = frames.shape[:3]
    reach = max(2, math.ceil(1.5 * scale))
    lo = max(0, int(np.floor(edge.min())) - reach - 1)
    hi = min(height, int(np.ceil(edge.max())) + reach + 2)
    if hi - lo < 3:
        return edge
    idx = np.unique(np.linspace(0, t_count - 1, min(t_count, cfg.max_frames)).round().astype(np.int64))
    acc = np.zeros((hi - lo - 1, width), dtype=np.float32)
    for t in idx:
        g = cv2.cvtColor(np.ascontiguousarray(frames[t, lo:hi]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        acc += cv2.blur(g[1:] - g[:-1], (3, 1))  # row i: between rows lo + i and lo + i + 1
    strength = np.abs(acc) / len(idx)
    rows = lo + np.arange(hi - lo - 1, dtype=np.float64)[:, None] + 0.5
    strength[np.abs(rows - edge[None, :]) > reach] = -1.0
    found = lo + np.argmax(strength, axis=0).astype(np.float64) + 0.5
    k = max(3, (width // 40) | 1)
    out: F64 = np.asarray(cv2.medianBlur(found.astype(np.float32)[None, :], 5 if k > 5 else k)[0], np.float64)
    # a wide median in steps of 5 (cv2's float median stops at 5 px): the edge curves slowly
    for _ in range(k // 5):
        out = np.asarray(cv2.medianBlur(out.astype(np.float32)[None, :], 5)[0], np.float64)
    return out


def detect_hood(frames: npt.NDArray[np.uint8], cfg: HoodConfig | None = None) -> Hood | None:
    """The hood at the bottom of ``frames`` (``(T, H, W, 3) uint8`` RGB), or None when the clip shows none.

    See the module docstring for the method. None as well for fewer than ``cfg.min_frames`` frames.
    """
    cfg = cfg or HoodConfig()
    if frames.ndim != 4 or frames.shape[0] < cfg.min_frames or frames.shape[1] < 16 or frames.shape[2] < 16:
        return None
    height, width = frames.shape[1:3]
    g = _gray_work(frames, cfg)
    _, h, w = g.shape
    stat = _staticness(g, cfg)
    strength, consistency = _static_edge(g)
    # how much more static the rows just below a pixel are than the rows just above it
    # (the rows next to the edge are skipped: their patches straddle it)
    k, gap = cfg.edge_rows, cfg.patch // 2 + 1
    kernel = np.zeros((2 * (k + gap) + 1, 1), np.float32)
    kernel[k + 2 * gap + 1:] = 1.0 / k
    kernel[:k] = -1.0 / k
    contrast = cv2.filter2D(stat, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    good = (strength >= cfg.min_edge) & (consistency >= cfg.min_consistency) & (contrast >= cfg.min_contrast)
    score = np.where(good, strength * consistency * contrast, 0.0)
    highest = h - 1 - int(cfg.max_height * h)
    score[: highest + 1] = -1.0  # a hood higher than max_height is a scene that did not move
    score[h - 2:] = -1.0
    path = _smooth_path(score)
    # below the edge the hood is static down to the bottom row
    static = stat >= cfg.min_correlation
    rows = np.arange(h)[:, None]
    below = rows > path[None, :]
    frac = (static & below).sum(axis=0) / np.maximum(below.sum(axis=0), 1)
    supported = good[path, np.arange(w)] & (frac >= cfg.min_static_below)
    win = max(3, (w // 16) | 1)
    sup = np.convolve(supported.astype(np.float32), np.ones(win, np.float32) / win, mode="same") > 0.5
    if sup.mean() < cfg.min_coverage:
        return None
    on = np.flatnonzero(sup)
    first, last = int(on[0]), int(on[-1])
    # the hood runs on to the frame's side when its edge was followed to within a fifth of the width of it
    first = 0 if first < w // 5 else first
    last = w - 1 if last > w - 1 - w // 5 else last
    inside = (np.arange(w) >= first) & (np.arange(w) <= last)
    # A hood's edge is a smooth curve: fit one (degree 4) with more weight on the higher points (a path that
    # dips onto a reflection inside the hood is the usual error), and cut at whichever is higher.
    xs = np.flatnonzero(supported & inside)
    u = (np.arange(w) - w / 2) / w
    wt = np.ones(len(xs))
    coef = np.polyfit(u[xs], path[xs], 4, w=wt)
    for _ in range(5):
        res = path[xs] - np.polyval(coef, u[xs])
        wt = np.where(res > 0, 0.25, 1.0)
        coef = np.polyfit(u[xs], path[xs], 4, w=wt)
    prof = np.minimum(path.astype(np.float64), np.polyval(coef, u))
    prof_full = cv2.resize(prof.astype(np.float32)[None, :], (width, 1), interpolation=cv2.INTER_LINEAR)[0]
    inside_full = cv2.resize(inside.astype(np.uint8)[None, :], (width, 1), interpolation=cv2.INTER_NEAREST)[0] > 0
    edge = _refine(frames, (prof_full.astype(np.float64) + 0.5) * height / h - 0.5, height / h, cfg)
    # the rows from the edge down are hood, and a margin above it (its blurred rim matches neither side)
    top_px = np.clip(np.ceil(edge - cfg.margin), 0, height).astype(np.int32)
    top_px = _fill_notches(top_px, inside_full, max(5, (width // 32) | 1))
    top_px[~inside_full] = height
    if inside_full.any() and int(np.ptp(top_px[inside_full])) > cfg.max_spread * height:
        return None  # not the gentle curve of a bonnet: road or scenery that happened to look static
    return Hood(top=top_px, height=height)


def _fill_notches(top: npt.NDArray[np.int32], inside: npt.NDArray[np.bool_], win: int) -> npt.NDArray[np.int32]:
    """``top`` with narrow upward notches filled: a solid line's near end is as static as the hood, and the refined
    edge can climb it over the line's few columns (a bonnet's edge has no such notch). A column above the median of
    the ``win`` columns around it (inside the hood's span) by more than a row is lowered to that median."""
    idx = np.flatnonzero(inside)
    if len(idx) < win:
        return top
    vals = top[idx].astype(np.float64)
    pad = np.pad(vals, win // 2, mode="edge")
    med = np.median(np.lib.stride_tricks.sliding_window_view(pad, win), axis=1)
    out = top.copy()
    notch = vals < med - 1.0
    out[idx[notch]] = np.floor(med[notch]).astype(np.int32)
    return out


def exclude_hood(masks: RoadMasks, frames: npt.NDArray[np.uint8], cfg: HoodConfig | None = None) -> RoadMasks:
    """``masks`` with the hood of ``frames`` cut out of every frame, and the hood's profile attached.

    Used by every segment backend. With ``cfg.enabled`` False (or no hood found) the masks are unchanged and
    ``hood_top`` is None.
    """
    cfg = cfg or HoodConfig()
    hood = detect_hood(frames, cfg) if cfg.enabled else None
    if hood is None:
        return RoadMasks(masks=masks.masks, backend=masks.backend, hood_top=None)
    out = masks.masks & ~hood.mask()[None]
    return RoadMasks(masks=out, backend=masks.backend, hood_top=hood.top)
