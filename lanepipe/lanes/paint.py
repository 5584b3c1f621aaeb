"""Lane-paint evidence: colour channels, top-hat filters and paint maps, and a camera pose read from the paint.

Lane paint is thin and brighter (white) or yellower (yellow) than the pavement around it. A morphological
white top-hat (image minus its opening by a flat rectangle) keeps structures narrower than the rectangle:
:func:`tophat` is that filter, :func:`band_tophat` varies the width row by row so that it spans a fixed width on
the ground. Every backend that looks for paint (segmenter, painter, verifier, lane-keep predictor) uses these.

Coordinates are image pixels, ``u`` column and ``v`` row, of the image the arrays come from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar, overload

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.road import row_px_per_metre, with_pose
from lanepipe.geometry.vanishing import Point, VpPose, paint_vanishing_point, pose_from_vanishing_points

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
_S = TypeVar("_S", np.uint8, np.float32)

#: Rows of the ``uint8`` :func:`paint_channels`: luma (BT.601) and yellowness ``((R + G) / 2 - B) * 0.45 + 128``,
#: whose scale is close to CIE Lab b in OpenCV 8-bit units on paint and asphalt (4x cheaper than a Lab conversion).
_CHANNELS = np.array([[0.299, 0.587, 0.114, 0.0], [0.225, 0.225, -0.45, 128.0]], dtype=np.float32)


@overload
def paint_channels(rgb: U8, out: Literal["uint8"] = "uint8") -> U8: ...
@overload
def paint_channels(rgb: U8, out: Literal["float32"]) -> F32: ...
def paint_channels(rgb: U8, out: Literal["uint8", "float32"] = "uint8") -> U8 | F32:
    """Lightness and yellowness of an RGB image.

    ``out="uint8"``: luma (BT.601) and ``0.45 ((R + G) / 2 - B) + 128``, saturated to 0-255 (Lab-b-like scale,
    see ``_CHANNELS``). ``out="float32"``: luma and the unscaled, signed ``(R + G) / 2 - B``.

    Shape:
        rgb ``(h, w, 3) uint8`` → ``(h, w, 2)`` in ``out``.
    """
    if out == "uint8":
        u8: U8 = np.asarray(cv2.transform(rgb, _CHANNELS), dtype=np.uint8)
        return u8
    if out != "float32":
        raise ValueError(f"paint_channels: out must be 'uint8' or 'float32', found {out!r}")
    f = rgb.astype(np.float32)
    lum = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    yel = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    f32: F32 = np.stack([lum, yel], axis=-1)
    return f32


def tophat(img: npt.NDArray[_S], size: tuple[int, int]) -> npt.NDArray[_S]:
    """White top-hat by a flat ``size = (width, height)`` rectangle: how far each pixel stands above the
    opening (structures narrower than the rectangle). ``(1, k)``-tall rectangles look across lines only.

    Shape:
        img ``(h, w)`` uint8 or float32 → ``(h, w)`` of the same dtype, ≥ 0.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, size)
    out: npt.NDArray[_S] = np.asarray(cv2.morphologyEx(img, cv2.MORPH_TOPHAT, kernel), dtype=img.dtype)
    return out


def band_tophat(channel: U8, px_per_m: F32, width_m: float, max_k: int = 81) -> U8:
    """Horizontal :func:`tophat` whose kernel spans ``width_m`` on the ground at each row.

    Thin bright structures (lines narrower than ``width_m``) stand out; wide bright areas do not. Rows are
    grouped into bands of equal (odd) kernel size; rows with a kernel under 3 px (or ``px_per_m <= 0``) stay 0.

    Shape:
        channel ``(h, w) uint8``, px_per_m ``(h,)`` → ``(h, w) uint8``.
    """
    out = np.zeros_like(channel)
    k = np.clip(np.ceil(px_per_m * width_m).astype(np.int64) | 1, 0, max_k | 1)
    k[px_per_m <= 0] = 0
    start = 0
    h = channel.shape[0]
    while start < h:
        kk = int(k[start])
        end = start + 1
        while end < h and int(k[end]) == kk:
            end += 1
        if kk >= 3:
            out[start:end] = tophat(channel[start:end], (kk, 1))
        start = end
    return out


@dataclass(frozen=True)
class PaintEvidence:
    """Paint-like pixels of one frame at work resolution.

    Attributes:
        bright: ``(h, w) uint8`` lightness top-hat (grey levels above the local road).
        yellow: ``(h, w) uint8`` yellowness top-hat (about Lab b units above the local road).
    """

    bright: U8
    yellow: U8

    def score(self, bright_thr: float, yellow_thr: float) -> U8:
        """``(h, w) uint8`` 0-255 paint score: how far above either threshold a pixel is."""
        s = np.maximum((self.bright.astype(np.float32) - bright_thr) * 4.0,
                       (self.yellow.astype(np.float32) - yellow_thr) * 10.0)
        out: U8 = np.clip(s, 0, 255).astype(np.uint8)
        return out

    def mask(self, bright_thr: float, yellow_thr: float) -> Bool:
        """``(h, w) bool`` paint pixels."""
        out: Bool = (self.bright > bright_thr) | (self.yellow > yellow_thr)
        return out


def paint_evidence(chans: U8, px_per_m: F32, width_m: float) -> PaintEvidence:
    """Band top-hats of lightness and yellowness (``uint8`` :func:`paint_channels`) over ``width_m``-wide kernels."""
    return PaintEvidence(bright=band_tophat(np.ascontiguousarray(chans[..., 0]), px_per_m, width_m),
                         yellow=band_tophat(np.ascontiguousarray(chans[..., 1]), px_per_m, width_m))


def level_px_per_metre(cam: PinholeCamera) -> F32:
    """``(h,) float32`` pixels per lateral metre of ``cam`` looking 4 degrees up: top-hat kernels for finding the
    horizon (rows above a pitched prior's horizon would otherwise get none)."""
    return row_px_per_metre(with_pose(cam, pitch_rad=math.radians(-4.0)))


def pose_from_paint(cam: PinholeCamera, chans: Iterable[U8], bright_thr: float, yellow_thr: float, *,
                    regions: Iterable[Bool | None] | None = None, hood_frac: float | None = None,
                    min_points: int = 1, width_m: float = 0.6) -> VpPose:
    """Camera pitch and yaw from the vanishing point of the paint in several frames.

    Per frame: :func:`paint_evidence` over ``width_m`` with :func:`level_px_per_metre` kernels, thresholded at
    ``(bright_thr, yellow_thr)``, kept inside ``regions`` (when given), cut below ``hood_frac`` of the height
    (a visible hood, when given), then :func:`~lanepipe.geometry.vanishing.paint_vanishing_point` below 30 % of
    the height. The median over frames gives the pose
    (:func:`~lanepipe.geometry.vanishing.pose_from_vanishing_points`).

    Args:
        cam: the prior camera at the frames' size (its pitch and yaw are not used).
        chans: ``(h, w, 2) uint8`` :func:`paint_channels` of each frame.
        regions: ``(h, w) bool`` per frame (None entries: no limit).

    Returns:
        :class:`~lanepipe.geometry.vanishing.VpPose` in ``cam``'s pixels.
    """
    ppm = level_px_per_metre(cam)
    hw = cam.height
    region_list = list(regions) if regions is not None else None
    pts: list[Point] = []
    for k, ch in enumerate(chans):
        ev = paint_evidence(ch, ppm, width_m)
        paint = ev.mask(bright_thr, yellow_thr)
        region = region_list[k] if region_list is not None else None
        if region is not None:
            paint = paint & region
        binary = paint.astype(np.uint8) * 255
        if hood_frac is not None:
            binary[int(hood_frac * hw):] = 0
        vp = paint_vanishing_point(binary, int(0.3 * hw))
        if vp is not None:
            pts.append(vp[:2])
    return pose_from_vanishing_points(cam, pts, min_points)
