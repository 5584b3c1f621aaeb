"""Pinhole camera model mounted on the ego vehicle: projection and ray-ground intersection.

Frames (see DESIGN.md §6):

* ego frame: x forward, y left, z up, metres; origin on the ground directly under the camera.
* camera frame: x right, y down, z forward (optical axis), metres; origin at the camera centre,
  which sits at ``(0, 0, mount_height_m)`` in the ego frame.
* image: ``u`` column, ``v`` row, pixels; ``(0, 0)`` is the centre of the top-left pixel.

The camera is first turned by ``yaw_rad`` about the ego z axis (positive = to the left), then tilted down by
``pitch_rad`` (positive = looking down). There is no roll. All functions are pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.errors import ConfigError, InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Horizontal field of view in degrees by lens name.
FOV_BY_NAME: dict[str, float] = {"wide": 120.0, "normal": 70.0, "tele": 30.0}
#: Camera yaw in radians by mounting name (ego frame, positive = to the left).
YAW_BY_NAME: dict[str, float] = {
    "front": 0.0,
    "cross_left": math.pi / 2,
    "cross_right": -math.pi / 2,
    "rear_tele": math.pi,
}
#: Points closer than this depth (camera z, metres) are not projected.
NEAR_PLANE_M = 0.5


def _as_points(points: Any, name: str) -> FloatArray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(name, "points of shape (N, 3) float", f"shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class PinholeCamera:
    """An undistorted pinhole camera fixed to the ego vehicle.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        fx: focal length in pixels along u.
        fy: focal length in pixels along v.
        cx: principal point column (pixels).
        cy: principal point row (pixels).
        mount_height_m: height of the camera centre above the ground (metres, > 0).
        pitch_rad: downward tilt of the optical axis (radians, positive = looking down, |pitch| < pi/2).
        yaw_rad: heading of the optical axis in the ego frame (radians, positive = to the left).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount_height_m: float
    pitch_rad: float
    yaw_rad: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"PinholeCamera: expected width, height >= 1, found {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ConfigError(f"PinholeCamera: expected fx, fy > 0, found fx={self.fx}, fy={self.fy}")
        if not self.mount_height_m > 0:
            raise ConfigError(f"PinholeCamera: expected mount_height_m > 0, found {self.mount_height_m}")
        if not abs(self.pitch_rad) < math.pi / 2:
            raise ConfigError(f"PinholeCamera: expected |pitch_rad| < pi/2, found {self.pitch_rad}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float, mount_height_m: float = 1.5,
                 pitch_deg: float = 0.0, yaw_deg: float = 0.0) -> PinholeCamera:
        """A camera with horizontal field of view ``fov_deg``, square pixels, principal point at the centre.

        ``fx = fy = width / (2 tan(fov / 2))``; ``cx = (width - 1) / 2``, ``cy = (height - 1) / 2``.
        """
        if not 0 < fov_deg < 180:
            raise ConfigError(f"PinholeCamera.from_fov: expected 0 < fov_deg < 180, found {fov_deg}")
        f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
        return cls(width=int(width), height=int(height), fx=f, fy=f, cx=(width - 1) / 2.0,
                   cy=(height - 1) / 2.0, mount_height_m=float(mount_height_m),
                   pitch_rad=math.radians(pitch_deg), yaw_rad=math.radians(yaw_deg))

    @classmethod
    def from_names(cls, mount: str, lens: str, width: int, height: int, mount_height_m: float = 1.5,
                   pitch_deg: float = 0.0) -> PinholeCamera:
        """A camera from a mounting name (``YAW_BY_NAME``) and a lens name (``FOV_BY_NAME``)."""
        if mount not in YAW_BY_NAME:
            raise ConfigError(f"unknown camera mount {mount!r}; choose one of {sorted(YAW_BY_NAME)}")
        if lens not in FOV_BY_NAME:
            raise ConfigError(f"unknown lens {lens!r}; choose one of {sorted(FOV_BY_NAME)}")
        return cls.from_fov(width, height, FOV_BY_NAME[lens], mount_height_m, pitch_deg,
                            math.degrees(YAW_BY_NAME[mount]))

    def rescaled(self, width: int, height: int) -> PinholeCamera:
        """The same camera for its image resized (stretched) to ``width`` x ``height`` pixels.

        Pixel centres stay aligned: ``f' = f s`` and ``c' = (c + 0.5) s - 0.5`` with ``s = width / self.width``
        along u (``height / self.height`` along v); pose and mount height are unchanged. Always computed, even
        for the same size (then equal to ``self`` up to rounding).
        """
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(width=width, height=height, fx=self.fx * sx, fy=self.fy * sy,
                             cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5,
                             mount_height_m=self.mount_height_m, pitch_rad=self.pitch_rad, yaw_rad=self.yaw_rad)

    # ------------------------------------------------------------------ extrinsics
    @property
    def K(self) -> FloatArray:  # noqa: N802 - the usual name of the intrinsic matrix
        """``(3, 3) float64`` intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def rotation_ego_to_camera(self) -> FloatArray:
        """``(3, 3) float64`` rotation R with ``p_camera = R @ (p_ego - centre_ego)``.

        Its rows are the camera's right, down and forward axes written in the ego frame.
        """
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        cy, sy = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        forward = np.array([cp * cy, cp * sy, -sp])
        right = np.array([sy, -cy, 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    @property
    def centre_ego(self) -> FloatArray:
        """``(3,) float64`` camera centre in the ego frame: ``(0, 0, mount_height_m)``."""
        return np.array([0.0, 0.0, self.mount_height_m])

    def ego_to_camera(self, points_ego: Any) -> FloatArray:
        """Move points from the ego frame to the camera frame.

        Args:
            points_ego: ``(N, 3) float`` points in the ego frame (metres).

        Returns:
            ``(N, 3) float64`` the same points in the camera frame (metres).

        Raises:
            InputError: ``points_ego`` is not ``(N, 3)``.
        """
        p = _as_points(points_ego, "points_ego")
        out: FloatArray = (p - self.centre_ego) @ self.rotation_ego_to_camera.T
        return out

    # ------------------------------------------------------------------ projection
    def project(self, points_ego: Any) -> tuple[FloatArray, BoolArray]:
        """Project ego-frame points to pixels.

        Args:
            points_ego: ``(N, 3) float`` points in the ego frame (metres).

        Returns:
            pixels: ``(N, 2) float64`` ``(u, v)`` image coordinates; NaN where not valid.
            valid: ``(N,) bool``, True where the point is in front of the camera with depth (camera z)
                ``>= 0.5 m`` (the near plane). Points may be valid yet fall outside the image.

        Raises:
            InputError: ``points_ego`` is not ``(N, 3)``.
        """
        pc = self.ego_to_camera(points_ego)
        z = pc[:, 2]
        valid = np.isfinite(pc).all(axis=1) & (z >= NEAR_PLANE_M)
        safe_z = np.where(valid, z, 1.0)
        pixels = np.stack([self.fx * pc[:, 0] / safe_z + self.cx, self.fy * pc[:, 1] / safe_z + self.cy], axis=1)
        pixels[~valid] = np.nan
        return pixels, valid

    def pixel_rays_ego(self, u: Any, v: Any) -> FloatArray:
        """Unit-free ray directions through pixels, in the ego frame.

        Args:
            u: ``(N,)`` pixel columns; v: ``(N,)`` pixel rows (any shape that broadcasts; flattened).

        Returns:
            ``(N, 3) float64`` direction vectors in the ego frame (camera-frame z component 1, not unit length).
        """
        uu = np.asarray(u, dtype=np.float64).ravel()
        vv = np.asarray(v, dtype=np.float64).ravel()
        if uu.shape != vv.shape:
            raise InputError("pixel_rays_ego", "u and v of the same length", f"{uu.shape} and {vv.shape}")
        d_cam = np.stack([(uu - self.cx) / self.fx, (vv - self.cy) / self.fy, np.ones_like(uu)], axis=1)
        out: FloatArray = d_cam @ self.rotation_ego_to_camera  # R^T d for each row
        return out

    def pixel_to_ground(self, u: Any, v: Any) -> tuple[FloatArray, BoolArray]:
        """Intersect the rays through pixels with the ground plane ``z = 0`` of the ego frame.

        Args:
            u: ``(N,)`` pixel columns; v: ``(N,)`` pixel rows (flattened; must have the same size).

        Returns:
            points: ``(N, 3) float64`` ground points in the ego frame (metres, z = 0); NaN where not valid.
            valid: ``(N,) bool``, False for rays at or above the horizon (they never reach the ground).
        """
        d = self.pixel_rays_ego(u, v)
        dz = d[:, 2]
        valid = np.isfinite(dz) & (dz < -1e-9)
        t = np.where(valid, -self.mount_height_m / np.where(valid, dz, -1.0), np.nan)
        pts = self.centre_ego[None, :] + t[:, None] * d
        pts[:, 2] = np.where(valid, 0.0, np.nan)
        return pts, valid

    def horizon_row(self) -> float:
        """Image row ``v`` of the horizon (rays parallel to the ground); may lie outside the image.

        With no roll the horizon is the horizontal line ``v = cy - fy * tan(pitch)``.
        """
        return self.cy - self.fy * math.tan(self.pitch_rad)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with ``"model": "pinhole"``; angles in radians."""
        return {"model": "pinhole", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PinholeCamera:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: wrong model name or missing fields.
        """
        model = d.get("model", "pinhole")
        if model != "pinhole":
            raise InputError("camera dict", "model 'pinhole'", repr(model))
        names = ("width", "height", "fx", "fy", "cx", "cy", "mount_height_m", "pitch_rad")
        missing = [k for k in names if k not in d]
        if missing:
            raise InputError("camera dict", f"fields {list(names)}", f"missing {missing}")
        return cls(width=int(d["width"]), height=int(d["height"]), fx=float(d["fx"]), fy=float(d["fy"]),
                   cx=float(d["cx"]), cy=float(d["cy"]), mount_height_m=float(d["mount_height_m"]),
                   pitch_rad=float(d["pitch_rad"]), yaw_rad=float(d.get("yaw_rad", 0.0)))
