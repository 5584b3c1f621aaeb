"""Inputs and runs (issue 12, items 4-9): per-input failures, storage faults, resume safety, run ids,
interruption, and what a local Ray instance started by lanepipe listens on. Real files, real local Ray, real
servers on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import Resources, RunConfig, load_config
from lanepipe.engine import ResultItem, StageItem, StageSpec
from lanepipe.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "lanepipe.cli"]


def _cfg(inputs: list[str], out: Path, *sets: str):
    return load_config(None, ["input.max_frames=4", *sets], base={"input": {"paths": inputs}, "output": str(out)})


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s3_env(port: int) -> dict[str, str]:
    """S3 configured as a user would (tests/storage/conftest.py), at an endpoint that refuses connections."""
    return {"AWS_ACCESS_KEY_ID": "lanepipe-test", "AWS_SECRET_ACCESS_KEY": "lanepipe-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1",
            "LANEPIPE_STORAGE_RETRIES": "2", "LANEPIPE_STORAGE_RETRY_DELAY": "0.05"}


#: the CLI with Ctrl-C's default action: a shell that runs the suite in the background (``make test &``) starts it
#: with SIGINT ignored, an ignored signal stays ignored across exec, and the run would rightly keep it so
CLI_CTRL_C = [sys.executable, "-c", "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "runpy.run_module('lanepipe.cli', run_name='__main__', alter_sys=True)"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


# --- item 7: run ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", ".hidden", "x..y", "", "a b", "x" * 129])
def test_run_id_outside_the_output_is_refused(tmp_path: Path, synthetic_clip_file: Path, bad: str) -> None:
    work = tmp_path / "w"
    out = work / "a" / "b" / "out"
    out.mkdir(parents=True)
    with pytest.raises(ConfigError, match="run_id"):
        _cfg([str(synthetic_clip_file)], out, f"run_id='{bad}'")
    res = subprocess.run([*CLI, "segment", "-i", str(synthetic_clip_file), "-o", str(out), "--run-id", bad,
                          "--executor", "sequential"], capture_output=True, text=True, timeout=120, check=False,
                         env=_env(), cwd=work)
    assert res.returncode == 2 and "run_id" in res.stderr, res.stderr[-2000:]
    assert [p for p in work.rglob("*") if not p.is_dir()] == [], "nothing may be written anywhere"


def test_from_run_id_is_validated_too(tmp_path: Path) -> None:
    for bad in ("..", "a b", "-x"):
        with pytest.raises(ConfigError, match="from_run"):
            load_config(None, [f"from_run='{bad}'", "stages=edit"], base={"output": str(tmp_path)})
    ok = load_config(None, ["from_run=20261125T203000Z-1a2b3c4d", "stages=edit", "run_id=my_run.2"])
    assert ok.from_run == "20261125T203000Z-1a2b3c4d" and ok.run_id == "my_run.2"


# --- item 9: what a local Ray instance started by lanepipe listens on ---------------------------------------------

_LISTENERS = r"""
import json, sys, time, psutil, ray
from lanepipe.actors.runner import start_ray
from lanepipe.config import RayConfig
start_ray(RayConfig(num_cpus=1, **json.loads(sys.argv[1])))
ray.get(ray.remote(lambda: 1).remote())
time.sleep(3)  # agents and the metrics exporter come up a moment after the node
me = psutil.Process()
out = []
for p in [me, *me.children(recursive=True)]:
    try:
        out += [[p.name(), c.laddr.ip, c.laddr.port] for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        pass
ray.shutdown()
print("LISTEN " + json.dumps(out))
"""


def _ray_listeners(tmp_path: Path, ray_cfg: dict[str, str]) -> list[list[object]]:
    res = subprocess.run([sys.executable, "-c", _LISTENERS, json.dumps(ray_cfg)], capture_output=True, text=True,
                         timeout=240, check=False, env=_env(), cwd=tmp_path)
    line = [x for x in res.stdout.splitlines() if x.startswith("LISTEN ")]
    assert res.returncode == 0 and line, res.stderr[-3000:]
    listeners: list[list[object]] = json.loads(line[0].removeprefix("LISTEN "))
    return listeners


def test_local_ray_started_by_lanepipe_listens_on_loopback_only(tmp_path: Path) -> None:
    listeners = _ray_listeners(tmp_path, {})
    names = {str(n) for n, _, _ in listeners}
    assert any("raylet" in n for n in names) and any("gcs" in n for n in names), listeners
    exposed = [x for x in listeners if x[1] not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
    assert exposed == [], f"listening beyond loopback: {exposed}"


# --- item 4: each input fails alone -----------------------------------------------------------------------------


def test_each_bad_input_is_a_failed_row_and_the_good_clip_runs(tmp_path: Path, synthetic_clip_file: Path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "readme.txt").write_text("no videos here")
    s3 = "s3://lanepipe-test/clips/*.mp4"
    inputs = [str(synthetic_clip_file), "ftpx://host/clip.mp4", str(empty), s3]
    out = tmp_path / "runs"
    res = subprocess.run([*CLI, "segment", *[a for i in inputs for a in ("-i", i)], "-o", str(out), "--run-id",
                          "mixed", "--set", "input.max_frames=4", "--executor", "sequential"],
                         capture_output=True, text=True, timeout=300, check=False, env=_env(**s3_env(closed_port())))
    assert res.returncode != 2, res.stderr[-3000:]
    df = pd.read_parquet(out / "mixed" / "results.parquet").set_index("source")
    assert set(df.index) == set(inputs), df
    assert df.loc[str(synthetic_clip_file), "status"] == "ok"
    assert (out / "mixed" / "segment" / "synthetic" / "meta.json").is_file()
    for bad, found in (("ftpx://host/clip.mp4", "unknown scheme 'ftpx'"), (str(empty), "no video files"),
                       (s3, "found")):
        row = df.loc[bad]
        assert row.status == "failed" and row.error_type == "InputError", row
        assert row.error.startswith(f"{bad}: expected ") and found in row.error, row.error
    assert "Connect" in df.loc[s3, "error"] or "connect" in df.loc[s3, "error"], df.loc[s3, "error"]
    assert "3 failed" in res.stderr, res.stderr[-3000:]


def test_no_input_resolving_fails_the_run_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    cfg = _cfg(["ftpx://host/clip.mp4", str(empty)], tmp_path / "runs", "run_id=none")
    with pytest.raises(InputError) as e:
        pipeline.run(cfg, executor="sequential")
    assert "unknown scheme 'ftpx'" in str(e.value) and "no video files" in str(e.value)
    assert not (tmp_path / "runs").exists()


# --- item 6: resuming with other settings or fewer inputs --------------------------------------------------------


def test_resume_with_other_settings_is_refused_and_fewer_inputs_keep_their_rows(tmp_path: Path,
                                                                               synthetic_clip_file: Path) -> None:
    second = tmp_path / "second.mp4"
    second.write_bytes(synthetic_clip_file.read_bytes())
    both = [str(synthetic_clip_file), str(second)]
    out = tmp_path / "runs"
    first = pipeline.run(_cfg(both, out, "run_id=r"), executor="sequential")
    assert [r["status"] for r in first.rows] == ["ok", "ok"]
    run = out / "r"
    manifest_before = (run / "manifest.json").read_text()
    results_before = (run / "results.parquet").read_bytes()

    with pytest.raises(ConfigError) as e:
        pipeline.run(_cfg(both, out, "run_id=r", "input.max_frames=6", "segment.overlay=false"),
                     executor="sequential")
    msg = str(e.value)
    assert "input.max_frames: 4 → 6" in msg and "segment.overlay: True → False" in msg, msg
    assert "--resume-changed-config" in msg
    assert (run / "manifest.json").read_text() == manifest_before  # nothing touched
    assert (run / "results.parquet").read_bytes() == results_before

    # fewer inputs, same settings: the other clip's row stays (its outputs are still there)
    again = pipeline.run(_cfg([str(second)], out, "run_id=r"), executor="sequential")
    assert [(r["clip"], r["skipped"]) for r in again.rows] == [("second", True)]
    df = pd.read_parquet(run / "results.parquet")
    assert sorted(df["clip"]) == ["second", "synthetic"] and set(df.status) == {"ok"}
    assert json.loads((run / "manifest.json").read_text())["stages"]["segment"]["items"] == 2
    assert len(pd.read_csv(run / "videopainter" / "meta.csv")) == 2

    # asked explicitly: resumes with the new settings and records what changed
    res = subprocess.run([*CLI, "run", "--stages", "segment", "-i", str(second), "-o", str(out), "--run-id", "r",
                          "--set", "input.max_frames=6", "--executor", "sequential", "--resume-changed-config"],
                         capture_output=True, text=True, timeout=300, check=False, env=_env())
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["input"]["max_frames"] == 6
    assert manifest["config_changes"][-1]["keys"] == ["input.max_frames"]
    assert sorted(pd.read_parquet(run / "results.parquet")["clip"]) == ["second", "synthetic"]


# --- item 5: storage that fails ----------------------------------------------------------------------------------


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(stderr.splitlines()) <= 8, stderr[-3000:]
    return errors[0]


def test_unreachable_output_store_ends_in_one_line_error(tmp_path: Path, synthetic_clip_file: Path) -> None:
    port = closed_port()
    res = subprocess.run([*CLI, "segment", "-i", str(synthetic_clip_file), "-o", "s3://lanepipe-test/runs",
                          "--run-id", "r", "--set", "input.max_frames=4", "--executor", "sequential"],
                         capture_output=True, text=True, timeout=300, check=False, env=_env(**s3_env(port)),
                         cwd=tmp_path)
    assert res.returncode == 3, res.stderr[-3000:]
    line = _one_line_error(res.stderr)
    assert "s3://lanepipe-test/runs/r" in line and f"127.0.0.1:{port}" in line and "--run-id r" in line, line


def _limit_file_size(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # a write past it fails with EFBIG
    return apply


def test_full_disk_while_writing_results_ends_in_one_line_error_and_resumes(tmp_path: Path,
                                                                            synthetic_clip_file: Path) -> None:
    out = tmp_path / "runs"
    cmd = [*CLI, "segment", "-i", str(synthetic_clip_file), "-o", str(out), "--run-id", "r", "--executor",
           "sequential", "--set", "input.max_frames=4", "--set", "segment.overlay=false",
           "--set", "segment.videopainter=false"]
    # the clip's outputs (< 1 KB each) and manifest.json (~10.3 KB) fit; results.parquet (~13 KB) does not
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=_env(), cwd=tmp_path,
                         preexec_fn=_limit_file_size(11800))
    assert res.returncode == 3, res.stderr[-3000:]
    line = _one_line_error(res.stderr)
    assert "File too large" in line and "--run-id r" in line and str(out / "r") in line, line
    run = out / "r"
    assert (run / "segment" / "synthetic" / "meta.json").is_file() and not (run / "results.parquet").exists()
    assert json.loads((run / "manifest.json").read_text())["stages"]["segment"]["status"] == "failed"
    assert not [p for p in run.rglob("*.tmp")], "no half-written temp files"

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=_env(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    df = pd.read_parquet(run / "results.parquet")
    assert df["status"].tolist() == ["ok"] and df["skipped"].tolist() == [True]


# --- item 8: interrupted runs ------------------------------------------------------------------------------------


def _stage_status(run: Path) -> str | None:
    try:
        return str(json.loads((run / "manifest.json").read_text())["stages"]["segment"]["status"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_records_interrupted_and_stops_the_local_ray(tmp_path: Path, real_clips: list[Path],
                                                            sig: signal.Signals) -> None:
    import psutil

    out = tmp_path / "runs"
    cmd = [*CLI_CTRL_C, "segment", *[a for c in real_clips for a in ("-i", str(c))], "-o", str(out), "--run-id", "r",
           "--set", "ray.num_cpus=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        ray_procs: list[psutil.Process] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:  # mid-stream: Ray up, the first clip written
            kids = psutil.Process(proc.pid).children(recursive=True)
            if _stage_status(out / "r") == "running" and any("raylet" in k.name() for k in kids) and \
                    any((out / "r" / "segment").glob("*/meta.json")):
                ray_procs = kids
                break
            time.sleep(0.2)
        assert ray_procs, "the run never got to its first clip through Ray"
        ray_procs = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, stderr[-3000:]
    assert "Traceback" not in stderr and "error: interrupted by" in stderr, stderr[-3000:]
    assert _stage_status(out / "r") == "interrupted"
    _, alive = psutil.wait_procs(ray_procs, timeout=30)
    assert [p.name() for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


def test_ctrl_c_while_ray_starts_stops_the_run_cleanly(tmp_path: Path, real_clips: list[Path]) -> None:
    """A Ctrl-C while ``ray.init`` runs waits for the start-up, then stops the run as interrupted (before, 3 of 6
    runs with the signal 1 s after the raylet appeared ended with exit 0 after the whole run, or SIGSEGV)."""
    import psutil

    out = tmp_path / "runs"
    cmd = [*CLI_CTRL_C, "segment", *[a for c in real_clips for a in ("-i", str(c))], "-o", str(out), "--run-id", "r",
           "--set", "ray.num_cpus=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            kids = psutil.Process(proc.pid).children(recursive=True)
            if _stage_status(out / "r") == "running" and any("raylet" in k.name() for k in kids):
                break
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "error: interrupted by SIGINT" in stderr and _stage_status(out / "r") == "interrupted"


def test_killed_driver_leaves_temp_files_only_in_the_run_and_resume_cleans_them(tmp_path: Path,
                                                                                 real_clips: list[Path]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "runs"
    run = out / "r"
    cmd = [*CLI, "segment", *[a for c in real_clips for a in ("-i", str(c))], "-o", str(out), "--run-id", "r",
           "--set", "input.max_frames=12", "--executor", "sequential"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(TMPDIR=str(tmp)),
                            cwd=tmp_path)
    caught: list[Path] = []
    try:
        deadline = time.monotonic() + 180
        while not caught and time.monotonic() < deadline and proc.poll() is None:
            for root in (tmp, run / ".scratch"):  # an encoder's temp file, mid-write
                if root.is_dir():
                    caught += [p for p in root.glob("lanepipe-*/out.mp4")]
            if not caught:
                time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)  # no handler, no finally: what a killed worker or driver leaves
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert caught, "never saw an encoder's temp file"
    assert list(tmp.iterdir()) == [], "temp files outside the run are never cleaned"
    assert [p for p in run.glob(".scratch/lanepipe-*/out.mp4")], "the killed writer's temp file is in the run"
    assert _stage_status(run) == "running"

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=_env(TMPDIR=str(tmp)),
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "still said 'running'" in res.stderr and "interrupted" in res.stderr, res.stderr[-3000:]
    assert not [p for p in run.rglob("*") if ".scratch" in p.parts and p.is_file()]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["segment"]["status"] == "done"
    assert manifest["interruptions"][-1]["recorded"].startswith("driver killed")
    assert pd.read_parquet(run / "results.parquet")["status"].tolist() == ["ok"] * len(real_clips)


class TempWriter:
    """A test stage: writes one file through ``storage.atomic_local_file`` and reports where it was staged."""

    name = "segment"

    def __init__(self, cfg: RunConfig, out: str) -> None:
        self.cfg, self.out = cfg, out

    def resources(self) -> Resources:
        return self.cfg.segment.resources

    def setup(self) -> None:
        pass

    def process(self, item: StageItem) -> list[StageItem]:
        from lanepipe.io import storage

        with storage.atomic_local_file(f"{self.out}/{item.get('name')}.bin") as tmp:
            tmp.write_bytes(b"x")
            staged = str(tmp.parent.parent)
        return [ResultItem(clip=str(item.get("name")), stage="segment", extra={"staged": staged})]


def test_ray_workers_stage_temp_files_in_the_runs_scratch(ray_local, tmp_path: Path) -> None:
    from lanepipe.actors.runner import RayDataRunner

    # this module is importable as ``test_runs`` here (pytest puts tests/ on sys.path) and in the actors
    path = os.pathsep.join([str(REPO), str(REPO / "tests")])
    cfg = load_config(None, ["segment.resources.runtime_env={env_vars: {PYTHONPATH: '" + path + "'}}"])
    scratch = tmp_path / "run" / ".scratch"
    spec = StageSpec(name="segment", target="test_runs:TempWriter", config="lanepipe.config:RunConfig",
                     cfg_json=cfg.model_dump_json(), args=(str(tmp_path / "out"),), scratch=str(scratch))
    rows = RayDataRunner(cfg.ray).run([spec], [{"source": f"s{i}.mp4", "name": f"c{i}"} for i in range(2)])
    assert sorted(r["staged"] for r in rows) == [str(scratch)] * 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c0.bin", "c1.bin"]
    assert list(scratch.iterdir()) == []  # each writer's temp folder is gone once its file landed


def test_merged_rows_match_rows_read_back_from_parquet(tmp_path: Path) -> None:
    """Rows read back from results.parquet carry NaN where a value is missing: they still match this invocation's."""
    from lanepipe.io.resume import merge_rows

    first = [{"stage": "segment", "clip": "a", "instruction": None, "status": "failed"},
             {"stage": "edit", "clip": "b", "instruction": "double yellow solid", "status": "ok"},
             {"stage": "segment", "clip": "c", "instruction": None, "status": "ok", "num_frames": 4}]
    pd.DataFrame(first).to_parquet(tmp_path / "r.parquet")
    previous = pd.read_parquet(tmp_path / "r.parquet").to_dict("records")
    now = [{"stage": "segment", "clip": "a", "status": "failed", "error": "again"}]
    merged = merge_rows(previous, now)
    assert [(r["stage"], r["clip"]) for r in merged] == [("segment", "a"), ("edit", "b"), ("segment", "c")]
    assert merged[0] == now[0] and merged[1]["num_frames"] is None and merged[2]["num_frames"] == 4
