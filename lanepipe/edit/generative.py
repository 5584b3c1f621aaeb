"""The ``flux_cogvideox`` edit backend: FLUX.1 Fill on the first frame, CogVideoX image-to-video propagation.

For one clip, its road masks and a :class:`~lanepipe.edit.instructions.LaneSpec` it

1. **resizes** frames and masks to the models' ``width x height``; the road mask is dilated by ``mask_dilate_px``
   (white pixels are repainted by FLUX) and feathered by ``mask_feather_px`` for compositing;
2. **repaints the first frame** with diffusers' ``FluxFillPipeline`` (prompt = ``spec.caption()``, or a revised
   caption carried by the QA loop's params; ``flux_guidance``, ``flux_steps``, ``max_sequence_length``; an optional
   ``.safetensors`` LoRA at ``lora_scale``), then composites the original pixels outside the feathered mask;
3. **propagates** with ``CogVideoXImageToVideoPipeline`` conditioned on that frame, ``num_frames`` per window;
   a clip longer than one window runs in windows overlapping by one frame, each conditioned on the previous
   window's last (composited) frame. Every generated frame is composited with the original outside its own
   feathered, dilated mask;
4. **returns** frames resized back to the clip's ``(T, H, W, 3) uint8``; with ``keep_unmasked`` the final blend
   is feathered *inside* the clip-size road mask, so every pixel outside the (undilated) road mask is the input's.

Generative paint has no exact geometry: the result's ``lanes`` are empty lists, one per frame.

The ``tiny-random`` preset builds the same pipeline classes at tiny size with seeded random weights and
tokenizers built in memory (no hub, no files): for tests and wiring checks on CPU, its pictures are noise.
Model weights load lazily on the first :meth:`GenerativePainter.paint` (or :meth:`GenerativePainter.setup`),
never at import or in the config.
"""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lanepipe.edit.instructions import LaneSpec
from lanepipe.edit.procedural import PaintedLine, PaintParams, PaintResult
from lanepipe.errors import BackendUnavailableError, InputError
from lanepipe.types import Clip, RoadMasks

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]

_INSTALL_HINT = "pip install 'lanepipe[generative]'"
#: Values the ``tiny-random`` preset uses for every field the caller did not set.
TINY_DEFAULTS: dict[str, Any] = {
    "width": 64, "height": 48, "num_frames": 9, "flux_steps": 2, "video_steps": 2, "max_sequence_length": 16,
    "video_max_sequence_length": 16, "mask_dilate_px": 2, "mask_feather_px": 1, "flux_device": "cpu",
    "video_device": "cpu", "dtype": "float32", "vae_slicing": False, "vae_tiling": False,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ============================================================================================== configuration
class GenerativeConfig(BaseModel):
    """Settings of the FLUX.1 Fill → CogVideoX-I2V painter (pixel sizes at the models' ``width x height``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["none", "tiny-random"] = Field(
        "none", description="'tiny-random': tiny seeded random models built in memory (tests); 'none': load models")
    flux_model: str = Field("black-forest-labs/FLUX.1-Fill-dev", description="FLUX.1 Fill: local folder or hub id")
    cogvideox_model: str = Field("THUDM/CogVideoX-5b-I2V", description="CogVideoX I2V: local folder or hub id")
    lora_path: str | None = Field(None, description="optional FLUX LoRA, a .safetensors file")
    lora_scale: float = Field(1.0, ge=0.0, le=4.0, description="LoRA adapter weight")
    mask_dilate_px: int = Field(24, ge=0, le=256, description="road mask dilation before repainting")
    mask_feather_px: int = Field(8, ge=0, le=128, description="soft edge of the compositing mask")
    keep_unmasked: bool = Field(True, description="keep the original pixels outside the road mask")
    flux_steps: int = Field(50, ge=1, le=500, description="FLUX denoising steps")
    flux_guidance: float = Field(30.0, ge=0.0, le=100.0, description="FLUX (distilled) guidance scale")
    max_sequence_length: int = Field(512, ge=1, le=512, description="FLUX T5 prompt tokens")
    video_steps: int = Field(50, ge=1, le=500, description="CogVideoX denoising steps")
    video_guidance: float = Field(6.0, ge=0.0, le=50.0, description="CogVideoX classifier-free guidance scale")
    video_max_sequence_length: int = Field(226, ge=1, le=512, description="CogVideoX T5 prompt tokens")
    width: int = Field(720, ge=16, le=4096, description="model frame width (multiple of 16)")
    height: int = Field(480, ge=16, le=4096, description="model frame height (multiple of 16)")
    num_frames: int = Field(49, ge=5, le=257, description="frames per CogVideoX window (4k + 1)")
    fps: int = Field(8, ge=1, le=120, description="the video model's native frame rate (reported)")
    flux_device: str = Field("auto", description="'auto' (cuda when present, else cpu), 'cpu', 'cuda:0', …")
    video_device: str = Field("auto", description="'auto' (cuda when present, else cpu), 'cpu', 'cuda:1', …")
    cpu_offload: bool = Field(False, description="diffusers model CPU offload (saves GPU memory, slower)")
    vae_slicing: bool = Field(True, description="decode latents one at a time")
    vae_tiling: bool = Field(True, description="decode latents in tiles")
    seed: int = Field(0, description="seed of the noise (and of the tiny-random weights)")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="'auto': bfloat16 on CUDA, float32 on CPU")

    @model_validator(mode="before")
    @classmethod
    def _tiny_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") == "tiny-random":
            return {**TINY_DEFAULTS, **data}
        return data

    @field_validator("lora_path")
    @classmethod
    def _safetensors_only(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith(".safetensors"):
            raise ValueError(f"lora_path must be a .safetensors file (pickled .bin/.pt files are refused), got {v!r}")
        return v

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"width and height must be multiples of 16 (FLUX packs 2x2 latents), got {v}")
        return v

    @field_validator("num_frames")
    @classmethod
    def _four_k_plus_one(cls, v: int) -> int:
        if (v - 1) % 4:
            raise ValueError(f"num_frames must be 4k + 1 (CogVideoX compresses time 4x), e.g. 49; got {v}")
        return v


# ============================================================================================== pure helpers
def dilate_mask(mask: Bool, px: int) -> Bool:
    """Dilate a ``(H, W) bool`` mask by ``px`` pixels (elliptical structuring element)."""
    if px <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def feather_mask(mask: Bool, px: float) -> F32:
    """``(H, W) float32`` alpha in [0, 1]: Gaussian-feathered ``(H, W) bool`` mask (soft on both sides of its edge)."""
    a = mask.astype(np.float32)
    if px <= 0:
        return a
    out: F32 = np.clip(cv2.GaussianBlur(a, (0, 0), sigmaX=px / 2.0), 0.0, 1.0).astype(np.float32)
    return out


def inner_feather(mask: Bool, px: float) -> F32:
    """``(H, W) float32`` alpha: 0 outside the ``(H, W) bool`` mask, rising to 1 at ``px`` pixels inside it."""
    if px <= 0:
        return mask.astype(np.float32)
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    out: F32 = np.clip(np.asarray(dist, dtype=np.float32) / float(px), 0.0, 1.0).astype(np.float32)
    return out


def blend(generated: U8, original: U8, alpha: F32) -> U8:
    """``(H, W, 3) uint8``: ``alpha · generated + (1 - alpha) · original``; exactly ``original`` where alpha is 0."""
    a = alpha[..., None]
    mix = np.rint(a * generated.astype(np.float32) + (1.0 - a) * original.astype(np.float32))
    out: U8 = np.clip(mix, 0, 255).astype(np.uint8)
    out[alpha <= 0.0] = original[alpha <= 0.0]
    return out


def window_starts(total: int, window: int) -> list[int]:
    """First clip frame of each propagation window: windows of ``window`` frames overlapping by one frame."""
    if total <= 1:
        return []
    return list(range(0, total - 1, window - 1))


def _resize(img: U8, w: int, h: int) -> U8:
    if img.shape[1] == w and img.shape[0] == h:
        return img.copy()
    shrink = w < img.shape[1] and h < img.shape[0]
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.asarray(out, dtype=np.uint8)


def _resize_mask(mask: Bool, w: int, h: int) -> Bool:
    if mask.shape[1] == w and mask.shape[0] == h:
        return mask.copy()
    m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return np.asarray(m > 0.0, dtype=bool)


def _to_u8(img: Any) -> U8:
    """Pipeline ``output_type="np"`` float image in [0, 1] → uint8."""
    return np.asarray(np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255), dtype=np.uint8)


# ============================================================================================== model loading
def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the flux_cogvideox edit backend needs diffusers, transformers and torch ({exc}); "
            f"install them with `{_INSTALL_HINT}`") from exc
    return diffusers


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _dtype(cfg: GenerativeConfig, device: str) -> Any:
    import torch

    if cfg.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.dtype]


def _from_pretrained(cls: Any, model: str, what: str, dtype: Any) -> Any:
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


def _transformers() -> Any:
    return importlib.import_module("transformers")


def _tiny_text_vocab() -> list[str]:
    return list("abcdefghijklmnopqrstuvwxyz0123456789-,.")


def _tiny_clip_tokenizer() -> Any:
    chars = _tiny_text_vocab()
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return _transformers().CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _tiny_t5_tokenizer(max_length: int) -> Any:
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in _tiny_text_vocab()]
    pieces += [("\u2581" + w, -1.0) for w in ("road", "with", "no", "lane", "markings", "single", "double", "white",
                                             "yellow", "solid", "dashed")]
    return _transformers().T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length)


def _tiny_t5(seed: int, vocab_size: int) -> Any:
    import torch

    tf = _transformers()
    torch.manual_seed(seed)
    cfg = tf.T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0, eos_token_id=1)
    return tf.T5EncoderModel(cfg).eval()


def tiny_fill_pipeline(cfg: GenerativeConfig) -> Any:
    """A ``FluxFillPipeline`` of tiny seeded random models (latent 4 channels, VAE scale 2, 1+1 blocks)."""
    import torch

    d, tf = _import_diffusers(), _transformers()
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
    tokenizer = _tiny_clip_tokenizer()
    torch.manual_seed(cfg.seed + 2)
    text_encoder = tf.CLIPTextModel(tf.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, projection_dim=32, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        hidden_act="gelu")).eval()
    tokenizer_2 = _tiny_t5_tokenizer(cfg.max_sequence_length)
    text_encoder_2 = _tiny_t5(cfg.seed + 3, len(tokenizer_2))
    return d.FluxFillPipeline(scheduler=d.FlowMatchEulerDiscreteScheduler(), vae=vae.eval(), text_encoder=text_encoder,
                            tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                            transformer=transformer.eval())


def tiny_video_pipeline(cfg: GenerativeConfig) -> Any:
    """A ``CogVideoXImageToVideoPipeline`` of tiny seeded random models (latent 4, VAE 8x spatial, 4x temporal)."""
    import torch

    d = _import_diffusers()
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
    tokenizer = _tiny_t5_tokenizer(cfg.video_max_sequence_length)
    text_encoder = _tiny_t5(cfg.seed + 12, len(tokenizer))
    return d.CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae.eval(),
                                         transformer=transformer.eval(), scheduler=d.CogVideoXDDIMScheduler())


# ============================================================================================== painter
class GenerativePainter:
    """FLUX.1 Fill first frame → CogVideoX-I2V propagation (see the module docstring).

    Args:
        cfg: painter settings; defaults (real models, 720x480, 49 frames) when None.
    """

    name = "flux_cogvideox"

    def __init__(self, cfg: GenerativeConfig | None = None) -> None:
        self.cfg = cfg or GenerativeConfig()
        self._fill: Any = None
        self._video: Any = None
        self._fill_device = "cpu"
        self._video_device = "cpu"

    # ------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build or load both pipelines once (idempotent).

        Raises:
            BackendUnavailableError: diffusers missing, a model or the LoRA file not found or not loadable.
        """
        if self._fill is not None and self._video is not None:
            return
        diffusers = _import_diffusers()
        import torch

        cfg = self.cfg
        lora: Path | None = None
        if cfg.lora_path is not None:
            lora = Path(cfg.lora_path).expanduser()
            if not lora.is_file():
                raise BackendUnavailableError(f"LoRA file {cfg.lora_path!r} not found: expected a .safetensors file")
        self._fill_device = _device(cfg.flux_device)
        self._video_device = _device(cfg.video_device)
        if cfg.preset == "tiny-random":
            fill = tiny_fill_pipeline(cfg)
            video = tiny_video_pipeline(cfg)
            for pipe, dev in ((fill, self._fill_device), (video, self._video_device)):
                if _dtype(cfg, dev) != torch.float32:
                    pipe.to(dtype=_dtype(cfg, dev))
        else:
            fill = _from_pretrained(diffusers.FluxFillPipeline, cfg.flux_model, "FLUX.1 Fill",
                                    _dtype(cfg, self._fill_device))
            video = _from_pretrained(diffusers.CogVideoXImageToVideoPipeline, cfg.cogvideox_model, "CogVideoX I2V",
                                     _dtype(cfg, self._video_device))
        if lora is not None:
            try:
                fill.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="lanepipe",
                                       use_safetensors=True)
            except (OSError, ValueError, KeyError) as exc:
                raise BackendUnavailableError(f"could not load FLUX LoRA {str(lora)!r}: {exc}") from exc
            fill.set_adapters(["lanepipe"], adapter_weights=[cfg.lora_scale])
        for pipe, dev in ((fill, self._fill_device), (video, self._video_device)):
            if cfg.vae_slicing:
                pipe.vae.enable_slicing()
            if cfg.vae_tiling:
                pipe.vae.enable_tiling()
            if cfg.cpu_offload and dev.startswith("cuda"):
                pipe.enable_model_cpu_offload(device=dev)
            else:
                pipe.to(dev)
            pipe.set_progress_bar_config(disable=True)
        self._fill, self._video = fill, video

    # ------------------------------------------------------------------------------------------ public
    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, params: PaintParams | Any | None = None
              ) -> PaintResult:
        """Repaint the road of ``clip`` so that it shows ``spec``.

        Args:
            clip: ``(T, H, W, 3) uint8`` frames.
            masks: ``(T, H, W) bool`` road masks, True = road (repainted).
            spec: the instruction; its :meth:`~LaneSpec.caption` is the prompt.
            params: QA-loop params; a string attribute ``caption`` (a revised caption) replaces the prompt,
                everything else is ignored.

        Returns:
            :class:`PaintResult`: ``(T, H, W, 3) uint8`` frames (input pixels outside the road mask with
            ``keep_unmasked``), empty lane lists per frame, diagnostics with timings per phase.

        Raises:
            InputError: masks of another shape, or an all-zero mask.
            BackendUnavailableError: see :meth:`setup`.
        """
        import torch

        cfg = self.cfg
        t0 = time.perf_counter()
        masks.check_matches(clip)
        if not masks.masks.any():
            raise InputError(clip.source, "a road mask with road pixels to paint on",
                             "an all-zero mask in every frame", "segment the clip first or check the mask file")
        revised = getattr(params, "caption", None)
        prompt = revised if isinstance(revised, str) and revised.strip() else spec.caption()
        self.setup()
        t1 = time.perf_counter()

        w, h, n = cfg.width, cfg.height, cfg.num_frames
        frames_w = [_resize(f, w, h) for f in clip.frames]
        masks_w = [_resize_mask(m, w, h) for m in masks.masks]
        gen_masks = [dilate_mask(m, cfg.mask_dilate_px) for m in masks_w]
        alphas_w = [feather_mask(m, cfg.mask_feather_px) for m in gen_masks]

        from PIL import Image

        with torch.inference_mode():
            res = self._fill(
                prompt=prompt, image=Image.fromarray(frames_w[0]),
                mask_image=Image.fromarray(gen_masks[0].astype(np.uint8) * 255, mode="L"), height=h, width=w,
                guidance_scale=cfg.flux_guidance, num_inference_steps=cfg.flux_steps,
                max_sequence_length=cfg.max_sequence_length,
                generator=torch.Generator(device="cpu").manual_seed(cfg.seed), output_type="np")
        first = _to_u8(res.images[0])
        if cfg.keep_unmasked:
            first = blend(first, frames_w[0], alphas_w[0])
        t2 = time.perf_counter()

        out_w: list[U8] = [first]
        starts = window_starts(clip.num_frames, n)
        for k, s in enumerate(starts):
            with torch.inference_mode():
                vid = self._video(
                    image=Image.fromarray(out_w[s]), prompt=prompt, height=h, width=w, num_frames=n,
                    num_inference_steps=cfg.video_steps, guidance_scale=cfg.video_guidance,
                    max_sequence_length=cfg.video_max_sequence_length,
                    generator=torch.Generator(device="cpu").manual_seed(cfg.seed + 1 + k), output_type="np")
            video = np.asarray(vid.frames[0])
            for j in range(1, n):
                t = s + j
                if t >= clip.num_frames:
                    break
                g = _to_u8(video[j])
                out_w.append(blend(g, frames_w[t], alphas_w[t]) if cfg.keep_unmasked else g)
        t3 = time.perf_counter()

        out = np.empty_like(clip.frames)
        feather_full = cfg.mask_feather_px * clip.width / w
        for t in range(clip.num_frames):
            g = _resize(out_w[t], clip.width, clip.height)
            out[t] = blend(g, clip.frames[t], inner_feather(masks.masks[t], feather_full)) if cfg.keep_unmasked else g
        t4 = time.perf_counter()
        lanes: list[list[PaintedLine]] = [[] for _ in range(clip.num_frames)]
        diag: dict[str, Any] = {
            "backend": self.name, "preset": cfg.preset, "instruction": spec.to_text(), "prompt": prompt,
            "model_size": [w, h], "windows": len(starts), "window_frames": n, "model_fps": cfg.fps,
            "clip_fps": clip.fps, "seed": cfg.seed, "lora": cfg.lora_path, "lora_scale": cfg.lora_scale,
            "devices": {"flux": self._fill_device, "video": self._video_device},
            "timing_s": {"setup": round(t1 - t0, 3), "flux": round(t2 - t1, 3), "propagate": round(t3 - t2, 3),
                         "composite": round(t4 - t3, 3)},
        }
        return PaintResult(frames=out, lanes=lanes, diagnostics=diag)
