"""Image and video metrics as pure functions on arrays.

Frames are ``(T, H, W, 3) uint8`` (or ``(H, W, 3)``); masks ``(T, H, W) bool`` select the pixels measured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
T = TypeVar("T")

#: Threads for per-frame OpenCV work (Farneback flow, SSIM, warping): OpenCV releases the GIL and its Farneback is
#: single-threaded, so frames run side by side (8 s → ~1 s for a 49-frame 720p clip's flows on 16 cores).
FRAME_THREADS = max(1, min(8, os.cpu_count() or 1))


def map_frames(fn: Callable[[int], T], n: int) -> list[T]:
    """``[fn(0), ..., fn(n - 1)]``, computed on up to :data:`FRAME_THREADS` threads (in order)."""
    if n <= 1 or FRAME_THREADS == 1:
        return [fn(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=min(FRAME_THREADS, n)) as pool:
        return list(pool.map(fn, range(n)))


def _check_pair(a: U8, b: U8, mask: Mask | None) -> None:
    if a.shape != b.shape:
        raise InputError("metric inputs", "two arrays of the same shape", f"{a.shape} and {b.shape}")
    if mask is not None and mask.shape != a.shape[: mask.ndim]:
        raise InputError("metric mask", f"a mask of shape {a.shape[:mask.ndim]}", f"{mask.shape}")


def psnr(a: U8, b: U8, mask: Mask | None = None, peak: float = 255.0) -> float:
    """PSNR in dB between ``a`` and ``b`` over the pixels where ``mask`` is True (all pixels if None).

    Both images are compared on the same pixel set, so masking is symmetric. Returns ``inf`` when equal
    and ``nan`` when the mask selects nothing. Frame by frame in integers (exact sums): the float64 copy of a
    whole 49-frame 720p clip (~3 GB allocated per call) and a broadcast boolean index took 2.6-11 s a call against
    ~1 s (``benchmarks/metrics_speed.py``).
    """
    _check_pair(a, b, mask)

    def sq_sum(x: U8, y: U8, m: Mask | None) -> tuple[int, int]:  # sum of squared differences, values counted
        d = np.abs(x.astype(np.int16) - y.astype(np.int16)).astype(np.uint16)
        sq = d * d  # <= 65025: fits uint16
        if m is None:
            return int(sq.sum(dtype=np.uint64)), sq.size
        per_px = sq.reshape((*m.shape, -1)).sum(axis=-1, dtype=np.uint32)[m]
        return int(per_px.sum(dtype=np.uint64)), per_px.size * (sq.size // m.size)

    per_frame = a.ndim >= 4 or (mask is not None and mask.ndim >= 3)
    parts = ([sq_sum(a[t], b[t], None if mask is None else mask[t]) for t in range(a.shape[0])] if per_frame
             else [sq_sum(a, b, mask)])
    total, count = sum(p[0] for p in parts), sum(p[1] for p in parts)
    if count == 0:
        return float("nan")
    mse = total / count
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def ssim_map(a: U8, b: U8, sigma: float = 1.5) -> npt.NDArray[np.float64]:
    """Per-pixel SSIM ``(H, W)`` of two ``(H, W, 3)`` uint8 images on luma (Wang et al. 2004: Gaussian window
    sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255)."""
    _check_pair(a, b, None)
    ya = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    yb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(cv2.GaussianBlur(x, (0, 0), sigma), dtype=np.float64)

    mu_a, mu_b = blur(ya), blur(yb)
    var_a = blur(ya * ya) - mu_a**2
    var_b = blur(yb * yb) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(a: U8, b: U8, mask: Mask | None = None) -> float:
    """Mean SSIM of ``(T, H, W, 3)`` (or ``(H, W, 3)``) clips over the pixels where ``mask`` holds (both images
    are compared on the same pixel set). ``nan`` when the mask selects nothing."""
    _check_pair(a, b, mask)
    a4, b4 = (a[None], b[None]) if a.ndim == 3 else (a, b)
    m4 = None if mask is None else (mask[None] if mask.ndim == 2 else mask)

    def one(t: int) -> npt.NDArray[np.float64]:
        smap = ssim_map(a4[t], b4[t])
        return smap.ravel() if m4 is None else smap[m4[t]]

    vals = map_frames(one, a4.shape[0])
    flat = np.concatenate(vals) if vals else np.zeros(0)
    return float(flat.mean()) if flat.size else float("nan")


def image_metrics(original: U8, edited: U8, mask: Mask) -> dict[str, float]:
    """PSNR and SSIM of an edited clip against its original, inside and outside the edit mask ``(T, H, W)``."""
    return {"psnr_in_mask": psnr(original, edited, mask), "psnr_out_mask": psnr(original, edited, ~mask),
            "ssim_in_mask": ssim(original, edited, mask), "ssim_out_mask": ssim(original, edited, ~mask)}


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


IMAGE_METRIC_KEYS: tuple[str, ...] = ("psnr_in_mask", "psnr_out_mask", "ssim_in_mask", "ssim_out_mask",
                                      "warping_error_original", "warping_error_edited")


def original_flows(frames: U8) -> list[npt.NDArray[np.float32]]:
    """Farneback flow between consecutive frames ``(T, H, W, 3)``: ``T - 1`` fields."""
    return map_frames(lambda t: farneback_flow(frames[t], frames[t + 1]), frames.shape[0] - 1)


def edit_metrics(original: U8, edited: U8, mask: Mask,
                 flows: list[npt.NDArray[np.float32]] | None = None) -> dict[str, float]:
    """What an edit did to a clip: PSNR/SSIM inside and outside the road ``mask`` and the warping error
    (temporal consistency) of both clips inside it, with the flow of the original (``flows``, computed here when
    not given). Meant for the edited frames in memory, before any lossy encoding."""
    out = image_metrics(original, edited, mask)
    if original.shape[0] > 1:
        fl = original_flows(original) if flows is None else flows
        out["warping_error_original"] = warping_error(original, fl, mask)
        out["warping_error_edited"] = warping_error(edited, fl, mask)
    return out


def warping_error(frames: U8, flows: list[npt.NDArray[np.float32]], mask: Mask | None = None) -> float:
    """Mean absolute warping error (0-255 units) of a video under given flows.

    ``flows[t]`` maps frame t to t+1 (computed once, on the original video, so an original and an edited clip
    are judged by the same motion, as in Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).
    Only pixels where ``mask[t]`` holds are measured.
    """
    if len(flows) != frames.shape[0] - 1:
        raise InputError("warping_error", f"{frames.shape[0] - 1} flows (one per consecutive pair)", str(len(flows)))

    def one(t: int) -> float | None:
        warped = warp_back(frames[t + 1], flows[t]).astype(np.float32)
        d = np.abs(warped - frames[t].astype(np.float32)).mean(axis=-1)
        sel = mask[t] if mask is not None else np.ones(d.shape, bool)
        return float(d[sel].mean()) if sel.any() else None

    errs = [e for e in map_frames(one, len(flows)) if e is not None]
    return float(np.mean(errs)) if errs else float("nan")


# ------------------------------------------------------------------------------------------ trajectories
#: Waypoint spacing of trajectories (s): 10 Hz, as :mod:`lanepipe.predict.base`.
TRAJ_DT_S = 0.1
#: Horizons (s) reported by :func:`trajectory_metrics` besides the full length (Alpamayo's
#: ``metrics/distance_metrics.py`` reports 0.5, 1, 3 and 5 s).
HORIZONS_S: tuple[float, ...] = (0.5, 1.0, 3.0, 5.0)

F64 = npt.NDArray[np.float64]


def _as_trajs(pred: npt.ArrayLike, gt: npt.ArrayLike) -> tuple[F64, F64]:
    """``pred`` as ``(K, N, 2)`` and ``gt`` as ``(N, 2)`` float64 (XY of ``(.., 3)`` inputs)."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] not in (2, 3) or p.shape[0] < 1:
        raise InputError("predicted trajectories", "(K, N, 3) or (K, N, 2) with K >= 1", f"shape {p.shape}")
    if g.ndim != 2 or g.shape[1] not in (2, 3) or g.shape[0] != p.shape[1]:
        raise InputError("ground-truth trajectory", f"({p.shape[1]}, 3) or ({p.shape[1]}, 2), as many steps as "
                         "the prediction", f"shape {g.shape}")
    if not (np.all(np.isfinite(p[..., :2])) and np.all(np.isfinite(g[:, :2]))):
        raise InputError("trajectories", "finite waypoints", "NaN or inf")
    return p[..., :2], g[:, :2]


def _horizon_steps(horizon_s: float | None, n: int) -> int:
    if horizon_s is None:
        return n
    steps = round(horizon_s / TRAJ_DT_S)
    if not (abs(steps * TRAJ_DT_S - horizon_s) < 1e-6 and 1 <= steps <= n):
        raise InputError("horizon_s", f"a multiple of {TRAJ_DT_S} s between {TRAJ_DT_S} and {n * TRAJ_DT_S:.1f} s",
                         f"{horizon_s}")
    return steps


def min_ade(pred: npt.ArrayLike, gt: npt.ArrayLike, horizon_s: float | None = None) -> float:
    """Minimum over samples of the average displacement error, in the XY plane (metres).

    Args:
        pred: ``(K, N, 3)`` (or ``(K, N, 2)``) predicted waypoints at 10 Hz, ``pred[k, i]`` at ``(i + 1) * 0.1`` s.
        gt: ``(N, 3)`` (or ``(N, 2)``) ground truth in the same frame (e.g. the t0 ego frame).
        horizon_s: use the first ``horizon_s / 0.1`` steps only (``None``: all ``N``); e.g. 0.5 → 5 steps.

    Returns:
        ``min_k mean_i ||pred[k, i, :2] - gt[i, :2]||``. z is ignored (as Alpamayo's minADE).

    Raises:
        InputError: shapes that do not match, non-finite values, a horizon outside ``(0, N * 0.1]``.
    """
    p, g = _as_trajs(pred, gt)
    n = _horizon_steps(horizon_s, g.shape[0])
    err = np.linalg.norm(p[:, :n] - g[None, :n], axis=-1)  # (K, n)
    return float(err.mean(axis=1).min())


def min_fde(pred: npt.ArrayLike, gt: npt.ArrayLike, horizon_s: float | None = None) -> float:
    """Minimum over samples of the XY displacement at the horizon's last step (metres).

    Same arguments as :func:`min_ade`; the error is taken at step ``horizon_s / 0.1 - 1`` (the last one for
    ``None``). The sample with the smallest FDE need not be the one with the smallest ADE.
    """
    p, g = _as_trajs(pred, gt)
    n = _horizon_steps(horizon_s, g.shape[0])
    return float(np.linalg.norm(p[:, n - 1] - g[None, n - 1], axis=-1).min())


def _horizon_key(h: float) -> str:
    return f"{h:g}s"


def trajectory_metrics(pred: npt.ArrayLike, gt: npt.ArrayLike) -> dict[str, float]:
    """minADE and minFDE at 0.5, 1, 3 and 5 s and over the whole trajectory.

    Args:
        pred: ``(K, N, 3)`` predicted waypoints (10 Hz); gt: ``(N, 3)`` ground truth, same frame.

    Returns:
        ``{"min_ade_0.5s", "min_fde_0.5s", …, "min_ade_5s", "min_fde_5s", "min_ade", "min_fde"}`` in metres;
        the unsuffixed keys use all ``N`` steps (6.4 s for 64 steps). Horizons beyond ``N`` steps are left out.
    """
    _, g = _as_trajs(pred, gt)
    out: dict[str, float] = {}
    for h in HORIZONS_S:
        if round(h / TRAJ_DT_S) <= g.shape[0]:
            out[f"min_ade_{_horizon_key(h)}"] = min_ade(pred, gt, h)
            out[f"min_fde_{_horizon_key(h)}"] = min_fde(pred, gt, h)
    out["min_ade"] = min_ade(pred, gt)
    out["min_fde"] = min_fde(pred, gt)
    return out


def prediction_shift(pred_a: npt.ArrayLike, pred_b: npt.ArrayLike) -> dict[str, float]:
    """How far prediction ``b`` (e.g. on the edited clip) moved from prediction ``a`` (on the original).

    Each prediction is first reduced to its sample mean ``(N, 2)`` (the K samples of ``a`` and ``b`` are not
    paired, and K may differ), then compared step by step in the XY plane of the common t0 ego frame.

    Args:
        pred_a, pred_b: ``(K, N, 3)`` (or ``(K, N, 2)``) trajectories with the same ``N``; K may differ.

    Returns:
        ``ade``: mean L2 distance between the two mean trajectories (m);
        ``fde``: their distance at the last step (m);
        ``max_lateral_offset``: the ``Δy = y_b - y_a`` of largest magnitude (m, ego frame; + = ``b`` lies to the
        left of ``a``), 0.0 when they coincide;
        ``max_lateral_offset_t_s``: when it occurs (s after t0);
        ``lateral_offset_0.5s``, ``_1s``, ``_3s``, ``_5s`` (those within ``N`` steps): ``Δy`` at that time (m);
        with a long horizon the largest offset is usually at the end, where a small change of curvature
        outweighs a change of lane position, so these show the near-term reaction.

    Raises:
        InputError: shapes that do not match or non-finite values.
    """
    a = np.asarray(pred_a, dtype=np.float64)
    b = np.asarray(pred_b, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or a.shape[2] not in (2, 3):
        raise InputError("prediction_shift", "two (K, N, 3) trajectory sets with the same N",
                         f"shapes {a.shape} and {b.shape}")
    ma = a.mean(axis=0)
    mb = b.mean(axis=0)
    pa, gb = _as_trajs(ma[None], mb)
    d = np.linalg.norm(pa[0] - gb, axis=-1)
    dy = gb[:, 1] - pa[0, :, 1]
    i = int(np.argmax(np.abs(dy)))
    out = {"ade": float(d.mean()), "fde": float(d[-1]), "max_lateral_offset": float(dy[i]),
           "max_lateral_offset_t_s": round((i + 1) * TRAJ_DT_S, 3)}
    for h in HORIZONS_S:
        n = round(h / TRAJ_DT_S)
        if n <= len(dy):
            out[f"lateral_offset_{_horizon_key(h)}"] = float(dy[n - 1])
    return out
