"""Pure mask and frame helpers of the ``flux_cogvideox`` painter (numpy + OpenCV, no torch).

Shapes: frames ``(H, W, 3) uint8``; masks ``(H, W) bool`` (True = generated / repainted); alphas ``(H, W) float32``
in [0, 1]. :func:`latent_masks` maps ``(N, H, W) bool`` video masks to the video VAE's latent grid.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]


def dilate_mask(mask: Bool, px: int) -> Bool:
    """Dilate a ``(H, W) bool`` mask by ``px`` pixels (elliptical structuring element)."""
    if px <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def feather_mask(mask: Bool, px: float) -> F32:
    """``(H, W) float32`` alpha in [0, 1]: Gaussian-feathered ``(H, W) bool`` mask (soft on both sides of its edge)."""
    a = mask.astype(np.float32)
    if px <= 0:
        return a
    out: F32 = np.clip(cv2.GaussianBlur(a, (0, 0), sigmaX=px / 2.0), 0.0, 1.0).astype(np.float32)
    return out


def inner_feather(mask: Bool, px: float) -> F32:
    """``(H, W) float32`` alpha: 0 outside the ``(H, W) bool`` mask, rising to 1 at ``px`` pixels inside it."""
    if px <= 0:
        return mask.astype(np.float32)
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    out: F32 = np.clip(np.asarray(dist, dtype=np.float32) / float(px), 0.0, 1.0).astype(np.float32)
    return out


def blend(generated: U8, original: U8, alpha: F32) -> U8:
    """``(H, W, 3) uint8``: ``alpha · generated + (1 - alpha) · original``; exactly ``original`` where alpha is 0.

    OpenCV's ``blendLinear`` (rounded, saturated): 13x faster than the same sum in numpy float32 at 1280x720
    (0.15 vs 1.9 s for 49 frames on this project's laptop), within 1 grey level of it.
    """
    a = np.ascontiguousarray(alpha, dtype=np.float32)
    out = np.asarray(cv2.blendLinear(np.ascontiguousarray(generated), np.ascontiguousarray(original), a, 1.0 - a),
                     dtype=np.uint8)
    np.copyto(out, original, where=(a <= 0.0)[..., None])
    return out


def window_starts(total: int, window: int) -> list[int]:
    """First clip frame of each propagation window: windows of ``window`` frames overlapping by one frame."""
    if total <= 1:
        return []
    return list(range(0, total - 1, window - 1))


def resize_frame(img: U8, w: int, h: int) -> U8:
    if img.shape[1] == w and img.shape[0] == h:
        return img.copy()
    shrink = w < img.shape[1] and h < img.shape[0]
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.asarray(out, dtype=np.uint8)


def resize_mask(mask: Bool, w: int, h: int) -> Bool:
    if mask.shape[1] == w and mask.shape[0] == h:
        return mask.copy()
    m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return np.asarray(m > 0.0, dtype=bool)


def to_u8(img: Any) -> U8:
    """Pipeline ``output_type="np"`` float image in [0, 1] → uint8."""
    return np.asarray(np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255), dtype=np.uint8)


def latent_masks(masks: Bool, temporal: int = 4, spatial: int = 8) -> Bool:
    """Downsample ``(N, H, W) bool`` video masks (True = generated) to the video VAE's latent grid.

    The VAE compresses time by ``temporal`` with the first frame on its own: latent frame 0 covers video frame 0,
    latent frame ``k >= 1`` covers video frames ``temporal·(k-1)+1 … temporal·k`` (4k-3 … 4k for CogVideoX).
    A latent cell is True when any pixel of its ``spatial x spatial`` block in any of those frames is True (the
    union: a cell that touches the edited region is generated, never pinned to the source).

    Returns:
        ``(1 + (N - 1) / temporal, H / spatial, W / spatial) bool``.

    Raises:
        ValueError: ``N`` is not ``temporal·k + 1``, or ``H`` / ``W`` are not multiples of ``spatial``.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks: expected (N, H, W) bool, got shape {masks.shape}")
    n, h, w = masks.shape
    if n < 1 or (n - 1) % temporal:
        raise ValueError(f"masks: expected N = {temporal}k + 1 frames (the VAE's temporal grouping), got N = {n}")
    if h % spatial or w % spatial:
        raise ValueError(f"masks: expected H and W multiples of {spatial} (the VAE's spatial factor), got {h}x{w}")
    m = masks.astype(bool)
    groups = [m[:1].any(axis=0)] + [m[1 + temporal * k: 1 + temporal * (k + 1)].any(axis=0)
                                     for k in range((n - 1) // temporal)]
    t = np.stack(groups)  # (F_lat, H, W)
    blocks = t.reshape(t.shape[0], h // spatial, spatial, w // spatial, spatial)
    out: Bool = np.asarray(blocks.any(axis=(2, 4)), dtype=bool)
    return out
