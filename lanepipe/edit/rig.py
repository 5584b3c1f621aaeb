"""One lane edit in the road plane, painted into every calibrated camera of a rig that sees it.

The edit is defined once (:class:`RoadEdit`): per frame, each edited boundary of the ego lane as a lateral position
``y(x)`` sampled along the rig frame's x axis (the front camera's boundary cubics, moved from that camera's ego
frame into the rig frame), its stripes (offset, width, dashed), colour, and the dash phase along the road (the
distance driven). :func:`paint_camera` then erases and paints it in one camera through that camera's own
calibration (pinhole or f-theta, any pose): every pixel's ray meets the ground at ``(x, y)`` in the rig frame
(:func:`lanepipe.geometry.rig.pixel_ground`); pixels whose ray the ego body blocks and pixels outside that camera's
road mask never change. Erase: paint-like pixels in a corridor around the boundary (brighter or yellower than the
asphalt interpolated from outside the corridor) are replaced by that asphalt plus grain of the measured spread.
Paint: each pixel's coverage is the exact overlap of its ground footprint with each stripe across the line and,
for broken lines, with the dashes along it (MUTCD 2009 §3A.06 sizes from :class:`MarkingSizes`), so one road-plane
line lands on the same ground in every camera. :func:`recover_lines` reads a painted line back: paint pixels
back-projected onto the ground, averaged in bins of x — the road-plane check of a camera the image verifier does
not read (cross cameras) and the multi-camera consistency figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.edit.erase import push_pull_fill
from lanepipe.edit.procedural.params import PaintedLine, RoadGeometry
from lanepipe.edit.procedural.render import dash_coverage, overlap
from lanepipe.errors import InputError
from lanepipe.geometry import road as geo
from lanepipe.geometry.rig import EgoBody, PixelGround, RigCamera, pixel_ground
from lanepipe.lanes.instructions import LaneSpec, MarkingSizes

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

SIDES = ("left", "right")
#: Paint over the asphalt under it when the front edit shows none to measure: sunlit white paint about 2.3 times the
#: asphalt's level, yellow (1.0, 0.80, 0.32) of white (the procedural painter's standard ratios).
WHITE_OVER_ASPHALT = np.array([2.3, 2.3, 2.3])
YELLOW_OVER_ASPHALT = WHITE_OVER_ASPHALT * np.array([1.0, 0.80, 0.32]) * 0.9
#: Paint is this many grey levels brighter than the asphalt beside it (0-255), or this much yellower.
BRIGHT_THR = 18.0
YELLOW_THR = 10.0


@dataclass(frozen=True)
class Stripe:
    """One painted stripe of a boundary line: offset from the boundary centre (+ = left), width, broken or not."""

    offset_m: float
    width_m: float
    dashed: bool


def stripes_for(spec: LaneSpec, sizes: MarkingSizes, width_scale: float = 1.0,
                spacing_scale: float = 1.0) -> dict[str, list[Stripe]]:
    """The stripes of ``spec`` per side (empty for ``none``); solid-dashed puts the solid line on the ego side."""
    w = sizes.line_width * width_scale
    out: dict[str, list[Stripe]] = {}
    for side in SIDES:
        if spec.is_removal:
            out[side] = []
        elif spec.count == 1:
            out[side] = [Stripe(0.0, w, spec.pattern == "dashed")]
        else:
            half = 0.5 * (sizes.double_spacing * spacing_scale + w)
            if spec.pattern == "solid-dashed":
                ego = -1.0 if side == "left" else 1.0
                out[side] = [Stripe(ego * half, w, False), Stripe(-ego * half, w, True)]
            else:
                dashed = spec.pattern == "dashed"
                out[side] = [Stripe(half, w, dashed), Stripe(-half, w, dashed)]
    return out


def default_ratio(spec: LaneSpec) -> F64:
    """The standard paint-over-asphalt ratio of the instruction's colour."""
    return (YELLOW_OVER_ASPHALT if spec.color == "yellow" else WHITE_OVER_ASPHALT).copy()


def measure_paint(original: U8, edited: U8, masks: Bool, lanes: list[list[PaintedLine]], spec: LaneSpec,
                  max_frames: int = 8) -> F64:
    """Paint over pavement, per RGB channel, as the front painter drew it: the edited colour at the painted lines'
    centre points in the lower half of the image (where a line is several pixels wide) that look painted, over the
    asphalt there (interpolated from the road pixels the edit did not change, away from the line). Standard ratios
    when no painted point is found (removals, double lines whose centre is the gap between the stripes).

    Args:
        original, edited: ``(T, H, W, 3) uint8`` the front clip before and after the edit.
        masks: ``(T, H, W) bool`` its road masks.
        lanes: the painted lines per frame (image polylines).
        spec: the instruction.
    """
    if spec.is_removal or spec.count != 1:
        return default_ratio(spec)
    t_n, h, w = original.shape[:3]
    ratios = []
    kernel = np.ones((7, 7), np.uint8)
    for t in np.linspace(0, t_n - 1, min(max_frames, t_n)).round().astype(int):
        pts = [ln.points for ln in lanes[t] if len(ln.points)]
        if not pts:
            continue
        p = np.concatenate(pts)
        p = p[p[:, 1] > 0.55 * h]
        u = np.clip(np.round(p[:, 0]).astype(int), 0, w - 1)
        v = np.clip(np.round(p[:, 1]).astype(int), 0, h - 1)
        changed = (edited[t] != original[t]).any(axis=-1)
        away = masks[t] & ~(cv2.dilate(changed.astype(np.uint8), kernel) > 0)
        if len(u) < 5 or away.sum() < 100:
            continue
        low = push_pull_fill(edited[t].astype(np.float32), away)[v, u].astype(np.float64)
        got = edited[t][v, u].astype(np.float64)
        painted = got.mean(axis=1) - low.mean(axis=1) > BRIGHT_THR
        if painted.sum() >= 3:
            ratios.append(np.median(got[painted] / np.maximum(low[painted], 1.0), axis=0))
    if not ratios:
        return default_ratio(spec)
    out: F64 = np.clip(np.median(np.asarray(ratios), axis=0), 0.5, 4.0).astype(np.float64)
    return out


@dataclass(frozen=True)
class RoadEdit:
    """A lane edit in the rig frame over time (see the module docstring).

    Attributes:
        spec: the instruction.
        sides: the boundaries it changes.
        xs: ``(K,)`` increasing rig-frame x (metres) where the boundaries are sampled.
        boundaries: side -> ``(T, K)`` lateral position (metres, + = left) of the boundary centre at ``xs``.
        stripes: side -> stripes to paint.
        dash_origin: ``(T,)`` road position of ``x = 0``: a point at ``x`` lies at ``x + dash_origin[t]`` along the
            road (dashes start at multiples of dash + gap).
        sizes: marking sizes (dash, gap).
        paint_ratio: ``(3,)`` paint colour over the pavement under it, per RGB channel (:func:`measure_paint`:
            the front camera's painted pixels over its asphalt), so the paint follows each camera's exposure and
            the road's shade as the pavement does.
        opacity: paint opacity (the front attempt's).
        erase_half_width_m: erase corridor half-width around a boundary.
    """

    spec: LaneSpec
    sides: tuple[str, ...]
    xs: F64
    boundaries: dict[str, F64]
    stripes: dict[str, list[Stripe]]
    dash_origin: F64
    sizes: MarkingSizes = field(default_factory=MarkingSizes)
    paint_ratio: F64 = field(default_factory=WHITE_OVER_ASPHALT.copy)
    opacity: float = 0.95
    erase_half_width_m: float = 0.45

    @property
    def num_frames(self) -> int:
        return len(self.dash_origin)

    def boundary_y(self, t: int, side: str, x: Any) -> Any:
        """Lateral position of ``side`` at rig-frame ``x`` in frame ``t`` (NaN outside ``xs``)."""
        return np.interp(x, self.xs, self.boundaries[side][t], left=np.nan, right=np.nan)

    @classmethod
    def from_front(cls, road: RoadGeometry, spec: LaneSpec, sizes: MarkingSizes, front_offset: tuple[float, float],
                   x_range: tuple[float, float] = (-25.0, 90.0), step_m: float = 0.25,
                   erase_half_width_m: float = 0.45, paint_ratio: F64 | None = None) -> RoadEdit:
        """The edit the procedural painter made in the front camera, moved into the rig frame.

        ``front_offset``: the front camera's ground point in the rig frame (its ego frame is the rig frame shifted by
        it). Behind the front camera's nearest visible ground the boundaries continue along their tangent at the
        camera (a cubic would swing away where it was never fitted). ``paint_ratio``: the front edit's paint over
        its pavement (:func:`measure_paint`); standard ratios for the colour when None.
        """
        ox, oy = front_offset
        xs = np.arange(x_range[0], x_range[1] + step_m / 2, step_m)
        xf = xs - ox
        t_n = len(road.travelled)
        sides = ("left", "right") if spec.side == "both" else (str(spec.side),)
        bounds: dict[str, F64] = {}
        for side in SIDES:
            arr = np.empty((t_n, len(xs)))
            for t in range(t_n):
                c = road.coefs[side][t]
                ahead = geo.boundary_eval(c, np.maximum(xf, 0.0), road.fit_range_m)
                arr[t] = np.where(xf >= 0.0, ahead, c[0] + c[1] * xf) + oy
            bounds[side] = arr
        p = road.params
        return cls(spec=spec, sides=sides, xs=xs, boundaries=bounds,
                   stripes=stripes_for(spec, sizes, p.width_scale, p.spacing_scale),
                   dash_origin=np.asarray(road.travelled, dtype=np.float64) - ox, sizes=sizes,
                   paint_ratio=default_ratio(spec) if paint_ratio is None else np.asarray(paint_ratio, np.float64),
                   opacity=p.opacity, erase_half_width_m=erase_half_width_m * p.erase_strength)

    def to_dict(self, step: int = 8) -> dict[str, Any]:
        """JSON-ready: the instruction, stripes and, per frame, each edited boundary as a rig-frame polyline
        (every ``step``-th sample of ``xs``, centimetres)."""
        sel = slice(None, None, step)
        frames = []
        for t in range(self.num_frames):
            frames.append({"frame": t, "dash_origin_m": round(float(self.dash_origin[t]), 3), "boundaries": {
                s: np.round(np.stack([self.xs[sel], self.boundaries[s][t][sel]], 1), 2).tolist() for s in self.sides}})
        return {"instruction": self.spec.to_text(), "frame": "rig (x forward, y left, metres, on the ground)",
                "stripes": {s: [vars(st) for st in self.stripes[s]] for s in self.sides},
                "dash_m": self.sizes.dash_length, "gap_m": self.sizes.gap_length, "frames": frames}


@dataclass(frozen=True)
class CameraEdit:
    """What :func:`paint_camera` returns: ``(T, H, W, 3) uint8`` frames, painted lines per frame (image polylines),
    and diagnostics (pixels changed, visible ground)."""

    camera: str
    frames: U8
    lanes: list[list[PaintedLine]]
    diagnostics: dict[str, Any]


def _paint_like(img: F32, low: F32, color: str | None = None) -> Bool:
    """Pixels brighter (white paint) or yellower (yellow paint) than the asphalt estimate ``low``; ``color`` limits
    the test to one paint colour."""
    lum, lum0 = img.mean(axis=-1), low.mean(axis=-1)
    yel = 0.5 * (img[..., 0] + img[..., 1]) - img[..., 2]
    yel0 = 0.5 * (low[..., 0] + low[..., 1]) - low[..., 2]
    bright = lum - lum0 > BRIGHT_THR
    yellow = (yel - yel0 > YELLOW_THR) & (lum - lum0 > 0.3 * BRIGHT_THR)
    if color == "white":
        out: Bool = bright & ~yellow
    elif color == "yellow":
        out = yellow
    else:
        out = bright | yellow
    return out


def _lateral(edit: RoadEdit, t: int, side: str, g: PixelGround, rows: Any, cols: Any) -> F64:
    """Lateral distance (metres, + = left) of ground pixels from the boundary ``side`` in frame ``t``."""
    x = g.x[rows, cols].astype(np.float64)
    out: F64 = g.y[rows, cols].astype(np.float64) - edit.boundary_y(t, side, x)
    return out


def paint_camera(frames: U8, masks: Bool, cam: RigCamera, edit: RoadEdit, body: EgoBody | None = None, *,
                 max_range_m: float = 80.0, blur_px: float = 0.6, texture_gain: float = 0.6, seed: int = 0,
                 ground: PixelGround | None = None) -> CameraEdit:
    """Erase and paint ``edit`` in one camera (see the module docstring).

    Args:
        frames: ``(T, H, W, 3) uint8`` RGB of ``cam``, the same instants as the edit's frames.
        masks: ``(T, H, W) bool`` that camera's road mask; only road pixels change.
        cam: the camera (calibration at the frames' size: it is rescaled when the image size differs).
        edit: the road-plane edit.
        body: the ego body hiding the ground (None: nothing hides it).
        max_range_m: farthest ground painted (from the camera).
        blur_px: the image's blur (Gaussian sigma, pixels), widening each pixel's footprint.
        texture_gain: asphalt grain kept on the paint.
        seed: seeds the erase grain.
        ground: precomputed :func:`pixel_ground` of ``cam`` (computed when None).

    Raises:
        InputError: frames and masks of different shapes, or a frame count other than the edit's.
    """
    t_n, h, w = frames.shape[:3]
    if masks.shape != (t_n, h, w):
        raise InputError(f"camera {cam.name}", f"road masks of shape {(t_n, h, w)}", f"{masks.shape}")
    if t_n != edit.num_frames:
        raise InputError(f"camera {cam.name}", f"{edit.num_frames} frames (the edit's)", f"{t_n} frames")
    if (cam.width, cam.height) != (w, h):
        cam = cam.rescaled(w, h)
    g = ground if ground is not None else pixel_ground(cam, max_range_m, body)
    on_ground = np.isfinite(g.x)
    widen = math.sqrt(1.0 + 12.0 * blur_px * blur_px)
    rng = np.random.default_rng(seed)
    out = frames.copy()
    lanes: list[list[PaintedLine]] = []
    changed = 0
    period = edit.sizes.dash_length + edit.sizes.gap_length
    reach = max((abs(s.offset_m) + s.width_m / 2 for side in edit.sides for s in edit.stripes[side]), default=0.0)
    for t in range(t_n):
        road = masks[t] & on_ground
        rows, cols = np.nonzero(road)
        img = frames[t].astype(np.float32)
        near: dict[str, F64] = {s: _lateral(edit, t, s, g, rows, cols) for s in edit.sides}
        corridor = np.zeros((h, w), dtype=bool)
        ring = np.zeros((h, w), dtype=bool)
        half = edit.erase_half_width_m
        for d in near.values():
            ad = np.abs(d)
            corridor[rows[ad < half], cols[ad < half]] = True
            sel = (ad >= half) & (ad < half + 0.6)
            ring[rows[sel], cols[sel]] = True
        ring &= ~corridor
        if corridor.any():
            low = push_pull_fill(img, masks[t] & ~corridor)
            paint = cv2.dilate((_paint_like(img, low) & corridor).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            paint &= road
            resid = (img - low)[ring].mean(axis=-1) if ring.any() else np.zeros(0, np.float32)
            grain = max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), 0.5) if len(resid) > 20 else 2.0
            pr, pc = np.nonzero(paint)
            noise = rng.standard_normal((len(pr), 1)).astype(np.float32) * grain
            out[t][pr, pc] = np.clip(low[pr, pc] + noise + 0.5, 0, 255).astype(np.uint8)
            changed += len(pr)
        else:
            low = img
        lines: list[PaintedLine] = []
        for side, d in near.items():
            st = edit.stripes[side]
            if not st:
                continue
            sel = np.abs(d) < reach + 0.5
            r, c, dd = rows[sel], cols[sel], d[sel]
            fl = np.maximum(g.lat_fp[r, c].astype(np.float64) * widen, 1e-4)
            fs = np.maximum(g.lon_fp[r, c].astype(np.float64) * widen, 1e-4)
            s_road = g.x[r, c].astype(np.float64) + edit.dash_origin[t]
            alpha = np.zeros(len(r))
            for stripe in st:
                cov = overlap(dd - stripe.offset_m, fl, -stripe.width_m / 2, stripe.width_m / 2)
                if stripe.dashed:
                    cov = cov * dash_coverage(s_road, fs, edit.sizes.dash_length, period)
                alpha += cov
            alpha = np.clip(alpha, 0.0, 1.0) * edit.opacity
            keep = alpha > 1e-3
            r, c, alpha = r[keep], c[keep], alpha[keep]
            base_low = low[r, c].astype(np.float64)
            col = base_low * edit.paint_ratio[None, :]
            under = out[t][r, c].astype(np.float64)
            col = np.clip(col + (under - base_low) * texture_gain, 0.0, 255.0)
            out[t][r, c] = np.clip(under + alpha[:, None] * (col - under) + 0.5, 0, 255).astype(np.uint8)
            changed += len(r)
            lines.append(_polyline(cam, g, masks[t], edit, t, side))
        lanes.append(lines)
    diag = {"camera": cam.name, "model": cam.model.to_dict()["model"], "pixels_changed": int(changed),
            "ground_pixels": int(on_ground.sum()), "hidden_by_body": int(g.hidden.sum()),
            "front_facing": cam.front_facing}
    return CameraEdit(camera=cam.name, frames=out, lanes=lanes, diagnostics=diag)


def _polyline(cam: RigCamera, g: PixelGround, mask: Bool, edit: RoadEdit, t: int, side: str) -> PaintedLine:
    """The painted boundary's centre in the image: projected samples every 0.25 m that land on visible road,
    ordered near to far from the camera."""
    ys = edit.boundaries[side][t]
    pts = np.stack([edit.xs, ys, np.zeros_like(ys)], axis=1)
    px, ok = cam.project(pts)
    h, w = mask.shape
    u = np.round(np.nan_to_num(px[:, 0], nan=-1)).astype(int)
    v = np.round(np.nan_to_num(px[:, 1], nan=-1)).astype(int)
    inside = ok & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    inside[inside] = mask[v[inside], u[inside]] & np.isfinite(g.x[v[inside], u[inside]])
    c = cam.centre_rig
    order = np.argsort(np.hypot(edit.xs - c[0], ys - c[1])[inside], kind="stable")
    points = px[inside][order]
    spec = edit.spec
    return PaintedLine(id=0 if side == "left" else 1, side=side, color=str(spec.color), pattern=str(spec.pattern),
                       count=spec.count, points=points, visible=len(points) >= 2)


# ---------------------------------------------------------------------------------------------- road-plane check
@dataclass(frozen=True)
class RecoveredLines:
    """Painted-line positions read back from one camera's edited frames.

    Attributes:
        x_bins: ``(B,)`` centres of the x bins (rig metres).
        y: side -> ``(T, B)`` mean lateral position (rig metres) of the paint pixels in each bin; NaN where none.
        paint_fraction: side -> ``(T,)`` fraction of that boundary's erase-corridor ground pixels that look painted;
            NaN in frames where the camera sees none of the corridor.
    """

    x_bins: F64
    y: dict[str, F64]
    paint_fraction: dict[str, F64]


def recover_lines(frames: U8, masks: Bool, cam: RigCamera, edit: RoadEdit, body: EgoBody | None = None, *,
                  x_bins: F64 | None = None, bin_m: float = 1.0, max_range_m: float = 80.0,
                  ground: PixelGround | None = None) -> RecoveredLines:
    """Back-project the paint pixels near each edited boundary onto the ground with ``cam``'s calibration.

    Paint pixels: inside the road mask, on visible ground, within the erase corridor of the boundary, brighter or
    yellower (the instruction's colour) than the asphalt interpolated from outside the corridor. Their ground
    points' lateral offsets from the edit's line (at each point's own x) are averaged per x bin, each weighted by
    its contrast over the asphalt (a sub-pixel centroid across the line; for a double line: the centre of the
    pair), and the bin's position is the edit's line at the bin centre plus that mean offset (the line's course
    within the bin does not read as an offset). Pixels next to paint pixels count by their contrast when positive
    (a far line is 1-2 pixels wide; the pixels it partly covers hold the rest of it). A bin needs 3 paint pixels
    and no paint on the image border (a line the border cuts is only partly seen)."""
    t_n, h, w = frames.shape[:3]
    if (cam.width, cam.height) != (w, h):
        cam = cam.rescaled(w, h)
    g = ground if ground is not None else pixel_ground(cam, max_range_m, body)
    xb = np.arange(5.0, 30.0 + 1e-9, bin_m) if x_bins is None else np.asarray(x_bins, dtype=np.float64)
    ys = {s: np.full((t_n, len(xb)), np.nan) for s in edit.sides}
    frac = {s: np.full(t_n, np.nan) for s in edit.sides}
    color = edit.spec.color
    for t in range(t_n):
        road = masks[t] & np.isfinite(g.x)
        rows, cols = np.nonzero(road)
        img = frames[t].astype(np.float32)
        corridor = np.zeros((h, w), dtype=bool)
        for side in edit.sides:
            d = _lateral(edit, t, side, g, rows, cols)
            sel = np.abs(d) < edit.erase_half_width_m
            corridor[rows[sel], cols[sel]] = True
        if not corridor.any():
            continue
        low = push_pull_fill(img, masks[t] & ~corridor)
        paint = _paint_like(img, low, color) & corridor
        # the pixels around paint pixels count too, by their contrast when positive: a pixel the line only partly
        # covers is below the paint test but holds the rest of the line (far, a line is 1-2 pixels wide and the
        # centroid of the full pixels alone is off by up to half a pixel)
        near = (cv2.dilate(paint.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & corridor
        # contrast over the asphalt weighs each paint pixel (a sub-pixel centroid across the line)
        if color == "yellow":
            weight = 0.5 * (img[..., 0] + img[..., 1] - low[..., 0] - low[..., 1]) - (img[..., 2] - low[..., 2])
        else:
            weight = img.mean(axis=-1) - low.mean(axis=-1)
        for side in edit.sides:
            d = _lateral(edit, t, side, g, rows, cols)
            sel = np.abs(d) < edit.erase_half_width_m
            r, c = rows[sel], cols[sel]
            hit = paint[r, c]
            frac[side][t] = float(hit.mean()) if len(hit) >= 20 else np.nan
            use = near[r, c]
            x = g.x[r[use], c[use]].astype(np.float64)
            y = g.y[r[use], c[use]].astype(np.float64)
            wt = np.maximum(weight[r[use], c[use]].astype(np.float64), np.where(hit[use], 1e-3, 0.0))
            hit = hit[use]
            k = np.floor((x - xb[0]) / bin_m + 0.5).astype(int)
            ok = (k >= 0) & (k < len(xb))
            if not ok.any():
                continue
            # each pixel's offset from the edit's line at its own x, averaged per bin and put back on the line at
            # the bin centre: the bin's few pixels (a far bin of an f-theta cross camera holds 1-3) rarely sit at
            # its centre, and on a curve the line's course across a 1 m bin (0.12 m at 30 m on a 250 m radius)
            # would read as an offset
            resid = y - edit.boundary_y(t, side, x)
            ok &= np.isfinite(resid)
            sums = np.bincount(k[ok], weights=(resid * wt)[ok], minlength=len(xb))
            wsum = np.bincount(k[ok], weights=wt[ok], minlength=len(xb))
            cnt = np.bincount(k[ok & hit], minlength=len(xb))
            # a line the image border cuts is only partly seen: its centroid moves into the frame (a cross camera
            # sees the road ahead at its image edge); such bins are not measured
            ru, cu = r[use], c[use]
            edge = (ru == 0) | (ru == h - 1) | (cu == 0) | (cu == w - 1)
            cut = np.bincount(k[ok & edge], minlength=len(xb)) > 0
            ys[side][t] = np.where((cnt >= 3) & ~cut, edit.boundary_y(t, side, xb) + sums / np.maximum(wsum, 1e-9),
                                   np.nan)
    return RecoveredLines(x_bins=xb, y=ys, paint_fraction=frac)


def road_plane_check(recovered: RecoveredLines, edit: RoadEdit, tolerance_m: float = 0.15,
                     removal_max_fraction: float = 0.02) -> dict[str, Any]:
    """PASS/FAIL of one camera's edit in the road plane (for cameras a lane verifier does not read).

    A painted edit passes when the paint read back lies within ``tolerance_m`` of the edited boundary (median over
    frames and bins where the camera sees paint); a removal passes when at most ``removal_max_fraction`` of the
    corridor still looks painted. A camera that sees none of the boundary is ``SKIPPED``."""
    reasons: list[str] = []
    per_side: dict[str, Any] = {}
    seen_any = False
    for side in edit.sides:
        frac = recovered.paint_fraction[side]
        if edit.spec.is_removal:
            frac = frac[np.isfinite(frac)]
            if not len(frac):
                continue
            f = float(np.median(frac))
            per_side[side] = {"paint_fraction_median": round(f, 4)}
            seen_any = True
            if f > removal_max_fraction:
                reasons.append(f"{side}: {f:.1%} of the corridor still looks painted (allowed "
                               f"{removal_max_fraction:.0%})")
            continue
        truth = np.stack([edit.boundary_y(t, side, recovered.x_bins) for t in range(edit.num_frames)])
        err = recovered.y[side] - truth
        ok = np.isfinite(err)
        per_side[side] = {"bins_seen": int(ok.sum()), "bins": int(err.size)}
        if not ok.any():
            continue
        seen_any = True
        med = float(np.median(np.abs(err[ok])))
        per_side[side]["median_abs_error_m"] = round(med, 4)
        if med > tolerance_m:
            reasons.append(f"{side}: painted line read back {med:.2f} m from the boundary (allowed {tolerance_m} m)")
    verdict = "SKIPPED" if not seen_any else ("PASS" if not reasons else "FAIL")
    return {"check": "road_plane", "verdict": verdict, "reasons": reasons, "sides": per_side}
