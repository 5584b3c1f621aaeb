"""Ego-motion: a pose timeline in a world frame, interpolated and expressed in the ego frame at a time t0.

Ego frame: x forward, y left, z up (rig frame, rear axle on the ground for PhysicalAI-AV). World poses are
rotations ``R_world_from_ego`` ``(N, 3, 3)`` and positions ``(N, 3)`` metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.quaternion import quat_to_matrix

F64 = npt.NDArray[np.float64]


def _slerp_rot(r0: F64, r1: F64, a: F64) -> F64:
    """Interpolate rotations ``(N, 3, 3)`` by fraction ``a`` ``(N,)`` along the relative rotation's axis."""
    rel = np.einsum("nji,njk->nik", r0, r1)  # r0^T r1
    cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    ang = np.arccos(cos)
    axis = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], -1)
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(norm > 1e-12, axis / np.maximum(norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    th = ang * a
    k = np.zeros((len(a), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = axis[:, 2], -axis[:, 1], axis[:, 0]
    eye = np.eye(3)[None]
    step = eye + np.sin(th)[:, None, None] * k + (1 - np.cos(th))[:, None, None] * (k @ k)
    return np.asarray(r0 @ step, dtype=np.float64)


@dataclass(frozen=True)
class EgoMotion:
    """Pose timeline. ``timestamps`` ``(N,) float64`` seconds (any origin, strictly increasing),
    ``xyz`` ``(N, 3)`` world metres, ``rot`` ``(N, 3, 3)`` rotation world-from-ego."""

    timestamps: F64
    xyz: F64
    rot: F64
    source: str = "egomotion"

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if self.xyz.shape != (n, 3) or self.rot.shape != (n, 3, 3):
            raise InputError(self.source, f"xyz (N,3) and rot (N,3,3) with N={n}",
                             f"{self.xyz.shape} and {self.rot.shape}")
        if n < 2 or np.any(np.diff(self.timestamps) <= 0):
            raise InputError(self.source, "at least 2 poses with strictly increasing timestamps",
                             f"{n} poses" if n < 2 else "non-increasing timestamps")
        for name, arr in (("timestamps", self.timestamps), ("xyz", self.xyz), ("rot", self.rot)):
            if not np.all(np.isfinite(arr)):
                raise InputError(self.source, f"finite {name}", f"NaN or inf in {name}")

    @classmethod
    def from_quaternions(cls, timestamps: F64, xyz: F64, quat_xyzw: F64, source: str = "egomotion") -> EgoMotion:
        q = np.asarray(quat_xyzw, dtype=np.float64)
        if not np.all(np.isfinite(q)):
            raise InputError(source, "finite quaternions", "NaN or inf in qx, qy, qz, qw")
        return cls(np.asarray(timestamps, np.float64), np.asarray(xyz, np.float64), quat_to_matrix(q, "xyzw"), source)

    def covers(self, t: F64) -> bool:
        t = np.asarray(t, dtype=np.float64)
        return bool(np.all((t >= self.timestamps[0] - 1e-9) & (t <= self.timestamps[-1] + 1e-9)))

    def interpolate(self, t: F64) -> tuple[F64, F64]:
        """World poses at times ``t`` ``(M,)``: positions ``(M, 3)`` (linear), rotations ``(M, 3, 3)`` (slerp).

        Raises:
            InputError: a time outside the timeline.
        """
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if not self.covers(t):
            raise InputError(self.source, f"ego-motion covering {t.min():.3f}…{t.max():.3f} s",
                             f"poses for {self.timestamps[0]:.3f}…{self.timestamps[-1]:.3f} s")
        i = np.clip(np.searchsorted(self.timestamps, t, side="right") - 1, 0, len(self.timestamps) - 2)
        t0, t1 = self.timestamps[i], self.timestamps[i + 1]
        a = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        xyz = self.xyz[i] * (1 - a)[:, None] + self.xyz[i + 1] * a[:, None]
        return xyz, _slerp_rot(self.rot[i], self.rot[i + 1], a)

    def in_ego_frame(self, t0: float, t: F64) -> tuple[F64, F64]:
        """Poses at times ``t`` expressed in the ego frame at ``t0``: xyz ``(M, 3)``, rot ``(M, 3, 3)``."""
        p0, r0 = self.interpolate(np.array([t0]))
        p, r = self.interpolate(t)
        inv = r0[0].T
        return (p - p0[0]) @ inv.T, np.einsum("ij,mjk->mik", inv, r)

    def speed(self, t: float, dt: float = 0.1) -> float:
        """Speed (m/s) at ``t`` by central difference over ``dt`` (clamped to the timeline)."""
        a = max(self.timestamps[0], t - dt / 2)
        b = min(self.timestamps[-1], t + dt / 2)
        (pa, pb), _ = self.interpolate(np.array([a, b]))
        return float(np.linalg.norm(pb - pa) / max(b - a, 1e-9))
