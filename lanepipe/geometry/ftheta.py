"""F-theta (polynomial fisheye) camera model, as used by the PhysicalAI-AV calibration tables.

Frames (see DESIGN.md §6):

* ego/rig frame: x forward, y left, z up, metres (PhysicalAI-AV: rear axle on the ground).
* camera frame: x right, y down, z forward (optical axis), metres; origin at the sensor.
* image: ``u`` column, ``v`` row, pixels, in the calibration's own convention (the principal point
  ``(cx, cy)`` is given in it; physical_ai_av's ``FThetaCameraModel`` adds no half-pixel shift either).

Model: a ray at angle ``θ`` from the optical axis lands at radius ``r = fw_poly(θ)`` pixels from the
principal point, along the ray's direction in the image plane; ``bw_poly`` is the fitted inverse
``θ = bw_poly(r)``. Both are 5 coefficients, lowest power first (``fw_poly_0 … fw_poly_4``).
Extrinsics are the sensor's pose in the rig frame: ``p_rig = R(q) @ p_camera + t``.
All functions are pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.camera import NEAR_PLANE_M, _as_points
from lanepipe.geometry.quaternion import quat_to_matrix

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

POLY_DEGREE = 4
INTRINSICS_COLUMNS: tuple[str, ...] = (
    "width", "height", "cx", "cy",
    *(f"fw_poly_{i}" for i in range(POLY_DEGREE + 1)),
    *(f"bw_poly_{i}" for i in range(POLY_DEGREE + 1)),
)
EXTRINSICS_COLUMNS: tuple[str, ...] = ("qx", "qy", "qz", "qw", "x", "y", "z")


def camera_rotation(yaw_rad: float = 0.0, pitch_rad: float = 0.0) -> FloatArray:
    """``R_rig_from_camera`` ``(3, 3)`` for a camera turned by ``yaw`` (left positive) and tilted down by ``pitch``.

    Its columns are the camera's right, down and forward axes written in the rig frame.
    """
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    forward = np.array([cp * cy, cp * sy, -sp])
    right = np.array([sy, -cy, 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def fit_backward_poly(fw_poly: Sequence[float], max_angle_rad: float, samples: int = 512) -> tuple[float, ...]:
    """Least-squares ``bw_poly`` (5 coefficients, ``θ = bw(r)``) inverting ``fw_poly`` on ``[0, max_angle_rad]``.

    The constant term is pinned to 0 when ``fw_poly_0 == 0`` (the axis maps to the principal point).
    """
    th = np.linspace(0.0, max_angle_rad, samples)
    r = np.polynomial.polynomial.polyval(th, np.asarray(fw_poly, dtype=np.float64))
    if fw_poly[0] == 0:
        a = np.stack([r**i for i in range(1, POLY_DEGREE + 1)], axis=1)
        coef = np.linalg.lstsq(a, th, rcond=None)[0]
        return (0.0, *(float(c) for c in coef))
    a = np.stack([r**i for i in range(POLY_DEGREE + 1)], axis=1)
    return tuple(float(c) for c in np.linalg.lstsq(a, th, rcond=None)[0])


def _row_values(row: Mapping[str, Any] | Any, names: Sequence[str], source: str) -> list[float]:
    keys = set(row.keys()) if hasattr(row, "keys") else set()
    missing = [k for k in names if k not in keys]
    if missing:
        raise InputError(source, f"columns {list(names)}", f"missing {missing}")
    vals = [float(row[k]) for k in names]
    bad = [k for k, v in zip(names, vals, strict=True) if not math.isfinite(v)]
    if bad:
        raise InputError(source, "finite calibration values", f"NaN or inf in {bad}")
    return vals


@dataclass(frozen=True)
class FThetaCamera:
    """An f-theta camera fixed to the ego vehicle.

    Attributes:
        width: image width in pixels (of the calibrated image).
        height: image height in pixels.
        cx: principal point column (pixels).
        cy: principal point row (pixels).
        fw_poly: 5 coefficients, lowest power first: radius in pixels from angle in radians.
        bw_poly: 5 coefficients, lowest power first: angle in radians from radius in pixels.
        quat_xyzw: sensor orientation in the rig frame, scalar-last unit quaternion (``R_rig_from_camera``).
        translation: sensor position in the rig frame (metres).
        scale_xy: pixel scale of a resized image (``resized``); ``(1, 1)`` for the calibrated size.
        name: camera name (e.g. ``camera_front_wide_120fov``), for messages.
    """

    width: int
    height: int
    cx: float
    cy: float
    fw_poly: tuple[float, ...]
    bw_poly: tuple[float, ...]
    quat_xyzw: tuple[float, float, float, float] = (-0.5, 0.5, -0.5, 0.5)
    translation: tuple[float, float, float] = (0.0, 0.0, 1.5)
    scale_xy: tuple[float, float] = (1.0, 1.0)
    name: str = field(default="ftheta", compare=False)

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"FThetaCamera {self.name}: expected width, height >= 1, "
                              f"found {self.width}x{self.height}")
        for label, poly in (("fw_poly", self.fw_poly), ("bw_poly", self.bw_poly)):
            if len(poly) != POLY_DEGREE + 1 or not all(math.isfinite(c) for c in poly):
                raise ConfigError(f"FThetaCamera {self.name}: expected {label} of {POLY_DEGREE + 1} finite "
                                  f"coefficients, found {poly}")
        if not self.fw_poly[1] > 0:
            raise ConfigError(f"FThetaCamera {self.name}: expected fw_poly_1 (about the focal length) > 0, "
                              f"found {self.fw_poly[1]}")
        if len(self.quat_xyzw) != 4 or not np.isclose(np.linalg.norm(self.quat_xyzw), 1.0, atol=1e-3):
            raise ConfigError(f"FThetaCamera {self.name}: expected a unit quaternion (qx, qy, qz, qw), "
                              f"found {self.quat_xyzw}")
        if not (self.scale_xy[0] > 0 and self.scale_xy[1] > 0):
            raise ConfigError(f"FThetaCamera {self.name}: expected scale_xy > 0, found {self.scale_xy}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_intrinsics_row(cls, row: Mapping[str, Any] | Any, extrinsics_row: Mapping[str, Any] | Any,
                            name: str = "ftheta") -> FThetaCamera:
        """A camera from one row of ``camera_intrinsics`` and one of ``sensor_extrinsics`` (pandas Series or dict).

        Intrinsics columns: ``width, height, cx, cy, fw_poly_0..4, bw_poly_0..4``;
        extrinsics columns: ``qx, qy, qz, qw, x, y, z`` (sensor pose in the rig frame).

        Raises:
            InputError: a column is missing or not finite.
        """
        iv = dict(zip(INTRINSICS_COLUMNS, _row_values(row, INTRINSICS_COLUMNS, f"{name} intrinsics"), strict=True))
        ev = _row_values(extrinsics_row, EXTRINSICS_COLUMNS, f"{name} extrinsics")
        q = np.asarray(ev[:4]) / max(float(np.linalg.norm(ev[:4])), 1e-12)
        return cls(width=int(iv["width"]), height=int(iv["height"]), cx=iv["cx"], cy=iv["cy"],
                   fw_poly=tuple(iv[f"fw_poly_{i}"] for i in range(POLY_DEGREE + 1)),
                   bw_poly=tuple(iv[f"bw_poly_{i}"] for i in range(POLY_DEGREE + 1)),
                   quat_xyzw=(float(q[0]), float(q[1]), float(q[2]), float(q[3])),
                   translation=(ev[4], ev[5], ev[6]), name=name)

    def rescaled(self, width: int, height: int) -> FThetaCamera:
        """The same camera for its image resized (stretched) to ``width`` x ``height`` pixels."""
        base_w, base_h = self.width / self.scale_xy[0], self.height / self.scale_xy[1]
        return FThetaCamera(width=int(width), height=int(height), cx=self.cx, cy=self.cy, fw_poly=self.fw_poly,
                            bw_poly=self.bw_poly, quat_xyzw=self.quat_xyzw, translation=self.translation,
                            scale_xy=(width / base_w, height / base_h), name=self.name)

    # ------------------------------------------------------------------ extrinsics
    @cached_property
    def rotation_rig_from_camera(self) -> FloatArray:
        """``(3, 3) float64`` ``R`` with ``p_rig = R @ p_camera + t``."""
        return quat_to_matrix(self.quat_xyzw, "xyzw")

    @property
    def centre_ego(self) -> FloatArray:
        """``(3,) float64`` sensor position in the ego (rig) frame."""
        return np.asarray(self.translation, dtype=np.float64)

    @cached_property
    def max_angle_rad(self) -> float:
        """Largest angle from the optical axis (≤ π/2) up to which ``fw_poly`` keeps increasing."""
        th = np.linspace(0.0, math.pi / 2, 2049)
        d = np.polynomial.polynomial.polyval(th, np.polynomial.polynomial.polyder(np.asarray(self.fw_poly)))
        bad = np.nonzero(d <= 0)[0]
        return float(th[bad[0] - 1]) if len(bad) and bad[0] > 0 else (0.0 if len(bad) else math.pi / 2)

    def ego_to_camera(self, points_ego: Any) -> FloatArray:
        """``(N, 3)`` ego-frame points → ``(N, 3) float64`` camera-frame points (metres)."""
        p = _as_points(points_ego, "points_ego")
        out: FloatArray = (p - self.centre_ego) @ self.rotation_rig_from_camera
        return out

    # ------------------------------------------------------------------ projection
    def camera_to_pixels(self, points_cam: Any) -> tuple[FloatArray, BoolArray]:
        """Camera-frame points ``(N, 3)`` → pixels ``(N, 2)`` (NaN where not valid) and ``valid (N,) bool``.

        Valid: finite, depth (camera z) ``>= 0.5 m`` and angle from the axis within ``max_angle_rad``.
        """
        pc = _as_points(points_cam, "points_cam")
        x, y, z = pc[:, 0], pc[:, 1], pc[:, 2]
        rho = np.hypot(x, y)
        theta = np.arctan2(rho, z)
        valid = np.isfinite(pc).all(axis=1) & (z >= NEAR_PLANE_M) & (theta <= self.max_angle_rad + 1e-12)
        r = np.polynomial.polynomial.polyval(theta, np.asarray(self.fw_poly))
        safe = np.where(rho > 1e-12, rho, 1.0)
        k = np.where(rho > 1e-12, r / safe, 0.0)
        u = self.cx + k * x
        v = self.cy + k * y
        pixels = np.stack([u * self.scale_xy[0], v * self.scale_xy[1]], axis=1)
        pixels[~valid] = np.nan
        return pixels, valid

    def project(self, points_ego: Any) -> tuple[FloatArray, BoolArray]:
        """Project ego-frame points to pixels.

        Args:
            points_ego: ``(N, 3) float`` points in the ego frame (metres).

        Returns:
            pixels: ``(N, 2) float64`` ``(u, v)``; NaN where not valid.
            valid: ``(N,) bool``, True where the point's depth along the optical axis is ``>= 0.5 m`` (the near
                plane) and its angle from the axis is within the polynomial's increasing range. Valid points may
                still fall outside the image.

        Raises:
            InputError: ``points_ego`` is not ``(N, 3)``.
        """
        return self.camera_to_pixels(self.ego_to_camera(points_ego))

    def pixels_to_rays(self, pixels: Any) -> FloatArray:
        """Pixels ``(N, 2)`` → unit rays ``(N, 3) float64`` in the camera frame, through ``bw_poly``."""
        px = np.asarray(pixels, dtype=np.float64)
        if px.ndim != 2 or px.shape[1] != 2:
            raise InputError("pixels", "pixels of shape (N, 2)", f"shape {px.shape}")
        du = px[:, 0] / self.scale_xy[0] - self.cx
        dv = px[:, 1] / self.scale_xy[1] - self.cy
        r = np.hypot(du, dv)
        theta = np.polynomial.polynomial.polyval(r, np.asarray(self.bw_poly))
        safe = np.where(r > 1e-12, r, 1.0)
        s = np.where(r > 1e-12, np.sin(theta) / safe, 0.0)
        rays = np.stack([s * du, s * dv, np.cos(theta)], axis=1)
        out: FloatArray = rays / np.linalg.norm(rays, axis=1, keepdims=True)
        return out

    def pixel_rays_ego(self, u: Any, v: Any) -> FloatArray:
        """Unit ray directions ``(N, 3) float64`` in the ego frame through pixels ``u``, ``v`` (flattened)."""
        uu = np.asarray(u, dtype=np.float64).ravel()
        vv = np.asarray(v, dtype=np.float64).ravel()
        if uu.shape != vv.shape:
            raise InputError("pixel_rays_ego", "u and v of the same length", f"{uu.shape} and {vv.shape}")
        out: FloatArray = self.pixels_to_rays(np.stack([uu, vv], axis=1)) @ self.rotation_rig_from_camera.T
        return out

    def pixel_to_ground(self, u: Any, v: Any) -> tuple[FloatArray, BoolArray]:
        """Intersect rays through pixels with the ground ``z = 0`` of the ego frame.

        Returns:
            points: ``(N, 3) float64`` ego-frame ground points (NaN where not valid).
            valid: ``(N,) bool``, False for rays that never reach the ground.
        """
        d = self.pixel_rays_ego(u, v)
        dz = d[:, 2]
        h = self.centre_ego[2]
        valid = np.isfinite(dz) & (dz < -1e-9) & (h > 0)
        t = np.where(valid, -h / np.where(valid, dz, -1.0), np.nan)
        pts = self.centre_ego[None, :] + t[:, None] * d
        pts[:, 2] = np.where(valid, 0.0, np.nan)
        return pts, valid

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``"model": "ftheta"``."""
        return {"model": "ftheta", "width": self.width, "height": self.height, "cx": self.cx, "cy": self.cy,
                "fw_poly": list(self.fw_poly), "bw_poly": list(self.bw_poly), "quat_xyzw": list(self.quat_xyzw),
                "translation": list(self.translation), "scale_xy": list(self.scale_xy), "name": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FThetaCamera:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: wrong model name or missing fields.
        """
        if d.get("model") != "ftheta":
            raise InputError("camera dict", "model 'ftheta'", repr(d.get("model")))
        names = ("width", "height", "cx", "cy", "fw_poly", "bw_poly", "quat_xyzw", "translation")
        missing = [k for k in names if k not in d]
        if missing:
            raise InputError("camera dict", f"fields {list(names)}", f"missing {missing}")
        q = tuple(float(c) for c in d["quat_xyzw"])
        t = tuple(float(c) for c in d["translation"])
        s = tuple(float(c) for c in d.get("scale_xy", (1.0, 1.0)))
        return cls(width=int(d["width"]), height=int(d["height"]), cx=float(d["cx"]), cy=float(d["cy"]),
                   fw_poly=tuple(float(c) for c in d["fw_poly"]), bw_poly=tuple(float(c) for c in d["bw_poly"]),
                   quat_xyzw=(q[0], q[1], q[2], q[3]), translation=(t[0], t[1], t[2]), scale_xy=(s[0], s[1]),
                   name=str(d.get("name", "ftheta")))
