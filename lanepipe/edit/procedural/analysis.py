"""Step 1 of the procedural painter: analyse a clip once (camera, lane boundaries, ego travel, paint appearance).

Frames are shrunk to ``work_width``; paint is found with row-scaled top-hats (:mod:`lanepipe.lanes.paint`); the
ego lane's boundaries are tracked in a bird's-eye view and smoothed over time; speed comes from the clip's meta
or from the road texture moving down a lane-aligned BEV. Coordinates: ego metres (x forward, y left) on the
ground; image pixels ``(u, v)`` at full or work resolution as named.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.edit.config import LANE_WIDTH_M, ProceduralConfig
from lanepipe.edit.procedural.appearance import PaintLook, luma, measure_looks
from lanepipe.errors import InputError
from lanepipe.geometry import road as geo
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.lanes.paint import PaintEvidence, paint_channels, paint_evidence, pose_from_paint
from lanepipe.lanes.polyline import column_peaks, track_line
from lanepipe.types import Clip, RoadMasks

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]
_T = TypeVar("_T")
#: Work pixels a boundary fit wanders from frame to frame on a straight road (see ``_smooth_tracks``).
_AGREE_PX = 3.0

@dataclass(frozen=True)
class ClipAnalysis:
    """Everything about a clip that does not depend on the instruction."""

    cam: PinholeCamera  # full resolution
    cam_w: PinholeCamera  # work resolution
    maps: geo.GroundMaps  # full resolution
    maps_w: geo.GroundMaps  # work resolution
    frames_w: U8  # (T, h, w, 3)
    masks_w: Bool  # (T, h, w)
    evidence: list[PaintEvidence]
    coefs: dict[str, F64]  # side -> (T, DEGREE + 1) boundary cubic, ego metres
    found: dict[str, Bool]  # side -> (T,)
    travelled: F64  # (T,) metres driven since frame 0
    white: PaintLook  # white paint relative to the pavement under it
    yellow: PaintLook  # yellow paint relative to the pavement under it
    road_rgb: F32  # (3,) typical colour of the clip's near road, 0-255
    road_width_m: float
    row_ppm: F32  # (H,) full-resolution pixels per lateral metre at each row (0 above the horizon)
    fit_range_m: float  # boundaries were fitted up to this distance; straight beyond
    diagnostics: dict[str, Any]
    # (W,) first row of the ego vehicle's hood per full-resolution column (RoadMasks.hood_top; H: none there),
    # None when the segmenter found no hood
    hood_top: Ints | None = None


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
    return cam.rescaled(clip.width, clip.height)


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


def map_frames(fn: Callable[[int], _T], items: range, threads: int) -> list[_T]:
    """``[fn(i) for i in items]``, on a thread pool when ``threads > 1`` (OpenCV and numpy release the GIL)."""
    if threads <= 1 or len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))



class ClipAnalyser:
    """Analyses clips for the procedural painter (see the module docstring).

    Args:
        cfg: painter settings.
        backend: name recorded in the diagnostics.
    """

    def __init__(self, cfg: ProceduralConfig, backend: str = "procedural") -> None:
        self.cfg = cfg
        self.backend = backend

    def analyse(self, clip: Clip, masks: RoadMasks) -> ClipAnalysis:
        """Everything about ``clip`` (``(T, H, W, 3) uint8``) and its ``(T, H, W) bool`` road masks that the
        instruction does not change (see the package docstring, step 1)."""
        cfg = self.cfg
        t_n, h_full, w_full = clip.num_frames, clip.height, clip.width
        ww = min(w_full, cfg.work_width)
        hw = max(8, round(h_full * ww / w_full))
        diag: dict[str, Any] = {"backend": self.backend, "work_size": [ww, hw]}
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

        small = map_frames(shrink, range(t_n), cfg.threads)
        frames_w = np.stack([s[0] for s in small])
        masks_w = np.stack([s[1] for s in small])
        chans = map_frames(lambda t: paint_channels(frames_w[t]), range(t_n), cfg.threads)
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
        cam_w = cam.rescaled(ww, hw)
        ppm = geo.row_px_per_metre(cam_w)

        def evid(t: int) -> PaintEvidence:
            return paint_evidence(chans[t], ppm, 0.6)

        evidence = map_frames(evid, range(t_n), cfg.threads)
        stamps.append(time.perf_counter())

        # ---- lane boundaries
        raw, found = self._track_boundaries(cam_w, evidence, masks_w, diag)
        lane_w = float(diag["lane_width_assumed_m"])
        fit_range = cfg.bev_range_m
        width_meas = diag.get("lane_width_measured_m")
        if not known_camera and cfg.calibrate_height and width_meas is not None:
            k = float(np.clip(cfg.lane_width_m / width_meas, 0.8 / cam.mount_height_m, 3.5 / cam.mount_height_m))
            cam = geo.with_pose(cam, mount_height_m=cam.mount_height_m * k)
            cam_w = cam.rescaled(ww, hw)
            for s in raw:
                raw[s] = raw[s] * k ** (1.0 - np.arange(geo.DEGREE + 1))
            lane_w *= k
            fit_range *= k
            diag["height_calibration_scale"] = round(k, 4)
        coefs = self._smooth_tracks(raw, lane_w, cam_w.fx)
        diag["camera_model"] = "pinhole"
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
        white, yellow, road_rgb = self._paint_colours(frames_w, masks_w, evidence, diag)
        road_width = self._road_width(cam_w, masks_w)
        diag["road_width_m"] = round(road_width, 2)

        maps = geo.ground_maps(cam, cfg.max_range_m)
        maps_w = geo.ground_maps(cam_w, cfg.max_range_m)
        stamps.append(time.perf_counter())
        steps = ("shrink", "camera+evidence", "boundaries", "speed", "colours+maps")
        diag["analyse_steps_s"] = {k: round(b - a, 3) for k, a, b in zip(steps, stamps[:-1], stamps[1:], strict=True)}
        return ClipAnalysis(cam=cam, cam_w=cam_w, maps=maps, maps_w=maps_w, frames_w=frames_w, masks_w=masks_w,
                         evidence=evidence, coefs=coefs, found=found, travelled=travelled,
                         white=white, yellow=yellow, road_rgb=road_rgb, road_width_m=road_width,
                         row_ppm=geo.row_px_per_metre(cam), fit_range_m=fit_range, diagnostics=diag,
                         hood_top=None if masks.hood_top is None else np.asarray(masks.hood_top, dtype=np.intp))

    def _pose_from_vanishing_point(self, cam: PinholeCamera, chans: list[U8], masks_w: Bool,
                                   diag: dict[str, Any]) -> PinholeCamera:
        cfg = self.cfg
        hw, ww = masks_w.shape[1:]
        prior = cam.rescaled(ww, hw)
        frames = range(0, len(chans), max(1, len(chans) // 12))
        kernel = np.ones((7, 7), np.uint8)
        found = pose_from_paint(prior, (chans[t] for t in frames), cfg.paint_bright_thr + 4, cfg.paint_yellow_thr,
                                regions=(cv2.dilate(masks_w[t].astype(np.uint8), kernel) > 0 for t in frames),
                                min_points=max(1, min(3, len(chans) // 4)))
        diag["vanishing_point_frames"] = found.frames
        diag["pose_source"] = found.source
        if found.pitch_rad is None or found.yaw_rad is None or found.vp is None:
            return cam
        u, v = found.vp
        s = cam.width / ww
        diag["vanishing_point_px"] = [round((u + 0.5) * s - 0.5, 1), round((v + 0.5) * s - 0.5, 1)]
        return geo.with_pose(cam, pitch_rad=found.pitch_rad, yaw_rad=found.yaw_rad)

    def _bev_grid(self, cam_w: PinholeCamera, y_half: float, dx: float, dy: float, x_far: float) -> geo.BevGrid:
        # nearest visible ground: the bottom image row, principal column
        p, ok = cam_w.pixel_to_ground([cam_w.cx], [cam_w.height - 1.0])
        x_near = float(p[0, 0]) if ok[0] else 3.0
        x_near = max(x_near, 1.0)
        x_far = max(x_far, x_near + 10 * dx)
        return geo.BevGrid(x_min=x_near, x_max=x_far, dx=dx, y_min=-y_half, y_max=y_half, dy=dy)

    def _track_boundaries(self, cam_w: PinholeCamera, evidence: list[PaintEvidence], masks_w: Bool,
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
        support: dict[str, F64] = {}
        min_peak = 0.02 * near_rows
        refs: dict[str, float] = {}
        starts: dict[str, list[float]] = {}
        for side, (a, b) in ranges.items():
            peaks = [column_peaks(bev, grid, near_rows, a, b) for bev in bevs]
            strongest = [p[0][0] for p in peaks if p and p[0][1] > min_peak]
            default_ref = LANE_WIDTH_M / 2 if side == "left" else -LANE_WIDTH_M / 2
            ref = refs[side] = float(np.median(strongest)) if strongest else default_ref
            raw = np.full((t_n, geo.DEGREE + 1), np.nan)
            support[side] = np.zeros(t_n)
            starts[side] = []
            for t in range(t_n):
                cands = [p for p in peaks[t] if abs(p[0] - ref) < 0.8 and p[1] > min_peak]
                start = min(cands, key=lambda p: abs(p[0] - ref))[0] if cands else ref
                starts[side].append(start)
                fit = track_line(bevs[t], grid, start, 0.45, 9, min_weight=0.5)
                if fit is not None and abs(fit.coefs[0] - ref) < 1.0 and fit.points >= 2:
                    raw[t] = fit.coefs
                    support[side][t] = fit.support
            coefs[side], found[side] = raw, np.isfinite(raw[:, 0])
        # the weaker boundary of a frame (a dashed line, worn paint) is tracked again with its search windows
        # following the stronger one's course: across a dash gap on a curve its own last heading runs off the road
        # (the two boundaries of a lane are parallel)
        for t in range(t_n):
            if not (np.isfinite(coefs["left"][t, 0]) and np.isfinite(coefs["right"][t, 0])):
                continue
            weak, strong = ("left", "right") if support["left"][t] < support["right"][t] else ("right", "left")
            fit = track_line(bevs[t], grid, starts[weak][t], 0.45, 9, min_weight=0.5, guide=coefs[strong][t])
            if fit is not None and abs(fit.coefs[0] - refs[weak]) < 1.0 and fit.points >= 2:
                coefs[weak][t] = fit.coefs
                support[weak][t] = fit.support
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
        # the two boundaries of a lane are parallel: where both are seen they share heading and curvature, each
        # side weighted by its paint support (a solid line constrains the shape better than a few dashes, whose
        # own cubic can swing away beyond them); each keeps its lateral position 8 m ahead, where it is seen best
        both_seen = found["left"] & found["right"]
        if both_seen.any():
            wl = support["left"][both_seen][:, None]
            wr = support["right"][both_seen][:, None]
            shape = (wl * coefs["left"][both_seen, 1:] + wr * coefs["right"][both_seen, 1:]) / np.maximum(wl + wr, 1e-9)
            x_ref = 8.0
            powers = x_ref ** np.arange(1, geo.DEGREE + 1)
            for side in ("left", "right"):
                c = coefs[side][both_seen]
                y_ref = c[:, 0] + c[:, 1:] @ powers
                c[:, 1:] = shape
                c[:, 0] = y_ref - shape @ powers
                coefs[side][both_seen] = c
        for side, other, sign in (("left", "right", 1.0), ("right", "left", -1.0)):
            raw = coefs[side]
            miss = ~found[side] & found[other]
            raw[miss] = coefs[other][miss]
            raw[miss, 0] += sign * lane_w
        diag["lane_width_assumed_m"] = round(lane_w, 3)
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
        return coefs, found

    def _smooth_tracks(self, raw: dict[str, F64], lane_w: float, fx_w: float) -> dict[str, F64]:
        """Per-frame boundary cubics (NaN where not found) smoothed over time, gaps filled.

        Each frame's cubic becomes a Gaussian-weighted mean (``temporal_sigma`` frames) of its neighbours' cubics,
        each neighbour weighted down by how far its line lies from the frame's reference course (per distance ahead,
        the median of the lines over ±``temporal_radius`` frames) at 10, 20 and 30 m, in work pixels (about
        :data:`_AGREE_PX`: what one frame's fit wanders on a straight road). Neighbours on the same course are
        averaged (jitter goes); a frame that saw the road differently is left out: where the car drives into a
        curve, the frames before it saw less of the curve, and plainly averaging their coefficients (or taking
        their median per coefficient) flattens the curve of the frames that see it; an outlier frame is far from
        the median course and gets its neighbours' line.
        """
        cfg = self.cfg
        t_n = len(next(iter(raw.values())))
        out: dict[str, F64] = {}
        xs = np.array([10.0, 20.0, 30.0])
        px_per_m = fx_w / xs  # lateral work pixels per metre at those distances
        r = math.ceil(3 * cfg.temporal_sigma)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            filled = np.stack([geo.fill_nan(raw[side][:, j], d)
                               for j, d in enumerate((sign * lane_w / 2,) + (0.0,) * geo.DEGREE)], axis=1)
            ys = np.stack([geo.poly_eval(m, xs) for m in filled])
            ref = np.stack([geo.rolling_median(ys[:, k], cfg.temporal_radius) for k in range(len(xs))], axis=1)
            if cfg.temporal_sigma <= 0 and cfg.temporal_radius <= 0:
                out[side] = filled
                continue
            sm = np.empty_like(filled)
            for t in range(t_n):
                lo, hi = max(0, t - r), min(t_n, t + r + 1)
                w = np.exp(-0.5 * ((np.arange(lo, hi) - t) / max(cfg.temporal_sigma, 1e-3)) ** 2)
                dev = (np.abs(ys[lo:hi] - ref[t]) * px_per_m).max(axis=1)
                w = w * np.exp(-0.5 * (dev / _AGREE_PX) ** 2)
                sm[t] = w @ filled[lo:hi] / w.sum() if w.sum() > 1e-6 else filled[lo + int(np.argmin(dev))]
            out[side] = sm
        return out

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
        if not np.isfinite(shifts).any():  # every shift an outlier (a few frames that disagree): unreliable
            return None
        per_step = geo.fill_nan(geo.rolling_median(shifts, 2), float(np.nanmedian(shifts)))
        per_step = geo.gaussian_smooth(per_step, 1.0)
        speed: F64 = np.maximum(np.concatenate([per_step[:1], 0.5 * (per_step[1:] + per_step[:-1]), per_step[-1:]]),
                                0.0)
        return speed

    def _paint_colours(self, frames_w: U8, masks_w: Bool, evidence: list[PaintEvidence],
                       diag: dict[str, Any]) -> tuple[PaintLook, PaintLook, F32]:
        """White and yellow paint relative to the pavement (:mod:`~lanepipe.edit.procedural.appearance`) and the
        clip's typical road colour; recorded in ``diag["paint_appearance"]`` and ``diag["paint_rgb"]``."""
        cfg = self.cfg
        white, yellow, road_rgb, notes = measure_looks(frames_w, masks_w, evidence, cfg.paint_bright_thr,
                                                       cfg.paint_yellow_thr)
        diag.update(notes)
        diag["white_source"] = white.source
        diag["yellow_source"] = yellow.source
        diag["paint_appearance"] = {"white": white.to_dict(road_rgb), "yellow": yellow.to_dict(road_rgb),
                                    "road_rgb": [round(float(v), 1) for v in road_rgb],
                                    "model": "paint = local pavement luma x gain per channel, lifted and "
                                             "highlight-compressed (lanepipe.edit.procedural.appearance)"}
        diag["paint_rgb"] = {"white": [round(float(v), 1) for v in white.colour(road_rgb[None, :])[0]],
                             "yellow": [round(float(v), 1) for v in yellow.colour(road_rgb[None, :])[0]],
                             "road_luminance": round(float(luma(road_rgb)), 1)}
        return white, yellow, road_rgb

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
