"""Torch plumbing shared by every torch backend: device and dtype from config strings, the SDPA kernel choice.

One place for what ``edit.generative``, ``verify.qwen_vl``, ``segment.sam2`` and ``lanepipe train`` each used to
resolve on their own. torch is imported inside the functions, so importing this module costs nothing; it imports
only :mod:`lanepipe.errors`.

- :func:`resolve_device`: ``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other strings are checked
  (a torch device string; a CUDA device that exists) and kept.
- :func:`resolve_dtype`: ``"auto"`` → bfloat16 on CUDA, float32 elsewhere; ``float32 | float16 | bfloat16`` (and
  the short ``fp32 | fp16 | bf16``) → that ``torch.dtype``.
- :func:`build_on`: a context in which new modules get their parameters directly on a device in a dtype (random
  weights of a full-size model on the GPU with no fp32 CPU copy; ``"meta"`` allocates nothing, for shape checks);
  :func:`count_parameters` counts them.
- :func:`sdpa_kernels`: a context choosing ``scaled_dot_product_attention`` kernels by name, alone or with
  fallbacks.
- :func:`use_compile_cache` / :func:`save_compile_artifacts`: one on-disk ``torch.compile`` cache for every worker
  process (inductor's FX-graph and AOTAutograd caches under ``TORCHINDUCTOR_CACHE_DIR``, plus torch's portable
  "mega-cache" artifacts file), so a second actor loads compiled kernels instead of compiling them again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lanepipe.errors import BackendUnavailableError, ConfigError

__all__ = ["ATTENTION_NAMES", "DTYPE_NAMES", "build_on", "compile_cache_dir", "count_parameters", "cuda_peak_mib",
           "resolve_device", "resolve_dtype", "save_compile_artifacts", "sdpa_kernels", "use_compile_cache",
           "wants_cuda"]

#: dtype spellings :func:`resolve_dtype` takes besides ``"auto"``, with the ``torch`` attribute each names
DTYPE_NAMES: dict[str, str] = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
                               "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

#: kernel names :func:`sdpa_kernels` takes; ``auto`` and ``torch`` both leave PyTorch's own choice alone
ATTENTION_NAMES = ("auto", "torch", "flash", "cudnn", "efficient", "math")


def _where(key: str | None, spec: str) -> str:
    return f"{key}={spec!r}" if key else repr(spec)


def resolve_device(spec: str, key: str | None = None) -> str:
    """The torch device string for config value ``spec``.

    Args:
        spec: ``"auto"`` (``"cuda"`` if torch sees a GPU, else ``"cpu"``), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, …
        key: the config key ``spec`` came from (e.g. ``"segment.sam2.device"``), named in every error.

    Returns:
        ``spec`` itself unless it is ``"auto"``.

    Raises:
        ConfigError: ``spec`` is not a torch device string.
        BackendUnavailableError: a CUDA device was asked for but torch sees none (or fewer than its index).
    """
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"{key or 'device'}: expected 'auto', 'cpu', 'cuda' or 'cuda:N', found {spec!r}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"{_where(key, spec)}: no CUDA device is visible to torch {torch.__version__}; "
                "use device=auto or device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"{_where(key, spec)}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return spec


def wants_cuda(spec: str) -> bool:
    """Whether device config ``spec`` ends on CUDA, without importing torch unless ``spec`` is ``"auto"``.

    ``"auto"`` with torch missing counts as no CUDA (the caller's own import then says what to install).
    """
    if spec.startswith("cuda"):
        return True
    if spec != "auto":
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_dtype(name: str, device: str, key: str | None = None) -> Any:
    """The ``torch.dtype`` for config value ``name`` on resolved ``device``.

    Args:
        name: ``"auto"`` (bfloat16 on CUDA, float32 elsewhere) or one of :data:`DTYPE_NAMES`.
        device: a resolved device string (see :func:`resolve_device`).
        key: the config key ``name`` came from, named in the error.

    Raises:
        ConfigError: an unknown dtype name.
    """
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if name not in DTYPE_NAMES:
        raise ConfigError(f"{key or 'dtype'}: expected 'auto' or one of {sorted(DTYPE_NAMES)}, found {name!r}")
    return getattr(torch, DTYPE_NAMES[name])


def sdpa_kernels(name: str, *, fallback: bool = False, key: str | None = None
                 ) -> contextlib.AbstractContextManager[Any]:
    """Context choosing the kernels of ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        name: ``auto``/``torch`` (PyTorch's own choice: a no-op), ``flash``, ``cudnn``, ``efficient`` or ``math``.
        fallback: ``False``: only kernel ``name`` may run (a call it cannot take fails). ``True``: ``name`` is
            tried first, then the others in order — ``flash`` → efficient, math; ``efficient`` → math;
            ``cudnn`` → flash, efficient, math.
        key: the config key ``name`` came from, named in the error.

    Raises:
        ConfigError: an unknown kernel name.
    """
    if name not in ATTENTION_NAMES:
        raise ConfigError(f"{key or 'attention'}: expected one of {list(ATTENTION_NAMES)}, found {name!r}")
    if name in ("auto", "torch"):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not fallback:
        single = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                  "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]
        ctx: contextlib.AbstractContextManager[Any] = sdpa_kernel([single])
        return ctx
    order = {"flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
             "efficient": [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH], "math": [SDPBackend.MATH],
             "cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                       SDPBackend.MATH]}[name]
    prioritised: contextlib.AbstractContextManager[Any] = sdpa_kernel(order, set_priority=True)
    return prioritised


@contextlib.contextmanager
def build_on(device: str, dtype: Any = None) -> Any:
    """Modules created inside get their parameters directly on ``device`` (``"cuda"``, ``"cpu"``, ``"meta"``) and,
    when ``dtype`` is given, in that floating dtype; the previous default dtype is restored after the block.

    With ``"meta"`` nothing is allocated: a 12B-parameter transformer is built in seconds for its shapes only.
    """
    import torch

    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def count_parameters(module: Any) -> int:
    """Number of parameters of a ``torch.nn.Module`` (works on the meta device: nothing is read)."""
    return int(sum(p.numel() for p in module.parameters()))


def cuda_peak_mib() -> float | None:
    """Peak CUDA memory torch allocated in this process so far (MiB, all its devices), or None when torch is not
    imported here or never started CUDA (never imports torch)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    peak = sum(int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count()))
    return round(peak / 2**20, 1)


# ---------------------------------------------------------------------------------------------- compile cache
#: name of torch's portable cache artifacts (``torch.compiler.save_cache_artifacts``) inside the cache folder
MEGA_CACHE_FILE = "lanepipe-mega-cache.bin"
_loaded_mega: set[str] = set()


def compile_cache_dir(setting: str | None) -> str | None:
    """The folder a ``compile_cache_dir`` setting names: None → ``$TORCHINDUCTOR_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/lanepipe/inductor`` (``~/.cache/lanepipe/inductor``); ``"off"`` → None (torch's default)."""
    import os
    from pathlib import Path

    if setting == "off":
        return None
    if setting:
        return str(Path(setting).expanduser())
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "lanepipe" / "inductor")


def use_compile_cache(setting: str | None) -> dict[str, Any]:
    """Point ``torch.compile``'s on-disk caches at :func:`compile_cache_dir` of ``setting`` and hot-load the
    mega-cache artifacts saved there by an earlier process (once per process and folder).

    Inductor reads ``TORCHINDUCTOR_CACHE_DIR`` each time it looks a graph up, so this works any time before the
    first compile; its FX-graph cache is on by default (``torch._inductor.config.fx_graph_cache``). Returns what
    was done: ``{"dir": ..., "artifacts_loaded": bool}`` (``dir`` None for ``"off"``).
    """
    import os
    from pathlib import Path

    folder = compile_cache_dir(setting)
    if folder is None:
        return {"dir": None, "artifacts_loaded": False}
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    loaded = False
    mega = Path(folder) / MEGA_CACHE_FILE
    if folder not in _loaded_mega and mega.is_file():
        import torch

        try:
            loaded = torch.compiler.load_cache_artifacts(mega.read_bytes()) is not None
        except Exception as exc:  # a file from another torch version: compile afresh, say why
            import logging

            logging.getLogger(__name__).warning("compile cache %s not loaded (%s): compiling afresh", mega, exc)
        _loaded_mega.add(folder)
    return {"dir": folder, "artifacts_loaded": loaded}


def save_compile_artifacts(setting: str | None) -> str | None:
    """Write torch's cache artifacts of everything compiled so far in this process to the cache folder (atomic:
    temp file + rename); returns the file, or None when caching is off or nothing was compiled."""
    import os
    from pathlib import Path

    import torch

    folder = compile_cache_dir(setting)
    if folder is None:
        return None
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return None
    path = Path(folder) / MEGA_CACHE_FILE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(saved[0])
    tmp.replace(path)
    return str(path)


def smallest_gpu_gib() -> float | None:
    """The smallest NVIDIA GPU's memory in GiB from NVML (nvidia-ml-py), without starting CUDA in this process;
    None without a GPU, a driver or nvidia-ml-py."""
    try:
        import pynvml

        pynvml.nvmlInit()
        sizes = [pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total / 2**30
                 for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no library, no driver, no GPU
        return None
    return min(sizes) if sizes else None


class HostParking:
    """Parks modules' weights in host memory and brings them back, copying each tensor to the host only once.

    ``pipe.to("cpu")`` copies every weight back to pageable memory at each park and again to the GPU at each
    activation; on an 80 GB GPU that alternates FLUX (+ T5-XXL) and CogVideoX for every edit, that was ~30 s of
    each edit (the GPU run of 2026-12-05, BENCHMARKS.md). Inference never changes the weights, so the first
    :meth:`park` keeps a host copy of each tensor (pinned where CUDA can pin it, so the copy back is a fast DMA)
    and later parks only point the tensor back at that copy (no device-to-host traffic); :meth:`activate` copies
    host -> device. Tensors are the modules' parameters and buffers, each once even when modules share them (one
    T5-XXL for both pipelines). ``to_host`` makes the host copy (default: pinned memory, pageable when pinning
    fails); a tensor whose shape or dtype changed since its copy is copied again.
    """

    def __init__(self, to_host: Any = None) -> None:
        self._to_host = to_host or _pinned_copy
        self._host: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor, its host copy): the ref keeps the id
        self.copies = 0  # device -> host copies made (each tensor once, unless its shape/dtype changed)

    @staticmethod
    def tensors(*modules: Any) -> list[Any]:
        """Parameters and buffers of ``modules`` (each tensor object once)."""
        seen: dict[int, Any] = {}
        for m in modules:
            for t in [*m.parameters(), *m.buffers()]:
                seen.setdefault(id(t), t)
        return list(seen.values())

    def park(self, *modules: Any) -> int:
        """Point every tensor of ``modules`` not already in host memory at its host copy; returns how many moved."""
        moved = 0
        for t in self.tensors(*modules):
            if t.device.type == "cpu":
                continue
            entry = self._host.get(id(t))
            if entry is None or entry[1].shape != t.shape or entry[1].dtype != t.dtype:
                entry = (t, self._to_host(t.data))
                self._host[id(t)] = entry
                self.copies += 1
            t.data = entry[1]
            moved += 1
        return moved

    def activate(self, device: Any, *modules: Any) -> int:
        """Copy every tensor of ``modules`` not on ``device`` there (non-blocking from pinned memory, then one
        synchronisation); returns how many moved."""
        import torch

        dev = torch.device(device)
        moved = 0
        for t in self.tensors(*modules):
            if t.device != dev:
                t.data = t.data.to(dev, non_blocking=True)
                moved += 1
        if moved and dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return moved


def _pinned_copy(t: Any) -> Any:
    """A host copy of ``t`` in pinned memory (pageable where CUDA cannot pin, e.g. a CPU-only build)."""
    import torch

    try:
        host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
    except RuntimeError:
        host = torch.empty(t.shape, dtype=t.dtype, device="cpu")
    host.copy_(t)
    return host
