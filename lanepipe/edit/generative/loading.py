"""Model loading and process setup of the ``flux_cogvideox`` painter: diffusers import, safetensors loading from a
folder or hub id, the CUDA allocator switch (``expandable_segments``).

Devices and dtypes come from :mod:`lanepipe.torchkit`. Nothing here loads weights at import.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from lanepipe import torchkit
from lanepipe.edit.config import _HUB_ID, _INSTALL_HINT, GenerativeConfig
from lanepipe.errors import BackendUnavailableError

#: The allocator setting ``expandable_segments`` asks for.
EXPANDABLE = "expandable_segments:True"


def allocator_setting(current: str | None, *, enabled: bool, on_cuda: bool, cuda_started: bool
                      ) -> tuple[str | None, str]:
    """What to do with ``PYTORCH_CUDA_ALLOC_CONF``: ``(value to set or None, what happened)``.

    Set only when asked, when a pipeline runs on CUDA, when the variable is unset (a user's own setting wins)
    and before CUDA started (the allocator reads it once).
    """
    if not enabled:
        return None, "off"
    if not on_cuda:
        return None, "not on CUDA"
    if current:
        return None, f"kept PYTORCH_CUDA_ALLOC_CONF={current}"
    if cuda_started:
        return None, "CUDA already started: PYTORCH_CUDA_ALLOC_CONF not set (set it before the process starts)"
    return EXPANDABLE, f"set PYTORCH_CUDA_ALLOC_CONF={EXPANDABLE}"




def import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the flux_cogvideox edit backend needs diffusers, transformers and torch ({exc}); "
            f"install them with `{_INSTALL_HINT}`") from exc
    return diffusers


def from_pretrained(cls: Any, model: str, what: str, dtype: Any) -> Any:
    """Load a diffusers pipeline from a local folder or hub id (safetensors only)."""
    local = Path(model).expanduser()
    if not local.exists() and not _HUB_ID.match(model):
        raise BackendUnavailableError(
            f"{what} model {model!r} not found: expected a local diffusers folder (model_index.json + safetensors) "
            "or a hub id 'org/name'; download it first (e.g. `huggingface-cli download <id> --local-dir <dir>`) "
            "and point the config at it")
    src = str(local) if local.exists() else model
    try:
        return cls.from_pretrained(src, torch_dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(
            f"could not load {what} model from {src!r} with safetensors weights: {exc}") from exc


def transformers_module() -> Any:
    return importlib.import_module("transformers")


def configure_allocator(cfg: GenerativeConfig) -> str:
    """Apply ``cfg.expandable_segments`` to this process (see :func:`allocator_setting`); returns what happened."""
    on_cuda = any(torchkit.wants_cuda(d) for d in (cfg.flux_device, cfg.video_device))
    started = False
    if on_cuda:
        import torch

        started = bool(torch.cuda.is_initialized())  # type: ignore[no-untyped-call]
    current = os.environ.get("PYTORCH_CUDA_ALLOC_CONF") or os.environ.get("PYTORCH_ALLOC_CONF")
    value, status = allocator_setting(current, enabled=cfg.expandable_segments, on_cuda=on_cuda,
                                      cuda_started=started)
    if value is not None:
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = value
    return status
