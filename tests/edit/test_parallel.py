"""One clip across several processes (``edit.generative.parallel``) on CPU with gloo: CFG parallel and Ulysses
sequence parallel give the one-process outputs (tiny-random models, real Ray actors and torch.distributed)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("diffusers")

from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative.group import ParallelGroup
from lanepipe.edit.generative.masks import dilate_mask, resize_frame, resize_mask
from lanepipe.edit.generative.parallel import Mesh, install, split_sizes
from lanepipe.errors import ConfigError
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.sample import render_sample
from lanepipe.types import Clip, RoadMasks

SPEC = parse_instruction("double yellow solid")
#: 80x48 at the tiny VAE's 8x and patch 2: 5 x 3 patches x 3 latent frames = 45 video tokens, uneven over 2 ranks
TINY = {"preset": "tiny-random", "seed": 3, "width": 80, "height": 48}


def _tiny_transformer(heads: int = 4) -> object:
    import torch
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(0)
    return CogVideoXTransformer3DModel(
        num_attention_heads=heads, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=4,
        text_embed_dim=16, num_layers=2, sample_width=10, sample_height=6, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=7, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True).eval()


def _rope(frames: int, h: int, w: int, dim: int) -> tuple[object, object]:
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    return get_3d_rotary_pos_embed(embed_dim=dim, crops_coords=((0, 0), (h, w)), grid_size=(h, w),
                                   temporal_size=frames)


def _transformer_rank(rank: int, world: int, port: int, cfg_degree: int, ulysses: int) -> None:
    """One spawned rank: the tiny transformer with and without :func:`install` on the same inputs."""
    import torch
    import torch.distributed as dist

    from lanepipe.edit.generative.parallel import build_mesh

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = _tiny_transformer()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2, 3, 8, 6, 10, generator=g)  # (B, F_lat, C, h, w): 3 x 3 x 5 = 45 tokens
        text = torch.randn(2, 7, 16, generator=g)
        t = torch.tensor([500, 500])
        rope = _rope(3, 3, 5, 16)
        with torch.inference_mode():
            ref = model(hidden_states=x, encoder_hidden_states=text, timestep=t, image_rotary_emb=rope,
                        return_dict=False)[0]
            info = install(model, build_mesh(cfg_degree, ulysses, "gloo"))
            out = model(hidden_states=x, encoder_hidden_states=text, timestep=t, image_rotary_emb=rope,
                        return_dict=False)[0]
        assert info["heads_per_rank" if ulysses > 1 else "cfg"] == (4 // ulysses if ulysses > 1 else cfg_degree)
        assert out.shape == ref.shape
        err = float((out - ref).norm() / ref.norm())
        assert err < 1e-5, f"rank {rank}: relative error {err} against the one-process transformer"
    finally:
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_transformer_cfg_and_ulysses_equal_one_process() -> None:
    """cfg=2 x ulysses=2 (4 gloo ranks, 45 tokens split 23/22, 2 of 4 heads per rank) = the plain transformer."""
    import torch.multiprocessing as mp

    mp.spawn(_transformer_rank, args=(4, _port(), 2, 2), nprocs=4, join=True)


def test_split_sizes_and_bad_degree() -> None:
    assert split_sizes(17550, 4) == [4388, 4388, 4387, 4387]  # CogVideoX-5B at 720x480, 49 frames
    assert split_sizes(45, 2) == [23, 22]
    model = _tiny_transformer(heads=4)
    # no process group needed: the head count is checked before any collective
    with pytest.raises(ConfigError, match=r"edit\.generative\.parallel\.ulysses=3 must divide .* 4 attention heads"):
        install(model, Mesh(rank=0, world=3, cfg_degree=1, ulysses_degree=3, backend="gloo"))


def test_config_refuses_what_cannot_split() -> None:
    with pytest.raises(ValidationError, match=r"parallel\.cfg=2 .* video_guidance > 1"):
        GenerativeConfig(preset="tiny-random", video_guidance=1.0, parallel={"cfg": 2})
    with pytest.raises(ValidationError, match=r"parallel\.ulysses > 1 .* branch"):
        GenerativeConfig(preset="tiny-random", branch="tiny-random", parallel={"ulysses": 2})
    with pytest.raises(ConfigError, match="a group needs cfg x ulysses >= 2"):
        ParallelGroup(GenerativeConfig(preset="tiny-random"), GenerativePainter)
    assert GenerativeConfig(parallel={"cfg": 2, "ulysses": 4}).parallel.world == 8


@pytest.fixture(scope="module")
def sample() -> tuple[Clip, RoadMasks]:
    s = render_sample(num_frames=9, width=96, height=64)
    return s.to_clip(), RoadMasks(s.road_masks, "gt")


@pytest.fixture(scope="module")
def reference(sample):
    """One process: the first frame, the propagated clip and the window's final latents."""
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(**TINY))
    first = painter.first_frame(clip, masks, SPEC.caption())
    res = painter.propagate(clip, masks, first, SPEC.caption())
    window = _window(painter.cfg, clip, masks, first)
    latents, _ = painter.propagate_window(*window, SPEC.caption(), 11, output_type="latent")
    return first, res, window, latents.numpy()


def _window(cfg: GenerativeConfig, clip: Clip, masks: RoadMasks, first: np.ndarray) -> tuple[np.ndarray, ...]:
    w, h = cfg.width, cfg.height
    frames = np.stack([resize_frame(f, w, h) for f in clip.frames])
    gen = np.stack([dilate_mask(resize_mask(m, w, h), cfg.mask_dilate_px) for m in masks.masks])
    return frames, gen, resize_frame(first, w, h)


@pytest.mark.ray
@pytest.mark.parametrize("degrees", [{"cfg": 2}, {"ulysses": 2}], ids=["cfg2", "ulysses2"])
def test_group_equals_one_process(ray_local, sample, reference, degrees) -> None:
    """Two Ray actors (gloo) through the painter's own entry point give the one-process clip and latents."""
    clip, masks = sample
    first, ref, window, ref_latents = reference
    painter = GenerativePainter(GenerativeConfig(**TINY, parallel={**degrees, "worker_cpus": 0.5}))
    try:
        res = painter.propagate(clip, masks, first, SPEC.caption())  # delegated to the group
        assert painter.group is not None and painter._video is None  # the caller loaded no CogVideoX
        diag = res.diagnostics["parallel"]
        assert [r["rank"] for r in diag["ranks"]] == [0, 1] and diag["backend"] == "gloo"
        assert (diag["cfg"], diag["ulysses"]) == (degrees.get("cfg", 1), degrees.get("ulysses", 1))
        assert res.frames.shape == ref.frames.shape
        diff = np.abs(res.frames.astype(np.int16) - ref.frames.astype(np.int16))
        assert diff.max() <= 1 and diff.mean() < 0.01  # uint8 rounding of float32-equal frames
        latents = painter.group.window(*window, SPEC.caption(), 11)
        err = np.linalg.norm(latents - ref_latents) / np.linalg.norm(ref_latents)
        assert err < 1e-5, f"relative error {err} of the group's latents against one process"
    finally:
        if painter.group is not None:
            painter.group.close()


@pytest.mark.ray
def test_group_bad_degree_names_the_setting(ray_local, sample, reference) -> None:
    """ulysses=3 over the tiny model's 2 heads: every rank refuses at setup, the group closes, the caller gets the
    rank's ConfigError (not a hang in a collective)."""
    clip, masks = sample
    first = reference[0]
    painter = GenerativePainter(GenerativeConfig(**TINY, parallel={"ulysses": 3, "worker_cpus": 0.5}))
    with pytest.raises(ConfigError, match=r"edit\.generative\.parallel\.ulysses=3 must divide .* 2 attention heads"):
        painter.propagate(clip, masks, first, SPEC.caption())
    assert painter.group is not None and painter.group.closed
