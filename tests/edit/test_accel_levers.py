"""Issue 15 levers on the tiny-random CogVideoX: step caches that really skip work, CFG truncation, compile
defaults (lanepipe.edit.accel)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from lanepipe.edit import accel  # noqa: E402
from lanepipe.edit.config import AccelConfig, GenerativeConfig  # noqa: E402
from lanepipe.edit.generative import GenerativePainter  # noqa: E402
from lanepipe.edit.generative.hooks import PropagationHook, WindowContext  # noqa: E402
from lanepipe.edit.generative.tiny import tiny_video_pipeline  # noqa: E402
from lanepipe.sample import render_sample  # noqa: E402

STEPS = 8


@pytest.fixture(scope="module")
def window() -> tuple[np.ndarray, np.ndarray]:
    """Nine 64x48 frames and road masks (the tiny preset's model size)."""
    import cv2

    s = render_sample(num_frames=9, width=96, height=64)
    frames = np.stack([cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in s.frames])
    masks = np.stack([cv2.resize(m.astype(np.uint8), (64, 48), interpolation=cv2.INTER_NEAREST) > 0
                      for m in s.road_masks])
    return frames, masks


class StepLatents(PropagationHook):
    """Keeps a copy of the latents after every scheduler step."""

    def __init__(self) -> None:
        self.latents: list[Any] = []

    def on_step_end(self, pipe: Any, ctx: WindowContext, step: int, timestep: Any, latents: Any) -> Any:
        self.latents.append(latents.detach().clone())
        return latents


def _run(window: tuple[np.ndarray, np.ndarray], va: AccelConfig, steps: int = STEPS
         ) -> tuple[GenerativePainter, dict[str, int], StepLatents, Any]:
    """One propagation window; counts the attention processor runs (``attn1.to_q`` calls: a cached attention
    or block never reaches them) and the transformer's batch per call."""
    frames, masks = window
    rec = StepLatents()
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, video_steps=steps,
                                                 video_accel=va), hooks=[rec])
    pipe = painter._activate("video")
    counts = {"attn": 0, "calls": 0, "rows": 0}

    def on_q(*_: Any) -> None:
        counts["attn"] += 1

    def on_call(_m: Any, _a: Any, kwargs: dict[str, Any]) -> None:
        counts["calls"] += 1
        counts["rows"] += int(kwargs["hidden_states"].shape[0])

    for block in pipe.transformer.transformer_blocks:
        block.attn1.to_q.register_forward_hook(on_q)
    pipe.transformer.register_forward_pre_hook(on_call, with_kwargs=True)  # after truncation's (it prepends)
    latents, _ = painter.propagate_window(frames, masks, frames[0], "double yellow solid", 5, output_type="latent")
    return painter, counts, rec, latents


@pytest.fixture(scope="module")
def plain(window):
    return _run(window, AccelConfig())


@pytest.mark.parametrize("kind", ["faster", "pab", "taylorseer"])
def test_cache_skips_attention_on_cogvideox(window, plain, kind: str) -> None:
    _, base, _, ref = plain
    painter, counts, _, latents = _run(window, AccelConfig(cache=kind))
    blocks = len(painter._video.transformer.transformer_blocks)
    assert base["attn"] == STEPS * blocks  # uncached: every step runs every block's attention
    assert 0 < counts["attn"] < base["attn"]  # cached: some steps reuse instead of computing
    done = painter.accel_applied["video"]["cache"]
    assert done["kind"] == kind and len(done["layers"]) == blocks
    assert done["layers"][0] == ("transformer_blocks.0" if kind == "taylorseer" else "transformer_blocks.0.attn1")
    assert latents.shape == ref.shape and bool(torch.isfinite(latents).all())
    assert not torch.equal(latents, ref)  # reuse changes the result


def test_cache_state_is_reset_between_windows(window) -> None:
    """A second window computes the same as the first (the cache's state from the first is dropped)."""
    frames, masks = window
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, video_steps=STEPS,
                                                 video_accel=AccelConfig(cache="taylorseer")))
    a, _ = painter.propagate_window(frames, masks, frames[0], "double yellow solid", 5, output_type="latent")
    b, _ = painter.propagate_window(frames, masks, frames[0], "double yellow solid", 5, output_type="latent")
    torch.testing.assert_close(a, b)


def test_cache_follows_a_changed_step_count(window) -> None:
    """TaylorSeer's intervals are sized from the step count: a painter whose cache was set up by a 2-step video
    (a warm-up) computes a 30-step video as a painter set up for 30 steps does (it re-sizes the cache)."""
    frames, masks = window
    va = AccelConfig(cache="taylorseer")
    steps = 30  # interval 3, first 3 steps uncached; 2 steps: interval 2, first step uncached

    def painter(n: int) -> GenerativePainter:
        return GenerativePainter(GenerativeConfig(preset="tiny-random", seed=3, video_steps=n, video_accel=va))

    ref, _ = painter(steps).propagate_window(frames, masks, frames[0], "double yellow solid", 5,
                                             output_type="latent")
    warmed = painter(2)
    warmed.propagate_window(frames, masks, frames[0], "double yellow solid", 5, output_type="latent")
    assert warmed.accel_applied["video"]["cache"]["steps"] == 2
    warmed.cfg = warmed.cfg.model_copy(update={"video_steps": steps})
    got, _ = warmed.propagate_window(frames, masks, frames[0], "double yellow solid", 5, output_type="latent")
    assert warmed.accel_applied["video"]["cache"]["steps"] == steps
    torch.testing.assert_close(got, ref)


class FactorBytes(PropagationHook):
    """The most bytes TaylorSeer's stored factors held after any step, and their dtypes (read from the hooks'
    state during the call: the pipeline drops the state when it ends)."""

    def __init__(self) -> None:
        self.most = 0
        self.dtypes: set[Any] = set()

    def on_step_end(self, pipe: Any, ctx: WindowContext, step: int, timestep: Any, latents: Any) -> Any:
        n = 0
        for block in pipe.transformer.transformer_blocks:
            for state in block._diffusers_hook.hooks["taylorseer_cache"].state_manager._state_cache.values():
                for factors in state.taylor_factors.values():
                    for f in factors.values():
                        n += f.numel() * f.element_size()
                        self.dtypes.add(f.dtype)
        self.most = max(self.most, n)
        return latents


def test_taylorseer_factors_in_bfloat16_take_half_the_memory(window) -> None:
    """``video_accel.cache_dtype=bfloat16``: the factors TaylorSeer keeps take half the bytes of float32 ones (the
    37 GB that put the whole stack out of an 80 GB card's memory), and the video stays close to the float32 one."""
    frames, masks = window
    held, latents = {}, {}
    for dtype in ("float32", "bfloat16"):
        rec = FactorBytes()
        painter = GenerativePainter(GenerativeConfig(
            preset="tiny-random", seed=3, video_steps=STEPS,
            video_accel=AccelConfig(cache="taylorseer", cache_dtype=dtype)), hooks=[rec])
        latents[dtype], _ = painter.propagate_window(frames, masks, frames[0], "double yellow solid", 5,
                                                     output_type="latent")
        assert rec.dtypes == {getattr(torch, dtype)}
        assert painter.accel_applied["video"]["cache"]["dtype"] == dtype
        held[dtype] = rec.most
    assert held["float32"] > 0 and held["bfloat16"] * 2 == held["float32"]
    a, b = latents["float32"], latents["bfloat16"]
    assert float((a - b).norm() / a.norm()) < 0.02


def test_diffusers_default_taylorseer_patterns_miss_cogvideox() -> None:
    """Why the issue saw no effect: diffusers' default TaylorSeer patterns fullmatch no CogVideoX module."""
    import re

    from diffusers.hooks.taylorseer_cache import _TRANSFORMER_BLOCK_IDENTIFIERS

    t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    names = [n for n, _ in t.named_modules()]
    assert not [n for n in names if any(re.fullmatch(p, n) for p in _TRANSFORMER_BLOCK_IDENTIFIERS)]
    assert accel.cached_layers(t, "taylorseer") == ["transformer_blocks.0"]


def test_cache_on_a_transformer_without_matching_layers_is_refused() -> None:
    flux = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(accel.BackendUnavailableError, match="matches CogVideoX"):
        accel.apply_cache(flux, "pab", lambda: 500, 10)


def test_cfg_truncation_drops_the_unconditional_branch(window, plain) -> None:
    _, base, base_rec, _ = plain
    painter, counts, rec, _ = _run(window, AccelConfig(cfg_truncation=0.5))
    cfg_steps = STEPS // 2
    assert base["calls"] == counts["calls"] == STEPS
    assert base["rows"] == 2 * STEPS  # CFG: batch 2 on every step
    assert counts["rows"] == 2 * cfg_steps + (STEPS - cfg_steps)  # batch 1 after the truncation step
    assert painter.accel_applied["video"]["cfg_truncation"] == 0.5
    for step, (a, b) in enumerate(zip(base_rec.latents, rec.latents, strict=True)):
        if step < cfg_steps:
            torch.testing.assert_close(a, b, rtol=0, atol=0)  # identical while CFG still runs
        else:
            assert not torch.equal(a, b), step  # guided by the conditional prediction alone after it


def test_compile_auto_is_blocks_on_cuda_only() -> None:
    cfg = AccelConfig()
    assert cfg.compile == "auto"
    assert accel.compile_mode(cfg, "cuda:0") == "blocks"
    assert accel.compile_mode(cfg, torch.device("cpu")) == "none"
    assert accel.compile_mode(AccelConfig(compile="none"), "cuda") == "none"
    t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    assert "compiled_blocks" not in accel.apply(t, cfg)  # CPU default unchanged: nothing compiled


def test_lever_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="CogVideoX only"):
        GenerativeConfig(accel=AccelConfig(cache="pab"))
    with pytest.raises(ValidationError, match="FasterCache"):
        GenerativeConfig(video_accel=AccelConfig(cache="faster", cfg_truncation=0.5))
    with pytest.raises(ValidationError, match="cfg_truncation"):
        AccelConfig(cfg_truncation=0.0)
    with pytest.raises(ValidationError, match="cache"):
        AccelConfig(cache="first_block")  # type: ignore[arg-type]
