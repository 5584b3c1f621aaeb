"""The sam2 backend, built at tiny size (Hiera-T, 256 px, seeded random weights) and run on CPU."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lanepipe.config import SegmentConfig
from lanepipe.errors import BackendUnavailableError, ConfigError, InputError
from lanepipe.io.video import decode
from lanepipe.segment import Segmenter, build_segmenter
from lanepipe.segment.config import Sam2Config
from lanepipe.segment.sam2 import (
    INSTALL_HINT,
    TINY_MODEL_CFG,
    Sam2Segmenter,
    _prepare_frames,
    available_model_cfgs,
    prompt_frames,
    resolve_device,
    tiny_random_overrides,
)
from lanepipe.types import Clip

TINY = Sam2Config(preset="tiny-random", device="cpu")


def _clip(frames: np.ndarray, name: str = "synthetic") -> Clip:
    t = frames.shape[0]
    return Clip(name=name, source=f"memory://{name}", frames=frames, fps=8.0,
                timestamps=np.arange(t) / 8.0, source_fps=8.0, source_indices=np.arange(t, dtype=np.int64))


def _road_frames(t: int = 6, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Sky above, grey road trapezoid below with white dashes that move down the frame."""
    rng = np.random.default_rng(seed)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    horizon = h // 2
    road = (yy > horizon) & (np.abs(xx - w / 2) < (yy - horizon) * (w / h) * 1.2)
    for i in range(t):
        f = np.where(yy[..., None] < horizon, [135, 170, 220], [60, 120, 50]).astype(np.int16)
        f[road] = [90, 90, 95]
        dash = road & (np.abs(xx - w / 2) < 2) & (((yy + 4 * i) // 8) % 2 == 0)
        f[dash] = [240, 240, 240]
        f += rng.integers(-6, 7, size=f.shape, dtype=np.int16)
        frames[i] = np.clip(f, 0, 255).astype(np.uint8)
    return frames


@pytest.fixture(scope="module")
def tiny() -> Sam2Segmenter:
    return Sam2Segmenter(TINY)


# ---------------------------------------------------------------------------------------------- helpers


def test_module_import_does_not_import_torch() -> None:
    code = "import sys, lanepipe.segment.sam2; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prompt_frames() -> None:
    assert prompt_frames(6, 0) == [0]
    assert prompt_frames(6, 2) == [0, 2, 4]
    assert prompt_frames(7, 3) == [0, 3, 6]
    assert prompt_frames(1, 5) == [0]
    assert prompt_frames(0, 2) == []


def test_tiny_random_overrides() -> None:
    assert tiny_random_overrides(256) == [
        "++model.image_size=256",
        "++model.memory_attention.layer.self_attention.feat_sizes=[16,16]",
        "++model.memory_attention.layer.cross_attention.feat_sizes=[16,16]",
    ]
    with pytest.raises(ConfigError, match="multiple of 16"):
        tiny_random_overrides(250)


def test_resolve_device() -> None:
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="expected 'auto'"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="no CUDA device"):
            resolve_device("cuda")


def test_available_model_cfgs_lists_sam2_and_sam21() -> None:
    names = available_model_cfgs()
    assert TINY_MODEL_CFG in names
    assert "configs/sam2.1/sam2.1_hiera_l.yaml" in names
    assert "configs/sam2/sam2_hiera_l.yaml" in names


# ------------------------------------------------------------------------------------------ segmenting


def test_registry_builds_sam2_backend() -> None:
    seg = build_segmenter(SegmentConfig(backend="sam2", sam2=TINY))
    assert isinstance(seg, Sam2Segmenter)
    assert isinstance(seg, Segmenter)
    assert seg.name == "sam2" and seg.image_size == 256 and seg.device == "cpu"


def test_segment_synthetic_clip(tiny: Sam2Segmenter) -> None:
    clip = _clip(_road_frames())
    out = tiny.segment(clip)
    assert out.backend == "sam2"
    assert out.masks.shape == (6, 96, 128) and out.masks.dtype == np.bool_
    out.check_matches(clip)


def test_segment_real_clip(tiny: Sam2Segmenter, real_clip: Path) -> None:
    clip = decode(str(real_clip), max_frames=4)
    out = tiny.segment(clip)
    assert out.masks.shape == (4, 720, 1280) and out.masks.dtype == np.bool_
    assert out.backend == "sam2"


def test_same_seed_same_masks_other_seed_other_weights(tiny: Sam2Segmenter) -> None:
    clip = _clip(_road_frames(t=3, seed=1))
    again = Sam2Segmenter(TINY)
    np.testing.assert_array_equal(tiny.segment(clip).masks, again.segment(clip).masks)
    other = Sam2Segmenter(TINY.model_copy(update={"seed": 1}))
    w0 = next(iter(tiny.predictor.parameters()))
    w1 = next(iter(other.predictor.parameters()))
    assert not bool((w0 == w1).all())


def test_reprompt_every(tiny: Sam2Segmenter) -> None:
    clip = _clip(_road_frames(t=5))
    seg = Sam2Segmenter(TINY.model_copy(update={"reprompt_every": 2}))
    out = seg.segment(clip)
    assert out.masks.shape == (5, 96, 128) and out.masks.dtype == np.bool_
    # the same steps, by hand
    session = seg.open_session(clip)
    for f in prompt_frames(5, 2):
        seg.add_grid_prompt(session, f)
    assert session.prompted_frames == [0, 2, 4]
    np.testing.assert_array_equal(seg.propagate(session), out.masks)


def test_session_misuse(tiny: Sam2Segmenter) -> None:
    clip = _clip(_road_frames(t=2))
    session = tiny.open_session(clip)
    with pytest.raises(InputError, match="prompt on frame 0"):
        tiny.propagate(session)
    with pytest.raises(InputError, match=r"frame index in \[0, 2\)"):
        tiny.add_grid_prompt(session, 2)
    empty = _clip(np.zeros((0, 8, 8, 3), dtype=np.uint8), name="empty")
    with pytest.raises(InputError, match="at least 1 frame"):
        tiny.segment(empty)


def test_in_memory_frames_match_upstream_jpeg_folder(tiny: Sam2Segmenter, tmp_path: Path) -> None:
    """Known answer: feeding frames from memory gives exactly what sam2's own JPEG-folder path gives."""
    import torch
    from PIL import Image
    from sam2.utils.misc import load_video_frames

    for i, f in enumerate(_road_frames(t=4, h=90, w=160)):
        Image.fromarray(f).save(tmp_path / f"{i:05d}.jpg", quality=95)
    decoded = np.stack([np.array(Image.open(p).convert("RGB")) for p in sorted(tmp_path.glob("*.jpg"))])
    clip = _clip(decoded)

    ref, h, w = load_video_frames(str(tmp_path), image_size=256, offload_video_to_cpu=True,
                                  compute_device=torch.device("cpu"))
    ours = _prepare_frames(clip.frames, 256, "cpu")
    assert (ours.height, ours.width) == (h, w) == (90, 160)
    assert torch.equal(ours.images, ref)

    predictor = tiny.predictor
    with torch.inference_mode():
        state = predictor.init_state(str(tmp_path))
        from lanepipe.segment.base import grid_points_px

        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=grid_points_px(160, 90),
                                        labels=np.ones(9, dtype=np.int32))
        upstream = np.stack([(m[0, 0] > 0).numpy() for _, _, m in predictor.propagate_in_video(state)])
    np.testing.assert_array_equal(tiny.segment(clip).masks, upstream)


def test_vos_optimized_builds_compiled_predictor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)  # restored after: use_compile_cache sets it
    seg = Sam2Segmenter(TINY.model_copy(update={"vos_optimized": True, "compile_cache_dir": str(tmp_path)}))
    assert type(seg.predictor).__name__ == "SAM2VideoPredictorVOS"
    assert seg.options == {"vos_optimized": True, "dtype": "float32",
                           "compile_cache": {"dir": str(tmp_path), "artifacts_loaded": False},
                           "encode_batch": 1}  # the compiled encoder's batch is fixed at 1


def test_speed_options_default_to_off_on_cpu(tiny: Sam2Segmenter) -> None:
    """``vos_optimized`` is off by default and ``'auto'`` compiles on CUDA only; on CPU the eager predictor in
    float32, no compile cache."""
    assert TINY.vos_optimized is False
    assert type(tiny.predictor).__name__ == "SAM2VideoPredictor"
    assert tiny.options == {"vos_optimized": False, "dtype": "float32", "compile_cache": None, "encode_batch": 8}
    auto = Sam2Segmenter(TINY.model_copy(update={"vos_optimized": "auto"}))
    assert type(auto.predictor).__name__ == "SAM2VideoPredictor" and auto.options == tiny.options
    with pytest.raises(ValueError, match="vos_optimized"):
        Sam2Config(vos_optimized="fast")  # type: ignore[arg-type]


def test_frames_encoded_in_batches_track_like_one_by_one(tiny: Sam2Segmenter) -> None:
    """With ``encode_batch`` 4, a 10-frame clip's frames 1..9 go through the backbone in 3 calls (1-4, 5-8, 9;
    frame 0 was encoded by ``init_state``) instead of 9, and sam2 tracks to the same logits as with its own
    per-frame encoding; the batch's features are dropped afterwards."""
    import torch

    from lanepipe.segment.sam2 import batched_features

    clip = _clip(_road_frames(t=10))
    pred = tiny.predictor
    calls: list[int] = []
    forward = pred.forward_image

    def counted(img: torch.Tensor) -> dict:
        calls.append(int(img.shape[0]))
        return forward(img)

    def track(batch: int) -> list[torch.Tensor]:
        session = tiny.open_session(clip)
        tiny.add_grid_prompt(session, 0)
        calls.clear()
        pred.forward_image = counted
        try:
            with batched_features(pred, session._state, batch) if batch > 1 else contextlib.nullcontext():
                out = [lg.clone() for _, _, lg in pred.propagate_in_video(session._state)]
        finally:
            del pred.forward_image
        assert session._state["cached_features"] == {} or batch == 1
        return out

    with torch.inference_mode():
        one = track(1)
        assert calls == [1] * 9
        four = track(4)
        assert calls == [4, 4, 1]
    assert "_get_image_feature" not in vars(pred)  # sam2's own method is back
    assert len(one) == len(four) == 10
    for a, b in zip(one, four, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    masks = [Sam2Segmenter(TINY.model_copy(update={"encode_batch": n})).segment(clip).masks for n in (1, 4)]
    assert (masks[0] == masks[1]).mean() > 0.999


def test_leaves_foreign_hydra_state_alone(tmp_path: Path) -> None:
    """An application's own Hydra set-up survives building the model (facebookresearch/sam2#179)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    (tmp_path / "app.yaml").write_text("answer: 42\n")
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.2"):
            Sam2Segmenter(TINY)
            assert compose(config_name="app").answer == 42
        GlobalHydra.instance().clear()
        Sam2Segmenter(TINY)  # and with no Hydra at all
        assert not GlobalHydra.instance().is_initialized()
    finally:
        restore_gh_from_backup(backup)


# ----------------------------------------------------------------------------------- config and errors


def test_unknown_model_cfg_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown sam2 config 'configs/sam3/nope.yaml'.*sam2.1_hiera_t.yaml"):
        Sam2Segmenter(Sam2Config(model_cfg="configs/sam3/nope.yaml"))


def test_missing_checkpoint_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "weights" / "sam2.1_hiera_large.pt"
    with pytest.raises(BackendUnavailableError, match="no file at") as e:
        Sam2Segmenter(Sam2Config(checkpoint=str(missing)))
    assert str(missing) in str(e.value)


def test_checkpoint_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="checkpoint is not set"):
        Sam2Segmenter(Sam2Config())
    with pytest.raises(ConfigError, match="local file path"):
        Sam2Segmenter(Sam2Config(checkpoint="https://example.invalid/sam2.1_hiera_large.pt"))
    with pytest.raises(ConfigError, match=r"ending in \.pt or \.pth"):
        Sam2Segmenter(Sam2Config(checkpoint=str(tmp_path / "model.bin")))
    with pytest.raises(ConfigError, match="tiny-random"):
        Sam2Segmenter(Sam2Config(preset="tiny-random", checkpoint=str(tmp_path / "x.pt")))


def test_checkpoint_that_does_not_match_config(tmp_path: Path) -> None:
    import torch

    bad = tmp_path / "bad.pt"
    torch.save({"model": {"not_a_sam2_key": torch.zeros(1)}}, bad)
    with pytest.raises(InputError, match="missing keys") as e:
        Sam2Segmenter(Sam2Config(model_cfg=TINY_MODEL_CFG, checkpoint=str(bad), device="cpu"))
    assert str(bad) in str(e.value) and "not_a_sam2_key" in str(e.value)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"torch\.load"):
        Sam2Segmenter(Sam2Config(model_cfg=TINY_MODEL_CFG, checkpoint=str(junk), device="cpu"))


def test_checkpoint_round_trip(tiny: Sam2Segmenter, tmp_path: Path) -> None:
    """The real path: build a config and load a ``{"model": state_dict}`` .pt into it."""
    import torch

    ckpt = tmp_path / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": tiny.predictor.state_dict()}, ckpt)
    seg = Sam2Segmenter(Sam2Config(model_cfg=TINY_MODEL_CFG, checkpoint=str(ckpt), device="cpu", seed=7))
    assert seg.image_size == 1024  # the config's own size: only the preset shrinks it
    loaded, ref = seg.predictor.state_dict(), tiny.predictor.state_dict()
    assert loaded.keys() == ref.keys()
    assert all(torch.equal(loaded[k], ref[k]) for k in ref)


def test_missing_sam2_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)
    with pytest.raises(BackendUnavailableError) as e:
        Sam2Segmenter(TINY)
    assert "pip install 'lanepipe[sam2]'" in str(e.value) and INSTALL_HINT in str(e.value)
