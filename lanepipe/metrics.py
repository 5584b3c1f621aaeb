"""Image and video metrics as pure functions on arrays.

Frames are ``(T, H, W, 3) uint8`` (or ``(H, W, 3)``); masks ``(T, H, W) bool`` select the pixels measured.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def _check_pair(a: U8, b: U8, mask: Mask | None) -> None:
    if a.shape != b.shape:
        raise InputError("metric inputs", "two arrays of the same shape", f"{a.shape} and {b.shape}")
    if mask is not None and mask.shape != a.shape[: mask.ndim]:
        raise InputError("metric mask", f"a mask of shape {a.shape[:mask.ndim]}", f"{mask.shape}")


def psnr(a: U8, b: U8, mask: Mask | None = None, peak: float = 255.0) -> float:
    """PSNR in dB between ``a`` and ``b`` over the pixels where ``mask`` is True (all pixels if None).

    Both images are compared on the same pixel set, so masking is symmetric. Returns ``inf`` when equal
    and ``nan`` when the mask selects nothing.
    """
    _check_pair(a, b, mask)
    diff = a.astype(np.float64) - b.astype(np.float64)
    sq = diff**2
    if mask is not None:
        sel = np.broadcast_to(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a.shape)
        if not sel.any():
            return float("nan")
        mse = float(sq[sel].mean())
    else:
        mse = float(sq.mean())
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def farneback_flow(prev: U8, nxt: U8) -> npt.NDArray[np.float32]:
    """Dense optical flow ``(H, W, 2) float32`` (dx, dy) from ``prev`` to ``nxt`` (RGB uint8 frames)."""
    g0 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(nxt, cv2.COLOR_RGB2GRAY)
    flow = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 21, 3, 5, 1.1, 0)  # type: ignore[call-overload]
    return np.asarray(flow, dtype=np.float32)


def warp_back(frame: U8, flow: npt.NDArray[np.float32]) -> U8:
    """Sample ``frame`` (time t+1) at ``p + flow(p)``: the t+1 frame warped back onto frame t."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(frame, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def warping_error(frames: U8, flows: list[npt.NDArray[np.float32]], mask: Mask | None = None) -> float:
    """Mean absolute warping error (0-255 units) of a video under given flows.

    ``flows[t]`` maps frame t to t+1 (computed once, on the original video, so an original and an edited clip
    are judged by the same motion, as in Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).
    Only pixels where ``mask[t]`` holds are measured.
    """
    if len(flows) != frames.shape[0] - 1:
        raise InputError("warping_error", f"{frames.shape[0] - 1} flows (one per consecutive pair)", str(len(flows)))
    errs: list[float] = []
    for t, flow in enumerate(flows):
        warped = warp_back(frames[t + 1], flow).astype(np.float32)
        d = np.abs(warped - frames[t].astype(np.float32)).mean(axis=-1)
        sel = mask[t] if mask is not None else np.ones(d.shape, bool)
        if sel.any():
            errs.append(float(d[sel].mean()))
    return float(np.mean(errs)) if errs else float("nan")
