"""GPU figures of the generative stack at full size with random bf16 weights (issues 5 and 6).

Speed does not depend on weight values, so each model is built from its published architecture (configs written
out below, with their sources) with random weights directly on the GPU, and timed on a real dashcam clip.

Parts (``--parts``, comma list):

* ``matmul``   — the machine's bf16 matmul rate (8192³, mean of 10 after 3 warm-ups): the FLOP-floor denominator.
* ``flux``     — FLUX.1 Fill (12B transformer + T5-XXL + CLIP-L + VAE), 720x480, 50 steps, guidance 30, 512 tokens:
  stock ``FluxFillPipeline`` and ours (lanepipe accel options) in the same process.
* ``judge``    — Qwen2.5-VL-7B judge call through :class:`lanepipe.verify.qwen_vl.QwenJudge` (2 images + prompt);
  prefill and per-token decode, dynamic vs static KV cache.
* ``sam2``     — SAM2.1 hiera-large through :class:`lanepipe.segment.sam2.Sam2Segmenter` on a 150-frame clip,
  float32 vs bfloat16 autocast.
* ``cogvideox`` — CogVideoX-5B-I2V 49 frames 720x480, 50 steps, CFG 6: stock pipeline end to end, then per-step
  effect of each accel option (cuDNN attention, fused QKV, compiled blocks, fp8 GEMMs), then ours end to end.
* ``branch``   — VideoPainter's context branch (issue 16): one CogVideoX-5B-I2V window, plain vs dual-branch
  (random-init branch) in the same process, then a window with the VideoPainterID LoRA resampling: per-step cost,
  window end to end, peak memory.
* ``edit_cache`` — ``edit`` with one CogVideoX step cache on (``BENCH_EDIT_CACHE``, default ``taylorseer``; eager
  blocks): the clip's time with a lever that is off by default (not the headline).
* ``train``    — FLUX Fill transformer + LoRA rank 16 training steps at 512x512 and 720x480, ± gradient checkpointing.
* ``levers``   — issue 15: CogVideoX-I2V over ``BENCH_LEVER_STEPS`` (20) steps with CFG, uncached vs each step cache
  (FasterCache, PAB, TaylorSeer; ``video_accel.cache``) and CFG truncation (0.5, 0.7): step time, attention runs,
  relative error of the final latents vs the uncached run on the same inputs; plus the profiler's kernel table of
  one denoising step (``--profile-top N`` rows by self CUDA time; ``$OUT/kernels.txt``).
* ``compile_cache`` — issue 15: compiled-blocks warm-up in two fresh worker processes sharing one cache folder
  (cold, then warm), as two sweep actors would.

Every run ends by writing ``headline.json`` (``edit_clip_s``, ``cogvideox_step_s``, ``sam2_150_frames_s``,
``machine``, ``date``, ``commit``): on CUDA ``benchmarks/results/headline.json`` (keys not measured in this run
keep their values); with ``--size tiny`` or without a GPU only ``$OUT/headline.json``, marked as a CPU check.
The ``sam2`` part times float32, bfloat16 with frames encoded 1, 8 and 16 at a time (``segment.sam2.encode_batch``)
and bfloat16 + ``vos_optimized`` (``BENCH_SAM2_VARIANTS``) on 150 frames at 960x540, each variant's mask
disagreement with the float32 masks recorded.

For each transformer the FLOPs of one denoising step are counted with ``torch.utils.flop_counter`` on the step's
real inputs; floor = FLOPs / measured matmul rate; ratio = measured step time / floor.

Device machine (one call per group of parts; see BENCHMARKS.md)::

    python benchmarks/gpu_generative.py --parts matmul,flux,judge,sam2 --out $OUT
    python benchmarks/gpu_generative.py --parts matmul,cogvideox --out $OUT
    python benchmarks/gpu_generative.py --parts branch --out $OUT
    python benchmarks/gpu_generative.py --parts matmul,levers --out $OUT          # issue 15 (each < 10 min)
    python benchmarks/gpu_generative.py --parts compile_cache,sam2 --out $OUT
    python benchmarks/gpu_generative.py --parts edit --out $OUT

Local wiring check on CPU (tiny models, same code path)::

    python benchmarks/gpu_generative.py --size tiny --parts flux,judge,sam2,cogvideox,train,branch,levers,compile_cache
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch

from lanepipe.edit import accel
from lanepipe.edit.config import AccelConfig, GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative import loading as gen_loading
from lanepipe.edit.generative import masks as gen_masks
from lanepipe.edit.generative import published as gen_published
from lanepipe.edit.generative import tiny as gen_tiny
from lanepipe.edit.generative.hooks import PropagationHook, WindowContext
from lanepipe.torchkit import build_on, sdpa_kernels

DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.bfloat16 if DEV == "cuda" else torch.float32
RESULTS: dict[str, Any] = {}
OUT: Path | None = None

# ---------------------------------------------------------------------------------------------- architectures
# The published configs (with their sources) live in the library, where the random-init presets build them:
# lanepipe/edit/generative/published.py (FLUX.1 Fill, T5-XXL, CLIP-L, CogVideoX-5B-I2V) and lanepipe/verify/qwen_vl.py
# (Qwen2.5-VL-7B).
FLUX_TRANSFORMER = gen_published.FLUX_TRANSFORMER
COGVIDEOX_TRANSFORMER = gen_published.COGVIDEOX_TRANSFORMER


# ---------------------------------------------------------------------------------------------- measuring
def sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEV == "cuda" else 0.0


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak GiB allocated during the call)."""
    sync()
    reset_peak()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t, peak_gib()


class StepClock:
    """``callback_on_step_end`` that records the wall time of each denoising step (synchronised)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def start(self) -> None:
        sync()
        self.marks = [time.perf_counter()]

    def __call__(self, pipe: Any, step: int, t: Any, kw: dict[str, Any]) -> dict[str, Any]:
        sync()
        self.marks.append(time.perf_counter())
        return {}

    def steps(self) -> list[float]:
        return list(np.diff(self.marks)) if len(self.marks) > 1 else []

    def denoise_s(self) -> float:
        return self.marks[-1] - self.marks[0] if len(self.marks) > 1 else 0.0


class InputGrab:
    """Forward pre-hook keeping the first call's inputs of a module (for FLOP counting and error checks)."""

    def __init__(self, module: Any) -> None:
        self.args: tuple[Any, ...] | None = None
        self.kwargs: dict[str, Any] | None = None
        self.handle = module.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.args is None:
            def clone(v: Any) -> Any:
                return v.detach().clone() if isinstance(v, torch.Tensor) else v

            self.args = tuple(clone(a) for a in args)
            self.kwargs = {k: clone(v) for k, v in kwargs.items()}
            self.handle.remove()


def count_flops(module: Any, grab: InputGrab) -> float:
    """FLOPs of one forward of ``module`` on the grabbed inputs (matmuls + attention, as torch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    assert grab.args is not None and grab.kwargs is not None
    ctx = sdpa_kernels("flash" if DEV == "cuda" else "math")
    with torch.inference_mode(), ctx, FlopCounterMode(display=False) as fc:
        module(*grab.args, **grab.kwargs)
    return float(fc.get_total_flops())


def forward_once(module: Any, grab: InputGrab) -> Any:
    assert grab.args is not None and grab.kwargs is not None
    with torch.inference_mode():
        out = module(*grab.args, **grab.kwargs)
    return out[0] if isinstance(out, tuple) else getattr(out, "sample", out)


def rel_err(a: Any, b: Any) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def record(part: str, key: str, value: Any) -> None:
    RESULTS.setdefault(part, {})[key] = value
    print(f"[{part}] {key} = {value}", flush=True)
    if OUT is not None:
        (OUT / "gpu_generative.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def free(*objs: Any) -> None:
    del objs
    gc.collect()
    if DEV == "cuda":
        torch.cuda.empty_cache()


def build_on_device() -> contextlib.AbstractContextManager[None]:
    """Create parameters directly on the GPU in the target dtype (no fp32 CPU copy of 12B weights)."""
    return build_on(DEV, DTYPE)


# ---------------------------------------------------------------------------------------------- data
def read_clip(name: str, max_frames: int, every: int = 1) -> np.ndarray:
    """``(T, H, W, 3) uint8`` RGB frames of a carried clip (``.device_data/``) or the shared data folder."""
    here = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("LANEPIPE_DATA_DIR", here.parent / "shared" / "data"))
    cands = [here / ".device_data" / name, *shared.rglob(name)]
    path = next((p for p in cands if p.is_file()), None)
    if path is None:
        sys.exit(f"clip {name!r} not found in .device_data/ or LANEPIPE_DATA_DIR")
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
        i += 1
    if not frames:
        sys.exit(f"clip {path}: no frames decoded")
    return np.stack(frames)


def road_masks(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W) bool`` road masks from lanepipe's grid segmenter (the embedded default)."""
    from lanepipe.segment.config import GridConfig
    from lanepipe.segment.grid import GridSegmenter

    clip = make_clip(frames, "bench")
    return GridSegmenter(GridConfig()).segment(clip).masks


def make_clip(frames: np.ndarray, name: str, fps: float = 8.0) -> Any:
    from lanepipe.types import Clip

    n = len(frames)
    return Clip(name=name, source=name, frames=frames, fps=fps, timestamps=np.arange(n) / fps, source_fps=fps,
                source_indices=np.arange(n, dtype=np.int64))


# ---------------------------------------------------------------------------------------------- builders
def build_flux(tiny: bool) -> Any:
    if tiny:
        pipe = gen_tiny.tiny_fill_pipeline(GenerativeConfig(preset="tiny-random"))
        return pipe.to(DEV)
    return gen_published.random_fill_pipeline(GenerativeConfig(preset="random-init"), DEV, DTYPE)


def build_cogvideox(tiny: bool, text_encoder: Any = None) -> Any:
    if tiny:
        cfg = GenerativeConfig(preset="tiny-random")
        return gen_tiny.tiny_video_pipeline(cfg).to(DEV)
    return gen_published.random_video_pipeline(GenerativeConfig(preset="random-init"), DEV, DTYPE, text_encoder)


def build_cogvideox_transformer(tiny: bool) -> Any:
    d = gen_loading.import_diffusers()
    if tiny:
        return build_cogvideox(True).transformer
    with build_on_device():
        return d.CogVideoXTransformer3DModel(**COGVIDEOX_TRANSFORMER).eval()


# ---------------------------------------------------------------------------------------------- parts
def part_matmul(tiny: bool) -> float:
    n = 1024 if tiny else 8192
    a = torch.randn(n, n, device=DEV, dtype=DTYPE)
    b = torch.randn(n, n, device=DEV, dtype=DTYPE)
    for _ in range(3):
        a @ b
    sync()
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    rate = 2 * n**3 * 10 / (time.perf_counter() - t)
    record("matmul", "tflops", round(rate / 1e12, 1))
    return rate


def _sizes(tiny: bool) -> tuple[int, int, int]:
    return (64, 48, 9) if tiny else (720, 480, 49)


def part_flux(tiny: bool, rate: float) -> None:
    from PIL import Image

    w, h, _ = _sizes(tiny)
    steps = 3 if tiny else 50
    frames = read_clip("project_video_subclip_bridge_6s.mp4", 1)
    masks = road_masks(frames)
    image = Image.fromarray(gen_masks.resize_frame(frames[0], w, h))
    mask = Image.fromarray(
        gen_masks.dilate_mask(gen_masks.resize_mask(masks[0], w, h), 2 if tiny else 24).astype(np.uint8) * 255)
    pipe, build_s, _ = timed(lambda: build_flux(tiny))
    pipe.set_progress_bar_config(disable=True)
    record("flux", "build_s", round(build_s, 1))
    record("flux", "params_transformer_B", round(sum(p.numel() for p in pipe.transformer.parameters()) / 1e9, 2))
    clock = StepClock()
    grab = InputGrab(pipe.transformer)

    def call(n: int) -> Any:
        clock.start()
        return pipe(prompt="road with double yellow solid lane markings", image=image, mask_image=mask, height=h,
                    width=w, guidance_scale=30.0, num_inference_steps=n, max_sequence_length=16 if tiny else 512,
                    generator=torch.Generator("cpu").manual_seed(0), output_type="np", callback_on_step_end=clock)

    timed(lambda: call(2))  # warm-up (cuBLAS handles, kernels)
    _, total, peak = timed(lambda: call(steps))
    step = float(np.median(clock.steps()))
    flops = count_flops(pipe.transformer, grab)
    floor = flops / rate
    record("flux", "stock", {"total_s": round(total, 2), "step_ms": round(step * 1e3, 1),
                             "denoise_s": round(clock.denoise_s(), 2),
                             "outside_denoise_s": round(total - clock.denoise_s(), 2), "peak_gib": peak,
                             "tflop_per_step": round(flops / 1e12, 2), "floor_ms": round(floor * 1e3, 1),
                             "ratio_to_floor": round(step / floor, 2)})
    ref = forward_once(pipe.transformer, grab)
    variants = [AccelConfig(attention="auto", fuse_qkv=True, compile="none"),
                AccelConfig(attention="auto", fuse_qkv=True, compile="blocks")]
    applied: set[str] = set()
    for v in variants:
        name = "+".join(k for k, on in (("attn_" + v.attention, True), ("fuse_qkv", v.fuse_qkv),
                                        ("compile", v.compile == "blocks")) if on)
        try:
            if v.fuse_qkv and "fuse" not in applied:
                accel.apply(pipe.transformer, AccelConfig(fuse_qkv=True, compile="none"))
                applied.add("fuse")
            if v.compile == "blocks" and "compile" not in applied:
                accel.apply(pipe.transformer, AccelConfig(compile="blocks"))
                applied.add("compile")
            with sdpa_kernels(v.attention):
                _, warm, _ = timed(lambda: call(2))
                _, total, peak = timed(lambda: call(steps))
                err = rel_err(forward_once(pipe.transformer, grab), ref)
            step = float(np.median(clock.steps()))
            record("flux", name, {"total_s": round(total, 2), "step_ms": round(step * 1e3, 1), "peak_gib": peak,
                                  "warmup_s": round(warm, 1), "ratio_to_floor": round(step / floor, 2),
                                  "rel_err_vs_stock": round(err, 4)})
        except Exception as e:  # one failing option is reported, the others still run
            record("flux", name, f"failed: {type(e).__name__}: {e}")
            traceback.print_exc()
    free(pipe)


def part_judge(tiny: bool) -> None:
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.verify import qwen_vl as q

    frames = read_clip("project_video_subclip_bridge_6s.mp4", 1)
    w, h, _ = _sizes(tiny)
    a = gen_masks.resize_frame(frames[0], max(w, 56), max(h, 56))
    b = a[:, ::-1].copy()
    new_tokens = 8 if tiny else 96
    judge = build_judge(tiny, new_tokens)
    spec = parse_instruction("double yellow solid")
    judge.judge(a, b, spec)  # warm-up
    res, call_s, peak = timed(lambda: judge.judge(a, b, spec))
    record("judge", "call", {"s": round(call_s, 2), "peak_gib": peak, "max_new_tokens": new_tokens,
                             "answer_chars": len(res.raw)})
    # prefill vs decode, fixed lengths, dynamic vs static KV cache
    inputs = judge.image_processor(images=[a, b], return_tensors="pt")
    counts = [int(g.prod()) // 4 for g in inputs["image_grid_thw"]]
    enc = judge.tokenizer(q.chat_text(q.build_prompt(spec), counts), return_tensors="pt", add_special_tokens=False)
    kw = {"input_ids": enc["input_ids"].to(DEV), "attention_mask": enc["attention_mask"].to(DEV),
          "pixel_values": inputs["pixel_values"].to(DEV, dtype=judge.model.dtype),
          "image_grid_thw": inputs["image_grid_thw"].to(DEV), "do_sample": False}
    record("judge", "prompt_tokens", int(enc["input_ids"].shape[1]))
    for cache in ("dynamic", "static"):
        extra = {"cache_implementation": "static"} if cache == "static" else {}
        try:
            def gen_n(n: int, extra: dict[str, Any] = extra) -> Any:
                with torch.inference_mode():
                    return judge.model.generate(**kw, max_new_tokens=n, min_new_tokens=n, **extra)
            gen_n(new_tokens)  # warm-up (and compile, for the static cache)
            _, one, _ = timed(lambda: gen_n(1))
            _, full, peak = timed(lambda: gen_n(new_tokens))
            per_tok = (full - one) / (new_tokens - 1)
            record("judge", f"generate_{cache}", {"prefill_s": round(one, 3), "ms_per_token": round(per_tok * 1e3, 1),
                                                  f"call_{new_tokens}_tokens_s": round(full, 2), "peak_gib": peak})
        except Exception as e:  # a variant that fails is reported, not fatal
            record("judge", f"generate_{cache}", f"failed: {type(e).__name__}: {e}")
    free(judge)


def build_judge(tiny: bool, new_tokens: int) -> Any:
    """A :class:`QwenJudge`; at full size its tiny model is swapped for the Qwen2.5-VL-7B architecture (random
    weights); the byte-level tokenizer keeps its special-token ids, which the config points at."""
    from lanepipe.verify import qwen_vl as q
    from lanepipe.verify.config import QwenJudgeConfig

    judge = q.QwenJudge(QwenJudgeConfig(preset="tiny-random", device=DEV, max_new_tokens=new_tokens,
                                        dtype="bfloat16" if DEV == "cuda" else "float32"))
    if tiny:
        return judge
    model, build_s, _ = timed(lambda: q.random_init_model(judge.tokenizer, DEV, DTYPE))
    record("judge", "build_s", round(build_s, 1))
    judge.model = model
    judge.image_processor = q._image_processor_cls()(
        size={"shortest_edge": judge.cfg.min_pixels, "longest_edge": judge.cfg.max_pixels}, patch_size=14,
        merge_size=2, temporal_patch_size=2)
    return judge


def part_sam2(tiny: bool) -> None:
    from lanepipe.segment import sam2 as s2
    from lanepipe.segment.config import Sam2Config

    n = 12 if tiny else 150
    frames = read_clip("solidWhiteRight.mp4", n)
    record("sam2", "clip", {"frames": len(frames), "size": [int(frames.shape[2]), int(frames.shape[1])]})
    if tiny:
        seg = s2.Sam2Segmenter(Sam2Config(preset="tiny-random", device=DEV))
        variants = ["float32"]
    else:  # random hiera-large weights saved as a checkpoint and loaded through lanepipe's loader
        api = s2._import_sam2()
        with s2._sam2_hydra():
            model = api.build_video_predictor("configs/sam2.1/sam2.1_hiera_l.yaml", None, device="cpu")
        ckpt = Path("/tmp/sam2.1_hiera_large_random.pt")
        torch.save({"model": model.state_dict()}, ckpt)
        free(model)
        seg = None
        # DTYPE[+vos][+bN]: "+vos" sam2's torch.compile'd SAM2VideoPredictorVOS, "+bN" frames encoded N at a time
        variants = os.environ.get("BENCH_SAM2_VARIANTS",
                                  "float32+b1,bfloat16+b1,bfloat16+b8,bfloat16+b16,bfloat16+vos").split(",")
    ref: np.ndarray | None = None
    for dt in variants:
        if not tiny:
            flags = dt.split("+")[1:]
            batch = next((int(f[1:]) for f in flags if f.startswith("b")), 1)
            seg = s2.Sam2Segmenter(Sam2Config(model_cfg="configs/sam2.1/sam2.1_hiera_l.yaml", checkpoint=str(ckpt),
                                              device=DEV, dtype=dt.split("+")[0],  # type: ignore[arg-type]
                                              vos_optimized="vos" in flags, encode_batch=batch))
        assert seg is not None
        segmenter: s2.Sam2Segmenter = seg
        _, warm_s, _ = timed(lambda: segmenter.segment(make_clip(frames[:8], "warm")))  # noqa: B023 (vos: compiles)
        masks, secs, peak = timed(lambda: segmenter.segment(make_clip(frames, "sam2")))  # noqa: B023
        if ref is None:  # the first variant (float32 eager) is the reference of the others
            ref = masks.masks
        record("sam2", f"segment_{dt}", {
            "s": round(secs, 2), "frames_per_s": round(len(frames) / secs, 1), "peak_gib": peak,
            "warmup_s": round(warm_s, 1), "options": seg.options, "road_fraction": round(float(masks.masks.mean()), 3),
            "mask_disagreement_vs_first": round(float((masks.masks != ref).mean()), 5)})
        free(seg)
        seg = None


def part_cogvideox(tiny: bool, rate: float) -> None:
    from PIL import Image

    w, h, n = _sizes(tiny)
    steps, few = (3, 2) if tiny else (50, 8)
    stock_steps = int(os.environ.get("BENCH_STOCK_STEPS", steps))
    frames = read_clip("project_video_subclip_bridge_6s.mp4", n, every=3)  # 25 fps → ~8 fps
    image = Image.fromarray(gen_masks.resize_frame(frames[0], w, h))
    pipe, build_s, _ = timed(lambda: build_cogvideox(tiny))
    pipe.set_progress_bar_config(disable=True)
    pipe.vae.enable_slicing()  # as the CogVideoX model card runs it; untiled decode of 49 frames needs > 100 GiB
    pipe.vae.enable_tiling()
    record("cogvideox", "build_s", round(build_s, 1))
    record("cogvideox", "params_transformer_B",
           round(sum(p.numel() for p in pipe.transformer.parameters()) / 1e9, 2))
    clock = StepClock()
    grab = InputGrab(pipe.transformer)

    def call(k: int, output_type: str = "np") -> Any:
        clock.start()
        return pipe(image=image, prompt="road with double yellow solid lane markings", height=h, width=w,
                    num_frames=n, num_inference_steps=k, guidance_scale=6.0, max_sequence_length=16 if tiny else 226,
                    generator=torch.Generator("cpu").manual_seed(0), output_type=output_type,
                    callback_on_step_end=clock)

    timed(lambda: call(1, "latent"))  # warm-up
    out, total, peak = timed(lambda: call(stock_steps))
    step = float(np.median(clock.steps()))
    flops = count_flops(pipe.transformer, grab)
    floor = flops / rate
    stock = {"total_s": round(total, 2), "step_s": round(step, 3), "denoise_s": round(clock.denoise_s(), 2),
             "outside_denoise_s": round(total - clock.denoise_s(), 2), "peak_gib": peak,
             "frames": int(np.asarray(out.frames[0]).shape[0]), "tflop_per_step": round(flops / 1e12, 1),
             "floor_s": round(floor, 3), "floor_50_steps_s": round(50 * floor, 1),
             "ratio_to_floor": round(step / floor, 2)}
    record("cogvideox", "stock", stock)
    del out
    free()
    ref = forward_once(pipe.transformer, grab)

    def variant(name: str, cfg: AccelConfig, full: bool = False) -> None:
        try:
            _variant(name, cfg, full)
        except Exception as e:  # one failing option is reported, the others still run
            record("cogvideox", name, f"failed: {type(e).__name__}: {e}")
            traceback.print_exc()

    def _variant(name: str, cfg: AccelConfig, full: bool) -> None:
        with sdpa_kernels(cfg.attention):
            _, warm, _ = timed(lambda: call(1, "latent"))
            _, tot, pk = timed(lambda: call(steps if full else few, "np" if full else "latent"))
            err = rel_err(forward_once(pipe.transformer, grab), ref)
        st = float(np.median(clock.steps()))
        res = {"step_s": round(st, 3), "ratio_to_floor": round(st / floor, 2), "peak_gib": pk,
               "warmup_s": round(warm, 1), "rel_err_vs_stock": round(err, 4), "est_50_steps_s": round(50 * st, 1)}
        if full:
            res["total_s"] = round(tot, 2)
        record("cogvideox", name, res)

    att = "auto"
    for a in (["flash", "cudnn"] if DEV == "cuda" else ["auto"]):
        variant(f"attn_{a}", AccelConfig(attention=a))  # type: ignore[arg-type]
    accel.apply(pipe.transformer, AccelConfig(fuse_qkv=True, compile="none"))  # compile: its own variant
    variant(f"attn_{att}+fuse_qkv", AccelConfig(attention=att))
    accel.apply(pipe.transformer, AccelConfig(compile="blocks"))
    variant(f"attn_{att}+fuse_qkv+compile", AccelConfig(attention=att), full=True)
    if DEV == "cuda" and accel.fp8_supported(DEV):  # a fresh bf16 transformer, then the same with fp8 GEMMs
        old = pipe.transformer
        pipe.transformer = None
        free(old)
        pipe.transformer = build_cogvideox_transformer(tiny)
        with sdpa_kernels(att):
            ref8 = forward_once(pipe.transformer, grab)
            accel.apply(pipe.transformer, AccelConfig(fuse_qkv=True, fp8_linear=True, compile="none"))
            e8 = rel_err(forward_once(pipe.transformer, grab), ref8)
        record("cogvideox", "fp8_rel_err_one_forward", round(e8, 4))
        variant(f"attn_{att}+fuse_qkv+fp8", AccelConfig(attention=att))
        accel.apply(pipe.transformer, AccelConfig(compile="blocks"))
        variant(f"attn_{att}+fuse_qkv+fp8+compile", AccelConfig(attention=att))
    free(pipe)


def part_edit(tiny: bool, video_cache: str = "none") -> None:
    """Ours end to end through lanepipe's own code: ``qa_generative`` with one judge call — FLUX first frame (accel
    options) → Qwen judge → CogVideoX propagation with mask-aware latent blending (accel options) → compositing.

    ``video_cache`` (part ``edit_cache``: ``BENCH_EDIT_CACHE``, default ``taylorseer``) turns on one of CogVideoX's
    step caches (off by default in lanepipe: random weights cannot show what it does to the pictures) with eager
    blocks (the caches' hooks were measured eager, ``levers``), its stored factors in ``BENCH_EDIT_CACHE_DTYPE``
    (default float32, bfloat16 on a card under 100 GiB); recorded as ``ours_end_to_end_<cache>``, never as the
    headline's ``edit_clip_s``. On a card under 100 GiB the pipelines are parked between phases."""
    import importlib.util
    import types

    if importlib.util.find_spec("av") is None:  # the GPU image has no PyAV; qa_generative never decodes video
        import importlib.machinery

        stub = types.ModuleType("av")
        stub.__spec__ = importlib.machinery.ModuleSpec("av", None)
        sys.modules["av"] = stub
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.stages.edit import qa_generative
    from lanepipe.types import RoadMasks

    _, _, n = _sizes(tiny)
    frames = read_clip("project_video_subclip_bridge_6s.mp4", n, every=3)
    clip = make_clip(frames, "bridge")
    masks = RoadMasks(masks=road_masks(frames), backend="grid")
    small = DEV == "cuda" and not tiny and gen_published.parks_between_phases(
        torch.cuda.get_device_properties(0).total_memory / 2**30)
    on = AccelConfig(attention="auto", fuse_qkv=True, compile="blocks" if DEV == "cuda" else "none")
    # TaylorSeer's float32 factors (~37 GB here) do not fit beside the stack on an 80 GB card: bf16 ones there
    factors = os.environ.get("BENCH_EDIT_CACHE_DTYPE") or ("bfloat16" if small else "float32")
    video_on = on if video_cache == "none" else on.model_copy(
        update={"cache": video_cache, "compile": "none", "cache_dtype": factors})
    extra: dict[str, Any] = {"preset": "tiny-random"} if tiny else {}
    cfg = GenerativeConfig(**extra, flux_device=DEV, video_device=DEV, accel=on, video_accel=video_on,
                               latent_blend=True, vae_slicing=True, vae_tiling=True,
                               dtype="bfloat16" if DEV == "cuda" else "float32",
                               # every model resident peaked at 79.1 GiB (H200): park FLUX / CogVideoX in pinned
                               # host memory between phases on a smaller card (an 80 GB H100)
                               unload_between_phases=small)
    fill = build_flux(tiny)
    video = build_cogvideox(tiny, None if tiny else fill.text_encoder_2)  # one T5-XXL for both (same arch)
    painter = GenerativePainter(cfg)
    painter._fill, painter._video = fill, video  # prebuilt random-weight pipelines instead of from_pretrained
    painter._fill_device = painter._video_device = DEV
    judge = build_judge(tiny, 8 if tiny else 96)
    spec = parse_instruction("double yellow solid")
    # warm-up at the same shapes with 1 step each (compiles the blocks once)
    warm_cfg = cfg.model_copy(update={"flux_steps": 1, "video_steps": 1})
    painter.cfg, full_cfg = warm_cfg, painter.cfg
    _, warm_s, _ = timed(lambda: qa_generative(painter, judge, clip, masks, spec, max_iterations=1))
    painter.cfg = full_cfg
    record("edit", "warmup_compile_s" if video_cache == "none" else f"warmup_{video_cache}_s", round(warm_s, 1))
    out, total, peak = timed(lambda: qa_generative(painter, judge, clip, masks, spec, max_iterations=1))
    it = out.iterations[0]
    diag = out.result.diagnostics
    record("edit", "ours_end_to_end" if video_cache == "none" else f"ours_end_to_end_{video_cache}", {
        "total_s": round(total, 2), "peak_gib": peak, "first_frame_s": it.get("first_frame_s"),
        "judge_s": it.get("judge_s"), "frames": int(out.result.frames.shape[0]),
        "timing": diag.get("timing_s"), "accel": painter.accel_applied, "placement": painter.placement})
    free(painter, fill, video, judge)


class ClockHook(PropagationHook):
    """A propagation hook recording each denoising step's wall time (synchronised), run after the others."""

    def __init__(self) -> None:
        self.clock = StepClock()

    def window_kwargs(self, pipe: Any, ctx: WindowContext) -> dict[str, Any]:
        self.clock.start()
        return {}

    def on_step_end(self, pipe: Any, ctx: WindowContext, step: int, timestep: Any, latents: Any) -> Any:
        self.clock(pipe, step, timestep, {})
        return latents


def write_id_lora(path: Path, layers: int, dim: int, rank: int) -> Path:
    """A random VideoPainterID LoRA in the published layout (keys of ``CogVideoXPipeline.save_lora_weights``)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state = {}
    for i in range(layers):
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            k = f"transformer.transformer_blocks.{i}.attn1.{proj}"
            state[f"{k}.lora_A.weight"] = (torch.randn(rank, dim, generator=g) * 0.01).to(DTYPE)
            state[f"{k}.lora_B.weight"] = (torch.randn(dim, rank, generator=g) * 0.01).to(DTYPE)
    save_file(state, str(path))
    return path


def part_branch(tiny: bool) -> None:
    """VideoPainter's context branch (issue 16): one CogVideoX-I2V window (49 frames 720x480, CFG 6, latent
    blending) through :meth:`GenerativePainter.propagate_window`, plain vs with the random-init branch in the same
    process on the same pipeline, then a second window with the VideoPainterID LoRA (rank 256) resampling the
    first window's generated tokens. Per-step time (median), window end to end, peak memory."""
    import tempfile

    w, h, n = _sizes(tiny)
    steps = int(os.environ.get("BENCH_BRANCH_STEPS", "3" if tiny else "50"))
    frames = read_clip("project_video_subclip_bridge_6s.mp4", n, every=3)
    masks = road_masks(frames)
    fw = np.stack([gen_masks.resize_frame(f, w, h) for f in frames])
    mw = np.stack([gen_masks.dilate_mask(gen_masks.resize_mask(m, w, h), 24 if not tiny else 2) for m in masks])
    def fresh() -> Any:
        p = build_cogvideox(tiny)
        p.set_progress_bar_config(disable=True)
        p.vae.enable_slicing()  # as part_cogvideox: an untiled decode of 49 frames needs > 100 GiB
        p.vae.enable_tiling()
        return p

    pipe, build_s, _ = timed(fresh)
    record("branch", "build_s", round(build_s, 1))
    extra: dict[str, Any] = {"preset": "tiny-random"} if tiny else {}
    eager = AccelConfig(compile="none")  # as measured before compile became the CUDA default
    base = GenerativeConfig(**extra, video_device=DEV, flux_device=DEV, video_steps=steps, latent_blend=True,
                            dtype="bfloat16" if DEV == "cuda" else "float32", accel=eager, video_accel=eager)

    def run(cfg: GenerativeConfig, name: str, painter: GenerativePainter | None = None, index: int = 0) -> Any:
        clock = ClockHook()
        if painter is None:
            painter = GenerativePainter(cfg, hooks=[clock])
            painter._video, painter._video_device = pipe, DEV  # the prebuilt random-weight pipeline
        else:
            painter.hooks = [*[hk for hk in painter.hooks if not isinstance(hk, ClockHook)], clock]
        call = lambda: painter.propagate_window(fw, mw, fw[0], "road with single white solid lane markings",  # noqa: E731
                                                 1, index=index)
        if index == 0:
            timed(call)  # warm-up (kernels, the branch's and the LoRA's first use)
        _, total, peak = timed(call)
        res = {"step_s": round(float(np.median(clock.clock.steps())), 4), "window_s": round(total, 2),
               "denoise_s": round(clock.clock.denoise_s(), 2), "peak_gib": peak, "steps": steps}
        record("branch", name, res)
        return painter, res

    _, plain = run(base, "plain_i2v")
    painter, dual = run(base.model_copy(update={"branch": "tiny-random" if tiny else "random-init"}), "dual_branch")
    info = painter.branch_info() or {}
    record("branch", "branch_params", info.get("params"))
    record("branch", "backbone_params", info.get("backbone_params"))
    record("branch", "param_ratio", info.get("param_ratio"))
    record("branch", "extra_per_step", {
        "s": round(dual["step_s"] - plain["step_s"], 4), "ratio": round(dual["step_s"] / plain["step_s"], 3),
        "window_ratio": round(dual["window_s"] / plain["window_s"], 3)})
    free(painter)
    # ID resampling: a fresh pipeline (the LoRA loads before the hooks), window 0 captures, window 1 resamples
    free(pipe)
    pipe = fresh()
    tr = pipe.transformer
    with tempfile.TemporaryDirectory() as tmp:
        lora = write_id_lora(Path(tmp) / "pytorch_lora_weights.safetensors", len(tr.transformer_blocks),
                             int(tr.config.num_attention_heads) * int(tr.config.attention_head_dim),
                             4 if tiny else 256)
        cfg = base.model_copy(update={"branch": "tiny-random" if tiny else "random-init", "id_lora": str(lora)})
        painter, first = run(cfg, "id_window0")
        _, second = run(cfg, "id_window1_resample", painter=painter, index=1)
    record("branch", "id_extra_per_step", {"s": round(second["step_s"] - first["step_s"], 4),
                                           "ratio": round(second["step_s"] / first["step_s"], 3)})
    free(painter, pipe)


def part_train(tiny: bool) -> None:
    """LoRA (rank 16) training steps of the FLUX Fill transformer through lanepipe.train.fill.train_steps."""
    from lanepipe.train.config import TrainConfig
    from lanepipe.train.fill import random_fill_batch, train_steps

    d = gen_loading.import_diffusers()
    if tiny:
        tr = gen_tiny.tiny_fill_pipeline(GenerativeConfig(preset="tiny-random")).transformer.to(DEV)
        sizes, steps, text_len = [(64, 48)], 3, 16
    else:
        with build_on_device():
            tr = d.FluxTransformer2DModel(**FLUX_TRANSFORMER)
        sizes, steps, text_len = [(512, 512), (720, 480)], 8, 512
    base = {"preset": "tiny-random"} if tiny else {"mixed_precision": "bf16"}
    first = True
    for w, h in sizes:
        batch = random_fill_batch(tr, w, h, text_len=text_len)
        for gc_on in (False, True):
            name = f"{w}x{h}_grad_ckpt_{'on' if gc_on else 'off'}"
            try:
                cfg = TrainConfig(**base, resolution=(w, h), gradient_checkpointing=gc_on, lr=1e-4,
                                       warmup_steps=0)
                if not first:  # the adapter stays; switch checkpointing on the same transformer
                    (tr.enable_gradient_checkpointing if gc_on else tr.disable_gradient_checkpointing)()
                st = train_steps(tr, batch, steps, cfg)
                first = False
                sec = st.seconds[1:] if len(st.seconds) > 1 else st.seconds  # first step: kernels, allocator
                record("train", name, {"s_per_step": round(float(np.median(sec)), 3),
                                       "peak_gib": round((st.peak_memory_bytes or 0) / 2**30, 1),
                                       "trainable_M": round(st.trainable_params / 1e6, 1), "steps": steps,
                                       "loss_first_last": [round(st.losses[0], 4), round(st.losses[-1], 4)]})
            except Exception as e:
                record("train", name, f"failed: {type(e).__name__}: {e}")
                traceback.print_exc()
            free()
    free(tr)


# ---------------------------------------------------------------------------------------------- issue 15 levers
class AttnCount:
    """Counts the attention processor runs of a CogVideoX transformer (``attn1.to_q`` / ``to_qkv`` calls): an
    attention or block a cache reuses never reaches them."""

    def __init__(self, transformer: Any) -> None:
        self.n = 0
        self.handles = []
        for block in transformer.transformer_blocks:
            q = getattr(block.attn1, "to_q", None) or getattr(block.attn1, "to_qkv", None)
            if q is not None:
                self.handles.append(q.register_forward_hook(self.hook))

    def hook(self, *_: Any) -> None:
        self.n += 1

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def kernel_table(fn: Callable[[], Any], top: int) -> list[dict[str, Any]]:
    """``torch.profiler`` over one call of ``fn``: the ``top`` ops by self CUDA time (CPU time without a GPU),
    also written as a text table to ``$OUT/kernels.txt``."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        sync()
    key = "self_device_time_total" if DEV == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    if OUT is not None:
        (OUT / "kernels.txt").write_text(events.table(sort_by=key, row_limit=top))
    rows = sorted(events, key=lambda e: float(getattr(e, key)), reverse=True)[:top]
    # shares of the device's kernel time: on CUDA an op (aten::addmm) and the kernels it launched both carry the
    # kernels' self time, and "Command Buffer Full" marks the host waiting on a full launch queue (no kernel):
    # counting those too made every share about half of what it is (2026-12-05 run)
    kernels = [e for e in events if DEV == "cuda" and "CUDA" in str(getattr(e, "device_type", ""))
               and not e.key.startswith(("aten::", "Command Buffer"))]
    total = sum(float(getattr(e, key)) for e in (kernels or events)) or 1.0
    return [{"name": e.key[:80], "calls": int(e.count), "ms": round(float(getattr(e, key)) / 1e3, 2),
             "share": round(float(getattr(e, key)) / total, 3)} for e in rows]


def part_levers(tiny: bool, profile_top: int) -> None:
    """Issue 15 levers on CogVideoX-I2V, each against the unaccelerated pipeline on the same inputs: step caches
    (FasterCache, PAB, TaylorSeer with CogVideoX's layer names), CFG truncation, and a kernel table of one step."""
    from PIL import Image

    w, h, n = _sizes(tiny)
    steps = int(os.environ.get("BENCH_LEVER_STEPS", "8" if tiny else "20"))
    frames = read_clip("project_video_subclip_bridge_6s.mp4", n, every=3)
    image = Image.fromarray(gen_masks.resize_frame(frames[0], w, h))
    pipe = build_cogvideox(tiny)
    pipe.set_progress_bar_config(disable=True)
    pipe.vae.enable_slicing()
    pipe.vae.enable_tiling()
    tr = pipe.transformer
    clock = StepClock()
    grab = InputGrab(tr)

    def call(k: int) -> Any:
        clock.start()
        return pipe(image=image, prompt="road with double yellow solid lane markings", height=h, width=w,
                    num_frames=n, num_inference_steps=k, guidance_scale=6.0, max_sequence_length=16 if tiny else 226,
                    generator=torch.Generator("cpu").manual_seed(0), output_type="latent",
                    callback_on_step_end=clock).frames

    call(1)  # warm-up (and the grabbed inputs of one step)
    counter = AttnCount(tr)
    def step_s() -> float:  # mean over the steps after the first (the first mark also holds prompt/VAE encoding)
        st = clock.steps()
        return float(np.mean(st[1:] if len(st) > 1 else st))

    ref, _, _ = timed(lambda: call(steps))
    base_step = step_s()
    record("levers", "steps", steps)
    record("levers", "uncached", {"step_s": round(base_step, 4), "attention_runs": counter.n})
    if profile_top > 0:
        record("levers", "kernel_table_one_step", kernel_table(lambda: forward_once(tr, grab), profile_top))

    def lever(name: str, setup: Callable[[], Callable[[], None]]) -> None:
        try:
            undo = setup()
            try:
                counter.n = 0
                out, _, pk = timed(lambda: call(steps))
            finally:
                undo()
            st = step_s()
            record("levers", name, {"step_s": round(st, 4), "x_uncached": round(st / base_step, 3),
                                    "attention_runs": counter.n, "rel_err_vs_uncached": round(rel_err(out, ref), 4),
                                    "peak_gib": pk})
        except Exception as e:  # one failing lever is reported, the others still run
            record("levers", name, f"failed: {type(e).__name__}: {e}")
            traceback.print_exc()

    def cache(kind: str) -> Callable[[], Callable[[], None]]:
        def setup() -> Callable[[], None]:
            accel.apply_cache(tr, kind, lambda: pipe.current_timestep, steps)
            disable: Callable[[], None] = tr.disable_cache
            return disable
        return setup

    for kind in ("faster", "pab", "taylorseer"):
        lever(f"cache_{kind}", cache(kind))

    def truncation(fraction: float) -> Callable[[], Callable[[], None]]:
        def setup() -> Callable[[], None]:
            trunc = accel.CfgTruncation(fraction)
            trunc.start(steps)
            handles = trunc.install(tr)
            def remove() -> None:
                for hd in handles:
                    hd.remove()
            return remove
        return setup

    for fraction in (0.5, 0.7):
        lever(f"cfg_truncation_{fraction}", truncation(fraction))
    counter.remove()
    free(pipe)


#: the compile-cache worker: build the CogVideoX pipeline, compile its blocks with the cache folder, one step
COMPILE_WORKER = "compile_worker"


def part_compile_worker(tiny: bool, cache_dir: str) -> None:
    from PIL import Image
    from torch._dynamo.utils import counters

    w, h, n = _sizes(tiny)
    pipe = build_cogvideox(tiny)
    pipe.set_progress_bar_config(disable=True)
    done = accel.apply(pipe.transformer, AccelConfig(compile="blocks", compile_cache_dir=cache_dir))
    image = Image.fromarray(np.zeros((h, w, 3), np.uint8))
    _, first, _ = timed(lambda: pipe(image=image, prompt="road", height=h, width=w, num_frames=n,
                                     num_inference_steps=1, guidance_scale=6.0,
                                     max_sequence_length=16 if tiny else 226, output_type="latent"))
    from lanepipe import torchkit

    saved = torchkit.save_compile_artifacts(cache_dir)
    record("compile_worker", "result", {"first_step_s": round(first, 2), "cache": done["compile_cache"],
                                        "saved": saved, "inductor": dict(counters["inductor"]),
                                        "aot": dict(counters["aot_autograd"])})


def part_compile_cache(tiny: bool) -> None:
    """Compiled blocks' warm-up in a fresh worker process: cold (empty cache folder) vs warm (the folder the first
    worker filled), each a separate ``python`` process as two sweep actors would be."""
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="lanepipe-inductor-")
    for label in ("cold", "warm"):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, __file__, "--parts", COMPILE_WORKER, "--size", "tiny" if tiny else "full",
                   "--compile-cache-dir", folder, "--out", out]
            env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            wall = time.perf_counter() - t
            res_path = Path(out) / "gpu_generative.json"
            if proc.returncode != 0 or not res_path.is_file():
                record("compile_cache", label, f"failed: rc {proc.returncode}: {proc.stderr[-2000:]}")
                continue
            res = json.loads(res_path.read_text())["compile_worker"]["result"]
            res["process_wall_s"] = round(wall, 1)
            record("compile_cache", label, res)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def merged_headline(previous: dict[str, Any], measured: dict[str, Any], machine: str, date: str,
                    commit: str) -> dict[str, Any]:
    """The headline after a run: the keys it measured, the previous values of the others only when they came from
    the same kind of GPU (an H100 run never keeps an H200 figure under its own name), None otherwise."""
    keep = previous if previous.get("machine") == machine else {}
    head = {k: measured.get(k) if measured.get(k) is not None else keep.get(k) for k in measured}
    return head | {"machine": machine, "date": date, "commit": commit}


def write_headline(tiny: bool) -> None:
    """``headline.json`` (issue 15 keys): the GPU run rewrites ``benchmarks/results/headline.json`` (keys this run
    did not measure keep their previous values); a tiny CPU run writes ``$OUT/headline.json`` only, machine
    marked as a CPU wiring check."""
    import datetime
    import subprocess

    def get(*keys: str) -> Any:
        v: Any = RESULTS
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    sam2 = [v["s"] for k, v in (RESULTS.get("sam2") or {}).items() if k.startswith("segment_") and
            isinstance(v, dict)]
    steps = [v["step_s"] for k, v in {**(RESULTS.get("cogvideox") or {}), **(RESULTS.get("levers") or {})}.items()
             if isinstance(v, dict) and "step_s" in v and not k.startswith(("cache_", "cfg_truncation"))]
    measured = {"edit_clip_s": get("edit", "ours_end_to_end", "total_s"),
                "cogvideox_step_s": min(steps) if steps else None,
                "sam2_150_frames_s": min(sam2) if sam2 and not tiny else None}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = os.environ.get("LANEPIPE_COMMIT", "unknown")
    if tiny or DEV != "cuda":
        target = OUT / "headline.json" if OUT is not None else None
        machine = f"cpu wiring check (--size tiny on {DEV}): not a GPU figure"
        head: dict[str, Any] = {}
    else:
        target = here / "results" / "headline.json"
        machine = torch.cuda.get_device_name()
        head = json.loads(target.read_text()) if target.is_file() else {}
    head = merged_headline(head, measured, machine, datetime.date.today().isoformat(), commit)
    record("headline", "values", head)
    if target is not None:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(head, indent=1) + "\n")
        tmp.replace(target)


def main() -> None:
    global OUT  # noqa: PLW0603 - a script-level sink for incremental results
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="matmul,flux,judge,sam2")
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--profile-top", type=int, default=25,
                    help="levers: rows of the profiler's kernel table of one denoising step (0: no profile)")
    ap.add_argument("--compile-cache-dir", default=None, help=argparse.SUPPRESS)  # compile_worker's folder
    args = ap.parse_args()
    OUT = Path(args.out) if args.out else None
    if OUT is not None:
        OUT.mkdir(parents=True, exist_ok=True)
    tiny = args.size == "tiny"
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if DEV == "cuda":
        record("machine", "gpu", torch.cuda.get_device_name())
    record("machine", "torch", torch.__version__)
    rate = 790e12
    t0 = time.perf_counter()
    for p in parts:
        try:
            if p == "matmul":
                rate = part_matmul(tiny)
            elif p == "flux":
                part_flux(tiny, rate)
            elif p == "judge":
                part_judge(tiny)
            elif p == "sam2":
                part_sam2(tiny)
            elif p == "cogvideox":
                part_cogvideox(tiny, rate)
            elif p == "edit":
                part_edit(tiny)
            elif p == "edit_cache":
                part_edit(tiny, os.environ.get("BENCH_EDIT_CACHE", "taylorseer"))
            elif p == "train":
                part_train(tiny)
            elif p == "branch":
                part_branch(tiny)
            elif p == "levers":
                part_levers(tiny, args.profile_top)
            elif p == "compile_cache":
                part_compile_cache(tiny)
            elif p == COMPILE_WORKER:
                part_compile_worker(tiny, args.compile_cache_dir)
            else:
                sys.exit(f"--parts: unknown part {p!r}; choose from matmul, flux, judge, sam2, cogvideox, edit, "
                         "edit_cache, train, branch, levers, compile_cache")
        except Exception as e:
            record(p, "error", f"{type(e).__name__}: {e}")
            traceback.print_exc()
            free()
        record("elapsed", p, round(time.perf_counter() - t0, 1))
    if COMPILE_WORKER not in parts:
        write_headline(tiny)
    print(json.dumps(RESULTS, indent=1, default=str))


if __name__ == "__main__":
    main()
