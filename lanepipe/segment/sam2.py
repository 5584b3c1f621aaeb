"""SAM2 / SAM2.1 video predictor as a road segmentation backend (``segment.backend=sam2``).

Per clip it follows upstream's stepwise API, with a typed handle instead of its string-keyed state:

    seg = Sam2Segmenter(cfg)                  # build_sam2_video_predictor + checkpoint, once per worker
    session = seg.open_session(clip)          # init_state on the clip's frames, from memory
    seg.add_grid_prompt(session, frame_idx)   # add_new_points_or_box: the 9 grid points, label 1, object 1
    masks = seg.propagate(session)            # propagate_in_video, logits > 0 -> (T, H, W) bool
    # or simply: seg.segment(clip) -> RoadMasks

How frames are fed. sam2 1.1.0's ``init_state`` only takes a path (a folder of JPEGs, or an mp4 read
with decord) and hands it to ``sam2.sam2_video_predictor.load_video_frames``. Rather than write the
clip out as JPEGs (lossy, and on a GPU run the encode + decode + resize costs a fair share of the
propagation time), :meth:`Sam2Segmenter.open_session` builds the image tensor the way that loader does
(PIL resize to ``image_size`` x ``image_size``, /255, ImageNet mean/std) and passes it to
``init_state`` inside a typed :class:`_PreparedFrames` object. For the length of that one call the
loader name in ``sam2.sam2_video_predictor`` is replaced, under a lock, by a wrapper that returns the
prepared tensor for such an object and calls the original loader for anything else; it is restored
afterwards. The result is bit-identical to upstream's JPEG-folder path on the same decoded pixels
(see tests/segment/test_sam2.py).

Other upstream quirks handled here:

* Hydra is global: ``import sam2`` initialises it with sam2's config module, and an application that
  set up its own Hydra breaks ``compose`` (facebookresearch/sam2#179). The model is composed inside
  :func:`_sam2_hydra`, which swaps in sam2's config module and restores whatever was there before.
* sam2's checkpoint loader logs the mismatching keys and raises a bare ``RuntimeError()``; here the
  checkpoint is loaded with ``torch.load(..., weights_only=True)`` and a mismatch names the keys.
* Without sam2's CUDA extension (``SAM2_BUILD_CUDA=0``) its hole-filling post-process fails and warns
  on every frame; it is switched off (``fill_hole_area = 0``) when the extension cannot be imported.
  Small holes are then left to lanepipe's morphological clean-up.

torch, hydra and sam2 are imported lazily: importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from lanepipe import torchkit
from lanepipe.errors import BackendUnavailableError, ConfigError, InputError
from lanepipe.monitoring import model_load
from lanepipe.segment.base import grid_points_px
from lanepipe.segment.config import Sam2Config
from lanepipe.segment.hood import exclude_hood
from lanepipe.types import Clip, FramesU8, MaskBool, RoadMasks

if TYPE_CHECKING:
    import torch

__all__ = [
    "INSTALL_HINT",
    "TINY_IMAGE_SIZE",
    "TINY_MODEL_CFG",
    "Sam2Segmenter",
    "Sam2Session",
    "available_model_cfgs",
    "prompt_frames",
    "resolve_device",
    "tiny_random_overrides",
]

log = logging.getLogger(__name__)

#: How to install what this backend needs (sam2 ships only an sdist that must build against the
#: installed torch, hence the second command; DESIGN.md §8).
INSTALL_HINT = (
    "pip install 'lanepipe[sam2]' && "
    "SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0"
)
#: The ``tiny-random`` preset: SAM2.1 Hiera-T at 256 px with seeded random weights (no checkpoint).
TINY_MODEL_CFG = "configs/sam2.1/sam2.1_hiera_t.yaml"
TINY_IMAGE_SIZE = 256
#: The object id the road is tracked under.
ROAD_OBJ_ID = 1
#: Stride of the backbone's lowest-resolution feature map (memory attention runs on it).
_BACKBONE_STRIDE = 16
#: Normalisation of sam2's frame loader (ImageNet mean and std of RGB in [0, 1]).
_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)
_CHECKPOINT_SUFFIXES = (".pt", ".pth")

_HYDRA_LOCK = threading.RLock()
_LOADER_LOCK = threading.Lock()

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _inference_mode(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``@torch.inference_mode()`` that imports torch when called, not when this module is imported."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import torch

        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------


def tiny_random_overrides(image_size: int = TINY_IMAGE_SIZE) -> list[str]:
    """Hydra overrides that run a SAM2 config at ``image_size`` (a multiple of 16) instead of 1024.

    Memory attention's rotary encodings are sized for the stride-16 feature map, 64x64 at 1024 px, so
    they are set to ``image_size // 16`` as well (sam2 1.1.0 would also recompute them on the first
    call, but a compiled VOS predictor should see the right size from the start).
    """
    if image_size <= 0 or image_size % _BACKBONE_STRIDE:
        raise ConfigError(f"SAM2 image size must be a positive multiple of {_BACKBONE_STRIDE}, got {image_size}")
    feat = image_size // _BACKBONE_STRIDE
    return [
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
    ]


def prompt_frames(num_frames: int, reprompt_every: int) -> list[int]:
    """Frames that get the 9-point prompt: 0, then every ``reprompt_every`` frames (0 = frame 0 only)."""
    if num_frames <= 0:
        return []
    if reprompt_every <= 0:
        return [0]
    return list(range(0, num_frames, reprompt_every))


def _sam2_package_dir() -> Path | None:
    spec = importlib.util.find_spec("sam2")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def available_model_cfgs() -> list[str]:
    """Config names the installed sam2 package ships (e.g. ``configs/sam2.1/sam2.1_hiera_l.yaml``)."""
    root = _sam2_package_dir()
    if root is None:
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))


def resolve_device(spec: str) -> str:
    """``"auto"`` -> ``"cuda"`` if a GPU is visible else ``"cpu"``; anything else is checked and kept.

    Raises:
        ConfigError: not a torch device string.
        BackendUnavailableError: a CUDA device was asked for but none is visible.
    """
    return torchkit.resolve_device(spec, key="segment.sam2.device")


# --------------------------------------------------------------------------------------------------
# sam2 plumbing (lazy imports, Hydra, frame loader)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sam2Api:
    """The pieces of the sam2 package this backend calls."""

    build_video_predictor: Callable[..., Any]
    predictor_module: Any  # sam2.sam2_video_predictor, whose frame loader is swapped in open_session
    has_cuda_ext: bool


def _import_sam2() -> _Sam2Api:
    """Import torch, hydra and sam2, or raise BackendUnavailableError with the install command."""
    try:
        import hydra  # noqa: F401
        import torch  # noqa: F401
        from sam2 import sam2_video_predictor
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as e:
        raise BackendUnavailableError(
            f"segment.backend=sam2 needs torch, hydra-core, pillow and sam2, but the import failed ({e}); "
            f"install them with: {INSTALL_HINT}"
        ) from e
    if not hasattr(sam2_video_predictor, "load_video_frames"):
        raise BackendUnavailableError(
            "the installed sam2 has no sam2_video_predictor.load_video_frames, which lanepipe uses to "
            f"feed frames from memory; install the tested version with: {INSTALL_HINT}"
        )
    try:
        importlib.import_module("sam2._C")
        has_ext = True
    except (ImportError, OSError):
        has_ext = False
    return _Sam2Api(build_sam2_video_predictor, sam2_video_predictor, has_ext)


@contextmanager
def _sam2_hydra() -> Iterator[None]:
    """Hydra initialised with sam2's config module for the block; the previous global state after it."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    with _HYDRA_LOCK:
        backup = get_gh_backup()
        GlobalHydra.instance().clear()
        try:
            initialize_config_module("sam2", version_base="1.2")
            yield
        finally:
            restore_gh_from_backup(backup)


@dataclass(frozen=True)
class _PreparedFrames:
    """A clip's frames as sam2's loader returns them, passed to ``init_state`` in place of a path.

    Attributes:
        images: ``(T, 3, S, S) float32`` RGB resized to the model's ``image_size`` S, ImageNet-normalised.
        height: source frame height H in pixels.
        width: source frame width W in pixels.
    """

    images: torch.Tensor
    height: int
    width: int


def _prepare_frames(frames: FramesU8, image_size: int, device: str) -> _PreparedFrames:
    """``(T, H, W, 3) uint8`` -> :class:`_PreparedFrames`, resized and normalised like sam2's loader.

    sam2 1.1.0 resizes each frame with PIL's default filter (bicubic) to a square and divides by 255;
    PIL is used here too so that the tensor matches the loader's bit for bit. PIL releases the GIL while
    resizing, so frames are resized on a few threads; the uint8 result is normalised on ``device``.
    """
    import torch
    from PIL import Image

    t, h, w, _ = frames.shape

    def resize(i: int) -> npt.NDArray[np.uint8]:
        return np.asarray(Image.fromarray(frames[i]).resize((image_size, image_size)))

    resized = np.empty((t, image_size, image_size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1, t))) as pool:
        for i, frame in enumerate(pool.map(resize, range(t))):
            resized[i] = frame
    images = torch.from_numpy(resized).to(device).permute(0, 3, 1, 2).contiguous().float()
    mean = torch.tensor(_IMG_MEAN, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(_IMG_STD, dtype=torch.float32, device=device)[:, None, None]
    images.div_(255.0).sub_(mean).div_(std)
    return _PreparedFrames(images=images, height=h, width=w)


@contextmanager
def _in_memory_loader(predictor_module: Any) -> Iterator[None]:
    """Let ``init_state`` accept a :class:`_PreparedFrames` for the block (see the module docstring)."""
    with _LOADER_LOCK:
        original = predictor_module.load_video_frames

        def load_video_frames(*args: Any, **kwargs: Any) -> Any:
            source = kwargs.get("video_path", args[0] if args else None)
            if isinstance(source, _PreparedFrames):
                return source.images, source.height, source.width
            return original(*args, **kwargs)

        predictor_module.load_video_frames = load_video_frames
        try:
            yield
        finally:
            predictor_module.load_video_frames = original


# --------------------------------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------------------------------


@dataclass
class Sam2Session:
    """One clip's tracking state: a typed handle on sam2's inference state.

    Attributes:
        clip_name: the clip being segmented.
        num_frames: T.
        height: H of the clip's frames (masks come back at this size).
        width: W of the clip's frames.
        prompted_frames: frames that received the 9-point prompt, in the order they were added.
    """

    clip_name: str
    num_frames: int
    height: int
    width: int
    prompted_frames: list[int] = field(default_factory=list)
    _state: dict[str, Any] = field(default_factory=dict, repr=False)


class Sam2Segmenter:
    """Road masks from the SAM2 / SAM2.1 video predictor, prompted with the 9-point grid.

    The model is built once, in ``__init__`` (a worker's setup); :meth:`segment` is called per clip.

    Args:
        cfg: ``preset="none"`` builds ``cfg.model_cfg`` and loads ``cfg.checkpoint`` (a local ``.pt``
            file, required). ``preset="tiny-random"`` builds :data:`TINY_MODEL_CFG` at
            :data:`TINY_IMAGE_SIZE` px with random weights seeded by ``cfg.seed`` and no checkpoint, so
            the whole path runs on CPU in seconds; its masks have the right shape and mean nothing.
            ``model_cfg`` is not used by that preset. ``device="auto"`` picks CUDA when visible.
            ``reprompt_every=N`` adds the prompt on frames 0, N, 2N, ... (each becomes a conditioning
            frame) before propagating. ``vos_optimized`` builds upstream's torch.compile'd predictor.

    Raises:
        BackendUnavailableError: torch/hydra/sam2 not importable; checkpoint not set or not found;
            CUDA asked for but not visible.
        ConfigError: unknown ``model_cfg``; bad device string; a checkpoint that is a URL, has the
            wrong suffix, or is given with the ``tiny-random`` preset.
        InputError: the checkpoint cannot be read or does not match ``model_cfg``.
    """

    name: str = "sam2"

    def __init__(self, cfg: Sam2Config) -> None:
        self.cfg = cfg
        api = _import_sam2()
        self._api = api

        if cfg.preset != "none" and cfg.checkpoint is not None:
            raise ConfigError(
                f"segment.sam2.checkpoint={cfg.checkpoint!r} cannot be used with preset={cfg.preset} "
                "(random weights); set preset=none to load it, or unset checkpoint"
            )
        if cfg.preset == "tiny-random":
            model_cfg, overrides, checkpoint = TINY_MODEL_CFG, tiny_random_overrides(), None
        elif cfg.preset == "random-init":  # the published architecture (sam2's own config file), random weights
            model_cfg, overrides, checkpoint = cfg.model_cfg, [], None
            _check_model_cfg(model_cfg)
        else:
            model_cfg, overrides = cfg.model_cfg, []
            _check_model_cfg(model_cfg)
            checkpoint = _check_checkpoint_path(cfg.checkpoint)
        self.device = resolve_device(cfg.device)
        self.model_cfg = model_cfg
        self.checkpoint = checkpoint
        on_cuda = self.device.startswith("cuda")
        self.vos_optimized = on_cuda if cfg.vos_optimized == "auto" else bool(cfg.vos_optimized)
        #: the speed options as resolved on this device (compiled predictor, its compile cache, compute dtype)
        self.options: dict[str, Any] = {
            "vos_optimized": self.vos_optimized,
            "dtype": "bfloat16" if on_cuda and cfg.dtype != "float32" else "float32",
            "compile_cache": torchkit.use_compile_cache(cfg.compile_cache_dir) if self.vos_optimized else None,
            "encode_batch": 1 if self.vos_optimized else cfg.encode_batch,
        }

        import torch

        # random-init: parameters created on the compute device directly (no CPU copy)
        build_dev = self.device if cfg.preset == "random-init" else "cpu"
        with model_load(f"sam2:{Path(model_cfg).stem}"), torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if build_dev.startswith("cuda"):
                torch.cuda.manual_seed_all(cfg.seed)
            with torchkit.build_on(build_dev):
                predictor = self._build(model_cfg, overrides, build_dev)
            if checkpoint is not None:
                _load_checkpoint(predictor, checkpoint, model_cfg)
        if not api.has_cuda_ext:
            predictor.fill_hole_area = 0
        self._predictor = predictor.to(self.device).eval()
        self.image_size: int = int(predictor.image_size)
        log.info(
            "sam2: %s (%s) at %d px on %s, %s, %s",
            model_cfg, type(predictor).__name__, self.image_size, self.device, self.options,
            f"weights from {checkpoint}" if checkpoint else f"random weights (seed {cfg.seed})",
        )

    def _build(self, model_cfg: str, overrides: list[str], device: str = "cpu") -> Any:
        return build_predictor(self._api, model_cfg, overrides, device, self.vos_optimized)

    @property
    def predictor(self) -> Any:
        """The underlying ``sam2.sam2_video_predictor.SAM2VideoPredictor`` (for advanced use)."""
        return self._predictor

    @_inference_mode
    def open_session(self, clip: Clip) -> Sam2Session:
        """Start tracking on ``clip``: its ``(T, H, W, 3) uint8`` frames are resized and normalised in
        memory and sam2's ``init_state`` runs on them (it also encodes frame 0).

        Raises:
            InputError: the clip has no frames.
        """
        if clip.num_frames == 0:
            raise InputError(clip.source, "a clip with at least 1 frame", "0 frames")
        prepared = _prepare_frames(clip.frames, self.image_size, self.device)
        with _in_memory_loader(self._api.predictor_module):
            state = self._predictor.init_state(prepared)
        return Sam2Session(
            clip_name=clip.name, num_frames=clip.num_frames, height=clip.height, width=clip.width,
            _state=state,
        )

    @_inference_mode
    def add_grid_prompt(self, session: Sam2Session, frame_idx: int) -> None:
        """Add the 9 grid points (:func:`lanepipe.segment.base.grid_points_px`) as positive clicks on
        ``frame_idx`` for the road object. Call before :meth:`propagate`.

        Raises:
            InputError: ``frame_idx`` is outside ``[0, T)``.
        """
        if not 0 <= frame_idx < session.num_frames:
            raise InputError(
                session.clip_name, f"a frame index in [0, {session.num_frames})", f"{frame_idx}"
            )
        points = grid_points_px(session.width, session.height)
        labels = np.ones(len(points), dtype=np.int32)
        self._predictor.add_new_points_or_box(
            session._state, frame_idx=frame_idx, obj_id=ROAD_OBJ_ID, points=points, labels=labels,
        )
        session.prompted_frames.append(frame_idx)

    @_inference_mode
    def propagate(self, session: Sam2Session) -> MaskBool:
        """Track the road through the whole clip from its first prompted frame.

        Returns:
            ``(T, H, W) bool`` masks at the clip's full resolution, True where sam2's logit is > 0.

        Raises:
            InputError: no prompt was added, or the prompts start after frame 0 (frames before the
                first prompt would have no mask).
        """
        if not session.prompted_frames or min(session.prompted_frames) != 0:
            raise InputError(
                session.clip_name, "a prompt on frame 0 before propagating",
                f"prompts on frames {sorted(session.prompted_frames)}",
            )
        masks = np.zeros((session.num_frames, session.height, session.width), dtype=np.bool_)
        seen = np.zeros(session.num_frames, dtype=np.bool_)
        batch = int(self.options["encode_batch"])
        with batched_features(self._predictor, session._state, batch) if batch > 1 else contextlib.nullcontext():
            for frame_idx, obj_ids, logits in self._predictor.propagate_in_video(session._state):
                k = list(obj_ids).index(ROAD_OBJ_ID)
                masks[frame_idx] = (logits[k, 0] > 0).cpu().numpy()
                seen[frame_idx] = True
        if not seen.all():  # sam2 yields every frame from the first prompt on; guard against changes
            missing = np.flatnonzero(~seen).tolist()
            raise RuntimeError(f"sam2 propagate_in_video returned no mask for frames {missing[:10]}")
        return masks

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast on CUDA for ``dtype`` auto/bfloat16 (upstream's recommended mode); else a no-op."""
        import torch

        dev = torch.device(self.device)
        if self.cfg.dtype == "float32" or dev.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    @_inference_mode
    def segment(self, clip: Clip) -> RoadMasks:
        """Road mask for every frame of ``clip``: ``(T, H, W) bool`` matching ``clip.frames``."""
        with self.autocast():
            session = self.open_session(clip)
            for f in prompt_frames(clip.num_frames, self.cfg.reprompt_every):
                self.add_grid_prompt(session, f)
            masks = RoadMasks(masks=self.propagate(session), backend=self.name)
        # the ego vehicle's hood, found the same way for every backend, is not road
        return exclude_hood(masks, clip.frames, self.cfg.hood)


@contextlib.contextmanager
def batched_features(predictor: Any, state: dict[str, Any], batch: int) -> Iterator[None]:
    """While active, a frame whose image features sam2 asks for and does not hold is encoded with the next
    ``batch - 1`` frames in one backbone call (``forward_image`` on ``(B, 3, S, S)``), and the batch is what sam2's
    ``cached_features`` holds (sam2 ``_get_image_feature`` encodes one frame per call and caches only that one).
    Each frame's entry is what sam2 would cache: its image ``(1, 3, S, S)`` and backbone output; the position
    encodings depend only on the feature shapes, so the batch's first is shared by its frames."""
    original = predictor._get_image_feature  # the bound method; the instance attribute below shadows it

    def get(inference_state: dict[str, Any], frame_idx: int, batch_size: int) -> Any:
        cache = inference_state["cached_features"]
        if frame_idx not in cache:
            images = inference_state["images"]
            stop = min(len(images), frame_idx + batch)
            img = images[frame_idx:stop].to(inference_state["device"]).float()
            out = predictor.forward_image(img)
            pos = [p[:1].clone() for p in out["vision_pos_enc"]]
            inference_state["cached_features"] = {
                frame_idx + i: (img[i:i + 1], {"backbone_fpn": [f[i:i + 1] for f in out["backbone_fpn"]],
                                               "vision_pos_enc": list(pos)})
                for i in range(stop - frame_idx)}
        return original(inference_state, frame_idx, batch_size)

    predictor._get_image_feature = get
    try:
        yield
    finally:
        del predictor._get_image_feature
        state["cached_features"] = {}  # the batch's features are not kept past the clip


# --------------------------------------------------------------------------------------------------
# Config and checkpoint checks
# --------------------------------------------------------------------------------------------------


def build_predictor(api: _Sam2Api, model_cfg: str, overrides: list[str], device: str = "cpu",
                    vos_optimized: bool = False) -> Any:
    """sam2's video predictor of config ``model_cfg``, random weights, on ``device`` (``"meta"``: shapes only)."""
    from hydra.errors import MissingConfigException

    with _sam2_hydra():
        try:
            return api.build_video_predictor(
                model_cfg,
                None,  # the checkpoint is loaded by _load_checkpoint, with clearer errors
                device=device,
                hydra_overrides_extra=overrides,
                vos_optimized=vos_optimized,
            )
        except MissingConfigException as e:
            raise ConfigError(_unknown_cfg_message(model_cfg)) from e


#: SAM 2.1 Hiera-L parameters as published (facebookresearch/sam2 README, "SAM 2.1 checkpoints" table: 224.4 M).
PUBLISHED_PARAMS_HIERA_L = 224.4e6


def parameter_count(model_cfg: str = "configs/sam2.1/sam2.1_hiera_l.yaml") -> int:
    """Parameters of sam2 config ``model_cfg``, built with random weights on the CPU (Hiera-L: 0.9 GB in float32;
    sam2's constructors call ``Tensor.item()``, which the ``meta`` device cannot answer)."""
    return torchkit.count_parameters(build_predictor(_import_sam2(), model_cfg, [], "cpu"))


def _unknown_cfg_message(model_cfg: str) -> str:
    return (
        f"segment.sam2.model_cfg: unknown sam2 config {model_cfg!r}; choose one of: "
        + ", ".join(available_model_cfgs())
    )


def _check_model_cfg(model_cfg: str) -> None:
    names = set(available_model_cfgs())
    if model_cfg not in names and f"{model_cfg}.yaml" not in names:
        raise ConfigError(_unknown_cfg_message(model_cfg))


def _check_checkpoint_path(checkpoint: str | None) -> Path:
    if checkpoint is None:
        raise BackendUnavailableError(
            "segment.sam2.checkpoint is not set: download a SAM2 / SAM2.1 checkpoint (e.g. "
            "sam2.1_hiera_large.pt for configs/sam2.1/sam2.1_hiera_l.yaml) and set "
            "segment.sam2.checkpoint=/path/to/it, or use segment.sam2.preset=tiny-random for a test run"
        )
    if "://" in checkpoint:
        raise ConfigError(
            f"segment.sam2.checkpoint={checkpoint!r}: expected a local file path, found a URL "
            "(lanepipe loads checkpoints only from local files; copy it to local disk first)"
        )
    path = Path(checkpoint).expanduser()
    if path.suffix.lower() not in _CHECKPOINT_SUFFIXES:
        raise ConfigError(
            f"segment.sam2.checkpoint={checkpoint!r}: expected a SAM2 checkpoint ending in "
            f"{' or '.join(_CHECKPOINT_SUFFIXES)}, found suffix {path.suffix or '(none)'!r}"
        )
    if not path.is_file():
        raise BackendUnavailableError(
            f"segment.sam2.checkpoint: no file at {path} (expected a SAM2 .pt checkpoint there)"
        )
    return path


def _load_checkpoint(predictor: Any, path: Path, model_cfg: str) -> None:
    """Load a SAM2 checkpoint (``{"model": state_dict}`` or a bare state dict) with ``weights_only``."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all land here
        raise InputError(
            str(path), "a PyTorch checkpoint readable with torch.load(weights_only=True)",
            f"{type(e).__name__}: {str(e)[:300]}",
        ) from e
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(str(path), "a dict of tensors, or {'model': dict of tensors}", type(loaded).__name__)
    try:
        result = predictor.load_state_dict(state, strict=False)
    except RuntimeError as e:  # tensor shape mismatches raise even with strict=False
        raise InputError(
            str(path), f"a state dict matching {model_cfg}", str(e)[:500],
            hint="set segment.sam2.model_cfg to the config the checkpoint was trained with",
        ) from e
    if result.missing_keys or result.unexpected_keys:
        raise InputError(
            str(path),
            f"a state dict matching {model_cfg}",
            f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}) and "
            f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]})",
            hint="set segment.sam2.model_cfg to the config the checkpoint was trained with",
        )
