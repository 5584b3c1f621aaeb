"""Propagation hooks of the CogVideoX windows: the :class:`WindowContext` a hook sees, the :class:`PropagationHook`
extension point, and mask-aware latent blending (:class:`LatentBlendHook`) with its helpers.

Latent shapes follow the CogVideoX pipeline: ``(B, F_lat, C, h/8, w/8)``, ``F_lat = (N - 1) / 4 + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.edit.generative.masks import U8, Bool


@dataclass
class WindowContext:
    """One CogVideoX propagation window, as :class:`PropagationHook` objects see it (sizes at the model's ``h x w``).

    Attributes:
        index: window number (0 = the first).
        start: clip frame of the window's first frame.
        frames: ``(N, h, w, 3) uint8`` source frames (the clip's last frame repeated past its end).
        masks: ``(N, h, w) bool`` dilated road masks, True = generated.
        condition: ``(h, w, 3) uint8`` conditioning frame (FLUX first frame, or the previous window's last frame).
        prompt: the window's prompt.
        seed: seed of the window's noise.
        steps: denoising steps.
        source_latents: ``(1, F_lat, C, h/8, w/8)`` float32 torch tensor, scaled VAE latents of ``frames``
            (``F_lat = (N - 1) / 4 + 1``); set when a hook ``needs_latents``, else None.
        latent_mask: ``(1, F_lat, 1, h/8, w/8)`` float32 torch tensor, 1 = generated (:func:`latent_masks`), or None.
        noise: ``(1, F_lat, C, h/8, w/8)`` float32 torch tensor, the window's Gaussian noise, or None.
        extras: free room for hooks (e.g. a context branch's encoded masked video).
    """

    index: int
    start: int
    frames: U8
    masks: Bool
    condition: U8
    prompt: str
    seed: int
    steps: int
    source_latents: Any = None
    latent_mask: Any = None
    noise: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


class PropagationHook:
    """Extension point of the CogVideoX propagation; the defaults do nothing.

    * :meth:`attach`: once, when the video pipeline is built (a context branch loads its weights here).
    * ``needs_latents``: when True the painter VAE-encodes each window's source frames into ``ctx.source_latents``
      (with ``ctx.latent_mask`` and ``ctx.noise``) before denoising.
    * :meth:`window_kwargs`: extra keyword arguments of the video pipeline's call for one window (initial
      ``latents``; for a VideoPainter-style dual-branch pipeline, its masked video and masks).
    * :meth:`end_clip`: after a clip's last window (a hook carrying state across windows drops it here).
    * :meth:`on_step_end`: called after every scheduler step (diffusers ``callback_on_step_end``) with the noisy
      ``(B, F_lat, C, h/8, w/8)`` latents (batch of the prompts, not the doubled CFG batch); returns the latents
      denoising goes on with. The image-conditioning latents are concatenated by the pipeline itself and are not
      seen here.
    """

    needs_latents: bool = False

    def attach(self, pipe: Any) -> None:
        """Called once when the video pipeline is built, before it is placed and accelerated (load extra models,
        adapters, register module hooks)."""
        del pipe

    def describe(self) -> dict[str, Any] | None:
        """What the hook did, for the result's diagnostics (``meta.json``); None: nothing to report."""
        return None

    def end_clip(self) -> None:
        """Called after a clip's last window: drop state kept from window to window."""

    def window_kwargs(self, pipe: Any, ctx: WindowContext) -> dict[str, Any]:
        """Extra keyword arguments for the video pipeline call of this window."""
        del pipe, ctx
        return {}

    def on_step_end(self, pipe: Any, ctx: WindowContext, step: int, timestep: Any, latents: Any) -> Any:
        """Latents to continue with after scheduler step ``step`` (at ``timestep``)."""
        del pipe, ctx, step, timestep
        return latents


def blend_latents(latents: Any, latent_mask: Any, reference: Any) -> Any:
    """``latent_mask · latents + (1 - latent_mask) · reference`` on the last ``F_lat`` latent frames.

    Args:
        latents: ``(B, F, C, h, w)`` torch tensor; ``F >= F_lat`` (CogVideoX 1.5 prepends padding frames, left alone).
        latent_mask: ``(1, F_lat, 1, h, w)`` float, 1 = generated.
        reference: ``(1, F_lat, C, h, w)`` latents the kept region takes.

    Returns:
        a tensor like ``latents`` (same dtype).
    """
    import torch

    off = int(latents.shape[1]) - int(reference.shape[1])
    if off < 0:
        raise ValueError(f"latents have {latents.shape[1]} frames, fewer than the reference's {reference.shape[1]}")
    m = latent_mask.to(device=latents.device, dtype=torch.float32)
    ref = reference.to(device=latents.device, dtype=torch.float32)
    mixed = (m * latents[:, off:].float() + (1.0 - m) * ref).to(latents.dtype)
    return torch.cat([latents[:, :off], mixed], dim=1) if off else mixed


class LatentBlendHook(PropagationHook):
    """Mask-aware latent blending: outside the mask the latents follow the source video while denoising.

    Initial latents: noise inside the mask, the source latents noised to the first timestep outside
    (``scheduler.add_noise``). After step ``i``: outside the mask, the source latents noised to timestep ``i + 1``
    (where the scheduler's step just took the latents), or the clean source latents after the last step.
    CogVideoX's DPM scheduler also carries the previous step's x0 prediction (``old_pred_original_sample``), which
    a step callback cannot change: it keeps the model's prediction there, the next blend corrects it.
    """

    needs_latents = True

    def window_kwargs(self, pipe: Any, ctx: WindowContext) -> dict[str, Any]:
        if getattr(pipe.transformer.config, "patch_size_t", None) is not None:
            return {}  # CogVideoX 1.5 pads latent frames: leave the initial noise to the pipeline
        sched = pipe.scheduler
        sched.set_timesteps(ctx.steps, device=ctx.noise.device)  # the pipeline sets the same ones again
        ref = sched.add_noise(ctx.source_latents, ctx.noise, sched.timesteps[:1])
        init = blend_latents(ctx.noise, ctx.latent_mask, ref)
        # the pipeline takes given latents as they are (device only): hand them over in the transformer's dtype
        return {"latents": (init / float(sched.init_noise_sigma)).to(pipe.transformer.dtype)}

    def on_step_end(self, pipe: Any, ctx: WindowContext, step: int, timestep: Any, latents: Any) -> Any:
        del timestep
        ts = pipe.scheduler.timesteps
        src = ctx.source_latents
        ref = pipe.scheduler.add_noise(src, ctx.noise, ts[step + 1: step + 2]) if step + 1 < len(ts) else src
        return blend_latents(latents, ctx.latent_mask, ref)


def encode_video(pipe: Any, frames: U8) -> Any:
    """Scaled VAE latents of ``(N, h, w, 3) uint8`` frames, laid out as the CogVideoX pipeline's latents.

    Returns:
        ``(1, F_lat, C, h/8, w/8)`` float32 torch tensor on the pipeline's execution device (distribution mode,
        times the VAE scaling factor, or divided by it for VAEs with ``invert_scale_latents``).
    """
    return encode_pixels(pipe, frames.astype(np.float32) / 127.5 - 1.0)


def encode_pixels(pipe: Any, pixels: npt.NDArray[np.float32]) -> Any:
    """:func:`encode_video` of ``(N, h, w, 3)`` float frames already in ``[-1, 1]`` (e.g. a masked video whose
    hidden pixels are 0, as VideoPainter's pipeline feeds its context branch)."""
    import torch

    vae = pipe.vae
    vae_device = next(vae.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(device=vae_device)
    x = x.permute(3, 0, 1, 2)[None].to(vae.dtype)  # (1, 3, N, h, w) in [-1, 1]
    with torch.inference_mode():
        lat = vae.encode(x).latent_dist.mode()  # (1, C, F_lat, h/8, w/8)
    lat = lat.permute(0, 2, 1, 3, 4).float()
    scale = float(pipe.vae_scaling_factor_image)
    lat = lat / scale if getattr(vae.config, "invert_scale_latents", False) else lat * scale
    return lat.to(pipe._execution_device)
