"""The ``random-init`` preset: FLUX.1 Fill and CogVideoX-5B-I2V at their published sizes with random weights.

The architectures are the models' published configs, written out here with their sources; the weights are random
and created directly on the compute device in the compute dtype (:func:`lanepipe.torchkit.build_on`: no fp32 CPU
copy of 12B weights). Tokenizers are the in-memory ones of :mod:`lanepipe.edit.generative.tiny` with the published
sequence lengths (CLIP 77 tokens, T5 ``max_sequence_length`` 512 for FLUX and 226 for CogVideoX): the text
encoders see the token counts of a real run. For timing and memory on a GPU without checkpoints — **the pictures
are meaningless** (the run manifest and report say so).

On the ``meta`` device nothing is allocated: :func:`parameter_counts` builds every module there and counts its
parameters (the CPU test that the configs match the published sizes).
"""

from __future__ import annotations

from typing import Any

from lanepipe import torchkit
from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative.loading import import_diffusers, transformers_module
from lanepipe.edit.generative.tiny import tiny_clip_tokenizer, tiny_t5_tokenizer

# FLUX.1-Fill-dev transformer/config.json and vae/config.json (huggingface.co/black-forest-labs/FLUX.1-Fill-dev):
FLUX_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 384, "out_channels": 64, "num_layers": 19, "num_single_layers": 38,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
    "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
FLUX_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
    "latent_channels": 16, "norm_num_groups": 32, "sample_size": 1024, "scaling_factor": 0.3611,
    "shift_factor": 0.1159, "use_quant_conv": False, "use_post_quant_conv": False}
#: FLUX.1-Fill-dev scheduler/scheduler_config.json (shift 3.0, dynamic shifting).
FLUX_SCHEDULER: dict[str, Any] = {"shift": 3.0, "use_dynamic_shifting": True}
# google/t5-v1_1-xxl config.json (text_encoder_2 of FLUX, text_encoder of CogVideoX; vocabulary 32128):
T5_XXL: dict[str, Any] = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24,
                          "num_heads": 64, "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu",
                          "dropout_rate": 0.0}
# openai/clip-vit-large-patch14 config.json, text tower (text_encoder of FLUX; vocabulary 49408, 77 positions):
CLIP_L: dict[str, Any] = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
                          "num_attention_heads": 12, "num_hidden_layers": 12, "max_position_embeddings": 77,
                          "projection_dim": 768, "hidden_act": "quick_gelu"}
# THUDM/CogVideoX-5b-I2V transformer/config.json, vae/config.json, scheduler/scheduler_config.json:
COGVIDEOX_TRANSFORMER: dict[str, Any] = {
    "num_attention_heads": 48, "attention_head_dim": 64, "in_channels": 32, "out_channels": 16, "time_embed_dim": 512,
    "text_embed_dim": 4096, "num_layers": 42, "sample_width": 90, "sample_height": 60, "sample_frames": 49,
    "patch_size": 2, "temporal_compression_ratio": 4, "max_text_seq_length": 226,
    "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True,
    "activation_fn": "gelu-approximate"}
COGVIDEOX_VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 256, 512), "latent_channels": 16, "layers_per_block": 3, "norm_num_groups": 32,
    "temporal_compression_ratio": 4, "scaling_factor": 0.7, "sample_height": 480, "sample_width": 720}
COGVIDEOX_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True, "set_alpha_to_one": True, "snr_shift_scale": 1.0, "timestep_spacing": "trailing",
    "clip_sample": False}

#: Published parameter counts (approximate, from the model cards and the bf16 safetensors sizes): FLUX.1 "a 12
#: billion parameter rectified flow transformer" (11.9B: flux1-dev.safetensors, 23.8 GB in bf16); T5-XXL encoder
#: 4.76B (FLUX.1 text_encoder_2, 9.52 GB in bf16); CLIP ViT-L/14 text tower 123M; FLUX VAE 84M; CogVideoX-5B
#: transformer 5.6B (the "5B" of its name; 11.1 GB in bf16); CogVideoX VAE 216M (431 MB in bf16).
PUBLISHED_PARAMS: dict[str, float] = {"flux_transformer": 11.9e9, "t5_xxl": 4.76e9, "clip_l": 123e6,
                                      "flux_vae": 84e6, "cogvideox_transformer": 5.6e9, "cogvideox_vae": 216e6}


#: GPU memory (GiB) below which the edit stack cannot stay resident next to SAM2: 42.2 GiB of bf16 FLUX + T5-XXL +
#: CLIP + VAEs + CogVideoX weights (:func:`parameter_counts`), the Qwen2.5-VL-7B judge's 15.4 GiB, and activations
#: (the edit peaked at 79.1 GiB with everything resident on an H200, BENCHMARKS.md "GPU session 2026-12-05").
PARK_BELOW_GIB = 100.0


def parks_between_phases(gpu_gib: float | None) -> bool:
    """Whether a full-size edit on a GPU of ``gpu_gib`` GiB needs ``unload_between_phases`` (an 80 GB card does);
    False when the size is unknown (no GPU)."""
    return gpu_gib is not None and gpu_gib < PARK_BELOW_GIB


def _text_encoders(device: str, dtype: Any) -> tuple[Any, Any]:
    """CLIP-L text tower and T5-XXL encoder, random weights on ``device``. The in-memory CLIP tokenizer's
    begin/end ids (0, 1) are the ones the config points at (the pooled output is read at the end token)."""
    tf = transformers_module()
    with torchkit.build_on(device, dtype):
        clip = tf.CLIPTextModel(tf.CLIPTextConfig(**CLIP_L, bos_token_id=0, eos_token_id=1, pad_token_id=1))
        t5 = tf.T5EncoderModel(tf.T5Config(**T5_XXL))
    return clip.eval(), t5.eval()


def flux_modules(device: str, dtype: Any = None) -> dict[str, Any]:
    """FLUX.1 Fill's transformer, VAE and both text encoders at full size with random weights on ``device``."""
    d = import_diffusers()
    clip, t5 = _text_encoders(device, dtype)
    with torchkit.build_on(device, dtype):
        transformer = d.FluxTransformer2DModel(**FLUX_TRANSFORMER)
        vae = d.AutoencoderKL(**FLUX_VAE)
    return {"flux_transformer": transformer.eval(), "flux_vae": vae.eval(), "clip_l": clip, "t5_xxl": t5}


def cogvideox_modules(device: str, dtype: Any = None) -> dict[str, Any]:
    """CogVideoX-5B-I2V's transformer and VAE at full size with random weights on ``device`` (its T5-XXL is
    FLUX's: :func:`flux_modules`)."""
    d = import_diffusers()
    with torchkit.build_on(device, dtype):
        transformer = d.CogVideoXTransformer3DModel(**COGVIDEOX_TRANSFORMER)
        vae = d.AutoencoderKLCogVideoX(**COGVIDEOX_VAE)
    return {"cogvideox_transformer": transformer.eval(), "cogvideox_vae": vae.eval()}


def parameter_counts() -> dict[str, int]:
    """Parameters of every module of the preset, built on the ``meta`` device (nothing allocated)."""
    mods = {**flux_modules("meta"), **cogvideox_modules("meta")}
    return {name: torchkit.count_parameters(m) for name, m in mods.items()}


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator


def random_fill_pipeline(cfg: GenerativeConfig, device: str, dtype: Any) -> Any:
    """A ``FluxFillPipeline`` of FLUX.1-Fill-dev's architecture with random weights built on ``device``."""
    d = import_diffusers()
    _seeded(cfg.seed)
    m = flux_modules(device, dtype)
    return d.FluxFillPipeline(
        scheduler=d.FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER), vae=m["flux_vae"], text_encoder=m["clip_l"],
        tokenizer=tiny_clip_tokenizer(), text_encoder_2=m["t5_xxl"],
        tokenizer_2=tiny_t5_tokenizer(cfg.max_sequence_length), transformer=m["flux_transformer"])


def random_video_pipeline(cfg: GenerativeConfig, device: str, dtype: Any, text_encoder: Any = None) -> Any:
    """A ``CogVideoXImageToVideoPipeline`` of CogVideoX-5b-I2V's architecture with random weights built on
    ``device``; ``text_encoder``: a T5-XXL already built (FLUX's, on the same device) to share, else a new one."""
    d = import_diffusers()
    _seeded(cfg.seed + 10)
    m = cogvideox_modules(device, dtype)
    if text_encoder is None:
        _, text_encoder = _text_encoders(device, dtype)
    return d.CogVideoXImageToVideoPipeline(
        tokenizer=tiny_t5_tokenizer(cfg.video_max_sequence_length), text_encoder=text_encoder,
        vae=m["cogvideox_vae"], transformer=m["cogvideox_transformer"],
        scheduler=d.CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER))
