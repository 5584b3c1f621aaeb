from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from lanepipe.cli import app

runner = CliRunner()


def test_config_show_prints_effective_config() -> None:
    res = runner.invoke(app, ["config", "show", "--set", "segment.resources.concurrency=3"])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(res.stdout)
    assert cfg["segment"]["resources"]["concurrency"] == 3 and cfg["segment"]["backend"] == "grid"


def test_segment_shortcut_through_ray(ray_local, tmp_path: Path, synthetic_clip_file: Path) -> None:
    res = runner.invoke(app, ["segment", "-i", str(synthetic_clip_file), "-o", str(tmp_path),
                              "--run-id", "cli-run", "--set", "input.max_frames=4"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "cli-run"
    assert res.stdout.strip().endswith(str(run))
    df = pd.read_parquet(run / "results.parquet")
    assert df.status.tolist() == ["ok"] and df.num_frames.tolist() == [4]
    again = runner.invoke(app, ["run", "--stages", "segment", "-i", str(synthetic_clip_file), "-o", str(tmp_path),
                                "--run-id", "cli-run", "--set", "input.max_frames=4"])
    assert again.exit_code == 0 and "1 skipped" in again.output


def test_errors_exit_2_with_the_reason(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "lanepipe.cli"]
    bad_cfg = subprocess.run([*exe, "run", "--set", "segment.backend=nope", "-o", str(tmp_path)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert bad_cfg.returncode == 2 and "segment.backend" in bad_cfg.stderr
    bad_scheme = subprocess.run([*exe, "segment", "-i", "ftpx://x/y.mp4", "-o", str(tmp_path),
                                 "--executor", "sequential"], capture_output=True, text=True, timeout=120,
                                check=False)
    assert bad_scheme.returncode == 2 and "unknown scheme" in bad_scheme.stderr


def test_sweep_job_entrypoint(ray_local, tmp_path: Path, synthetic_clip_file: Path, capsys) -> None:
    from lanepipe.testing import load_script

    mod = load_script("jobs/sweep.py", "sweep")
    rc = mod.main(["-c", str(Path(__file__).parents[1] / "jobs/configs/segment_sweep.yaml"), "--address", "local",
                   "--set", f"input.paths=['{synthetic_clip_file}']", "--set", f"output={tmp_path}",
                   "--set", "run_id=job"])
    assert rc == 0 and "1 ok, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "job" / "segment" / "synthetic" / "meta.json").is_file()
    assert mod.main(["--set", "segment.backend=nope"]) == 2


def test_backends_lists_every_backend_with_what_it_needs() -> None:
    res = runner.invoke(app, ["backends"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    for cap, group in (("segmenter", "lanepipe.segmenters"), ("painter", "lanepipe.painters"),
                       ("verifier", "lanepipe.verifiers"), ("predictor", "lanepipe.predictors")):
        assert f"{cap} (" in out and group in out
    for name in ("grid", "sam2", "procedural", "flux_cogvideox", "lane_detector", "qwen_vl", "lane_keep", "alpamayo"):
        assert f"\n  {name} " in out
    assert "resources: 1 CPU + 1 GPU" in out and "alpamayo=1" in out and "0.5 GPU if any" in out
    assert "extra: generative (" in out and "weights: none" in out


def test_a_user_painter_runs_end_to_end(tmp_path: Path) -> None:
    """edit.backend=module:Class (tests/user_backends.py, the README's example) through `lanepipe run`."""
    import json

    from lanepipe.io.video import decode
    from lanepipe.sample import write_sample

    sample_clip = write_sample(tmp_path / "sample", num_frames=6, width=480, height=272)

    res = runner.invoke(app, ["run", "--stages", "segment,edit", "-i", str(sample_clip), "-o", str(tmp_path),
                              "--run-id", "user", "--executor", "sequential", "-e", "single white solid",
                              "--set", "edit.backend=user_backends:StripePainter", "--set", "edit.options.width_px=6",
                              "--set", "edit.qa.max_iterations=2", "--set", "input.max_frames=4"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "user"
    df = pd.read_parquet(run / "results.parquet")
    assert df.status.tolist() == ["ok", "ok"], df.error.tolist()
    edit = df[df.stage == "edit"].iloc[0]
    assert edit.backend == "user_backends:StripePainter"
    d = run / "edit" / "sample" / "single-white-solid"
    qa = json.loads((d / "qa.json").read_text())
    assert qa["backend"] == "user_backends:StripePainter" and qa["iterations"][0]["width_px"] == 6
    assert qa["final_verdict"] == qa["iterations"][-1]["verdict"] and 1 <= len(qa["iterations"]) <= 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert "user_backends:StripePainter" in json.dumps(manifest)
    src = decode(str(sample_clip), max_frames=4).frames
    out = decode(str(d / "edited.mp4"), target_fps=None).frames
    mid = src.shape[2] // 2
    assert out.shape == src.shape
    assert out[:, -20:, mid - 2:mid + 2].mean() > src[:, -20:, mid - 2:mid + 2].mean() + 40  # the white stripe
