"""The Triton kernel of :mod:`lanepipe.edit.qattn` (imported only when Triton is installed).

One program per ``(query tile of BLOCK_M rows, batch·head)``: the tile's int8/fp8 queries stay in registers; for
each key tile the 8-bit ``Q Kᵀ`` product (int32 accumulation for int8, fp32 for fp8) is dequantised by one scale
product, masked past the key length, folded into the online softmax (base 2: the scales carry ``log2 e``), and
``P·V`` is added to the fp32 accumulator — fp16 operands (int8 mode) or fp8 e4m3 with P scaled by 448 (fp8 mode;
each tile's product is added in fp32 on its own, the two-level accumulation SageAttention2 uses against Hopper's
reduced-precision fp8 MMA accumulator). The output is normalised by the running sum and written in fp32; the caller
applies V's per-channel scale and mean (:func:`lanepipe.edit.qattn._finish`).

On CPU tensors the kernel runs under Triton's interpreter (numpy), for tests at small shapes; it needs
``TRITON_INTERPRET=1`` in the environment before Triton is first imported (Triton's own library functions are
interpretable only then).
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from lanepipe.errors import BackendUnavailableError

#: largest finite float8_e4m3fn (a constexpr: a Triton kernel may read only constexpr globals)
FP8_MAX = tl.constexpr(448.0)
INT8_MAX = tl.constexpr(127.0)


@triton.jit  # type: ignore[misc]
def _round_e4m3(x):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
    """``x`` (fp32, |x| ≤ 448) rounded to the nearest float8 e4m3 value, ties to even (3 mantissa bits, subnormal
    step 2^-9): what the GPU's ``cvt.rn`` does, written out for Triton's interpreter (see :func:`run`)."""
    a = tl.abs(x)
    step = tl.exp2(tl.maximum(tl.floor(tl.log2(tl.maximum(a, 1e-30))), -6.0) - 3.0)
    t = a / step
    r = tl.floor(t + 0.5)
    r = tl.where(((r - t) == 0.5) & ((r - 2.0 * tl.floor(r * 0.5)) == 1.0), r - 1.0, r)
    a = r * step
    return tl.where(x < 0, -a, a)


def _qattn_fwd(q_ptr, k_ptr, v_ptr, qs_ptr, ks_ptr, o_ptr, n_qb, n_kb, seq_q, seq_k,  # type: ignore[no-untyped-def]  # noqa: ANN001
               N_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr,  # noqa: N803
               INT8_QK: tl.constexpr, FP8_PV: tl.constexpr, ROUND_FP8: tl.constexpr) -> None:  # noqa: N803
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    q = tl.load(q_ptr + bh * seq_q * D + offs_m[:, None] * D + offs_d[None, :])
    q_scale = tl.load(qs_ptr + bh * n_qb + pid_m)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    k_base = k_ptr + bh * seq_k * D
    v_base = v_ptr + bh * seq_k * D
    for start in range(0, N_K, BLOCK_N):
        rows = start + offs_n
        k = tl.load(k_base + rows[:, None] * D + offs_d[None, :])
        k_scale = tl.load(ks_ptr + bh * n_kb + start // BLOCK_N)
        if INT8_QK:  # noqa: SIM108 (a branch on a constexpr: only one side is compiled)
            s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32)
        else:
            s = tl.dot(q, tl.trans(k))
        s = s * (q_scale * k_scale)
        s = tl.where(rows[None, :] < N_K, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_base + rows[:, None] * D + offs_d[None, :])
        if FP8_PV:
            p8 = p * FP8_MAX
            if ROUND_FP8:  # round to e4m3's grid first, see run()
                p8 = _round_e4m3(p8)
            pv = tl.dot(p8.to(v.dtype), v) / FP8_MAX
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(o_ptr + bh * seq_q * D + offs_m[:, None] * D + offs_d[None, :], out)


_KERNEL = triton.jit(_qattn_fwd)  # type: ignore[misc]
def _quant_fwd(x_ptr, mean_ptr, vscale_ptr, out_ptr, scale_ptr, n, d, s_b, s_h, s_n, s_d,  # type: ignore[no-untyped-def]  # noqa: ANN001
               heads, n_pad, n_blocks, extra,  # noqa: ANN001
               BLOCK: tl.constexpr, DP: tl.constexpr, FMT: tl.constexpr, HAS_MEAN: tl.constexpr,  # noqa: N803
               ROUND_FP8: tl.constexpr) -> None:  # noqa: N803
    """One ``BLOCK x DP`` block of a ``(B, H, N, D)`` tensor (any strides) → padded ``(BH, n_pad, DP)`` output:
    FMT 0 int8 / 1 fp8 e4m3 with the block's scale (times ``extra``) stored, 2 fp16, 3 fp8 with the per-channel
    scales in ``vscale_ptr``; the per-(batch·head, channel) mean is subtracted first when HAS_MEAN."""
    blk = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    rows = blk * BLOCK + tl.arange(0, BLOCK)
    cols = tl.arange(0, DP)
    mask = (rows[:, None] < n) & (cols[None, :] < d)
    src = x_ptr + (bh // heads) * s_b + (bh % heads) * s_h + rows[:, None] * s_n + cols[None, :] * s_d
    x = tl.load(src, mask=mask, other=0.0).to(tl.float32)
    if HAS_MEAN:
        x = tl.where(mask, x - tl.load(mean_ptr + bh * DP + cols)[None, :], 0.0)
    dst = out_ptr + bh * n_pad * DP + rows[:, None] * DP + cols[None, :]
    if FMT == 2:
        tl.store(dst, x.to(tl.float16))
    elif FMT == 3:
        y = x / tl.load(vscale_ptr + bh * DP + cols)[None, :]
        y = tl.minimum(tl.maximum(y, -FP8_MAX), FP8_MAX)
        if ROUND_FP8:
            y = _round_e4m3(y)
        tl.store(dst, y.to(out_ptr.dtype.element_ty))
    else:
        qmax = INT8_MAX if FMT == 0 else FP8_MAX
        scale = tl.maximum(tl.max(tl.max(tl.abs(x), 1), 0), 1e-12) / qmax
        y = tl.minimum(tl.maximum(x / scale, -qmax), qmax)
        if FMT == 0:
            y = tl.floor(y + 0.5)
        elif ROUND_FP8:
            y = _round_e4m3(y)
        tl.store(dst, y.to(out_ptr.dtype.element_ty))
        tl.store(scale_ptr + bh * n_blocks + blk, scale * extra)


_QUANT = triton.jit(_quant_fwd)  # type: ignore[misc]
#: True when Triton was imported with TRITON_INTERPRET=1 (its own library functions are then interpretable too)
INTERPRETED = isinstance(_KERNEL, InterpretedFunction)


def run(qz: Any, *, interpret: bool = False, num_warps: int | None = None, num_stages: int = 3) -> Any:
    """Launch the kernel on :class:`lanepipe.edit.qattn.Quantized` inputs; ``(BH, Nq_pad, Dp)`` fp32 output,
    normalised, before V's scale and mean. ``interpret``: run under Triton's interpreter (CPU tensors)."""
    import torch

    bh, nq_pad, d = qz.q.shape
    nk_pad = qz.k.shape[1]
    out = torch.empty(bh, nq_pad, d, device=qz.q.device, dtype=torch.float32)
    grid = (nq_pad // qz.block_m, bh)
    args = (qz.q, qz.k, qz.v, qz.q_scale, qz.k_scale, out, qz.q_scale.shape[1], qz.k_scale.shape[1],
            nq_pad, nk_pad)
    meta = {"N_K": qz.n_k, "BLOCK_M": qz.block_m, "BLOCK_N": qz.block_n, "D": d, "INT8_QK": qz.q.dtype == torch.int8,
            "FP8_PV": qz.fp8_pv,
            # Triton 3.5's interpreter casts fp32 -> fp8 without carrying a mantissa round-up into the exponent
            # (1.95 -> 1.0) and truncates subnormals; the GPU's cvt rounds to nearest. Under the interpreter P is
            # rounded to the e4m3 grid arithmetically first, so the cast is exact and matches the hardware.
            "ROUND_FP8": interpret}
    if interpret != _check_interpret(qz.q.device):
        raise BackendUnavailableError(f"interpret={interpret} for tensors on {qz.q.device}")
    if interpret:
        _KERNEL[grid](*args, **meta)
    else:
        _KERNEL[grid](*args, **meta, num_warps=num_warps or (4 if d <= 64 else 8), num_stages=num_stages)
    return out


def _check_interpret(device: Any) -> bool:
    interpret = bool(device.type != "cuda")
    if interpret != INTERPRETED:
        raise BackendUnavailableError(
            "the quantised attention kernels run on CUDA tensors, or on CPU tensors under Triton's interpreter: "
            f"found {device} tensors with TRITON_INTERPRET {'set' if INTERPRETED else 'unset'} when Triton "
            "was imported")
    return interpret


def quantize_blocks(x: Any, block: int, dp: int, fmt: str, *, extra: float = 1.0, mean: Any = None,
                    channel_scale: Any = None) -> tuple[Any, Any]:
    """``(B, H, N, D)`` (any strides, any float dtype) → ``(BH, N_pad, dp)`` padded output and ``(BH, N_pad /
    block)`` fp32 block scales (times ``extra``), in one read of ``x``.

    ``fmt``: ``"int8"``/``"fp8"`` (block scales), ``"fp16"`` (a cast; scales unused), ``"fp8-channel"`` (fp8 with
    ``channel_scale`` ``(BH, dp)``). ``mean``: ``(BH, dp)`` fp32 subtracted first (K's / V's token mean).
    """
    import torch

    interpret = _check_interpret(x.device)
    b, h, n, d = x.shape
    n_pad = -(-n // block) * block
    dtype = {"int8": torch.int8, "fp8": torch.float8_e4m3fn, "fp16": torch.float16,
             "fp8-channel": torch.float8_e4m3fn}[fmt]
    out = torch.empty(b * h, n_pad, dp, device=x.device, dtype=dtype)
    scale = torch.empty(b * h, n_pad // block, device=x.device, dtype=torch.float32)
    dummy = scale  # stands for an absent pointer argument (never read)
    grid = (n_pad // block, b * h)
    _QUANT[grid](x, dummy if mean is None else mean, dummy if channel_scale is None else channel_scale, out, scale,
                 n, d, *x.stride(), h, n_pad, n_pad // block, extra, BLOCK=block, DP=dp,
                 FMT={"int8": 0, "fp8": 1, "fp16": 2, "fp8-channel": 3}[fmt], HAS_MEAN=mean is not None,
                 ROUND_FP8=interpret)
    return out, scale
