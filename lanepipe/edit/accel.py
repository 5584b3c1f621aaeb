"""Speed-ups for the diffusion transformers of the generative edit backend, each a config switch.

* ``attention``: which PyTorch scaled-dot-product-attention kernel runs (``auto`` lets PyTorch choose; ``cudnn``
  is cuDNN's fused attention, ``flash`` FlashAttention-2, ``efficient`` the memory-efficient kernel).
* ``fuse_qkv``: one GEMM for the query/key/value projections (diffusers' ``fuse_qkv_projections``).
* ``compile``: ``torch.compile`` each repeated transformer block in place (``blocks``); identical blocks share one
  compiled graph, so compile time is that of one block of each kind.
* ``fp8_linear``: the transformer blocks' linear layers run as fp8 (e4m3) GEMMs with row-wise scales
  (``torch._scaled_mm``; Hopper or Ada GPUs only): weights are quantised once, activations per call.
* ``quant_attention``: the CogVideoX blocks' attention runs :mod:`lanepipe.edit.qattn`'s 8-bit (int8 or fp8 Q·K)
  kernel; the text encoders and the FLUX transformer keep PyTorch's attention.

:func:`apply` changes a transformer in place and returns what it did; the attention kernel (``attention``) is
chosen around the calls by :func:`lanepipe.torchkit.sdpa_kernels`.
Nothing here imports torch at import time.
"""

from __future__ import annotations

from typing import Any

from lanepipe.edit.config import AccelConfig
from lanepipe.errors import BackendUnavailableError

#: Attribute names of the repeated blocks in the diffusers transformers we use (FLUX, CogVideoX).
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")
FP8_MAX = 448.0  # largest finite float8_e4m3fn




def blocks_of(transformer: Any) -> list[Any]:
    """The repeated blocks of a diffusers transformer (FLUX double + single blocks, CogVideoX blocks)."""
    out: list[Any] = []
    for name in BLOCK_LISTS:
        out.extend(getattr(transformer, name, None) or [])
    return out


def _fp8_linear_cls() -> Any:
    import torch

    class Fp8Linear(torch.nn.Module):
        """``nn.Linear`` replacement: weight stored as fp8 e4m3 with one scale per output row; activations are
        quantised per row on each call; the GEMM accumulates in fp32 and returns the input's dtype."""

        def __init__(self, lin: torch.nn.Linear) -> None:
            super().__init__()
            w = lin.weight.detach().float()
            scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX  # (out, 1)
            self.register_buffer("weight_fp8", (w / scale).to(torch.float8_e4m3fn))
            self.register_buffer("scale_w", scale.t().contiguous())  # (1, out)
            self.bias = lin.bias
            self.in_features, self.out_features = lin.in_features, lin.out_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            x2 = x.reshape(-1, shape[-1])
            sx = x2.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX  # (M, 1)
            xq = (x2.float() / sx).to(torch.float8_e4m3fn)
            w: torch.Tensor = self.weight_fp8  # type: ignore[assignment]
            sw: torch.Tensor = self.scale_w  # type: ignore[assignment]
            out = torch._scaled_mm(xq, w.t(), scale_a=sx, scale_b=sw, out_dtype=x.dtype)
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*shape[:-1], self.out_features)

    return Fp8Linear


def fp8_supported(device: Any) -> bool:
    """True when ``device`` is a CUDA GPU with fp8 tensor cores (compute capability 8.9 or newer)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return False
    return tuple(torch.cuda.get_device_capability(dev)) >= (8, 9)


def to_fp8(transformer: Any) -> int:
    """Swap every ``nn.Linear`` inside the repeated blocks for an fp8 one; returns how many were swapped.

    Raises:
        BackendUnavailableError: the transformer is not on a GPU with fp8 tensor cores.
    """
    import torch

    dev = next(transformer.parameters()).device
    if not fp8_supported(dev):
        raise BackendUnavailableError(
            f"fp8_linear needs a CUDA GPU of compute capability 8.9+ (Ada/Hopper); the transformer is on {dev}")
    cls = _fp8_linear_cls()
    swapped = 0
    for block in blocks_of(transformer):
        for name, child in list(block.named_modules()):
            for attr, sub in list(child.named_children()):
                if type(sub) is torch.nn.Linear and sub.in_features % 16 == 0 and sub.out_features % 16 == 0:
                    setattr(child, attr, cls(sub))
                    swapped += 1
            del name
    return swapped


def apply(transformer: Any, cfg: AccelConfig) -> dict[str, Any]:
    """Apply ``cfg`` to a diffusers transformer in place (order: fuse QKV → quantised attention → fp8 → compile);
    returns a summary.

    Raises:
        BackendUnavailableError: a switch the transformer or its device cannot take (see :func:`to_fp8` and
            :func:`lanepipe.edit.qattn.install`).
    """
    done: dict[str, Any] = {"attention": cfg.attention}
    if cfg.fuse_qkv:
        if not hasattr(transformer, "fuse_qkv_projections"):
            raise BackendUnavailableError(f"{type(transformer).__name__} has no fuse_qkv_projections()")
        transformer.fuse_qkv_projections()
        done["fuse_qkv"] = True
    if cfg.quant_attention != "none":
        from lanepipe.edit import qattn

        done["quant_attention"] = {"mode": cfg.quant_attention, "layers": qattn.install(transformer,
                                                                                          cfg.quant_attention)}
    if cfg.fp8_linear:
        done["fp8_linears"] = to_fp8(transformer)
    if cfg.compile == "blocks":
        blocks = blocks_of(transformer)
        for block in blocks:
            block.compile(dynamic=False)
        done["compiled_blocks"] = len(blocks)
    return done
