"""The ``lane_keep`` predictor: inputs, camera (fallback pose from the paint), pooled BEV, prediction."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry import road as geo
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.lanes.paint import paint_channels, pose_from_paint
from lanepipe.predict.lane_keep.boundaries import bev_grid, find_boundaries, paint_score
from lanepipe.predict.lane_keep.config import LaneKeepConfig
from lanepipe.predict.lane_keep.drive import drive_lane, lane_centre
from lanepipe.types import DT, FUTURE_STEPS, HISTORY_STEPS, CameraView, EgoState, Prediction, PredictorInput

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


def _history_pose(ego: EgoState, t: float) -> tuple[float, float, float]:
    """Ego ``x, y, yaw`` at time ``t`` (s relative to t0, in ``[-1.5, 0]``) in the t0 frame."""
    times = DT * (np.arange(HISTORY_STEPS) - (HISTORY_STEPS - 1))
    yaw = np.unwrap(np.arctan2(ego.rot[:, 1, 0].astype(np.float64), ego.rot[:, 0, 0].astype(np.float64)))
    return (float(np.interp(t, times, ego.xyz[:, 0])), float(np.interp(t, times, ego.xyz[:, 1])),
            float(np.interp(t, times, yaw)))


class LaneKeepPredictor:
    """Lane-keeping planner on the front camera's paint (see the module docstring).

    Args:
        cfg: settings (defaults when None).
    """

    name = "lane_keep"
    config_class: ClassVar[type[LaneKeepConfig]] = LaneKeepConfig

    def __init__(self, cfg: LaneKeepConfig | None = None) -> None:
        self.cfg = cfg or LaneKeepConfig()

    # ------------------------------------------------------------------------------------------ inputs
    def _check_inputs(self, inp: PredictorInput) -> tuple[CameraView, npt.NDArray[np.intp]]:
        if inp.front not in inp.cameras:
            raise InputError(f"clip {inp.clip}", f"a front camera named {inp.front!r} (PredictorInput.front)",
                             f"cameras {sorted(inp.cameras) or 'none'}", "pass the front camera's frames")
        view = inp.cameras[inp.front]
        f = view.frames
        if not isinstance(f, np.ndarray) or f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or not len(f):
            raise InputError(f"clip {inp.clip} camera {view.name}", "frames (T, H, W, 3) uint8 with T >= 1",
                             f"{getattr(f, 'shape', type(f))} {getattr(f, 'dtype', '')}")
        ts = np.asarray(view.timestamps, dtype=np.float64)
        if ts.shape != (len(f),) or not np.all(np.isfinite(ts)):
            raise InputError(f"clip {inp.clip} camera {view.name}", f"{len(f)} finite timestamps (s from t0)",
                             f"shape {ts.shape}" if ts.shape != (len(f),) else "NaN or inf")
        ego = inp.ego
        if not isinstance(ego, EgoState):
            raise InputError(f"clip {inp.clip}", "an EgoState", type(ego).__name__)
        if not (np.all(np.isfinite(ego.xyz)) and np.all(np.isfinite(ego.rot)) and math.isfinite(ego.speed)):
            raise InputError(f"clip {inp.clip} ego history", "finite values", "NaN or inf")
        if ego.speed < 0:
            raise InputError(f"clip {inp.clip} ego speed", "a speed >= 0 m/s", f"{ego.speed}")
        recent = np.flatnonzero((ts <= 1e-6) & (ts >= -self.cfg.max_frame_age_s - 1e-6))
        if len(recent) == 0:
            raise InputError(f"clip {inp.clip} camera {view.name}",
                             f"a frame within {self.cfg.max_frame_age_s} s before t0 (timestamps ≤ 0)",
                             f"timestamps {ts.min():.3f}…{ts.max():.3f} s")
        order = recent[np.argsort(ts[recent])][-self.cfg.frames_used:]
        return view, order

    def _camera(self, view: CameraView, use: npt.NDArray[np.intp], diag: dict[str, Any]) -> tuple[Any, bool]:
        """The camera model for the view's frame size, and whether it is the fallback pinhole."""
        h, w = view.frames.shape[1:3]
        cam = view.camera
        if isinstance(cam, dict):
            if cam.get("model", "pinhole") != "pinhole":
                raise InputError(f"camera {view.name}", "a pinhole camera dict or a model with project()",
                                 f"model {cam.get('model')!r}")
            cam = PinholeCamera.from_dict(cam)
        if isinstance(cam, PinholeCamera):
            if abs(cam.width / cam.height - w / h) > 0.01:
                raise InputError(f"camera {view.name}", f"a camera for {w}x{h} frames (or the same aspect ratio)",
                                 f"a camera for {cam.width}x{cam.height}")
            diag["camera_source"] = "camera view"
            return (cam.rescaled(w, h) if (cam.width, cam.height) != (w, h) else cam), False
        if cam is not None:
            if not callable(getattr(cam, "project", None)):
                raise InputError(f"camera {view.name}", "a camera model with project(points_ego)", type(cam).__name__)
            diag["camera_source"] = f"camera view ({type(cam).__name__})"
            return cam, False
        cfg = self.cfg
        fb = PinholeCamera.from_fov(w, h, cfg.fallback_fov_deg, cfg.fallback_mount_height_m, cfg.fallback_pitch_deg)
        diag["camera_source"] = f"fallback pinhole (fov {cfg.fallback_fov_deg} deg)"
        if cfg.estimate_pose:
            fb = self._pose_from_vanishing_point(fb, view, use, diag)
        return fb, True

    def _pose_from_vanishing_point(self, cam: PinholeCamera, view: CameraView, use: npt.NDArray[np.intp],
                                   diag: dict[str, Any]) -> PinholeCamera:
        h, w = view.frames.shape[1:3]
        ww = min(w, 640)
        hw = max(8, round(h * ww / w))
        idx = np.unique(np.concatenate([np.linspace(0, len(view.frames) - 1, min(8, len(view.frames))).astype(int),
                                        use]))
        chans = (paint_channels(np.asarray(cv2.resize(view.frames[t], (ww, hw), interpolation=cv2.INTER_AREA),
                                           dtype=np.uint8)) for t in idx.tolist())
        found = pose_from_paint(cam.rescaled(ww, hw), chans, 18.0, 6.0, hood_frac=0.92)
        diag["vanishing_point_frames"] = found.frames
        diag["pose_source"] = found.source
        if found.pitch_rad is None or found.yaw_rad is None:
            return cam
        return geo.with_pose(cam, pitch_rad=found.pitch_rad, yaw_rad=found.yaw_rad)

    # ------------------------------------------------------------------------------------------ BEV
    def _near_range(self, cam: Any) -> float:
        """Nearest forward distance (m) whose ground point straight ahead is in the image (at least 1 m)."""
        xs = np.arange(0.5, 40.0, 0.25)
        pix, ok = cam.project(np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], axis=1))
        h = int(getattr(cam, "height", 0)) or None
        inside = ok & np.isfinite(pix[:, 1])
        if h is not None:
            inside &= pix[:, 1] <= h - 1
        return max(1.0, float(xs[np.flatnonzero(inside)[0]])) if inside.any() else 3.0

    def _pooled_score(self, view: CameraView, use: npt.NDArray[np.intp], cam: Any, ego: EgoState,
                      xs: F64, ys: F64) -> F32:
        cfg = self.cfg
        h, w = view.frames.shape[1:3]
        ww = min(w, cfg.work_width)
        hw = max(8, round(h * ww / w))
        s = ww / w
        gx, gy = np.meshgrid(xs, ys, indexing="ij")  # (R, C)
        acc = np.zeros(gx.shape, dtype=np.float32)
        for t in use.tolist():
            tf = float(view.timestamps[t])
            px, py, yaw = _history_pose(ego, max(tf, -DT * (HISTORY_STEPS - 1))) if cfg.motion_compensation \
                else (0.0, 0.0, 0.0)
            c, sn = math.cos(yaw), math.sin(yaw)
            dx, dy = gx - px, gy - py
            pts = np.stack([c * dx + sn * dy, -sn * dx + c * dy, np.zeros_like(dx)], axis=-1).reshape(-1, 3)
            pix, ok = cam.project(pts)
            mu = np.where(ok, (pix[:, 0] + 0.5) * s - 0.5, -1e4).reshape(gx.shape).astype(np.float32)
            mv = np.where(ok, (pix[:, 1] + 0.5) * s - 0.5, -1e4).reshape(gx.shape).astype(np.float32)
            frame = view.frames[t] if ww == w else np.asarray(
                cv2.resize(view.frames[t], (ww, hw), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            chans = paint_channels(frame, "float32")
            bev = cv2.remap(chans, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            valid = (mu >= 0) & (mu <= ww - 1) & (mv >= 0) & (mv <= hw - 1)
            acc += paint_score(np.asarray(bev, dtype=np.float32), valid, cfg)
        out: F32 = (acc / len(use)).astype(np.float32)
        return out

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, inp: PredictorInput) -> Prediction:
        """Predict the ego's next 6.4 s by keeping the lane seen in the front camera.

        Args:
            inp: the front camera (``inp.cameras[inp.front]``: ``(T, H, W, 3) uint8`` frames, timestamps in s
                relative to t0, a camera model with ``project`` or None for the fallback pinhole) and the ego
                history (speed from ``EgoState.speed`` unless ``speed_mps`` is set).

        Returns:
            :class:`Prediction` with ``trajectories (1, 64, 3) float32`` in the t0 ego frame, one reasoning line,
            and ``meta`` holding the boundaries, the lane centre, the camera source and the speed used.

        Raises:
            InputError: no front camera, malformed frames or timestamps, no frame within ``max_frame_age_s``
                before t0, a non-finite ego history, a negative speed, a camera of another aspect ratio.
        """
        cfg = self.cfg
        view, use = self._check_inputs(inp)
        diag: dict[str, Any] = {"backend": self.name, "frames_used": len(use),
                                "frame_times_s": [round(float(view.timestamps[i]), 3) for i in use]}
        cam, fallback = self._camera(view, use, diag)
        xs, ys = bev_grid(self._near_range(cam), cfg)
        score = self._pooled_score(view, use, cam, inp.ego, xs, ys)
        bounds = find_boundaries(score, xs, ys, cfg)
        left, right = bounds["left"], bounds["right"]
        if fallback and cfg.calibrate_height and left is not None and right is not None:
            width = float(left.coefs[0] - right.coefs[0])
            if 0.5 * cfg.min_lane_width_m <= width <= 2.0 * cfg.max_lane_width_m:
                k = float(np.clip(cfg.lane_width_m / width, 0.5, 2.0))
                left, right = left.scaled(k), right.scaled(k)
                diag["height_calibration_scale"] = round(k, 4)
        centre = lane_centre(left, right, cfg)
        speed = float(cfg.speed_mps if cfg.speed_mps is not None else inp.ego.speed)
        traj = drive_lane(centre, speed, cfg)
        for side, b in (("left", left), ("right", right)):
            diag[side] = None if b is None else {
                "offset_m": round(float(b.coefs[0]), 3), "heading": round(float(b.coefs[1]), 5),
                "curvature": round(float(2 * b.coefs[2]), 6), "support_m": round(b.support, 1),
                "x_range_m": [round(v, 1) for v in b.x_range]}
        diag["centre"] = {"offset_m": round(centre.offset, 3), "heading_rad": round(centre.heading, 5),
                          "curvature": round(centre.curvature, 6), "source": centre.source,
                          "curvature_sigma": round(centre.curvature_sigma, 6)
                          if math.isfinite(centre.curvature_sigma) else None}
        diag["speed_mps"] = round(speed, 3)
        what = {"both": "both boundaries", "left": "the left boundary only (nominal width)",
                "right": "the right boundary only (nominal width)", "none": "no boundary: keeping straight"}
        text = (f"lane_keep: {what[centre.source]}; lane centre {centre.offset:+.2f} m, heading "
                f"{math.degrees(centre.heading):+.1f} deg, curvature {centre.curvature:+.4f} 1/m; "
                f"{speed:.1f} m/s for {FUTURE_STEPS * DT:.1f} s")
        return Prediction(trajectories=traj[None], reasoning=[text], meta=diag)
