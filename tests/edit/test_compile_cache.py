"""The compiled-blocks cache shared by worker processes (lanepipe.torchkit.use_compile_cache through
lanepipe.edit.accel): a second process loads the first one's compiled CogVideoX block instead of compiling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[2]

#: one worker: compile the tiny CogVideoX transformer's blocks with the cache folder, run one step, save artifacts
WORKER = """
import json, sys, time
import torch
from torch._dynamo.utils import counters
from lanepipe import torchkit
from lanepipe.edit import accel
from lanepipe.edit.config import AccelConfig, GenerativeConfig
from lanepipe.edit.generative.tiny import tiny_video_pipeline

t = tiny_video_pipeline(GenerativeConfig(preset="tiny-random")).transformer
done = accel.apply(t, AccelConfig(compile="blocks", compile_cache_dir=sys.argv[1]))
c = t.config
g = torch.Generator().manual_seed(2)
frames = (c.sample_frames - 1) // c.temporal_compression_ratio + 1
x = {"hidden_states": torch.randn(2, frames, c.in_channels, c.sample_height, c.sample_width, generator=g),
     "encoder_hidden_states": torch.randn(2, c.max_text_seq_length, c.text_embed_dim, generator=g),
     "timestep": torch.tensor([500, 500]), "return_dict": False}
t0 = time.perf_counter()
with torch.inference_mode():
    y = t(**x)[0]
first_call_s = time.perf_counter() - t0
saved = torchkit.save_compile_artifacts(sys.argv[1])
print(json.dumps({"first_call_s": first_call_s, "cache": done["compile_cache"], "saved": saved,
                  "blocks": done["compiled_blocks"], "inductor": dict(counters["inductor"]),
                  "aot": dict(counters["aot_autograd"]), "out": y.double().sum().item()}))
"""


def _worker(cache: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", WORKER, str(cache)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two CPU inductor compiles in fresh processes: ~35 s on a 2-core laptop
def test_second_worker_loads_the_compiled_blocks(tmp_path: Path) -> None:
    cache = tmp_path / "inductor"
    cold = _worker(cache)
    warm = _worker(cache)
    assert cold["blocks"] == warm["blocks"] == 1
    assert cold["cache"] == {"dir": str(cache), "artifacts_loaded": False}
    assert cold["inductor"].get("fxgraph_cache_miss", 0) >= 1 and not cold["inductor"].get("fxgraph_cache_hit")
    assert cold["saved"] == str(cache / "lanepipe-mega-cache.bin") and Path(cold["saved"]).stat().st_size > 0
    # the second process compiles nothing: the graph and its AOT-autograd wrapper come from the cache
    assert warm["cache"]["artifacts_loaded"] is True
    assert warm["inductor"].get("fxgraph_cache_hit", 0) >= 1 and not warm["inductor"].get("fxgraph_cache_miss")
    assert warm["aot"].get("autograd_cache_hit", 0) >= 1
    assert warm["first_call_s"] < cold["first_call_s"]
    assert warm["out"] == pytest.approx(cold["out"], rel=1e-6)  # same kernels, same numbers


def test_cache_folder_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lanepipe import torchkit

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert torchkit.compile_cache_dir(None) == str(tmp_path / "lanepipe" / "inductor")
    assert torchkit.compile_cache_dir("off") is None
    assert torchkit.compile_cache_dir(str(tmp_path / "x")) == str(tmp_path / "x")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "env"))
    assert torchkit.compile_cache_dir(None) == str(tmp_path / "env")
    assert torchkit.use_compile_cache(str(tmp_path / "run")) == {"dir": str(tmp_path / "run"),
                                                                  "artifacts_loaded": False}
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "run")
    assert torchkit.use_compile_cache("off") == {"dir": None, "artifacts_loaded": False}


@pytest.mark.slow  # one CPU inductor compile of the tiny CogVideoX block: ~20-40 s on a 2-core laptop
def test_painter_compiles_blocks_and_saves_the_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``video_accel.compile=blocks`` through the painter: blocks compiled with the cache folder, the portable
    artifacts written there after the first window (for workers that start later), recorded in ``accel``."""
    import numpy as np

    from lanepipe.edit.config import AccelConfig, GenerativeConfig
    from lanepipe.edit.generative import GenerativePainter

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)  # restored after: the painter sets it
    cache = tmp_path / "inductor"
    painter = GenerativePainter(GenerativeConfig(
        preset="tiny-random", seed=3, video_accel=AccelConfig(compile="blocks", compile_cache_dir=str(cache))))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (9, 48, 64, 3), dtype=np.uint8)
    masks = np.zeros((9, 48, 64), bool)
    masks[:, 24:] = True
    video, _ = painter.propagate_window(frames, masks, frames[0], "double yellow solid", 5)
    assert video.shape == (9, 48, 64, 3) and np.isfinite(video).all()
    done = painter.accel_applied["video"]
    assert done["compiled_blocks"] == 1
    assert done["compile_cache"]["dir"] == str(cache)
    saved = Path(done["compile_cache"]["artifacts_saved"])
    assert saved.parent == cache and saved.stat().st_size > 0
    assert any((cache / "fxgraph").iterdir())  # inductor's FX-graph cache went to the configured folder
