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
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep", Path(__file__).parents[1] / "jobs" / "sweep.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(["-c", str(Path(__file__).parents[1] / "jobs/configs/segment_sweep.yaml"), "--address", "local",
                   "--set", f"input.paths=['{synthetic_clip_file}']", "--set", f"output={tmp_path}",
                   "--set", "run_id=job"])
    assert rc == 0 and "1 ok, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "job" / "segment" / "synthetic" / "meta.json").is_file()
    assert mod.main(["--set", "segment.backend=nope"]) == 2
