"""Speed-ups for the diffusion transformers of the generative edit backend, each a config switch.

* ``attention``: which PyTorch scaled-dot-product-attention kernel runs (``auto`` lets PyTorch choose; ``cudnn``
  is cuDNN's fused attention, ``flash`` FlashAttention-2, ``efficient`` the memory-efficient kernel).
* ``fuse_qkv``: one GEMM for the query/key/value projections (diffusers' ``fuse_qkv_projections``).
* ``compile``: ``torch.compile`` each repeated transformer block in place (``blocks``); identical blocks share one
  compiled graph, so compile time is that of one block of each kind. ``auto`` (the default) compiles on CUDA only.
  The compiled kernels go to one on-disk cache (``compile_cache_dir``, :func:`lanepipe.torchkit.use_compile_cache`)
  so the next worker process loads them instead of compiling again.
* ``fp8_linear``: the transformer blocks' linear layers run as fp8 (e4m3) GEMMs with row-wise scales
  (``torch._scaled_mm``; Hopper or Ada GPUs only): weights are quantised once, activations per call.
* ``quant_attention``: the CogVideoX blocks' attention runs :mod:`lanepipe.edit.qattn`'s 8-bit (int8 or fp8 Q·K)
  kernel; the text encoders and the FLUX transformer keep PyTorch's attention.

* ``cache`` (CogVideoX): diffusers' step caches — FasterCache, pyramid attention broadcast (PAB) or TaylorSeer —
  with layer patterns that name CogVideoX's modules (``transformer_blocks.<i>.attn1``, ``transformer_blocks.<i>``);
  diffusers' TaylorSeer defaults (``re.fullmatch`` of ``^transformer_blocks.*attn``) match no CogVideoX module
  (its attention is ``attn1``), which is why they had no effect. :func:`apply_cache` raises when nothing matches.
* ``cfg_truncation`` (CogVideoX): after that fraction of the steps the transformer runs the conditional half of
  the CFG batch only (:class:`CfgTruncation`); returning it for both halves makes the pipeline's guidance
  ``uncond + s (cond - uncond)`` equal the conditional prediction, so the sampler is unchanged.

:func:`apply` changes a transformer in place and returns what it did; the attention kernel (``attention``) is
chosen around the calls by :func:`lanepipe.torchkit.sdpa_kernels`.
Nothing here imports torch at import time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from lanepipe import torchkit
from lanepipe.edit.config import AccelConfig
from lanepipe.errors import BackendUnavailableError

#: Attribute names of the repeated blocks in the diffusers transformers we use (FLUX, CogVideoX).
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")
FP8_MAX = 448.0  # largest finite float8_e4m3fn

#: CogVideoX's self-attention layers (``CogVideoXBlock.attn1``; text and video tokens attend jointly), as
#: ``re.search`` patterns (FasterCache, PAB) ...
COGVIDEOX_ATTENTION = r"^transformer_blocks\.\d+\.attn1$"
#: ... and its whole blocks, as a ``re.fullmatch`` pattern (TaylorSeer caches the block's two outputs).
COGVIDEOX_BLOCKS = r"transformer_blocks\.\d+"


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


def compile_mode(cfg: AccelConfig, device: Any) -> str:
    """``cfg.compile`` resolved on ``device``: ``auto`` → ``blocks`` on CUDA, ``none`` elsewhere."""
    if cfg.compile != "auto":
        return cfg.compile
    return "blocks" if str(device).startswith("cuda") else "none"


def cache_config(kind: str, timestep: Callable[[], Any], steps: int, dtype: str = "float32") -> Any:
    """The diffusers cache config of ``kind`` for CogVideoX, its layer patterns matching CogVideoX's modules.

    Settings: FasterCache as diffusers documents it for CogVideoX (attention reused every 2nd step for timesteps
    below 681, weight 0.3; the unconditional batch reused every 5th step below 781; ``BFCHW`` latents); PAB
    spatial attention reused every 2nd step within timesteps 100-800 (diffusers' default range); TaylorSeer
    first-order prediction of whole blocks, computed every ``max(2, steps // 10)`` steps after the first
    ``max(1, steps // 10)`` full steps (diffusers' defaults, interval 5 after 3, assume ~50 steps), its factors
    stored in ``dtype`` (``video_accel.cache_dtype``).
    """
    import torch

    d = _diffusers()
    if kind == "faster":
        return d.FasterCacheConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 681),
            current_timestep_callback=timestep, attention_weight_callback=lambda _: 0.3,
            unconditional_batch_skip_range=5, unconditional_batch_timestep_skip_range=(-1, 781),
            spatial_attention_block_identifiers=(COGVIDEOX_ATTENTION,), temporal_attention_block_identifiers=(),
            tensor_format="BFCHW", is_guidance_distilled=False)
    if kind == "pab":
        return d.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(100, 800),
            spatial_attention_block_identifiers=(COGVIDEOX_ATTENTION,), temporal_attention_block_identifiers=(),
            cross_attention_block_identifiers=(), current_timestep_callback=timestep)
    if kind == "taylorseer":
        return d.TaylorSeerCacheConfig(
            cache_interval=max(2, steps // 10), disable_cache_before_step=max(1, steps // 10), max_order=1,
            taylor_factors_dtype=getattr(torch, dtype), cache_identifiers=[COGVIDEOX_BLOCKS])
    raise ValueError(f"video_accel.cache must be one of none, faster, pab, taylorseer; got {kind!r}")


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise BackendUnavailableError(f"video_accel.cache needs diffusers ({exc})") from exc
    return diffusers


def cached_layers(transformer: Any, kind: str) -> list[str]:
    """Names of the modules the ``kind`` cache hooks in ``transformer`` (the patterns above)."""
    names = [n for n, _ in transformer.named_modules()]
    if kind == "taylorseer":
        return [n for n in names if re.fullmatch(COGVIDEOX_BLOCKS, n)]
    return [n for n in names if re.search(COGVIDEOX_ATTENTION, n)]


def apply_cache(transformer: Any, kind: str, timestep: Callable[[], Any], steps: int,
                dtype: str = "float32") -> list[str]:
    """Enable the diffusers cache ``kind`` on a CogVideoX transformer; returns the hooked layer names.

    Raises:
        BackendUnavailableError: no layer of the transformer matches (a transformer that is not CogVideoX's) or
            it has no ``enable_cache`` (diffusers older than 0.33).
    """
    layers = cached_layers(transformer, kind)
    if not layers:
        raise BackendUnavailableError(
            f"video_accel.cache={kind!r}: no layer of {type(transformer).__name__} matches CogVideoX's "
            f"{COGVIDEOX_BLOCKS if kind == 'taylorseer' else COGVIDEOX_ATTENTION!r}; the cache would do nothing")
    if not hasattr(transformer, "enable_cache"):
        raise BackendUnavailableError(f"{type(transformer).__name__} has no enable_cache(): diffusers >= 0.33 needed")
    transformer.enable_cache(cache_config(kind, timestep, steps, dtype))
    return layers


def resize_cache(transformer: Any, kind: str, timestep: Callable[[], Any], steps: int,
                 dtype: str = "float32") -> None:
    """Re-enable the ``kind`` cache sized for ``steps`` denoising steps (its intervals follow the step count, set
    when it was enabled: a video with another step count would otherwise cache on the old schedule)."""
    transformer.disable_cache()
    apply_cache(transformer, kind, timestep, steps, dtype)


def reset_cache(transformer: Any) -> None:
    """Forget cached step outputs (call before each new video: the caches keep state across calls)."""
    reset = getattr(transformer, "_reset_stateful_cache", None)
    if callable(reset) and getattr(transformer, "is_cache_enabled", False):
        reset()


class CfgTruncation:
    """Drops the unconditional half of the CFG batch after the first ``fraction`` of the steps.

    Installed as forward hooks on the transformer: each call is a denoising step (call :meth:`start` before
    each video). From step ``ceil(fraction * steps)`` on, a call with an even batch ``2B`` runs the last ``B``
    rows (diffusers puts the conditional half last: ``noise_pred_uncond, noise_pred_text = chunk(2)``) and its
    output is repeated for both halves, so guidance returns the conditional prediction unchanged.
    """

    #: the transformer's keyword inputs that carry the CFG batch
    BATCHED = ("hidden_states", "encoder_hidden_states", "timestep")

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.cfg_steps = 0
        self.calls = 0
        self.truncated_calls = 0
        self._active = False
        #: the hook handles once installed (``.remove()`` each to undo)
        self.handles: list[Any] = []

    def start(self, steps: int) -> None:
        """A new video of ``steps`` denoising steps begins."""
        self.cfg_steps = math.ceil(self.fraction * steps)
        self.calls = 0

    def install(self, transformer: Any) -> list[Any]:
        """Register the hooks on ``transformer``; returns their handles (``.remove()`` undoes)."""
        # first among the pre-hooks, so other hooks see the batch the blocks will see
        self.handles = [transformer.register_forward_pre_hook(self._before, with_kwargs=True, prepend=True),
                        transformer.register_forward_hook(self._after)]
        return self.handles

    def _before(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls += 1
        hs = kwargs.get("hidden_states")
        if hs is None or args or self.calls <= self.cfg_steps or hs.shape[0] % 2:
            self._active = False
            return None
        self._active = True
        half = hs.shape[0] // 2
        out = dict(kwargs)
        for key in self.BATCHED:
            v = out.get(key)
            if v is not None and getattr(v, "ndim", 0) >= 1 and v.shape[0] == 2 * half:
                out[key] = v[half:]
        self.truncated_calls += 1
        return args, out

    def _after(self, module: Any, args: tuple[Any, ...], output: Any) -> Any:
        if not self._active:
            return None
        import torch

        self._active = False
        if isinstance(output, tuple):
            return (torch.cat([output[0], output[0]]), *output[1:])
        output.sample = torch.cat([output.sample, output.sample])
        return output


def apply(transformer: Any, cfg: AccelConfig, *, timestep: Callable[[], Any] | None = None,
          steps: int = 50) -> dict[str, Any]:
    """Apply ``cfg`` to a diffusers transformer in place (order: fuse QKV → quantised attention → fp8 → compile →
    cache → CFG truncation); returns a summary (the :class:`CfgTruncation` under ``"cfg_truncation"`` when on).

    Args:
        transformer: a FLUX or CogVideoX diffusers transformer, on its device.
        cfg: the switches.
        timestep: returns the pipeline's current timestep (FasterCache and PAB need it; e.g.
            ``lambda: pipe.current_timestep``).
        steps: denoising steps per video (TaylorSeer's interval is sized from it).

    Raises:
        BackendUnavailableError: a switch the transformer or its device cannot take (see :func:`to_fp8`,
            :func:`apply_cache` and :func:`lanepipe.edit.qattn.install`).
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
    device = next(transformer.parameters()).device
    if compile_mode(cfg, device) == "blocks":
        done["compile_cache"] = torchkit.use_compile_cache(cfg.compile_cache_dir)
        blocks = blocks_of(transformer)
        for block in blocks:
            block.compile(dynamic=False)
        done["compiled_blocks"] = len(blocks)
    if cfg.cache != "none":
        if timestep is None and cfg.cache in ("faster", "pab"):
            raise ValueError(f"cache={cfg.cache!r} needs the pipeline's current timestep (timestep=...)")
        done["cache"] = {"kind": cfg.cache, "steps": steps, "dtype": cfg.cache_dtype,
                         "layers": apply_cache(transformer, cfg.cache, timestep or (lambda: None), steps,
                                               cfg.cache_dtype)}
    if cfg.cfg_truncation < 1.0:
        trunc = CfgTruncation(cfg.cfg_truncation)
        trunc.install(transformer)
        done["cfg_truncation"] = trunc
    return done
