"""The flux_cogvideox edit backend at tiny size (random seeded weights, tokenizers built in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from lanepipe.edit.config import AccelConfig, GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative.hooks import blend_latents, encode_video
from lanepipe.edit.generative.loading import allocator_setting
from lanepipe.edit.generative.masks import blend, inner_feather, latent_masks, window_starts
from lanepipe.edit.generative.tiny import tiny_fill_pipeline
from lanepipe.errors import BackendUnavailableError
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.sample import render_sample
from lanepipe.types import Clip, RoadMasks

SPEC = parse_instruction("double yellow solid")


@pytest.fixture(scope="module")
def sample() -> tuple[Clip, RoadMasks]:
    s = render_sample(num_frames=9, width=96, height=64)
    return s.to_clip(), RoadMasks(s.road_masks, "gt")


@pytest.fixture(scope="module")
def painted(sample):
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3))
    return painter, painter.paint(clip, masks, SPEC)


def test_tiny_preset_defaults() -> None:
    cfg = GenerativeConfig(preset="tiny-random", width=32)
    assert (cfg.width, cfg.height, cfg.num_frames, cfg.flux_steps) == (32, 48, 9, 2)
    real = GenerativeConfig()
    assert (real.width, real.height, real.num_frames, real.flux_guidance, real.video_guidance) == (720, 480, 49, 30, 6)


def test_end_to_end_shape_and_unmasked_pixels(sample, painted) -> None:
    clip, masks = sample
    _, res = painted
    assert res.frames.shape == clip.frames.shape
    assert res.frames.dtype == np.uint8
    outside = ~masks.masks
    np.testing.assert_array_equal(res.frames[outside], clip.frames[outside])
    assert (res.frames[masks.masks] != clip.frames[masks.masks]).any()
    assert res.lanes == [[] for _ in range(clip.num_frames)]
    assert set(res.diagnostics["timing_s"]) == {"setup", "flux", "propagate", "composite"}
    assert res.diagnostics["prompt"] == SPEC.caption()


def test_deterministic_for_a_seed(sample, painted) -> None:
    clip, masks = sample
    _, res = painted
    again = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3)).paint(clip, masks, SPEC)
    np.testing.assert_array_equal(again.frames, res.frames)


def test_windows_and_revised_caption() -> None:
    s = render_sample(num_frames=12, width=96, height=64)
    clip, masks = s.to_clip(), RoadMasks(s.road_masks, "gt")
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, num_frames=9))

    @dataclass
    class Revised:
        caption: str
        unknown_knob: float = 2.0

    res = painter.paint(clip, masks, SPEC, Revised("road with single white dashed lane markings"))
    assert res.frames.shape == clip.frames.shape
    assert res.diagnostics["windows"] == 2
    assert res.diagnostics["prompt"] == "road with single white dashed lane markings"
    np.testing.assert_array_equal(res.frames[~masks.masks], clip.frames[~masks.masks])
    assert window_starts(9, 5) == [0, 4]
    assert window_starts(10, 5) == [0, 4, 8]
    assert window_starts(1, 5) == []
    assert window_starts(12, 9) == [0, 8]


def test_lora_changes_output(sample, painted, tmp_path: Path) -> None:
    from diffusers import FluxFillPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    clip, masks = sample
    _, res = painted
    transformer = tiny_fill_pipeline(GenerativeConfig(preset="tiny-random", seed=3)).transformer
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    FluxFillPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                       weight_name="lanes.safetensors")
    lora = tmp_path / "lanes.safetensors"
    assert lora.is_file()
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, lora_path=str(lora), lora_scale=1.0))
    with_lora = painter.paint(clip, masks, SPEC)
    assert not np.array_equal(with_lora.frames, res.frames)
    np.testing.assert_array_equal(with_lora.frames[~masks.masks], clip.frames[~masks.masks])
    off = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, lora_path=str(lora), lora_scale=0.0))
    np.testing.assert_array_equal(off.paint(clip, masks, SPEC).frames, res.frames)
    # fused QKV projections would drop the LoRA layers: the painter merges the LoRA into the weights first
    fused = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, lora_path=str(lora), lora_scale=1.0,
                                               accel=AccelConfig(fuse_qkv=True)))
    np.testing.assert_allclose(fused.first_frame(clip, masks, SPEC.caption()).astype(float),
                               with_lora.frames[0].astype(float), atol=2)


def test_bin_lora_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="safetensors"):
        GenerativeConfig(preset="tiny-random", lora_path=str(tmp_path / "lora.bin"))


def test_missing_lora_file(sample, tmp_path: Path) -> None:
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", lora_path=str(tmp_path / "no.safetensors")))
    with pytest.raises(BackendUnavailableError, match="not found"):
        painter.paint(clip, masks, SPEC)


def test_missing_model_path(sample, tmp_path: Path) -> None:
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(flux_model=str(tmp_path / "missing" / "flux"), flux_device="cpu",
                                                 video_device="cpu"))
    with pytest.raises(BackendUnavailableError, match="not found"):
        painter.paint(clip, masks, SPEC)


@pytest.mark.parametrize(("field", "value"), [("width", 100), ("num_frames", 10), ("num_frames", 13),
                                               ("mask_dilate_px", -1)])
def test_bad_config(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        GenerativeConfig(**{field: value})


def test_blend_and_inner_feather_known_answer() -> None:
    mask = np.zeros((9, 9), dtype=bool)
    mask[2:7, 2:7] = True
    a = inner_feather(mask, 2.0)
    assert a[~mask].max() == 0.0
    assert a[4, 4] == 1.0
    assert 0.0 < a[2, 4] < 1.0
    gen = np.full((9, 9, 3), 200, np.uint8)
    orig = np.full((9, 9, 3), 100, np.uint8)
    out = blend(gen, orig, a)
    assert (out[~mask] == 100).all()
    assert (out[4, 4] == 200).all()


def test_blend_matches_the_float_formula_on_random_frames() -> None:
    rng = np.random.default_rng(7)
    gen = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    orig = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    a = rng.random((40, 60)).astype(np.float32)
    a[:10], a[30:] = 0.0, 1.0
    ref = a[..., None] * gen.astype(np.float64) + (1.0 - a[..., None]) * orig.astype(np.float64)
    out = blend(gen, orig, a)
    assert np.abs(out.astype(np.float64) - ref).max() <= 1.0
    np.testing.assert_array_equal(out[:10], orig[:10])
    np.testing.assert_array_equal(out[30:], gen[30:])


# ------------------------------------------------------------------------------------------- stepwise API


def test_first_frame_then_propagate_equals_paint(sample, painted) -> None:
    clip, masks = sample
    painter, res = painted
    first = painter.first_frame(clip, masks, SPEC.caption())
    assert first.shape == clip.frames.shape[1:] and first.dtype == np.uint8
    np.testing.assert_array_equal(first[~masks.masks[0]], clip.frames[0][~masks.masks[0]])
    stepwise = painter.propagate(clip, masks, first, SPEC.caption(), spec=SPEC)
    np.testing.assert_array_equal(stepwise.frames[0], first)
    np.testing.assert_array_equal(stepwise.frames, res.frames)
    assert stepwise.diagnostics["latent_blend"] and stepwise.diagnostics["hooks"] == ["LatentBlendHook"]
    other_seed = painter.first_frame(clip, masks, SPEC.caption(), seed=11)
    assert not np.array_equal(other_seed, first)


def test_propagate_refuses_a_first_frame_of_another_size(sample, painted) -> None:
    from lanepipe.errors import InputError

    clip, masks = sample
    painter, _ = painted
    with pytest.raises(InputError, match=r"first frame of shape \(64, 96, 3\)"):
        painter.propagate(clip, masks, np.zeros((48, 64, 3), np.uint8), SPEC.caption())


# ------------------------------------------------------------------------------------------- latent blending


def test_latent_masks_known_answer() -> None:
    m = np.zeros((9, 16, 24), dtype=bool)
    m[0, 0, 0] = True  # frame 0 -> latent frame 0, cell (0, 0)
    m[4, 9, 17] = True  # frames 1..4 -> latent frame 1, cell (1, 2)
    m[5, 15, 8] = True  # frames 5..8 -> latent frame 2, cell (1, 1)
    out = latent_masks(m)
    assert out.shape == (3, 2, 3) and out.dtype == np.bool_
    expected = np.zeros((3, 2, 3), dtype=bool)
    expected[0, 0, 0] = expected[1, 1, 2] = expected[2, 1, 1] = True
    np.testing.assert_array_equal(out, expected)
    assert latent_masks(np.ones((1, 8, 8), bool)).shape == (1, 1, 1)
    for bad in (np.zeros((8, 16, 16), bool), np.zeros((9, 12, 16), bool), np.zeros((16, 16), bool)):
        with pytest.raises(ValueError, match="expected"):
            latent_masks(bad)


def test_blend_latents_known_answer() -> None:
    import torch

    lat = torch.full((1, 3, 2, 1, 2), 5.0)  # one padding frame in front (CogVideoX 1.5 layout)
    ref = torch.zeros((1, 2, 2, 1, 2))
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(1, 2, 1, 1, 2)
    out = blend_latents(lat, mask, ref)
    assert out.shape == lat.shape
    assert (out[:, 0] == 5).all()  # padding untouched
    assert (out[0, 1, :, 0, 0] == 5).all() and (out[0, 1, :, 0, 1] == 0).all() and (out[0, 2] == 0).all()
    with pytest.raises(ValueError, match="fewer"):
        blend_latents(ref[:, :1], mask, ref)


def _window(painter: GenerativePainter, clip: Clip, masks: RoadMasks):
    import cv2

    cfg = painter.cfg
    frames = np.stack([cv2.resize(f, (cfg.width, cfg.height), interpolation=cv2.INTER_AREA)
                       for f in clip.frames[: cfg.num_frames]])
    gen = np.stack([cv2.resize(m.astype(np.uint8), (cfg.width, cfg.height), interpolation=cv2.INTER_NEAREST) > 0
                    for m in masks.masks[: cfg.num_frames]])
    return frames, gen


def test_latent_blending_keeps_the_source_outside_the_mask(sample) -> None:
    """Before any pixel compositing: latents (and decoded pixels) outside the mask follow the source video."""
    import torch

    clip, masks = sample
    errors = {}
    for on in (True, False):
        painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, latent_blend=on,
                                                     keep_unmasked=False))
        frames, gen = _window(painter, clip, masks)
        latents, ctx = painter.propagate_window(frames, gen, frames[0], SPEC.caption(), 5, output_type="latent")
        src = encode_video(painter._video, frames)
        keep = torch.from_numpy(~latent_masks(gen))[None, :, None].expand_as(src)
        assert latents.shape == src.shape and keep.any()
        assert (ctx.source_latents is not None) == on
        video, _ = painter.propagate_window(frames, gen, frames[0], SPEC.caption(), 5)
        assert video.shape == (9, 48, 64, 3)
        outside = ~gen
        pixel_err = float(np.abs(video * 255.0 - frames.astype(np.float32))[outside].mean())
        errors[on] = (float((latents - src).abs()[keep].mean()), pixel_err)
    assert errors[True][0] < 1e-5 < errors[False][0]  # the last step sets the clean source latents
    assert errors[True][1] < errors[False][1]


def test_bfloat16_pipelines_with_latent_blending(sample) -> None:
    """bf16 weights (as on CUDA): the blended initial latents must reach the transformer in its dtype (a float32
    hand-over crashed the first full-size GPU run)."""
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, dtype="bfloat16", latent_blend=True))
    res = painter.paint(clip, masks, SPEC)
    assert res.frames.shape == clip.frames.shape
    np.testing.assert_array_equal(res.frames[~masks.masks], clip.frames[~masks.masks])


# ------------------------------------------------------------------------------------------- placement, accel


def test_unload_between_phases_parks_the_idle_pipeline(sample) -> None:
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, unload_between_phases=True))
    first = painter.first_frame(clip, masks, SPEC.caption())
    assert painter.resident == {"flux": True, "video": False} and painter._video is None  # not even loaded
    res = painter.propagate(clip, masks, first, SPEC.caption())
    assert painter.resident == {"flux": False, "video": True}
    assert res.diagnostics["placement"] == ["flux -> cpu", "flux parked on cpu", "video -> cpu"]
    assert next(painter._fill.transformer.parameters()).device.type == "cpu"
    painter.first_frame(clip, masks, SPEC.caption())
    assert painter.resident == {"flux": True, "video": False}
    assert painter.placement[-2:] == ["video parked on cpu", "flux -> cpu"]


def test_accel_options_apply_on_cpu(sample) -> None:
    clip, masks = sample
    fast = AccelConfig(attention="math", fuse_qkv=True)
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, accel=fast, video_accel=fast))
    first = painter.first_frame(clip, masks, SPEC.caption())
    plain = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3)).first_frame(clip, masks, SPEC.caption())
    np.testing.assert_allclose(first.astype(float), plain.astype(float), atol=2)  # same maths, fused GEMMs
    res = painter.propagate(clip, masks, first, SPEC.caption())
    assert res.diagnostics["accel"] == {"flux": {"attention": "math", "fuse_qkv": True},
                                        "video": {"attention": "math", "fuse_qkv": True}}
    np.testing.assert_array_equal(res.frames[~masks.masks], clip.frames[~masks.masks])


def test_allocator_setting() -> None:
    def at(current, **kw):
        return allocator_setting(current, **{"enabled": True, "on_cuda": True, "cuda_started": False, **kw})

    assert at(None) == ("expandable_segments:True", "set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True")
    assert at("max_split_size_mb:128")[0] is None and "kept" in at("max_split_size_mb:128")[1]
    assert at(None, cuda_started=True)[0] is None
    assert at(None, on_cuda=False) == (None, "not on CUDA")
    assert at(None, enabled=False) == (None, "off")
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random"))  # cpu devices: nothing set
    assert painter.allocator == "not on CUDA"
