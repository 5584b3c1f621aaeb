"""A colour-only lane edit for measuring colour invariance: existing paint recoloured in place, nothing moved.

The procedural painter repaints a line from its own estimate of where the boundary is, so its "yellow solid →
white solid" also moves, widens or dims the line a little. :func:`recolour_paint` changes only the hue of the
paint pixels already there (yellow → white, or white → yellow), pixel for pixel, so any change in a planner's
output is due to colour alone. Paint is found per row with a horizontal white top-hat on the lightness (or the
yellowness) whose kernel grows with the row's depth below ``horizon`` (a line's width in pixels does too); the
recolouring is blended by how strongly a pixel stands out, so the line's soft edges stay soft.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

__all__ = ["recolour_paint"]

#: RGB of fresh yellow road paint relative to its brightest channel (a saturated amber-yellow, as MUTCD's
#: highway yellow; FHWA color specification 23 CFR 655 Appendix to Subpart F gives its chromaticity box).
_YELLOW = np.array([1.0, 0.82, 0.22], dtype=np.float32)


def _row_tophat(chan: F32, horizon: int, width_frac: float) -> F32:
    """Horizontal top-hat with a kernel of ``width_frac`` of the width at the bottom row, shrinking linearly to
    3 px at ``horizon``; rows above the horizon give 0."""
    h, w = chan.shape
    out = np.zeros_like(chan)
    if horizon >= h - 1:
        return out
    band = max(1, (h - horizon) // 12)
    for r0 in range(horizon, h, band):
        r1 = min(h, r0 + band)
        depth = ((r0 + r1) / 2 - horizon) / max(1, h - 1 - horizon)
        k = max(3, round(width_frac * w * depth) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1))
        out[r0:r1] = cv2.morphologyEx(chan[r0:r1], cv2.MORPH_TOPHAT, kernel)
    return out


def recolour_paint(frames: U8, to: Literal["white", "yellow"], horizon_frac: float = 0.55,
                   width_frac: float = 0.06) -> U8:
    """Recolour the lane paint of ``(T, H, W, 3) uint8`` RGB frames below ``horizon_frac`` of the height.

    ``to="white"``: yellow paint (yellowness ``(R + G) / 2 - B`` standing out) becomes grey-white at its own
    brightest channel. ``to="yellow"``: white paint (lightness standing out, little chroma) becomes yellow of
    the same brightest channel. Pixels are blended by how far they stand out (full change at twice the
    threshold); everything else is left as it is.

    Raises:
        InputError: frames that are not ``(T, H, W, 3) uint8`` or ``to`` not white/yellow.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError("frames", "(T, H, W, 3) uint8 RGB", f"{getattr(frames, 'shape', type(frames))}")
    if to not in ("white", "yellow"):
        raise InputError("to", "'white' or 'yellow'", repr(to))
    out = frames.copy()
    horizon = int(horizon_frac * frames.shape[1])
    for t in range(len(frames)):
        f = frames[t].astype(np.float32)
        top = f.max(axis=-1)
        yel = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
        if to == "white":
            th = _row_tophat(np.ascontiguousarray(yel), horizon, width_frac)
            wgt = np.clip((th - 25.0) / 25.0, 0.0, 1.0)
            target = np.repeat(top[..., None], 3, axis=-1)
        else:
            lum = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
            th = _row_tophat(np.ascontiguousarray(lum), horizon, width_frac)
            chroma = top - f.min(axis=-1)
            wgt = np.clip((th - 20.0) / 20.0, 0.0, 1.0) * (chroma < 40.0)
            target = top[..., None] * _YELLOW
        res = f + wgt[..., None] * (target - f)
        out[t] = np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return out
