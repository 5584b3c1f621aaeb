"""Quantised attention for the CogVideoX transformer (issue 15, lever 2): ``softmax(Q Kᵀ / √d) V`` with the
``Q Kᵀ`` GEMM on int8 or fp8 operands, in the manner of SageAttention (Zhang et al., "SageAttention: Accurate 8-Bit
Attention for Plug-and-play Inference Acceleration", ICLR 2025, arXiv:2410.02367; SageAttention2,
arXiv:2411.10958). The method, written here from the papers:

1. **Smooth K.** Subtract from K its mean over tokens (per batch, head and channel). Each query's scores all shift
   by the same ``q·mean(K)``, which softmax ignores, so this is exact; it removes the channel-wise offset K carries
   in diffusion transformers, which would otherwise eat the int8 range (the papers' main accuracy fix).
2. **Quantise Q and K per block.** One scale per ``block_m`` query rows and per ``block_n`` key rows (the kernel's
   tiles, so a tile's dequantisation is one multiply of its fp32 scores): int8 with ``scale = amax / 127`` and
   round-to-nearest, or fp8 e4m3 with ``scale = amax / 448``. The softmax scale ``1/√d`` and ``log2 e`` are folded
   into Q's scales so the kernel uses ``exp2``.
3. **Online softmax** over key blocks (FlashAttention's tiling: running row max ``m``, running sum ``l``, the
   accumulator rescaled by ``2^(m_old - m_new)``), fp32 throughout.
4. **P·V.** ``int8`` mode: P (un-normalised, in [0, 1]) and V in fp16, fp32 accumulation (SageAttention 1).
   ``int8-fp8`` (SageAttention2's recipe: int8 Q Kᵀ, fp8 P·V) and ``fp8`` (fp8 e4m3 Q Kᵀ too): V smoothed too
   (its token mean is subtracted and added back after normalisation — exact, since a softmax row sums to 1),
   quantised to fp8 e4m3 per channel; P scaled by 448 and cast to fp8 e4m3; each tile's product is added to the
   fp32 accumulator on its own (SageAttention2's fp8 P·V with per-channel V scales).

Two executions of the same math (the quantisation step is shared, so they differ only by fp32 rounding):

* :func:`reference_attention`: plain PyTorch, a loop over key blocks, any device; CPU tests and the fallback on CPU.
* the Triton kernel in :mod:`lanepipe.edit.qattn_triton` (CUDA; on CPU tensors under Triton's interpreter).

:func:`quant_attention` dispatches: ``backend="auto"`` runs the Triton kernel on CUDA tensors (Triton must be
installed: ``pip install triton``, it ships with CUDA builds of torch) and the reference on CPU tensors (slow,
exact to the kernel's math: the tiny-random models and tests run it). :class:`QuantCogVideoXAttnProcessor` is
diffusers' ``CogVideoXAttnProcessor2_0`` (joint text + video tokens, QK norm, rotary embedding on the video
tokens) with this attention; :func:`install` puts it on the attention of each CogVideoX block only — never on the
text encoder, never on the FLUX transformer. Nothing here imports torch or triton at import time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal

from lanepipe.errors import BackendUnavailableError, ConfigError

__all__ = ["FORMATS", "MODES", "QuantCogVideoXAttnProcessor", "Quantized", "attention_error", "install",
           "quant_attention", "quantize", "reference_attention", "triton_available"]

QuantMode = Literal["int8", "int8-fp8", "fp8"]
#: quantised attention modes → (Q/K format, P·V format): SageAttention 1 (int8, fp16), SageAttention2's
#: recipe (int8, fp8) and all-fp8
FORMATS: dict[str, tuple[str, str]] = {"int8": ("int8", "fp16"), "int8-fp8": ("int8", "fp8"), "fp8": ("fp8", "fp8")}
MODES: tuple[str, ...] = tuple(FORMATS)
INT8_MAX = 127.0
FP8_MAX = 448.0  # largest finite float8_e4m3fn
LOG2E = 1.4426950408889634
#: default tiles of the GPU kernel (and so the quantisation blocks): SageAttention's Triton kernel uses 128 x 64
BLOCK_M = 128
BLOCK_N = 64


def triton_available() -> bool:
    """True when ``import triton`` works here (it ships with CUDA builds of torch; not needed on CPU)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Quantized:
    """Inputs of the attention kernel, quantised and padded.

    Shapes: ``q (BH, Nq_pad, Dp)`` int8/fp8, ``q_scale (BH, Nq_pad / block_m)`` fp32 (times ``log2 e / √d``),
    ``k (BH, Nk_pad, Dp)`` int8/fp8 (smoothed), ``k_scale (BH, Nk_pad / block_n)``, ``v (BH, Nk_pad, Dp)`` fp16
    (int8 mode) or fp8 (fp8 mode, smoothed), ``v_scale (BH, Dp)`` fp32 (fp8 mode; ones in int8 mode), ``v_mean
    (BH, 1, Dp)`` fp32 (the token mean taken off V, zeros in int8 mode). ``Dp`` is the head dimension padded with
    zeros to a power of two ≥ 16 (zero channels change neither ``Q Kᵀ`` nor the kept output channels).
    """

    mode: QuantMode
    q: Any
    q_scale: Any
    k: Any
    k_scale: Any
    v: Any
    v_scale: Any
    v_mean: Any
    shape: tuple[int, int, int, int]  # (B, H, Nq, D) of the query
    n_k: int
    block_m: int
    block_n: int

    @property
    def fp8_pv(self) -> bool:
        """P·V on fp8 operands (else fp16)."""
        return FORMATS[self.mode][1] == "fp8"

    @property
    def head_dim_padded(self) -> int:
        return int(self.q.shape[-1])


def _padded_dim(d: int) -> int:
    return max(16, 1 << (d - 1).bit_length())


def _pad(x: Any, n: int, d: int) -> Any:
    """``(BH, N, D)`` → ``(BH, n, d)`` with zeros after."""
    import torch.nn.functional as F  # noqa: N812

    return F.pad(x, (0, d - x.shape[-1], 0, n - x.shape[-2]))


def _block_quantize(x: Any, block: int, fmt: str, extra_scale: float = 1.0) -> tuple[Any, Any]:
    """``(BH, N_pad, Dp)`` fp32 → (quantised, ``(BH, N_pad / block)`` fp32 scales times ``extra_scale``)."""
    import torch

    bh, n, d = x.shape
    blocks = x.reshape(bh, n // block, block * d)
    qmax = INT8_MAX if fmt == "int8" else FP8_MAX
    scale = blocks.abs().amax(dim=-1).clamp(min=1e-12) / qmax  # (BH, nb)
    scaled = blocks / scale[..., None]
    if fmt == "int8":
        q = torch.floor(scaled + 0.5).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)  # as the Triton kernel rounds
    else:
        q = scaled.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q.reshape(bh, n, d), (scale * extra_scale).contiguous()


def quantize(q: Any, k: Any, v: Any, mode: QuantMode = "int8", *, block_m: int = BLOCK_M, block_n: int = BLOCK_N,
             scale: float | None = None, smooth_k: bool = True, impl: Literal["torch", "triton"] = "torch"
             ) -> Quantized:
    """Smooth and quantise ``q, k, v`` (``(B, H, N, D)``, as ``scaled_dot_product_attention`` takes them).

    Args:
        mode: ``"int8"``, ``"int8-fp8"`` or ``"fp8"`` (:data:`FORMATS`; see the module docstring).
        block_m, block_n: query / key rows per quantisation block (= the kernel's tiles); powers of two ≥ 16.
        scale: softmax scale, ``1/√D`` when None.
        smooth_k: subtract K's token mean first (exact; off only to measure what it buys).
        impl: ``"torch"`` (tensor ops, any device) or ``"triton"`` (:func:`lanepipe.edit.qattn_triton.
            quantize_blocks`: one read of each input, any strides; CUDA, or CPU under Triton's interpreter). Both
            give the same values (int8 ties round half up in both; fp8 casts round to nearest).

    Raises:
        ConfigError: an unknown mode or a block size that is not a power of two ≥ 16.
        ValueError: tensors that are not ``(B, H, N, D)`` with matching batch, heads and head dimension.
    """
    import torch

    if mode not in MODES:
        raise ConfigError(f"quantised attention mode: expected one of {list(MODES)}, found {mode!r}")
    for name, blk in (("block_m", block_m), ("block_n", block_n)):
        if blk < 16 or blk & (blk - 1):
            raise ConfigError(f"quantised attention {name}: expected a power of two >= 16, found {blk}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"quantised attention: expected (B, H, N, D) query, key and value, found shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    b, h, nq, d = q.shape
    nk = k.shape[2]
    if k.shape[:2] != (b, h) or v.shape[:2] != (b, h) or k.shape[3] != d or v.shape[3] != d or v.shape[2] != nk:
        raise ValueError(f"quantised attention: query {tuple(q.shape)}, key {tuple(k.shape)} and value "
                         f"{tuple(v.shape)} must share batch, heads and head dimension, key and value their length")
    sm_scale = 1.0 / math.sqrt(d) if scale is None else scale
    dp = _padded_dim(d)
    nq_pad, nk_pad = -(-nq // block_m) * block_m, -(-nk // block_n) * block_n
    if impl == "triton":
        return _quantize_triton(q, k, v, mode, block_m, block_n, sm_scale, smooth_k)
    qf = q.reshape(b * h, nq, d).float()
    kf = k.reshape(b * h, nk, d).float()
    vf = v.reshape(b * h, nk, d).float()
    if smooth_k:
        kf = kf - kf.mean(dim=1, keepdim=True)
    qk_fmt, pv_fmt = FORMATS[mode]
    q8, q_scale = _block_quantize(_pad(qf, nq_pad, dp), block_m, qk_fmt, sm_scale * LOG2E)
    k8, k_scale = _block_quantize(_pad(kf, nk_pad, dp), block_n, qk_fmt)
    if pv_fmt == "fp16":
        v_mean = torch.zeros(b * h, 1, dp, device=q.device)
        vq = _pad(vf, nk_pad, dp).to(torch.float16)
        v_scale = torch.ones(b * h, dp, device=q.device)
    else:
        v_mean = _pad(vf.mean(dim=1, keepdim=True), 1, dp)
        vs = _pad(vf, nk_pad, dp) - v_mean
        vs[:, nk:] = 0.0
        v_scale = (vs.abs().amax(dim=1).clamp(min=1e-12) / FP8_MAX).contiguous()  # (BH, Dp): per channel
        vq = (vs / v_scale[:, None, :]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return Quantized(mode=mode, q=q8.contiguous(), q_scale=q_scale, k=k8.contiguous(), k_scale=k_scale,
                     v=vq.contiguous(), v_scale=v_scale, v_mean=v_mean, shape=(b, h, nq, d), n_k=nk,
                     block_m=block_m, block_n=block_n)


def _quantize_triton(q: Any, k: Any, v: Any, mode: QuantMode, block_m: int, block_n: int, sm_scale: float,
                     smooth_k: bool) -> Quantized:
    """:func:`quantize` with the Triton quantisation kernel (inputs read in place, in their dtype)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from lanepipe.edit import qattn_triton as qt

    b, h, nq, d = q.shape
    bh, dp, nk = b * h, _padded_dim(d), k.shape[2]
    qk_fmt, pv_fmt = FORMATS[mode]
    q8, q_scale = qt.quantize_blocks(q, block_m, dp, qk_fmt, extra=sm_scale * LOG2E)
    k_mean = F.pad(k.mean(dim=2, dtype=torch.float32).reshape(bh, d), (0, dp - d)) if smooth_k else None
    k8, k_scale = qt.quantize_blocks(k, block_n, dp, qk_fmt, mean=k_mean)
    if pv_fmt == "fp16":
        vq, _ = qt.quantize_blocks(v, block_n, dp, "fp16")
        v_mean = torch.zeros(bh, 1, dp, device=q.device)
        v_scale = torch.ones(bh, dp, device=q.device)
    else:
        vm = v.mean(dim=2, dtype=torch.float32)  # (B, H, D)
        amax = torch.maximum(v.amax(dim=2).float() - vm, vm - v.amin(dim=2).float())  # max |v - mean| per channel
        v_scale = F.pad((amax.clamp(min=1e-12) / FP8_MAX).reshape(bh, d), (0, dp - d), value=1.0).contiguous()
        v_mean = F.pad(vm.reshape(bh, 1, d), (0, dp - d))
        vq, _ = qt.quantize_blocks(v, block_n, dp, "fp8-channel", mean=v_mean.reshape(bh, dp).contiguous(),
                                   channel_scale=v_scale)
    return Quantized(mode=mode, q=q8, q_scale=q_scale, k=k8, k_scale=k_scale, v=vq, v_scale=v_scale, v_mean=v_mean,
                     shape=(b, h, nq, d), n_k=nk, block_m=block_m, block_n=block_n)


def _finish(acc: Any, qz: Quantized, dtype: Any) -> Any:
    """``(BH, Nq_pad, Dp)`` normalised fp32 output → ``(B, H, Nq, D)`` in ``dtype`` (V's mean added back)."""
    b, h, nq, d = qz.shape
    out = acc * qz.v_scale[:, None, :] + qz.v_mean
    return out[:, :nq, :d].reshape(b, h, nq, d).to(dtype)


def reference_attention(qz: Quantized, dtype: Any) -> Any:
    """The kernel's math in plain PyTorch (loop over key blocks, online softmax); ``(B, H, Nq, D)`` in ``dtype``.

    Every product the kernel does on int8/fp8/fp16 operands is done here on the same values in fp32 (exact for
    the int8 products: ``127² · D < 2²⁴``), so kernel and reference agree to fp32 rounding.
    """
    import torch

    bh, nq_pad, _ = qz.q.shape
    qf = qz.q.float()
    q_rows = qz.q_scale.repeat_interleave(qz.block_m, dim=1)[..., None]  # (BH, Nq_pad, 1)
    m = torch.full((bh, nq_pad, 1), float("-inf"), device=qf.device)
    l_sum = torch.zeros(bh, nq_pad, 1, device=qf.device)
    acc = torch.zeros(bh, nq_pad, qz.head_dim_padded, device=qf.device)
    bn = qz.block_n
    for j in range(-(-qz.n_k // bn)):
        cols = slice(j * bn, (j + 1) * bn)
        s = (qf @ qz.k[:, cols].float().transpose(1, 2)) * (q_rows * qz.k_scale[:, j, None, None])
        valid = torch.arange(j * bn, (j + 1) * bn, device=qf.device) < qz.n_k
        s = s.masked_fill(~valid, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp2(m - m_new)
        p = torch.exp2(s - m_new)
        l_sum = l_sum * alpha + p.sum(dim=-1, keepdim=True)
        if qz.fp8_pv:
            pv = (p * FP8_MAX).to(torch.float8_e4m3fn).float() @ qz.v[:, cols].float() / FP8_MAX
        else:
            pv = p.to(torch.float16).float() @ qz.v[:, cols].float()
        acc = acc * alpha + pv
        m = m_new
    return _finish(acc / l_sum, qz, dtype)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def quant_attention(q: Any, k: Any, v: Any, mode: QuantMode = "int8", *,
                    backend: Literal["auto", "triton", "reference"] = "auto", block_m: int | None = None,
                    block_n: int | None = None, scale: float | None = None, smooth_k: bool = True) -> Any:
    """``scaled_dot_product_attention(q, k, v)`` (no mask, no dropout) with 8-bit ``Q Kᵀ``; output in q's dtype.

    Args:
        q, k, v: ``(B, H, N, D)`` (key and value may be longer or shorter than the query).
        mode: ``"int8"``, ``"int8-fp8"`` or ``"fp8"`` (:data:`FORMATS`).
        backend: ``"triton"`` (the kernel; CUDA tensors, or CPU tensors through Triton's interpreter),
            ``"reference"`` (plain PyTorch) or ``"auto"``: the kernel on CUDA (or on CPU when ``TRITON_INTERPRET=1``
            and Triton is importable), else the reference.
        block_m, block_n: tiles / quantisation blocks; the kernel's defaults (128 x 64) when None, at most the
            padded lengths (16 minimum) so tiny inputs are not padded needlessly.

    Raises:
        BackendUnavailableError: ``backend="triton"`` (or ``"auto"`` on CUDA) and Triton is not installed.
    """
    bm = block_m or min(BLOCK_M, max(16, 1 << (q.shape[2] - 1).bit_length()))
    bn = block_n or min(BLOCK_N, max(16, 1 << (k.shape[2] - 1).bit_length()))
    use_triton = backend == "triton" or (backend == "auto" and (q.is_cuda or (_interpreting()
                                                                               and triton_available())))
    if not use_triton:
        return reference_attention(quantize(q, k, v, mode, block_m=bm, block_n=bn, scale=scale, smooth_k=smooth_k),
                                   q.dtype)
    if not triton_available():
        raise BackendUnavailableError(
            f"quantised attention ({mode}) on {q.device}: Triton is not installed (pip install triton; CUDA "
            "builds of torch bring it) — on CPU the reference implementation runs instead (backend='reference')")
    from lanepipe.edit import qattn_triton

    qz = quantize(q, k, v, mode, block_m=bm, block_n=bn, scale=scale, smooth_k=smooth_k, impl="triton")
    return _finish(qattn_triton.run(qz, interpret=not q.is_cuda), qz, q.dtype)


def attention_error(out: Any, ref: Any) -> dict[str, float]:
    """Error of ``out`` against ``ref`` (same shape): relative L2 error ``‖out - ref‖ / ‖ref‖``, mean and max
    absolute error over the mean absolute value of ``ref``, and the cosine similarity of the flattened tensors."""
    import torch

    o, r = out.float().flatten(), ref.float().flatten()
    diff = (o - r).abs()
    ref_mean = float(r.abs().mean().clamp(min=1e-30))
    return {"rel_l2": float((o - r).norm() / r.norm().clamp(min=1e-30)),
            "mean_abs_rel": float(diff.mean()) / ref_mean, "max_abs_rel": float(diff.max()) / ref_mean,
            "cosine": float(torch.nn.functional.cosine_similarity(o, r, dim=0))}


# ============================================================================================== CogVideoX
class QuantCogVideoXAttnProcessor:
    """diffusers' ``CogVideoXAttnProcessor2_0`` (and its fused-QKV twin) with :func:`quant_attention`.

    The layer's text tokens are prepended to its video tokens; Q, K and V are projected (``to_q/to_k/to_v`` or
    the fused ``to_qkv``), split into heads, QK-normalised (``norm_q/norm_k``), the video part rotated
    (``image_rotary_emb``), attended jointly, projected out, and split back into ``(video, text)``.
    An attention mask is refused (CogVideoX passes none; the text encoder's masked attention never reaches here).
    """

    def __init__(self, mode: QuantMode, backend: Literal["auto", "triton", "reference"] = "auto") -> None:
        if mode not in MODES:
            raise ConfigError(f"quant_attention: expected one of {list(MODES)}, found {mode!r}")
        self.mode: QuantMode = mode
        self.backend: Literal["auto", "triton", "reference"] = backend

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any, attention_mask: Any = None,
                 image_rotary_emb: Any = None) -> tuple[Any, Any]:
        import torch

        if attention_mask is not None:
            raise BackendUnavailableError("quantised CogVideoX attention takes no attention mask; one was passed")
        n_text = encoder_hidden_states.size(1)
        x = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        b = x.shape[0]
        if getattr(attn, "to_qkv", None) is not None:  # fuse_qkv ran first
            q, k, v = attn.to_qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        head_dim = k.shape[-1] // attn.heads

        def heads(t: Any) -> Any:
            return t.view(b, -1, attn.heads, head_dim).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if image_rotary_emb is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            q[:, :, n_text:] = apply_rotary_emb(q[:, :, n_text:], image_rotary_emb)
            if not attn.is_cross_attention:
                k[:, :, n_text:] = apply_rotary_emb(k[:, :, n_text:], image_rotary_emb)
        out = quant_attention(q, k, v, self.mode, backend=self.backend)
        out = out.transpose(1, 2).reshape(b, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, n_text:], out[:, :n_text]


def install(transformer: Any, mode: QuantMode) -> int:
    """Put :class:`QuantCogVideoXAttnProcessor` on the self-attention (``attn1``) of every CogVideoX block of
    ``transformer``; returns how many. A processor that wraps another (``base``, e.g. VideoPainter's ID
    resampling) keeps its role and gets the quantised one as its base.

    Raises:
        ConfigError: an unknown mode.
        BackendUnavailableError: ``transformer`` is not a CogVideoX transformer; or it is on CUDA and Triton is
            missing, or the GPU lacks int8 (compute capability 8.0+) / fp8 (8.9+) tensor cores.
    """
    import torch

    if mode not in MODES:
        raise ConfigError(f"quant_attention: expected 'none' or one of {list(MODES)}, found {mode!r}")
    name = type(transformer).__name__
    if not name.startswith("CogVideoXTransformer3D"):
        raise BackendUnavailableError(
            f"quant_attention is implemented for the CogVideoX transformer only; found {name}")
    dev = next(transformer.parameters()).device
    if dev.type == "cuda":
        if not triton_available():
            raise BackendUnavailableError(
                f"quant_attention={mode!r} on {dev} needs Triton (pip install triton; CUDA builds of torch bring it)")
        need = (8, 9) if FORMATS[mode] != ("int8", "fp16") else (8, 0)
        cap = tuple(torch.cuda.get_device_capability(dev))
        if cap < need:
            raise BackendUnavailableError(f"quant_attention={mode!r} needs a GPU of compute capability "
                                          f"{need[0]}.{need[1]}+; {dev} has {cap[0]}.{cap[1]}")
    count = 0
    for block in transformer.transformer_blocks:
        current = block.attn1.processor
        proc = QuantCogVideoXAttnProcessor(mode)
        if hasattr(current, "base"):
            current.base = proc
        else:
            block.attn1.set_processor(proc)
        count += 1
    return count
