"""The FLUX Fill LoRA objective: encoded batches, LoRA adapters, the rectified-flow fill loss, optimiser steps.

Shapes: ``latents (B, C, h, w)`` VAE latents at ``h = H / vae_scale``; packed sequences ``(B, h/2 · w/2, ·)`` as
the FLUX transformer takes them (:func:`pack_latents`). See :mod:`lanepipe.train.lora` for the objective's maths.
torch is imported inside the functions (``TYPE_CHECKING`` only at module level).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lanepipe import torchkit
from lanepipe.errors import BackendUnavailableError, ConfigError, InputError
from lanepipe.train.config import DEFAULT_TARGETS, INSTALL_HINT, TrainConfig, lr_factor

if TYPE_CHECKING:
    import torch

U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


def require_backend() -> None:
    """Check that torch, diffusers and peft import.

    Raises:
        BackendUnavailableError: one is missing, with the install command.
    """
    for mod in ("torch", "diffusers", "peft", "safetensors"):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise BackendUnavailableError(f"LoRA training needs {mod} ({exc}); install it with `{INSTALL_HINT}`"
                                          ) from exc


def weights_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype of the frozen weights: ``mixed_precision`` bf16 → bfloat16, fp32 → float32."""
    dtype: torch.dtype = torchkit.resolve_dtype(cfg.mixed_precision, "cpu", key="mixed_precision")
    return dtype


@dataclass(frozen=True)
class FillBatch:
    """Encoded FLUX Fill training examples (B = batch, h x w = VAE latent size, N = (h/2)(w/2) tokens).

    Attributes:
        latents: ``(B, C, h, w)`` VAE latents of the target images, shifted and scaled as the pipeline does.
        cond: ``(B, N, 4C + 4f²)`` packed masked-image latents, then the packed mask (f = VAE scale factor).
        prompt_embeds: ``(B, L, D)`` T5 embeddings of ``prompt_2``.
        pooled: ``(B, P)`` pooled CLIP embedding of ``prompt``.
        text_ids: ``(L, 3)`` zeros (text position ids).
        image_ids: ``(N, 3)`` latent position ids ``(0, row, col)``.
    """

    latents: torch.Tensor
    cond: torch.Tensor
    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor
    image_ids: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.latents.shape[0])

    def to(self, device: Any, dtype: Any) -> FillBatch:
        """The batch on ``device``; floating tensors in ``dtype``."""
        return FillBatch(*(t.to(device=device, dtype=dtype) for t in (
            self.latents, self.cond, self.prompt_embeds, self.pooled, self.text_ids, self.image_ids)))


@dataclass(frozen=True)
class EncodedShard:
    """A worker's encoded rows, prompts stored once each (canonical captions repeat: T5 embeddings are large).

    Attributes:
        latents: ``(n, C, h, w)``; cond: ``(n, N, 4C + 4f²)``; prompt_index: ``(n,)`` row → prompt;
        prompt_embeds: ``(P, L, D)``; pooled: ``(P, Dp)``; text_ids ``(L, 3)``; image_ids ``(N, 3)``.
    """

    latents: torch.Tensor
    cond: torch.Tensor
    prompt_index: torch.Tensor
    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor
    image_ids: torch.Tensor

    def batch(self, indices: Sequence[int]) -> FillBatch:
        """The rows ``indices`` as a :class:`FillBatch` (same device and dtype as the shard)."""
        idx = list(indices)
        p = self.prompt_index[idx]
        return FillBatch(self.latents[idx], self.cond[idx], self.prompt_embeds[p], self.pooled[p], self.text_ids,
                         self.image_ids)


def pack_latents(x: torch.Tensor) -> torch.Tensor:
    """FLUX 2x2 patch packing: ``(B, C, h, w)`` → ``(B, (h/2)(w/2), 4C)``, channel-major within a patch."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def latent_image_ids(h: int, w: int, device: Any = "cpu", dtype: Any = None) -> torch.Tensor:
    """``(h/2 · w/2, 3)`` position ids ``(0, row, col)`` of the packed tokens of an ``h x w`` latent."""
    import torch

    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype or torch.float32)


def transformer_of(model: Any) -> Any:
    """The ``FluxTransformer2DModel`` inside a pipeline, a DDP wrapper or the model itself."""
    model = getattr(model, "transformer", model)
    return getattr(model, "module", model)


def vae_scale_factor(transformer: Any) -> int:
    """The pixel-to-latent scale ``f`` a FLUX Fill transformer expects, from its channel counts.

    ``in_channels = 2 · 4C + 4f²`` (noisy + masked-image latents, mask) and ``out_channels = 4C``.
    """
    cfg = transformer_of(transformer).config
    rest = int(cfg.in_channels) - 2 * int(cfg.out_channels)
    f = math.isqrt(max(rest, 0) // 4)
    if rest <= 0 or 4 * f * f != rest:
        raise ConfigError(f"transformer with in_channels={cfg.in_channels}, out_channels={cfg.out_channels} is "
                          "not a FLUX Fill transformer: expected in_channels = 2·out_channels + 4·f² "
                          "(e.g. 384 = 128 + 256)")
    return f


def random_fill_batch(model: Any, width: int, height: int, *, batch_size: int = 1, text_len: int = 512,
                      seed: int = 0) -> FillBatch:
    """A :class:`FillBatch` of seeded random tensors shaped for ``model`` at ``width x height`` (benchmarks).

    Needs only the transformer (no VAE, no text encoders): latent channels, VAE scale, text and pooled widths
    come from its config; the mask part of ``cond`` is 0/1. Tensors are on the transformer's device and dtype.
    """
    import torch

    tr = transformer_of(model)
    cfg = tr.config
    f = vae_scale_factor(tr)
    c = int(cfg.out_channels) // 4
    h, w = 2 * (height // (2 * f)), 2 * (width // (2 * f))
    p = next(tr.parameters())
    g = torch.Generator().manual_seed(seed)
    n = (h // 2) * (w // 2)
    masked = torch.randn(batch_size, n, 4 * c, generator=g)
    mask = (torch.rand(batch_size, n, 4 * f * f, generator=g) > 0.5).float()
    batch = FillBatch(
        latents=torch.randn(batch_size, c, h, w, generator=g), cond=torch.cat([masked, mask], dim=2),
        prompt_embeds=torch.randn(batch_size, text_len, int(cfg.joint_attention_dim), generator=g),
        pooled=torch.randn(batch_size, int(cfg.pooled_projection_dim), generator=g),
        text_ids=torch.zeros(text_len, 3), image_ids=latent_image_ids(h, w))
    return batch.to(p.device, p.dtype)


# ============================================================================================== encoding
def encode_prompts(pipe: Any, pairs: Sequence[tuple[str, str]], max_sequence_length: int
                   ) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(prompt, prompt_2)`` → ``(prompt_embeds (1, L, D), pooled (1, P), text_ids (L, 3))``, each pair once."""
    import torch

    out: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
    device = pipe.text_encoder.device
    with torch.no_grad():
        for pair in dict.fromkeys(pairs):
            emb, pooled, ids = pipe.encode_prompt(prompt=pair[0], prompt_2=pair[1], device=device,
                                                  max_sequence_length=max_sequence_length)
            out[pair] = (emb, pooled, ids)
    return out


def encode_images(pipe: Any, images: U8, masks: Bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VAE-encode images and build the fill conditioning exactly as ``FluxFillPipeline.__call__`` does.

    Args:
        pipe: a ``FluxFillPipeline`` (its VAE and ``prepare_mask_latents`` are used).
        images: ``(B, H, W, 3) uint8`` RGB, H and W multiples of 16.
        masks: ``(B, H, W) bool``, True = repainted (white).

    Returns:
        ``latents (B, C, h, w)`` (shifted, scaled; the latent mean, no sampling), ``cond (B, N, 4C + 4f²)``,
        ``image_ids (N, 3)``.
    """
    import torch

    vae = pipe.vae
    b, hh, ww = masks.shape
    device, dtype = vae.device, vae.dtype
    img = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    mask = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None]
    masked = img * (1.0 - mask)  # repainted pixels become 0 (mid-grey), as the pipeline does
    with torch.no_grad():
        raw = vae.encode(torch.cat([img, masked]).to(device=device, dtype=dtype)).latent_dist.mode()
        latents = (raw[:b] - vae.config.shift_factor) * vae.config.scaling_factor
        c = int(raw.shape[1])
        # raw masked-image latents go in unscaled: prepare_mask_latents shifts and scales them itself
        mask_packed, masked_packed = pipe.prepare_mask_latents(
            mask.to(device=device, dtype=dtype), raw[b:], b, c, 1, hh, ww, dtype, device, None)
    cond = torch.cat([masked_packed, mask_packed], dim=2)
    return latents, cond, latent_image_ids(int(latents.shape[2]), int(latents.shape[3]), device, dtype)


def encode_examples(pipe: Any, images: U8, masks: Bool, prompts: Sequence[str], prompts_2: Sequence[str] | None,
                    max_sequence_length: int) -> FillBatch:
    """Encode ``B`` examples into one :class:`FillBatch` (frozen VAE and text encoders, no gradients).

    Args:
        images: ``(B, H, W, 3) uint8``; masks: ``(B, H, W) bool`` (True = repaint); prompts: B CLIP prompts;
        prompts_2: B T5 prompts (None: the same as ``prompts``).
    """
    import torch

    p2 = list(prompts_2) if prompts_2 is not None else list(prompts)
    if not (len(prompts) == len(p2) == len(images) == len(masks)):
        raise InputError("encode_examples", "as many prompts, prompts_2, images and masks",
                         f"{len(prompts)}, {len(p2)}, {len(images)}, {len(masks)}")
    pairs = list(zip(prompts, p2, strict=True))
    text = encode_prompts(pipe, pairs, max_sequence_length)
    latents, cond, image_ids = encode_images(pipe, images, masks)
    return FillBatch(latents=latents, cond=cond, prompt_embeds=torch.cat([text[p][0] for p in pairs]),
                     pooled=torch.cat([text[p][1] for p in pairs]), text_ids=text[pairs[0]][2], image_ids=image_ids)


# ============================================================================================== LoRA + objective
def target_module_names(transformer: Any, suffixes: Sequence[str]) -> list[str]:
    """Full names of the linear layers inside the transformer blocks whose name ends with one of ``suffixes``."""
    import torch

    names = []
    for name, mod in transformer_of(transformer).named_modules():
        if not isinstance(mod, torch.nn.Linear) or not name.startswith(("transformer_blocks.",
                                                                        "single_transformer_blocks.")):
            continue
        if any(name.endswith("." + s) for s in suffixes):
            names.append(name)
    if not names:
        raise ConfigError(f"lora_targets {list(suffixes)} match no linear layer inside the transformer blocks; "
                          f"default: {list(DEFAULT_TARGETS)}")
    return names


def add_lora(model: Any, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """Freeze the transformer, add a LoRA adapter (rank, alpha, targets of ``cfg``), return its float32 weights.

    B matrices start at zero (PEFT's default), so the adapter starts as a no-op. Gradient checkpointing is set
    as ``cfg.gradient_checkpointing`` says.
    """
    import torch

    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise BackendUnavailableError(f"LoRA training needs peft ({exc}); install it with `{INSTALL_HINT}`") from exc
    tr = transformer_of(model)
    tr.requires_grad_(False)
    tr.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, init_lora_weights=True,
                              target_modules=target_module_names(tr, cfg.lora_targets)))
    params = [p for p in tr.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.to(torch.float32)
    set_gradient_checkpointing(tr, cfg.gradient_checkpointing)
    return params


def set_gradient_checkpointing(model: Any, on: bool) -> None:
    """Switch activation recomputation of the transformer blocks on or off (less memory, ~30 % more compute)."""
    tr = transformer_of(model)
    if on:
        tr.enable_gradient_checkpointing()
    else:
        tr.disable_gradient_checkpointing()


def lora_parameters(model: Any) -> list[torch.nn.Parameter]:
    """The trainable (LoRA) parameters of the transformer, in module order."""
    return [p for p in transformer_of(model).parameters() if p.requires_grad]


def sample_sigmas(n: int, how: str, generator: torch.Generator) -> torch.Tensor:
    """``(n,) float32`` noise levels in (0, 1): ``sigmoid(N(0, 1))`` for ``logit_normal``, else uniform."""
    import torch

    if how == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    return torch.rand(n, generator=generator)


def flow_matching_loss(model: Any, batch: FillBatch, sigmas: torch.Tensor, noise: torch.Tensor,
                       guidance: float | None) -> torch.Tensor:
    """Rectified-flow fill-inpainting loss of one batch (scalar float32, mean over all latent elements).

    ``x_s = (1 - s) x0 + s e``; the model sees ``[pack(x_s), cond]`` and predicts ``pack(e - x0)``.

    Args:
        model: the FLUX Fill transformer (or its DDP wrapper).
        batch: encoded examples on the model's device and dtype.
        sigmas: ``(B,)`` noise levels in [0, 1] (passed as the timestep, the scale the pipeline uses).
        noise: ``(B, C, h, w)`` standard Gaussian noise (any float dtype; the target is formed in float32).
        guidance: value of the guidance embedding (None for a model without one).
    """
    import torch

    x0 = batch.latents.float()
    e = noise.to(device=x0.device, dtype=torch.float32)
    s = sigmas.to(device=x0.device, dtype=torch.float32).view(-1, 1, 1, 1)
    noisy = ((1.0 - s) * x0 + s * e).to(batch.latents.dtype)  # mixed in float32, fed in the model's dtype
    g = None
    if guidance is not None and transformer_of(model).config.guidance_embeds:
        g = torch.full((x0.shape[0],), float(guidance), device=x0.device, dtype=torch.float32)
    pred = model(hidden_states=torch.cat([pack_latents(noisy), batch.cond], dim=2),
                 timestep=sigmas.to(device=x0.device, dtype=noisy.dtype), guidance=g,
                 pooled_projections=batch.pooled, encoder_hidden_states=batch.prompt_embeds,
                 txt_ids=batch.text_ids, img_ids=batch.image_ids, return_dict=False)[0]
    return torch.nn.functional.mse_loss(pred.float(), pack_latents(e - x0))


def seeded_generator(*key: int) -> torch.Generator:
    import torch

    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW over ``params`` and a ``LambdaLR`` with :func:`lr_factor` (warm-up, then cosine over ``total_steps``)."""
    import torch

    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay, eps=1e-8)
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, total_steps))
    return opt, sched


def optimizer_step(model: Any, opt: Any, sched: Any, micro: Sequence[FillBatch], cfg: TrainConfig, step: int,
                   rank: int = 0) -> float:
    """One optimiser step over ``micro`` (gradient accumulation); noise and ``s`` seeded by (seed, rank, step, i).

    Returns:
        The mean loss of the micro-batches (this worker's).
    """
    import torch

    params = lora_parameters(model)
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for i, mb in enumerate(micro):
        g = seeded_generator(cfg.seed, rank, step, i)
        noise = torch.randn(tuple(mb.latents.shape), generator=g).to(mb.latents.device)
        sigmas = sample_sigmas(mb.size, cfg.sigma_sampling, g)
        sync = contextlib.nullcontext() if i == len(micro) - 1 or not hasattr(model, "no_sync") else model.no_sync()
        with sync, torchkit.sdpa_kernels(cfg.sdpa, fallback=True, key="sdpa"):
            loss = flow_matching_loss(model, mb, sigmas, noise, cfg.guidance)
            scaled: Any = loss / len(micro)
            scaled.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    opt.step()
    sched.step()
    return total / len(micro)


def eval_loss(model: Any, batch: FillBatch, cfg: TrainConfig, draws: int = 8, seed: int = 1234) -> float:
    """Mean loss over ``draws`` fixed (noise, s) draws, without gradients: a low-variance progress measure."""
    import torch

    tr = transformer_of(model)
    total = 0.0
    with torch.no_grad(), torchkit.sdpa_kernels(cfg.sdpa, fallback=True, key="sdpa"):
        for d in range(draws):
            g = seeded_generator(seed, d)
            noise = torch.randn(tuple(batch.latents.shape), generator=g).to(batch.latents.device)
            total += float(flow_matching_loss(tr, batch, sample_sigmas(batch.size, cfg.sigma_sampling, g), noise,
                                              cfg.guidance))
    return total / draws


@dataclass
class StepStats:
    """What :func:`train_steps` measured: wall seconds and loss per optimiser step, peak CUDA memory."""

    seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    trainable_params: int = 0


def train_steps(model: Any, batch: FillBatch, n_steps: int, cfg: TrainConfig) -> StepStats:
    """Run ``n_steps`` optimiser steps on one in-memory batch and time each (the GPU benchmark's entry point).

    Args:
        model: a ``FluxFillPipeline`` or a FLUX Fill transformer, already on its device and in its dtype.
            A LoRA adapter is added (:func:`add_lora`) unless the transformer has one already, in which case its
            trainable weights are trained further; gradient checkpointing is set from ``cfg`` on every call, so
            one model can be timed with and without it.
        batch: encoded examples (:func:`encode_examples` or :func:`random_fill_batch`); moved to the
            transformer's device and dtype.
        n_steps: optimiser steps; each runs ``cfg.grad_accumulation`` forward/backward passes over ``batch``.
        cfg: LoRA, optimiser (``lr``, warm-up capped at ``n_steps - 1``, cosine over ``n_steps``), ``guidance``,
            ``sigma_sampling``, ``seed``.

    Returns:
        :class:`StepStats`: per-step seconds (CUDA-synchronised), per-step losses, the peak allocated CUDA memory
        since the call started (None on CPU) and the number of trainable parameters.
    """
    import torch

    if n_steps < 1:
        raise ConfigError(f"train_steps: n_steps must be at least 1, got {n_steps}")
    tr = transformer_of(model)
    params = lora_parameters(tr) if getattr(tr, "peft_config", None) else add_lora(tr, cfg)
    set_gradient_checkpointing(tr, cfg.gradient_checkpointing)
    ref = next(p for p in tr.parameters() if not p.requires_grad)
    device = ref.device
    batch = batch.to(device, ref.dtype)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    opt, sched = make_optimizer(params, cfg, n_steps)
    tr.train()
    stats = StepStats(trainable_params=sum(p.numel() for p in params))
    for step in range(n_steps):
        t0 = time.perf_counter()
        loss = optimizer_step(tr, opt, sched, [batch] * cfg.grad_accumulation, cfg, step)
        if cuda:
            torch.cuda.synchronize(device)
        stats.seconds.append(time.perf_counter() - t0)
        stats.losses.append(loss)
    tr.eval()
    if cuda:
        stats.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
    return stats
