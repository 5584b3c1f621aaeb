"""Erasing painted markings: smooth background fill plus asphalt texture copied from beside the line.

The hole (paint pixels) is filled in two parts:

1. the low-frequency road colour, by push-pull interpolation (a weighted image pyramid: each level is the
   weighted mean of the known pixels below it; holes take the value of the first coarser level that
   covers them), so a double line is bridged from both sides and shadows run through the hole;
2. the high-frequency texture (grain, cracks, aggregate), copied from a strip of asphalt beside the hole,
   shifted along the image row by a fixed distance on the ground, so it keeps the road's own noise
   statistics and perspective scale. Where both candidate sources are paint or off the road, Gaussian noise
   with the texture's local spread is used instead.

Shapes follow ``(H, W, 3) float32`` for colour work images and ``(H, W) bool`` for masks.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]


def push_pull_fill(img: F32, known: Bool, levels: int = 7) -> F32:
    """Fill the pixels where ``known`` is False from the known ones (smooth, no texture).

    Args:
        img: ``(h, w, C) float32``.
        known: ``(h, w) bool``, True where ``img`` is valid.
        levels: pyramid depth; holes wider than about ``2 ** levels`` px take a near-global mean.

    Returns:
        ``(h, w, C) float32``: ``img`` where known (blended at hole borders), interpolated elsewhere.
    """
    w0 = known.astype(np.float32)
    num = [img * w0[..., None]]
    den = [w0]
    for _ in range(levels):
        if min(den[-1].shape[:2]) < 4:
            break
        num.append(np.asarray(cv2.pyrDown(num[-1]), dtype=np.float32).reshape(
            (den[-1].shape[0] + 1) // 2, (den[-1].shape[1] + 1) // 2, -1))
        den.append(np.asarray(cv2.pyrDown(den[-1]), dtype=np.float32))
    est = num[-1] / np.maximum(den[-1], 1e-6)[..., None]
    for k in range(len(num) - 2, -1, -1):
        h, w = den[k].shape
        up = np.asarray(cv2.pyrUp(est, dstsize=(w, h)), dtype=np.float32).reshape(h, w, -1)
        conf = np.clip(den[k] * 2.0, 0.0, 1.0)[..., None]
        est = conf * (num[k] / np.maximum(den[k], 1e-6)[..., None]) + (1.0 - conf) * up
    out: F32 = est.astype(np.float32, copy=False)
    return out


def texture_sources(rows: Ints, cols: Ints, shift_px: F32, bad: Bool) -> tuple[Ints, Bool]:
    """Column of the pixel to copy texture from, for each hole pixel ``(rows, cols)``.

    Tries ``cols + shift``, then ``cols - shift``, then twice the shift each way; a source is usable when
    inside the image and not ``bad`` (paint or off the road).

    Returns:
        ``(N,) intp`` source columns and ``(N,) bool`` found flags.
    """
    w = bad.shape[1]
    src = cols.copy()
    found = np.zeros(len(cols), dtype=bool)
    s = shift_px[rows]
    for mult in (1.0, -1.0, 2.0, -2.0):
        cand = np.round(cols + mult * s).astype(np.intp)
        inside = (cand >= 0) & (cand < w)
        ok = ~found & inside
        ok[ok] = ~bad[rows[ok], cand[ok]]
        src[ok] = cand[ok]
        found |= ok
    return src, found
