"""Speed-up switches of the generative transformers (lanepipe.edit.accel) on the tiny-random models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from lanepipe.edit import accel  # noqa: E402
from lanepipe.edit.config import GenerativeConfig  # noqa: E402
from lanepipe.edit.generative.tiny import tiny_fill_pipeline, tiny_video_pipeline  # noqa: E402
from lanepipe.errors import BackendUnavailableError  # noqa: E402
from lanepipe.torchkit import sdpa_kernels  # noqa: E402


def _flux_inputs(t: Any) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    n_img, n_txt = 12, 5
    return {
        "hidden_states": torch.randn(1, n_img, t.config.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, n_txt, t.config.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(1, t.config.pooled_projection_dim, generator=g),
        "timestep": torch.tensor([0.5]), "guidance": torch.tensor([30.0]),
        "img_ids": torch.zeros(n_img, 3), "txt_ids": torch.zeros(n_txt, 3), "return_dict": False,
    }


@pytest.mark.parametrize("which", ["flux", "cogvideox"])
def test_fused_qkv_computes_the_same_function(which: str, cogvideox_inputs: Callable[[Any], dict[str, Any]]) -> None:
    cfg = GenerativeConfig(preset="tiny-random")
    t = (tiny_fill_pipeline(cfg) if which == "flux" else tiny_video_pipeline(cfg)).transformer
    x = _flux_inputs(t) if which == "flux" else cogvideox_inputs(t)
    with torch.inference_mode():
        ref = t(**x)[0]
        done = accel.apply(t, accel.AccelConfig(fuse_qkv=True))
        with sdpa_kernels("math"):
            out = t(**x)[0]
    assert done["fuse_qkv"] is True
    assert out.shape == ref.shape
    assert float((out - ref).norm() / ref.norm()) < 1e-5


def test_blocks_are_found_for_both_transformers() -> None:
    cfg = GenerativeConfig(preset="tiny-random")
    assert len(accel.blocks_of(tiny_fill_pipeline(cfg).transformer)) == 2  # 1 double + 1 single block
    assert len(accel.blocks_of(tiny_video_pipeline(cfg).transformer)) == 1


def test_fp8_is_refused_off_gpu_with_a_clear_message() -> None:
    t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
    with pytest.raises(BackendUnavailableError, match=r"compute capability 8\.9"):
        accel.apply(t, accel.AccelConfig(fp8_linear=True))


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValueError, match="attention"):
        accel.AccelConfig(attention="fast")  # type: ignore[arg-type]
