"""Quantised attention (lanepipe.edit.qattn): the reference math against PyTorch's attention, the Triton kernel
against the reference under Triton's interpreter (where Triton is installed), and the CogVideoX processor on the
tiny-random transformer — installed on its blocks only, never on the text encoder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from lanepipe.edit import accel, qattn  # noqa: E402
from lanepipe.edit.config import AccelConfig, GenerativeConfig  # noqa: E402
from lanepipe.edit.generative.tiny import tiny_fill_pipeline, tiny_video_pipeline  # noqa: E402
from lanepipe.errors import BackendUnavailableError, ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
F = torch.nn.functional

#: relative L2 error against fp32 SDPA the modes stay under on unit-Gaussian inputs (measured 0.010 / 0.036 /
#: 0.053 at worst over the shapes below; bf16 SDPA itself is at 0.002-0.005 on the same inputs)
BOUND = {"int8": 0.02, "int8-fp8": 0.06, "fp8": 0.08}


def _qkv(b: int, h: int, nq: int, nk: int, d: int, seed: int = 0, k_offset: float = 0.0) -> tuple[Any, Any, Any]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=g)
    k = torch.randn(b, h, nk, d, generator=g) + k_offset * torch.randn(1, h, 1, d, generator=g)
    v = torch.randn(b, h, nk, d, generator=g) + 0.5
    return q, k, v


@pytest.mark.parametrize("mode", qattn.MODES)
@pytest.mark.parametrize(("nq", "nk", "d"), [(50, 50, 16), (100, 77, 64), (200, 200, 72)])
def test_reference_is_close_to_pytorch_attention(mode: str, nq: int, nk: int, d: int) -> None:
    q, k, v = _qkv(2, 3, nq, nk, d, k_offset=3.0)
    ref = F.scaled_dot_product_attention(q, k, v)
    out = qattn.quant_attention(q, k, v, mode, backend="reference", block_m=16, block_n=16)  # type: ignore[arg-type]
    err = qattn.attention_error(out, ref)
    assert out.shape == ref.shape and out.dtype == q.dtype
    assert err["rel_l2"] < BOUND[mode], err
    assert err["cosine"] > 0.998, err
    assert err["rel_l2"] > 1e-5  # it is quantised: not the fp32 result by accident


def test_int8_is_the_most_accurate_mode_and_fp8_the_least() -> None:
    q, k, v = _qkv(1, 4, 256, 256, 64, seed=3)
    ref = F.scaled_dot_product_attention(q, k, v)
    errs = [qattn.attention_error(qattn.quant_attention(q, k, v, m, backend="reference"), ref)["rel_l2"]  # type: ignore[arg-type]
            for m in ("int8", "int8-fp8", "fp8")]
    assert errs[0] < errs[1] < errs[2], errs


def test_smoothing_k_removes_a_channel_offset_exactly() -> None:
    """Softmax ignores a per-query constant, so K + c gives the same attention; with smoothing the quantised
    inputs are the same too, and the error stays that of the offset-free keys."""
    q, k, v = _qkv(1, 2, 128, 128, 64, seed=1)
    offset = 8.0 * torch.randn(1, 2, 1, 64, generator=torch.Generator().manual_seed(9))
    ref = F.scaled_dot_product_attention(q, k, v)
    plain = qattn.quant_attention(q, k, v, "int8", backend="reference")
    shifted = qattn.quant_attention(q, k + offset, v, "int8", backend="reference")
    unsmoothed = qattn.quant_attention(q, k + offset, v, "int8", backend="reference", smooth_k=False)
    assert qattn.attention_error(shifted, plain)["rel_l2"] < 1e-3
    e_smooth = qattn.attention_error(shifted, ref)["rel_l2"]
    e_raw = qattn.attention_error(unsmoothed, ref)["rel_l2"]
    assert e_raw > 2 * e_smooth, (e_raw, e_smooth)


def test_output_follows_the_input_dtype_and_a_custom_scale() -> None:
    q, k, v = _qkv(1, 2, 40, 40, 32, seed=2)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    out = qattn.quant_attention(q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16), "int8",
                                backend="reference", scale=0.3)
    assert out.dtype == torch.bfloat16
    assert qattn.attention_error(out, ref)["rel_l2"] < 0.03


def test_bad_inputs_are_named() -> None:
    q, k, v = _qkv(1, 2, 16, 16, 16)
    with pytest.raises(ConfigError, match=r"mode: expected one of \['int8', 'int8-fp8', 'fp8'\], found 'int4'"):
        qattn.quantize(q, k, v, "int4")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="block_n: expected a power of two >= 16, found 24"):
        qattn.quantize(q, k, v, block_n=24)
    with pytest.raises(ValueError, match=r"key \(1, 2, 16, 8\) .* must share batch, heads and head dimension"):
        qattn.quantize(q, k[..., :8], v)
    with pytest.raises(ValueError, match=r"expected \(B, H, N, D\)"):
        qattn.quantize(q[0], k, v)


def test_the_triton_backend_on_cpu_needs_triton_and_its_interpreter() -> None:
    q, k, v = _qkv(1, 2, 16, 16, 16)
    if qattn.triton_available() and os.environ.get("TRITON_INTERPRET") == "1":  # e.g. make test-kernels
        out = qattn.quant_attention(q, k, v, backend="triton")
        ref = qattn.quant_attention(q, k, v, backend="reference")
        assert qattn.attention_error(out, ref)["rel_l2"] < 1e-4
        return
    with pytest.raises(BackendUnavailableError, match=r"Triton is not installed|TRITON_INTERPRET unset"):
        qattn.quant_attention(q, k, v, backend="triton")


_KERNEL_CHECK = textwrap.dedent("""
    import torch
    from lanepipe.edit import qattn
    worst, mismatched = 0.0, 0
    for mode in qattn.MODES:
        for (b, h, nq, nk, d, bm, bn) in [(1, 2, 50, 50, 16, 16, 16), (2, 1, 70, 33, 64, 32, 16),
                                          (1, 2, 40, 90, 72, 16, 32)]:
            g = torch.Generator().manual_seed(nq)
            q = torch.randn(b, nq, h, d, generator=g).transpose(1, 2)  # strided, as the processor passes it
            k, v = (torch.randn(b, h, nk, d, generator=g) + 1.5 for _ in range(2))
            ref = qattn.quant_attention(q, k, v, mode, backend="reference", block_m=bm, block_n=bn)
            out = qattn.quant_attention(q, k, v, mode, backend="triton", block_m=bm, block_n=bn)
            assert out.shape == ref.shape, (out.shape, ref.shape)
            worst = max(worst, qattn.attention_error(out, ref)["rel_l2"])
            a = qattn.quantize(q, k, v, mode, block_m=bm, block_n=bn)
            t = qattn.quantize(q, k, v, mode, block_m=bm, block_n=bn, impl="triton")
            for f in ("q", "k", "v", "q_scale", "k_scale"):
                mismatched += int((getattr(a, f).float() != getattr(t, f).float()).sum())
    print(f"mismatched {mismatched} worst {worst:.3g}")
""")

@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed (CUDA torch has it)")
def test_triton_kernel_matches_the_reference_under_the_interpreter() -> None:
    """The Triton kernels, run by Triton's numpy interpreter on CPU tensors, do the reference's math: the
    quantisation kernel gives the tensor ops' values, the attention kernel the reference's output up to fp32
    rounding. (TRITON_INTERPRET must be set before Triton is
    imported, hence a child process.)"""
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", _KERNEL_CHECK], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    worst = float(res.stdout.split("worst")[-1])
    mismatched = int(res.stdout.split("mismatched")[-1].split()[0])
    assert worst < 1e-4, res.stdout
    assert mismatched <= 2, res.stdout  # the Triton quantisation kernel gives the tensor ops' values


# ============================================================================================== CogVideoX
def _rope(t: Any) -> Any:
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_3d_rotary_pos_embed

    c = t.config
    frames = (c.sample_frames - 1) // c.temporal_compression_ratio + 1
    h, w = c.sample_height // c.patch_size, c.sample_width // c.patch_size
    return get_3d_rotary_pos_embed(embed_dim=c.attention_head_dim, crops_coords=((0, 0), (h, w)), grid_size=(h, w),
                                   temporal_size=frames, device="cpu")


@pytest.mark.parametrize("mode", qattn.MODES)
@pytest.mark.parametrize("fuse", [False, True])
def test_cogvideox_blocks_get_the_quantised_attention(mode: str, fuse: bool,
                                                       cogvideox_inputs: Callable[[Any], dict[str, Any]]) -> None:
    pipe = tiny_video_pipeline(GenerativeConfig(preset="tiny-random"))
    t = pipe.transformer
    x = {**cogvideox_inputs(t), "image_rotary_emb": _rope(t)}
    ids = pipe.tokenizer(["double yellow solid"], return_tensors="pt").input_ids
    with torch.inference_mode():
        ref = t(**x)[0]
        text_ref = pipe.text_encoder(ids)[0]
        done = accel.apply(t, AccelConfig(quant_attention=mode, fuse_qkv=fuse))  # type: ignore[arg-type]
        out = t(**x)[0]
        text_out = pipe.text_encoder(ids)[0]
    assert done["quant_attention"] == {"mode": mode, "layers": len(t.transformer_blocks)}
    assert all(isinstance(b.attn1.processor, qattn.QuantCogVideoXAttnProcessor) for b in t.transformer_blocks)
    err = qattn.attention_error(out, ref)
    # the transformer's output is dominated by its residual path on random weights: the error is well below
    # the attention's own (BOUND)
    assert 1e-7 < err["rel_l2"] < BOUND[mode] / 2, err
    # the text encoder (T5) is not a diffusers attention user: untouched, bit for bit
    assert torch.equal(text_out, text_ref)
    assert not any(isinstance(getattr(m, "processor", None), qattn.QuantCogVideoXAttnProcessor)
                   for m in pipe.text_encoder.modules())


def test_the_quantised_processor_is_the_stock_one_up_to_quantisation() -> None:
    """At the layer: same inputs through diffusers' CogVideoXAttnProcessor2_0 and ours (with RoPE and QK norm)."""
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    attn = t.transformer_blocks[0].attn1
    g = torch.Generator().manual_seed(5)
    rope = _rope(t)
    n_video = rope[0].shape[0]
    hidden = torch.randn(2, n_video, attn.inner_dim, generator=g)
    text = torch.randn(2, 16, attn.inner_dim, generator=g)
    with torch.inference_mode():
        v_ref, t_ref = CogVideoXAttnProcessor2_0()(attn, hidden, text, image_rotary_emb=rope)
        v_out, t_out = qattn.QuantCogVideoXAttnProcessor("int8")(attn, hidden, text, image_rotary_emb=rope)
    assert v_out.shape == v_ref.shape and t_out.shape == t_ref.shape
    assert qattn.attention_error(v_out, v_ref)["rel_l2"] < BOUND["int8"]
    assert qattn.attention_error(t_out, t_ref)["rel_l2"] < BOUND["int8"]
    with pytest.raises(BackendUnavailableError, match="no attention mask"):
        qattn.QuantCogVideoXAttnProcessor("int8")(attn, hidden, text, attention_mask=torch.ones(2, 1, 1, 1))


def test_a_wrapping_processor_keeps_its_role_and_gets_the_quantised_base() -> None:
    from lanepipe.edit.generative.branch import IDResampleProcessor

    t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    block = t.transformer_blocks[0]
    wrapper = IDResampleProcessor(block.attn1.processor, 0.5)
    block.attn1.set_processor(wrapper)
    qattn.install(t, "int8")
    assert block.attn1.processor is wrapper
    assert isinstance(wrapper.base, qattn.QuantCogVideoXAttnProcessor)


def test_flux_and_unknown_modes_are_refused() -> None:
    flux = tiny_fill_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    with pytest.raises(BackendUnavailableError, match="CogVideoX transformer only; found FluxTransformer2DModel"):
        accel.apply(flux, AccelConfig(quant_attention="int8"))
    with pytest.raises(ValueError, match="quant_attention"):
        AccelConfig(quant_attention="int4")  # type: ignore[arg-type]


def test_the_painter_runs_cogvideox_with_the_quantised_attention() -> None:
    """``video_accel.quant_attention`` through the painter: one tiny CogVideoX window (2 steps, CFG) lands near the
    stock window's latents and the painter reports what it installed."""
    from lanepipe.edit.generative import GenerativePainter

    cfg = GenerativeConfig(preset="tiny-random", seed=3)
    n, h, w = cfg.num_frames, cfg.height, cfg.width
    rng = torch.Generator().manual_seed(4)
    frames = torch.randint(0, 256, (n, h, w, 3), generator=rng, dtype=torch.uint8).numpy()
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[:, h // 2:] = True
    window = {"frames": frames, "masks": masks.numpy(), "condition": frames[0], "prompt": "double yellow solid",
              "seed": 7, "output_type": "latent"}
    stock, _ = GenerativePainter(cfg).propagate_window(**window)
    painter = GenerativePainter(cfg.model_copy(update={"video_accel": AccelConfig(quant_attention="int8")}))
    quant, _ = painter.propagate_window(**window)
    assert painter.accel_applied["video"]["quant_attention"] == {"mode": "int8", "layers": 1}
    err = qattn.attention_error(quant, stock)
    assert 1e-6 < err["rel_l2"] < 0.01, err
