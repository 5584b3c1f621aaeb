"""Trajectory overlay videos: predicted and ground-truth paths projected into the camera, HUD, BEV inset.

Coordinates: trajectories are ``(K, 64, 3) float`` in the ego frame at t0 (x forward, y left, z up, metres;
waypoint i at ``t0 + (i + 1) * 0.1`` s, DESIGN.md §5). Frames are ``(T, H, W, 3) uint8`` RGB; ``t_frames`` are
the frames' times in seconds relative to t0 (negative before t0).

Which ego frame a frame is drawn in:

* With ``ego_poses`` ``(T, 4, 4)`` — the pose of the ego at each frame written in the t0 ego frame
  (``p_t0 = pose @ p_frame``, homogeneous) — the t0-frame paths are moved into each frame's own ego frame
  before projection, so the drawn path stays fixed to the road as the vehicle moves.
* Without it every frame is drawn as if the camera were where it was at t0. For a frame at time t this is
  an approximation: the path always starts at the vehicle, while on the road it starts at the t0 position,
  ``speed * |t|`` metres ahead of the vehicle before t0 (behind it after t0), so every waypoint is drawn that
  much too near (too far after t0), and on a curve slightly sideways; at 8 fps and 15 m/s that is about
  1.9 m per frame of distance from t0. The overlay is then a picture of the prediction, not a
  registration of it onto the road; pass ``ego_poses`` when the ego motion is known.
* The BEV inset always shows the t0 ego frame (it is a plot of the prediction, not of the moving vehicle).

Drawing: polylines are anti-aliased (``cv2.LINE_AA``, 1/16 px sub-pixel precision) with a dark outline;
segments crossing the camera's near plane (0.5 m depth) are cut at the plane, points behind it are not
drawn. The path starts at the ego origin (t0 position) and is revealed progressively (see ``reveal``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.camera import NEAR_PLANE_M, PinholeCamera
from lanepipe.viz.bev import GT_COLOR, RGB, BevCanvas, as_samples, default_colors, truncate_track

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Reveal = Literal["clip", "time", "none"]

HORIZON_S = 6.4  # 64 waypoints at 10 Hz
OUTLINE: RGB = (15, 15, 15)
_NEAR_EPS = 1e-6
_PX_LIMIT = 1e6  # pixel coordinates are clamped to this before cv2's fixed-point conversion


# ----------------------------------------------------------------------------------------------- geometry
def camera_for_size(camera: Any, width: int, height: int) -> Any:
    """``camera`` for images of ``width`` x ``height`` (frames resized, i.e. stretched, from the camera's size).

    A PinholeCamera is rescaled with pixel centres kept aligned (``c' = (c + 0.5) * s - 0.5``); a camera with a
    ``rescaled(width, height)`` method (both built-in models) or a ``resized(width, height)`` method (user
    camera models) uses it; any other camera must already match.

    Raises:
        InputError: a camera without either whose ``width``/``height`` differ from the frames'.
    """
    cw, ch = getattr(camera, "width", width), getattr(camera, "height", height)
    if (cw, ch) == (width, height):
        return camera
    for method in ("rescaled", "resized"):  # the built-in models' name, and the one user cameras have long used
        if callable(getattr(camera, method, None)):
            return getattr(camera, method)(width, height)
    raise InputError("camera", f"a camera for {width}x{height} frames", f"one for {cw}x{ch}",
                     "pass the camera of the frames' resolution")


def to_frame(points_t0: F64, pose: F64 | None) -> F64:
    """Move ``(N, 3)`` t0-ego-frame points into a frame whose pose in the t0 frame is ``pose`` ``(4, 4)``."""
    if pose is None:
        return points_t0
    rot, trans = pose[:3, :3], pose[:3, 3]
    out: F64 = (points_t0 - trans) @ rot  # R^T (p - t), row-wise
    return out


def _depths(camera: Any, pts: F64) -> F64 | None:
    if hasattr(camera, "ego_to_camera"):
        d: F64 = np.asarray(camera.ego_to_camera(pts), dtype=np.float64)[:, 2]
        return d
    return None


def _subdivide(pts: F64, n: int) -> F64:
    """Insert ``n - 1`` evenly spaced points inside every segment of ``pts (N, 3)``."""
    if n <= 1 or len(pts) < 2:
        return pts
    f = np.arange(n, dtype=np.float64)[None, :, None] / n
    inner = (pts[:-1, None, :] + f * (pts[1:] - pts[:-1])[:, None, :]).reshape(-1, pts.shape[1])
    out: F64 = np.concatenate([inner, pts[-1:]], axis=0)
    return out


def project_polyline(camera: Any, points_ego: Any, near_m: float = NEAR_PLANE_M,
                     subdivide: int | None = None) -> list[F64]:
    """Project an ego-frame polyline, cutting it at the camera's near plane.

    Args:
        camera: a camera with ``project(points_ego (N, 3)) -> (pixels (N, 2), valid (N,))``; if it also has
            ``ego_to_camera`` (PinholeCamera), segments crossing the near plane are cut exactly at it;
            otherwise points ``project`` marks invalid are dropped and the polyline split there.
        points_ego: ``(N, 3) float`` polyline in the camera's ego frame (metres).
        near_m: near-plane depth in metres (the camera's own is 0.5 m).
        subdivide: split every segment into this many before projecting, so lenses that bend straight lines
            (f-theta) draw curves; None = 1 for a PinholeCamera (lines stay lines), 4 otherwise.

    Returns:
        Runs of consecutive visible points, each ``(M, 2) float64`` ``(u, v)`` pixels with M >= 2
        (pixels may lie outside the image; drawing clips them).
    """
    pts = np.asarray(points_ego, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError("polyline", "points (N, 3) float ego metres", f"shape {pts.shape}")
    if len(pts) < 2:
        return []
    n_sub = subdivide if subdivide is not None else (1 if isinstance(camera, PinholeCamera) else 4)
    pts = _subdivide(pts, n_sub)
    depth = _depths(camera, pts)
    if depth is None:
        px, valid = camera.project(pts)
        return _runs(np.asarray(px, dtype=np.float64), np.asarray(valid, dtype=bool))
    near = near_m + _NEAR_EPS
    front = depth >= near
    if front.all():
        px, valid = camera.project(pts)
        return _runs(np.asarray(px, dtype=np.float64), np.asarray(valid, dtype=bool))
    # Build the clipped 3D polyline: keep front points, insert the near-plane crossing of every segment
    # that crosses it; a NaN row separates runs.
    out: list[F64] = []
    nan = np.full(3, np.nan)
    for i in range(len(pts)):
        if i > 0 and front[i] != front[i - 1]:
            t = (near - depth[i - 1]) / (depth[i] - depth[i - 1])
            out.append(pts[i - 1] + t * (pts[i] - pts[i - 1]))
            if not front[i]:
                out.append(nan)
        if front[i]:
            out.append(pts[i])
    if not out:
        return []
    clipped = np.stack(out)
    ok = np.isfinite(clipped).all(axis=1)
    px = np.full((len(clipped), 2), np.nan)
    valid = np.zeros(len(clipped), dtype=bool)
    if ok.any():
        p, v = camera.project(clipped[ok])
        px[ok], valid[ok] = p, v
    return _runs(px, valid)


def _runs(px: F64, valid: npt.NDArray[np.bool_]) -> list[F64]:
    runs: list[F64] = []
    start = None
    for i, v in enumerate([*valid.tolist(), False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start >= 2:
                runs.append(px[start:i])
            start = None
    return runs


def reveal_horizons(t_frames: F64, mode: Reveal = "clip", horizon_s: float = HORIZON_S) -> F64:
    """Seconds of future path shown at each frame, ``(T,) float64`` in ``[0, horizon_s]``.

    * ``"clip"``: grows linearly from 0 at the first frame to the whole horizon at the last frame, wherever t0
      lies in the clip (a single frame shows everything).
    * ``"time"``: waypoints up to the frame's own time after t0 (nothing before t0).
    * ``"none"``: the whole path in every frame.
    """
    t = np.asarray(t_frames, dtype=np.float64)
    if mode == "none" or t.size <= 1:
        return np.full(t.shape, horizon_s)
    if mode == "clip":
        span = float(t[-1] - t[0])
        frac = (t - t[0]) / span if span > 0 else np.ones_like(t)
        out: F64 = np.clip(frac, 0.0, 1.0) * horizon_s
        return out
    if mode == "time":
        res: F64 = np.clip(t, 0.0, horizon_s)
        return res
    raise InputError("reveal", "'clip', 'time' or 'none'", repr(mode))


# ----------------------------------------------------------------------------------------------- drawing
def _draw_runs(img: U8, runs: list[F64], color: RGB, thickness: int, outline: bool = True) -> None:
    if not runs:
        return
    polys = [np.round(np.clip(r, -_PX_LIMIT, _PX_LIMIT) * 16).astype(np.int32).reshape(-1, 1, 2) for r in runs]
    if outline:
        cv2.polylines(img, polys, False, OUTLINE, thickness + 2, cv2.LINE_AA, shift=4)
    cv2.polylines(img, polys, False, color, thickness, cv2.LINE_AA, shift=4)


def _shade(img: U8, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.55) -> None:
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[:] = (roi.astype(np.uint16) * round((1 - alpha) * 256) >> 8).astype(np.uint8)


def _text_block(img: U8, lines: Sequence[tuple[str, RGB | None]], x: int, y: int, scale: float,
                anchor: Literal["top-left", "bottom-left", "top-centre"] = "top-left") -> None:
    """Lines of text on a shaded box; an entry with a colour gets a swatch (legend)."""
    if not lines:
        return
    font, th = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 1.6))
    sizes = [cv2.getTextSize(t, font, scale, th) for t, _ in lines]
    line_h = max(s[0][1] + s[1] for s in sizes) + max(4, round(8 * scale))
    sw = round(28 * scale) if any(c is not None for _, c in lines) else 0
    pad = max(4, round(8 * scale))
    box_w = max(s[0][0] for s in sizes) + sw + 2 * pad
    box_h = line_h * len(lines) + pad
    if anchor == "bottom-left":
        y -= box_h
    elif anchor == "top-centre":
        x -= box_w // 2
    _shade(img, x, y, x + box_w, y + box_h)
    for i, ((text, color), ((_, tht), _)) in enumerate(zip(lines, sizes, strict=True)):
        base = y + pad // 2 + (i + 1) * line_h - (line_h - tht) // 2
        tx = x + pad
        if color is not None:
            cy = base - tht // 2
            cv2.line(img, (tx, cy), (tx + sw - pad, cy), OUTLINE, max(3, th + 3), cv2.LINE_AA)
            cv2.line(img, (tx, cy), (tx + sw - pad, cy), color, max(2, th + 1), cv2.LINE_AA)
            tx += sw
        cv2.putText(img, text, (tx, base), font, scale, (240, 240, 240), th, cv2.LINE_AA)


def _as_poses(ego_poses: Any | None, t: int) -> F64 | None:
    if ego_poses is None:
        return None
    p = np.asarray(ego_poses, dtype=np.float64)
    if p.shape != (t, 4, 4) or not np.isfinite(p).all():
        raise InputError("ego_poses", f"({t}, 4, 4) finite float poses in the t0 ego frame", f"shape {p.shape}")
    return p


def _check_frames(frames: Any, name: str) -> U8:
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or f.shape[0] < 1:
        raise InputError(name, "frames (T, H, W, 3) uint8 RGB with T >= 1", f"{f.shape} {f.dtype}")
    return f


@dataclasses.dataclass(frozen=True)
class _Layout:
    line_px: int
    text_scale: float
    margin: int
    bev_size: int


def _layout(h: int, w: int, bev_size: int) -> _Layout:
    bev = min(bev_size, h // 2, w // 3)
    return _Layout(line_px=max(2, round(w / 320)), text_scale=max(0.3, min(h, w * 9 / 16) / 900),
                   margin=max(4, round(h / 60)), bev_size=bev if bev >= 64 else 0)


def overlay_video(frames: Any, camera: Any, t_frames: Any, trajectories: Mapping[str, Any],
                  gt: Any | None = None, history: Any | None = None, hud: Mapping[str, str] | None = None,
                  colors: Mapping[str, RGB] | None = None, *, ego_poses: Any | None = None,
                  reveal: Reveal = "clip", bev_size: int = 250, bev_trajectories: Mapping[str, Any] | None = None,
                  bev_range_m: float | None = None, title: str | None = None, waypoint_dots_s: float = 1.0,
                  workers: int = 1) -> U8:
    """Draw trajectories, a HUD, a legend and a BEV inset on every frame.

    Args:
        frames: ``(T, H, W, 3) uint8`` RGB frames (not modified).
        camera: camera with ``project(points_ego (N, 3))``; one of another resolution is resized to the frames'
            (see :func:`camera_for_size`).
        t_frames: ``(T,) float`` frame times in seconds relative to t0.
        trajectories: ``{label: (K, 64, 3) float}`` predicted waypoints, t0 ego frame, 10 Hz.
        gt: ``(64, 3) float`` ground-truth future (t0 ego frame) or None; drawn red.
        history: ``(16, 3) float`` ego history (t0 ego frame), shown in the BEV inset only (it lies behind the
            camera), or None.
        hud: ``{name: value}`` lines for the top-left HUD (e.g. minADE, clip, camera), in order.
        colors: ``{label: (r, g, b)}``; default cyan for the first label, orange for the second.
        ego_poses: ``(T, 4, 4) float`` ego pose per frame in the t0 ego frame, or None (see the module notes
            for the approximation made without it).
        reveal: ``"clip"`` (path grows over the clip), ``"time"`` (up to each frame's time) or ``"none"``.
        bev_size: BEV inset side in pixels (capped at H/2 and W/3; no inset under 64 px).
        bev_trajectories: what the inset shows (default ``trajectories``), e.g. original and edited together.
        bev_range_m: BEV forward range in metres (None = automatic).
        title: optional caption at the top centre.
        waypoint_dots_s: mark the path every this many seconds (0 = no dots).
        workers: threads drawing frames (OpenCV releases the GIL while drawing).

    Returns:
        ``(T, H, W, 3) uint8`` RGB frames with the overlay.

    Raises:
        InputError: arrays of the wrong shape, or ``len(t_frames) != T``.
    """
    f = _check_frames(frames, "overlay frames")
    t, h, w, _ = f.shape
    times = np.asarray(t_frames, dtype=np.float64).reshape(-1)
    if times.shape != (t,) or not np.isfinite(times).all():
        raise InputError("t_frames", f"({t},) finite frame times in seconds relative to t0", f"shape {times.shape}")
    cam = camera_for_size(camera, w, h)
    preds = {lab: as_samples(arr, f"trajectories[{lab!r}]") for lab, arr in trajectories.items()}
    bev_preds = preds if bev_trajectories is None else {
        lab: as_samples(arr, f"bev_trajectories[{lab!r}]") for lab, arr in bev_trajectories.items()}
    gt_arr = None if gt is None else np.asarray(gt, dtype=np.float64)
    if gt_arr is not None and (gt_arr.ndim != 2 or gt_arr.shape[1] != 3):
        raise InputError("gt", "(64, 3) float ground-truth waypoints", f"shape {gt_arr.shape}")
    poses = _as_poses(ego_poses, t)
    palette = default_colors(list(dict.fromkeys([*bev_preds, *preds]))) | dict(colors or {})
    lay = _layout(h, w, bev_size)
    horizons = reveal_horizons(times, reveal)
    canvas = (BevCanvas(history, gt_arr, list(bev_preds), palette, lay.bev_size, bev_range_m,
                        extent_tracks=list(bev_preds.values())) if lay.bev_size else None)
    hud_lines: list[tuple[str, RGB | None]] = [(f"{k}: {v}", None) for k, v in (hud or {}).items()]
    legend: list[tuple[str, RGB | None]] = [(lab, palette[lab]) for lab in preds]
    if gt_arr is not None:
        legend.append(("ground truth", GT_COLOR))
    out = f.copy()

    def draw(i: int) -> None:
        img = out[i]
        pose = None if poses is None else poses[i]
        horizon = float(horizons[i])
        for lab, samples in preds.items():
            for k, traj in enumerate(samples):
                track = to_frame(truncate_track(traj, horizon), pose)
                _draw_runs(img, project_polyline(cam, track), palette[lab], lay.line_px + (1 if k == 0 else 0))
            if waypoint_dots_s > 0:
                step = max(1, round(waypoint_dots_s / 0.1))
                idx = np.arange(step - 1, samples.shape[1], step)
                idx = idx[(idx + 1) * 0.1 <= horizon + 1e-9]
                if idx.size:
                    pts = to_frame(samples[0, idx], pose)
                    depth = _depths(cam, pts)
                    px, valid = cam.project(pts)
                    if depth is not None:
                        valid &= depth >= NEAR_PLANE_M
                    r = lay.line_px + 2
                    for u, v in np.asarray(px)[np.asarray(valid)]:
                        if -r <= u < w + r and -r <= v < h + r:
                            c = (round(u * 16), round(v * 16))
                            cv2.circle(img, c, r * 16, OUTLINE, -1, cv2.LINE_AA, shift=4)
                            cv2.circle(img, c, (r - 1) * 16, palette[lab], -1, cv2.LINE_AA, shift=4)
        if gt_arr is not None:  # on top of the predictions, thinner: both stay visible
            track = to_frame(truncate_track(gt_arr, horizon), pose)
            _draw_runs(img, project_polyline(cam, track), GT_COLOR, max(1, lay.line_px - 1), outline=False)
        m = lay.margin
        _text_block(img, hud_lines, m, m, lay.text_scale)
        _text_block(img, legend, m, h - m, lay.text_scale, anchor="bottom-left")
        if title:
            _text_block(img, [(title, None)], w // 2, m, lay.text_scale * 1.2, anchor="top-centre")
        if canvas is not None:
            inset = canvas.draw(bev_preds, horizon)
            s = inset.shape[0]
            img[m: m + s, w - m - s: w - m] = inset

    if workers > 1 and t > 1:
        with ThreadPoolExecutor(max_workers=min(workers, t)) as pool:
            list(pool.map(draw, range(t)))
    else:
        for i in range(t):
            draw(i)
    return out


def _even(x: float) -> int:
    return max(2, math.floor(x / 2.0 + 0.5) * 2)


def _resize_all(frames: U8, width: int, height: int) -> U8:
    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    interp = cv2.INTER_AREA if width < frames.shape[2] else cv2.INTER_LINEAR
    for i, fr in enumerate(frames):
        out[i] = cv2.resize(fr, (width, height), interpolation=interp)
    return out


def _trajectories_of(pred: Any) -> Any:
    return getattr(pred, "trajectories", pred)


def comparison_video(orig_frames: Any, orig_pred: Any, edited_frames: Any, edited_pred: Any, camera: Any,
                     t_frames: Any, gt: Any | None = None, history: Any | None = None,
                     hud: Mapping[str, str] | None = None, *, titles: tuple[str, str] = ("original", "edited"),
                     labels: tuple[str, str] = ("original", "edited"), colors: Mapping[str, RGB] | None = None,
                     scale: float = 1.0, ego_poses: Any | None = None, reveal: Reveal = "clip",
                     bev_size: int = 250, workers: int = 1) -> U8:
    """Side by side: the original clip with its prediction | the edited clip with its prediction.

    Both panels are resized to the original frames' size times ``scale`` (rounded to even numbers, so
    H.264 yuv420p can encode the result) before drawing, so text and lines keep their size. Each panel
    draws its own prediction; both BEV insets show both predictions (original cyan, edited orange).

    Args:
        orig_frames: ``(T, H, W, 3) uint8`` original RGB frames.
        orig_pred: ``(K, 64, 3) float`` prediction on the original clip (or a ``Prediction``).
        edited_frames: ``(T, H', W', 3) uint8`` edited frames (any size; resized to the panel size).
        edited_pred: ``(K, 64, 3) float`` prediction on the edited clip (or a ``Prediction``).
        camera: camera of the original frames (resized to the panel size, see :func:`camera_for_size`).
        t_frames, gt, history, ego_poses, reveal, bev_size, workers: as in :func:`overlay_video`.
        hud: HUD lines drawn on both panels.
        titles: captions of the left and right panels.
        labels: legend labels of the two predictions.
        colors: ``{label: (r, g, b)}`` overrides.
        scale: panel size relative to the original frames (e.g. 0.5 for a 2W x H output at half size).

    Returns:
        ``(T, Hs, 2 Ws, 3) uint8`` with ``Hs, Ws`` the panel size.

    Raises:
        InputError: different frame counts, bad shapes, or ``scale <= 0``.
    """
    a = _check_frames(orig_frames, "original frames")
    b = _check_frames(edited_frames, "edited frames")
    if a.shape[0] != b.shape[0]:
        raise InputError("comparison_video", "the same number of original and edited frames",
                         f"{a.shape[0]} and {b.shape[0]}")
    if not scale > 0:
        raise InputError("comparison_video", "scale > 0", str(scale))
    if labels[0] == labels[1]:
        raise InputError("comparison_video", "two different prediction labels", repr(labels))
    ph, pw = _even(a.shape[1] * scale), _even(a.shape[2] * scale)
    a, b = _resize_all(a, pw, ph), _resize_all(b, pw, ph)
    pa, pb = as_samples(_trajectories_of(orig_pred), "orig_pred"), as_samples(_trajectories_of(edited_pred),
                                                                             "edited_pred")
    both = {labels[0]: pa, labels[1]: pb}
    palette = default_colors(list(labels)) | dict(colors or {})
    cam = camera_for_size(camera, a.shape[2], a.shape[1])
    common: dict[str, Any] = {"gt": gt, "history": history, "hud": hud, "colors": palette, "ego_poses": ego_poses,
                              "reveal": reveal, "bev_size": bev_size, "bev_trajectories": both, "workers": workers}
    left = overlay_video(a, cam, t_frames, {labels[0]: pa}, title=titles[0], **common)
    right = overlay_video(b, cam, t_frames, {labels[1]: pb}, title=titles[1], **common)
    out = np.concatenate([left, right], axis=2)
    out[:, :, pw - 1: pw + 1] = 255  # a 2-pixel divider
    return out
