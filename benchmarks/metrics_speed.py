"""CPU cost of an edit's image metrics (issue 14: the GPU waited on them): one real 49-frame 1280x720 clip against a
perturbed copy, road mask on the lower half.

Times, in one run: PSNR as the float64 formula it replaced (whole-clip copy + broadcast boolean index) against
``metrics.psnr`` (integer sums frame by frame); then Farneback flows, SSIM and warping error — the rest of
``edit_metrics`` — with ``metrics.FRAME_THREADS`` = 1 against the default (up to 8 threads). Every pair must give the
same figures (checked). CPU only; no models.

    python benchmarks/metrics_speed.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import data_dir, machine
from lanepipe import metrics
from lanepipe.io.video import decode

CLIP = "project_video_subclip_bridge_6s.mp4"
T = TypeVar("T")


def float_psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_]) -> float:
    """The formula ``metrics.psnr`` had until 2026-12-05."""
    sq = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    sel = np.broadcast_to(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a.shape)
    return float(10 * np.log10(255.0**2 / float(sq[sel].mean())))


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    path = next(data_dir().rglob(CLIP))
    frames = decode(str(path), max_frames=49).frames
    rng = np.random.default_rng(0)
    edited = np.clip(frames.astype(np.int16) + rng.integers(-8, 9, frames.shape), 0, 255).astype(np.uint8)
    mask = np.zeros(frames.shape[:3], bool)
    mask[:, frames.shape[1] // 2:] = True
    print(f"# metrics speed: {path.name}, {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]}; {machine()}")

    olds, news = [], []
    for m in (mask, ~mask) * 2:  # in and out of the mask, as edit_metrics calls it; twice (the float copy varies)
        old, old_s = timed(lambda: float_psnr(frames, edited, m))  # noqa: B023
        new, new_s = timed(lambda: metrics.psnr(frames, edited, m))  # noqa: B023
        assert abs(old - new) < 1e-9, (old, new)
        olds.append(old_s)
        news.append(new_s)
    print(f"psnr per call (4 calls): float64 formula {min(olds):.2f}-{max(olds):.2f} s, integer frame by frame "
          f"{min(news):.2f}-{max(news):.2f} s -> {sum(olds) / sum(news):.1f}x in total, same values")

    threads = metrics.FRAME_THREADS
    rows = {}
    for n in (1, threads):
        metrics.FRAME_THREADS = n
        flows, f_s = timed(lambda: metrics.original_flows(frames))
        ssim, s_s = timed(lambda: metrics.ssim(frames, edited, mask))
        warp, w_s = timed(lambda: metrics.warping_error(edited, flows, mask))  # noqa: B023
        rows[n] = (f_s, s_s, w_s, ssim, warp)
    metrics.FRAME_THREADS = threads
    assert rows[1][3:] == rows[threads][3:]
    for n, (f_s, s_s, w_s, *_) in rows.items():
        print(f"{n} thread(s): flows {f_s:.2f} s, ssim {s_s:.2f} s, warping error {w_s:.2f} s")
    one, many = sum(rows[1][:3]), sum(rows[threads][:3])
    print(f"flows + ssim + warping: {one:.2f} s on 1 thread, {many:.2f} s on {threads} -> {one / many:.1f}x")


if __name__ == "__main__":
    main()
