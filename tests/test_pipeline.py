"""End-to-end runs of the segment stage through Ray Data actor pools (local Ray) and the sequential runner."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.errors import ConfigError, InputError
from lanepipe.io.video import decode, probe

pytestmark = pytest.mark.ray


def _cfg(inputs: list[str], out: Path, *sets: str):
    return load_config(None, ["input.max_frames=12", *sets], base={"input": {"paths": inputs}, "output": str(out)})


def _check_clip_outputs(run: Path, clip: str) -> None:
    d = run / "segment" / clip
    meta = json.loads((d / "meta.json").read_text())
    t, h, w = meta["num_frames"], meta["height"], meta["width"]
    pngs = sorted((d / "masks").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(t)]
    import cv2

    m0 = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert m0.shape == (h, w) and set(np.unique(m0)) <= {0, 255}
    with np.load(d / "all_masks.npz") as z:
        # arr_0 as VideoPainter reads it; hood_top only when the clip shows the ego vehicle's hood (camera B)
        assert sorted(z.keys()) in (["arr_0"], ["arr_0", "hood_top"])
        ids = z["arr_0"]
        hood = z["hood_top"] if "hood_top" in z.files else None
    assert ids.shape == (t, h, w) and ids.dtype == np.uint8 and set(np.unique(ids)) <= {0, 1}
    assert (hood is None) == (meta["hood_row"] is None)
    if hood is not None:
        assert hood.shape == (w,) and int(hood.min()) == meta["hood_row"]
        assert not (ids.astype(bool) & (np.arange(h)[:, None] >= hood[None, :])[None]).any()
    assert np.array_equal(ids[0] * 255, m0)
    assert decode(str(d / "overlay.mp4"), target_fps=None).num_frames == t
    vp = run / "videopainter"
    raw = vp / "raw_videos" / clip / f"{clip}.0.mp4"
    assert decode(str(raw), target_fps=None).frames.shape == (t, h, w, 3)
    with np.load(vp / "masks" / clip / "all_masks.npz") as z:
        assert np.array_equal(z["arr_0"], ids)


def test_segment_sweep_records_bad_clips_and_completes_good_ones(ray_local, tmp_path: Path, real_clip: Path,
                                                                 synthetic_clip_file: Path,
                                                                 bad_inputs: dict[str, Path]) -> None:
    bad = [bad_inputs[k] for k in ("missing", "zero", "truncated", "audio_only", "one_frame")]
    cfg = _cfg([str(real_clip), str(synthetic_clip_file), *map(str, bad)], tmp_path / "runs")
    summary = pipeline.run(cfg)
    run = Path(summary.url)
    df = pd.read_parquet(run / "results.parquet")
    assert len(df) == 7
    ok = df[df.status == "ok"]
    assert set(ok["clip"]) == {real_clip.stem, "synthetic"}
    failed = df[df.status == "failed"].set_index("clip")
    assert set(failed["error_type"]) == {"InputError"}
    assert "zero-byte" in failed.loc["zero", "error"] and "truncated" in failed.loc["truncated", "error"]
    for clip in ok["clip"]:
        _check_clip_outputs(run, clip)
    # real: 38 frames at 25 fps → 13 at 8 fps, capped at 12; synthetic: 16 frames at 25 fps → 5 at 8 fps
    assert dict(zip(ok["clip"], ok.num_frames, strict=True)) == {real_clip.stem: 12, "synthetic": 5}
    assert (ok.fps == 8.0).all()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["run_id"] == summary.run_id == run.name
    assert manifest["stages"]["segment"]["status"] == "partial"
    assert manifest["stages"]["segment"]["ok"] == 2
    assert {"python", "ray", "numpy"} <= set(manifest["versions"])
    sha = {i["clip"]: i["sha256"] for i in manifest["inputs"]}
    import hashlib

    assert sha[real_clip.stem] == hashlib.sha256(real_clip.read_bytes()).hexdigest()
    meta = pd.read_csv(run / "videopainter" / "meta.csv")
    assert list(meta.columns) == ["path", "mask_id", "start_frame", "end_frame", "fps", "caption"]
    assert sorted(meta.path) == sorted(f"{c}.0.mp4" for c in ok["clip"])
    assert (meta.mask_id == 1).all() and sorted(meta.end_frame) == [5, 12]


def test_rerun_same_run_id_skips_finished_and_retries_failed(ray_local, tmp_path: Path,
                                                             synthetic_clip_file: Path) -> None:
    late = tmp_path / "late.mp4"
    cfg = _cfg([str(synthetic_clip_file), str(late)], tmp_path / "runs", "run_id=resume-test")
    first = pipeline.run(cfg)
    assert [r["status"] for r in first.rows] == ["ok", "failed"]
    npz = Path(first.url) / "segment" / "synthetic" / "all_masks.npz"
    stamp = npz.stat().st_mtime_ns
    shutil.copy(synthetic_clip_file, late)  # the missing clip appears
    second = pipeline.run(cfg)
    assert second.run_id == "resume-test" and second.skipped == 1
    assert [r["status"] for r in second.rows] == ["ok", "ok"]
    assert [r["skipped"] for r in second.rows] == [True, False]
    assert npz.stat().st_mtime_ns == stamp  # finished work untouched
    df = pd.read_parquet(Path(second.url) / "results.parquet")
    assert list(df.status) == ["ok", "ok"]


def test_sequential_executor_matches_ray(ray_local, tmp_path: Path, synthetic_clip_file: Path) -> None:
    a = pipeline.run(_cfg([str(synthetic_clip_file)], tmp_path / "a"))
    b = pipeline.run(_cfg([str(synthetic_clip_file)], tmp_path / "b"), executor="sequential")
    with np.load(Path(a.url) / "segment/synthetic/all_masks.npz") as za, \
            np.load(Path(b.url) / "segment/synthetic/all_masks.npz") as zb:
        assert np.array_equal(za["arr_0"], zb["arr_0"])
    assert a.run_id.split("-")[-1] == b.run_id.split("-")[-1] != ""  # same settings → same config hash
    assert a.rows[0]["status"] == b.rows[0]["status"] == "ok"


def test_lineage_errors_come_before_any_work(tmp_path: Path, synthetic_clip_file: Path) -> None:
    with pytest.raises(ConfigError, match="--from-run"):
        pipeline.run(_cfg([str(synthetic_clip_file)], tmp_path, "stages=edit"))
    with pytest.raises(InputError, match="no manifest"):
        pipeline.run(_cfg([str(synthetic_clip_file)], tmp_path, "stages=edit,evaluate", "from_run=nope"))
    with pytest.raises(ConfigError, match="drop --from-run"):
        pipeline.run(_cfg([str(synthetic_clip_file)], tmp_path, "from_run=x"))
    # a run with no finished segment clips cannot feed edit
    empty = tmp_path / "r0"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"run_id": "r0", "stages": {}}))
    with pytest.raises(InputError, match="no finished clips"):
        pipeline.run(_cfg([], tmp_path, "stages=edit", "from_run=r0"))
    assert not list(tmp_path.glob("2*"))  # nothing was started


def test_later_stage_needs_the_stage_before_it_finished(tmp_path: Path, synthetic_clip_file: Path) -> None:
    up = pipeline.run(_cfg([str(synthetic_clip_file)], tmp_path, "run_id=up"), executor="sequential")
    assert up.rows[0]["status"] == "ok"
    with pytest.raises(InputError, match="no finished clips for 'edit'"):
        pipeline.run(_cfg([], tmp_path, "stages=evaluate", "from_run=up"))



def test_output_on_fsspec_url(tmp_path: Path, synthetic_clip_file: Path) -> None:
    import fsspec

    cfg = _cfg([str(synthetic_clip_file)], tmp_path)
    cfg.output = "memory://lp-runs"
    s = pipeline.run(cfg, executor="sequential")
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"/lp-runs/{s.run_id}/segment/synthetic/meta.json")
    df = pd.read_parquet(io.BytesIO(fs.cat(f"/lp-runs/{s.run_id}/results.parquet")))
    assert df.status.tolist() == ["ok"]
    with fs.open(f"/lp-runs/{s.run_id}/segment/synthetic/overlay.mp4", "rb") as f:
        assert len(f.read()) > 100
    fs.rm("/lp-runs", recursive=True)


def test_probe_fallbacks_on_written_clip(synthetic_clip_file: Path) -> None:
    info = probe(str(synthetic_clip_file))
    assert info.fps == pytest.approx(25.0) and info.num_frames == 16


def test_sam2_tiny_random_end_to_end_through_ray_actor_on_logical_gpu(ray_local, tmp_path: Path,
                                                                       real_clip: Path) -> None:
    cfg = _cfg([str(real_clip)], tmp_path, "segment.backend=sam2", "segment.sam2.preset=tiny-random",
               "segment.resources.num_gpus=1", "segment.sam2.reprompt_every=2", "input.max_frames=4")
    summary = pipeline.run(cfg)
    row = summary.rows[0]
    assert row["status"] == "ok", row["error"]
    assert row["backend"] == "sam2" and row["num_frames"] == 4
    _check_clip_outputs(Path(summary.url), real_clip.stem)
    manifest = json.loads((Path(summary.url) / "manifest.json").read_text())
    assert manifest["config"]["segment"]["backend"] == "sam2"
    assert manifest["stages"]["segment"]["status"] == "done"


def test_gpu_pools_that_cannot_all_be_up_are_named_with_shares_that_fit(ray_local, tmp_path: Path) -> None:
    """On the session's one (logical) GPU, SAM2's default 0.5 beside the generative edit's 1 cannot both be
    reserved; with ``ray.fit_pools`` off (an autoscaling cluster) the Ray runner warns with the asks and shares that
    fit; explicit shares that fit, or more GPUs, say nothing."""
    from lanepipe.actors.runner import pools_gpu_warning
    from lanepipe.pipeline import stage_spec

    def pools(*sets: str) -> dict:
        cfg = _cfg([], tmp_path, "segment.backend=sam2", "segment.sam2.preset=tiny-random",
                   "edit.backend=flux_cogvideox", "edit.preset=tiny-random", *sets)
        return {n: stage_spec(n, cfg, str(tmp_path), "r", str(tmp_path), "r").build().resources()
                for n in ("segment", "edit", "evaluate")}

    msg = pools_gpu_warning(pools(), 1.0)
    assert msg is not None and "ask for 1.5 GPUs (segment 1 x 0.5, edit 1 x 1) but the Ray cluster has 1" in msg
    assert "--set segment.resources.num_gpus=0.33 --set edit.resources.num_gpus=0.66" in msg
    assert pools_gpu_warning(pools("segment.resources.num_gpus=0.2", "edit.resources.num_gpus=0.8"), 1.0) is None
    assert pools_gpu_warning(pools(), 2.0) is None
    assert pools_gpu_warning(pools("edit.resources.concurrency=2", "edit.resources.num_gpus=1"), 2.0) is not None
