"""The procedural painter: the embedded default edit backend (CPU, no weights).

For one clip, its road masks and a :class:`~lanepipe.lanes.instructions.LaneSpec` it

1. **analyses the clip once** (cached across QA retries): frames are shrunk to ``work_width``; paint-like pixels
   are found with row-scaled horizontal top-hats of lightness and yellowness (:mod:`lanepipe.geometry.road`).
   The camera is the clip's own (``meta["camera"]``, a :class:`~lanepipe.geometry.camera.PinholeCamera` or its dict)
   or the fallback pinhole (``fov_deg``, ``mount_height_m``) whose pitch and yaw come from the vanishing point
   of the existing lines (Hough segments, median over frames). Each frame's paint is warped to a bird's-eye
   view (BEV) where the ego lane's left and right boundaries are followed with sliding windows and fitted
   with a cubic ``y(x)`` (offset, heading, curvature and its change, straight beyond the fitted range); tracks
   are gated, median- and Gaussian-smoothed over time; a missing side is put one lane width from the other,
   and with no line at all a 3.66 m lane centred on the camera is assumed. With the fallback camera the mount
   height is rescaled so that the measured lane is ``lane_width_m`` wide. Ego speed comes from
   ``meta["ego"]`` (``(T, 4)`` x, y, yaw, speed) or ``meta["speed_mps"]``, else from the road texture moving
   down a lane-aligned BEV between frames (normalised cross-correlation), else ``default_speed_mps``;
2. **erases** the paint in the named boundary corridors (everywhere in the road mask for ``none@both``):
   push-pull interpolation of the asphalt colour plus texture copied from beside the line
   (:mod:`lanepipe.edit.erase`);
3. **paints** the requested lines: every road pixel near the boundary gets its ground coordinates ``(x, y)``;
   its coverage is the exact overlap of the pixel's ground footprint (widened by the image blur) with each
   stripe, across the line and, for broken lines, along it, with the dash pattern anchored to the road (its
   phase advances by the distance driven). This is the BEV drawing resampled with a box filter per pixel —
   analytic anti-aliasing, equivalent to supersampling it. Colour is the clip's own sunlit white/yellow paint
   (or a standard ratio to the asphalt), darkened with the road in shadow, keeping the asphalt's grain, with
   a road-anchored wear texture. Nothing outside the road mask changes.

Sizes come from :class:`~lanepipe.lanes.instructions.MarkingSizes` (US MUTCD 2009 §3A.06).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from lanepipe.edit.config import LANE_WIDTH_M, ProceduralConfig, QAConfig
from lanepipe.edit.erase import push_pull_fill, texture_sources
from lanepipe.errors import InputError
from lanepipe.geometry import road as geo
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.lanes.instructions import Color, LaneSpec
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import Verdict

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]
_T = TypeVar("_T")

#: Yellow paint relative to white paint (RGB), used when the clip shows no yellow paint to copy.
_YELLOW_OF_WHITE = np.array([1.0, 0.80, 0.32], dtype=np.float32)
#: White paint relative to the asphalt under it, used when the clip shows no white paint to copy.
_WHITE_OF_ASPHALT = 2.3


# ============================================================================================== configuration
_STEP_UP = 1.25


class PaintParams(BaseModel):
    """Knobs the QA loop may turn between attempts (1.0 / 0 = the painter's own estimate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contrast: float = Field(1.0, ge=0.3, le=3.0, description="paint brightness gain over the asphalt")
    saturation: float = Field(1.0, ge=0.0, le=3.0, description="yellow saturation gain")
    width_scale: float = Field(1.0, ge=0.5, le=2.5, description="line width multiplier")
    spacing_scale: float = Field(1.0, ge=0.5, le=4.0, description="double-line spacing multiplier")
    lateral_offset_m: float = Field(0.0, ge=-1.0, le=1.0, description="shift of the painted lines (+ = left)")
    opacity: float = Field(0.95, ge=0.1, le=1.0, description="paint opacity")
    erase_strength: float = Field(1.0, ge=0.5, le=3.0, description="erase corridor width and sensitivity")
    sharpness: float = Field(1.0, ge=0.3, le=3.0, description="edge sharpness (divides the matched blur)")
    wear_scale: float = Field(1.0, ge=0.0, le=2.0, description="wear multiplier")

    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "contrast": (0.3, 3.0), "saturation": (0.0, 3.0), "width_scale": (0.5, 2.5), "spacing_scale": (0.5, 4.0),
        "opacity": (0.1, 1.0), "erase_strength": (0.5, 3.0), "sharpness": (0.3, 3.0), "wear_scale": (0.0, 2.0),
    }

    def adjusted(self, reasons: list[str], attempt: int) -> PaintParams:
        """New knobs after a failed QA attempt.

        Reasons are the verifier's free-text failure reasons (e.g. ``"left colour: expected yellow, saw white"``);
        each matched keyword moves the knobs that fix it, by a step that grows with ``attempt``:

        * colour (``colour``/``color``): expected yellow → more saturation and contrast; expected white → less
          saturation, stronger erase (old yellow showing through), more contrast;
        * pattern (``pattern``/``dash``/``solid``): crisper edges, more contrast, less wear;
        * count (``count``/``double``/``single``): wider double spacing and lines;
        * visibility (``missing``/``visible``/``faint``/``not found``/``contrast``/``no line``): more contrast,
          opacity and width, less wear;
        * leftovers (``remov``/``erase``/``residual``/``still``/``none``): stronger erase;
        * anything else: a little more contrast and width.
        """
        step = _STEP_UP ** (1.0 + 0.5 * max(attempt, 0))
        v = self.model_dump()
        text = " ".join(r.lower() for r in reasons)
        matched = False

        def mul(key: str, f: float) -> None:
            lo, hi = self._BOUNDS[key]
            v[key] = float(min(max(v[key] * f, lo), hi))

        if re.search(r"colou?r", text):
            matched = True
            if re.search(r"expected\s+yellow", text):
                mul("saturation", step)
                mul("contrast", math.sqrt(step))
            elif re.search(r"expected\s+white", text):
                mul("saturation", 1.0 / step)
                mul("erase_strength", step)
                mul("contrast", math.sqrt(step))
            else:
                mul("contrast", math.sqrt(step))
                mul("saturation", step)
        if re.search(r"pattern|dash|solid", text):
            matched = True
            mul("sharpness", step)
            mul("contrast", math.sqrt(step))
            mul("wear_scale", 1.0 / step)
        if re.search(r"count|double|single", text):
            matched = True
            mul("spacing_scale", step)
            mul("width_scale", math.sqrt(step))
        if re.search(r"missing|visib|faint|not found|contrast|no line|weak", text):
            matched = True
            mul("contrast", step)
            mul("width_scale", math.sqrt(step))
            mul("wear_scale", 1.0 / step)
            v["opacity"] = float(min(1.0, v["opacity"] + 0.05))
        if re.search(r"remov|erase|residual|still|none|leftover", text):
            matched = True
            mul("erase_strength", step)
        if not matched:
            mul("contrast", math.sqrt(step))
            mul("width_scale", step ** 0.25)
        return PaintParams(**v)


# ============================================================================================== results
@dataclass(frozen=True)
class PaintedLine:
    """One painted boundary line in one frame.

    Attributes:
        id: 0 = the ego lane's left boundary, 1 = its right boundary (stable across frames).
        side: ``"left"`` or ``"right"``.
        color: ``"white"`` or ``"yellow"``.
        pattern: ``"solid"``, ``"dashed"`` or ``"solid-dashed"``.
        count: 1 single, 2 double (``points`` then follow the middle of the pair).
        points: ``(N, 2) float64`` ``(u, v)`` image pixels of the line centre, one per ``polyline_step_px`` rows,
            near to far, only where the centre lies in the road mask.
        visible: True when at least two points are visible.
    """

    id: int
    side: str
    color: str
    pattern: str
    count: int
    points: F64
    visible: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; points rounded to 0.01 px."""
        return {"id": self.id, "side": self.side, "color": self.color, "pattern": self.pattern,
                "count": self.count, "visible": self.visible, "points": np.round(self.points, 2).tolist()}


@dataclass(frozen=True)
class PaintResult:
    """What :meth:`ProceduralPainter.paint` returns.

    Attributes:
        frames: ``(T, H, W, 3) uint8`` edited RGB frames (pixels outside the road mask unchanged).
        lanes: per frame, the painted lines (empty for ``none``).
        diagnostics: JSON-ready facts: camera and its source, vanishing point, lane width, line detection
            rates, speed and its source, timings.
    """

    frames: npt.NDArray[np.uint8]
    lanes: list[list[PaintedLine]]
    diagnostics: dict[str, Any] = field(default_factory=dict)


# ============================================================================================== analysis
@dataclass(frozen=True)
class _Stripe:
    offset_m: float  # from the boundary centre line, + = left
    width_m: float
    dashed: bool


@dataclass(frozen=True)
class _Analysis:
    """Everything about a clip that does not depend on the instruction."""

    cam: PinholeCamera  # full resolution
    cam_w: PinholeCamera  # work resolution
    maps: geo.GroundMaps  # full resolution
    maps_w: geo.GroundMaps  # work resolution
    frames_w: U8  # (T, h, w, 3)
    masks_w: Bool  # (T, h, w)
    evidence: list[geo.PaintEvidence]
    coefs: dict[str, F64]  # side -> (T, DEGREE + 1) boundary cubic, ego metres
    found: dict[str, Bool]  # side -> (T,)
    travelled: F64  # (T,) metres driven since frame 0
    white_rgb: F32  # (3,) sunlit white paint, 0-255
    yellow_rgb: F32  # (3,) sunlit yellow paint, 0-255
    road_lum: float  # typical luminance of the clip's road (0-255)
    road_width_m: float
    row_ppm: F32  # (H,) full-resolution pixels per lateral metre at each row (0 above the horizon)
    fit_range_m: float  # boundaries were fitted up to this distance; straight beyond
    diagnostics: dict[str, Any]


def _camera_from_meta(clip: Clip, diag: dict[str, Any]) -> PinholeCamera | None:
    """The clip's pinhole camera (``meta["camera"]``: a :class:`PinholeCamera` or its dict), scaled to the frames.

    Another camera model (e.g. f-theta) is noted in ``diag`` and ignored: the fallback pinhole is used.
    """
    raw = clip.meta.get("camera")
    if raw is None:
        return None
    if isinstance(raw, PinholeCamera):
        cam = raw
    else:
        d = dict(raw)
        if d.get("model", "pinhole") != "pinhole":
            diag["camera_note"] = f"meta camera model {d.get('model')!r} not supported here; fallback pinhole used"
            return None
        cam = PinholeCamera.from_dict(d)
    if (cam.width, cam.height) == (clip.width, clip.height):
        return cam
    if abs(cam.width / cam.height - clip.width / clip.height) > 0.01:
        raise InputError(clip.source, f"a camera for {clip.width}x{clip.height} frames (or the same aspect ratio)",
                         f"meta['camera'] for {cam.width}x{cam.height}")
    return geo.scale_camera(cam, clip.width, clip.height)


def _speed_from_meta(clip: Clip) -> F64 | None:
    t = clip.num_frames
    for key in ("speed_mps", "ego_speed_mps"):
        if key in clip.meta:
            s = np.asarray(clip.meta[key], dtype=np.float64)
            if s.ndim == 0:
                return np.full(t, float(s))
            if s.shape == (t,):
                return s
            raise InputError(clip.source, f"meta[{key!r}] a number or {t} speeds", f"shape {s.shape}")
    if "ego" in clip.meta:
        ego = np.asarray(clip.meta["ego"], dtype=np.float64)
        if ego.ndim != 2 or ego.shape[0] != t or ego.shape[1] < 2:
            raise InputError(clip.source, f"meta['ego'] of shape ({t}, 4) [x, y, yaw, speed]", f"shape {ego.shape}")
        if ego.shape[1] >= 4:
            return ego[:, 3].copy()
        if t < 2:
            return None
        step = np.hypot(np.diff(ego[:, 0]), np.diff(ego[:, 1])) / np.maximum(np.diff(clip.timestamps), 1e-6)
        return np.concatenate([step[:1], 0.5 * (step[1:] + step[:-1]), step[-1:]]) if t > 2 else np.repeat(step, 2)
    return None


def _poly(coefs: F64, x: Any, x_lim: float) -> Any:
    return geo.boundary_eval(coefs, x, x_lim)


def _overlap(pos: Any, foot: Any, lo: Any, hi: Any) -> Any:
    """Fraction of the interval ``[pos - foot/2, pos + foot/2]`` inside ``[lo, hi]`` (box-filter coverage)."""
    return np.clip(np.minimum(pos + 0.5 * foot, hi) - np.maximum(pos - 0.5 * foot, lo), 0.0, None) / foot


def _dash_coverage(s: Any, foot: Any, dash: float, period: float) -> Any:
    """Coverage along the line of a broken line with dashes ``[k period, k period + dash]`` at road position ``s``."""
    p = np.mod(s, period)
    cov = _overlap(p, foot, 0.0, dash) + _overlap(p, foot, period, period + dash) + _overlap(p, foot, -period,
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


_WEAR_TEXEL_S = 0.04
_WEAR_TEXEL_D = 0.02


class ProceduralPainter:
    """Erase the ego lane's markings and paint requested ones in perspective (see the module docstring).

    Args:
        cfg: painter settings; defaults when None.
    """

    name = "procedural"

    def __init__(self, cfg: ProceduralConfig | None = None) -> None:
        self.cfg = cfg or ProceduralConfig()
        self._wear = _wear_tile(self.cfg.seed)
        self._wear_mean = float(self._wear.mean())
        self._cache_refs: tuple[Any, ...] | None = None
        self._cache: _Analysis | None = None

    # ------------------------------------------------------------------------------------------ public
    def prepare(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, qa: QAConfig | None = None) -> ProceduralJob:
        """Stepwise painter contract (:class:`lanepipe.edit.base.Painter`): see :class:`ProceduralJob`."""
        del qa
        return ProceduralJob(self, clip, masks, spec)

    # ------------------------------------------------------------------------------------------ public
    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, params: PaintParams | None = None) -> PaintResult:
        """Paint ``spec`` on ``clip`` inside ``masks``.

        Args:
            clip: ``(T, H, W, 3) uint8`` frames; ``meta["camera"]`` (pinhole dict) and ``meta["ego"]``
                (``(T, 4)`` x, y, yaw, speed) or ``meta["speed_mps"]`` are used when present.
            masks: ``(T, H, W) bool`` road masks, True = road.
            spec: the instruction.
            params: QA-loop knobs (defaults when None).

        Returns:
            :class:`PaintResult` with ``(T, H, W, 3) uint8`` frames, painted lines per frame and diagnostics.

        Raises:
            InputError: masks of another shape, an all-zero mask, or an instruction this road cannot take
                (no road where the line goes; a double line on a road narrower than
                ``min_double_road_width_m``).
        """
        params = params or PaintParams()
        t0 = time.perf_counter()
        masks.check_matches(clip)
        if not masks.masks.any():
            raise InputError(clip.source, "a road mask with road pixels to paint on",
                             "an all-zero mask in every frame", "segment the clip first or check the mask file")
        an = self._analyse(clip, masks)
        t1 = time.perf_counter()
        sides: list[str] = ["left", "right"] if spec.side == "both" else [str(spec.side)]
        stripes = self._stripes(spec, params)
        if not spec.is_removal:
            self._check_feasible(clip, masks, an, sides, stripes, spec)
        out = np.empty_like(clip.frames)

        def one(t: int) -> list[PaintedLine]:
            return self._render(out[t], t, clip, masks.masks[t], an, spec, sides, stripes, params)

        lanes = _map(one, range(clip.num_frames), self.cfg.threads)
        t2 = time.perf_counter()
        diag = dict(an.diagnostics)
        diag.update(instruction=spec.to_text(), params=params.model_dump(),
                    timing_s={"analyse": round(t1 - t0, 3), "render": round(t2 - t1, 3)},
                    frames_without_road=int((~masks.masks.any(axis=(1, 2))).sum()))
        return PaintResult(frames=out, lanes=lanes, diagnostics=diag)

    # ------------------------------------------------------------------------------------------ analysis
    def _analyse(self, clip: Clip, masks: RoadMasks) -> _Analysis:
        """The clip analysis, cached for the last (clip, masks) pair seen (the QA loop repaints the same clip)."""
        refs = (clip, masks, clip.frames, masks.masks)
        if self._cache is not None and self._cache_refs is not None \
                and all(a is b for a, b in zip(self._cache_refs, refs, strict=True)):
            return self._cache
        an = self._analyse_uncached(clip, masks)
        self._cache_refs, self._cache = refs, an
        return an

    def _analyse_uncached(self, clip: Clip, masks: RoadMasks) -> _Analysis:
        cfg = self.cfg
        t_n, h_full, w_full = clip.num_frames, clip.height, clip.width
        ww = min(w_full, cfg.work_width)
        hw = max(8, round(h_full * ww / w_full))
        diag: dict[str, Any] = {"backend": self.name, "work_size": [ww, hw]}
        stamps = [time.perf_counter()]

        # OpenCV's area filter is fast for whole-number ratios only; bilinear is close enough otherwise
        interp = cv2.INTER_AREA if w_full % ww == 0 and h_full % hw == 0 else cv2.INTER_LINEAR

        def shrink(t: int) -> tuple[U8, Bool]:
            f = clip.frames[t]
            m = masks.masks[t]
            if ww == w_full:
                return f, m
            fw = cv2.resize(f, (ww, hw), interpolation=interp)
            mw = cv2.resize(m.view(np.uint8), (ww, hw), interpolation=cv2.INTER_NEAREST) > 0
            return np.asarray(fw, dtype=np.uint8), mw

        small = _map(shrink, range(t_n), cfg.threads)
        frames_w = np.stack([s[0] for s in small])
        masks_w = np.stack([s[1] for s in small])
        chans = _map(lambda t: geo.paint_channels(frames_w[t]), range(t_n), cfg.threads)
        stamps.append(time.perf_counter())

        # ---- camera
        cam = _camera_from_meta(clip, diag)
        known_camera = cam is not None
        if cam is not None:
            diag["camera_source"] = "clip meta"
        else:
            cam = PinholeCamera.from_fov(w_full, h_full, cfg.fov_deg, cfg.mount_height_m, cfg.pitch_deg)
            diag["camera_source"] = f"fallback pinhole (fov {cfg.fov_deg} deg)"
            if cfg.estimate_pose:
                cam = self._pose_from_vanishing_point(cam, chans, masks_w, diag)
        cam_w = geo.scale_camera(cam, ww, hw)
        ppm = geo.row_px_per_metre(cam_w)

        def evid(t: int) -> geo.PaintEvidence:
            return geo.paint_evidence(chans[t], ppm, 0.6)

        evidence = _map(evid, range(t_n), cfg.threads)
        stamps.append(time.perf_counter())

        # ---- lane boundaries
        coefs, found = self._track_boundaries(cam_w, evidence, masks_w, diag)
        fit_range = cfg.bev_range_m
        width_meas = diag.get("lane_width_measured_m")
        if not known_camera and cfg.calibrate_height and width_meas is not None:
            k = float(np.clip(cfg.lane_width_m / width_meas, 0.8 / cam.mount_height_m, 3.5 / cam.mount_height_m))
            cam = geo.with_pose(cam, mount_height_m=cam.mount_height_m * k)
            cam_w = geo.scale_camera(cam, ww, hw)
            for s in coefs:
                coefs[s] = coefs[s] * k ** (1.0 - np.arange(geo.DEGREE + 1))
            fit_range *= k
            diag["height_calibration_scale"] = round(k, 4)
        diag["camera"] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in cam.to_dict().items()}
        diag["pitch_deg"] = round(math.degrees(cam.pitch_rad), 3)
        diag["yaw_deg"] = round(math.degrees(cam.yaw_rad), 3)
        diag["boundary_offset_m_median"] = {s: round(float(np.median(coefs[s][:, 0])), 3) for s in coefs}

        stamps.append(time.perf_counter())
        # ---- ego speed
        centre = 0.5 * (coefs["left"] + coefs["right"])
        travelled = self._travelled(clip, cam_w, [ch[..., 0] for ch in chans], masks_w, centre, diag)

        stamps.append(time.perf_counter())
        # ---- paint colours and road width
        white_rgb, yellow_rgb, road_lum = self._paint_colours(frames_w, masks_w, evidence, diag)
        road_width = self._road_width(cam_w, masks_w)
        diag["road_width_m"] = round(road_width, 2)

        maps = geo.ground_maps(cam, cfg.max_range_m)
        maps_w = geo.ground_maps(cam_w, cfg.max_range_m)
        stamps.append(time.perf_counter())
        steps = ("shrink", "camera+evidence", "boundaries", "speed", "colours+maps")
        diag["analyse_steps_s"] = {k: round(b - a, 3) for k, a, b in zip(steps, stamps[:-1], stamps[1:], strict=True)}
        return _Analysis(cam=cam, cam_w=cam_w, maps=maps, maps_w=maps_w, frames_w=frames_w, masks_w=masks_w,
                         evidence=evidence, coefs=coefs, found=found, travelled=travelled,
                         white_rgb=white_rgb, yellow_rgb=yellow_rgb, road_lum=road_lum, road_width_m=road_width,
                         row_ppm=geo.row_px_per_metre(cam), fit_range_m=fit_range, diagnostics=diag)

    def _pose_from_vanishing_point(self, cam: PinholeCamera, chans: list[U8], masks_w: Bool,
                                   diag: dict[str, Any]) -> PinholeCamera:
        cfg = self.cfg
        hw, ww = masks_w.shape[1:]
        prior = geo.scale_camera(cam, ww, hw)
        # kernels from a camera looking level (rows above its horizon would get none)
        ppm = geo.row_px_per_metre(geo.with_pose(prior, pitch_rad=math.radians(-4.0)))
        step = max(1, len(chans) // 12)
        pts = []
        kernel = np.ones((7, 7), np.uint8)
        for t in range(0, len(chans), step):
            ev = geo.paint_evidence(chans[t], ppm, 0.6)
            region = cv2.dilate(masks_w[t].astype(np.uint8), kernel) > 0
            binary = (ev.mask(cfg.paint_bright_thr + 4, cfg.paint_yellow_thr) & region).astype(np.uint8) * 255
            vp = geo.vanishing_point(binary, int(0.3 * hw))
            if vp is not None:
                pts.append(vp[:2])
        diag["vanishing_point_frames"] = len(pts)
        if len(pts) < max(1, min(3, len(chans) // 4)):
            diag["pose_source"] = "pitch prior (no vanishing point)"
            return cam
        arr = np.asarray(pts)
        u, v = float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))
        pitch, yaw = geo.pose_from_vanishing_point(prior, u, v)
        if abs(pitch) > math.radians(20) or abs(yaw) > math.radians(20):
            diag["pose_source"] = "pitch prior (implausible vanishing point)"
            return cam
        s = cam.width / ww
        diag["vanishing_point_px"] = [round((u + 0.5) * s - 0.5, 1), round((v + 0.5) * s - 0.5, 1)]
        diag["pose_source"] = "vanishing point"
        return geo.with_pose(cam, pitch_rad=pitch, yaw_rad=yaw)

    def _bev_grid(self, cam_w: PinholeCamera, y_half: float, dx: float, dy: float, x_far: float) -> geo.BevGrid:
        # nearest visible ground: the bottom image row, principal column
        p, ok = cam_w.pixel_to_ground([cam_w.cx], [cam_w.height - 1.0])
        x_near = float(p[0, 0]) if ok[0] else 3.0
        x_near = max(x_near, 1.0)
        x_far = max(x_far, x_near + 10 * dx)
        return geo.BevGrid(x_min=x_near, x_max=x_far, dx=dx, y_min=-y_half, y_max=y_half, dy=dy)

    def _track_boundaries(self, cam_w: PinholeCamera, evidence: list[geo.PaintEvidence], masks_w: Bool,
                          diag: dict[str, Any]) -> tuple[dict[str, F64], dict[str, Bool]]:
        cfg = self.cfg
        t_n = len(evidence)
        grid = self._bev_grid(cam_w, 8.0, 0.2, 0.05, cfg.bev_range_m)
        rows = grid.shape[0]
        near_rows = max(10, int(rows * min(1.0, 20.0 / (grid.x_max - grid.x_min))))
        kernel = np.ones((5, 5), np.uint8)
        bevs: list[F32] = []
        for t in range(t_n):
            score = evidence[t].score(cfg.paint_bright_thr, cfg.paint_yellow_thr)
            region = cv2.dilate(masks_w[t].astype(np.uint8), kernel)
            score = np.where(region > 0, score, 0).astype(np.uint8)
            bevs.append(np.asarray(grid.warp(score, cam_w), dtype=np.float32) / 255.0)
        lo, hi = 0.5, cfg.line_search_m
        ranges = {"left": (lo, hi), "right": (-hi, -lo)}
        coefs: dict[str, F64] = {}
        found: dict[str, Bool] = {}
        min_peak = 0.02 * near_rows
        for side, (a, b) in ranges.items():
            peaks = [geo.column_peaks(bev, grid, near_rows, a, b) for bev in bevs]
            strongest = [p[0][0] for p in peaks if p and p[0][1] > min_peak]
            default_ref = LANE_WIDTH_M / 2 if side == "left" else -LANE_WIDTH_M / 2
            ref = float(np.median(strongest)) if strongest else default_ref
            raw = np.full((t_n, geo.DEGREE + 1), np.nan)
            for t in range(t_n):
                cands = [p for p in peaks[t] if abs(p[0] - ref) < 0.8 and p[1] > min_peak]
                start = min(cands, key=lambda p: abs(p[0] - ref))[0] if cands else ref
                fit = geo.track_line(bevs[t], grid, start, 0.45, 9, min_weight=0.5)
                if fit is not None and abs(fit.coefs[0] - ref) < 1.0 and fit.points >= 2:
                    raw[t] = fit.coefs
            coefs[side], found[side] = raw, np.isfinite(raw[:, 0])
        both = found["left"] & found["right"]
        width = coefs["left"][:, 0] - coefs["right"][:, 0]
        width_meas = float(np.median(width[both])) if both.sum() >= max(2, t_n // 5) else None
        if width_meas is not None and not 2.0 < width_meas < 7.0:
            width_meas = None
        lane_w = width_meas if width_meas is not None else self.cfg.lane_width_m
        # drop fits that leave their neighbours' course (lateral position 8 m and 25 m ahead), fill gaps, smooth
        for side in ("left", "right"):
            raw = coefs[side]
            for x_at, tol in ((8.0, 0.3), (25.0, 0.6)):
                y_at = np.array([geo.poly_eval(c, x_at) if np.isfinite(c[0]) else np.nan for c in raw])
                med = geo.rolling_median(y_at, max(cfg.temporal_radius, 1) * 2)
                raw[np.isfinite(y_at) & np.isfinite(med) & (np.abs(y_at - med) > tol)] = np.nan
            found[side] = np.isfinite(raw[:, 0])
        for side, other, sign in (("left", "right", 1.0), ("right", "left", -1.0)):
            raw = coefs[side]
            miss = ~found[side] & found[other]
            raw[miss] = coefs[other][miss]
            raw[miss, 0] += sign * lane_w
        smooth: dict[str, F64] = {}
        for side, sign in (("left", 1.0), ("right", -1.0)):
            raw = coefs[side]
            cols = []
            for j, default in enumerate((sign * lane_w / 2,) + (0.0,) * geo.DEGREE):
                col = geo.rolling_median(raw[:, j], cfg.temporal_radius) if cfg.temporal_radius else raw[:, j]
                col = geo.fill_nan(col, default)
                cols.append(geo.gaussian_smooth(col, cfg.temporal_sigma))
            smooth[side] = np.stack(cols, axis=1)
        diag["lines_found_fraction"] = {s: round(float(found[s].mean()), 3) for s in found}
        diag["lane_width_measured_m"] = None if width_meas is None else round(width_meas, 3)
        source = {}
        for s, other in (("left", "right"), ("right", "left")):
            if found[s].any():
                source[s] = f"detected in {int(found[s].sum())} of {t_n} frames, interpolated between"
            elif found[other].any():
                source[s] = "the other boundary + lane width"
            else:
                source[s] = "assumed: a lane centred on the camera"
        diag["geometry_source"] = source
        return smooth, found

    def _travelled(self, clip: Clip, cam_w: PinholeCamera, lights: list[U8], masks_w: Bool, centre: F64,
                   diag: dict[str, Any]) -> F64:
        cfg = self.cfg
        t_n = clip.num_frames
        dt = np.diff(clip.timestamps) if t_n > 1 else np.zeros(0)
        dt = np.where(dt > 0, dt, 1.0 / max(clip.fps, 1e-6))
        speed = _speed_from_meta(clip)
        if speed is not None:
            diag["speed_source"] = "clip meta"
        elif cfg.speed_from_image and t_n > 1:
            speed = self._speed_from_image(cam_w, lights, masks_w, centre, dt)
            diag["speed_source"] = "image motion (lane-aligned BEV correlation)" if speed is not None else "default"
        if speed is None:
            speed = np.full(t_n, cfg.default_speed_mps)
            diag["speed_source"] = "default"
        diag["speed_mps_median"] = round(float(np.median(speed)), 3)
        out = np.zeros(t_n)
        if t_n > 1:
            out[1:] = np.cumsum(0.5 * (speed[1:] + speed[:-1]) * dt)
        return out

    def _speed_from_image(self, cam_w: PinholeCamera, lights: list[U8], masks_w: Bool, centre: F64,
                          dt: F64) -> F64 | None:
        """Ego speed per frame from the road moving down a lane-aligned BEV (None when unreliable)."""
        grid = self._bev_grid(cam_w, 2.4, 0.08, 0.05, 24.0)
        if grid.x_max - grid.x_min < 8.0:
            return None
        bev, valid = [], []
        kernel = np.ones((9, 9), np.uint8)
        for t, (light, m) in enumerate(zip(lights, masks_w, strict=True)):
            mu, mv = geo.lane_aligned_maps(cam_w, grid, centre[t])
            g = light.astype(np.float32)
            b = np.asarray(cv2.remap(g, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), dtype=np.float32)
            mb = np.asarray(cv2.remap(m.astype(np.uint8) * 255, mu, mv, cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_CONSTANT) > 0, dtype=np.float32)
            # hard edges that do not move with the road (image border, cars, mask borders) would lock the
            # correlation at zero shift: fill off-road pixels smoothly, then feather the mask well inside them
            fill = cv2.GaussianBlur(b * mb, (0, 0), 6.0) / np.maximum(cv2.GaussianBlur(mb, (0, 0), 6.0), 1e-3)
            b = np.where(mb > 0, b, fill).astype(np.float32)
            soft = cv2.GaussianBlur(cv2.erode(mb, kernel, iterations=2), (0, 0), 3.0)
            hp = geo.highpass_along_x(b, 1.0 / grid.dx) * soft
            bev.append(hp.astype(np.float32))
            valid.append(float(soft.mean()))
        shifts = np.full(len(bev) - 1, np.nan)
        for t in range(len(bev) - 1):
            if min(valid[t], valid[t + 1]) < 0.3 or min(float(bev[t].std()), float(bev[t + 1].std())) < 0.3:
                continue  # too little road, or no texture to follow
            dr, resp = geo.bev_shift(bev[t], bev[t + 1], math.ceil(self.cfg.max_speed_mps * dt[t] / grid.dx))
            if resp > 0.2:
                shifts[t] = dr * grid.dx / dt[t]
        ok = np.isfinite(shifts)
        if ok.sum() < max(1, len(shifts) // 3):
            return None
        med = geo.rolling_median(shifts, 3)
        dev = np.abs(shifts - med)
        shifts[dev > np.maximum(3.0, 0.25 * np.abs(med))] = np.nan
        per_step = geo.fill_nan(geo.rolling_median(shifts, 2), float(np.nanmedian(shifts)))
        per_step = geo.gaussian_smooth(per_step, 1.0)
        speed: F64 = np.maximum(np.concatenate([per_step[:1], 0.5 * (per_step[1:] + per_step[:-1]), per_step[-1:]]),
                                0.0)
        return speed

    def _paint_colours(self, frames_w: U8, masks_w: Bool, evidence: list[geo.PaintEvidence],
                       diag: dict[str, Any]) -> tuple[F32, F32, float]:
        """Sunlit white and yellow paint (RGB 0-255) and the road's typical luminance, from the clip's own paint
        near the camera; standard ratios to the asphalt where the clip has none."""
        cfg = self.cfg
        h = frames_w.shape[1]
        lo = int(h * 0.55)  # near road: the lower part of the frame
        step = max(1, len(frames_w) // 8)
        whites, yellows, roads = [], [], []
        for t in range(0, len(frames_w), step):
            f = frames_w[t, lo:].astype(np.float32)
            m = masks_w[t, lo:]
            ev = evidence[t]
            br, ye = ev.bright[lo:], ev.yellow[lo:]
            road = m & (br < cfg.paint_bright_thr * 0.5) & (ye < cfg.paint_yellow_thr * 0.5)
            if road.sum() < 50:
                continue
            roads.append(float(np.median(f[road].mean(axis=1))))
            wpx = m & (br > cfg.paint_bright_thr * 2) & (ye < cfg.paint_yellow_thr)
            ypx = m & (ye > cfg.paint_yellow_thr * 2.5)
            if wpx.sum() >= 20:
                whites.append(np.percentile(f[wpx], 60, axis=0))
            if ypx.sum() >= 20:
                yellows.append(np.percentile(f[ypx], 60, axis=0))
        road_lum = float(np.median(roads)) if roads else 100.0
        if whites:
            white = np.median(np.asarray(whites), axis=0).astype(np.float32)
            diag["white_source"] = "clip paint"
        else:
            white = np.full(3, _WHITE_OF_ASPHALT * road_lum, dtype=np.float32)
            diag["white_source"] = "standard ratio to the asphalt"
        floor = min(1.6 * road_lum, 235.0)  # faint worn paint: do not copy its lack of contrast
        if white.mean() < floor:
            white = white * (floor / float(white.mean()))
        if yellows:
            yellow = np.median(np.asarray(yellows), axis=0).astype(np.float32)
            diag["yellow_source"] = "clip paint"
            floor = min(1.2 * road_lum, 200.0)
            if yellow.mean() < floor:
                yellow = yellow * (floor / float(yellow.mean()))
        else:
            yellow = (white * _YELLOW_OF_WHITE * 0.9).astype(np.float32)
            diag["yellow_source"] = "standard ratio to white"
        white = np.clip(white, 0.0, 250.0)
        yellow = np.clip(yellow, 0.0, 250.0)
        diag["paint_rgb"] = {"white": np.round(white, 1).tolist(), "yellow": np.round(yellow, 1).tolist(),
                             "road_luminance": round(road_lum, 1)}
        return white, yellow, road_lum

    def _road_width(self, cam_w: PinholeCamera, masks_w: Bool) -> float:
        grid = self._bev_grid(cam_w, 12.0, 0.5, 0.05, 20.0)
        xs = grid.xs
        sel = (xs >= grid.x_min + 1.0) & (xs <= min(15.0, grid.x_max))
        if not sel.any():
            return 0.0
        widths = []
        for t in range(0, len(masks_w), max(1, len(masks_w) // 12)):
            mb = np.asarray(grid.warp(masks_w[t].astype(np.uint8) * 255, cam_w, cv2.INTER_NEAREST)) > 0
            widths.append(float(np.median(mb[sel].sum(axis=1))) * grid.dy)
        return float(np.median(widths))

    # ------------------------------------------------------------------------------------------ instruction
    def _stripes(self, spec: LaneSpec, params: PaintParams) -> dict[str, list[_Stripe]]:
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

    def _check_feasible(self, clip: Clip, masks: RoadMasks, an: _Analysis, sides: list[str],
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

    # ------------------------------------------------------------------------------------------ rendering
    def _render(self, out: U8, t: int, clip: Clip, mask: Bool, an: _Analysis, spec: LaneSpec, sides: list[str],
                stripes: dict[str, list[_Stripe]], params: PaintParams) -> list[PaintedLine]:
        """One frame into ``out`` (``(H, W, 3) uint8``): erase, then paint; only road pixels change."""
        cfg = self.cfg
        frame = clip.frames[t]
        out[...] = frame
        if not mask.any():
            return []
        mw = an.masks_w[t]
        hw, ww = mw.shape
        h, w = mask.shape
        scale = (ww / w, hw / h)
        # ---- erase zone and paint pixels at work resolution
        if spec.is_removal and spec.side == "both":
            # all paint in the road, except a thin band along the mask's lower border (a hood's bright edge)
            k = 4
            below = np.ones_like(mw)
            below[:-k] = mw[k:]
            zone = mw & below
        else:
            zone = np.zeros_like(mw)
            for side in sides:
                half = cfg.erase_half_width_m if an.found[side][t] else cfg.erase_half_width_assumed_m
                half *= params.erase_strength
                c = an.coefs[side][t]
                rows, cols = _corridor(an.cam_w, an.maps_w, c, half, cfg.max_range_m, an.fit_range_m)
                x = an.maps_w.x[rows, cols]
                ok = np.isfinite(x)
                rows, cols = rows[ok], cols[ok]
                near = np.abs(an.maps_w.y[rows, cols] - _poly(c, x[ok], an.fit_range_m)) < half
                zone[rows[near], cols[near]] = True
            zone &= mw
        thr = 0.8 / math.sqrt(params.erase_strength)
        paint_w = an.evidence[t].mask(cfg.paint_bright_thr * thr, cfg.paint_yellow_thr * thr) & zone
        ksz = 3 if params.erase_strength < 1.5 else 5
        paint_w = cv2.dilate(paint_w.astype(np.uint8), np.ones((ksz, ksz), np.uint8)) > 0
        # ---- asphalt colour under and around the paint: push-pull at half the work resolution
        known = mw & ~paint_w
        lw_, lh_ = max(ww // 2, 1), max(hw // 2, 1)
        f_low = np.asarray(cv2.resize(an.frames_w[t], (lw_, lh_), interpolation=cv2.INTER_AREA), dtype=np.float32)
        k_low = np.asarray(cv2.resize(known.astype(np.float32), (lw_, lh_), interpolation=cv2.INTER_AREA)) > 0.99
        low = push_pull_fill(f_low, k_low)
        low_scale = (lw_ / w, lh_ / h)
        grain = 2.0  # fallback noise level, refined from the copied texture in _erase
        # ---- erase at full resolution: low-frequency fill + texture copied from beside the line
        if paint_w.any():
            self._erase(out, frame, mask, paint_w, low, grain, an, t, params, scale, low_scale)
        # ---- paint
        lines: list[PaintedLine] = []
        for side in sides:
            st = stripes[side]
            if not st:
                continue
            c = an.coefs[side][t].copy()
            c[0] += params.lateral_offset_m
            self._paint_side(out, mask, an, t, c, st, spec.color or "white", params, low, low_scale)
            lines.append(self._polyline(an, mask, c, side, spec))
        return lines

    def _erase(self, out: U8, frame: U8, mask: Bool, paint_w: Bool, low: F32, grain: float, an: _Analysis,
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
        hole = (up > 0) & box_mask
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

    def _paint_side(self, out: U8, mask: Bool, an: _Analysis, t: int, c: F64, stripes: list[_Stripe],
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
            alpha += _overlap(d - st.offset_m, fl, -st.width_m / 2, st.width_m / 2).astype(np.float32)
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
                cov = _overlap(d - st.offset_m, fl, -st.width_m / 2, st.width_m / 2)
                if st.dashed:
                    cov = cov * _dash_coverage(s_road, fs, sz.dash_length, sz.dash_length + sz.gap_length)
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
        lum = low.mean(axis=1, keepdims=True)
        # paint keeps its sunlit colour on brighter paving and darkens with the road in shadow
        shade = np.clip(lum / max(an.road_lum, 1.0), 0.3, 1.0)
        base = (an.yellow_rgb if color == "yellow" else an.white_rgb)[None, :] * shade
        if color == "yellow":
            grey = base.mean(axis=1, keepdims=True)
            base = grey + params.saturation * (base - grey)
        paint = low + params.contrast * (base - low)
        under = out[rows, cols].astype(np.float32)
        col = np.clip(paint + (under - low) * cfg.texture_gain, 0.0, 255.0)
        a = alpha[:, None]
        out[rows, cols] = np.clip(under + a * (col - under) + 0.5, 0, 255).astype(np.uint8)

    def _polyline(self, an: _Analysis, mask: Bool, c: F64, side: str, spec: LaneSpec) -> PaintedLine:
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


# ============================================================================================== helpers
def _map(fn: Callable[[int], _T], items: range, threads: int) -> list[_T]:
    """``[fn(i) for i in items]``, on a thread pool when ``threads > 1`` (OpenCV and numpy release the GIL)."""
    if threads <= 1 or len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


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


# ============================================================================================== QA steps
class ProceduralJob:
    """The procedural painter's QA steps (:class:`lanepipe.edit.base.PaintJob`): each attempt paints the whole clip
    with the current :class:`PaintParams`; a FAIL adjusts them from the verdict's reasons; ``finish`` returns the
    last attempt. Records: ``params`` and what the verifier saw (``seen``) or said (``revised_caption``, ``raw``).
    """

    def __init__(self, painter: ProceduralPainter, clip: Clip, masks: RoadMasks, spec: LaneSpec) -> None:
        self.painter, self.clip, self.masks, self.spec = painter, clip, masks, spec
        self.params = PaintParams()
        self.attempts = 0
        self.result: PaintResult | None = None

    def attempt(self) -> npt.NDArray[np.uint8]:
        self.result = self.painter.paint(self.clip, self.masks, self.spec, self.params)
        self.attempts += 1
        return self.result.frames

    def record(self, verdict: Verdict | None, check_s: float) -> dict[str, Any]:
        del check_s
        params = self.params.model_dump()
        if verdict is None:
            return {"verdict": "SKIPPED", "reasons": [], "params": params}
        seen: dict[str, Any] = ({"seen": verdict.report.to_dict()} if verdict.report is not None
                                else {"revised_caption": verdict.revised_caption, "raw": verdict.raw})
        return {"params": params, **seen, "verdict": "PASS" if verdict.passed else "FAIL",
                "reasons": list(verdict.reasons)}

    def adjust(self, verdict: Verdict) -> None:
        self.params = self.params.adjusted(list(verdict.reasons), self.attempts - 1)

    def finish(self, verifier: str) -> PaintResult:
        del verifier
        assert self.result is not None, "finish() before any attempt()"
        return self.result

    def qa_fields(self) -> dict[str, Any]:
        return {}
