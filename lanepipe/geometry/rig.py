"""A camera rig on the ego vehicle: several calibrated cameras in one rig frame, the ego body that hides the ground
from them, and per-pixel ground coordinates for any camera model.

Rig frame: x forward, y left, z up, metres, origin on the ground (for the synthetic sample: under the front camera;
for PhysicalAI-AV: under the rear axle). A :class:`~lanepipe.geometry.camera.PinholeCamera` has its own ego frame
(origin on the ground under the camera, x along the vehicle): a :class:`RigCamera` puts it into the rig frame with a
ground offset ``(ox, oy)``. An :class:`~lanepipe.geometry.ftheta.FThetaCamera` is already posed in the rig frame
(its extrinsics), so its offset is ``(0, 0)``. All functions are pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ftheta import FThetaCamera

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

CameraModel = PinholeCamera | FThetaCamera


def camera_model_from_dict(d: dict[str, Any]) -> CameraModel:
    """A pinhole or f-theta model from its ``to_dict()`` (``"model"`` says which; pinhole when absent)."""
    model = d.get("model", "pinhole")
    if model == "pinhole":
        return PinholeCamera.from_dict(d)
    if model == "ftheta":
        return FThetaCamera.from_dict(d)
    raise InputError("camera dict", "model 'pinhole' or 'ftheta'", repr(model))


@dataclass(frozen=True)
class RigCamera:
    """One camera of the rig.

    Attributes:
        name: camera name (``front_wide``, ``camera_cross_left_120fov`` …).
        model: its calibration.
        offset: ``(ox, oy)`` metres: the model's own ego-frame origin in the rig frame (a pinhole's ground point
            under the camera; ``(0, 0)`` for f-theta, whose extrinsics are in the rig frame already).
    """

    name: str
    model: CameraModel
    offset: tuple[float, float] = (0.0, 0.0)

    @property
    def width(self) -> int:
        return int(self.model.width)

    @property
    def height(self) -> int:
        return int(self.model.height)

    @property
    def centre_rig(self) -> F64:
        """``(3,)`` camera centre in the rig frame."""
        c = np.asarray(self.model.centre_ego, dtype=np.float64).copy()
        c[:2] += self.offset
        return c

    @property
    def axis_rig(self) -> F64:
        """``(3,)`` unit optical axis in the rig frame."""
        d = self.model.pixel_rays_ego([self.model.cx], [self.model.cy])[0]
        out: F64 = d / np.linalg.norm(d)
        return out

    @property
    def front_facing(self) -> bool:
        """True when the optical axis points within 45 deg of straight ahead (seen from above): a lane verifier
        that reads front-camera images applies."""
        a = self.axis_rig
        return bool(a[0] > np.cos(np.radians(45.0)) * np.hypot(a[0], a[1]))

    def project(self, points_rig: Any) -> tuple[F64, Bool]:
        """Rig-frame points ``(N, 3)`` → pixels ``(N, 2)`` (NaN where not valid) and ``valid (N,)``."""
        p = np.array(points_rig, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise InputError(f"camera {self.name}", "points of shape (N, 3)", f"shape {p.shape}")
        p[:, :2] -= self.offset
        return self.model.project(p)

    def pixel_to_ground(self, u: Any, v: Any) -> tuple[F64, Bool]:
        """Rays through pixels meet the ground ``z = 0``: rig-frame points ``(N, 3)`` and ``valid (N,)``."""
        pts, ok = self.model.pixel_to_ground(u, v)
        pts = pts.copy()
        pts[:, :2] += self.offset
        return pts, ok

    def rescaled(self, width: int, height: int) -> RigCamera:
        """The same camera for its image resized to ``width`` x ``height``."""
        return RigCamera(self.name, self.model.rescaled(width, height), self.offset)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "offset": list(self.offset), "camera": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RigCamera:
        try:
            off = tuple(float(v) for v in d.get("offset", (0.0, 0.0)))
            return cls(str(d["name"]), camera_model_from_dict(dict(d["camera"])), (off[0], off[1]))
        except (KeyError, TypeError, IndexError) as e:
            raise InputError("rig camera", "a dict with name, camera and offset (x, y)", f"{d!r:.200} ({e})") from None


@dataclass(frozen=True)
class EgoBody:
    """The ego vehicle's lower body as a box in the rig frame: ``x_min … x_max``, ``|y| <= half_width``,
    ``0 <= z <= top_m``.

    Cameras sit above the lower body (on the windscreen, the roof, the mirrors), so a ray from a camera to the ground
    that passes through this box is hidden by the hood, the doors or the bumper. The top is the hood / belt line, not
    the roof: a bounding box to the roof would contain the cameras themselves.
    """

    x_min: float
    x_max: float
    half_width: float
    top_m: float

    @classmethod
    def from_dimensions(cls, length: float, width: float, rear_axle_to_centre: float,
                        top_m: float = 0.75) -> EgoBody:
        """From PhysicalAI-AV's ``vehicle_dimensions`` (rig origin at the rear axle; the box centre
        ``rear_axle_to_bbox_center`` ahead of it). ``top_m``: hood height (a passenger car's hood front and belt
        line are about 0.7-0.8 m above the road)."""
        if not (length > 0 and width > 0 and top_m > 0):
            raise InputError("vehicle dimensions", "length, width and top > 0",
                             f"length {length}, width {width}, top {top_m}")
        return cls(rear_axle_to_centre - length / 2, rear_axle_to_centre + length / 2, width / 2, top_m)

    def to_dict(self) -> dict[str, float]:
        return {"x_min": self.x_min, "x_max": self.x_max, "half_width": self.half_width, "top_m": self.top_m}

    def hides(self, origin: F64, targets: F64) -> Bool:
        """``(N,)`` True where the segment ``origin (3,) → targets (N, 3)`` passes through the box (slab test).

        The box's top is lowered to just under ``origin`` when the camera would be inside it."""
        lo = np.array([self.x_min, -self.half_width, -1.0])
        hi = np.array([self.x_max, self.half_width, min(self.top_m, float(origin[2]) - 0.02)])
        d = targets - origin[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(d == 0.0, 1e-300, d)
        t1 = (lo[None, :] - origin[None, :]) * inv
        t2 = (hi[None, :] - origin[None, :]) * inv
        tn = np.minimum(t1, t2).max(axis=1)
        tf = np.maximum(t1, t2).min(axis=1)
        out: Bool = (tn <= tf) & (tf > 1e-6) & (tn < 1.0 - 1e-6)
        return out


@dataclass(frozen=True)
class PixelGround:
    """Where every pixel of one camera meets the ground, in the rig frame.

    Attributes:
        x: ``(H, W) float32`` forward coordinate (rig metres); NaN where the ray misses the ground, beyond
            ``max_range_m`` or hidden by the ego body.
        y: ``(H, W) float32`` lateral coordinate (+ = left); NaN where ``x`` is.
        lat_fp: ``(H, W) float32`` extent of the pixel across the road (metres, along rig y).
        lon_fp: ``(H, W) float32`` extent of the pixel along the road (metres, along rig x).
        hidden: ``(H, W) bool`` ground pixels hidden by the ego body.
    """

    x: F32
    y: F32
    lat_fp: F32
    lon_fp: F32
    hidden: Bool


def pixel_ground(cam: RigCamera, max_range_m: float = 80.0, body: EgoBody | None = None) -> PixelGround:
    """Ground coordinates and footprints of every pixel of ``cam`` (any model); see :class:`PixelGround`.

    Footprints are the summed absolute image derivatives (one pixel step in ``u`` and in ``v``)."""
    h, w = cam.height, cam.width
    vv, uu = np.mgrid[0:h, 0:w]
    pts, ok = cam.pixel_to_ground(uu.ravel().astype(np.float64), vv.ravel().astype(np.float64))
    c = cam.centre_rig
    dist = np.hypot(pts[:, 0] - c[0], pts[:, 1] - c[1])
    ok &= np.isfinite(dist) & (dist <= max_range_m)
    hidden = np.zeros(h * w, dtype=bool)
    if body is not None and ok.any():
        idx = np.flatnonzero(ok)
        hidden[idx] = body.hides(c, pts[idx])
    x = np.where(ok, pts[:, 0], np.nan).reshape(h, w)
    y = np.where(ok, pts[:, 1], np.nan).reshape(h, w)
    lat = np.zeros((h, w))
    lon = np.zeros((h, w))
    for src, dst in ((y, lat), (x, lon)):
        dv, du = np.gradient(src)
        dst[...] = np.abs(du) + np.abs(dv)
    vis = ~hidden.reshape(h, w)
    x = np.where(vis, x, np.nan)
    y = np.where(vis, y, np.nan)
    return PixelGround(x=x.astype(np.float32), y=y.astype(np.float32), lat_fp=lat.astype(np.float32),
                       lon_fp=lon.astype(np.float32), hidden=hidden.reshape(h, w))
