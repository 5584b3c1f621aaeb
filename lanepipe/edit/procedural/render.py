"""Steps 2 and 3 of the procedural painter: erase the old paint and paint the requested lines in one frame.

Every road pixel near a boundary gets its ground coordinates; its paint coverage is the exact overlap of the
pixel's ground footprint (widened by the image blur) with each stripe, across and (broken lines) along the line,
the dashes anchored to the road. Only pixels inside the road mask change, and old paint of a named boundary
that the mask misses (:meth:`FrameRenderer.old_paint`). Frames are ``(H, W, 3) uint8`` RGB.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.edit.config import ProceduralConfig
from lanepipe.edit.erase import push_pull_fill, texture_sources
from lanepipe.edit.procedural.analysis import ClipAnalysis
from lanepipe.edit.procedural.params import PaintedLine, PaintParams
from lanepipe.errors import InputError
from lanepipe.geometry import road as geo
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.lanes.instructions import Color, LaneSpec
from lanepipe.types import Clip, RoadMasks

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]


@dataclass(frozen=True)
class _Stripe:
    offset_m: float  # from the boundary centre line, + = left
    width_m: float
    dashed: bool


def _poly(coefs: F64, x: Any, x_lim: float) -> Any:
    return geo.boundary_eval(coefs, x, x_lim)


def overlap(pos: Any, foot: Any, lo: Any, hi: Any) -> Any:
    """Fraction of the interval ``[pos - foot/2, pos + foot/2]`` inside ``[lo, hi]`` (box-filter coverage)."""
    return np.clip(np.minimum(pos + 0.5 * foot, hi) - np.maximum(pos - 0.5 * foot, lo), 0.0, None) / foot


def dash_coverage(s: Any, foot: Any, dash: float, period: float) -> Any:
    """Coverage along the line of a broken line with dashes ``[k period, k period + dash]`` at road position ``s``."""
    p = np.mod(s, period)
    cov = overlap(p, foot, 0.0, dash) + overlap(p, foot, period, period + dash) + overlap(p, foot, -period,
                                                                                             dash - period)
    # a footprint longer than a period sees the mean duty cycle
    return np.where(foot >= period, dash / period, np.clip(cov, 0.0, 1.0))


def _wear_tile(seed: int) -> F32:
    """``(512, 64) float32`` in [0, 1]: blotchy + speckled wear over 20.48 m (0.04 m texels) x 1.28 m (0.02 m)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((32, 8), dtype=np.float32), (64, 512), interpolation=cv2.INTER_CUBIC)
    fine = rng.random((512, 64), dtype=np.float32)
    fine = np.asarray(cv2.GaussianBlur(fine, (3, 3), 0), dtype=np.float32)
    w = np.asarray(0.6 * np.asarray(coarse, dtype=np.float32) + 0.4 * fine, dtype=np.float32)
    w = (w - w.min()) / max(float(w.max() - w.min()), 1e-6)
    out: F32 = np.clip((w - 0.35) / 0.65, 0.0, 1.0) ** 1.5
    return out


#: Seed pixels (work resolution) a stroke of old paint needs to be erased: this many near the camera, ...
_MIN_SEED_PX = 6
#: ... and farther away the pixels of this many metres (a line's width) at the stroke's scale, at least 2.
_SEED_M = 0.15
#: Hysteresis: pixels above this fraction of the paint thresholds grow a seeded stroke ...
_WEAK = 0.7
#: ... up to this many erase half-widths from the tracked boundary (seeds: within one).
_GROW = 1.6
_WEAR_TEXEL_S = 0.04
_WEAR_TEXEL_D = 0.02
#: Rows above the hood (a share of the frame height) that count as road for finding old paint where the road mask
#: stops within them: the segmenter cuts the hood from the mask, but its coarse mask border often stops a few
#: pixels short of it, and the line's last piece in that gap is old paint like the rest (left there it would
#: also tint the fill yellow)
_HOOD_BAND = 0.05


#: The hood's rim is blurred over a few rows (motion, focus, coding): an old line's last piece straddles it, half
#: on the rows the segmenter calls hood. Seam rows below the hood's first row, as a share of the height (>= 3 rows).
_SEAM = 0.01
#: A seam pixel still shows old yellow paint when its Lab b* exceeds both the erased pavement above and the hood
#: below by this much (OpenCV 8-bit Lab units).
_SEAM_B = 6.0


def clean_hood_seam(out: U8, rows: Ints, cols: Ints, hood_top: Ints) -> int:
    """Inpaint what is left of an erased line on the hood's blurred rim, in place; the number of pixels changed.

    Where the erase (``rows``, ``cols``: the full-resolution pixels it filled) reached within 3 rows of the hood
    (``hood_top``, first hood row per column), seam pixels from 2 rows above to ``_SEAM`` of the height below the
    hood's first row that are yellower than both the fill above and the hood below (its colour some rows further
    down) are filled from their surroundings (OpenCV's Telea inpainting): the pavement above blends
    into the hood below, as on a clip without the line. Nothing else on the hood changes."""
    h, w = out.shape[:2]
    reach = rows >= hood_top[cols] - 3
    if not reach.any():
        return 0
    touched = np.zeros(w, np.uint8)
    touched[cols[reach]] = 1
    touched = cv2.dilate(touched[None, :], np.ones((1, 5), np.uint8))[0] > 0
    c_idx = np.flatnonzero(touched)
    s = max(3, math.ceil(_SEAM * h))
    top = int(max(hood_top[c_idx].min() - 8, 0))
    bottom = int(min(hood_top[c_idx].max() + 2 * s + 1, h))
    if bottom - top < 4:
        return 0
    c0, c1 = int(c_idx.min()), int(c_idx.max()) + 1
    crop = out[top:bottom, c0:c1]
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    rr = np.arange(top, bottom)[:, None]
    ht = hood_top[None, c0:c1]
    seam = (rr >= ht - 2) & (rr < ht + s) & touched[None, c0:c1]
    above = (rr >= ht - 8) & (rr < ht - 4)
    below = (rr >= ht + s) & (rr < ht + 2 * s)

    def ref(sel: Bool, ch: int) -> F32:  # per column median of a channel over the rows selected (NaN: none)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            med: F32 = np.nanmedian(np.where(sel, lab[..., ch], np.nan), axis=0)
        return med

    b_ref = np.fmax(ref(above, 2), ref(below, 2))
    # yellow only: a hood's rim often carries a bright trim or reflection of its own, which no brightness test
    # tells from white paint
    tint = seam & (lab[..., 2] > b_ref[None, :] + _SEAM_B) & np.isfinite(b_ref)[None, :]
    if not tint.any():
        return 0
    mask = (cv2.dilate(tint.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & seam
    filled = cv2.inpaint(np.ascontiguousarray(crop), mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    # a pixel only ever gets less paint-like: no yellower, and brighter only where it lost its yellow (a faint
    # yellow tint is darker than the hood it is cleaned to); a border pixel's fill may draw on a yellower neighbour
    lab_f = cv2.cvtColor(filled, cv2.COLOR_RGB2LAB).astype(np.float32)
    mask &= (lab_f[..., 2] <= lab[..., 2] + 1.0) & ((lab_f[..., 0] <= lab[..., 0] + 2.0)
                                                    | (lab_f[..., 2] < lab[..., 2] - _SEAM_B))
    crop[mask] = filled[mask]
    return int(mask.sum())


def hood_rows(an: ClipAnalysis, height: int, width: int) -> Ints | None:
    """``(width,)`` first hood row per column at a ``height`` x ``width`` resolution (a row partly on the hood
    counts as above it), or None when the clip has no hood."""
    if an.hood_top is None:
        return None
    h_full, w_full = an.row_ppm.shape[0], len(an.hood_top)
    cols = np.minimum(((np.arange(width) + 0.5) * w_full / width).astype(np.intp), w_full - 1)
    rows: Ints = np.ceil(an.hood_top[cols] * height / h_full).astype(np.intp)
    return rows


class FrameRenderer:
    """Erases and paints one frame at a time for the procedural painter (see the module docstring).

    Args:
        cfg: painter settings (``seed`` fixes the wear texture).
    """

    def __init__(self, cfg: ProceduralConfig) -> None:
        self.cfg = cfg
        self._wear = _wear_tile(cfg.seed)
        self._wear_mean = float(self._wear.mean())

    def stripes(self, spec: LaneSpec, params: PaintParams) -> dict[str, list[_Stripe]]:
        """Stripes per side, offsets measured from the boundary centre (+ = left)."""
        sz = self.cfg.sizes
        w = sz.line_width * params.width_scale
        out: dict[str, list[_Stripe]] = {}
        for side in ("left", "right"):
            if spec.is_removal:
                out[side] = []
                continue
            if spec.count == 1:
                out[side] = [_Stripe(0.0, w, spec.pattern == "dashed")]
                continue
            half = 0.5 * (sz.double_spacing * params.spacing_scale + w)
            if spec.pattern == "solid-dashed":
                # solid on the ego side: the ego lane lies right of its left boundary and left of its right one
                ego = -1.0 if side == "left" else 1.0
                out[side] = [_Stripe(ego * half, w, False), _Stripe(-ego * half, w, True)]
            else:
                dashed = spec.pattern == "dashed"
                out[side] = [_Stripe(half, w, dashed), _Stripe(-half, w, dashed)]
        return out

    def check_feasible(self, clip: Clip, masks: RoadMasks, an: ClipAnalysis, sides: list[str],
                        stripes: dict[str, list[_Stripe]], spec: LaneSpec) -> None:
        cfg = self.cfg
        if spec.count == 2 and an.road_width_m < cfg.min_double_road_width_m:
            raise InputError(clip.source, f"a road at least {cfg.min_double_road_width_m:.1f} m wide for a double line",
                             f"a road mask {an.road_width_m:.1f} m wide near the ego vehicle",
                             "paint a single line, or check the road mask")
        cam = an.cam
        p, ok = cam.pixel_to_ground([cam.cx], [cam.height - 1.0])
        x_near = max(float(p[0, 0]) if ok[0] else 3.0, 1.0)
        xs = np.linspace(x_near, x_near + 22.0, 24)
        has_road = masks.masks.any(axis=(1, 2))
        frames = np.flatnonzero(has_road)[:: max(1, int(has_road.sum()) // 16)]
        for side in sides:
            offsets = [0.0] + [s.offset_m for s in stripes[side]]
            cov = np.zeros((len(frames), len(offsets)))
            in_view = np.zeros(len(frames))
            for i, t in enumerate(frames):
                c = an.coefs[side][t]
                for j, off in enumerate(offsets):
                    pts = np.stack([xs, _poly(c, xs, an.fit_range_m) + off, np.zeros_like(xs)], axis=1)
                    px, valid = cam.project(pts)
                    u = np.round(np.nan_to_num(px[:, 0], nan=-1)).astype(int)
                    v = np.round(np.nan_to_num(px[:, 1], nan=-1)).astype(int)
                    inside = valid & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
                    cov[i, j] = masks.masks[t, v[inside], u[inside]].mean() if inside.sum() >= 4 else 0.0
                    if j == 0:
                        in_view[i] = inside.mean()
            if np.median(in_view) < 0.15:
                raise InputError(clip.source, f"the ego lane's {side} boundary in view to paint '{spec.to_text()}'",
                                 f"its path within {xs[-1]:.0f} m mostly outside the image "
                                 f"({np.median(in_view):.0%} inside)", "this camera does not see that boundary")
            med = np.median(cov, axis=0)
            if med[0] < cfg.min_line_coverage:
                raise InputError(clip.source, f"road area along the ego lane's {side} boundary to paint "
                                 f"'{spec.to_text()}'",
                                 f"{med[0]:.0%} of the line's visible path within {xs[-1]:.0f} m in the road mask "
                                 f"(need {cfg.min_line_coverage:.0%})",
                                 "the mask may miss that side of the road; try another boundary")
            if spec.count == 2 and med[1:].min() < cfg.min_line_coverage:
                raise InputError(clip.source, f"room for both lines of a double line on the {side} boundary",
                                 f"only {med[1:].min():.0%} of the outer line's path in the road mask "
                                 "(road too narrow there)", "paint a single line instead")

    def render(self, out: U8, t: int, clip: Clip, mask: Bool, an: ClipAnalysis, spec: LaneSpec, sides: list[str],
                stripes: dict[str, list[_Stripe]], params: PaintParams) -> list[PaintedLine]:
        """One frame into ``out`` (``(H, W, 3) uint8``): erase, then paint; only road pixels change, and the old
        paint of the named boundaries where the road mask misses it (:meth:`old_paint`)."""
        frame = clip.frames[t]
        out[...] = frame
        if not mask.any():
            return []
        mw = an.masks_w[t]
        hw, ww = mw.shape
        h, w = mask.shape
        scale = (ww / w, hw / h)
        # ---- the old paint of the named boundaries, at work resolution
        paint_w, zone = self.old_paint(an, t, sides, params)
        # ---- asphalt colour under and around the paint: push-pull at half the work resolution
        # the corridor around the line (and a few pixels more) counts as pavement too where the road mask misses
        # it (a line in shade or on bright paving): the fill takes the colour beside the line, not that of road
        # farther away
        around = cv2.dilate(zone.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        known = (mw | around) & ~paint_w
        hood_w = hood_rows(an, hw, ww)
        if hood_w is not None:  # the hood is no pavement colour
            known &= np.arange(hw)[:, None] < hood_w[None, :]
        lw_, lh_ = max(ww // 2, 1), max(hw // 2, 1)
        f_low = np.asarray(cv2.resize(an.frames_w[t], (lw_, lh_), interpolation=cv2.INTER_AREA), dtype=np.float32)
        k_low = np.asarray(cv2.resize(known.astype(np.float32), (lw_, lh_), interpolation=cv2.INTER_AREA)) > 0.99
        low = push_pull_fill(f_low, k_low)
        low_scale = (lw_ / w, lh_ / h)
        grain = 2.0  # fallback noise level, refined from the copied texture in _erase
        # ---- erase at full resolution: low-frequency fill + texture copied from beside the line
        if paint_w.any():
            self._erase(out, frame, mask, paint_w, low, grain, an, t, params, scale, low_scale)
        # ---- paint: on the road mask, and where old paint the mask missed was erased (the old line's ground is
        # road: a new line that stopped there would end in mid-road), with a stroke's width around it
        paint_on = mask
        off_w = paint_w & ~mw
        if off_w.any() and not spec.is_removal:
            grown = cv2.dilate(off_w.astype(np.uint8), np.ones((5, 5), np.uint8))
            off_full = cv2.resize(grown, (w, h), interpolation=cv2.INTER_NEAREST) > 0
            if an.hood_top is not None:
                off_full &= np.arange(h)[:, None] < an.hood_top[None, :]
            paint_on = mask | off_full
        lines: list[PaintedLine] = []
        for side in sides:
            st = stripes[side]
            if not st:
                continue
            c = an.coefs[side][t].copy()
            c[0] += params.lateral_offset_m
            self._paint_side(out, paint_on, an, t, c, st, spec.color or "white", params, low, low_scale)
            lines.append(self._polyline(an, mask, c, side, spec))
        return lines

    def old_paint(self, an: ClipAnalysis, t: int, sides: list[str], params: PaintParams) -> tuple[Bool, Bool]:
        """The old paint of the named boundaries in frame ``t`` and the corridors searched, ``(h, w) bool`` each at
        work resolution.

        A corridor follows each boundary's track (smoothed over time) ``erase_half_width_m`` either side, down
        to the ego vehicle's hood (``an.hood_top``; the band of ``_HOOD_BAND`` of the height just above it counts
        as road there, where the mask often stops a little short), else to the lowest road row of the frame; hood
        pixels are never part of it. Paint in it is found
        by hysteresis: pixels above the paint thresholds seed the strokes; pixels above _WEAK of the thresholds
        that connect to a seed grow them, up to ``_GROW`` corridor half-widths from the track; off the road mask
        only yellowness counts, only within the corridor and the fitted range. So a stroke's faint
        ends and a yellow line in deep shade that the road mask misses are erased too, while pavement,
        shoulders, kerbs and cars, which are not paint, never are. The strokes are widened by one or two pixels
        (their blurred border).
        """
        cfg = self.cfg
        mw = an.masks_w[t]
        zone = np.zeros_like(mw)
        grow = np.zeros_like(mw)  # a seeded stroke may grow a little beyond the corridor (a track a bit off)
        road_rows = np.flatnonzero(mw.any(axis=1))
        if len(road_rows) == 0:
            return zone, zone
        for side in sides:
            half = cfg.erase_half_width_m if an.found[side][t] else cfg.erase_half_width_assumed_m
            half *= params.erase_strength
            c = an.coefs[side][t]
            rows, cols = _corridor(an.cam_w, an.maps_w, c, half * _GROW, cfg.max_range_m, an.fit_range_m)
            x = an.maps_w.x[rows, cols]
            ok = np.isfinite(x)
            rows, cols = rows[ok], cols[ok]
            dist = np.abs(an.maps_w.y[rows, cols] - _poly(c, x[ok], an.fit_range_m))
            zone[rows[dist < half], cols[dist < half]] = True
            grow[rows[dist < half * _GROW], cols[dist < half * _GROW]] = True
        hood = hood_rows(an, *mw.shape)
        if hood is None:
            zone[road_rows[-1] + 1:] = False
            grow[road_rows[-1] + 1:] = False
        else:
            # down to the hood, never on it; the band just above it is road even where the mask stops short
            rr = np.arange(mw.shape[0])[:, None]
            above = rr < hood[None, :]
            zone &= above
            grow &= above
            # the gap between the mask's bottom and the hood, where the mask reaches down to within the band
            # beside it (a column the mask misses altogether, e.g. a shaded verge, keeps the off-road rule)
            wide = cv2.dilate(mw.astype(np.uint8), np.ones((1, 2 * (mw.shape[1] // 40) + 1), np.uint8)) > 0
            low = np.where(wide.any(axis=0), mw.shape[0] - 1 - np.argmax(wide[::-1], axis=0), -1)
            band = math.ceil(_HOOD_BAND * mw.shape[0])
            gap = above & (rr > low[None, :]) & (low[None, :] >= hood[None, :] - band) & zone
            mw = mw | gap
        thr = 0.8 / math.sqrt(params.erase_strength)
        ev = an.evidence[t]
        # off the road mask only yellow counts (a yellow line in shade, or on bright paving, that the mask
        # missed): yellow in itself, not only next to something bluer (a car); paint yellow, not red or orange
        # (a tail light: green well below red); only where the boundary was fitted (beyond, its straight
        # continuation may leave a curving road for yellow-green grass). A bright car, kerb or barrier is not paint
        rgb = an.frames_w[t].astype(np.int16)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        fitted = np.nan_to_num(an.maps_w.x, nan=np.inf) <= an.fit_range_m
        off = ~mw & fitted & (5 * g > 3 * r) & (r + g > 2 * b + 20)
        strong = zone & np.where(mw, ev.mask(cfg.paint_bright_thr * thr, cfg.paint_yellow_thr * thr),
                                 off & (ev.yellow > cfg.paint_yellow_thr * thr))
        weak = np.where(mw, grow & ev.mask(cfg.paint_bright_thr * thr * _WEAK, cfg.paint_yellow_thr * thr * _WEAK),
                        zone & off & (ev.yellow > cfg.paint_yellow_thr * thr * _WEAK))
        paint = strong
        if strong.any():
            # a stroke holds a few seed pixels; a lone bright speck of aggregate does not. Far away a whole dash
            # is a few pixels: the count asked for shrinks with the scale at the stroke's nearest row
            n, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
            hw, ww = mw.shape
            h_full, w_full = an.row_ppm.shape[0], an.cam.width
            bottom = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] - 1
            ppm = an.row_ppm[np.minimum(((bottom + 0.5) * h_full / hw).astype(np.intp), h_full - 1)] * (ww / w_full)
            need = np.clip(_SEED_M * ppm, 2.0, _MIN_SEED_PX)
            seeded = np.bincount(labels[strong], minlength=n) >= need
            seeded[0] = False
            paint = seeded[labels]
        ksz = 3 if params.erase_strength < 1.5 else 5
        box = np.ones((ksz, ksz), np.uint8)
        off_road = cv2.dilate((paint & ~mw).astype(np.uint8), box) > 0
        grown: Bool = (cv2.dilate(paint.astype(np.uint8), box) > 0) & (mw | off_road)
        if hood is not None:
            grown &= above
        return grown, zone

    def _erase(self, out: U8, frame: U8, mask: Bool, paint_w: Bool, low: F32, grain: float, an: ClipAnalysis,
               t: int, params: PaintParams, scale: tuple[float, float], low_scale: tuple[float, float]) -> None:
        cfg = self.cfg
        h, w = mask.shape
        sx, sy = scale
        rr, cc = np.nonzero(paint_w)
        r0 = max(int((rr.min() - 1.5) / sy), 0)
        r1 = min(math.ceil((rr.max() + 1.5) / sy) + 1, h)
        c0 = max(int((cc.min() - 1.5) / sx), 0)
        c1 = min(math.ceil((cc.max() + 1.5) / sx) + 1, w)
        # exact bilinear upsampling of the paint map over the box [r0, r1) x [c0, c1)
        m_aff = np.array([[sx, 0.0, (c0 + 0.5) * sx - 0.5], [0.0, sy, (r0 + 0.5) * sy - 0.5]])
        up = cv2.warpAffine(paint_w.astype(np.uint8) * 255, m_aff, (c1 - c0, r1 - r0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        box_mask = mask[r0:r1, c0:c1]
        # old paint of the named boundaries (and its border); off the road mask only where paint was found there
        off = (paint_w & ~an.masks_w[t]).astype(np.uint8) * 255
        up_off = cv2.warpAffine(off, m_aff, (c1 - c0, r1 - r0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT) if off.any() else np.zeros_like(up)
        hole = (up > 0) & (box_mask | (up_off > 0))
        if an.hood_top is not None:  # never a hood pixel
            hole &= np.arange(r0, r1)[:, None] < an.hood_top[None, c0:c1]
        rows, cols = np.nonzero(hole)
        if len(rows) == 0:
            return
        alpha = np.minimum(up[rows, cols].astype(np.float32) * (1.6 / 255.0), 1.0)[:, None]
        bad = np.ones((h, w), dtype=bool)
        bad[r0:r1, c0:c1] = (up > 12) | ~box_mask
        outside = np.ones((h, w), dtype=bool)
        outside[r0:r1, c0:c1] = False
        bad &= ~outside | ~mask
        rows += r0
        cols += c0
        shift_m = cfg.erase_half_width_m * params.erase_strength + 0.15
        shift_px = np.maximum(shift_m * an.row_ppm, 3.0).astype(np.float32)
        src, ok = texture_sources(rows, cols, shift_px, bad)
        lsx, lsy = low_scale
        low_px = _sample(low, rows, cols, lsx, lsy)
        fsrc = frame[rows, src].astype(np.float32)
        tex = fsrc - _sample(low, rows, src, lsx, lsy)
        # the texture's spread, robustly (MAD); residuals far beyond it are structure (a paving edge, a shadow
        # border), not texture, and are clipped
        if ok.sum() > 20:
            lum_tex = tex[ok].mean(axis=1)
            grain = max(1.4826 * float(np.median(np.abs(lum_tex - np.median(lum_tex)))), 0.5)
        noise = np.random.default_rng(t).standard_normal((len(rows), 1)).astype(np.float32) * grain
        tex = np.where(ok[:, None], np.clip(tex, -3.0 * grain, 3.0 * grain), noise)
        cur = frame[rows, cols].astype(np.float32)
        val = cur + alpha * (low_px + tex - cur)
        out[rows, cols] = np.clip(val + 0.5, 0, 255).astype(np.uint8)
        if an.hood_top is not None:
            clean_hood_seam(out, rows, cols, an.hood_top)

    def _paint_side(self, out: U8, mask: Bool, an: ClipAnalysis, t: int, c: F64, stripes: list[_Stripe],
                    color: Color | str, params: PaintParams, low_img: F32, scale: tuple[float, float]) -> None:
        cfg = self.cfg
        sz = cfg.sizes
        maps = an.maps
        h = mask.shape[0]
        reach = max(abs(s.offset_m) + s.width_m / 2 for s in stripes)
        rows, cols = _corridor(an.cam, maps, c, reach, cfg.max_range_m, an.fit_range_m)
        if len(rows) == 0:
            return
        keep = mask[rows, cols]
        rows, cols = rows[keep], cols[keep]
        x = maps.x[rows, cols]
        fin = np.isfinite(x)
        rows, cols, x = rows[fin], cols[fin], x[fin]
        if len(rows) == 0:
            return
        y = maps.y[rows, cols]
        blur = cfg.blur_px * (h / 720.0) / params.sharpness
        widen = math.sqrt(1.0 + 12.0 * blur * blur)  # box width (px) of the pixel footprint convolved with the blur
        fl = np.maximum(maps.lat_fp[rows, cols] * widen, 1e-4)
        d = y - _poly(c, x, an.fit_range_m)
        alpha = np.zeros(len(rows), dtype=np.float32)
        for st in stripes:
            alpha += overlap(d - st.offset_m, fl, -st.width_m / 2, st.width_m / 2).astype(np.float32)
        sel = alpha > 1e-3
        if not sel.any():
            return
        rows, cols, alpha, d, x = rows[sel], cols[sel], alpha[sel], d[sel], x[sel]
        fs = np.maximum(maps.lon_fp[rows, cols] * widen, 1e-4)
        s_road = x + an.travelled[t]
        if any(st.dashed for st in stripes):
            alpha = np.zeros(len(rows), dtype=np.float32)
            fl = np.maximum(maps.lat_fp[rows, cols] * widen, 1e-4)
            for st in stripes:
                cov = overlap(d - st.offset_m, fl, -st.width_m / 2, st.width_m / 2)
                if st.dashed:
                    cov = cov * dash_coverage(s_road, fs, sz.dash_length, sz.dash_length + sz.gap_length)
                alpha += cov.astype(np.float32)
        # wear anchored to the road; fades where a pixel spans many texels (no far-field shimmer)
        wear = cfg.wear * params.wear_scale
        if wear > 0:
            ti = np.mod(np.floor(s_road / _WEAR_TEXEL_S), self._wear.shape[0]).astype(np.intp)
            tj = np.clip(np.floor((d + 0.64) / _WEAR_TEXEL_D), 0, self._wear.shape[1] - 1).astype(np.intp)
            wv = self._wear[ti, tj]
            fade = np.clip(_WEAR_TEXEL_S * 4 / fs, 0.0, 1.0)
            alpha = alpha * (1.0 - wear * (fade * wv + (1 - fade) * self._wear_mean))
        alpha = np.clip(alpha, 0.0, 1.0) * params.opacity
        sx, sy = scale
        low = _sample(low_img, rows, cols, sx, sy)
        # the pavement's own colour times the paint's gain: brighter than the paving on concrete, in shade and at
        # night alike (lanepipe.edit.procedural.appearance)
        base = (an.yellow if color == "yellow" else an.white).colour(low)
        if color == "yellow":
            grey = base.mean(axis=1, keepdims=True)
            base = grey + params.saturation * (base - grey)
        paint = low + params.contrast * (base - low)
        under = out[rows, cols].astype(np.float32)
        col = np.clip(paint + (under - low) * cfg.texture_gain, 0.0, 255.0)
        a = alpha[:, None]
        out[rows, cols] = np.clip(under + a * (col - under) + 0.5, 0, 255).astype(np.uint8)

    def _polyline(self, an: ClipAnalysis, mask: Bool, c: F64, side: str, spec: LaneSpec) -> PaintedLine:
        cam = an.cam
        h, w = mask.shape
        xs = np.geomspace(1.0, self.cfg.max_range_m, 400)
        pts = np.stack([xs, _poly(c, xs, an.fit_range_m), np.zeros_like(xs)], axis=1)
        px, valid = cam.project(pts)
        px = px[valid]
        inside = (px[:, 1] >= 0) & (px[:, 1] <= h - 1)
        px = px[inside]
        points = np.zeros((0, 2))
        if len(px) >= 2:
            order = np.argsort(px[:, 1])  # increasing v
            vs, us = px[order, 1], px[order, 0]
            step = self.cfg.polyline_step_px
            rows = np.arange(h - 1, math.ceil(vs[0]) - 1, -step, dtype=np.float64)
            rows = rows[(rows >= vs[0]) & (rows <= vs[-1])]
            u_at = np.interp(rows, vs, us)
            ui = np.round(u_at).astype(int)
            ok = (ui >= 0) & (ui < w)
            ok[ok] = mask[rows[ok].astype(int), ui[ok]]
            points = np.stack([u_at[ok], rows[ok]], axis=1)
        return PaintedLine(id=0 if side == "left" else 1, side=side, color=str(spec.color),
                           pattern=str(spec.pattern), count=spec.count, points=points, visible=len(points) >= 2)


def boundary_band(an: ClipAnalysis, t: int, side: str, half_m: float) -> Bool:
    """``(H, W) bool`` full-resolution pixels within ``half_m`` metres (on the ground) of the ego lane's ``side``
    boundary as tracked in frame ``t`` (for measuring paint and remnants along it)."""
    maps = an.maps
    band = np.zeros(maps.x.shape, dtype=bool)
    rows, cols = _corridor(an.cam, maps, an.coefs[side][t], half_m, float(np.nanmax(maps.x)), an.fit_range_m)
    x = maps.x[rows, cols]
    ok = np.isfinite(x)
    rows, cols = rows[ok], cols[ok]
    near = np.abs(maps.y[rows, cols] - _poly(an.coefs[side][t], x[ok], an.fit_range_m)) < half_m
    band[rows[near], cols[near]] = True
    return band


def _sample(img: F32, rows: Ints, cols: Ints, sx: float, sy: float) -> F32:
    """Bilinear samples of a work-resolution image at full-resolution pixels ``(rows, cols)`` → ``(N, C)``."""
    n = len(rows)
    if n == 0:
        return np.zeros((0, img.shape[2]), dtype=np.float32)
    width = 1024  # cv2.remap wants maps under 32767 rows: lay the points out as a (n / 1024, 1024) image
    k = -(-n // width)
    mx = np.zeros(k * width, dtype=np.float32)
    my = np.zeros(k * width, dtype=np.float32)
    mx[:n] = (cols.astype(np.float32) + 0.5) * sx - 0.5
    my[:n] = (rows.astype(np.float32) + 0.5) * sy - 0.5
    out = cv2.remap(img, mx.reshape(k, width), my.reshape(k, width), interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.float32).reshape(k * width, -1)[:n]


def _corridor(cam: PinholeCamera, maps: geo.GroundMaps, c: F64, reach_m: float, max_range: float,
              x_lim: float) -> tuple[Ints, Ints]:
    """Pixels ``(rows, cols)`` within ``reach_m`` (plus two pixels) of the ground curve ``y = c(x)``."""
    h, w = cam.height, cam.width
    xs = np.geomspace(0.5, max_range, 600)
    pts = np.stack([xs, _poly(c, xs, x_lim), np.zeros_like(xs)], axis=1)
    px, valid = cam.project(pts)
    px = px[valid]
    if len(px) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    order = np.argsort(px[:, 1])
    vs, us = px[order, 1], px[order, 0]
    v0 = max(math.ceil(vs[0]), maps.v_top, 0)
    v1 = min(math.floor(vs[-1]), h - 1)
    if v1 < v0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    rows = np.arange(v0, v1 + 1)
    uc = np.interp(rows.astype(np.float64), vs, us)
    ui = np.clip(np.round(uc).astype(np.intp), 0, w - 1)
    fp = maps.lat_fp[rows, ui]
    fp = np.where(np.isfinite(fp) & (fp > 0), fp, np.inf)
    half = reach_m / fp + 2.0 + 2.0 * np.abs(np.gradient(uc))  # slanted lines cross more columns per row
    lo = np.clip(np.floor(uc - half), 0, w - 1).astype(np.intp)
    hi = np.clip(np.ceil(uc + half), -1, w - 1).astype(np.intp)
    out_of_image = (uc + half < 0) | (uc - half > w - 1)
    n = np.where(out_of_image, 0, hi - lo + 1)
    n = np.maximum(n, 0)
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    rr = np.repeat(rows, n)
    start = np.repeat(np.cumsum(n) - n, n)
    cc = np.repeat(lo, n) + (np.arange(total) - start)
    return rr.astype(np.intp), cc.astype(np.intp)
