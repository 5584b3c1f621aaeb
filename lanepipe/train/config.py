"""Settings of a LoRA training run: :class:`TrainConfig` (validated, with the ``tiny-random`` preset), the file
names a run writes, and the step plan (:func:`make_plan`, :func:`micro_batch_indices`, :func:`lr_factor`).

Light: pydantic and the standard library only (no torch), so the CLI and job scripts parse configs cheaply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lanepipe.errors import ConfigError, InputError

LORA_FILE = "pytorch_lora_weights.safetensors"
SUMMARY_FILE = "train_summary.json"
CHECKPOINTS = "checkpoints"
INSTALL_HINT = "pip install 'lanepipe[generative]'"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
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
