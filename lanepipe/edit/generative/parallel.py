"""One clip's CogVideoX propagation across several processes: CFG parallel x Ulysses sequence parallel.

``edit.generative.parallel`` (:class:`~lanepipe.edit.config.ParallelConfig`) asks for ``cfg x ulysses`` ranks; a
group of Ray actors (:mod:`~lanepipe.edit.generative.group`) joins one ``torch.distributed`` process group and
:func:`install` changes each rank's CogVideoX transformer in place so that the ranks share every denoising step:

* **CFG parallel** (``cfg=2``): the pipeline calls the transformer on a batch of 2B (unconditional, conditional
  halves, diffusers' ``CogVideoXImageToVideoPipeline``); rank group ``c`` keeps half ``c`` of every batched input
  (a forward pre-hook on the transformer), and the halves' noise predictions are exchanged with an ``all_gather``
  (a forward hook), so every rank holds the whole 2B prediction and the pipeline's guidance and scheduler step
  give the same latents on every rank. Text encoding, VAE encode/decode and the scheduler run on every rank
  (replicated: a few seconds of a clip that the ranks spend at the same time, not one after another).
* **Ulysses sequence parallel** (``ulysses=u``): inside one CFG group the video tokens are split along the
  sequence after the patch embedding (a forward hook on ``patch_embed``; rank ``j`` keeps the ``j``-th of ``u``
  near-equal runs, uneven when the token count is not a multiple of ``u``: 17,550 tokens at 720x480, 49 frames);
  every block then runs on that shard. Only attention needs the whole sequence: :class:`UlyssesAttnProcessor`
  projects its shard to query/key/value for all heads, an all-to-all turns "my tokens, all heads" into "all
  tokens, my ``heads / u`` heads", attention runs on the full sequence for those heads, and a second all-to-all
  turns the result back. CogVideoX's 226 text tokens stay whole on every rank (a replicated prefix: 1.3 % of the
  sequence): each rank attends with its heads' slice of them and the text outputs of all heads are gathered
  (``all_gather``) so the text stream stays identical on every rank. Rotary embeddings (video tokens only) are
  applied after the first all-to-all, on the full sequence. The shards are gathered again after ``proj_out`` (the
  narrowest tensor: ``p * p * C_out`` = 64 channels) so unpatchify and the pipeline see the full prediction.

Communication per block and rank (B = batch per CFG group, L = video tokens, H heads of size D, bf16): all-to-all
of q/k/v ``3 * B * L * H * D * 2 * (u - 1) / u**2`` bytes and of the output ``1/3`` of that; 42 blocks x
(4 all-to-alls + 1 small text all_gather) per step. Cost to know: the attention heads must divide by ``u``
(48 for CogVideoX-5B: u in 1, 2, 3, 4, 6, 8, ...), checked by :func:`install` with an error naming the setting.

The math is that of diffusers' ``CogVideoXAttnProcessor2_0`` (scaled dot-product attention over the joint
text + video sequence, rotary embedding on video queries/keys, ``norm_q`` / ``norm_k`` per head); only the
placement differs, so outputs equal the one-process outputs up to floating-point reassociation (GEMMs on fewer
rows). Written for diffusers 0.42's CogVideoX transformer (``CogVideoXTransformer3DModel``: ``patch_embed``,
``transformer_blocks[i].attn1``, ``proj_out``) from reading its source; not supported here: attention masks
(CogVideoX passes none) and the VideoPainter branch with ``ulysses > 1`` (its per-token features assume the full
sequence; the config refuses the combination).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lanepipe.errors import ConfigError

#: The process-wide mesh of a rank inside a parallel group (:func:`set_mesh`): ``{"mesh": Mesh}`` or empty.
_MESH: dict[str, Mesh] = {}


@dataclass
class Mesh:
    """This rank's place in a ``cfg x ulysses`` group of ``torch.distributed`` ranks.

    Rank ``r`` belongs to CFG group ``r // ulysses`` (the batch half it computes) and holds sequence shard
    ``r % ulysses`` inside it. ``cfg_group``: the ranks with the same shard index (exchange noise predictions);
    ``ulysses_group``: the ranks with the same CFG index (exchange tokens and heads). A group of one rank is None.
    """

    rank: int
    world: int
    cfg_degree: int
    ulysses_degree: int
    backend: str
    cfg_group: Any = None
    ulysses_group: Any = None

    @property
    def cfg_index(self) -> int:
        return self.rank // self.ulysses_degree

    @property
    def ulysses_index(self) -> int:
        return self.rank % self.ulysses_degree

    def describe(self) -> dict[str, Any]:
        return {"rank": self.rank, "world": self.world, "cfg": self.cfg_degree, "ulysses": self.ulysses_degree,
                "backend": self.backend}


def build_mesh(cfg_degree: int, ulysses_degree: int, backend: str) -> Mesh:
    """Split the initialised default process group into CFG and Ulysses sub-groups (every rank must call this,
    in the same order: ``new_group`` is collective).

    Raises:
        ConfigError: the process group's size is not ``cfg_degree * ulysses_degree``.
    """
    import torch.distributed as dist

    world, rank = dist.get_world_size(), dist.get_rank()
    if world != cfg_degree * ulysses_degree:
        raise ConfigError(f"edit.generative.parallel: cfg={cfg_degree} x ulysses={ulysses_degree} needs "
                          f"{cfg_degree * ulysses_degree} ranks, the process group has {world}")
    mesh = Mesh(rank=rank, world=world, cfg_degree=cfg_degree, ulysses_degree=ulysses_degree, backend=backend)
    for c in range(cfg_degree):  # ranks c*u .. c*u + u - 1 share CFG index c
        ranks = list(range(c * ulysses_degree, (c + 1) * ulysses_degree))
        g = dist.new_group(ranks) if ulysses_degree > 1 else None
        if rank in ranks:
            mesh.ulysses_group = g
    for j in range(ulysses_degree):  # ranks j, j+u, ... share shard index j
        ranks = list(range(j, world, ulysses_degree))
        g = dist.new_group(ranks) if cfg_degree > 1 else None
        if rank in ranks:
            mesh.cfg_group = g
    return mesh


def set_mesh(mesh: Mesh | None) -> None:
    """Mark this process as a rank of a parallel group (the painter then installs :func:`install`)."""
    _MESH.clear()
    if mesh is not None:
        _MESH["mesh"] = mesh


def current_mesh() -> Mesh | None:
    """This process's mesh when it is a rank of a parallel group, else None."""
    return _MESH.get("mesh")


def split_sizes(n: int, parts: int) -> list[int]:
    """``n`` items in ``parts`` contiguous runs differing by at most one (the first ``n % parts`` one longer)."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def check_heads(heads: int, ulysses: int) -> None:
    """Raise :class:`ConfigError` naming ``edit.generative.parallel.ulysses`` unless it divides ``heads``."""
    if heads % ulysses:
        ok = [d for d in range(1, heads + 1) if heads % d == 0]
        raise ConfigError(f"edit.generative.parallel.ulysses={ulysses} must divide the CogVideoX transformer's "
                          f"{heads} attention heads (Ulysses gives each rank heads/ulysses heads); choose one of {ok}")


# ============================================================================================== collectives
def seq_to_heads(x: Any, sizes: list[int], group: Any) -> Any:
    """All-to-all ``(S_local, N, H, D)`` (my tokens, all heads) → ``(S, N, H/u, D)`` (all tokens, my heads).

    ``sizes``: every rank's token count, in rank order (their sum is ``S``).
    """
    import torch
    import torch.distributed as dist

    u = len(sizes)
    s_loc, n, h, d = x.shape
    send = x.reshape(s_loc, n, u, h // u, d).permute(2, 0, 1, 3, 4).contiguous().reshape(u * s_loc, n, h // u, d)
    out = torch.empty((sum(sizes), n, h // u, d), dtype=x.dtype, device=x.device)
    dist.all_to_all_single(out, send, output_split_sizes=list(sizes), input_split_sizes=[s_loc] * u, group=group)
    return out


def heads_to_seq(y: Any, sizes: list[int], index: int, group: Any) -> Any:
    """All-to-all ``(S, N, H/u, D)`` (all tokens, my heads) → ``(S_local, N, H, D)`` (my tokens, all heads)."""
    import torch
    import torch.distributed as dist

    u = len(sizes)
    _, n, hu, d = y.shape
    s_loc = sizes[index]
    out = torch.empty((u * s_loc, n, hu, d), dtype=y.dtype, device=y.device)
    dist.all_to_all_single(out, y.contiguous(), output_split_sizes=[s_loc] * u, input_split_sizes=list(sizes),
                           group=group)
    return out.reshape(u, s_loc, n, hu, d).permute(1, 2, 0, 3, 4).reshape(s_loc, n, u * hu, d)


def gather_dim(x: Any, dim: int, group: Any, sizes: list[int] | None = None) -> Any:
    """``all_gather`` of ``x`` along ``dim`` in rank order; ``sizes`` (per rank) allows uneven lengths (padded
    to the longest for the collective, trimmed after)."""
    import torch
    import torch.distributed as dist

    n = dist.get_world_size(group)
    if sizes is None:
        parts = [torch.empty_like(x) for _ in range(n)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=dim)
    longest = max(sizes)
    pad = list(x.shape)
    pad[dim] = longest - x.shape[dim]
    xp = torch.cat([x, x.new_zeros(pad)], dim=dim) if pad[dim] else x
    parts = [torch.empty_like(xp) for _ in range(n)]
    dist.all_gather(parts, xp.contiguous(), group=group)
    return torch.cat([p.narrow(dim, 0, s) for p, s in zip(parts, sizes, strict=True)], dim=dim)


# ============================================================================================== attention
@dataclass
class ShardState:
    """Set by the patch-embedding hook on every forward: how the video tokens are split over the Ulysses group."""

    sizes: list[int] = field(default_factory=list)


class UlyssesAttnProcessor:
    """CogVideoX joint attention with the video tokens split over the ranks of ``mesh.ulysses_group``.

    Called like diffusers' ``CogVideoXAttnProcessor2_0``: ``hidden_states`` are this rank's ``(B, S_local, C)``
    video tokens, ``encoder_hidden_states`` the whole ``(B, T, C)`` text (same on every rank),
    ``image_rotary_emb`` the ``(cos, sin)`` tables of the whole video sequence. Returns ``(video, text)`` outputs:
    this rank's video tokens, and the whole text (same on every rank). Handles fused q/k/v projections
    (``fuse_qkv``).
    """

    def __init__(self, mesh: Mesh, state: ShardState) -> None:
        self.mesh, self.state = mesh, state

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any, attention_mask: Any = None,
                 image_rotary_emb: Any = None) -> Any:
        import torch
        from diffusers.models.embeddings import apply_rotary_emb
        from torch.nn.functional import scaled_dot_product_attention

        if attention_mask is not None:
            raise ConfigError("edit.generative.parallel.ulysses > 1 does not support attention masks (CogVideoX "
                              "passes none; a hook or model that does cannot run sequence-parallel)")
        group, sizes, j = self.mesh.ulysses_group, self.state.sizes, self.mesh.ulysses_index
        u = self.mesh.ulysses_degree
        n_text = encoder_hidden_states.size(1)
        x = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        b, length, _ = x.shape
        if getattr(attn, "fused_projections", False) and hasattr(attn, "to_qkv"):
            q, k, v = attn.to_qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        h = attn.heads
        d = q.shape[-1] // h
        hu = h // u
        qkv = torch.stack([q, k, v]).view(3, b, length, h, d)  # (3, B, T + S_local, H, D)
        if attn.norm_q is not None:  # LayerNorm over D: per head and token, as in the stock processor
            qkv[0] = attn.norm_q(qkv[0])
        if attn.norm_k is not None:
            qkv[1] = attn.norm_k(qkv[1])
        text = qkv[:, :, :n_text, j * hu:(j + 1) * hu]  # (3, B, T, H/u, D): my heads of the replicated text
        video = qkv[:, :, n_text:].permute(2, 0, 1, 3, 4).reshape(-1, 3 * b, h, d)  # (S_local, 3B, H, D)
        video = seq_to_heads(video, sizes, group)  # (S, 3B, H/u, D)
        video = video.reshape(-1, 3, b, hu, d).permute(1, 2, 3, 0, 4)  # (3, B, H/u, S, D)
        full = torch.cat([text.permute(0, 1, 3, 2, 4), video], dim=3)  # (3, B, H/u, T + S, D)
        query, key, value = full[0], full[1], full[2]
        if image_rotary_emb is not None:
            rotate: Any = apply_rotary_emb  # returns one tensor for CogVideoX's real (cos, sin) tables
            query[:, :, n_text:] = rotate(query[:, :, n_text:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, n_text:] = rotate(key[:, :, n_text:], image_rotary_emb)
        out = scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)  # (B, H/u, T+S, D)
        text_out = gather_dim(out[:, :, :n_text].contiguous(), 1, group)  # (B, H, T, D), heads in rank order
        text_out = text_out.transpose(1, 2).reshape(b, n_text, h * d)
        video_out = heads_to_seq(out[:, :, n_text:].permute(2, 0, 1, 3), sizes, j, group)  # (S_local, B, H, D)
        video_out = video_out.permute(1, 0, 2, 3).reshape(b, -1, h * d)
        y = attn.to_out[1](attn.to_out[0](torch.cat([text_out, video_out], dim=1)))
        return y[:, n_text:], y[:, :n_text]


# ============================================================================================== installation
def _batched(value: Any, batch: int) -> bool:
    return hasattr(value, "shape") and len(value.shape) > 0 and value.shape[0] == batch


def install(transformer: Any, mesh: Mesh) -> dict[str, Any]:
    """Make ``transformer`` (a diffusers ``CogVideoXTransformer3DModel``) compute its share on this rank.

    Installs the CFG pre-hook / gather hook (``mesh.cfg_degree > 1``) and the sequence split, gather and
    :class:`UlyssesAttnProcessor` on every block (``mesh.ulysses_degree > 1``). Call after anything else that sets
    attention processors (``video_accel``), on every rank.

    Returns:
        what was installed (JSON-ready), for the painter's diagnostics.

    Raises:
        ConfigError: ``ulysses`` does not divide the heads, or the transformer is not CogVideoX-shaped.
    """
    info: dict[str, Any] = mesh.describe()
    if mesh.cfg_degree > 1:
        _install_cfg(transformer, mesh)
    if mesh.ulysses_degree > 1:
        blocks = getattr(transformer, "transformer_blocks", None)
        if blocks is None or not hasattr(transformer, "patch_embed") or not hasattr(transformer, "proj_out"):
            raise ConfigError("edit.generative.parallel.ulysses > 1 needs a CogVideoX transformer (patch_embed, "
                              f"transformer_blocks, proj_out); got {type(transformer).__name__}")
        heads = int(transformer.config.num_attention_heads)
        check_heads(heads, mesh.ulysses_degree)
        state = ShardState()
        _install_sequence_split(transformer, mesh, state)
        processor = UlyssesAttnProcessor(mesh, state)
        for block in blocks:
            block.attn1.set_processor(processor)
        info.update(heads=heads, heads_per_rank=heads // mesh.ulysses_degree, blocks=len(blocks))
    return info


def _install_cfg(transformer: Any, mesh: Mesh) -> None:
    """Batch split before the transformer (first of its pre-hooks), prediction all_gather after it."""
    import torch

    seen: dict[str, int] = {}

    def before(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        hs = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        batch = int(hs.shape[0])
        if batch % mesh.cfg_degree:
            raise ConfigError(f"edit.generative.parallel.cfg={mesh.cfg_degree} splits the transformer's batch, "
                              f"which has {batch} rows (classifier-free guidance off?)")
        part = batch // mesh.cfg_degree
        lo = mesh.cfg_index * part
        seen["batch"] = batch

        def take(v: Any) -> Any:
            return v[lo:lo + part] if isinstance(v, torch.Tensor) and _batched(v, batch) else v

        del module
        return tuple(take(a) for a in args), {k: take(v) for k, v in kwargs.items()}

    def after(module: Any, args: Any, output: Any) -> Any:
        del module, args
        sample = output[0] if isinstance(output, tuple) else output.sample
        whole = gather_dim(sample, 0, mesh.cfg_group)
        if isinstance(output, tuple):
            return (whole, *output[1:])
        output.sample = whole
        return output

    transformer.register_forward_pre_hook(before, with_kwargs=True, prepend=True)
    transformer.register_forward_hook(after)


def _install_sequence_split(transformer: Any, mesh: Mesh, state: ShardState) -> None:
    """Keep this rank's video tokens after ``patch_embed``; gather all of them after ``proj_out``."""
    import torch

    def split(module: Any, args: tuple[Any, ...], output: Any) -> Any:
        n_text = int(args[0].shape[1])  # patch_embed(text_embeds, image_embeds)
        video = output[:, n_text:]
        state.sizes = split_sizes(int(video.shape[1]), mesh.ulysses_degree)
        start = sum(state.sizes[:mesh.ulysses_index])
        del module
        return torch.cat([output[:, :n_text], video[:, start:start + state.sizes[mesh.ulysses_index]]], dim=1)

    def gather(module: Any, args: Any, output: Any) -> Any:
        del module, args
        return gather_dim(output, 1, mesh.ulysses_group, state.sizes)

    transformer.patch_embed.register_forward_hook(split)
    transformer.proj_out.register_forward_hook(gather)
