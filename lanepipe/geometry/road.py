"""Road-plane geometry: ground homography and maps, bird's-eye view, lane boundary cubics, ego speed.

Coordinates (DESIGN.md §6): ego frame x forward, y left, z up, metres, origin on the ground under the camera;
image ``u`` column, ``v`` row, pixels. A lane boundary is the cubic ``y(x) = a + b x + c x² + d x³`` on the
ground (``coefs = (a, b, c, d)``, ego metres): ``a`` is the lateral offset, ``b`` the heading, ``2 c`` the curvature
(``1 / R``, positive = to the left) and ``d`` its change — enough for a straight road running into a curve.

The bird's-eye view (BEV) is a ground grid: row ``r`` is ``x = x_max - r dx``, column ``j`` is
``y = y_max - j dy`` (far at the top, left of the ego at the left), warped from the image with the ground
homography of a :class:`~lanepipe.geometry.camera.PinholeCamera`.

All functions are pure numpy / OpenCV on arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.geometry.camera import PinholeCamera

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]


# ---------------------------------------------------------------------------------------------- camera
def with_pose(cam: PinholeCamera, pitch_rad: float | None = None, yaw_rad: float | None = None,
              mount_height_m: float | None = None) -> PinholeCamera:
    """A copy of ``cam`` with another pitch, yaw or mount height."""
    return PinholeCamera(width=cam.width, height=cam.height, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy,
                         mount_height_m=cam.mount_height_m if mount_height_m is None else mount_height_m,
                         pitch_rad=cam.pitch_rad if pitch_rad is None else pitch_rad,
                         yaw_rad=cam.yaw_rad if yaw_rad is None else yaw_rad)


def ground_homography(cam: PinholeCamera) -> F64:
    """``(3, 3)`` homography from ground points ``(x, y, 1)`` (ego metres, z = 0) to image pixels."""
    r = cam.rotation_ego_to_camera
    m = np.column_stack([r[:, 0], r[:, 1], -r @ cam.centre_ego])
    out: F64 = cam.K @ m
    return out


@dataclass(frozen=True)
class GroundMaps:
    """Ground coordinates and footprint of every pixel of a camera image.

    Attributes:
        x: ``(H, W) float32`` forward distance (ego metres); NaN above the horizon or beyond the range.
        y: ``(H, W) float32`` lateral position (ego metres, + = left); NaN where ``x`` is.
        lat_fp: ``(H, W) float32`` lateral extent of the pixel on the ground (metres per pixel).
        lon_fp: ``(H, W) float32`` longitudinal extent of the pixel on the ground (metres per pixel).
        v_top: first image row with any ground pixel in range.
    """

    x: F32
    y: F32
    lat_fp: F32
    lon_fp: F32
    v_top: int


def ground_maps(cam: PinholeCamera, max_range_m: float) -> GroundMaps:
    """Intersect every pixel's ray with the ground (as :meth:`PinholeCamera.pixel_to_ground`, in float32).

    The ray through ``(u, v)`` is ``R^T ((u - cx) / fx, (v - cy) / fy, 1)`` in the ego frame; it meets the ground
    at ``t = -h / d_z``. Footprints are the summed absolute image-space derivatives of ``x`` and ``y``.
    """
    h, w = cam.height, cam.width
    r = cam.rotation_ego_to_camera.astype(np.float32)
    a = ((np.arange(w, dtype=np.float32) - cam.cx) / cam.fx)[None, :]
    b = ((np.arange(h, dtype=np.float32) - cam.cy) / cam.fy)[:, None]
    dz = r[0, 2] * a + r[1, 2] * b + r[2, 2]
    below = dz < -1e-6
    rows = np.flatnonzero(below.any(axis=1))
    x = np.full((h, w), np.nan, dtype=np.float32)
    y = np.full((h, w), np.nan, dtype=np.float32)
    lat = np.full((h, w), np.nan, dtype=np.float32)
    lon = np.full((h, w), np.nan, dtype=np.float32)
    if len(rows) == 0:
        return GroundMaps(x=x, y=y, lat_fp=lat, lon_fp=lon, v_top=h)
    r0 = int(rows[0])
    bb = b[r0:]
    dzz = dz[r0:]
    t = np.where(below[r0:], np.float32(-cam.mount_height_m) / np.where(below[r0:], dzz, -1.0), np.nan)
    xs = t * (r[0, 0] * a + r[1, 0] * bb + r[2, 0])
    ys = t * (r[0, 1] * a + r[1, 1] * bb + r[2, 1])
    bad = ~(xs > 0) | (xs > max_range_m)
    xs[bad] = np.nan
    ys[bad] = np.nan
    x[r0:], y[r0:] = xs, ys
    for src, dst in ((ys, lat), (xs, lon)):
        dv, du = np.gradient(src)
        dst[r0:] = np.abs(du) + np.abs(dv)
    ok_rows = np.flatnonzero(np.isfinite(x).any(axis=1))
    v_top = int(ok_rows[0]) if len(ok_rows) else h
    return GroundMaps(x=x, y=y, lat_fp=lat, lon_fp=lon, v_top=v_top)


def row_px_per_metre(cam: PinholeCamera) -> F32:
    """``(H,) float32`` pixels per lateral metre on the ground at each row (0 above the horizon), measured on
    the principal column (a one-pixel step of ``u`` intersected with the ground)."""
    v = np.arange(cam.height, dtype=np.float64)
    u0 = np.full_like(v, cam.cx)
    p0, ok0 = cam.pixel_to_ground(u0, v)
    p1, _ = cam.pixel_to_ground(u0 + 1.0, v)
    d = np.abs(p1[:, 1] - p0[:, 1])
    out = np.where(ok0 & (d > 0), 1.0 / np.maximum(d, 1e-9), 0.0)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------- BEV
@dataclass(frozen=True)
class BevGrid:
    """A bird's-eye ground grid (see the module docstring)."""

    x_min: float
    x_max: float
    dx: float
    y_min: float
    y_max: float
    dy: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return round((self.x_max - self.x_min) / self.dx) + 1, round((self.y_max - self.y_min) / self.dy) + 1

    @property
    def xs(self) -> F64:
        """``(rows,)`` forward distance of each row (decreasing)."""
        out: F64 = self.x_max - np.arange(self.shape[0], dtype=np.float64) * self.dx
        return out

    @property
    def ys(self) -> F64:
        """``(cols,)`` lateral position of each column (decreasing)."""
        out: F64 = self.y_max - np.arange(self.shape[1], dtype=np.float64) * self.dy
        return out

    def homography(self, cam: PinholeCamera) -> F64:
        """``(3, 3)`` map from BEV pixels ``(col, row, 1)`` to image pixels (for ``WARP_INVERSE_MAP``)."""
        a = np.array([[0.0, -self.dx, self.x_max], [-self.dy, 0.0, self.y_max], [0.0, 0.0, 1.0]])
        out: F64 = ground_homography(cam) @ a
        return out

    def warp(self, img: Any, cam: PinholeCamera, interp: int = cv2.INTER_LINEAR) -> Any:
        """Resample ``img`` (``(H, W[, C])``, the camera's image size) onto the grid."""
        rows, cols = self.shape
        return cv2.warpPerspective(img, self.homography(cam), (cols, rows), flags=interp | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def lane_aligned_maps(cam: PinholeCamera, grid: BevGrid, centre: F64) -> tuple[F32, F32]:
    """``cv2.remap`` maps of a BEV that follows a lane: row ``r`` is ``x = grid.xs[r]``, column ``j`` is
    ``grid.ys[j]`` metres left of the curve ``y = centre(x)`` (cubic coefs, see the module docstring). Solid lines
    along the lane are then constant down each column, even on a curve, and the road moves straight down the rows.

    Returns:
        ``(map_u, map_v)``, each ``(rows, cols) float32`` image pixels.
    """
    xs = grid.xs[:, None]
    ys = grid.ys[None, :] + poly_eval(centre, xs)
    xs_b = np.broadcast_to(xs, ys.shape)
    hmat = ground_homography(cam)
    q = hmat[:, 0, None, None] * xs_b + hmat[:, 1, None, None] * ys + hmat[:, 2, None, None]
    z = np.where(q[2] > 1e-9, q[2], np.nan)
    mu = np.nan_to_num(q[0] / z, nan=-1e4).astype(np.float32)
    mv = np.nan_to_num(q[1] / z, nan=-1e4).astype(np.float32)
    return mu, mv


# ---------------------------------------------------------------------------------------------- ground cubics
#: Polynomial degree of a lane boundary ``y(x)``: a cubic follows a straight road running into a curve.
DEGREE = 3


def poly_eval(coefs: F64, x: Any) -> Any:
    """``y(x) = sum_k coefs[k] x**k`` (Horner)."""
    out = np.zeros_like(np.asarray(x, dtype=np.float64)) + coefs[-1]
    for k in range(len(coefs) - 2, -1, -1):
        out = out * x + coefs[k]
    return out


def boundary_eval(coefs: F64, x: Any, x_lim: float) -> Any:
    """The boundary ``y(x)``, continued along its tangent beyond ``x_lim`` (where it was not fitted: a cubic
    would swing away)."""
    xa = np.asarray(x, dtype=np.float64)
    xc = np.minimum(xa, x_lim)
    slope = float(sum(k * coefs[k] * x_lim ** (k - 1) for k in range(1, len(coefs))))
    return poly_eval(coefs, xc) + slope * np.maximum(xa - x_lim, 0.0)


# ---------------------------------------------------------------------------------------------- time series
def rolling_median(a: F64, radius: int) -> F64:
    """Median over ``±radius`` samples, ignoring NaN (NaN where a window has no value)."""
    n = len(a)
    out = np.full(n, np.nan)
    for t in range(n):
        win = a[max(0, t - radius): t + radius + 1]
        win = win[np.isfinite(win)]
        if len(win):
            out[t] = float(np.median(win))
    return out


def fill_nan(a: F64, default: float) -> F64:
    """Linear interpolation over NaN gaps (constant at the ends); ``default`` when all are NaN."""
    ok = np.isfinite(a)
    if not ok.any():
        return np.full(len(a), default)
    t = np.arange(len(a))
    out: F64 = np.interp(t, t[ok], a[ok])
    return out


def gaussian_smooth(a: F64, sigma: float) -> F64:
    """Gaussian smoothing along the first axis with edge normalisation (no NaN allowed)."""
    if sigma <= 0 or len(a) < 2:
        return a.copy()
    r = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    n = len(a)
    out = np.empty_like(a)
    for t in range(n):
        lo, hi = max(0, t - r), min(n, t + r + 1)
        kk = k[lo - t + r: hi - t + r]
        out[t] = np.tensordot(kk, a[lo:hi], axes=(0, 0)) / kk.sum()
    return out


# ---------------------------------------------------------------------------------------------- ego speed
def bev_shift(prev: F32, cur: F32, max_rows: int) -> tuple[float, float]:
    """Forward shift between two BEV patches, in rows (+ = the ground moved toward the camera), by normalised
    cross-correlation over shifts ``0 .. max_rows``, with a parabolic sub-row peak.

    Plain correlation (not phase correlation) is used on purpose: whitening boosts the faint resampling pattern
    of the warp, which does not move, and locks the estimate at zero.

    Returns:
        ``(shift_rows, peak_ncc)``; the peak is in ``[-1, 1]``.
    """
    rows = prev.shape[0]
    max_rows = int(min(max_rows, rows // 2))
    templ = prev[: rows - max_rows]
    res = cv2.matchTemplate(cur, templ, cv2.TM_CCOEFF_NORMED).ravel()  # (max_rows + 1,)
    k = int(np.argmax(res))
    peak = float(res[k])
    frac = 0.0
    if 0 < k < len(res) - 1:
        a, b, c = float(res[k - 1]), peak, float(res[k + 1])
        den = a - 2 * b + c
        if den < 0:
            frac = 0.5 * (a - c) / den
    return k + frac, peak


def highpass_along_x(bev: F32, sigma_rows: float) -> F32:
    """Remove what is constant along the road (solid lines, mask borders): ``bev - blur_along_rows(bev)``."""
    k = int(2 * math.ceil(3 * sigma_rows) + 1)
    low = cv2.GaussianBlur(bev, (1, k), sigmaX=0, sigmaY=sigma_rows)
    low2 = cv2.GaussianBlur(bev, (3, 3), 0)
    out: F32 = low2 - low
    return out
