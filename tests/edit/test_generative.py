"""The flux_cogvideox edit backend at tiny size (random seeded weights, tokenizers built in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from lanepipe.edit.generative import (
    GenerativeConfig,
    GenerativePainter,
    blend,
    inner_feather,
    tiny_fill_pipeline,
    window_starts,
)
from lanepipe.edit.instructions import parse_instruction
from lanepipe.errors import BackendUnavailableError
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


def test_windows_and_revised_caption(sample, painted) -> None:
    clip, masks = sample
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, num_frames=5))

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


@pytest.mark.parametrize(("field", "value"), [("width", 100), ("num_frames", 10), ("mask_dilate_px", -1)])
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
