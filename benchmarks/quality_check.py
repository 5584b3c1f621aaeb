"""Picture quality of the CogVideoX speed levers that change outputs (issue 15): step caches and CFG truncation.

Their effect cannot be judged on random weights, so this runs on REAL checkpoints: one CogVideoX-I2V propagation
window of a real clip (first frame as the condition, road masks from the grid segmenter), once with the stock
settings and once per lever on the same inputs and seed, and compares each lever's frames with the stock frames:

* ``psnr_db``       — PSNR over all pixels of the window (``inf``: identical);
* ``psnr_road_db``  — PSNR inside the road mask only (where the painter repaints);
* ``lpips``         — LPIPS (AlexNet) mean over frames when the ``lpips`` package is importable, else None;
* ``s``             — wall time of the window (the speed side of the trade).

Levers (``--levers``, comma list): ``faster``, ``pab``, ``taylorseer`` (``video_accel.cache``), ``cfg0.5`` /
``cfg0.7`` (``video_accel.cfg_truncation``), ``none`` (the stock settings again: must give ``inf``).
Compiled blocks are off here so that only the lever differs.

Usage, with the checkpoints in ``$LANEPIPE_WEIGHTS_DIR`` (folder ``CogVideoX-5b-I2V`` in diffusers layout)::

    LANEPIPE_WEIGHTS_DIR=/models python benchmarks/quality_check.py --levers faster,pab,taylorseer,cfg0.5 \\
        --out quality.json

``tests/edit/test_quality_check.py`` runs the same code on the tiny random models (CPU wiring) and, marked
``weights``, on the real checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from lanepipe.edit.config import AccelConfig, GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative.masks import dilate_mask, resize_frame, resize_mask

#: lever name → the ``video_accel`` fields it sets
LEVERS: dict[str, dict[str, Any]] = {
    "none": {}, "faster": {"cache": "faster"}, "pab": {"cache": "pab"}, "taylorseer": {"cache": "taylorseer"},
    "cfg0.5": {"cfg_truncation": 0.5}, "cfg0.7": {"cfg_truncation": 0.7},
}
COGVIDEOX_FOLDER = "CogVideoX-5b-I2V"


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8 frames ``a`` vs ``b`` (``(N, h, w, 3)``), over ``mask`` (``(N, h, w)``) when given;
    ``inf`` when they are equal there."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: frames of one shape expected, got {a.shape} and {b.shape}")
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        d = d[mask]
    mse = float(d.mean()) if d.size else 0.0
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def lpips_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean LPIPS (AlexNet) over frames, or None when the ``lpips`` package is not installed."""
    try:
        import lpips
    except ImportError:
        return None
    import torch

    net = lpips.LPIPS(net="alex", verbose=False).eval()

    def t(x: np.ndarray) -> Any:
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    with torch.inference_mode():
        return float(net(t(a), t(b)).mean())


def compare(reference: np.ndarray, candidate: np.ndarray, road: np.ndarray) -> dict[str, Any]:
    """The figures of one lever's frames against the reference frames (see the module docstring)."""
    return {"psnr_db": round(psnr(candidate, reference), 2), "psnr_road_db": round(psnr(candidate, reference, road), 2),
            "lpips": lpips_distance(candidate, reference)}


def window_inputs(frames: np.ndarray, masks: np.ndarray, cfg: GenerativeConfig) -> tuple[np.ndarray, np.ndarray]:
    """The first ``cfg.num_frames`` frames and dilated road masks at the model size (as the painter prepares)."""
    n = cfg.num_frames
    if len(frames) < n:
        raise ValueError(f"quality check: a clip of at least {n} frames expected, got {len(frames)}")
    fw = np.stack([resize_frame(f, cfg.width, cfg.height) for f in frames[:n]])
    mw = np.stack([dilate_mask(resize_mask(m, cfg.width, cfg.height), cfg.mask_dilate_px) for m in masks[:n]])
    return fw, mw


def run(base: GenerativeConfig, frames: np.ndarray, masks: np.ndarray, levers: list[str],
        prompt: str = "road with double yellow solid lane markings", seed: int = 1) -> dict[str, Any]:
    """Stock window, then one window per lever on the same inputs; returns ``{"stock_s", lever: figures}``.

    The video pipeline is loaded once and shared: each lever's cache is disabled and its CFG-truncation hooks
    removed before the next one.
    """
    unknown = [lv for lv in levers if lv not in LEVERS]
    if unknown:
        raise ValueError(f"--levers: unknown {unknown}; choose from {', '.join(LEVERS)}")
    plain = base.model_copy(update={"video_accel": AccelConfig(compile="none")})
    fw, mw = window_inputs(frames, masks, plain)
    ref_painter = GenerativePainter(plain)
    t0 = time.perf_counter()
    reference, _ = ref_painter.propagate_window(fw, mw, fw[0], prompt, seed)
    out: dict[str, Any] = {"stock_s": round(time.perf_counter() - t0, 2)}
    pipe = ref_painter._activate("video")
    ref_u8 = np.clip(np.round(reference * 255.0), 0, 255).astype(np.uint8)
    for lever in levers:
        va = AccelConfig(compile="none", **LEVERS[lever])
        painter = GenerativePainter(plain.model_copy(update={"video_accel": va}), video_pipeline=lambda _c: pipe)
        try:
            t0 = time.perf_counter()
            video, _ = painter.propagate_window(fw, mw, fw[0], prompt, seed)
            secs = time.perf_counter() - t0
        finally:
            if getattr(pipe.transformer, "is_cache_enabled", False):
                pipe.transformer.disable_cache()
            if painter._truncation is not None:
                for h in painter._truncation.handles:
                    h.remove()
        got = np.clip(np.round(video * 255.0), 0, 255).astype(np.uint8)
        out[lever] = {**compare(ref_u8, got, mw), "s": round(secs, 2), "accel": painter.accel_applied.get("video")}
    return out


def read_clip(path: Path, max_frames: int) -> np.ndarray:
    """``(T, H, W, 3) uint8`` RGB frames of a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    if not frames:
        raise FileNotFoundError(f"quality check: no frames decoded from {path}")
    return np.stack(frames)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.environ.get("LANEPIPE_WEIGHTS_DIR"),
                    help="folder holding CogVideoX-5b-I2V (default $LANEPIPE_WEIGHTS_DIR)")
    ap.add_argument("--cogvideox", default=None, help="CogVideoX I2V folder (default <weights>/CogVideoX-5b-I2V)")
    ap.add_argument("--clip", default=None, help="video file (default: the shared data's bridge clip)")
    ap.add_argument("--levers", default="faster,pab,taylorseer,cfg0.5")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    if args.cogvideox is None and not args.weights:
        sys.exit("quality check: set LANEPIPE_WEIGHTS_DIR (or --weights / --cogvideox) to the real checkpoints")
    model = Path(args.cogvideox) if args.cogvideox else Path(args.weights) / COGVIDEOX_FOLDER
    if not (model / "model_index.json").is_file():
        sys.exit(f"quality check: {model} is not a diffusers CogVideoX I2V folder (no model_index.json)")
    from lanepipe.segment.config import GridConfig
    from lanepipe.segment.grid import segment_frames

    base = GenerativeConfig(cogvideox_model=str(model), video_steps=args.steps)
    if args.clip:
        clip = Path(args.clip)
    else:
        data = Path(os.environ.get("LANEPIPE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
        clip = data / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4"
    frames = read_clip(clip, base.num_frames)
    masks = segment_frames(frames, GridConfig())
    res = {"clip": str(clip), "model": str(model), "steps": args.steps,
           **run(base, frames, masks, [s.strip() for s in args.levers.split(",") if s.strip()])}
    text = json.dumps(res, indent=1, default=str)
    print(text)
    if args.out:
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return res


if __name__ == "__main__":
    main()
