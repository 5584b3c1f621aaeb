"""Decode once per worker (a small decoded-clip cache) and image metrics measured on the edited frames in memory,
before the lossy encode."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.io import clip_cache
from lanepipe.io.clip_cache import ClipCache
from lanepipe.metrics import IMAGE_METRIC_KEYS


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lanepipe.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), num_frames=16, width=320, height=180)


def test_cache_decodes_a_clip_once_per_settings(synthetic_clip_file: Path) -> None:
    cache = ClipCache(max_bytes=64 * 2**20)
    a = cache.decode(str(synthetic_clip_file), name="a", max_frames=8)
    b = cache.decode(str(synthetic_clip_file), name="b", max_frames=8)
    assert (cache.decodes, cache.hits) == (1, 1)
    assert b.name == "b" and a.name == "a" and b.frames is a.frames
    assert not a.frames.flags.writeable  # shared: stages copy before drawing
    cache.decode(str(synthetic_clip_file), max_frames=4)  # other settings: another decode
    assert cache.decodes == 2
    st = synthetic_clip_file.stat()
    os.utime(synthetic_clip_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # file rewritten: decoded again
    cache.decode(str(synthetic_clip_file), max_frames=8)
    assert cache.decodes == 3


def test_cache_is_bounded(synthetic_clip_file: Path) -> None:
    first = ClipCache().decode(str(synthetic_clip_file), max_frames=8)
    one = first.frames.nbytes
    cache = ClipCache(max_bytes=int(one * 1.5))
    cache.decode(str(synthetic_clip_file), max_frames=8)
    cache.decode(str(synthetic_clip_file), max_frames=8, target_fps=4.0)  # evicts the first (bytes bound)
    cache.decode(str(synthetic_clip_file), max_frames=8)
    assert cache.decodes == 3 and cache.nbytes <= cache.max_bytes
    off = ClipCache(max_bytes=0)  # disabled: decodes every time
    assert off.decode(str(synthetic_clip_file), max_frames=8).num_frames == first.num_frames and not off.nbytes


def test_a_sequential_run_decodes_the_source_once(tmp_path: Path, sample_file: Path) -> None:
    """segment + edit + evaluate + render with 2 instructions: the source is decoded once (it was decoded 6 times),
    each edited clip once (evaluate and render share it), and the re-encoded original (evaluate's baseline) and the
    null edit (the noise floor) once each."""
    clip_cache.CLIPS.clear()
    cfg = load_config(None, ["stages=all", "run_id=once", "input.max_frames=8", "edit.qa.max_iterations=1",
                             "edit.instructions=[single white dashed, double yellow solid]",
                             "evaluate.predictors=[lane_keep]", "render.report=false"],
                      base={"input": {"paths": [str(sample_file)]}, "output": str(tmp_path)})
    summary = pipeline.run(cfg, executor="sequential")
    assert not summary.failed, [r["error"] for r in summary.failed]
    assert clip_cache.CLIPS.decodes == 1 + 2 + 2, (clip_cache.CLIPS.decodes, clip_cache.CLIPS.hits)
    # edit; evaluate (source) twice; render (source, edited) twice; the second evaluate's baseline
    assert clip_cache.CLIPS.hits == 1 + 2 + 2 * 2 + 1


def test_image_metrics_are_measured_before_encoding(tmp_path: Path, sample_file: Path) -> None:
    """A procedural edit changes no pixel outside the road mask: PSNR outside it is exact (inf), not the codec's
    ~40 dB; evaluate reports the edit stage's figures."""
    cfg = load_config(None, ["stages=segment,edit,evaluate", "run_id=m", "input.max_frames=8",
                             "edit.qa.max_iterations=1", "edit.instructions=[double yellow solid]"],
                      base={"input": {"paths": [str(sample_file)]}, "output": str(tmp_path)})
    summary = pipeline.run(cfg, executor="sequential")
    edit = next(r for r in summary.rows if r["stage"] == "edit")
    ev = next(r for r in summary.rows if r["stage"] == "evaluate")
    assert edit["status"] == "ok" and ev["status"] == "ok", (edit["error"], ev["error"])
    assert edit["psnr_out_mask"] == float("inf")
    assert np.isfinite(edit["psnr_in_mask"]) and edit["psnr_in_mask"] < 40  # lines were painted in the mask
    assert edit["ssim_out_mask"] == pytest.approx(1.0, abs=1e-4)  # windowed SSIM sees the edges
    for k in IMAGE_METRIC_KEYS:
        assert ev[k] == edit[k]
    meta = json.loads((tmp_path / "m" / "edit" / edit["clip"] / "double-yellow-solid" / "meta.json").read_text())
    assert meta["psnr_out_mask"] == float("inf")
    doc = json.loads(Path(ev["evaluation"]).read_text())
    assert doc["image_metrics"]["psnr_out_mask"] == float("inf")
    df = pd.read_parquet(tmp_path / "m" / "results.parquet")
    assert np.isinf(df.loc[df.stage == "evaluate", "psnr_out_mask"]).all()
