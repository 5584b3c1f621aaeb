"""The ``flux_cogvideox`` edit backend: FLUX.1 Fill on the first frame, CogVideoX image-to-video propagation.

For one clip, its road masks and a :class:`~lanepipe.lanes.instructions.LaneSpec` it

1. **resizes** frames and masks to the models' ``width x height``; the road mask is dilated by ``mask_dilate_px``
   (white pixels are repainted by FLUX) and feathered by ``mask_feather_px`` for compositing;
2. **repaints the first frame** (:meth:`GenerativePainter.first_frame`) with diffusers' ``FluxFillPipeline``
   (prompt = ``spec.caption()`` or a revised caption from the QA loop; ``flux_guidance``, ``flux_steps``,
   ``max_sequence_length``; an optional ``.safetensors`` LoRA at ``lora_scale``), then composites the original
   pixels outside the feathered mask. The QA loop (:mod:`lanepipe.stages.edit`) may call this several times;
3. **propagates** (:meth:`GenerativePainter.propagate`) with ``CogVideoXImageToVideoPipeline`` conditioned on
   that frame, ``num_frames`` per window; a clip longer than one window runs in windows overlapping by one frame,
   each conditioned on the previous window's last (composited) frame. With ``latent_blend`` the region outside
   the dilated mask **follows the source video during denoising**: the window's source frames are VAE-encoded and,
   after every scheduler step, the latents outside the (latent-resolution) mask are replaced by the source latents
   noised to the next timestep (the clean source latents after the last step), see :class:`LatentBlendHook`.
   Every generated frame is then composited with the original outside its own feathered, dilated mask;
4. **returns** frames resized back to the clip's ``(T, H, W, 3) uint8``; with ``keep_unmasked`` the final blend
   is feathered *inside* the clip-size road mask, so every pixel outside the (undilated) road mask is the input's.

Generative paint has no exact geometry: the result's ``lanes`` are empty lists, one per frame.

Placement and memory: each pipeline runs on its own device (``flux_device``, ``video_device``); with
``unload_between_phases`` only the pipeline of the running phase sits on its GPU (the other is parked in CPU
memory, and the CUDA cache emptied); ``cpu_offload``, ``vae_slicing`` and ``vae_tiling`` are diffusers'
switches; ``expandable_segments`` sets ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` before CUDA starts.
``accel`` / ``video_accel`` (:mod:`lanepipe.edit.accel`) speed up the FLUX / CogVideoX transformers.

Extension point: :class:`PropagationHook` objects given to :class:`GenerativePainter` see each window
(:class:`WindowContext`: source frames, masks, source latents) and may add keyword arguments to the video
pipeline call and change the latents after every step; latent blending is one. VideoPainter's context branch
(``branch``, :mod:`~lanepipe.edit.generative.branch`) is another: dual-branch denoising on the stock pipeline
through module hooks on its transformer (the branch reads the masked source video and the mask; its features are
added to the backbone's blocks on background tokens), and with ``id_lora`` the VideoPainterID LoRA resampling the
previous window's generated tokens in windows after the first. A whole pipeline can also be replaced
(:meth:`GenerativePainter.__init__`'s ``video_pipeline``).

The ``tiny-random`` preset builds the same pipeline classes at tiny size with seeded random weights and
tokenizers built in memory (no hub, no files): for tests and wiring checks on CPU, its pictures are noise.
Model weights load lazily on first use (or :meth:`GenerativePainter.setup`), never at import or in the config.

Modules (components, then the workflow that wires them, as in diffusers):

- :mod:`~lanepipe.edit.generative.masks`: pure mask / frame helpers (dilate, feather, blend, resize, latent grid);
- :mod:`~lanepipe.edit.generative.loading`: diffusers import, safetensors loading, the CUDA allocator switch;
- :mod:`~lanepipe.edit.generative.tiny`: the ``tiny-random`` preset's pipelines;
- :mod:`~lanepipe.edit.generative.published`: the ``random-init`` preset: the published architectures (configs with
  their sources) with random weights built on the device (GPU timing without checkpoints; meaningless pictures);
- :mod:`~lanepipe.edit.generative.hooks`: window context, propagation hooks, latent blending;
- :mod:`~lanepipe.edit.generative.branch`: VideoPainter's context branch (published checkpoint layout) and ID LoRA;
- :mod:`~lanepipe.edit.generative.painter`: :class:`GenerativePainter`, the workflow.
"""

from __future__ import annotations

from lanepipe.edit.generative.painter import GenerativePainter

__all__ = ["GenerativePainter"]
