"""VideoPainter's context branch and ID-resampling LoRA in the flux_cogvideox backend, at tiny size.

The checkpoints written here follow the *published* layouts (TencentARC/VideoPainter: ``checkpoints/branch`` as
saved by its ``CogvideoXBranchModel``, ``VideoPainterID/checkpoints/pytorch_lora_weights.safetensors`` as saved by
``CogVideoXPipeline.save_lora_weights``). Their key names and shapes are derived below from the published config's
structure, independently of :mod:`lanepipe.edit.generative.branch`, so that a naming mismatch fails the strict load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")

import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative.branch import PUBLISHED_BRANCH_CONFIG, background_tokens, load_branch
from lanepipe.errors import BackendUnavailableError
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.sample import render_sample
from lanepipe.types import Clip, RoadMasks

SPEC = parse_instruction("single white solid")

#: The fields of ``checkpoints/branch/config.json`` (the published branch: CogVideoX-5B-I2V's transformer config,
#: ``num_layers`` 2, plus the fork's ``wo_text`` / ``id_pool_resample_learnable``), written out here by hand.
PUBLISHED_FIELDS = {
    "_class_name": "CogvideoXBranchModel", "_diffusers_version": "0.32.0.dev0", "activation_fn": "gelu-approximate",
    "attention_bias": True, "attention_head_dim": 64, "dropout": 0.0, "flip_sin_to_cos": True, "freq_shift": 0,
    "id_pool_resample_learnable": False, "in_channels": 32, "max_text_seq_length": 226,
    "norm_elementwise_affine": True, "norm_eps": 1e-05, "num_attention_heads": 48, "num_layers": 2,
    "out_channels": 16, "patch_size": 2, "sample_frames": 49, "sample_height": 60, "sample_width": 90,
    "spatial_interpolation_scale": 1.875, "temporal_compression_ratio": 4, "temporal_interpolation_scale": 1.0,
    "text_embed_dim": 4096, "time_embed_dim": 512, "timestep_activation_fn": "silu",
    "use_learned_positional_embeddings": True, "use_rotary_positional_embeddings": True, "wo_text": False,
}


def tiny_published_config(**sizes: Any) -> dict[str, Any]:
    """The published config with tiny sizes (the same fields, smaller numbers)."""
    small = {"attention_head_dim": 16, "num_attention_heads": 2, "in_channels": 8, "out_channels": 4,
             "text_embed_dim": 32, "time_embed_dim": 4, "sample_width": 8, "sample_height": 6, "sample_frames": 9,
             "max_text_seq_length": 16}
    return {**PUBLISHED_FIELDS, **small, **sizes}


def published_branch_shapes(c: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of ``CogvideoXBranchModel`` for config ``c`` (read off the fork's module tree:
    patch embed, time embedding, CogVideoX blocks, final norms and projection, branch_blocks, branch_x_embedder)."""
    d = c["num_attention_heads"] * c["attention_head_dim"]
    e, p, hd = c["time_embed_dim"], c["patch_size"], c["attention_head_dim"]
    cin = c["in_channels"] * 2 + 1 if c["in_channels"] == 16 else c["in_channels"] + 1
    frames = (c["sample_frames"] - 1) // c["temporal_compression_ratio"] + 1
    tokens = c["max_text_seq_length"] + frames * (c["sample_height"] // p) * (c["sample_width"] // p)
    s: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (d, cin, p, p), "patch_embed.proj.bias": (d,),
        "patch_embed.text_proj.weight": (d, c["text_embed_dim"]), "patch_embed.text_proj.bias": (d,),
        "time_embedding.linear_1.weight": (e, d), "time_embedding.linear_1.bias": (e,),
        "time_embedding.linear_2.weight": (e, e), "time_embedding.linear_2.bias": (e,),
        "norm_final.weight": (d,), "norm_final.bias": (d,),
        "norm_out.linear.weight": (2 * d, e), "norm_out.linear.bias": (2 * d,),
        "norm_out.norm.weight": (d,), "norm_out.norm.bias": (d,),
        "proj_out.weight": (p * p * c["out_channels"], d), "proj_out.bias": (p * p * c["out_channels"],),
        "branch_x_embedder.weight": (d, c["in_channels"]), "branch_x_embedder.bias": (d,),
    }
    if c["use_learned_positional_embeddings"]:
        s["patch_embed.pos_embedding"] = (1, tokens, d)
    for i in range(c["num_layers"]):
        b = f"transformer_blocks.{i}."
        for n in ("norm1", "norm2"):
            s |= {b + n + ".linear.weight": (6 * d, e), b + n + ".linear.bias": (6 * d,),
                  b + n + ".norm.weight": (d,), b + n + ".norm.bias": (d,)}
        for n in ("norm_q", "norm_k"):
            s |= {b + f"attn1.{n}.weight": (hd,), b + f"attn1.{n}.bias": (hd,)}
        for n in ("to_q", "to_k", "to_v", "to_out.0"):
            s |= {b + f"attn1.{n}.weight": (d, d), b + f"attn1.{n}.bias": (d,)}
        s |= {b + "ff.net.0.proj.weight": (4 * d, d), b + "ff.net.0.proj.bias": (4 * d,),
              b + "ff.net.2.weight": (d, 4 * d), b + "ff.net.2.bias": (d,)}
        s |= {f"branch_blocks.{i}.weight": (d, d), f"branch_blocks.{i}.bias": (d,)}
    return s


def write_published_branch(folder: Path, c: dict[str, Any], seed: int = 0,
                           drop: str | None = None, extra: str | None = None) -> dict[str, torch.Tensor]:
    """A ``checkpoints/branch`` folder: config.json + diffusion_pytorch_model.safetensors (random weights)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=g) * 0.05 for k, shape in published_branch_shapes(c).items()}
    if drop:
        state.pop(drop)
    if extra:
        state[extra] = torch.zeros(3)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(c, indent=2))
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    return state


def write_published_id_lora(path: Path, layers: int, dim: int, rank: int = 4, seed: int = 1) -> Path:
    """VideoPainterID's ``pytorch_lora_weights.safetensors``: peft LoRA on each block's attention projections,
    keys prefixed ``transformer.`` (``CogVideoXPipeline.save_lora_weights``)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i in range(layers):
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            k = f"transformer.transformer_blocks.{i}.attn1.{proj}"
            state[f"{k}.lora_A.weight"] = torch.randn(rank, dim, generator=g) * 0.3
            state[f"{k}.lora_B.weight"] = torch.randn(dim, rank, generator=g) * 0.3
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def sample() -> tuple[Clip, RoadMasks]:
    s = render_sample(num_frames=9, width=96, height=64)
    return s.to_clip(), RoadMasks(s.road_masks, "gt")


def propagate(cfg: GenerativeConfig, clip: Clip, masks: RoadMasks, painter: GenerativePainter | None = None) -> Any:
    """CogVideoX propagation of the clip's own first frame (the FLUX step is not what these tests are about)."""
    painter = painter or GenerativePainter(cfg)
    return painter.propagate(clip, masks, clip.frames[0], SPEC.caption(), spec=SPEC)


@pytest.fixture(scope="module")
def plain(sample):
    clip, masks = sample
    return propagate(GenerativeConfig(preset="tiny-random", seed=3), clip, masks)


def test_published_config_is_the_5b_i2v_backbone_with_two_layers() -> None:
    bookkeeping = {"_class_name", "_diffusers_version"}
    assert {k: v for k, v in PUBLISHED_FIELDS.items() if k not in bookkeeping} == PUBLISHED_BRANCH_CONFIG


@pytest.mark.parametrize("in_channels", [8, 16])
def test_strict_load_of_the_published_layout(tmp_path: Path, in_channels: int) -> None:
    c = tiny_published_config(in_channels=in_channels)
    written = write_published_branch(tmp_path / "branch", c)
    model = load_branch(tmp_path / "branch")
    own = model.state_dict()
    assert set(own) == set(written)
    for k, v in written.items():
        assert torch.equal(own[k], v), k
    with pytest.raises(BackendUnavailableError, match="Missing key"):
        write_published_branch(tmp_path / "missing", c, drop="branch_blocks.1.weight")
        load_branch(tmp_path / "missing")
    with pytest.raises(BackendUnavailableError, match="Unexpected key"):
        write_published_branch(tmp_path / "extra", c, extra="controlnet_x_embedder.weight")
        load_branch(tmp_path / "extra")


def test_bad_branch_folders(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"config.json not found"):
        load_branch(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(tiny_published_config(new_field=1)))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(BackendUnavailableError, match=r"unknown fields.*new_field"):
        load_branch(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(tiny_published_config()))
    (tmp_path / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(BackendUnavailableError, match=r"diffusion_pytorch_model.safetensors not found"):
        load_branch(tmp_path)


def test_background_tokens_follow_cogvideox_token_order() -> None:
    m = torch.zeros(1, 2, 1, 4, 6)
    m[0, 1, 0, 3, 5] = 1.0  # last cell of frame 1 -> last 2x2 patch of frame 1 (token 2·3 + 5 = 11)
    bg = background_tokens(m, 2)[0, :, 0]
    assert bg.shape == (12,) and not bg[11] and bool(bg[:11].all())


def test_branch_changes_output_inside_the_mask_only(sample, plain, tmp_path: Path) -> None:
    clip, masks = sample
    res = propagate(GenerativeConfig(preset="tiny-random", seed=3, branch="tiny-random"), clip, masks)
    road = masks.masks
    np.testing.assert_array_equal(res.frames[~road], clip.frames[~road])
    assert (res.frames[1:][road[1:]] != plain.frames[1:][road[1:]]).mean() > 0.1
    info = res.diagnostics["branch"]
    assert info["source"] == "tiny-random" and info["layers"] == 2 and info["id_lora"] is None
    assert plain.diagnostics["branch"] is None and "VideoPainterHook" in res.diagnostics["hooks"]

    # a folder in the published layout sized for the tiny backbone runs too; its weights matter
    c = tiny_published_config(sample_width=64 // 8, sample_height=48 // 8)
    write_published_branch(tmp_path / "b", c, seed=5)
    folder = propagate(GenerativeConfig(preset="tiny-random", seed=3, branch=str(tmp_path / "b")), clip, masks)
    np.testing.assert_array_equal(folder.frames[~road], clip.frames[~road])
    assert (folder.frames[1:][road[1:]] != res.frames[1:][road[1:]]).any()
    assert (folder.frames[1:][road[1:]] != plain.frames[1:][road[1:]]).any()


def test_branch_that_does_not_fit_the_backbone(sample, tmp_path: Path) -> None:
    clip, masks = sample
    write_published_branch(tmp_path / "b", tiny_published_config(num_attention_heads=3))
    with pytest.raises(BackendUnavailableError, match="does not fit the video backbone"):
        propagate(GenerativeConfig(preset="tiny-random", branch=str(tmp_path / "b")), clip, masks)


def test_id_lora_acts_on_windows_after_the_first(tmp_path: Path) -> None:
    s = render_sample(num_frames=12, width=96, height=64)
    clip, masks = s.to_clip(), RoadMasks(s.road_masks, "gt")
    lora = write_published_id_lora(tmp_path / "VideoPainterID" / "checkpoints" / "pytorch_lora_weights.safetensors",
                                   layers=1, dim=32)
    base = GenerativeConfig(preset="tiny-random", seed=3, branch="tiny-random")
    without = propagate(base, clip, masks)
    painter = GenerativePainter(base.model_copy(update={"id_lora": str(lora.parent)}))
    res = propagate(painter.cfg, clip, masks, painter)
    assert res.diagnostics["windows"] == 2
    info = res.diagnostics["branch"]
    assert info["id_windows"] == [1] and info["id_lora"] == str(lora.parent) and info["id_resample_weight"] == 0.5
    road = masks.masks
    np.testing.assert_array_equal(res.frames[:9], without.frames[:9])  # window 0: no adapter
    assert (res.frames[9:][road[9:]] != without.frames[9:][road[9:]]).any()
    np.testing.assert_array_equal(res.frames[~road], clip.frames[~road])
    assert painter._video.transformer.peft_config  # the adapter is loaded through diffusers/peft
    again = propagate(painter.cfg, clip, masks, painter)  # the next clip starts afresh (no state from the last one)
    np.testing.assert_array_equal(again.frames, res.frames)
    assert again.diagnostics["branch"]["id_windows"] == [1]


def test_id_lora_config_checks(tmp_path: Path, sample) -> None:
    with pytest.raises(ValidationError, match=r"set edit.generative.branch"):
        GenerativeConfig(id_lora="VideoPainterID/checkpoints")
    with pytest.raises(ValidationError, match="pickled"):
        GenerativeConfig(branch="random-init", id_lora="lora.bin")
    clip, masks = sample
    cfg = GenerativeConfig(preset="tiny-random", branch="tiny-random", id_lora=str(tmp_path / "none"))
    with pytest.raises(BackendUnavailableError, match=r"pytorch_lora_weights.safetensors"):
        propagate(cfg, clip, masks)


def test_cli_run_with_the_branch_on_a_real_clip_through_ray(ray_local, tmp_path: Path, real_clip: Path) -> None:
    """The issue's command, through the Ray edit actor, on a real dashcam clip (4 frames)."""
    import pandas as pd
    from typer.testing import CliRunner

    from lanepipe.cli import app

    sets = ["edit.backend=flux_cogvideox", "edit.preset=tiny-random", "edit.generative.branch=tiny-random",
            "input.max_frames=4", "edit.qa.max_iterations=1"]
    res = CliRunner().invoke(app, ["run", "--stages", "segment,edit", "-e", "single white solid", "-i",
                                   str(real_clip), "-o", str(tmp_path), "--run-id", "vp",
                                   *[a for s in sets for a in ("--set", s)]])
    assert res.exit_code == 0, res.output
    run = tmp_path / "vp"
    row = pd.read_parquet(run / "results.parquet").query("stage == 'edit'").iloc[0]
    assert row.status == "ok", row.error
    d = next((run / "edit").iterdir()) / "single-white-solid"
    meta = json.loads((d / "meta.json").read_text())
    branch = json.loads(meta["geometry"])["branch"]
    assert branch["source"] == "tiny-random" and branch["layers"] == 2
    qa = json.loads((d / "qa.json").read_text())
    assert qa["branch"] == branch and qa["backend"] == "flux_cogvideox"
