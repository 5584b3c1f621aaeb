"""QA checks of an edit against its original: what a person would look at beyond count, colour and pattern.

The verifier (``verify.backend``) says whether the named boundary shows the requested marking. These checks
compare the edited frames with the original ones, pixel by pixel, and say whether anything else went wrong:

* ``unnamed_unchanged``: the paint of boundaries the instruction does not name (the ego lane's other boundary,
  markings outside the ego lane) is unchanged in every frame;
* ``remnants``: no old paint of the named boundary is left in any frame (a removal: no paint at all there; a new
  marking: no old paint left untouched, no old yellow still yellow when the new line is white) — per frame, so
  a leftover that flickers in 3 of 30 frames fails;
* ``white_brightness`` / ``yellow_chroma`` / ``yellow_hue``: new paint is plausible: white is brighter than the
  pavement around it, yellow is yellower than it and has a yellow hue;
* ``outside_road`` / ``on_hood``: nothing changed outside the road mask, nor on the ego vehicle's hood (the static
  bottom rows of the clip);
* ``erase_band``: changes lie on or next to old or new paint, never on the shoulders or kerbs.

Each check gives a :class:`~lanepipe.verify.base.CheckResult` (pass, fail or not applicable, with the measured
figure, its limit and the frames that broke it); :meth:`~lanepipe.verify.base.Verdict.with_checks` folds them into
the verdict, so a failed check is a FAIL and its typed reason steers the painter's next attempt.

How: the near range of the road (:class:`RoadView`: rows from the bottom of the road up to
``far_limit`` of the way to the vanishing point) is resampled at fixed lateral steps on the ground, assuming a
flat road and the camera ``camera_height_m`` above it: at image row ``v`` a ground point ``y`` metres left of the
camera (along the lane direction, whose vanishing point is ``(u0, v0)``) is at column ``u0 - y (v - v0) / h``.
A straight boundary is then a band of columns at any distance. Paint is what a horizontal top-hat of lightness
(or b*) narrower than ``paint_width_m`` finds; the ego lane's boundaries are the bands of columns, nearest the
camera on either side, that the original's paint occupies (or, where the original has none, the new paint).
The vanishing point comes from the lane detector (:class:`~lanepipe.verify.lane_detector.LaneDetector`) run once
on the original; the hood from the clip's static bottom block (:func:`static_hood`), else the detector's hood row.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.lanes.instructions import LaneSpec
from lanepipe.lanes.paint import tophat
from lanepipe.verify.base import CheckName, CheckResult
from lanepipe.verify.config import EditCheckConfig, LaneDetectorConfig

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Point = tuple[float, float]

#: Checks in the order they are recorded.
CHECKS: tuple[CheckName, ...] = ("unnamed_unchanged", "remnants", "white_brightness", "yellow_chroma", "yellow_hue",
                                 "outside_road", "on_hood", "erase_band")


# ============================================================================================== geometry
@dataclass(frozen=True)
class RoadView:
    """The near range of the road resampled on a ground-lateral grid.

    Attributes:
        vp: vanishing point of the lane direction ``(u, v)``, input pixels.
        rows: ``(R,) int`` image rows sampled, far to near.
        lats: ``(C,) float64`` lateral ground position of each column, metres, + = left of the camera; columns
            run left to right in the image (``lats`` decreasing).
        map_u, map_v: ``(R, C) float32`` the input pixel each sample comes from (for ``cv2.remap``).
        on_hood: ``(R, C) bool`` samples on the ego vehicle's hood (never road).
    """

    vp: Point
    rows: npt.NDArray[np.intp]
    lats: F64
    map_u: F32
    map_v: F32
    on_hood: Bool

    @property
    def step_m(self) -> float:
        return float(self.lats[0] - self.lats[1]) if len(self.lats) > 1 else 1.0

    def cols(self, metres: float) -> int:
        """How many columns span ``metres`` on the ground."""
        return max(1, round(metres / self.step_m))

    def rectify(self, img: npt.NDArray[np.uint8], nearest: bool = False) -> npt.NDArray[np.uint8]:
        """``(H, W[, 3]) uint8`` image → ``(R, C[, 3]) uint8`` samples (0 outside the image)."""
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        out: npt.NDArray[np.uint8] = np.asarray(
            cv2.remap(img, self.map_u, self.map_v, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0),
            dtype=np.uint8)
        return out


def road_view(vp: Point, bottom: int, cfg: EditCheckConfig, hood: npt.NDArray[np.intp] | None = None,
              max_rows: int = 160) -> RoadView | None:
    """The :class:`RoadView` of frames whose road ends (exclusive) at row ``bottom``, at most ``max_rows`` rows;
    ``hood``: the ``(W,)`` first hood row per column, if any (samples from there down are on the hood).

    Returns None when the near range has fewer than 4 rows (the vanishing point at or below the road's bottom,
    or a tiny image).
    """
    u0, v0 = vp
    height = bottom - v0
    top = math.ceil(v0 + cfg.far_limit * height)
    if bottom - top < 4 or height <= 0:
        return None
    rows = np.unique(np.linspace(top, bottom - 1, min(max_rows, bottom - top)).round().astype(np.intp))
    n = round(2 * cfg.lateral_range_m / cfg.lateral_step_m) + 1
    lats = np.linspace(cfg.lateral_range_m, -cfg.lateral_range_m, n)
    depth = (rows.astype(np.float64) - v0)[:, None]
    map_u = (u0 - lats[None, :] * depth / cfg.camera_height_m).astype(np.float32)
    map_v = np.repeat(rows.astype(np.float32)[:, None], n, axis=1)
    on_hood = np.zeros(map_u.shape, bool)
    if hood is not None:
        cols = np.clip(np.round(map_u), 0, len(hood) - 1).astype(np.intp)
        on_hood = map_v >= hood[cols]
    return RoadView(vp=(float(u0), float(v0)), rows=rows, lats=lats, map_u=map_u, map_v=map_v, on_hood=on_hood)


def static_hood(frames: U8, ratio: float) -> npt.NDArray[np.intp] | None:
    """First row of the static region at the bottom of each column (the ego vehicle's hood), or None.

    The road moves past the camera, the hood does not: each pixel's standard deviation over time is small on
    the hood. Per column, the hood is the run of rows up from the bottom whose figure is below ``ratio`` times
    the road's (the median over rows 55-75 % down the frame, central columns), smoothed across columns and never
    more than 2 % of the height above its median in the central columns (a hood's edge is a smooth curve, highest
    in the middle; a taller static run at the side is a blank wall). There is none when the run is under 2 % of
    the height in the central columns, and none is taller than 35 % (a car standing still shows no static block
    of its own).

    Shape:
        frames ``(T, H, W, 3) uint8`` with T >= 4 → ``(W,) intp`` rows; fewer frames → None.
    """
    t, h, w = frames.shape[:3]
    if t < 4 or h < 32:
        return None
    scale = min(1.0, 160 / w)
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    idx = np.unique(np.linspace(0, t - 1, min(t, 16)).round().astype(int))
    gray = np.stack([cv2.resize(cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY), (sw, sh), interpolation=cv2.INTER_AREA)
                     for i in idx]).astype(np.float32)
    std = gray.std(axis=0)
    centre = slice(int(0.2 * sw), max(int(0.2 * sw) + 1, int(0.8 * sw)))
    road = float(np.median(std[int(0.55 * sh):int(0.75 * sh), centre]))
    if road < 2.0:  # the picture hardly moves: no way to tell a static hood
        return None
    static = cv2.medianBlur(((std < ratio * road) * 255).astype(np.uint8), 3) > 0
    moving = ~static[::-1]  # bottom row first
    run = np.where(moving.any(axis=0), moving.argmax(axis=0), sh).astype(np.float64)
    run = np.minimum(run, 0.35 * sh)
    mid = float(np.median(run[centre]))
    if not 0.02 * sh <= mid:
        return None
    k = max(3, (sw // 16) | 1)
    smooth = np.array([np.median(run[max(0, c - k // 2):c + k // 2 + 1]) for c in range(sw)])
    # a hood's edge is highest in the middle: a taller static run elsewhere is a flat wall or sky, not hood
    smooth = np.minimum(smooth, float(np.median(smooth[centre])) + 0.02 * sh)
    top = (sh - smooth) / scale
    cols = np.interp(np.arange(w), (np.arange(sw) + 0.5) / scale - 0.5, top)
    out: npt.NDArray[np.intp] = np.clip(np.round(cols), 0, h).astype(np.intp)
    return out


# ============================================================================================== samples
@dataclass(frozen=True)
class _Samples:
    """One clip's frames rectified (``(N, R, C)`` arrays): Lab channels, paint strength (top-hat of lightness or
    twice that of b*), paint and road."""

    lum: F32
    a: F32
    b: F32
    strength: F32
    paint: Bool
    road: Bool


def _samples(frames: U8, masks: Bool, view: RoadView, cfg: EditCheckConfig) -> _Samples:
    lum, a, b, strength, paint, road = [], [], [], [], [], []
    k = (max(3, view.cols(cfg.paint_width_m) | 1), 1)
    for t in range(len(frames)):
        lab = cv2.cvtColor(view.rectify(frames[t]), cv2.COLOR_RGB2LAB).astype(np.float32)
        valid = view.rectify(np.full(frames.shape[1:3], 255, np.uint8), nearest=True) > 0
        r = (view.rectify(masks[t].astype(np.uint8) * 255, nearest=True) > 0) & valid & ~view.on_hood
        r = cv2.erode(r.astype(np.uint8), np.ones((1, 3), np.uint8)).astype(bool)
        th_l = tophat(lab[:, :, 0], k)
        th_b = tophat(lab[:, :, 2], k)
        noise = float(np.median(th_l[r])) if r.any() else 0.0
        pavement = float(np.median(lab[:, :, 0][r])) if r.any() else 255.0
        thr = max(min(cfg.paint_min_contrast, cfg.dark_contrast_share * pavement), cfg.noise_factor * noise)
        st = np.maximum(th_l, 2.0 * th_b)
        p = (st > thr) & r
        strength.append(st)
        lum.append(lab[:, :, 0])
        a.append(lab[:, :, 1])
        b.append(lab[:, :, 2])
        paint.append(p)
        road.append(r)
    return _Samples(np.stack(lum), np.stack(a), np.stack(b), np.stack(strength), np.stack(paint), np.stack(road))


def _bands(occupancy: F64, lats: F64, cfg: EditCheckConfig, step: float,
           baseline: float | None = None) -> list[tuple[float, float]]:
    """Bands ``(lat_hi, lat_lo)`` of ground columns that paint lines occupy.

    A column's occupancy is its share of road samples that are paint; road texture gives every column some
    (about 0.03-0.1 on the shared clips), so a line is a peak at least ``min_occupancy`` above the median column
    with any (or above ``baseline`` when given: the occupancy of *new* paint, where texture gives none and the only
    occupied columns may be the line's own), and its band the columns around the peak above half of that excess
    (gaps up to ``merge_gap_m`` bridged: the two lines of a double are one band). Bands wider than ``max_band_m``
    (a bright shoulder, a barrier's base) are no line.
    """
    if len(occupancy) < 3 or not (occupancy > 0).any():
        return []
    occ = np.convolve(occupancy, np.ones(3) / 3, mode="same")
    excess = occ - (float(np.median(occ[occupancy > 0])) if baseline is None else baseline)
    mid = excess[1:-1]
    peaks = np.nonzero((mid >= excess[:-2]) & (mid > excess[2:]) & (mid >= cfg.min_occupancy))[0] + 1
    widest = max(1, round(cfg.max_band_m / step))
    gap = max(1, round(cfg.merge_gap_m / step))
    runs: list[list[int]] = []
    for pk in peaks:
        half = 0.5 * excess[pk]
        lo = hi = int(pk)
        while lo > 0 and excess[lo - 1] >= half:
            lo -= 1
        while hi < len(occ) - 1 and excess[hi + 1] >= half:
            hi += 1
        if hi - lo + 1 > widest:
            continue
        if runs and lo - runs[-1][1] <= gap and hi - runs[-1][0] + 1 <= widest:
            runs[-1][1] = max(runs[-1][1], hi)
        else:
            runs.append([lo, hi])
    return [(float(lats[lo]), float(lats[hi])) for lo, hi in runs]


def _ego_bands(bands: list[tuple[float, float]], cfg: EditCheckConfig) -> dict[str, tuple[float, float]]:
    """The band nearest the camera on each side, within ``[min_lateral_m, max_lateral_m]``."""
    out: dict[str, tuple[float, float]] = {}
    for hi, lo in bands:
        mid = 0.5 * (hi + lo)
        if cfg.min_lateral_m <= mid <= cfg.max_lateral_m and ("left" not in out or mid < sum(out["left"]) / 2):
            out["left"] = (hi, lo)
        if -cfg.max_lateral_m <= mid <= -cfg.min_lateral_m and ("right" not in out or mid > sum(out["right"]) / 2):
            out["right"] = (hi, lo)
    return out


def _occupancy(paint: Bool, road: Bool) -> F64:
    n = road.sum(axis=(0, 1)).astype(np.float64)
    occ: F64 = np.where(n > 0, paint.sum(axis=(0, 1)) / np.maximum(n, 1), 0.0)
    return occ


@dataclass(frozen=True)
class _Original:
    view: RoadView | None
    samples: _Samples | None
    bands: dict[str, tuple[float, float]]
    note: str


# ============================================================================================== the checker
class EditChecker:
    """The QA checks of edits of one clip against its original (see the module docstring).

    Built once per (clip, instruction); the original's share of the work (vanishing point, hood, rectified
    samples and paint, its boundaries) is done on the first :meth:`check` and reused by later attempts.

    Args:
        original: ``(T, H, W, 3) uint8`` RGB frames before the edit.
        road_masks: ``(T, H, W) bool``, True = road.
        spec: the instruction.
        cfg: thresholds; defaults when None.
        detector_cfg: settings of the lane detector that finds the vanishing point.
        hood_top: ``(W,)`` the segmenter's first hood row per column (``RoadMasks.hood_top``), if any.

    Raises:
        InputError: frames or masks of the wrong type, dtype or shape.
    """

    def __init__(self, original: U8, road_masks: Bool, spec: LaneSpec, cfg: EditCheckConfig | None = None,
                 detector_cfg: LaneDetectorConfig | None = None,
                 hood_top: npt.NDArray[np.integer] | None = None) -> None:
        if not isinstance(original, np.ndarray) or original.ndim != 4 or original.shape[-1] != 3 \
                or original.dtype != np.uint8:
            raise InputError("original", "(T, H, W, 3) uint8 RGB frames",
                             f"{getattr(original, 'shape', type(original).__name__)} "
                             f"{getattr(original, 'dtype', '')}")
        if not isinstance(road_masks, np.ndarray) or road_masks.dtype != np.bool_ \
                or road_masks.shape != original.shape[:3]:
            raise InputError("road_masks", f"(T, H, W) bool matching the frames, i.e. {original.shape[:3]} bool",
                             f"{getattr(road_masks, 'shape', type(road_masks).__name__)} "
                             f"{getattr(road_masks, 'dtype', '')}")
        if hood_top is not None and (not isinstance(hood_top, np.ndarray) or hood_top.shape != original.shape[2:3]):
            raise InputError("hood_top", f"({original.shape[2]},) first hood row per column",
                             f"{getattr(hood_top, 'shape', type(hood_top).__name__)}")
        self.original, self.masks, self.spec = original, road_masks, spec
        self.mask_hood = None if hood_top is None else np.asarray(hood_top, dtype=np.intp)
        self.cfg = cfg or EditCheckConfig()
        self.detector_cfg = detector_cfg or LaneDetectorConfig(camera_height_m=self.cfg.camera_height_m)
        self._orig: dict[int, _Original] = {}
        self._vp_hood: tuple[Point, int | None, npt.NDArray[np.intp] | None] | None = None

    # ------------------------------------------------------------------------------------------ original
    def _geometry(self) -> tuple[Point, int | None, npt.NDArray[np.intp] | None]:
        """Vanishing point, the lane detector's hood row and the static hood's rows per column of the whole
        original clip (computed once)."""
        if self._vp_hood is None:
            from lanepipe.verify.lane_detector import LaneDetector

            report = LaneDetector(self.detector_cfg).inspect(self.original, self.masks)
            vp = report.diagnostics.get("vanishing_point")
            h, w = self.original.shape[1:3]
            point: Point = (float(vp[0]), float(vp[1])) if vp is not None else (w / 2, 0.55 * h)
            det = report.diagnostics.get("hood_row")
            static = static_hood(self.original, self.cfg.hood_static_ratio)
            if static is None and det is not None:
                # the detector saw a hood edge: read its shape with a looser test (reflections move on a hood),
                # never above the detector's row
                loose = static_hood(self.original, self.cfg.hood_static_ratio_loose)
                static = None if loose is None else np.maximum(loose, int(det))
            self._vp_hood = (point, None if det is None else int(det), static)
        return self._vp_hood

    def hood(self) -> npt.NDArray[np.intp] | None:
        """``(W,)`` first hood row per column: the static bottom block of the clip (:func:`static_hood`; where the
        lane detector saw a hood but the strict test found none, the loose test below the detector's row), else
        the lane detector's hood row across the frame, else None. With the segmenter's hood (``hood_top``, the one
        cut from the road mask): the rows both call hood, or the segmenter's where this finds none."""
        _, det, static = self._geometry()
        own = static if static is not None else (None if det is None else np.full(self.original.shape[2], det,
                                                                                     np.intp))
        if self.mask_hood is None:
            return own
        if own is None:
            return self.mask_hood
        # the segmenter's hood (cut from the road mask) and this one differ by a few rows along the hood's
        # blurred rim: the hood is where both see it
        both: npt.NDArray[np.intp] = np.maximum(own, self.mask_hood)
        return both

    def hood_row(self) -> int | None:
        """The highest hood row in the central 60 % of the columns (the road's near range ends there), or None."""
        hood = self.hood()
        if hood is None:
            return None
        w = len(hood)
        return int(hood[int(0.2 * w):max(int(0.2 * w) + 1, int(0.8 * w))].min())

    def boundaries(self, n: int) -> tuple[RoadView | None, dict[str, tuple[float, float]]]:
        """The near-range view of the first ``n`` original frames and the ego lane's boundaries found in them:
        side → ``(lat_hi, lat_lo)`` metres (+ = left) of its paint band; ``(None, {})`` when there is no view."""
        o = self._original_of(n)
        return o.view, dict(o.bands)

    def _original_of(self, n: int) -> _Original:
        if n in self._orig:
            return self._orig[n]
        vp, _, _ = self._geometry()
        hood = self.hood()
        masks = self.masks[:n]
        rows = np.nonzero(masks.any(axis=(0, 2)))[0]
        if not len(rows):
            out = _Original(None, None, {}, "no road in the mask")
        else:
            # down to the road's last row; the hood's samples (its edge is lowest at the sides) are not road
            bottom = int(rows.max()) + 1 if hood is None else min(int(rows.max()) + 1, int(hood.max()))
            view = road_view(vp, bottom, self.cfg, hood)
            if view is None:
                out = _Original(None, None, {}, "the road's near range is under 4 rows (vanishing point too low "
                                                "or image too small)")
            else:
                s = _samples(self.original[:n], masks, view, self.cfg)
                bands = _ego_bands(_bands(_occupancy(s.paint, s.road), view.lats, self.cfg, view.step_m), self.cfg)
                out = _Original(view, s, bands, "")
        self._orig[n] = out
        return out

    # ------------------------------------------------------------------------------------------ checks
    def check(self, edited: U8) -> list[CheckResult]:
        """Every check of ``edited`` (the first ``len(edited)`` frames of the clip, edited), in :data:`CHECKS`
        order (one result per boundary for the per-boundary checks).

        Raises:
            InputError: ``edited`` is not ``(T', H, W, 3) uint8`` with ``1 <= T' <= T`` and the original's size.
        """
        t_all = self.original.shape[0]
        if not isinstance(edited, np.ndarray) or edited.ndim != 4 or edited.shape[1:] != self.original.shape[1:] \
                or edited.dtype != np.uint8 or not 1 <= len(edited) <= t_all:
            raise InputError("edited", f"(T', {', '.join(map(str, self.original.shape[1:]))}) uint8 with "
                                       f"1 <= T' <= {t_all}",
                             f"{getattr(edited, 'shape', type(edited).__name__)} {getattr(edited, 'dtype', '')}")
        n = len(edited)
        cfg, spec = self.cfg, self.spec
        orig = self._original_of(n)
        named = ["left", "right"] if spec.side == "both" else [str(spec.side)]
        full = [*self._outside_road(edited), self._on_hood(edited)]
        if orig.view is None or orig.samples is None:
            na = [CheckResult(c, b, "not applicable", note=orig.note)
                  for c in CHECKS[:5] for b in (named if c != "unnamed_unchanged" else ["outer"])]
            return [*na, *full, CheckResult("erase_band", "frame", "not applicable", note=orig.note)]
        view, o = orig.view, orig.samples
        e = _samples(edited, self.masks[:n], view, cfg)
        road = o.road
        d_l = e.lum - o.lum
        d_b = e.b - o.b
        changed = ((np.abs(d_l) > cfg.change_tol) | (2.0 * np.abs(d_b) > cfg.change_tol)) & road
        untouched = (np.abs(d_l) <= cfg.untouched_tol) & (np.abs(d_b) <= cfg.untouched_tol)
        new_paint = e.paint & changed
        bands = dict(orig.bands)
        # where the original shows no paint of a boundary (worn, or too dark to tell), the edit's new paint marks it
        found_new = _ego_bands(_bands(_occupancy(new_paint, road), view.lats, cfg, view.step_m, baseline=0.0), cfg)
        for side in ("left", "right"):
            if side not in bands and side in found_new:
                bands[side] = found_new[side]
        corridors = {side: self._corridor(view, band) for side, band in bands.items()}
        out: list[CheckResult] = []
        out.extend(self._unnamed(o, e, changed, corridors, named))
        for side in named:
            band = orig.bands.get(side)
            tight = None if band is None else self._corridor(view, band, cfg.remnant_margin_m)
            out.append(self._remnants(side, o, e, untouched, tight, view, edited))
        for side in named:
            out.extend(self._plausible(side, o, e, changed, corridors.get(side), view))
        out.extend(full)
        path = np.zeros(len(view.lats), bool)  # the named boundaries' paths: their paint bands over the clip
        for side in named:
            if side in bands:
                path |= self._corridor(view, bands[side], cfg.erase_band_m)
        out.append(self._erase_band(o, e, changed & ~path[None, None, :], changed, view))
        order = {c: i for i, c in enumerate(CHECKS)}
        return sorted(out, key=lambda c: order[c.check])

    def _frame_line(self, paint: Bool, road: Bool, cols: Bool, view: RoadView) -> Bool:
        """``(C,)`` the columns of one frame's line within the boundary's columns ``cols``: around the column
        most occupied by paint, those at least half as occupied (gaps up to ``double_gap_m`` bridged), grown
        by ``remnant_margin_m``; none when that peak is under ``min_occupancy``. A seam or a lit strip half a
        metre beside a line is not its paint."""
        n = np.maximum(road.sum(axis=0), 1)
        occ = np.where(cols, paint.sum(axis=0) / n, 0.0)
        pk = int(np.argmax(occ))
        out = np.zeros(len(cols), bool)
        if occ[pk] < self.cfg.min_occupancy:
            return out
        strong = occ >= 0.5 * occ[pk]
        gap = max(1, round(self.cfg.double_gap_m / view.step_m))
        lo = hi = pk
        while True:
            ahead = [c for c in range(hi + 1, min(len(occ), hi + gap + 2)) if strong[c]]
            behind = [c for c in range(max(0, lo - gap - 1), lo) if strong[c]]
            if not ahead and not behind:
                break
            hi = max(ahead, default=hi)
            lo = min(behind, default=lo)
        m = view.cols(self.cfg.remnant_margin_m)
        out[max(0, lo - m):hi + m + 1] = True
        return out & cols

    def _corridor(self, view: RoadView, band: tuple[float, float], margin: float | None = None) -> Bool:
        hi, lo = band
        m = self.cfg.corridor_margin_m if margin is None else margin
        out: Bool = (view.lats <= hi + m) & (view.lats >= lo - m)
        return out

    def _per_frame(self, num: npt.NDArray[np.int64], den: npt.NDArray[np.int64],
                   limit: float, min_px: int | None = None) -> tuple[float | None, tuple[int, ...]]:
        """Per-frame share ``num / den`` over frames with ``den >= min_px``: the worst share and the frames where
        it is above ``limit`` with at least ``min_px`` samples in ``num`` (a few specks of texture are no
        finding); ``min_px`` defaults to the config's."""
        least = self.cfg.min_px if min_px is None else min_px
        ok = den >= least
        if not ok.any():
            return None, ()
        share = np.where(ok, num / np.maximum(den, 1), 0.0)
        bad = ok & (share > limit) & (num >= least)
        return float(share[ok].max()), tuple(int(i) for i in np.nonzero(bad)[0])

    def _unnamed(self, o: _Samples, e: _Samples, changed: Bool, corridors: dict[str, Bool],
                 named: list[str]) -> list[CheckResult]:
        cfg = self.cfg
        zones: list[tuple[str, Bool]] = [(s, c) for s, c in corridors.items() if s not in named]
        ego = np.zeros(o.road.shape[2], bool)
        for c in corridors.values():
            ego |= c
        zones.append(("outer", ~ego))
        out: list[CheckResult] = []
        for name, cols in zones:
            p = (o.paint | e.paint) & o.road & cols[None, None, :]
            worst, frames = self._per_frame((p & changed).sum(axis=(1, 2)), p.sum(axis=(1, 2)),
                                            cfg.unnamed_max_changed)
            if worst is None:
                out.append(CheckResult("unnamed_unchanged", name, "not applicable",
                                       note="no paint there in the original or the edit"))
                continue
            out.append(CheckResult("unnamed_unchanged", name, "fail" if frames else "pass", worst,
                                   cfg.unnamed_max_changed, frames, "share of its paint samples changed (worst frame)"))
        return out

    def _remnants(self, side: str, o: _Samples, e: _Samples, untouched: Bool, cols: Bool | None,
                  view: RoadView, edited: U8) -> CheckResult:
        cfg, spec = self.cfg, self.spec
        if cols is None:
            return CheckResult("remnants", side, "not applicable", note="no old paint on this boundary")
        old = o.paint & o.road & np.stack([self._frame_line(o.paint[t], o.road[t], cols, view)
                                           for t in range(len(o.paint))])[:, None, :]
        if spec.is_removal:
            left = old & e.paint & (e.strength >= cfg.remnant_strength * o.strength)
            what = "share of old paint samples still paint (worst frame)"
        else:
            left = old & e.paint & untouched
            what = "share of old paint samples left untouched"
            if spec.color != "yellow":
                pave_b = _pavement(o, o.b, cols, view, cfg)
                was_yellow = old & (o.b - pave_b > cfg.yellow_b)
                left |= was_yellow & e.paint & (e.b - pave_b > cfg.yellow_b)
                what += " or still yellow"
            what += " (worst frame)"
        worst, frames = self._per_frame(left.sum(axis=(1, 2)), old.sum(axis=(1, 2)), cfg.remnant_max)
        # the rows just above the hood (or the frame's bottom) on their own: a short piece of old line left there is
        # a small share of the whole boundary but plain to see (issue 13: a ~25x5 px yellow fleck passed)
        near = view.rows >= view.rows.max() - math.ceil(cfg.remnant_near_share * edited.shape[1])
        near_old = old[:, near].sum(axis=(1, 2))
        near_worst, near_frames = self._per_frame(left[:, near].sum(axis=(1, 2)), near_old, cfg.remnant_max,
                                                  cfg.remnant_near_min_px)
        frames = tuple(sorted(set(frames) | set(near_frames)))
        if near_worst is not None and near_worst > (worst or 0.0):
            worst = near_worst
        rim = self._rim_remnants(side, edited)
        note = "" if near_worst is None else f"nearest rows: {near_worst:.3g} (worst frame)"
        if rim is not None:  # old paint on the hood's blurred rim, where the road view does not reach
            rim_worst, rim_frames = rim
            note = "; ".join(x for x in (note, f"hood rim: {rim_worst:.3g} of its old paint pixels still paint "
                                          f"(worst frame; limit {cfg.rim_remnant_max:g})") if x)
            if worst is None:
                worst = rim_worst
            frames = tuple(sorted(set(frames) | set(rim_frames)))
        if worst is None:
            return CheckResult("remnants", side, "not applicable", note="too little old paint in any frame")
        return CheckResult("remnants", side, "fail" if frames else "pass", worst, cfg.remnant_max, frames, what,
                           note=note)

    def _rim_lab(self, frames: U8, hood: npt.NDArray[np.intp]) -> tuple[F32, int, int]:
        """Lab (float) of the rows around the hood's rim, ``(T, rows, W, 3)``, and their first row and seam rows."""
        h = frames.shape[1]
        s = max(3, math.ceil(self.cfg.seam_share * h))
        top, bottom = max(int(hood.min()) - 8, 0), min(int(hood.max()) + 2 * s + 1, h)
        lab = np.stack([cv2.cvtColor(np.ascontiguousarray(f[top:bottom]), cv2.COLOR_RGB2LAB) for f in frames])
        return lab.astype(np.float32), top, s

    def _rim_remnants(self, side: str, edited: U8) -> tuple[float, tuple[int, ...]] | None:
        """Old yellow paint of boundary ``side`` left on the hood's blurred rim: per frame, the share of the
        original's yellow pixels there (yellower than the hood below them by ``seam_b``, within the boundary's
        corridor; brightness is no test there: a hood's rim often carries a bright trim) that the edit left yellow
        (also than the pavement just above); the worst share and the frames over ``rim_remnant_max``. None without
        a hood, old paint on its rim, or where the new paint may stand there (a yellow line)."""
        cfg, spec = self.cfg, self.spec
        hood = self.hood()
        n, h, w = edited.shape[:3]
        if hood is None or int(hood.min()) >= h or int(hood.min()) < 8:
            return None
        if not spec.is_removal and spec.color == "yellow":
            return None
        corridor = self._named_corridors(n, h, w, [side])
        if corridor is None:
            return None
        lab_o, top, s = self._rim_lab(self.original[:n], hood)
        lab_e, _, _ = self._rim_lab(edited, hood)
        rr = np.arange(top, top + lab_o.shape[1])[:, None]
        seam = (rr >= hood[None, :] - 2) & (rr < hood[None, :] + s) & corridor[top:top + lab_o.shape[1]]
        below = (rr >= hood[None, :] + s) & (rr < hood[None, :] + 2 * s)
        above = (rr >= hood[None, :] - 8) & (rr < hood[None, :] - 4)

        def ref(lab: F32, sel: Bool) -> F32:  # (T, 1, W, 3) per-column median over the rows selected
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
                med: F32 = np.nanmedian(np.where(sel[None, :, :, None], lab, np.nan), axis=1, keepdims=True)
            return med

        def paint(lab: F32, refs: list[F32]) -> Bool:  # yellow only: a hood's rim often has a bright trim
            up_b = np.fmax.reduce([r[..., 2] for r in refs]) if len(refs) > 1 else refs[0][..., 2]
            yellow: Bool = lab[..., 2] > up_b + cfg.seam_b
            return yellow

        old = paint(lab_o, [ref(lab_o, below)]) & seam[None]
        left = old & paint(lab_e, [ref(lab_e, below), ref(lab_e, above)])
        worst, frames = self._per_frame(left.sum(axis=(1, 2)), old.sum(axis=(1, 2)), cfg.rim_remnant_max,
                                        min_px=10)
        return None if worst is None else (worst, frames)

    def _plausible(self, side: str, o: _Samples, e: _Samples, changed: Bool, cols: Bool | None,
                   view: RoadView) -> list[CheckResult]:
        """Brightness (white) or chroma and hue (yellow) of the new paint against the pavement around it.

        The new line is found as the columns of the corridor whose changed samples differ most, on average,
        from the pavement (a texture fill averages out; paint does not): the 3 columns with the largest mean
        lightness (white) or b* (yellow) difference in absolute value, signed.
        """
        cfg, spec = self.cfg, self.spec
        names: list[CheckName] = ["white_brightness"] if spec.color == "white" else ["yellow_chroma", "yellow_hue"]
        others: list[CheckName] = [c for c in ("white_brightness", "yellow_chroma", "yellow_hue") if c not in names]
        asked = "a removal" if spec.is_removal else f"{spec.color} paint"
        skipped = [CheckResult(c, side, "not applicable", note=f"the instruction asks for {asked}") for c in others]
        if spec.is_removal:
            return [CheckResult(c, side, "not applicable", note="the instruction asks for a removal")
                    for c in ("white_brightness", "yellow_chroma", "yellow_hue")]
        if cols is None:
            return [*skipped, *(CheckResult(c, side, "not applicable", note="no new paint found on this boundary")
                                for c in names)]
        pave_l = _pavement(o, o.lum, cols, view, cfg)
        pave_b = _pavement(o, o.b, cols, view, cfg)
        diff = (e.lum - pave_l) if spec.color == "white" else (e.b - pave_b)
        sel = changed & cols[None, None, :] & (np.abs(diff) > cfg.stripe_tol) & np.isfinite(diff)
        per_col = sel.sum(axis=(0, 1))
        if per_col.sum() < cfg.min_px:
            return [*skipped, *(CheckResult(c, side, "not applicable",
                                            note="no changed samples stand out from the pavement") for c in names)]
        d = np.where(sel, diff, 0.0)
        mean = d.sum(axis=(0, 1)) / np.maximum(per_col, 1)
        usable = per_col >= max(3, cfg.min_px // 5)
        if not usable.any():
            usable = per_col > 0
        top = np.argsort(np.where(usable, -np.abs(mean), np.inf))[:3]
        top = top[usable[top]]
        col_sel = np.zeros_like(cols)
        col_sel[top] = True
        stripe = sel & col_sel[None, None, :]
        value = float(np.median(diff[stripe]))
        frames_n = stripe.sum(axis=(1, 2))
        out: list[CheckResult] = list(skipped)
        if spec.color == "white":
            bad = tuple(int(t) for t in range(len(frames_n)) if frames_n[t] >= 3
                        and float(np.median(diff[t][stripe[t]])) < cfg.white_min_contrast)
            ok = value >= cfg.white_min_contrast
            out.append(CheckResult("white_brightness", side, "pass" if ok else "fail", value, cfg.white_min_contrast,
                                   () if ok else bad, "median lightness of the new paint above the pavement (min)"))
            return out
        ok = value >= cfg.yellow_min_b
        bad = tuple(int(t) for t in range(len(frames_n)) if frames_n[t] >= 3
                    and float(np.median(diff[t][stripe[t]])) < cfg.yellow_min_b)
        out.append(CheckResult("yellow_chroma", side, "pass" if ok else "fail", value, cfg.yellow_min_b,
                               () if ok else bad, "median b* of the new paint above the pavement (min)"))
        hue = math.degrees(math.atan2(float(np.median(e.b[stripe])) - 128.0, float(np.median(e.a[stripe])) - 128.0))
        lo, hi = cfg.yellow_hue_deg
        out.append(CheckResult("yellow_hue", side, "pass" if lo <= hue <= hi else "fail", hue,
                               lo if hue < lo else hi, (), "Lab hue angle of the new paint, degrees",
                               note=f"accepted {lo:g}-{hi:g} deg"))
        return out

    def _outside_road(self, edited: U8) -> list[CheckResult]:
        """Pixels changed outside the (slightly grown) road mask. Old paint of a named boundary that the mask
        missed (a yellow line in shade) is road surface all the same: it may be erased or repainted there, so
        changes on an original paint pixel, or its blurred border, within the named boundaries' corridors are not
        counted."""
        cfg = self.cfg
        n = len(edited)
        k = 2 * cfg.mask_grow_px + 1
        counts = np.zeros(n, np.int64)
        erased = 0
        corridor = self._named_corridors(n, edited.shape[1], edited.shape[2])
        for t in range(n):
            grown = cv2.dilate(self.masks[t].astype(np.uint8), np.ones((k, k), np.uint8)) > 0
            off = _changed(edited[t], self.original[t], cfg.outside_tol) & ~grown
            if off.any() and corridor is not None and (off & corridor).any():
                er = off & corridor & _old_paint(self.original[t], cfg)
                erased = max(erased, int(er.sum()))
                off &= ~er
            counts[t] = int(off.sum())
        share = counts / float(edited.shape[1] * edited.shape[2])
        frames = tuple(int(t) for t in np.nonzero(share > cfg.outside_max_share)[0])
        note = f"changes on old paint off the mask not counted (up to {erased} px in a frame)" if erased else ""
        return [CheckResult("outside_road", "frame", "fail" if frames else "pass", float(share.max()),
                            cfg.outside_max_share, frames, "share of the pixels outside the road mask changed",
                            note=note)]

    def _named_corridors(self, n: int, h: int, w: int, sides: list[str] | None = None) -> Bool | None:
        """``(H, W) bool`` image pixels on the ground within ``corridor_margin_m`` of the named boundaries' (or
        ``sides``') paint bands (flat road, ``camera_height_m``), or None when the original shows none of them."""
        orig = self._original_of(n)
        named = sides or (["left", "right"] if self.spec.side == "both" else [str(self.spec.side)])
        bands = [orig.bands[s] for s in named if s in orig.bands]
        if orig.view is None or not bands:
            return None
        u0, v0 = orig.view.vp
        rows = np.arange(h, dtype=np.float64)[:, None]
        depth = rows - v0
        lat = np.where(depth > 0, (u0 - np.arange(w, dtype=np.float64)[None, :]) * self.cfg.camera_height_m
                       / np.maximum(depth, 1e-6), np.nan)
        m = self.cfg.corridor_margin_m
        out: Bool = np.zeros((h, w), bool)
        for hi, lo in bands:
            out |= (lat <= hi + m) & (lat >= lo - m)
        return out

    def _on_hood(self, edited: U8) -> CheckResult:
        cfg = self.cfg
        hood = self.hood()
        h = edited.shape[1]
        if hood is None or int(hood.min()) >= h:
            return CheckResult("on_hood", "frame", "not applicable", note="no hood found")
        top = int(hood.min())
        rr = np.arange(top, h)[:, None]
        region = rr >= hood[None, :]
        # the blurred rim: a change there counts only where it made a pixel yellower, or brighter without losing
        # its yellow (paint put on the hood); an old line's last piece cleaned off it is no change of the hood
        s = max(3, math.ceil(cfg.seam_share * h))
        rim = region & (rr < hood[None, :] + s)
        n = len(edited)
        counts = []
        for t in range(n):
            changed = _changed(edited[t, top:], self.original[t, top:], cfg.outside_tol) & region
            on_rim = changed & rim
            if on_rim.any():
                lo = cv2.cvtColor(np.ascontiguousarray(self.original[t, top:]), cv2.COLOR_RGB2LAB).astype(np.int16)
                le = cv2.cvtColor(np.ascontiguousarray(edited[t, top:]), cv2.COLOR_RGB2LAB).astype(np.int16)
                more_paint = (le[..., 2] > lo[..., 2] + 4) | ((le[..., 0] > lo[..., 0] + 4)
                                                               & (le[..., 2] >= lo[..., 2] - cfg.seam_b))
                changed &= ~on_rim | more_paint
            counts.append(int(changed.sum()))
        share = np.array(counts) / max(int(region.sum()), 1)
        frames = tuple(int(t) for t in np.nonzero(share > cfg.hood_max_share)[0])
        return CheckResult("on_hood", "frame", "fail" if frames else "pass", float(share.max()), cfg.hood_max_share,
                           frames, "share of the hood's pixels changed",
                           note=f"hood from row {top} (highest) to {int(hood.max())} (lowest); rim changes that "
                                "left pixels less paint-like not counted")

    def _erase_band(self, o: _Samples, e: _Samples, off_path: Bool, changed: Bool, view: RoadView) -> CheckResult:
        """Changed samples (``off_path``: those off the named boundaries' paths) farther than ``erase_band_m``
        from the frame's old or new paint, as a share of all changed samples."""
        cfg = self.cfg
        k = 2 * view.cols(cfg.erase_band_m) + 1
        band = np.stack([cv2.dilate((o.paint[t] | e.paint[t]).astype(np.uint8), np.ones((3, k), np.uint8)) > 0
                         for t in range(len(o.paint))])
        outside = off_path & ~band
        worst, frames = self._per_frame(outside.sum(axis=(1, 2)), changed.sum(axis=(1, 2)), cfg.erase_max_outside)
        if worst is None:
            return CheckResult("erase_band", "frame", "not applicable", note="next to nothing changed on the road")
        return CheckResult("erase_band", "frame", "fail" if frames else "pass", worst, cfg.erase_max_outside, frames,
                           f"share of changed road samples farther than {cfg.erase_band_m:g} m from paint and "
                           "from the named boundary's path (worst frame)")


def _pavement(o: _Samples, chan: F32, cols: Bool, view: RoadView, cfg: EditCheckConfig) -> F32:
    """``(N, R, 1)`` per-frame, per-row median of ``chan`` over the original's pavement (road, not paint) beside
    the corridor ``cols`` (within ``pave_window_m``); NaN where there is none."""
    k = 2 * view.cols(cfg.pave_window_m) + 1
    near = cv2.dilate(cols.astype(np.uint8)[None, :], np.ones((1, k), np.uint8))[0] > 0
    win = near & ~cols
    idx = np.nonzero(win)[0]
    sel = (o.road & ~o.paint)[:, :, idx]
    vals = np.sort(np.where(sel, chan[:, :, idx], np.inf), axis=2)  # the pavement's samples first, in order
    count = sel.sum(axis=2, keepdims=True)
    last = max(vals.shape[2] - 1, 0)
    lo = np.take_along_axis(vals, np.clip((count - 1) // 2, 0, last), axis=2)
    hi = np.take_along_axis(vals, np.clip(count // 2, 0, last), axis=2)
    med = np.where(count % 2 == 1, lo, 0.5 * (lo + hi))
    out: F32 = np.where(count > 0, med, np.nan).astype(np.float32)
    return out


def _old_paint(original: U8, cfg: EditCheckConfig) -> Bool:
    """``(H, W) bool`` paint pixels of one original frame: lightness, or twice b*, standing above a horizontal
    opening ``paint_kernel`` of the width wide by more than ``paint_min_contrast``, grown by ``paint_border_px``
    (the stroke's blurred border)."""
    w = original.shape[1]
    k = (max(3, round(cfg.paint_kernel * w) | 1), 1)
    lab: U8 = np.asarray(cv2.cvtColor(original, cv2.COLOR_RGB2LAB), dtype=np.uint8)
    st = np.maximum(tophat(np.ascontiguousarray(lab[:, :, 0]), k).astype(np.int16),
                    2 * tophat(np.ascontiguousarray(lab[:, :, 2]), k).astype(np.int16))
    m = 2 * cfg.paint_border_px + 1
    out: Bool = cv2.dilate((st > cfg.paint_min_contrast).astype(np.uint8), np.ones((m, m), np.uint8)) > 0
    return out


def _changed(a: U8, b: U8, tol: int) -> Bool:
    """``(H, W) bool`` pixels where some RGB channel of ``a`` and ``b`` (``(H, W, 3) uint8``) differs by more
    than ``tol``."""
    d = cv2.absdiff(a, b)
    out: Bool = np.maximum(np.maximum(d[:, :, 0], d[:, :, 1]), d[:, :, 2]) > tol
    return out
