"""The ``flux_cogvideox`` workflow: :class:`GenerativePainter` wires the components of this package.

See :mod:`lanepipe.edit.generative` for the steps, placement and extension points.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lanepipe import torchkit
from lanepipe.edit import accel
from lanepipe.edit.config import GenerativeConfig, QAConfig
from lanepipe.edit.generative import parallel, published
from lanepipe.edit.generative.group import ParallelGroup
from lanepipe.edit.generative.hooks import LatentBlendHook, PropagationHook, WindowContext, encode_video
from lanepipe.edit.generative.loading import configure_allocator, from_pretrained, import_diffusers
from lanepipe.edit.generative.masks import (
    U8,
    Bool,
    blend,
    dilate_mask,
    feather_mask,
    inner_feather,
    latent_masks,
    resize_frame,
    resize_mask,
    to_u8,
    window_starts,
)
from lanepipe.edit.generative.tiny import tiny_fill_pipeline, tiny_video_pipeline
from lanepipe.edit.procedural import PaintedLine, PaintParams, PaintResult
from lanepipe.errors import BackendUnavailableError, InputError
from lanepipe.lanes.instructions import LaneSpec
from lanepipe.monitoring import model_load, release_device, span
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import Verdict
from lanepipe.verify.qwen_vl import caption_core

Phase = Literal["flux", "video"]


def _dtype(cfg: GenerativeConfig, device: str) -> Any:
    """``cfg.dtype`` on resolved ``device`` (``auto``: bfloat16 on CUDA, float32 elsewhere)."""
    return torchkit.resolve_dtype(cfg.dtype, device, key="edit.generative.dtype")


def pipeline_modules(pipe: Any) -> list[Any]:
    """The ``torch.nn.Module`` components of a diffusers pipeline (transformer, VAE, text encoders), in order."""
    import torch

    return [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]


class GenerativePainter:
    """FLUX.1 Fill first frame → CogVideoX-I2V propagation (see :mod:`lanepipe.edit.generative`).

    Stepwise API: :meth:`first_frame` (may run several times in a QA loop), then :meth:`propagate` once;
    :meth:`paint` does both.

    Args:
        cfg: painter settings; defaults (real models, 720x480, 49 frames) when None.
        hooks: extra :class:`PropagationHook` objects, run after the built-in :class:`LatentBlendHook`
            (present when ``cfg.latent_blend``).
        video_pipeline: optional factory ``cfg -> pipeline`` replacing the stock CogVideoX I2V pipeline (e.g. a
            VideoPainter-style dual-branch pipeline); it must accept the stock call's keyword arguments.
    """

    name = "flux_cogvideox"

    def __init__(self, cfg: GenerativeConfig | None = None, hooks: Sequence[PropagationHook] = (),
                 video_pipeline: Callable[[GenerativeConfig], Any] | None = None) -> None:
        self.cfg = cfg or GenerativeConfig()
        builtin: list[PropagationHook] = [LatentBlendHook()] if self.cfg.latent_blend else []
        if self.cfg.branch is not None:  # VideoPainter dual-branch denoising (torch imported only when asked)
            from lanepipe.edit.generative.branch import VideoPainterHook

            builtin.append(VideoPainterHook(self.cfg))
        self.hooks: list[PropagationHook] = [*builtin, *hooks]
        self._video_factory = video_pipeline
        self._extra_hooks = tuple(hooks)
        #: the Ray actors that propagate for this painter when ``cfg.parallel`` asks for several ranks
        self.group: ParallelGroup | None = None
        #: what :func:`lanepipe.edit.generative.parallel.install` did (this process is a rank of a group)
        self.parallel_info: dict[str, Any] | None = None
        self._fill: Any = None
        self._video: Any = None
        self._fill_device = "cpu"
        self._video_device = "cpu"
        #: whether each pipeline sits on its compute device (False: not loaded, or parked in CPU memory)
        self.resident: dict[str, bool] = {"flux": False, "video": False}
        #: placement events, in order (``"flux -> cuda:0"``, ``"flux parked on cpu"`` ...)
        self.placement: list[str] = []
        #: what :func:`lanepipe.edit.accel.apply` did to each transformer
        self.accel_applied: dict[str, dict[str, Any]] = {}
        self._truncation: accel.CfgTruncation | None = None
        self._compile_saved: set[str] = set()
        self._parking = torchkit.HostParking()  # unload_between_phases: weights parked in (pinned) host memory
        self._parked: set[str] = set()  # phases parked at least once (activated from their host copies)
        self.allocator = configure_allocator(self.cfg)
        self._inputs = threading.local()  # model_inputs of the clip this thread works on

    # ------------------------------------------------------------------------------------------ loading
    def setup(self, phases: Sequence[Phase] = ("flux", "video")) -> None:
        """Load both pipelines once and place them (idempotent); with ``unload_between_phases`` the video
        pipeline stays in CPU memory until :meth:`propagate` needs it. ``phases``: only these pipelines (the split
        edit placement: a first-frame actor loads FLUX only, a propagation actor CogVideoX only).

        Raises:
            BackendUnavailableError: diffusers missing, a model or the LoRA file not found or not loadable.
        """
        if "flux" in phases:
            self._activate("flux")
        if "video" not in phases:
            return
        if self._delegates():
            self._parallel_group().setup()
        elif self.cfg.unload_between_phases and "flux" in phases:
            self._load("video")
        else:
            self._activate("video")

    @property
    def switches_phases(self) -> bool:
        """Whether each change between first frames (FLUX) and propagation (CogVideoX) moves weights between host
        and GPU memory (``unload_between_phases``): a caller with several instructions for one clip runs all
        their first frames, then all their propagations (two switches per clip instead of two per instruction)."""
        return self.cfg.unload_between_phases

    def setup_video(self) -> None:
        """Load and place the video pipeline only (a rank of a parallel group that propagates only)."""
        self._activate("video")

    def _delegates(self) -> bool:
        """Whether propagation runs on a :class:`ParallelGroup` (``parallel`` set, not already inside one)."""
        return self.cfg.parallel.world > 1 and parallel.current_mesh() is None

    def _parallel_group(self) -> ParallelGroup:
        if self.group is None or self.group.closed:
            self.group = ParallelGroup(self.cfg, functools.partial(
                type(self), hooks=self._extra_hooks, video_pipeline=self._video_factory))
        return self.group

    def _device_of(self, phase: Phase) -> str:
        return self._fill_device if phase == "flux" else self._video_device

    def _offloaded(self, phase: Phase) -> bool:
        return self.cfg.cpu_offload and self._device_of(phase).startswith("cuda")

    def _load(self, phase: Phase) -> Any:
        """Build or load one pipeline (in CPU memory, not placed; ``random-init`` builds on its device); idempotent.
        Each load is counted (:func:`lanepipe.monitoring.model_load`)."""
        existing = self._fill if phase == "flux" else self._video
        if existing is not None:
            return existing
        with model_load("flux_fill" if phase == "flux" else "cogvideox_i2v"):
            return self._build(phase)

    def _build(self, phase: Phase) -> Any:
        diffusers = import_diffusers()
        import torch

        cfg = self.cfg
        tiny = cfg.preset == "tiny-random"
        if phase == "flux":
            lora: Path | None = None
            if cfg.lora_path is not None:
                lora = Path(cfg.lora_path).expanduser()
                if not lora.is_file():
                    raise BackendUnavailableError(
                        f"LoRA file {cfg.lora_path!r} not found: expected a .safetensors file")
            self._fill_device = dev = torchkit.resolve_device(cfg.flux_device, key="edit.generative.flux_device")
            if tiny:
                pipe = tiny_fill_pipeline(cfg)
            elif cfg.preset == "random-init":
                pipe = published.random_fill_pipeline(cfg, dev, _dtype(cfg, dev))
            else:
                pipe = from_pretrained(diffusers.FluxFillPipeline, cfg.flux_model, "FLUX.1 Fill", _dtype(cfg, dev))
            if lora is not None:
                try:
                    pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="lanepipe",
                                           use_safetensors=True)
                except (OSError, ValueError, KeyError) as exc:
                    raise BackendUnavailableError(f"could not load FLUX LoRA {str(lora)!r}: {exc}") from exc
                pipe.set_adapters(["lanepipe"], adapter_weights=[cfg.lora_scale])
                if cfg.accel.fuse_qkv:  # fused projections would drop the LoRA layers: merge them first
                    pipe.fuse_lora(components=["transformer"], lora_scale=1.0)
                    pipe.unload_lora_weights()
        else:
            self._video_device = dev = torchkit.resolve_device(cfg.video_device, key="edit.generative.video_device")
            if self._video_factory is not None:
                pipe = self._video_factory(cfg)
            elif tiny:
                pipe = tiny_video_pipeline(cfg)
            elif cfg.preset == "random-init":  # one T5-XXL for both when FLUX's sits on the same device
                shared = self._fill.text_encoder_2 if self._fill is not None and self._fill_device == dev else None
                pipe = published.random_video_pipeline(cfg, dev, _dtype(cfg, dev), shared)
            else:
                pipe = from_pretrained(diffusers.CogVideoXImageToVideoPipeline, cfg.cogvideox_model,
                                        "CogVideoX I2V", _dtype(cfg, dev))
        if tiny and _dtype(cfg, dev) != torch.float32:
            pipe.to(dtype=_dtype(cfg, dev))
        if phase == "video":
            for hook in self.hooks:  # e.g. the context branch and its LoRA load here, before placement and accel
                hook.attach(pipe)
        if cfg.vae_slicing:
            pipe.vae.enable_slicing()
        if cfg.vae_tiling:
            pipe.vae.enable_tiling()
        pipe.set_progress_bar_config(disable=True)
        if phase == "flux":
            self._fill = pipe
        else:
            self._video = pipe
        return pipe

    def _park(self, phase: Phase) -> None:
        """Move a pipeline to CPU memory and empty the CUDA cache (``unload_between_phases``)."""
        import torch

        pipe = self._fill if phase == "flux" else self._video
        self._parking.park(*pipeline_modules(pipe))  # host copies made once, reused by every later park
        self._parked.add(phase)
        self.resident[phase] = False
        gc.collect()
        if self._device_of(phase).startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.placement.append(f"{phase} parked on cpu")

    def _activate(self, phase: Phase) -> Any:
        """The pipeline of ``phase``, loaded and on its device (parking the other one when configured)."""
        pipe = self._load(phase)
        other: Phase = "video" if phase == "flux" else "flux"
        if self.cfg.unload_between_phases and self.resident[other] and not self._offloaded(other):
            self._park(other)
        if not self.resident[phase]:
            dev = self._device_of(phase)
            if self._offloaded(phase):
                pipe.enable_model_cpu_offload(device=dev)
                self.placement.append(f"{phase} -> {dev} (model CPU offload)")
            elif phase in self._parked:  # back from host memory (pinned: one DMA per tensor)
                self._parking.activate(dev, *pipeline_modules(pipe))
                self.placement.append(f"{phase} -> {dev}")
            else:
                pipe.to(dev)
                self.placement.append(f"{phase} -> {dev}")
            self.resident[phase] = True
        if phase not in self.accel_applied:
            steps = self.cfg.flux_steps if phase == "flux" else self.cfg.video_steps
            done = accel.apply(pipe.transformer, self.cfg.accel if phase == "flux" else self.cfg.video_accel,
                               timestep=lambda: pipe.current_timestep, steps=steps)
            trunc = done.pop("cfg_truncation", None)
            if trunc is not None:
                self._truncation = trunc
                done["cfg_truncation"] = trunc.fraction
            self.accel_applied[phase] = done
        mesh = parallel.current_mesh()
        if phase == "video" and mesh is not None and self.parallel_info is None:  # after accel: sets processors
            self.parallel_info = parallel.install(pipe.transformer, mesh)
        return pipe

    def _save_compiled(self, phase: Phase) -> None:
        """After the first call of ``phase`` with compiled blocks, write torch's compile-cache artifacts next to
        inductor's cache (:func:`lanepipe.torchkit.save_compile_artifacts`) for workers that start later."""
        done = self.accel_applied.get(phase, {})
        if phase in self._compile_saved or "compiled_blocks" not in done:
            return
        self._compile_saved.add(phase)
        setting = (self.cfg.accel if phase == "flux" else self.cfg.video_accel).compile_cache_dir
        done["compile_cache"]["artifacts_saved"] = torchkit.save_compile_artifacts(setting)

    # ------------------------------------------------------------------------------------------ steps
    @staticmethod
    def _check(clip: Clip, masks: RoadMasks) -> None:
        masks.check_matches(clip)
        if not masks.masks.any():
            raise InputError(clip.source, "a road mask with road pixels to paint on",
                             "an all-zero mask in every frame", "segment the clip first or check the mask file")

    def _to_clip(self, generated: U8, original: U8, road: Bool) -> U8:
        """Model-size frame → clip size, composited inside the clip-size road mask with ``keep_unmasked``."""
        cfg = self.cfg
        g = resize_frame(generated, original.shape[1], original.shape[0])
        if not cfg.keep_unmasked:
            return g
        return blend(g, original, inner_feather(road, cfg.mask_feather_px * original.shape[1] / cfg.width))

    def model_inputs(self, clip: Clip, masks: RoadMasks) -> tuple[U8, Bool]:
        """The clip's frames ``(T, h, w, 3)`` and dilated road masks ``(T, h, w)`` at model size, computed once per
        clip and thread until :meth:`propagate` ends (the edit stage calls it before its device turn, so this CPU work
        runs while another clip's models run; :meth:`first_frame` and :meth:`propagate` reuse it)."""
        cached = getattr(self._inputs, "value", None)
        if cached is not None and cached[0] is clip.frames and cached[1] is masks.masks:
            return cached[2], cached[3]
        cfg = self.cfg
        w, h = cfg.width, cfg.height
        with span("cpu", "preprocess"):
            frames_w = np.stack([resize_frame(f, w, h) for f in clip.frames])
            gen_masks = np.stack([dilate_mask(resize_mask(m, w, h), cfg.mask_dilate_px) for m in masks.masks])
        self._inputs.value = (clip.frames, masks.masks, frames_w, gen_masks)  # held: the identity check stays valid
        return frames_w, gen_masks

    def first_frame(self, clip: Clip, masks: RoadMasks, prompt: str, seed: int | None = None) -> U8:
        """Repaint the road of the clip's first frame with FLUX.1 Fill.

        Args:
            clip: ``(T, H, W, 3) uint8`` frames (only frame 0 is used).
            masks: ``(T, H, W) bool`` road masks, True = road (repainted).
            prompt: the text prompt (a canonical caption, or a revised one).
            seed: noise seed; ``cfg.seed`` when None.

        Returns:
            ``(H, W, 3) uint8`` at clip size; with ``keep_unmasked`` the input's pixels outside the road mask.

        Raises:
            InputError: masks of another shape, or an all-zero mask.
            BackendUnavailableError: see :meth:`setup`.
        """
        import torch
        from PIL import Image

        cfg = self.cfg
        self._check(clip, masks)
        fill = self._activate("flux")
        w, h = cfg.width, cfg.height
        frames_w, gen_masks = self.model_inputs(clip, masks)
        frame_w, gen_mask = frames_w[0], gen_masks[0]
        with span("device", "flux"), torch.inference_mode(), torchkit.sdpa_kernels(cfg.accel.attention):
            res = fill(
                prompt=prompt, image=Image.fromarray(frame_w),
                mask_image=Image.fromarray(gen_mask.astype(np.uint8) * 255, mode="L"), height=h, width=w,
                guidance_scale=cfg.flux_guidance, num_inference_steps=cfg.flux_steps,
                max_sequence_length=cfg.max_sequence_length,
                generator=torch.Generator(device="cpu").manual_seed(cfg.seed if seed is None else seed),
                output_type="np")
        self._save_compiled("flux")
        with span("cpu", "composite"):
            first = to_u8(res.images[0])
            if cfg.keep_unmasked:
                first = blend(first, frame_w, feather_mask(gen_mask, cfg.mask_feather_px))
            return self._to_clip(first, clip.frames[0], masks.masks[0])

    def propagate_window(self, frames: U8, masks: Bool, condition: U8, prompt: str, seed: int, *, index: int = 0,
                         start: int = 0, output_type: Literal["np", "latent"] = "np") -> tuple[Any, WindowContext]:
        """Run CogVideoX I2V on one window, with the hooks.

        Args:
            frames: ``(N, h, w, 3) uint8`` source frames at model size, ``N = cfg.num_frames``.
            masks: ``(N, h, w) bool`` dilated road masks at model size, True = generated.
            condition: ``(h, w, 3) uint8`` conditioning (first) frame.
            prompt: the text prompt.
            seed: seed of the window's noise.
            index: window number; start: its first clip frame (both reported to hooks).
            output_type: ``"np"``: ``(N, h, w, 3)`` float frames in [0, 1]; ``"latent"``: the final
                ``(1, F_lat, C, h/8, w/8)`` latents (torch), before decoding.

        Returns:
            ``(output, context)``; the context holds the source latents when a hook needed them.
        """
        import torch
        from PIL import Image

        cfg = self.cfg
        n, h, w = cfg.num_frames, cfg.height, cfg.width
        if frames.shape != (n, h, w, 3) or masks.shape != (n, h, w) or condition.shape != (h, w, 3):
            raise InputError("propagation window", f"frames ({n}, {h}, {w}, 3), masks ({n}, {h}, {w}), condition "
                             f"({h}, {w}, 3)", f"{frames.shape}, {masks.shape}, {condition.shape}")
        pipe = self._activate("video")
        ctx = WindowContext(index=index, start=start, frames=frames, masks=masks, condition=condition, prompt=prompt,
                            seed=seed, steps=cfg.video_steps)
        if any(hk.needs_latents for hk in self.hooks):
            device = pipe._execution_device
            ctx.source_latents = encode_video(pipe, frames)
            lm = latent_masks(masks, int(pipe.vae_scale_factor_temporal), int(pipe.vae_scale_factor_spatial))
            ctx.latent_mask = torch.from_numpy(lm.astype(np.float32))[None, :, None].to(device)
            noise_gen = torch.Generator(device="cpu").manual_seed(seed + 7919)
            ctx.noise = torch.randn(tuple(ctx.source_latents.shape), generator=noise_gen).to(device)
        kwargs: dict[str, Any] = {}
        for hk in self.hooks:
            kwargs.update(hk.window_kwargs(pipe, ctx))
        if self.hooks:
            def on_step_end(p: Any, step: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                lat = tensors["latents"]
                for hk in self.hooks:
                    lat = hk.on_step_end(p, ctx, step, t, lat)
                return {"latents": lat}

            kwargs.update(callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
        cache = self.accel_applied.get("video", {}).get("cache")
        if cache is not None and cache["steps"] != cfg.video_steps:  # sized for another step count: re-size it
            accel.resize_cache(pipe.transformer, cache["kind"], lambda: pipe.current_timestep, cfg.video_steps,
                               cache["dtype"])
            cache["steps"] = cfg.video_steps
        accel.reset_cache(pipe.transformer)
        if self._truncation is not None:
            self._truncation.start(cfg.video_steps)
        with torch.inference_mode(), torchkit.sdpa_kernels(cfg.video_accel.attention):
            out = pipe(image=Image.fromarray(condition), prompt=prompt, height=h, width=w, num_frames=n,
                       num_inference_steps=cfg.video_steps, guidance_scale=cfg.video_guidance,
                       max_sequence_length=cfg.video_max_sequence_length,
                       generator=torch.Generator(device="cpu").manual_seed(seed), output_type=output_type, **kwargs)
        self._save_compiled("video")
        if output_type == "latent":
            return out.frames, ctx
        video = np.asarray(out.frames[0])
        if video.shape[0] != n:
            raise BackendUnavailableError(f"the video pipeline returned {video.shape[0]} frames for a window of {n}")
        return video, ctx

    def propagate(self, clip: Clip, masks: RoadMasks, first_frame: U8, prompt: str, seed: int | None = None,
                  spec: LaneSpec | None = None) -> PaintResult:
        """Carry an edited first frame through the clip with CogVideoX I2V windows.

        Args:
            clip: ``(T, H, W, 3) uint8`` frames.
            masks: ``(T, H, W) bool`` road masks, True = road.
            first_frame: ``(H, W, 3) uint8`` edited first frame at clip size (from :meth:`first_frame`); it is the
                result's frame 0 unchanged.
            prompt: the text prompt (the one that made ``first_frame``).
            seed: base seed (window ``k`` uses ``seed + 1 + k``); ``cfg.seed`` when None.
            spec: the instruction, for the diagnostics only.

        Returns:
            :class:`PaintResult`: ``(T, H, W, 3) uint8`` frames (input pixels outside the road mask with
            ``keep_unmasked``), empty lane lists per frame, diagnostics (devices, placement, accel, timings).

        Raises:
            InputError: masks or first frame of another shape, or an all-zero mask.
            BackendUnavailableError: see :meth:`setup`.
        """
        if self._delegates():
            return self._parallel_group().propagate(clip, masks, first_frame, prompt, seed, spec)
        cfg = self.cfg
        t0 = time.perf_counter()
        self._check(clip, masks)
        if first_frame.shape != clip.frames.shape[1:] or first_frame.dtype != np.uint8:
            raise InputError(clip.source, f"a first frame of shape {clip.frames.shape[1:]} uint8 (H, W, 3)",
                             f"{first_frame.shape} {first_frame.dtype}")
        base = cfg.seed if seed is None else seed
        starts = window_starts(clip.num_frames, cfg.num_frames)
        if starts:
            self._activate("video")
        t1 = time.perf_counter()

        w, h, n, total = cfg.width, cfg.height, cfg.num_frames, clip.num_frames
        frames_w, gen_masks = self.model_inputs(clip, masks)
        out_w: list[U8] = [resize_frame(first_frame, w, h)]
        for k, s in enumerate(starts):
            idx = [min(s + j, total - 1) for j in range(n)]
            with span("device", "cogvideox"):
                video, _ = self.propagate_window(frames_w[idx], gen_masks[idx], out_w[s], prompt, base + 1 + k,
                                                 index=k, start=s)
            with span("cpu", "composite"):  # the next window's condition is this one's blended last frame
                for j in range(1, n):
                    t = s + j
                    if t >= total:
                        break
                    g = to_u8(video[j])
                    out_w.append(blend(g, frames_w[t], feather_mask(gen_masks[t], cfg.mask_feather_px))
                                 if cfg.keep_unmasked else g)
        for hook in self.hooks:
            hook.end_clip()
        self._inputs.value = None  # the clip's frames are not held past its propagation
        t2 = time.perf_counter()
        release_device()  # the clip's last model call is done: another clip may take the device while this composites

        with span("cpu", "composite"):
            out = np.empty_like(clip.frames)
            out[0] = first_frame
            for t in range(1, total):
                out[t] = self._to_clip(out_w[t], clip.frames[t], masks.masks[t])
        t3 = time.perf_counter()
        lanes: list[list[PaintedLine]] = [[] for _ in range(total)]
        diag: dict[str, Any] = {
            "backend": self.name, "preset": cfg.preset, "instruction": spec.to_text() if spec else None,
            "prompt": prompt, "model_size": [w, h], "windows": len(starts), "window_frames": n, "model_fps": cfg.fps,
            "clip_fps": clip.fps, "seed": base, "lora": cfg.lora_path, "lora_scale": cfg.lora_scale,
            "latent_blend": cfg.latent_blend, "hooks": [type(hk).__name__ for hk in self.hooks],
            "branch": self.branch_info(),
            "devices": {"flux": self._fill_device, "video": self._video_device},
            "placement": list(self.placement), "resident": dict(self.resident), "accel": dict(self.accel_applied),
            "allocator": self.allocator, "parallel": self.parallel_info,
            "timing_s": {"setup": round(t1 - t0, 3), "propagate": round(t2 - t1, 3), "composite": round(t3 - t2, 3)},
        }
        return PaintResult(frames=out, lanes=lanes, diagnostics=diag)

    def branch_info(self) -> dict[str, Any] | None:
        """What the VideoPainter branch hook reports (source, layers, parameters, ID-LoRA windows), or None."""
        for hook in self.hooks:
            info = hook.describe()
            if info is not None:
                return info
        return None

    # ------------------------------------------------------------------------------------------ one call
    def prepare(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, qa: QAConfig | None = None) -> GenerativeJob:
        """Stepwise painter contract (:class:`lanepipe.edit.base.Painter`): see :class:`GenerativeJob`."""
        return GenerativeJob(self, clip, masks, spec, vary_seed=True if qa is None else qa.vary_seed)

    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, params: PaintParams | Any | None = None
              ) -> PaintResult:
        """Repaint the road of ``clip`` so that it shows ``spec``: :meth:`first_frame` then :meth:`propagate`.

        Args:
            clip: ``(T, H, W, 3) uint8`` frames.
            masks: ``(T, H, W) bool`` road masks, True = road (repainted).
            spec: the instruction; its :meth:`~LaneSpec.caption` is the prompt.
            params: QA-loop params; a string attribute ``caption`` (a revised caption) replaces the prompt,
                everything else is ignored.

        Returns:
            :class:`PaintResult` (see :meth:`propagate`), with timings per phase.

        Raises:
            InputError: masks of another shape, or an all-zero mask.
            BackendUnavailableError: see :meth:`setup`.
        """
        revised = getattr(params, "caption", None)
        prompt = revised if isinstance(revised, str) and revised.strip() else spec.caption()
        t0 = time.perf_counter()
        self._check(clip, masks)
        self.setup()
        t1 = time.perf_counter()
        first = self.first_frame(clip, masks, prompt)
        t2 = time.perf_counter()
        res = self.propagate(clip, masks, first, prompt, spec=spec)
        timing = res.diagnostics["timing_s"]
        timing.update(setup=round(t1 - t0 + timing["setup"], 3), flux=round(t2 - t1, 3))
        return res


# ============================================================================================== QA steps
def next_prompt(spec: LaneSpec, revised: str | None, current: str) -> str:
    """The FLUX prompt after a FAIL: the instruction's canonical caption followed by the revised caption's details.

    The canonical part always comes from ``spec`` (a judge's caption that names other markings does not change
    the instruction); with no revised caption the prompt stays ``current``.
    """
    if not revised or not revised.strip():
        return current
    text = revised.strip()
    core = caption_core(text)
    if core is not None:
        at = text.lower().find(core)
        text = (text[:at] + text[at + len(core):]) if at >= 0 else text
    detail = " ".join(text.strip(" ,;:.-").split())
    return f"{spec.caption()}, {detail}" if detail else spec.caption()


class GenerativeJob:
    """The generative painter's QA steps (:class:`lanepipe.edit.base.PaintJob`): each attempt repaints only the
    first frame (FLUX, seed + attempt with ``vary_seed``); a FAIL turns the judge's revised caption into the next
    prompt (:func:`next_prompt`); ``finish`` propagates the last first frame (the passing one, if any) once, with
    the prompt and seed that made it. Records: ``prompt``, ``seed``, ``revised_caption``, ``raw``,
    ``first_frame_s``, ``judge_s``; ``qa.json`` gets the final ``prompt`` and the context ``branch`` (or None).
    """

    def __init__(self, painter: GenerativePainter, clip: Clip, masks: RoadMasks, spec: LaneSpec,
                 vary_seed: bool = True) -> None:
        self.painter, self.clip, self.masks, self.spec = painter, clip, masks, spec
        self.vary_seed = vary_seed
        self.prompt = self.pending = spec.caption()
        self.seed = painter.cfg.seed
        self.attempts = 0
        self.first: U8 | None = None
        self.first_s = self.flux_s = self.judge_s = 0.0
        self.result: PaintResult | None = None

    @classmethod
    def resume(cls, painter: GenerativePainter, clip: Clip, masks: RoadMasks, spec: LaneSpec, first: U8, *,
               prompt: str, seed: int, attempts: int, flux_s: float = 0.0, judge_s: float = 0.0) -> GenerativeJob:
        """A job whose attempts ran elsewhere (the split placement's first-frame actor, with the ``prompt`` and
        ``seed`` that made ``first``): :meth:`finish` propagates ``first`` as the job that made it would."""
        job = cls(painter, clip, masks, spec)
        job.first, job.prompt, job.pending, job.seed = first, prompt, prompt, seed
        job.attempts, job.flux_s, job.judge_s = attempts, flux_s, judge_s
        return job

    def attempt(self) -> U8:
        self.prompt = self.pending
        self.seed = self.painter.cfg.seed + (self.attempts if self.vary_seed else 0)
        t0 = time.perf_counter()
        self.first = self.painter.first_frame(self.clip, self.masks, self.prompt, seed=self.seed)
        self.first_s = time.perf_counter() - t0
        self.flux_s += self.first_s
        self.attempts += 1
        return self.first[None]

    def record(self, verdict: Verdict | None, check_s: float) -> dict[str, Any]:
        if verdict is None:
            return {"verdict": "SKIPPED", "reasons": [], "prompt": self.prompt, "seed": self.seed,
                    "first_frame_s": round(self.first_s, 3)}
        self.judge_s += check_s
        return {"verdict": "PASS" if verdict.passed else "FAIL", "reasons": list(verdict.reasons),
                "prompt": self.prompt, "seed": self.seed, "revised_caption": verdict.revised_caption,
                "raw": verdict.raw, "first_frame_s": round(self.first_s, 3), "judge_s": round(check_s, 3)}

    def adjust(self, verdict: Verdict) -> None:
        self.pending = next_prompt(self.spec, verdict.revised_caption, self.prompt)

    def finish(self, verifier: str) -> PaintResult:
        assert self.first is not None, "finish() before any attempt()"
        result = self.painter.propagate(self.clip, self.masks, self.first, self.prompt, seed=self.seed,
                                        spec=self.spec)
        timing = result.diagnostics.setdefault("timing_s", {})
        timing.update(flux=round(self.flux_s, 3), judge=round(self.judge_s, 3))
        result.diagnostics.update(qa_attempts=self.attempts, judge=verifier)
        self.result = result
        return result

    def qa_fields(self) -> dict[str, Any]:
        diag = {} if self.result is None else self.result.diagnostics
        return {"prompt": diag.get("prompt"), "branch": diag.get("branch")}
