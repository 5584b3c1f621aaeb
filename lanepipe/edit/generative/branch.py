"""VideoPainter's context-encoder branch and ID-resampling LoRA on upstream diffusers' CogVideoX.

VideoPainter (Bian et al., "VideoPainter: Any-length Video Inpainting and Editing with Plug-and-Play Context
Control", arXiv 2503.05639) propagates an edited first frame with CogVideoX-5B-I2V plus

* a **context encoder** ("branch"): two CogVideoX blocks that read the noisy latents, the masked source video's
  latents and the latent mask, and whose per-layer outputs, through zero-initialised linear layers, are added to
  the backbone's blocks: the first branch layer to the first half of the backbone's 42 blocks, the second to the
  second half ("group-wise"), and only on background tokens ("token-selective");
* for clips longer than one window, **ID resampling**: a LoRA on the backbone's attention projections
  (VideoPainterID) with which every attention layer also attends to the previous window's masked-region tokens
  ("during inference, the ID tokens of the last clip are concatenated to the current KV vectors", paper §3.3).

This module is lanepipe's own implementation on upstream diffusers (``CogVideoXPatchEmbed``, ``CogVideoXBlock``,
``Timesteps``/``TimestepEmbedding``, ``AdaLayerNorm``); it was written from reading, not copying, these files of
TencentARC/VideoPainter (its diffusers fork):

* ``diffusers/src/diffusers/models/branch_cogvideox.py`` (``CogvideoXBranchModel``): config fields, module and
  parameter names, the patch embedding's input channels (``in_channels * 2 + 1`` when ``in_channels == 16``, else
  ``in_channels + 1``: noisy latents + masked-video latents + one mask channel for the I2V backbone's 32), the
  per-layer ``branch_blocks`` linear maps and ``conditioning_scale``; ``branch_x_embedder``, ``norm_final``,
  ``norm_out`` and ``proj_out`` exist in the checkpoint but take no part in the forward pass;
* ``diffusers/src/diffusers/models/transformers/cogvideox_transformer_3d.py``: where branch features enter the
  backbone (after block ``i``, feature ``i // ceil(L_backbone / L_branch)``; with ``mask_add`` only where the
  patch-pooled mask is 0), the per-layer states kept for ID resampling;
* ``diffusers/src/diffusers/models/attention_processor.py`` (``CogVideoXAttnProcessor2_0_resample``): the extra
  keys/values (previous window's block outputs, normalised by the block's ``norm1``, masked to its generated
  tokens and weighted by ``prev_clip_weight``, then key-normalised and rotated like the current ones);
* ``diffusers/src/diffusers/pipelines/cogvideo/pipeline_cogvideox_inpainting_i2v_branch.py``
  (``CogVideoXI2VDualInpaintPipeline``) and ``..._i2v_branch_anyl.py``: masked video = source in ``[-1, 1]`` times
  ``mask < 0.5``, VAE-encoded and scaled; latent mask at the latent grid; branch input
  ``cat([noisy latents, masked-video latents, mask], channels)``;
* ``infer/inpaint.py``, ``infer/inpaint.sh``, ``infer/inpaint_id_resample.sh``: the published inference loads
  ``checkpoints/branch`` with ``CogvideoXBranchModel.from_pretrained`` and runs with ``--first_frame_gt``
  (the first frame is the FLUX-inpainted frame, unmasked), ``--replace_gt`` (latent blending outside the mask,
  :class:`~lanepipe.edit.generative.hooks.LatentBlendHook` here) and ``--mask_add`` (background tokens only);
  VideoPainterID's ``pytorch_lora_weights.safetensors`` is loaded with ``load_lora_weights`` onto the
  transformer (``prev_clip_weight=0.5``);
* ``train/train_cogvideox_inpainting_i2v_video_resample.py``, ``train/VideoPainter.sh``: the branch is built
  ``from_transformer`` with ``branch_layer_num 2`` and the backbone's heads; the ID LoRA targets ``to_q``,
  ``to_k``, ``to_v``, ``to_out.0`` (rank 256) and is saved by ``CogVideoXPipeline.save_lora_weights``, i.e. keys
  ``transformer.transformer_blocks.<i>.attn1.<proj>.lora_{A,B}.weight``.

Differences from the fork, on purpose: the ID LoRA is active only in windows after the first (the paper's
inference; the fork's script also runs it, self-resampling, in the first window); the masked video is encoded
with the VAE's distribution mode (deterministic) instead of a sample; the latent mask is the union over each
latent cell's pixels (:func:`~lanepipe.edit.generative.masks.latent_masks`) instead of nearest-neighbour.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative.hooks import PropagationHook, WindowContext, encode_pixels
from lanepipe.edit.generative.loading import import_diffusers
from lanepipe.edit.generative.masks import latent_masks
from lanepipe.errors import BackendUnavailableError

#: The transformer config of THUDM/CogVideoX-5b-I2V (``transformer/config.json``, diffusers layout): the backbone
#: VideoPainter's branch was cut from.
COGVIDEOX_5B_I2V_TRANSFORMER: dict[str, Any] = {
    "activation_fn": "gelu-approximate", "attention_bias": True, "attention_head_dim": 64, "dropout": 0.0,
    "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 32, "max_text_seq_length": 226,
    "norm_elementwise_affine": True, "norm_eps": 1e-05, "num_attention_heads": 48, "num_layers": 42,
    "out_channels": 16, "patch_size": 2, "sample_frames": 49, "sample_height": 60, "sample_width": 90,
    "spatial_interpolation_scale": 1.875, "temporal_compression_ratio": 4, "temporal_interpolation_scale": 1.0,
    "text_embed_dim": 4096, "time_embed_dim": 512, "timestep_activation_fn": "silu",
    "use_learned_positional_embeddings": True, "use_rotary_positional_embeddings": True,
}

#: What ``CogvideoXBranchModel.from_transformer`` changes in the backbone's config for the published branch
#: (``train/VideoPainter.sh``: ``--branch_layer_num 2``; heads and head size stay the backbone's).
BRANCH_FIELDS: dict[str, Any] = {"num_layers": 2, "wo_text": False, "id_pool_resample_learnable": False}

#: The published branch's config (``checkpoints/branch/config.json`` without the ``_class_name`` /
#: ``_diffusers_version`` bookkeeping keys): the 5B-I2V backbone's config with :data:`BRANCH_FIELDS`.
PUBLISHED_BRANCH_CONFIG: dict[str, Any] = {**COGVIDEOX_5B_I2V_TRANSFORMER, **BRANCH_FIELDS}

#: Config keys of the published layout that shape no parameter and are not read here.
_BOOKKEEPING = ("_class_name", "_diffusers_version", "_name_or_path")
#: Weights file of the published branch folder and of the VideoPainterID folder.
BRANCH_WEIGHTS = "diffusion_pytorch_model.safetensors"
ID_LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
ADAPTER = "videopainter_id"


def branch_patch_channels(in_channels: int) -> int:
    """Input channels of the branch's patch embedding, as the published layout sizes it (see the module doc)."""
    return in_channels * 2 + 1 if in_channels == 16 else in_channels + 1


def branch_config_from_backbone(backbone: dict[str, Any], num_layers: int = 2) -> dict[str, Any]:
    """A branch config cut from a CogVideoX transformer config (the fork's ``from_transformer``)."""
    cfg = {k: backbone[k] for k in PUBLISHED_BRANCH_CONFIG if k in backbone}
    missing = sorted(set(COGVIDEOX_5B_I2V_TRANSFORMER) - set(cfg))
    if missing:
        raise ValueError(f"backbone config: expected CogVideoX transformer fields, missing {missing}")
    return {**cfg, **BRANCH_FIELDS, "num_layers": num_layers}


class ContextBranch(torch.nn.Module):
    """VideoPainter's context encoder, with the module and parameter names of the published checkpoint.

    Args:
        config: the published config's fields (:data:`PUBLISHED_BRANCH_CONFIG`'s keys); ``wo_text`` must be False
            (the published branch attends to the text tokens).

    Forward: see :meth:`forward`. Build with :func:`load_branch` (a folder) or directly (random weights).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        from torch import nn

        import_diffusers()
        from diffusers.models.embeddings import CogVideoXPatchEmbed, TimestepEmbedding, Timesteps
        from diffusers.models.normalization import AdaLayerNorm
        from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock

        super().__init__()
        unknown = sorted(set(config) - set(PUBLISHED_BRANCH_CONFIG) - set(_BOOKKEEPING))
        if unknown:
            raise ValueError(f"branch config: unknown fields {unknown}; expected those of VideoPainter's "
                             f"CogvideoXBranchModel: {sorted(PUBLISHED_BRANCH_CONFIG)}")
        c = {**PUBLISHED_BRANCH_CONFIG, **{k: v for k, v in config.items() if k not in _BOOKKEEPING}}
        if c["wo_text"]:
            raise ValueError("branch config: wo_text=true (a branch without text tokens) is not supported; the "
                             "published branch has wo_text=false")
        self.config = c
        inner = int(c["num_attention_heads"]) * int(c["attention_head_dim"])
        self.inner_dim = inner
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=c["patch_size"], in_channels=branch_patch_channels(int(c["in_channels"])), embed_dim=inner,
            text_embed_dim=c["text_embed_dim"], bias=True, sample_width=c["sample_width"],
            sample_height=c["sample_height"], sample_frames=c["sample_frames"],
            temporal_compression_ratio=c["temporal_compression_ratio"],
            max_text_seq_length=c["max_text_seq_length"],
            spatial_interpolation_scale=c["spatial_interpolation_scale"],
            temporal_interpolation_scale=c["temporal_interpolation_scale"],
            use_positional_embeddings=not c["use_rotary_positional_embeddings"],
            use_learned_positional_embeddings=c["use_learned_positional_embeddings"])
        self.embedding_dropout = nn.Dropout(c["dropout"])
        self.time_proj = Timesteps(inner, c["flip_sin_to_cos"], c["freq_shift"])
        self.time_embedding = TimestepEmbedding(inner, c["time_embed_dim"], c["timestep_activation_fn"])
        self.transformer_blocks = nn.ModuleList([
            CogVideoXBlock(dim=inner, num_attention_heads=c["num_attention_heads"],
                           attention_head_dim=c["attention_head_dim"], time_embed_dim=c["time_embed_dim"],
                           dropout=c["dropout"], activation_fn=c["activation_fn"],
                           attention_bias=c["attention_bias"], norm_elementwise_affine=c["norm_elementwise_affine"],
                           norm_eps=c["norm_eps"])
            for _ in range(int(c["num_layers"]))])
        # in the published checkpoint, unused by the forward pass (the branch returns features, not noise)
        self.norm_final = nn.LayerNorm(inner, c["norm_eps"], c["norm_elementwise_affine"])
        self.norm_out = AdaLayerNorm(embedding_dim=c["time_embed_dim"], output_dim=2 * inner,
                                     norm_elementwise_affine=c["norm_elementwise_affine"], norm_eps=c["norm_eps"],
                                     chunk_dim=1)
        self.proj_out = nn.Linear(inner, c["patch_size"] ** 2 * c["out_channels"])
        # one linear map per branch layer onto the backbone's width (zero at the start of VideoPainter's training)
        self.branch_blocks = nn.ModuleList([nn.Linear(inner, inner) for _ in range(int(c["num_layers"]))])
        self.branch_x_embedder = nn.Linear(c["in_channels"], inner)
        for lin in [*self.branch_blocks, self.branch_x_embedder]:
            torch.nn.init.zeros_(lin.weight)
            torch.nn.init.zeros_(lin.bias)

    @property
    def num_layers(self) -> int:
        return len(self.transformer_blocks)

    def forward(self, noisy: Any, masked: Any, mask: Any, text: Any, timestep: Any, rotary: Any = None,
                scale: float = 1.0) -> list[Any]:
        """Per-layer features to add to the backbone.

        Args:
            noisy: ``(B, F, C, h, w)`` noisy latents (scheduler-scaled, without the I2V image latents).
            masked: ``(B, F, C, h, w)`` scaled VAE latents of the masked source video.
            mask: ``(B, F, 1, h, w)`` latent mask, 1 = generated.
            text: ``(B, L, text_embed_dim)`` prompt embeddings (the backbone's).
            timestep: ``(B,)`` timesteps.
            rotary: the backbone's rotary embeddings (cos, sin) or None.
            scale: ``conditioning_scale``.

        Returns:
            ``num_layers`` tensors ``(B, F·h/p·w/p, inner_dim)`` in ``noisy``'s dtype.
        """
        import torch

        emb = self.time_embedding(self.time_proj(timestep).to(dtype=noisy.dtype))
        x = torch.cat([noisy, masked.to(noisy.dtype), mask.to(noisy.dtype)], dim=2)
        tokens = self.embedding_dropout(self.patch_embed(text, x))
        n_text = text.shape[1]
        txt, vid = tokens[:, :n_text], tokens[:, n_text:]
        feats: list[Any] = []
        for block, out in zip(self.transformer_blocks, self.branch_blocks, strict=True):
            vid, txt = block(hidden_states=vid, encoder_hidden_states=txt, temb=emb, image_rotary_emb=rotary)
            feats.append((out(vid) * scale).to(noisy.dtype))
        return feats


def read_branch_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise BackendUnavailableError(
            f"branch folder {str(folder)!r}: expected config.json and {BRANCH_WEIGHTS} (VideoPainter's "
            "checkpoints/branch layout), config.json not found")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BackendUnavailableError(f"branch config {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise BackendUnavailableError(f"branch config {str(path)!r}: expected a JSON object, found {type(cfg)}")
    return cfg


def load_branch(folder: str | Path, dtype: Any = None) -> ContextBranch:
    """Load a branch folder of the published layout with a strict state-dict load.

    Raises:
        BackendUnavailableError: folder, config or weights missing, unknown config fields, or a state dict whose
            names or shapes differ from the config's (the missing / unexpected names are listed).
    """
    import torch
    from safetensors.torch import load_file

    root = Path(folder).expanduser()
    cfg = read_branch_config(root)
    weights = root / BRANCH_WEIGHTS
    if not weights.is_file():
        raise BackendUnavailableError(f"branch folder {str(root)!r}: {BRANCH_WEIGHTS} not found (safetensors "
                                      "only; pickled .bin weights are refused)")
    try:
        model = ContextBranch(cfg)
    except (ValueError, TypeError, KeyError) as exc:
        raise BackendUnavailableError(f"branch config {str(root / 'config.json')!r}: {exc}") from exc
    state = load_file(str(weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BackendUnavailableError(f"branch weights {str(weights)!r} do not match config.json: {exc}") from exc
    return model.to(dtype=dtype or torch.float32).eval()


def random_branch(config: dict[str, Any], seed: int) -> ContextBranch:
    """A branch with seeded random weights (every parameter, the output maps too, so that it changes the result)."""
    torch.manual_seed(seed)
    model = ContextBranch(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            matrix = name.endswith("weight") and p.ndim > 1
            if matrix or name.startswith(("branch_blocks", "branch_x_embedder")):
                torch.nn.init.normal_(p, std=0.02)
    return model.eval()


def background_tokens(mask: Any, patch: int) -> Any:
    """``(B, F, 1, h, w)`` latent mask (1 = generated) → ``(B, F·h/p·w/p, 1)`` bool, True where a ``p x p`` patch
    holds no generated cell (the tokens branch features are added to), in CogVideoX's token order."""
    import torch.nn.functional as F  # noqa: N812

    b, f, _, h, w = mask.shape
    pooled = F.avg_pool2d(mask.reshape(b * f, 1, h, w).float(), kernel_size=patch, stride=patch)
    return (pooled.reshape(b, -1, 1) <= 0)


class IDResampleProcessor:
    """CogVideoX attention that also attends to the previous window's generated-region tokens (ID resampling).

    ``prev`` (set per call by :class:`VideoPainterHook`): ``(B, L_text + L_video, D)`` states of the previous
    window, already normalised by the block's ``norm1``; ``keep``: ``(B, L_text + L_video, 1)`` float, 1 on the
    previous window's generated tokens. Their keys/values are the layer's projections times ``keep · weight``,
    then key-normalised and rotated like the current tokens, and appended to the current keys/values. Without
    ``prev`` it is upstream's ``CogVideoXAttnProcessor2_0``.
    """

    def __init__(self, base: Any, weight: float) -> None:
        self.base = base
        self.weight = weight
        self.prev: Any = None
        self.keep: Any = None

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any, attention_mask: Any = None,
                 image_rotary_emb: Any = None) -> Any:
        if self.prev is None or self.weight <= 0:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask=attention_mask,
                             image_rotary_emb=image_rotary_emb)
        import torch.nn.functional as F  # noqa: N812
        from diffusers.models.embeddings import apply_rotary_emb

        n_text = encoder_hidden_states.size(1)
        x = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        b = x.shape[0]
        heads = attn.heads

        def split(t: Any) -> Any:
            return t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2)

        q, k, v = split(attn.to_q(x)), split(attn.to_k(x)), split(attn.to_v(x))
        gate = (self.keep * self.weight).to(x.dtype)
        prev = self.prev.to(x.dtype)
        pk, pv = split(attn.to_k(prev) * gate), split(attn.to_v(prev) * gate)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k, pk = attn.norm_k(k), attn.norm_k(pk)
        if image_rotary_emb is not None:
            q[:, :, n_text:] = apply_rotary_emb(q[:, :, n_text:], image_rotary_emb)
            k[:, :, n_text:] = apply_rotary_emb(k[:, :, n_text:], image_rotary_emb)
            pk[:, :, n_text:] = apply_rotary_emb(pk[:, :, n_text:], image_rotary_emb)
        out = F.scaled_dot_product_attention(q, torch.cat([k, pk], dim=2), torch.cat([v, pv], dim=2),
                                             dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(b, -1, heads * out.shape[-1])
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, n_text:], out[:, :n_text]


def id_lora_file(path: str) -> Path:
    """The VideoPainterID weights file: ``path`` itself or ``path/pytorch_lora_weights.safetensors``."""
    p = Path(path).expanduser()
    f = p / ID_LORA_WEIGHTS if p.is_dir() else p
    if not f.is_file() or f.suffix != ".safetensors":
        raise BackendUnavailableError(
            f"id_lora {path!r} not found: expected VideoPainterID's {ID_LORA_WEIGHTS} (or the folder holding it)")
    return f


class VideoPainterHook(PropagationHook):
    """Dual-branch denoising (:class:`ContextBranch`) and ID resampling, plugged into the stock CogVideoX I2V
    pipeline through module hooks on its transformer.

    Per window (:meth:`window_kwargs`): the masked video is the window's source frames with the generated pixels
    set to 0 (in ``[-1, 1]``) and frame 0 replaced by the conditioning frame, unmasked (VideoPainter's
    ``first_frame_gt``); it is VAE-encoded, the masks go to the latent grid. Per transformer call (a forward
    pre-hook): the branch runs on the call's noisy latents, prompt embeddings, timesteps and rotary embeddings
    (the CFG batch); after backbone block ``i`` (a forward hook) its feature ``i // ceil(L / L_branch)`` is added
    on background tokens. With ``id_lora``: windows after the first enable the LoRA and attend to the previous
    window's generated tokens (block outputs at its last step, :class:`IDResampleProcessor`); the first window
    runs with the adapter disabled.
    """

    def __init__(self, cfg: GenerativeConfig) -> None:
        self.cfg = cfg
        self.branch: ContextBranch | None = None
        self.pipe: Any = None
        self._ctx: WindowContext | None = None
        self._masked: Any = None
        self._mask: Any = None
        self._feats: list[Any] = []
        self._bg: Any = None
        self._calls = 0
        self._feat_bg: Any = None
        self._resample = False
        self._capture = False
        self.interval = 1
        self._processors: list[IDResampleProcessor] = []
        self._states: dict[int, Any] = {}
        self._prev_states: dict[int, Any] = {}
        self._prev_keep: Any = None
        self._keep: Any = None
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ loading
    def _build(self, pipe: Any) -> ContextBranch:
        cfg = self.cfg
        backbone = dict(pipe.transformer.config)
        src = cfg.branch
        assert src is not None
        if src == "tiny-random":
            return random_branch(branch_config_from_backbone(backbone), cfg.seed + 20)
        if src == "random-init":
            return random_branch(PUBLISHED_BRANCH_CONFIG, cfg.seed + 20)
        return load_branch(src)

    def attach(self, pipe: Any) -> None:
        """Load the branch (and the ID LoRA) for ``pipe`` and register the transformer hooks (idempotent)."""
        if self.pipe is pipe:
            return
        tr = pipe.transformer
        if getattr(tr.config, "patch_size_t", None) is not None:
            raise BackendUnavailableError(
                "edit.generative.branch: VideoPainter's branch fits CogVideoX(-5B-I2V) with 2-D patches; the video "
                f"backbone has temporal patches (patch_size_t={tr.config.patch_size_t}, CogVideoX 1.5)")
        n_backbone = sum(p.numel() for p in tr.parameters())
        branch = self._build(pipe)
        c, bc = tr.config, branch.config
        inner = int(c.num_attention_heads) * int(c.attention_head_dim)
        if (branch.inner_dim, bc["patch_size"], bc["text_embed_dim"]) != (inner, c.patch_size, c.text_embed_dim) \
                or branch_patch_channels(int(bc["in_channels"])) != 2 * int(c.out_channels) + 1:
            raise BackendUnavailableError(
                f"branch {self.cfg.branch!r} does not fit the video backbone: expected width {inner}, patch "
                f"{c.patch_size}, text width {c.text_embed_dim}, {2 * int(c.out_channels) + 1} input channels; "
                f"found width {branch.inner_dim}, patch {bc['patch_size']}, text width {bc['text_embed_dim']}, "
                f"{branch_patch_channels(int(bc['in_channels']))} input channels")
        self.branch = branch.to(dtype=tr.dtype)
        blocks = list(tr.transformer_blocks)
        self.interval = math.ceil(len(blocks) / branch.num_layers)
        if self.cfg.id_lora is not None:
            f = id_lora_file(self.cfg.id_lora)
            try:
                pipe.load_lora_weights(str(f.parent), weight_name=f.name, adapter_name=ADAPTER,
                                       use_safetensors=True)
            except (OSError, ValueError, KeyError) as exc:
                raise BackendUnavailableError(f"could not load VideoPainterID LoRA {str(f)!r}: {exc}") from exc
            tr.disable_lora()
            for block in blocks:
                base = block.attn1.processor
                proc = IDResampleProcessor(base, self.cfg.id_resample_weight)
                block.attn1.set_processor(proc)
                self._processors.append(proc)
        # a submodule of the transformer (added after the LoRA, which must not reach it): it follows the
        # transformer's placement, dtype, parking and diffusers' model CPU offload
        tr.add_module("videopainter_branch", self.branch)
        tr.register_forward_pre_hook(self._before_transformer, with_kwargs=True)
        for i, block in enumerate(blocks):
            block.register_forward_pre_hook(self._before_block(i), with_kwargs=True)
            block.register_forward_hook(self._after_block(i))
        self.pipe = pipe
        n_branch = sum(p.numel() for p in branch.parameters())
        self.info = {
            "source": self.cfg.branch, "layers": branch.num_layers, "scale": self.cfg.branch_scale,
            "params": n_branch, "backbone_params": n_backbone, "param_ratio": round(n_branch / n_backbone, 4),
            "blocks_per_layer": self.interval, "background_tokens_only": True, "id_lora": self.cfg.id_lora,
            "id_resample_weight": self.cfg.id_resample_weight if self.cfg.id_lora else None, "id_windows": [],
        }

    def describe(self) -> dict[str, Any] | None:
        if not self.info:
            return {"source": self.cfg.branch, "id_lora": self.cfg.id_lora}
        return {**self.info, "id_windows": list(self.info["id_windows"])}

    def end_clip(self) -> None:
        """Drop the last window's block outputs (at full size 42 x (2, 17776, 3072) values: ~9 GB in bfloat16)."""
        self._prev_states, self._states, self._prev_keep, self._keep = {}, {}, None, None
        self._ctx, self._feats = None, []

    # ------------------------------------------------------------------------------------------ per window
    def window_kwargs(self, pipe: Any, ctx: WindowContext) -> dict[str, Any]:
        self.attach(pipe)
        frames = ctx.frames.astype(np.float32) / 127.5 - 1.0
        masks = ctx.masks.copy()
        frames[0] = ctx.condition.astype(np.float32) / 127.5 - 1.0
        masks[0] = False  # the conditioning frame is known (VideoPainter's first_frame_gt)
        frames[masks] = 0.0
        device = pipe._execution_device
        self._masked = encode_pixels(pipe, frames).to(device)
        lm = latent_masks(masks, int(pipe.vae_scale_factor_temporal), int(pipe.vae_scale_factor_spatial))
        self._mask = torch.from_numpy(lm.astype(np.float32))[None, :, None].to(device)
        self._bg = background_tokens(self._mask, int(pipe.transformer.config.patch_size))
        if ctx.index == 0:  # a new clip: only its own windows are reported
            self.info["id_windows"] = []
        self._ctx = ctx
        self._calls = 0
        self._states = {}
        resample = bool(self._processors) and ctx.index > 0 and bool(self._prev_states)
        if self._processors:
            if resample:
                pipe.transformer.enable_lora()
                self.info["id_windows"].append(ctx.index)
            else:
                pipe.transformer.disable_lora()
            for proc in self._processors:
                proc.prev, proc.keep = None, None
        self._resample = resample
        return {}

    def _batch(self, t: Any, b: int) -> Any:
        return t if t.shape[0] == b else t.expand(b, *t.shape[1:])

    def _before_transformer(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._ctx is None or self.branch is None:
            return
        hs = kwargs["hidden_states"]
        b, c_lat = hs.shape[0], int(module.config.out_channels)
        if next(self.branch.parameters()).device != hs.device:  # model CPU offload moves it after this hook
            self.branch.to(device=hs.device)
        self._feats = self.branch(hs[:, :, :c_lat], self._batch(self._masked.to(hs.dtype), b),
                                  self._batch(self._mask, b), kwargs["encoder_hidden_states"],
                                  kwargs["timestep"], kwargs.get("image_rotary_emb"), scale=self.cfg.branch_scale)
        self._feat_bg = self._batch(self._bg, b)
        self._capture = bool(self._processors) and self._calls == self._ctx.steps - 1
        self._calls += 1
        if self._capture:
            self._keep = torch_cat_keep(kwargs["encoder_hidden_states"].shape[1], self._feat_bg)
        del args

    def _before_block(self, i: int) -> Any:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not self._resample or i not in self._prev_states:
                return
            prev = self._prev_states[i]
            n_text = kwargs["encoder_hidden_states"].shape[1]
            hs = prev[:, n_text:].to(kwargs["hidden_states"].dtype)
            ehs = prev[:, :n_text].to(kwargs["hidden_states"].dtype)
            nh, ne, _, _ = module.norm1(hs, ehs, kwargs["temb"])
            self._processors[i].prev = torch.cat([ne, nh], dim=1)
            self._processors[i].keep = self._prev_keep
            del args
        return hook

    def _after_block(self, i: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> Any:
            if self._ctx is None or not self._feats:
                return output
            hs, ehs = output
            feat = self._feats[min(i // self.interval, len(self._feats) - 1)]
            hs = hs + feat * self._feat_bg.to(hs.dtype)
            if self._capture:
                self._states[i] = torch.cat([ehs, hs], dim=1).detach()
            del module, args
            return hs, ehs
        return hook

    def on_step_end(self, pipe: Any, ctx: WindowContext, step: int, timestep: Any, latents: Any) -> Any:
        if step == ctx.steps - 1 and self._processors:
            # the last step's block outputs and generated tokens: what the next window resamples
            self._prev_states, self._prev_keep = self._states, self._keep
            self._states = {}
        return latents


def torch_cat_keep(n_text: int, background: Any) -> Any:
    """``(B, n_text + L_video, 1)`` float: 0 on text tokens, 1 on generated (non-background) video tokens."""
    b = background.shape[0]
    text = torch.zeros(b, n_text, 1, device=background.device)
    return torch.cat([text, (~background).float()], dim=1)
