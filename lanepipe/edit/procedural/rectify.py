"""The procedural painter on an f-theta (fisheye) camera: analyse and paint a rectified pinhole view, map back.

The painter's geometry (ground homography, bird's-eye view, row scales) is a pinhole's. A clip whose calibration is
an f-theta camera (PhysicalAI-AV: ``meta["camera"]`` an :class:`~lanepipe.geometry.ftheta.FThetaCamera` or its
dict) is therefore resampled into a *level pinhole at the same camera centre* (:func:`level_pinhole`: the f-theta's
optical axis for yaw and pitch, no roll, the f-theta's focal length at the image centre so that the far road keeps
its resolution, a field of view covering the f-theta's up to ``max_half_fov_deg`` across); both cameras share the
centre, so the resampling is a rotation plus the lens mapping and the road plane is the same in both. The painter
runs on that view with the pinhole as its known camera; the edited pixels (those it changed, and only those) are
mapped back into the f-theta frames, the painted polylines are moved into f-theta pixels, and the diagnostics
record both cameras. The road-plane edit (:class:`~lanepipe.edit.procedural.params.RoadGeometry`) is in the
pinhole's ego frame, which is the f-theta's ground point: the other cameras of the rig get the same lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.edit.procedural.params import PaintedLine
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.types import Clip, RoadMasks

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


def ftheta_from_meta(meta: dict[str, Any]) -> FThetaCamera | None:
    """The clip's f-theta camera (``meta["camera"]``, an :class:`FThetaCamera` or its dict), or None."""
    raw = meta.get("camera")
    if isinstance(raw, FThetaCamera):
        return raw
    if isinstance(raw, dict) and raw.get("model") == "ftheta":
        return FThetaCamera.from_dict(raw)
    return None


def level_pinhole(cam: FThetaCamera, max_half_fov_deg: float = 50.0) -> PinholeCamera:
    """A pinhole at ``cam``'s centre looking along its optical axis (no roll), with ``cam``'s focal length at the
    image centre, sized to cover ``cam``'s image up to ``max_half_fov_deg`` either side (and all of its height
    within that)."""
    axis = cam.rotation_rig_from_camera[:, 2]
    yaw = math.atan2(float(axis[1]), float(axis[0]))
    pitch = -math.asin(float(np.clip(axis[2], -1.0, 1.0)))
    f = float(cam.fw_poly[1]) * cam.scale_xy[0]
    fy = float(cam.fw_poly[1]) * cam.scale_xy[1]
    # the f-theta image's half-extent in angle along u and v, from its principal point
    cx, cy = cam.cx * cam.scale_xy[0], cam.cy * cam.scale_xy[1]
    lim = math.radians(max_half_fov_deg)

    def ang(px: float, scale: float) -> float:
        return float(np.polynomial.polynomial.polyval(px / scale, np.asarray(cam.bw_poly)))

    left, right = min(ang(cx, cam.scale_xy[0]), lim), min(ang(cam.width - cx, cam.scale_xy[0]), lim)
    top, bottom = min(ang(cy, cam.scale_xy[1]), lim), min(ang(cam.height - cy, cam.scale_xy[1]), lim)
    pcx, pcy = f * math.tan(left), fy * math.tan(top)
    width = max(8, round(pcx + f * math.tan(right)))
    height = max(8, round(pcy + fy * math.tan(bottom)))
    return PinholeCamera(width=width, height=height, fx=f, fy=fy, cx=pcx, cy=pcy,
                         mount_height_m=float(cam.centre_ego[2]), pitch_rad=pitch, yaw_rad=yaw)


def _maps(src: Any, dst: Any) -> tuple[F32, F32]:
    """``(H_dst, W_dst)`` float32 maps: for each pixel of ``dst`` its position in ``src`` (NaN → -1: outside).

    Both cameras share their centre: a ray through a ``dst`` pixel is pushed 10 m out and projected by ``src``.
    """
    vv, uu = np.mgrid[0: dst.height, 0: dst.width].astype(np.float64)
    rays = dst.pixel_rays_ego(uu, vv)
    rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    px, ok = src.project(src.centre_ego[None, :] + 10.0 * rays)
    px[~ok] = -1.0
    return (px[:, 0].reshape(dst.height, dst.width).astype(np.float32),
            px[:, 1].reshape(dst.height, dst.width).astype(np.float32))


@dataclass(frozen=True)
class Rectified:
    """An f-theta clip resampled into :func:`level_pinhole`, and the maps both ways."""

    ftheta: FThetaCamera
    pinhole: PinholeCamera
    clip: Clip  # the pinhole view (meta["camera"] = the pinhole)
    masks: RoadMasks  # the pinhole view's road masks (and hood)
    to_pinhole: tuple[F32, F32]  # per pinhole pixel: its f-theta position
    to_ftheta: tuple[F32, F32]  # per f-theta pixel: its pinhole position
    covered: Bool  # (H, W) f-theta pixels the pinhole view contains


def rectify(clip: Clip, masks: RoadMasks, cam: FThetaCamera, max_half_fov_deg: float = 50.0) -> Rectified:
    """Resample ``clip`` (``(T, H, W, 3)``) and its ``masks`` into :func:`level_pinhole` of ``cam``."""
    if (cam.width, cam.height) != (clip.width, clip.height):
        cam = cam.rescaled(clip.width, clip.height)
    pin = level_pinhole(cam, max_half_fov_deg)
    mu, mv = _maps(cam, pin)
    bu, bv = _maps(pin, cam)
    covered = (bu >= 0) & (bu <= pin.width - 1) & (bv >= 0) & (bv <= pin.height - 1)
    frames = np.stack([np.asarray(cv2.remap(f, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                                  dtype=np.uint8) for f in clip.frames])
    inside = cv2.remap(np.ones(clip.frames.shape[1:3], np.uint8), mu, mv, cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    road = np.stack([(cv2.remap(m.astype(np.uint8), mu, mv, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0) > 0) & inside for m in masks.masks])
    hood_top = None
    if masks.hood_top is not None:
        rows = np.arange(clip.height)[:, None]
        hood = (rows >= np.asarray(masks.hood_top)[None, :]).astype(np.uint8)
        hood_p = cv2.remap(hood, mu, mv, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        first = np.where(hood_p.any(axis=0), hood_p.argmax(axis=0), pin.height)
        # the hood is the bottom of the picture: every row below its first one is hood
        hood_top = first.astype(np.int32)
        road &= np.arange(pin.height)[None, :, None] < hood_top[None, None, :]
    rclip = replace(clip, frames=frames, meta={**clip.meta, "camera": pin})
    return Rectified(ftheta=cam, pinhole=pin, clip=rclip, masks=RoadMasks(masks=road, backend=masks.backend,
                                                                          hood_top=hood_top),
                     to_pinhole=(mu, mv), to_ftheta=(bu, bv), covered=covered)


def back_to_ftheta(rect: Rectified, original: U8, edited_pinhole: U8) -> U8:
    """The f-theta frames with the pinhole view's edit: pixels the painter changed (in the pinhole view, spread by
    the resampling) take the resampled edit; every other pixel keeps its original value."""
    bu, bv = rect.to_ftheta
    out = original.copy()
    for t in range(len(original)):
        changed = (edited_pinhole[t] != rect.clip.frames[t]).any(axis=-1).astype(np.float32)
        near = cv2.remap(changed, bu, bv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        near &= rect.covered
        back = cv2.remap(edited_pinhole[t], bu, bv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[t][near] = back[near]
    return out


def lines_to_ftheta(rect: Rectified, lanes: list[list[PaintedLine]]) -> list[list[PaintedLine]]:
    """The painted polylines moved from pinhole pixels to f-theta pixels (through their rays)."""
    pin, cam = rect.pinhole, rect.ftheta
    out: list[list[PaintedLine]] = []
    for frame in lanes:
        moved = []
        for ln in frame:
            pts = np.asarray(ln.points, dtype=np.float64).reshape(-1, 2)
            if len(pts):
                rays = pin.pixel_rays_ego(pts[:, 0], pts[:, 1])
                rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
                px, ok = cam.project(cam.centre_ego[None, :] + 10.0 * rays)
                pts = px[ok]
            moved.append(replace(ln, points=pts, visible=bool(ln.visible and len(pts) >= 2)))
        out.append(moved)
    return out
