"""LoRA training of FLUX.1 Fill at tiny size: objective, learning, Ray Train runs, resume, adapter files, refusals.

Real stills from the shared data folder, resized small, with road masks from the grid segmenter; a tiny seeded
random FLUX Fill (``tiny-random``) on CPU.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("diffusers")
pytest.importorskip("peft")

import torch

from lanepipe.errors import ConfigError, InputError
from lanepipe.testing import load_script
from lanepipe.train import checkpoints, fill, lora
from lanepipe.train import config as train_config
from lanepipe.train.data import load_rows

CAPTION = "road with double yellow solid lane markings"
STILLS = ("solidYellowLeft.jpg", "solidWhiteRight.jpg", "solidYellowCurve.jpg", "whiteCarLaneSwitch.jpg")


@pytest.fixture(autouse=True)
def one_thread():
    """Two shared cores: one intra-op thread is ~10x faster than two contending ones for these tiny models."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def stills(data_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Four real 960x540 stills at 96x64 RGB with their grid-segmenter road masks."""
    from lanepipe.segment.grid import segment_frame

    out = []
    for name in STILLS:
        bgr = cv2.imread(str(data_dir / "udacity_lanelines_p1" / "test_images" / name))
        rgb = np.ascontiguousarray(cv2.resize(bgr, (96, 64), interpolation=cv2.INTER_AREA)[:, :, ::-1])
        mask = segment_frame(rgb)
        assert 0.1 < mask.mean() < 0.9, name
        out.append((rgb, mask))
    return out


def write_dataset(root: Path, stills, rows: list[dict[str, str]] | None = None) -> Path:
    """A dataset folder in the `lanepipe dataset` layout; ``rows`` replaces the CSV rows when given."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    default = []
    for i, (rgb, mask) in enumerate(stills):
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), mask.astype(np.uint8) * 255)
        default.append({"image": f"images/{i:03d}.png", "mask": f"masks/{i:03d}.png", "prompt": CAPTION,
                        "prompt_2": "" if i % 2 else CAPTION})
    with (root / "train.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "mask", "prompt", "prompt_2"])
        w.writeheader()
        w.writerows(default if rows is None else rows)
    return root


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, stills) -> Path:
    return write_dataset(tmp_path_factory.mktemp("lora_data"), stills)


def tiny_cfg(**kw) -> train_config.TrainConfig:
    return train_config.TrainConfig(preset="tiny-random", **kw)


def encoded(cfg: train_config.TrainConfig, stills, n: int = 2):
    """A fresh tiny pipeline (seeded by cfg.seed) and the first ``n`` stills encoded at 64x48."""
    pipe = checkpoints.load_fill_pipeline(cfg)
    imgs = np.stack([cv2.resize(s[0], cfg.resolution, interpolation=cv2.INTER_AREA) for s in stills[:n]])
    masks = np.stack([cv2.resize(s[1].astype(np.uint8), cfg.resolution) > 0 for s in stills[:n]])
    return pipe, fill.encode_examples(pipe, imgs, masks, [CAPTION] * n, None, cfg.max_sequence_length)


def transformer_out(pipe, batch: fill.FillBatch, s: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(tuple(batch.latents.shape), generator=g)
    x = fill.pack_latents((1 - s) * batch.latents + s * noise)
    with torch.no_grad():
        return pipe.transformer(hidden_states=torch.cat([x, batch.cond], dim=2),
                                timestep=torch.full((batch.size,), s), guidance=torch.ones(batch.size),
                                pooled_projections=batch.pooled, encoder_hidden_states=batch.prompt_embeds,
                                txt_ids=batch.text_ids, img_ids=batch.image_ids, return_dict=False)[0]


# ============================================================================================== pure parts
def test_pack_latents_and_ids_match_diffusers() -> None:
    from diffusers import FluxFillPipeline

    x = torch.randn(2, 4, 6, 8)
    torch.testing.assert_close(fill.pack_latents(x), FluxFillPipeline._pack_latents(x, 2, 4, 6, 8), rtol=0, atol=0)
    torch.testing.assert_close(fill.latent_image_ids(6, 8), FluxFillPipeline._prepare_latent_image_ids(
        2, 3, 4, "cpu", torch.float32), rtol=0, atol=0)


def test_vae_scale_factor_from_channels() -> None:
    def fake(i: int, o: int) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(in_channels=i, out_channels=o))

    assert fill.vae_scale_factor(fake(384, 64)) == 8  # FLUX.1 Fill dev: 64 + 64 + 8·8·4
    assert fill.vae_scale_factor(fake(48, 16)) == 2  # the tiny-random preset
    with pytest.raises(ConfigError, match="not a FLUX Fill transformer"):
        fill.vae_scale_factor(fake(64, 64))  # FLUX.1 dev (text-to-image) has no fill channels


def test_lr_factor_warmup_then_cosine() -> None:
    f = [train_config.lr_factor(s, 4, 12) for s in range(12)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(f[4:]))
    assert train_config.lr_factor(12, 4, 12) == pytest.approx(0.0)
    assert train_config.lr_factor(8, 4, 12) == pytest.approx(0.5)


def test_config_defaults_and_validation() -> None:
    c = train_config.TrainConfig()
    assert (c.rank, c.alpha, c.lr, c.warmup_steps, c.epochs, c.batch_size, c.grad_accumulation) == (
        16, 16, 1e-5, 50, 5, 1, 1)
    assert (c.mixed_precision, c.checkpoint_every, c.resolution, c.use_gpu) == ("bf16", 100, (720, 480), True)
    t = tiny_cfg(rank=4)
    assert (t.mixed_precision, t.resolution, t.use_gpu, t.rank) == ("fp32", (64, 48), False, 4)
    with pytest.raises(ValueError, match="multiples of 16"):
        train_config.TrainConfig(resolution=(100, 48))
    with pytest.raises(ConfigError, match="ranks"):
        train_config.parse_config({"ranks": 4})
    with pytest.raises(ConfigError, match="mixed_precision"):
        train_config.parse_config({"mixed_precision": "fp16"})


def test_plan_and_data_order() -> None:
    cfg = tiny_cfg(num_workers=2)
    plan = train_config.make_plan(5, cfg)
    assert (plan.rows_per_worker, plan.micro_per_epoch, plan.total_steps) == (2, 2, 10)
    assert train_config.make_plan(5, tiny_cfg(num_workers=2, max_steps=3)).total_steps == 3
    epoch0 = sorted(i for m in range(2) for i in train_config.micro_batch_indices(m, plan, cfg, rank=1))
    assert epoch0 == [0, 1]  # each epoch visits the shard once
    with pytest.raises(InputError, match="num_workers x batch_size = 4"):
        train_config.make_plan(3, tiny_cfg(num_workers=2, batch_size=2))
    with pytest.raises(InputError, match="grad_accumulation = 8"):
        train_config.make_plan(2, tiny_cfg(epochs=1, grad_accumulation=8))


# ============================================================================================== objective
def test_conditioning_matches_the_pipeline(stills, monkeypatch) -> None:
    """encode_images builds the same transformer input channels as FluxFillPipeline.__call__ (latent mean)."""
    from diffusers.pipelines.flux import pipeline_flux_fill as pff
    from PIL import Image

    cfg = tiny_cfg()
    pipe, batch = encoded(cfg, stills, n=1)
    monkeypatch.setattr(pff, "retrieve_latents",
                        lambda enc, generator=None, sample_mode="sample": enc.latent_dist.mode())
    seen = {}

    def grab(module, args, kwargs):
        seen.setdefault("hidden", kwargs["hidden_states"].detach().clone())
        seen.setdefault("img_ids", kwargs["img_ids"].detach().clone())

    handle = pipe.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    img = cv2.resize(stills[0][0], cfg.resolution, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(stills[0][1].astype(np.uint8), cfg.resolution) > 0
    pipe(prompt=CAPTION, image=Image.fromarray(img), mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
         height=48, width=64, num_inference_steps=1, max_sequence_length=16, output_type="latent")
    handle.remove()
    c = batch.latents.shape[1] * 4
    torch.testing.assert_close(seen["hidden"][:, :, c:], batch.cond, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(seen["img_ids"], batch.image_ids)
    assert batch.cond.shape == (1, 12 * 16, 16 + 16)  # masked latents 4·4 + mask 2·2·4 per packed token


def test_loss_falls_on_a_fixed_batch(stills) -> None:
    """(a) A few dozen steps at a high lr on two real stills: the loss falls clearly (seeded, deterministic)."""
    cfg = tiny_cfg(lr=2e-2, warmup_steps=5, rank=8, alpha=8, seed=0)
    pipe, batch = encoded(cfg, stills)
    before = fill.eval_loss(pipe, batch, cfg)
    stats = fill.train_steps(pipe, batch, 48, cfg)
    after = fill.eval_loss(pipe, batch, cfg)
    first, last = np.mean(stats.losses[:8]), np.mean(stats.losses[-8:])
    assert after < 0.8 * before, (before, after)
    assert last < 0.85 * first, stats.losses
    assert len(stats.seconds) == 48 and stats.peak_memory_bytes is None and stats.trainable_params > 0


def test_gradient_checkpointing_gives_the_same_steps(stills) -> None:
    runs = []
    for gc in (False, True):
        cfg = tiny_cfg(lr=1e-2, warmup_steps=0, gradient_checkpointing=gc)
        pipe, batch = encoded(cfg, stills)
        runs.append(fill.train_steps(pipe, batch, 3, cfg).losses)
        assert pipe.transformer.is_gradient_checkpointing == gc
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)
    fill.train_steps(pipe, batch, 1, tiny_cfg(gradient_checkpointing=False))  # the benchmark toggles it per call
    assert not pipe.transformer.is_gradient_checkpointing


def test_bf16_steps_keep_float32_lora_weights(stills) -> None:
    cfg = tiny_cfg(mixed_precision="bf16", lr=1e-2, warmup_steps=0)
    pipe, batch = encoded(tiny_cfg(), stills, n=1)
    pipe.transformer.to(torch.bfloat16)
    stats = fill.train_steps(pipe, batch, 2, cfg)
    assert all(np.isfinite(stats.losses))
    assert {p.dtype for p in fill.lora_parameters(pipe)} == {torch.float32}
    assert {p.dtype for p in pipe.transformer.parameters() if not p.requires_grad} == {torch.bfloat16}


def test_random_fill_batch_fits_the_transformer(stills) -> None:
    cfg = tiny_cfg(grad_accumulation=2)
    pipe, real = encoded(cfg, stills, n=1)
    fake = fill.random_fill_batch(pipe.transformer, 64, 48, batch_size=2, text_len=16)
    for name in ("latents", "cond", "prompt_embeds", "pooled"):
        assert getattr(fake, name).shape[1:] == getattr(real, name).shape[1:], name
    assert fake.size == 2 and fake.text_ids.shape == real.text_ids.shape
    stats = fill.train_steps(pipe.transformer, fake, 2, cfg)
    assert len(stats.losses) == 2 and all(np.isfinite(stats.losses))


def test_saved_adapter_reproduces_the_trained_model(stills, tmp_path: Path) -> None:
    """(d) The file loads through the edit stage's exact call, keeps alpha/r, and gives the trained outputs."""
    cfg = tiny_cfg(lr=1e-2, warmup_steps=0, rank=4, alpha=8, seed=5)
    pipe, batch = encoded(cfg, stills)
    fill.train_steps(pipe, batch, 3, cfg)
    pipe.transformer.eval()
    trained = transformer_out(pipe, batch)
    url = tmp_path / "out" / train_config.LORA_FILE
    checkpoints.save_lora(pipe, str(url))
    assert url.is_file() and not [p for p in url.parent.iterdir() if p.name != train_config.LORA_FILE]
    fresh = checkpoints.load_fill_pipeline(cfg)
    base = transformer_out(fresh, batch)
    fresh.load_lora_weights(str(url.parent), weight_name=url.name, adapter_name="lanepipe", use_safetensors=True)
    loaded = transformer_out(fresh, batch)
    assert fresh.transformer.peft_config["lanepipe"].lora_alpha == 8
    assert fresh.transformer.peft_config["lanepipe"].r == 4
    torch.testing.assert_close(loaded, trained, rtol=1e-5, atol=1e-6)
    assert (loaded - base).abs().max() > 1e-3


def test_lora_targets_stay_inside_the_blocks(stills) -> None:
    pipe = checkpoints.load_fill_pipeline(tiny_cfg())
    names = fill.target_module_names(pipe.transformer, train_config.DEFAULT_TARGETS)
    assert "proj_out" not in names and "single_transformer_blocks.0.proj_out" in names
    assert "transformer_blocks.0.attn.to_add_out" in names and "single_transformer_blocks.0.attn.to_q" in names
    with pytest.raises(ConfigError, match="match no linear layer"):
        fill.target_module_names(pipe.transformer, ["nonexistent"])


# ============================================================================================== dataset refusals
def test_empty_dataset_refused(tmp_path: Path) -> None:
    """(e) A train.csv with a header and no rows is refused before anything starts (no Ray, no model)."""
    root = write_dataset(tmp_path / "empty", [], rows=[])
    with pytest.raises(InputError, match="no rows"):
        lora.train_lora(str(root), tiny_cfg(output=str(tmp_path / "out")))
    res = CliRunner().invoke(__import__("lanepipe.cli", fromlist=["app"]).app,
                             ["train", "--dataset", str(root), "--output", str(tmp_path / "out"),
                              "--preset", "tiny-random"])
    assert res.exit_code != 0 and "no rows" in str(res.exception)
    with pytest.raises(InputError, match=r"train\.csv"):
        load_rows(str(tmp_path / "nothing-here"))
    assert not (tmp_path / "out").exists()


def test_all_bad_rows_refused_with_reasons(tmp_path: Path, stills) -> None:
    root = write_dataset(tmp_path / "bad", stills[:1], rows=[])
    cv2.imwrite(str(root / "masks" / "small.png"), np.full((10, 10), 255, np.uint8))
    cv2.imwrite(str(root / "masks" / "black.png"), np.zeros((64, 96), np.uint8))
    (root / "images" / "text.png").write_text("not an image")
    rows = [{"image": "images/000.png", "mask": "masks/small.png", "prompt": CAPTION, "prompt_2": ""},
            {"image": "images/000.png", "mask": "masks/black.png", "prompt": CAPTION, "prompt_2": ""},
            {"image": "../escape.png", "mask": "masks/000.png", "prompt": CAPTION, "prompt_2": ""},
            {"image": "images/text.png", "mask": "masks/000.png", "prompt": CAPTION, "prompt_2": ""}]
    write_dataset(root, stills[:1], rows=rows)
    with pytest.raises(InputError) as e:
        lora.train_lora(str(root), tiny_cfg(output=str(tmp_path / "out")))
    msg = str(e.value)
    assert "4 unusable row(s)" in msg
    for reason in ("must match", "empty", "outside the dataset folder", "unreadable"):
        assert reason in msg, reason


def test_bad_rows_among_good_ones_are_skipped(tmp_path: Path, stills) -> None:
    root = write_dataset(tmp_path / "mixed", stills[:2])
    with (root / "train.csv").open("a", newline="") as f:
        csv.writer(f).writerow(["images/missing.png", "masks/000.png", CAPTION, ""])
    rows = load_rows(str(root))
    assert [r.image for r in rows] == ["images/000.png", "images/001.png"]


def test_latest_checkpoint_passes_over_partial_ones(tmp_path: Path) -> None:
    assert checkpoints.latest_checkpoint(str(tmp_path)) is None
    for step, files in ((2, ("adapter.safetensors", "optimizer.pt", "state.json")), (4, ("state.json",))):
        d = tmp_path / "checkpoints" / f"checkpoint-{step:06d}"
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text(json.dumps({"step": step}))
    url, state = checkpoints.latest_checkpoint(str(tmp_path))
    assert url.endswith("checkpoint-000002") and state["step"] == 2


def test_missing_model_refused_before_ray(tiny_dataset, tmp_path: Path) -> None:
    from lanepipe.errors import BackendUnavailableError

    cfg = train_config.TrainConfig(flux_model=str(tmp_path), output=str(tmp_path / "out"), use_gpu=False)
    with pytest.raises(BackendUnavailableError, match=r"model_index\.json"):
        lora.train_lora(str(tiny_dataset), cfg)
    with pytest.raises(BackendUnavailableError, match="not found"):
        lora.train_lora(str(tiny_dataset), cfg.model_copy(update={"flux_model": "no such model"}))


def test_job_entrypoint_reports_an_empty_dataset(tmp_path: Path, capsys) -> None:
    job = load_script("jobs/train_lora.py", "train_lora_job")
    root = write_dataset(tmp_path / "empty", [], rows=[])
    assert job.main(["--dataset", str(root), "--output", str(tmp_path / "out"), "--set", "preset=tiny-random"]) == 2
    assert "no rows" in capsys.readouterr().err


# ============================================================================================== Ray Train
@pytest.fixture(scope="module")
def fast_train_poll():
    """Ray Train's controller takes a report only when it polls (every 2 s by default): poll every 0.2 s here.

    The variable travels from this (driver) process to each run's controller when ``fit()`` starts it.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
        yield


@pytest.fixture(scope="module")
def first_run(ray_local, fast_train_poll, tiny_dataset, tmp_path_factory) -> tuple[Path, dict]:
    """`lanepipe train` on the tiny dataset: 1 worker, 3 steps, a checkpoint every 2 steps."""
    from lanepipe.cli import app

    out = tmp_path_factory.mktemp("lora_run") / "out"
    res = CliRunner().invoke(app, ["train", "--dataset", str(tiny_dataset), "--output", str(out), "--preset",
                                   "tiny-random", "--max-steps", "3", "--checkpoint-every", "2", "--lr", "0.01",
                                   "--set", "warmup_steps=0"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert res.stdout.strip().splitlines()[-1] == str(out / train_config.LORA_FILE)
    return out, json.loads((out / train_config.SUMMARY_FILE).read_text())


@pytest.mark.ray
def test_ray_train_writes_checkpoints_and_adapter(first_run) -> None:
    """(b) TorchTrainer with one worker: per-step losses, checkpoints at steps 2 and 3, the adapter, a summary."""
    out, summary = first_run
    assert (summary["steps"], summary["start_step"], summary["steps_run"], summary["rows"]) == (3, 0, 3, 4)
    assert len(summary["losses"]) == 3 and summary["final_loss"] == summary["losses"][-1]
    assert summary["config"]["rank"] == 16 and summary["config"]["preset"] == "tiny-random"
    for step in (2, 3):
        state = json.loads((out / "checkpoints" / f"checkpoint-{step:06d}" / "state.json").read_text())
        assert state["step"] == step and len(state["losses"]) == step
        assert (out / "checkpoints" / f"checkpoint-{step:06d}" / "adapter.safetensors").is_file()
    assert (out / train_config.LORA_FILE).stat().st_size > 0
    assert not list(out.glob(".*.tmp"))


@pytest.mark.ray
def test_resume_continues_from_the_last_checkpoint(first_run, fast_train_poll, tiny_dataset, tmp_path: Path
                                                   ) -> None:
    """(c) Re-run with more steps (and two workers): continues at step 3, keeps the earlier losses."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    s = lora.train_lora(str(tiny_dataset), tiny_cfg(output=str(out), max_steps=5, checkpoint_every=2, lr=1e-2,
                                                 warmup_steps=0, num_workers=2))
    assert (s.start_step, s.steps_run, s.steps) == (3, 2, 5)
    assert s.losses[:3] == first_run[1]["losses"] and len(s.losses) == 5
    assert s.checkpoint is not None and s.checkpoint.endswith("checkpoint-000003")
    assert json.loads((out / "checkpoints" / "checkpoint-000005" / "state.json").read_text())["step"] == 5
    with pytest.raises(ConfigError, match="rank: checkpoint 16, now 8"):
        lora.train_lora(str(tiny_dataset), tiny_cfg(output=str(out), max_steps=6, rank=8))


@pytest.mark.ray
def test_trained_adapter_runs_in_the_painter(first_run) -> None:
    """(d) The run's file through GenerativeConfig(lora_path=...): the painted road changes, the rest does not."""
    from lanepipe.edit.config import GenerativeConfig
    from lanepipe.edit.generative import GenerativePainter
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.sample import render_sample
    from lanepipe.types import RoadMasks

    s = render_sample(num_frames=2, width=96, height=64)
    clip, masks = s.to_clip(), RoadMasks(s.road_masks, "gt")
    spec = parse_instruction("double yellow solid")
    adapter = str(first_run[0] / train_config.LORA_FILE)
    plain = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=0)).paint(clip, masks, spec)
    res = GenerativePainter(GenerativeConfig(preset="tiny-random", seed=0, lora_path=adapter)).paint(clip, masks, spec)
    assert res.frames.shape == clip.frames.shape
    assert not np.array_equal(res.frames, plain.frames)
    np.testing.assert_array_equal(res.frames[~masks.masks], clip.frames[~masks.masks])
