"""The ``tiny-random`` preset: the painter's pipeline classes at tiny size with seeded random weights.

Tokenizers are built in memory (no hub, no files); for tests and wiring checks on CPU — the pictures are noise.
"""

from __future__ import annotations

from typing import Any

from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative.loading import import_diffusers, transformers_module


def tiny_text_vocab() -> list[str]:
    return list("abcdefghijklmnopqrstuvwxyz0123456789-,.")


def tiny_clip_tokenizer() -> Any:
    chars = tiny_text_vocab()
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return transformers_module().CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_t5_tokenizer(max_length: int) -> Any:
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in tiny_text_vocab()]
    pieces += [("\u2581" + w, -1.0) for w in ("road", "with", "no", "lane", "markings", "single", "double", "white",
                                             "yellow", "solid", "dashed")]
    return transformers_module().T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length)


def tiny_t5(seed: int, vocab_size: int) -> Any:
    import torch

    tf = transformers_module()
    torch.manual_seed(seed)
    cfg = tf.T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0, eos_token_id=1)
    return tf.T5EncoderModel(cfg).eval()


def tiny_fill_pipeline(cfg: GenerativeConfig) -> Any:
    """A ``FluxFillPipeline`` of tiny seeded random models (latent 4 channels, VAE scale 2, 1+1 blocks)."""
    import torch

    d, tf = import_diffusers(), transformers_module()
    latent, vae_scale = 4, 2
    # Fill input per packed 2x2 token: noisy latents + masked-image latents (latent·4 each) + mask (vae_scale²·4).
    in_channels = latent * 4 * 2 + vae_scale * vae_scale * 4
    torch.manual_seed(cfg.seed)
    transformer = d.FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=latent * 4, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(4, 4, 8))
    torch.manual_seed(cfg.seed + 1)
    vae = d.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
        latent_channels=latent, norm_num_groups=2, sample_size=32, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035)
    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(cfg.seed + 2)
    text_encoder = tf.CLIPTextModel(tf.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, projection_dim=32, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        hidden_act="gelu")).eval()
    tokenizer_2 = tiny_t5_tokenizer(cfg.max_sequence_length)
    text_encoder_2 = tiny_t5(cfg.seed + 3, len(tokenizer_2))
    return d.FluxFillPipeline(scheduler=d.FlowMatchEulerDiscreteScheduler(), vae=vae.eval(), text_encoder=text_encoder,
                            tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                            transformer=transformer.eval())


def tiny_video_pipeline(cfg: GenerativeConfig) -> Any:
    """A ``CogVideoXImageToVideoPipeline`` of tiny seeded random models (latent 4, VAE 8x spatial, 4x temporal)."""
    import torch

    d = import_diffusers()
    latent, spatial = 4, 8
    torch.manual_seed(cfg.seed + 10)
    transformer = d.CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=2 * latent, out_channels=latent, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=cfg.width // spatial, sample_height=cfg.height // spatial,
        sample_frames=cfg.num_frames, patch_size=2, temporal_compression_ratio=4,
        max_text_seq_length=cfg.video_max_sequence_length, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True)
    torch.manual_seed(cfg.seed + 11)
    vae = d.AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=latent,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    tokenizer = tiny_t5_tokenizer(cfg.video_max_sequence_length)
    text_encoder = tiny_t5(cfg.seed + 12, len(tokenizer))
    return d.CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae.eval(),
                                         transformer=transformer.eval(), scheduler=d.CogVideoXDDIMScheduler())
