"""One clip across GPUs (issue 17 item 2): CFG parallel x Ulysses sequence parallel against one GPU.

Times one clip end to end (FLUX Fill first frame + CogVideoX-I2V propagation with CFG + decode + compositing,
:meth:`GenerativePainter.paint`) at full size with random-init bf16 weights (``edit.generative.preset=random-init``:
speed does not depend on weight values) for the ``(cfg, ulysses)`` layouts ``1x1`` (one GPU, the reference),
``2x1`` (CFG branches on two GPUs), ``2x(N/2)`` and ``1xN`` on N GPUs of one host, each a group of Ray actors
(:class:`lanepipe.edit.generative.group.ParallelGroup`; the ``1x1`` reference runs in one Ray actor holding one
GPU). Every rank builds the same seeded random weights, so outputs are comparable: each layout's frames (and, with
``--latents``, one window's final latents) are compared with the one-GPU output as a relative error
``||x - x_ref|| / ||x_ref||`` (frames inside the road mask, where the models paint).

Per layout: model build/load seconds, a warm-up clip (first NCCL calls, cuDNN plans), then the timed clip with
rank 0's phase timings (``flux``, ``propagate``, ``composite``). The input is the synthetic sample clip
(``lanepipe sample``: 49 frames at 720x480, ground-truth road masks), so nothing outside the repo is needed.

GPU machine (one command; N = 2, 4 or 8 GPUs)::

    python benchmarks/multi_gpu.py --gpus 8 --out multi_gpu_8.json

CPU wiring check (tiny-random models, gloo, 4 CPU ranks sharing the cores: timings say nothing about GPUs)::

    python benchmarks/multi_gpu.py --size tiny --gpus 4 --out /tmp/multi_gpu_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import ray

from benchmarks._common import machine
from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative.group import ParallelGroup
from lanepipe.edit.generative.masks import dilate_mask, resize_frame, resize_mask
from lanepipe.errors import ConfigError
from lanepipe.lanes.instructions import LaneSpec, parse_instruction
from lanepipe.sample import render_sample
from lanepipe.types import Clip, RoadMasks

SIZES: dict[str, dict[str, Any]] = {
    # the seed's settings (issue 15): 720x480, 49 frames, 50 + 50 steps, CFG 6
    "full": {"frames": 49, "width": 720, "height": 480, "config": {"preset": "random-init"}},
    "tiny": {"frames": 9, "width": 96, "height": 64,
             "config": {"preset": "tiny-random", "width": 80, "height": 48}},  # 45 video tokens: uneven shards
}
SPEC = "double yellow solid"


def layouts(n: int) -> list[tuple[int, int]]:
    """``(cfg, ulysses)`` pairs for ``n`` devices: 1x1, 2x1, 2x(n/2), 1xn, without repeats."""
    out: list[tuple[int, int]] = []
    for lay in ((1, 1), (2, 1), (2, n // 2), (1, n)):
        if lay[0] * lay[1] <= n and lay[1] >= 1 and lay not in out:
            out.append(lay)
    return out


class Single:
    """The one-device reference in its own Ray actor (one GPU, like one rank of a group)."""

    def __init__(self, cfg: GenerativeConfig) -> None:
        self.painter = GenerativePainter(cfg)

    def setup(self, flux: bool = True) -> None:
        del flux  # the reference always holds both pipelines
        self.painter.setup()

    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec) -> Any:
        return self.painter.paint(clip, masks, spec)

    def window(self, frames: Any, masks: Any, condition: Any, prompt: str, seed: int) -> Any:
        out, _ = self.painter.propagate_window(frames, masks, condition, prompt, seed, output_type="latent")
        return out.float().cpu().numpy()


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    x64, r64 = x.astype(np.float64), ref.astype(np.float64)
    return float(np.linalg.norm(x64 - r64) / max(np.linalg.norm(r64), 1e-12))


def run_layout(cfg: GenerativeConfig, clip: Clip, masks: RoadMasks, spec: LaneSpec, window: tuple[Any, ...] | None,
               on_gpu: bool, warmup: bool) -> dict[str, Any]:
    """Build (timed), optional warm-up clip, timed clip, optional window latents for one layout."""
    par = cfg.parallel
    t0 = time.perf_counter()
    if par.world == 1:
        opts: dict[str, Any] = {"num_cpus": par.worker_cpus, "num_gpus": 1 if on_gpu else 0}
        if not on_gpu:
            opts["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
        dev = "cuda:0" if on_gpu else "cpu"
        runner: Any = ray.remote(Single).options(**opts).remote(
            cfg.model_copy(update={"flux_device": dev, "video_device": dev}))
        call = lambda name, *a: ray.get(getattr(runner, name).remote(*a))  # noqa: E731
        close = lambda: ray.kill(runner)  # noqa: E731
    else:
        group = ParallelGroup(cfg, GenerativePainter)
        call = lambda name, *a: getattr(group, name)(*a)  # noqa: E731
        close = group.close
    try:
        call("setup", True)  # FLUX + CogVideoX on every rank
        t1 = time.perf_counter()
        warm_s = None
        if warmup:
            call("paint", clip, masks, spec)
            warm_s = round(time.perf_counter() - t1, 3)
        t2 = time.perf_counter()
        res = call("paint", clip, masks, spec)
        t3 = time.perf_counter()
        latents = call("window", *window) if window is not None else None
    finally:
        close()
    return {"cfg": par.cfg, "ulysses": par.ulysses, "world": par.world, "load_s": round(t1 - t0, 3),
            "warmup_clip_s": warm_s, "clip_s": round(t3 - t2, 3), "timing_s": res.diagnostics.get("timing_s"),
            "frames": res.frames, "latents": latents}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--gpus", type=int, default=None, help="devices (GPUs; CPU ranks with --size tiny); default: "
                    "all GPUs torch sees, 4 with --size tiny")
    ap.add_argument("--steps", type=int, default=None, help="FLUX and CogVideoX steps (default: the config's, 50)")
    ap.add_argument("--latents", action="store_true", help="also compare one window's final latents (one more "
                    "CogVideoX run per layout)")
    ap.add_argument("--no-warmup", action="store_true", help="time the first clip (no warm-up clip)")
    ap.add_argument("--out", type=Path, required=True, help="JSON result file (written atomically)")
    args = ap.parse_args()

    size = SIZES[args.size]
    tiny = args.size == "tiny"
    if args.gpus is None:
        import torch

        args.gpus = 4 if tiny else torch.cuda.device_count()
    if not tiny and args.gpus < 2:
        sys.exit(f"--size full needs at least 2 GPUs of one host, torch sees {args.gpus}: blocked on this machine")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, 2), num_gpus=0 if tiny else args.gpus,
                 include_dashboard=False, logging_level="WARNING", log_to_driver=False)

    s = render_sample(num_frames=size["frames"], width=size["width"], height=size["height"])
    clip, masks, spec = s.to_clip(), RoadMasks(s.road_masks, "gt"), parse_instruction(SPEC)
    base: dict[str, Any] = dict(size["config"])
    if args.steps is not None:
        base.update(flux_steps=args.steps, video_steps=args.steps)
    if tiny:  # ranks share the laptop's cores: a fraction of a CPU each
        base["parallel"] = {"worker_cpus": round(1.0 / args.gpus, 3), "backend": "gloo"}
    probe = GenerativeConfig(**base)
    window = None
    if args.latents:
        w, h, n = probe.width, probe.height, probe.num_frames
        idx = [min(j, clip.num_frames - 1) for j in range(n)]
        frames = np.stack([resize_frame(clip.frames[i], w, h) for i in idx])
        gm = np.stack([dilate_mask(resize_mask(masks.masks[i], w, h), probe.mask_dilate_px) for i in idx])
        window = (frames, gm, frames[0], spec.caption(), probe.seed + 1)

    rows: list[dict[str, Any]] = []
    ref: dict[str, Any] | None = None
    road = masks.masks
    for c, u in layouts(args.gpus):
        par = {**base.get("parallel", {}), "cfg": c, "ulysses": u}
        cfg = GenerativeConfig(**{**base, "parallel": par})
        print(f"layout cfg={c} x ulysses={u} ...", flush=True)
        try:
            row = run_layout(cfg, clip, masks, spec, window, on_gpu=not tiny, warmup=not args.no_warmup)
        except ConfigError as exc:  # e.g. ulysses not dividing the heads (the tiny model has 2)
            rows.append({"cfg": c, "ulysses": u, "world": c * u, "error": str(exc).splitlines()[0]})
            print(json.dumps(rows[-1]), flush=True)
            continue
        frames, latents = row.pop("frames"), row.pop("latents")
        if ref is None:
            ref = {"frames": frames, "latents": latents}
        row["frames_rel_err"] = rel_err(frames[road], ref["frames"][road])
        row["frames_max_abs"] = int(np.abs(frames.astype(np.int16) - ref["frames"].astype(np.int16)).max())
        if latents is not None:
            row["latents_rel_err"] = rel_err(latents, ref["latents"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    one = rows[0]["clip_s"]
    for r in rows:
        if "clip_s" in r:
            r["speedup_vs_1"] = round(one / r["clip_s"], 3) if r["clip_s"] else None
    result = {"size": args.size, "devices": args.gpus, "device_kind": "cpu (gloo)" if tiny else "cuda (nccl)",
              "steps": {"flux": probe.flux_steps, "video": probe.video_steps}, "clip": [s.to_clip().num_frames,
              size["width"], size["height"]], "machine": machine(), "layouts": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
