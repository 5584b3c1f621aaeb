"""LoRA fine-tuning of the FLUX.1 Fill transformer on (image, road mask, caption) rows, with Ray Train.

The workflow, top to bottom:

1. **Check the dataset** on the driver (:func:`lanepipe.train.data.load_rows`, i.e.
   ``lanepipe.datasets.training.validate_rows``): no rows, or no usable row, is refused with the reasons; the
   plan (:func:`make_plan`) needs at least ``num_workers x batch_size`` rows.
2. **Start** a Ray Train ``TorchTrainer`` with ``num_workers`` workers (:func:`train_lora`). Each worker loads
   FLUX.1 Fill (or the ``tiny-random`` preset), takes its fixed shard of rows (``rows[rank::world]``) and
   **encodes them once**: VAE latents of the image, packed masked-image latents + packed mask (the fill
   conditioning, built by the pipeline's own ``prepare_mask_latents``), and the CLIP/T5 prompt embeddings,
   computed once per distinct prompt. The frozen text encoders and VAE are then dropped.
3. **Trains** PEFT LoRA adapters on the transformer blocks' linear layers (:data:`DEFAULT_TARGETS`); frozen base
   weights in the ``mixed_precision`` dtype, LoRA weights in float32; ``ray.train.torch.prepare_model`` wraps the
   model in DDP when there is more than one worker (DDP then syncs only the LoRA gradients, the only ones that
   exist). AdamW, linear warm-up then cosine decay to 0, gradient-norm clipping, gradient accumulation.
4. **Reports** the loss every ``report_every`` steps and a Ray ``Checkpoint`` every ``checkpoint_every`` steps
   and at the end (Ray Train 2.60 hands a report over only when its controller polls, every
   ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` = 2 s by default, so reporting every step would cap the step rate),
   named ``<output>/checkpoints/checkpoint-<step>`` (adapter, optimizer and scheduler state, step, losses).
   A re-run with the same output resumes from the latest checkpoint and does not redo its steps.
5. **Writes** ``<output>/pytorch_lora_weights.safetensors`` (diffusers key format, loadable with
   ``FluxFillPipeline.load_lora_weights(dir, weight_name=..., use_safetensors=True)``, which is what the edit
   stage's ``GenerativeConfig.lora_path`` does) and ``<output>/train_summary.json``, each written whole (temporary
   name, then rename).

**Objective** (rectified flow, as FLUX was trained; Esser et al. 2024): with image latents ``x0`` and Gaussian
noise ``e``, ``x_s = (1 - s) x0 + s e`` and the transformer predicts the velocity ``e - x0`` from the packed
``x_s`` concatenated along channels with the fill conditioning; mean squared error over all latent elements.
The transformer takes ``timestep = s`` in [0, 1] (the pipeline passes its ``t / 1000``, and ``t = 1000 s``).
``s`` is drawn **logit-normal** (``sigmoid(N(0, 1))``) by default: SD3's study found it the best of the
samplers they tried for rectified flow, because it spends the steps on mid-range noise where the velocity is
hardest to predict; ``uniform`` is the option. The guidance embedding gets ``guidance`` (default 1.0: the
target is the plain conditional velocity, so the adapter learns under "no extra guidance"; inference may still
use 30).

For the GPU benchmark, :func:`train_steps` runs N optimiser steps on one in-memory :class:`FillBatch` and returns
per-step seconds, losses and peak memory; :func:`random_fill_batch` builds a batch of the right shapes for any
FLUX Fill transformer without VAE or text encoders.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lanepipe import torchkit
from lanepipe.errors import BackendUnavailableError, ConfigError, InputError, LanepipeError
from lanepipe.io import storage

if TYPE_CHECKING:
    import torch

U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

log = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"
SUMMARY_FILE = "train_summary.json"
CHECKPOINTS = "checkpoints"
_CKPT_RE = re.compile(r"checkpoint-(\d+)$")
_ADAPTER = "adapter.safetensors"
_OPTIM = "optimizer.pt"
_STATE = "state.json"
_INSTALL_HINT = "pip install 'lanepipe[generative]'"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Module-name suffixes that get LoRA, looked up inside ``transformer_blocks`` and ``single_transformer_blocks``
#: only (never the embedders or the final ``proj_out``): the joint-attention projections of both streams and,
#: in single blocks, the MLP input and the fused attention/MLP output projection.
DEFAULT_TARGETS: tuple[str, ...] = (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
    "attn.add_v_proj", "attn.to_add_out", "proj_mlp", "proj_out")
#: Values the ``tiny-random`` preset uses for every field the caller did not set.
TINY_DEFAULTS: dict[str, Any] = {"resolution": (64, 48), "mixed_precision": "fp32", "max_sequence_length": 16,
                                 "use_gpu": False}


# ============================================================================================== configuration
class TrainConfig(BaseModel):
    """Settings of a LoRA training run (sizes in pixels at the model's ``resolution``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["none", "tiny-random"] = Field(
        "none", description="'tiny-random': tiny seeded random FLUX Fill built in memory (tests); 'none': load")
    flux_model: str = Field("black-forest-labs/FLUX.1-Fill-dev", description="FLUX.1 Fill: local folder or hub id")
    output: str = Field("lora-out", description="output folder or URL: adapter, summary, checkpoints/")
    rank: int = Field(16, ge=1, le=1024, description="LoRA rank r")
    alpha: int = Field(16, ge=1, le=4096, description="LoRA alpha (the update is scaled by alpha / r)")
    lora_targets: tuple[str, ...] = Field(DEFAULT_TARGETS, min_length=1,
                                          description="module-name suffixes inside the transformer blocks")
    lr: float = Field(1e-5, gt=0, le=1.0, description="AdamW peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=1.0, description="AdamW weight decay")
    warmup_steps: int = Field(50, ge=0, description="linear warm-up steps, then cosine decay to 0")
    epochs: int = Field(5, ge=1, le=100_000, description="passes over each worker's shard")
    max_steps: int | None = Field(None, ge=1, description="optimiser steps in all; overrides epochs when set")
    batch_size: int = Field(1, ge=1, le=256, description="examples per worker per micro-batch")
    grad_accumulation: int = Field(1, ge=1, le=1024, description="micro-batches per optimiser step")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient-norm clipping of the LoRA weights")
    mixed_precision: Literal["bf16", "fp32"] = Field(
        "bf16", description="dtype of the frozen weights and activations; LoRA weights stay float32")
    gradient_checkpointing: bool = Field(False, description="recompute block activations in backward (less memory)")
    checkpoint_every: int = Field(100, ge=1, description="optimiser steps between checkpoints (and at the end)")
    report_every: int = Field(10, ge=1, description="optimiser steps between metric reports to Ray Train (a "
                              "report may wait for the controller's next poll, RAY_TRAIN_HEALTH_CHECK_INTERVAL_S)")
    keep_checkpoints: int = Field(3, ge=1, description="most recent checkpoints kept in <output>/checkpoints")
    resolution: tuple[int, int] = Field((720, 480), description="(width, height) of the model input, multiples of 16")
    max_sequence_length: int = Field(512, ge=1, le=512, description="T5 prompt tokens")
    guidance: float = Field(1.0, ge=0.0, le=100.0, description="value fed to the guidance embedding while training")
    sigma_sampling: Literal["logit_normal", "uniform"] = Field(
        "logit_normal", description="distribution of the noise level s in [0, 1]")
    sdpa: Literal["flash", "efficient", "math", "cudnn", "torch"] = Field(
        "flash", description="attention kernel tried first (others as fallbacks); 'torch': PyTorch's own order, "
        "which picks cuDNN on Hopper, whose backward failed on the project's H200 image (torch 2.11, CUDA 13)")
    num_workers: int = Field(1, ge=1, le=1024, description="Ray Train workers (one GPU each with use_gpu)")
    use_gpu: bool = Field(True, description="one GPU per worker")
    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the last checkpoint (-1: forever)")
    seed: int = Field(0, ge=0, description="seed of data order, noise, s (and of the tiny-random weights)")

    @model_validator(mode="before")
    @classmethod
    def _tiny_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") == "tiny-random":
            return {**TINY_DEFAULTS, **data}
        return data

    @field_validator("resolution")
    @classmethod
    def _multiple_of_16(cls, v: tuple[int, int]) -> tuple[int, int]:
        w, h = v
        if w < 16 or h < 16 or w % 16 or h % 16:
            raise ValueError(f"resolution (width, height) must be multiples of 16, at least 16 (FLUX packs 2x2 "
                             f"latents of an 8x VAE), got {w}x{h}")
        return v

    @property
    def width(self) -> int:
        return self.resolution[0]

    @property
    def height(self) -> int:
        return self.resolution[1]


def parse_config(data: dict[str, Any]) -> TrainConfig:
    """Validate a dict into a :class:`TrainConfig`.

    Raises:
        ConfigError: unknown keys or invalid values, one line per problem.
    """
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(map(str, x['loc'])) or '(config)'}: {x['msg']} (got {str(x.get('input'))[:60]})"
                 for x in e.errors()]
        raise ConfigError("invalid training config:\n" + "\n".join(lines)) from None


@dataclass(frozen=True)
class TrainPlan:
    """How a dataset of ``rows`` examples is cut into optimiser steps (same for every worker)."""

    rows: int
    rows_per_worker: int
    micro_per_epoch: int
    total_steps: int


def make_plan(rows: int, cfg: TrainConfig) -> TrainPlan:
    """Steps of a run: each worker has ``rows // num_workers`` rows, ``// batch_size`` micro-batches per epoch.

    Every worker runs the same number of steps (DDP and ``ray.train.report`` need it), so a remainder of rows
    is left out. ``max_steps`` replaces ``epochs x micro_per_epoch // grad_accumulation`` when set.

    Raises:
        InputError: fewer rows than ``num_workers x batch_size``, or fewer micro-batches in all than
            ``grad_accumulation`` (no whole step).
    """
    per_worker = rows // cfg.num_workers
    micro = per_worker // cfg.batch_size
    if micro < 1:
        raise InputError("dataset", f"at least num_workers x batch_size = {cfg.num_workers * cfg.batch_size} "
                         "usable rows", f"{rows}", "add rows or lower num_workers/batch_size")
    total = cfg.max_steps or cfg.epochs * micro // cfg.grad_accumulation
    if total < 1:
        raise InputError("dataset", f"at least grad_accumulation = {cfg.grad_accumulation} micro-batches over "
                         f"{cfg.epochs} epoch(s)", f"{cfg.epochs * micro}", "raise epochs or set max_steps")
    return TrainPlan(rows=rows, rows_per_worker=per_worker, micro_per_epoch=micro, total_steps=total)


def micro_batch_indices(m: int, plan: TrainPlan, cfg: TrainConfig, rank: int) -> list[int]:
    """Indices into a worker's shard for its ``m``-th micro-batch: a fresh seeded permutation each epoch."""
    epoch, j = divmod(m, plan.micro_per_epoch)
    perm = np.random.default_rng([cfg.seed, epoch, rank]).permutation(plan.rows_per_worker)
    return [int(i) for i in perm[j * cfg.batch_size:(j + 1) * cfg.batch_size]]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier at optimiser ``step`` (0-based): linear warm-up to 1, then cosine to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# ============================================================================================== tensors
def require_backend() -> None:
    """Check that torch, diffusers and peft import.

    Raises:
        BackendUnavailableError: one is missing, with the install command.
    """
    for mod in ("torch", "diffusers", "peft", "safetensors"):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise BackendUnavailableError(f"LoRA training needs {mod} ({exc}); install it with `{_INSTALL_HINT}`"
                                          ) from exc


def _dtype(cfg: TrainConfig) -> torch.dtype:
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


def _transformer(model: Any) -> Any:
    """The ``FluxTransformer2DModel`` inside a pipeline, a DDP wrapper or the model itself."""
    model = getattr(model, "transformer", model)
    return getattr(model, "module", model)


def vae_scale_factor(transformer: Any) -> int:
    """The pixel-to-latent scale ``f`` a FLUX Fill transformer expects, from its channel counts.

    ``in_channels = 2 · 4C + 4f²`` (noisy + masked-image latents, mask) and ``out_channels = 4C``.
    """
    cfg = _transformer(transformer).config
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

    tr = _transformer(model)
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
    for name, mod in _transformer(transformer).named_modules():
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
        raise BackendUnavailableError(f"LoRA training needs peft ({exc}); install it with `{_INSTALL_HINT}`") from exc
    tr = _transformer(model)
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
    tr = _transformer(model)
    if on:
        tr.enable_gradient_checkpointing()
    else:
        tr.disable_gradient_checkpointing()


def lora_parameters(model: Any) -> list[torch.nn.Parameter]:
    """The trainable (LoRA) parameters of the transformer, in module order."""
    return [p for p in _transformer(model).parameters() if p.requires_grad]


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
    if guidance is not None and _transformer(model).config.guidance_embeds:
        g = torch.full((x0.shape[0],), float(guidance), device=x0.device, dtype=torch.float32)
    pred = model(hidden_states=torch.cat([pack_latents(noisy), batch.cond], dim=2),
                 timestep=sigmas.to(device=x0.device, dtype=noisy.dtype), guidance=g,
                 pooled_projections=batch.pooled, encoder_hidden_states=batch.prompt_embeds,
                 txt_ids=batch.text_ids, img_ids=batch.image_ids, return_dict=False)[0]
    return torch.nn.functional.mse_loss(pred.float(), pack_latents(e - x0))


def _generator(*key: int) -> torch.Generator:
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
        g = _generator(cfg.seed, rank, step, i)
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

    tr = _transformer(model)
    total = 0.0
    with torch.no_grad(), torchkit.sdpa_kernels(cfg.sdpa, fallback=True, key="sdpa"):
        for d in range(draws):
            g = _generator(seed, d)
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
    tr = _transformer(model)
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


# ============================================================================================== models + files
def check_model_source(cfg: TrainConfig) -> None:
    """Refuse a ``flux_model`` that is neither a diffusers folder (with ``model_index.json``) nor a hub id.

    Raises:
        BackendUnavailableError: with what was expected and found.
    """
    if cfg.preset == "tiny-random":
        return
    local = Path(cfg.flux_model).expanduser()
    if local.is_dir() and not (local / "model_index.json").is_file():
        raise BackendUnavailableError(
            f"FLUX.1 Fill model {cfg.flux_model!r}: expected a diffusers folder with model_index.json, found a "
            "folder without it (download with `huggingface-cli download black-forest-labs/FLUX.1-Fill-dev "
            "--local-dir <dir>`)")
    if not local.exists() and not _HUB_ID.match(cfg.flux_model):
        raise BackendUnavailableError(
            f"FLUX.1 Fill model {cfg.flux_model!r} not found: expected a local diffusers folder (model_index.json + "
            "safetensors) or a hub id 'org/name'")


def load_fill_pipeline(cfg: TrainConfig) -> Any:
    """The ``FluxFillPipeline`` to train, on CPU, frozen weights in the ``mixed_precision`` dtype.

    Raises:
        BackendUnavailableError: diffusers missing, or the model not found / not loadable with safetensors.
    """
    import torch

    if cfg.preset == "tiny-random":
        from lanepipe.edit.config import GenerativeConfig
        from lanepipe.edit.generative.tiny import tiny_fill_pipeline

        pipe = tiny_fill_pipeline(GenerativeConfig(preset="tiny-random", seed=cfg.seed,
                                                   max_sequence_length=cfg.max_sequence_length))
        if _dtype(cfg) != torch.float32:
            pipe.to(dtype=_dtype(cfg))
        return pipe
    try:
        from diffusers import FluxFillPipeline
    except ImportError as exc:
        raise BackendUnavailableError(f"LoRA training needs diffusers ({exc}); install it with `{_INSTALL_HINT}`"
                                      ) from exc
    check_model_source(cfg)
    local = Path(cfg.flux_model).expanduser()
    src = str(local) if local.exists() else cfg.flux_model
    try:
        cls: Any = FluxFillPipeline
        return cls.from_pretrained(src, torch_dtype=_dtype(cfg), use_safetensors=True)
    except (OSError, ValueError, KeyError) as exc:
        raise BackendUnavailableError(f"could not load FLUX.1 Fill from {src!r} with safetensors weights: {exc}"
                                      ) from exc


def save_lora(model: Any, url: str) -> None:
    """Write the transformer's adapter as a diffusers LoRA file to ``url`` (a ``.safetensors`` path), atomically.

    Keys are in diffusers' format (``transformer.<module>.lora_A.weight``); the adapter's PEFT config (rank,
    alpha, targets) travels in the file's metadata, so ``load_lora_weights`` restores alpha / r exactly.
    """
    from diffusers import FluxFillPipeline
    from peft import get_peft_model_state_dict

    tr = _transformer(model)
    meta = tr.peft_config["default"].to_dict()
    meta["target_modules"] = sorted(meta.get("target_modules") or [])
    with tempfile.TemporaryDirectory(prefix="lanepipe-lora-") as d:
        FluxFillPipeline.save_lora_weights(d, transformer_lora_layers=get_peft_model_state_dict(tr),
                                           weight_name=LORA_FILE, safe_serialization=True,
                                           transformer_lora_adapter_metadata=meta)
        storage.write_bytes_atomic(url, (Path(d) / LORA_FILE).read_bytes())


def _save_checkpoint(model: Any, opt: Any, sched: Any, state: dict[str, Any], folder: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(_transformer(model)).items()}
    save_file(sd, str(folder / _ADAPTER))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, folder / _OPTIM)
    (folder / _STATE).write_text(json.dumps(state))


def _load_checkpoint(model: Any, opt: Any, sched: Any, folder: Path) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    tr = _transformer(model)
    device = next(tr.parameters()).device
    res: Any = set_peft_model_state_dict(tr, load_file(str(folder / _ADAPTER), device=str(device)))
    if getattr(res, "unexpected_keys", None):
        raise ConfigError(f"checkpoint {folder}: adapter keys do not match the model ({res.unexpected_keys[:3]}…)")
    blob = torch.load(folder / _OPTIM, map_location=device, weights_only=True)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    state: dict[str, Any] = json.loads((folder / _STATE).read_text())
    return state


def latest_checkpoint(output: str) -> tuple[str, dict[str, Any]] | None:
    """``(url, state)`` of the whole checkpoint (adapter, optimiser, state) with the highest step, or None.

    Checkpoints are the folders ``<output>/checkpoints/checkpoint-<step>``; one missing a file (a copy cut short)
    is passed over.
    """
    root = storage.join(storage.absolute(output), CHECKPOINTS)
    if not storage.exists(root):
        return None
    files: dict[str, set[str]] = {}
    for f in storage.list_files(root):
        parent, _, name = f.rpartition("/")
        files.setdefault(parent, set()).add(name)
    whole = [(int(m.group(1)), d) for d, names in files.items()
             if (m := _CKPT_RE.search(d)) and {_ADAPTER, _OPTIM, _STATE} <= names]
    if not whole:
        return None
    url = max(whole)[1]
    return url, json.loads(storage.read_text(storage.join(url, _STATE)))


#: Settings a resumed run must share with its checkpoint: those that define the adapter. Others may change (more
#: max_steps, another lr, more workers: the data order then changes, the adapter and optimiser state carry over).
_RESUME_KEYS = ("preset", "flux_model", "rank", "alpha", "lora_targets")


def _check_resume(cfg: TrainConfig, state: dict[str, Any], where: str) -> None:
    old = state.get("config", {})
    mine = cfg.model_dump(mode="json")
    diff = [f"{k}: checkpoint {old.get(k)!r}, now {mine[k]!r}" for k in _RESUME_KEYS if old.get(k) != mine[k]]
    if diff:
        raise ConfigError(f"cannot resume from {where}: " + "; ".join(diff) +
                          " (use another --output, or the checkpoint's settings)")


# ============================================================================================== Ray Train
@dataclass
class TrainSummary:
    """What a run did (also ``<output>/train_summary.json``)."""

    steps: int
    start_step: int
    steps_run: int
    final_loss: float | None
    losses: list[float]
    seconds: float
    seconds_per_step: float | None
    rows: int
    rows_per_worker: int
    lora_path: str
    checkpoint: str | None
    config: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker body (``TorchTrainer(train_loop_per_worker, train_loop_config=...)``).

    ``config`` keys: ``cfg`` (TrainConfig as JSON), ``rows`` (TrainRow dicts), ``resume`` (checkpoint URL or
    None; Ray's own ``get_checkpoint()`` wins when it has one, e.g. after a worker-group restart).
    """
    import ray.train
    import ray.train.torch
    import torch

    from lanepipe.train.data import TrainRow, load_example, prompt_pair

    t_start = time.perf_counter()
    cfg = TrainConfig.model_validate(config["cfg"])
    rows = [TrainRow(**r) for r in config["rows"]]
    plan = make_plan(len(rows), cfg)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    dtype = _dtype(cfg)

    # ---- encode this worker's shard once, then drop the frozen encoders
    pipe = load_fill_pipeline(cfg)
    shard = rows[rank::world][:plan.rows_per_worker]
    for name in ("vae", "text_encoder", "text_encoder_2"):
        getattr(pipe, name).to(device)
    text = encode_prompts(pipe, [prompt_pair(r) for r in shard], cfg.max_sequence_length)
    keys = list(text)
    latents, conds = [], []
    for r in shard:
        img, mask = load_example(r, cfg.width, cfg.height)
        lat, cond, image_ids = encode_images(pipe, img[None], mask[None])
        latents.append(lat.to("cpu", dtype))
        conds.append(cond.to("cpu", dtype))
    data = EncodedShard(
        latents=torch.cat(latents), cond=torch.cat(conds),
        prompt_index=torch.tensor([keys.index(prompt_pair(r)) for r in shard]),
        prompt_embeds=torch.cat([text[k][0] for k in keys]).to("cpu", dtype),
        pooled=torch.cat([text[k][1] for k in keys]).to("cpu", dtype),
        text_ids=text[keys[0]][2].to("cpu", dtype), image_ids=image_ids.to("cpu", dtype))
    transformer = pipe.transformer
    del pipe, text, latents, conds
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # ---- LoRA, optimiser, resume
    transformer.to(device)
    params = add_lora(transformer, cfg)
    opt, sched = make_optimizer(params, cfg, plan.total_steps)
    start, losses = 0, []
    resume_from: str | None = None
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and config.get("resume"):
        ckpt = ray.train.Checkpoint(config["resume"])
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = _load_checkpoint(transformer, opt, sched, Path(d))
        _check_resume(cfg, state, str(ckpt.path))
        start, losses, resume_from = int(state["step"]), list(state["losses"]), str(ckpt.path)
        log.info("worker %d: resumed at step %d from %s", rank, start, resume_from)
    model = ray.train.torch.prepare_model(transformer, parallel_strategy_kwargs={"find_unused_parameters": False}
                                          ) if world > 1 else transformer
    model.train()

    # ---- steps
    t_loop = time.perf_counter()
    for step in range(start, plan.total_steps):
        micro = [data.batch(micro_batch_indices(m, plan, cfg, rank)).to(device, dtype)
                 for m in range(step * cfg.grad_accumulation, (step + 1) * cfg.grad_accumulation)]
        loss = optimizer_step(model, opt, sched, micro, cfg, step, rank)
        if world > 1:
            t = torch.tensor([loss], device=device)
            torch.distributed.all_reduce(t)
            loss = float(t.item()) / world
        losses.append(loss)
        done = step + 1
        recent = losses[-cfg.report_every:]
        metrics = {"step": done, "loss": loss, "loss_mean": sum(recent) / len(recent),
                   "lr": float(sched.get_last_lr()[0])}
        if done % cfg.checkpoint_every == 0 or done == plan.total_steps:
            name = f"checkpoint-{done:06d}"
            with tempfile.TemporaryDirectory(prefix="lanepipe-ckpt-") as d:
                checkpoint = None
                if rank == 0:
                    state = {"step": done, "losses": losses, "config": cfg.model_dump(mode="json")}
                    _save_checkpoint(transformer, opt, sched, state, Path(d))
                    checkpoint = ray.train.Checkpoint.from_directory(d)
                ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)
        elif done % cfg.report_every == 0:
            ray.train.report(metrics)
        if rank == 0:
            log.info("step %d/%d loss %.5f", done, plan.total_steps, loss)

    # ---- final files (rank 0)
    if rank == 0:
        out = storage.absolute(cfg.output)
        lora_url = storage.join(out, LORA_FILE)
        save_lora(transformer, lora_url)
        ran = plan.total_steps - start
        secs = time.perf_counter() - t_loop
        summary = TrainSummary(
            steps=max(plan.total_steps, start), start_step=start, steps_run=max(ran, 0),
            final_loss=losses[-1] if losses else None, losses=losses, seconds=round(time.perf_counter() - t_start, 3),
            seconds_per_step=round(secs / ran, 4) if ran > 0 else None, rows=plan.rows,
            rows_per_worker=plan.rows_per_worker, lora_path=lora_url, checkpoint=resume_from,
            config=cfg.model_dump(mode="json"))
        storage.write_text_atomic(storage.join(out, SUMMARY_FILE), summary.to_json())


def _worker_error(exc: BaseException, dataset: str) -> LanepipeError:
    """The lanepipe error a worker raised (found in Ray's ``WorkerGroupError``), else one that names the failure."""
    failures = getattr(exc, "worker_failures", None) or {}
    candidates: list[BaseException] = [failures[k] for k in sorted(failures)] + [exc]
    for err in candidates:
        seen: set[int] = set()
        cur: BaseException | None = err
        while cur is not None and id(cur) not in seen:
            if isinstance(cur, LanepipeError):
                return cur
            seen.add(id(cur))
            cur = getattr(cur, "cause", None) or cur.__cause__
    first = candidates[0]
    last_line = (str(first).strip().splitlines() or [type(first).__name__])[-1]
    return LanepipeError(f"LoRA training on {dataset} failed on a worker: {type(first).__name__}: {last_line} "
                         "(the worker logs hold the traceback)")


def train_lora(dataset: str, cfg: TrainConfig, *, address: str | None = None) -> TrainSummary:
    """Train a LoRA on ``dataset`` with Ray Train and write it to ``cfg.output`` (see the module docstring).

    Args:
        dataset: dataset folder or URL (``train.csv``, ``images/``, ``masks/``).
        cfg: training settings.
        address: Ray address to join when Ray is not initialised yet (None: Ray's default, a local instance
            unless ``RAY_ADDRESS`` is set; ``auto`` inside ``ray job submit``).

    Returns:
        The run's :class:`TrainSummary` (read back from ``train_summary.json``).

    Raises:
        InputError: no dataset, an empty one, no usable row, too few rows for the workers.
        ConfigError: the output holds a checkpoint trained with other settings.
        LanepipeError: the training failed on a worker (the worker's error is in the message).
    """
    from lanepipe.train.data import load_rows

    rows = load_rows(dataset)
    plan = make_plan(len(rows), cfg)
    require_backend()
    check_model_source(cfg)
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = storage.absolute(cfg.output)
    cfg = cfg.model_copy(update={"output": out})  # workers run in other folders
    found = latest_checkpoint(out)
    if found is not None:
        _check_resume(cfg, found[1], found[0])
        log.info("resuming from %s (step %s of %d)", found[0], found[1].get("step"), plan.total_steps)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg.model_dump(mode="json"), "rows": [asdict(r) for r in rows],
                           "resume": found[0] if found else None},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(name=CHECKPOINTS, storage_path=out,
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)))
    try:
        trainer.fit()
    except Exception as e:
        raise _worker_error(e, dataset) from e
    data = json.loads(storage.read_text(storage.join(out, SUMMARY_FILE)))
    return TrainSummary(**data)
