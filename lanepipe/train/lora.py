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

Modules: :mod:`~lanepipe.train.config` (settings, plan), :mod:`~lanepipe.train.fill` (batches, LoRA, loss, steps),
:mod:`~lanepipe.train.checkpoints` (model, LoRA file, checkpoints) and this one, the Ray Train loop.

For the GPU benchmark, :func:`train_steps` runs N optimiser steps on one in-memory :class:`FillBatch` and returns
per-step seconds, losses and peak memory; :func:`random_fill_batch` builds a batch of the right shapes for any
FLUX Fill transformer without VAE or text encoders.
"""


from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lanepipe.errors import LanepipeError
from lanepipe.io import storage
from lanepipe.train.checkpoints import (
    check_model_source,
    check_resume,
    latest_checkpoint,
    load_checkpoint,
    load_fill_pipeline,
    save_checkpoint,
    save_lora,
)
from lanepipe.train.config import (
    CHECKPOINTS,
    LORA_FILE,
    SUMMARY_FILE,
    TrainConfig,
    make_plan,
    micro_batch_indices,
    parse_config,
)
from lanepipe.train.fill import (
    EncodedShard,
    add_lora,
    encode_images,
    encode_prompts,
    make_optimizer,
    optimizer_step,
    require_backend,
    weights_dtype,
)

__all__ = ["TrainSummary", "parse_config", "train_loop_per_worker", "train_lora"]

log = logging.getLogger(__name__)


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
    dtype = weights_dtype(cfg)

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
            state = load_checkpoint(transformer, opt, sched, Path(d))
        check_resume(cfg, state, str(ckpt.path))
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
                    save_checkpoint(transformer, opt, sched, state, Path(d))
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
        check_resume(cfg, found[1], found[0])
        log.info("resuming from %s (step %s of %d)", found[0], found[1].get("step"), plan.total_steps)
    if not ray.is_initialized() and address is None and not os.environ.get("RAY_ADDRESS"):
        from lanepipe.actors.runner import start_ray
        from lanepipe.config import RayConfig

        start_ray(RayConfig(), log_to_driver=True)  # a private local instance, listening on 127.0.0.1 only
    elif not ray.is_initialized():
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
