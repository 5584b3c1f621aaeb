"""Weights in and out of a LoRA run: loading FLUX.1 Fill (or the ``tiny-random`` preset), writing the LoRA in
diffusers' key format, and the resumable checkpoints ``<output>/checkpoints/checkpoint-<step>``.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from lanepipe.errors import BackendUnavailableError, ConfigError
from lanepipe.io import storage
from lanepipe.train.config import CHECKPOINTS, HUB_ID, INSTALL_HINT, LORA_FILE, TrainConfig
from lanepipe.train.fill import transformer_of, weights_dtype

_CKPT_RE = re.compile(r"checkpoint-(\d+)$")
_ADAPTER = "adapter.safetensors"
_OPTIM = "optimizer.pt"
_STATE = "state.json"


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
    if not local.exists() and not HUB_ID.match(cfg.flux_model):
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
        if weights_dtype(cfg) != torch.float32:
            pipe.to(dtype=weights_dtype(cfg))
        return pipe
    try:
        from diffusers import FluxFillPipeline
    except ImportError as exc:
        raise BackendUnavailableError(f"LoRA training needs diffusers ({exc}); install it with `{INSTALL_HINT}`"
                                      ) from exc
    check_model_source(cfg)
    local = Path(cfg.flux_model).expanduser()
    src = str(local) if local.exists() else cfg.flux_model
    try:
        cls: Any = FluxFillPipeline
        return cls.from_pretrained(src, torch_dtype=weights_dtype(cfg), use_safetensors=True)
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

    tr = transformer_of(model)
    meta = tr.peft_config["default"].to_dict()
    meta["target_modules"] = sorted(meta.get("target_modules") or [])
    with tempfile.TemporaryDirectory(prefix="lanepipe-lora-") as d:
        FluxFillPipeline.save_lora_weights(d, transformer_lora_layers=get_peft_model_state_dict(tr),
                                           weight_name=LORA_FILE, safe_serialization=True,
                                           transformer_lora_adapter_metadata=meta)
        storage.write_bytes_atomic(url, (Path(d) / LORA_FILE).read_bytes())


def save_checkpoint(model: Any, opt: Any, sched: Any, state: dict[str, Any], folder: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(transformer_of(model)).items()}
    save_file(sd, str(folder / _ADAPTER))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, folder / _OPTIM)
    (folder / _STATE).write_text(json.dumps(state))


def load_checkpoint(model: Any, opt: Any, sched: Any, folder: Path) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    tr = transformer_of(model)
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


def check_resume(cfg: TrainConfig, state: dict[str, Any], where: str) -> None:
    old = state.get("config", {})
    mine = cfg.model_dump(mode="json")
    diff = [f"{k}: checkpoint {old.get(k)!r}, now {mine[k]!r}" for k in _RESUME_KEYS if old.get(k) != mine[k]]
    if diff:
        raise ConfigError(f"cannot resume from {where}: " + "; ".join(diff) +
                          " (use another --output, or the checkpoint's settings)")
