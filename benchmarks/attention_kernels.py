"""Quantised attention (issue 15, lever 2): speed and error of :mod:`lanepipe.edit.qattn` against PyTorch's SDPA.

Parts (``--parts``, comma list):

* ``kernel`` — at CogVideoX-5B-I2V's attention shape (``--size full``: 2 (CFG) x 48 heads x 17,776 tokens
  (226 text + 13·30·45 video) x 64, bf16, CUDA): ms per call and TFLOP/s (``4·B·H·N²·D`` FLOPs) of SDPA with
  cuDNN's and FlashAttention-2's kernels and of each quantised mode (the kernel alone, and with its quantisation
  step); error of each output against an fp32 SDPA reference and against bf16 SDPA: relative L2 error, mean and
  max absolute error over the reference's mean absolute value, cosine similarity.
* ``step``   — one CogVideoX-5B-I2V transformer call (random bf16 weights of the published architecture, 49 frames
  720x480, CFG batch 2): stock attention vs each quantised mode; time per call and the output's error against
  the stock one.

Inputs are random (unit Gaussians, K with a per-channel offset as diffusion transformers' keys have), so the
error figures are those of the arithmetic, not of a trained model's activations.

Device machine (one command)::

    python benchmarks/attention_kernels.py --size full --parts kernel,step --out $OUT

Local check on CPU (small shapes; the Triton kernel runs under Triton's interpreter when Triton is installed and
``TRITON_INTERPRET=1``, else the PyTorch reference; times are meaningless there)::

    TRITON_INTERPRET=1 python benchmarks/attention_kernels.py --size tiny
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F  # noqa: N812
from _common import machine

from lanepipe.edit import qattn
from lanepipe.torchkit import sdpa_kernels

FULL_SHAPE = (2, 48, 17776, 64)  # CogVideoX-5B-I2V, 49 frames 720x480, CFG batch 2
TINY_SHAPES = [(1, 2, 256, 64), (1, 2, 1024, 64), (2, 4, 600, 64), (1, 2, 512, 128)]


def _timed(fn: Callable[[], Any], cuda: bool, warmup: int, iters: int) -> float:
    """Mean seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / iters
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def _inputs(shape: tuple[int, int, int, int], device: str, dtype: Any, seed: int = 0) -> tuple[Any, Any, Any]:
    b, h, n, d = shape
    g = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=g, device=device, dtype=dtype)
    k = torch.randn(b, h, n, d, generator=g, device=device, dtype=dtype)
    k = k + 2.0 * torch.randn(1, h, 1, d, generator=g, device=device, dtype=dtype)
    v = torch.randn(b, h, n, d, generator=g, device=device, dtype=dtype)
    return q, k, v


def _rounded(e: dict[str, float]) -> dict[str, float]:
    return {k: float(f"{v:.4g}") for k, v in e.items()}


def kernel_part(shapes: list[tuple[int, int, int, int]], modes: list[str], cuda: bool) -> list[dict[str, Any]]:
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    warmup, iters = (3, 10) if cuda else (0, 1)
    interpret = not cuda and os.environ.get("TRITON_INTERPRET") == "1" and qattn.triton_available()
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        b, h, n, d = shape
        flop = 4.0 * b * h * n * n * d
        q, k, v = _inputs(shape, device, dtype)
        ref32 = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        # bf16 SDPA (PyTorch's default kernel): the baseline; on CPU what bf16 rounding of the inputs costs
        bf = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
        kernels = ["cudnn", "flash"] if cuda else ["math"]
        for name in kernels:
            try:
                with sdpa_kernels(name):
                    out = F.scaled_dot_product_attention(q, k, v)
                    t = _timed(functools.partial(F.scaled_dot_product_attention, q, k, v), cuda, warmup, iters)
            except RuntimeError as exc:
                rows.append({"shape": shape, "impl": f"sdpa_{name}", "error": str(exc)[:200]})
                continue
            rows.append({"shape": shape, "impl": f"sdpa_{name}", "ms": round(t * 1e3, 3),
                         "tflops": round(flop / t / 1e12, 1), "vs_fp32": _rounded(qattn.attention_error(out, ref32))})
        if not cuda:
            rows.append({"shape": shape, "impl": "sdpa_bf16_inputs", "vs_fp32": _rounded(qattn.attention_error(bf,
                                                                                                              ref32))})
        for mode in modes:
            backend = "triton" if cuda or interpret else "reference"
            out = qattn.quant_attention(q, k, v, mode, backend=backend)  # type: ignore[arg-type]
            t_all = _timed(functools.partial(qattn.quant_attention, q, k, v, mode, backend=backend),  # type: ignore[arg-type]
                           cuda, warmup, iters)
            row: dict[str, Any] = {"shape": shape, "impl": f"quant_{mode}", "backend": backend,
                                   "ms_with_quantize": round(t_all * 1e3, 3),
                                   "tflops_with_quantize": round(flop / t_all / 1e12, 1),
                                   "vs_fp32": _rounded(qattn.attention_error(out, ref32)),
                                   "vs_bf16_sdpa": _rounded(qattn.attention_error(out, bf))}
            if backend == "triton":
                from lanepipe.edit import qattn_triton

                qz = qattn.quantize(q, k, v, mode)  # type: ignore[arg-type]
                t_k = _timed(functools.partial(qattn_triton.run, qz, interpret=not cuda), cuda, warmup, iters)
                row.update(ms_kernel=round(t_k * 1e3, 3), tflops_kernel=round(flop / t_k / 1e12, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def step_part(modes: list[str], cuda: bool) -> list[dict[str, Any]]:
    from diffusers import CogVideoXTransformer3DModel
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_3d_rotary_pos_embed

    from lanepipe import torchkit
    from lanepipe.edit.config import GenerativeConfig
    from lanepipe.edit.generative.published import COGVIDEOX_TRANSFORMER
    from lanepipe.edit.generative.tiny import tiny_video_pipeline

    if cuda:
        device, dtype = "cuda", torch.bfloat16
        torch.manual_seed(0)
        with torchkit.build_on(device, dtype):
            t = CogVideoXTransformer3DModel(**COGVIDEOX_TRANSFORMER).eval()
    else:
        device, dtype = "cpu", torch.float32
        t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    c = t.config
    frames = (c.sample_frames - 1) // c.temporal_compression_ratio + 1
    g = torch.Generator(device=device).manual_seed(1)
    hh, ww = c.sample_height // c.patch_size, c.sample_width // c.patch_size
    rope = get_3d_rotary_pos_embed(embed_dim=c.attention_head_dim, crops_coords=((0, 0), (hh, ww)),
                                   grid_size=(hh, ww), temporal_size=frames, device=device)
    x = {"hidden_states": torch.randn(2, frames, c.in_channels, c.sample_height, c.sample_width, generator=g,
                                      device=device, dtype=dtype),
         "encoder_hidden_states": torch.randn(2, c.max_text_seq_length, c.text_embed_dim, generator=g,
                                              device=device, dtype=dtype),
         "timestep": torch.tensor([500, 500], device=device), "image_rotary_emb": rope, "return_dict": False}
    warmup, iters = (1, 3) if cuda else (0, 1)
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        ref = t(**x)[0]
        t_ref = _timed(lambda: t(**x), cuda, warmup, iters)
        rows.append({"part": "step", "impl": "stock", "s": round(t_ref, 4)})
        for mode in modes:
            qattn.install(t, mode)  # type: ignore[arg-type]
            out = t(**x)[0]
            t_q = _timed(lambda: t(**x), cuda, warmup, iters)
            rows.append({"part": "step", "impl": f"quant_{mode}", "s": round(t_q, 4),
                         "speedup": round(t_ref / t_q, 3), "vs_stock": _rounded(qattn.attention_error(out, ref))})
            for block in t.transformer_blocks:
                block.attn1.set_processor(CogVideoXAttnProcessor2_0())
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--parts", default="kernel,step")
    ap.add_argument("--modes", default=",".join(qattn.MODES))
    ap.add_argument("--out", default="", help="folder for attention_kernels.json")
    args = ap.parse_args()
    cuda = args.size == "full"
    if cuda and not torch.cuda.is_available():
        sys.exit("--size full needs a CUDA GPU (use --size tiny on CPU)")
    modes = [m for m in args.modes.split(",") if m]
    parts = args.parts.split(",")
    result: dict[str, Any] = {"machine": machine(), "size": args.size,
                              "gpu": torch.cuda.get_device_name() if cuda else None}
    if "kernel" in parts:
        result["kernel"] = kernel_part([FULL_SHAPE] if cuda else TINY_SHAPES, modes, cuda)
    if "step" in parts:
        result["step"] = step_part(modes, cuda)
    text = json.dumps(result, indent=1)
    if args.out:
        out = Path(args.out) / "attention_kernels.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    print(text)


if __name__ == "__main__":
    main()
