"""`ray job submit` of jobs/sweep.py to a real local head started with `ray start --head` (dashboard on).

The head is a separate cluster from the session's in-process one (``ray_local``): its own ports (all chosen
free on 127.0.0.1), its own ``--temp-dir``, its own auth token, and node IP 127.0.0.1
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; by default Ray replaces 127.0.0.1 with the machine's address).
It is stopped by the pids of its ``ray start --block`` process and that process's descendants, never by
``ray stop``, which would kill every Ray process on the machine, the session's cluster included.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 300.0
EXCLUDES = [".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "runs", "*.egg-info", "__pycache__"]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1 (sockets held together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class RayHead:
    address: str  # the dashboard (job API) URL
    env: dict[str, str]
    token: str
    log: Path

    def get(self, path: str) -> dict[str, object]:
        req = urllib.request.Request(f"{self.address}{path}", headers={"Authorization": f"Bearer {self.token}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        with opener.open(req, timeout=5) as resp:
            data: dict[str, object] = json.loads(resp.read())
            return data


def _log_tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def _proc_table() -> dict[int, tuple[int, int]]:
    """``pid -> (ppid, start time)`` of every process (Linux /proc)."""
    table: dict[int, tuple[int, int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(d.name)] = (int(fields[1]), int(fields[19]))
    return table


def _descendants(root: int) -> dict[int, int]:
    """``pid -> start time`` of every descendant of ``root`` (Ray workers get process groups of their own)."""
    table = _proc_table()
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def _stop_head(proc: subprocess.Popen[bytes]) -> None:
    """Stop the head this test started, by pid: SIGTERM to `ray start --block` (it stops what it started), then
    SIGKILL to any of its descendants still alive (same pid and start time)."""
    tree = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        table = _proc_table()
        alive = [pid for pid, start in tree.items() if pid in table and table[pid][1] == start]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[RayHead]:
    if not (VENV_BIN / "ray").exists():
        pytest.fail(f"{VENV_BIN / 'ray'} not found: install ray[default] into the venv")
    # short: Ray puts unix sockets under it (107-character limit); apart from the session's Ray's /tmp/ray
    temp_dir = Path(tempfile.mkdtemp(prefix="lp-rayhead-", dir="/tmp"))
    gcs, dash, client, node_mgr, obj_mgr, metrics, agent_http, agent_grpc, env_agent = _free_ports(9)
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # `python` in the job is the venv's
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node IP stays 127.0.0.1
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # on SIGTERM stop at once (default: drain for up to 30 s)
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,  # this head's own token; ~/.ray/auth_token is neither read nor written
        "NO_PROXY": ",".join(filter(None, ["127.0.0.1", "localhost", env.get("NO_PROXY", "")])),
    })
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
           "--node-ip-address=127.0.0.1", f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           "--include-dashboard=true", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}",
           f"--ray-client-server-port={client}", f"--node-manager-port={node_mgr}",
           f"--object-manager-port={obj_mgr}", f"--metrics-export-port={metrics}",
           f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
           f"--runtime-env-agent-port={env_agent}"]
    log = tmp_path / "ray-start.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    head = RayHead(address=f"http://127.0.0.1:{dash}", env=env, token=token, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`ray start --head` exited (rc={proc.returncode}): {' '.join(cmd)}\n{_log_tail(log)}")
            try:
                head.get("/api/jobs/")  # the job API answers: dashboard and job head module are up
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"Ray dashboard/job API not up on {head.address} within {START_TIMEOUT_S:.0f} s "
                                f"(the job API needs the dashboard: ray[default])\n{_log_tail(log)}")
                time.sleep(0.5)
        yield head
    finally:
        _stop_head(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_the_sweep_entry_point(ray_head: RayHead, tmp_path: Path, real_clip: Path) -> None:
    out = tmp_path / "runs"
    run_id = "20260101T000000Z-jobsubmit"
    submission_id = f"lanepipe-test-{secrets.token_hex(4)}"
    cmd = [str(VENV_BIN / "ray"), "job", "submit", "--address", ray_head.address, "--submission-id", submission_id,
           "--working-dir", str(REPO), "--runtime-env-json", json.dumps({"excludes": EXCLUDES}), "--",
           "python", "jobs/sweep.py", "-c", "jobs/configs/smoke_sweep.yaml",
           "--set", f"input.paths=['{real_clip}']", "--set", f"output={out}", "--set", f"run_id={run_id}"]
    try:
        proc = subprocess.run(cmd, env=ray_head.env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=JOB_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`ray job submit` did not finish in {JOB_TIMEOUT_S:.0f} s: {e.stdout!r}\n"
                    f"{_log_tail(ray_head.log)}")
    status = ray_head.get(f"/api/jobs/{submission_id}")
    assert proc.returncode == 0 and status["status"] == "SUCCEEDED", (
        f"rc={proc.returncode} status={status}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    assert f"run {run_id}: 1 ok, 0 failed, 0 skipped" in proc.stdout

    run = out / run_id
    df = pd.read_parquet(run / "results.parquet")
    assert list(df["clip"]) == [real_clip.stem] and list(df.status) == ["ok"] and list(df.num_frames) == [4]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["ray"]["address"] == "auto" and manifest["stages"]["segment"]["status"] == "done"
    masks = sorted((run / "segment" / real_clip.stem / "masks").glob("*.png"))
    assert [p.name for p in masks] == [f"{i:05d}.png" for i in range(4)]
    assert (run / "segment" / real_clip.stem / "meta.json").is_file()
    assert (run / "videopainter" / "meta.csv").is_file()


def test_dataset_filter_train_job_then_edit_with_the_lora(ray_head: RayHead, tmp_path: Path, real_clip: Path,
                                                          data_dir: Path) -> None:
    """Issue 6's tiny chain: `lanepipe dataset` from a real still and a real clip → `lanepipe filter` →
    `ray job submit jobs/train_lora.py` (Ray Train, tiny-random FLUX Fill) → `lanepipe run` editing the clip with
    the trained adapter (flux_cogvideox, tiny-random)."""
    lanepipe = str(VENV_BIN / "lanepipe")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    still = next(iter(sorted((data_dir / "udacity_advanced_lane_lines" / "test_images").glob("*.jpg"))))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([lanepipe, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=JOB_TIMEOUT_S, check=False)
        assert proc.returncode == 0, f"lanepipe {' '.join(args)}: rc={proc.returncode}\n{proc.stdout[-3000:]}\n" \
                                     f"{proc.stderr[-3000:]}"
        return proc

    ds, kept = tmp_path / "ds", tmp_path / "kept"
    cli("dataset", "-i", str(still), "-i", str(real_clip), "-o", str(ds), "--stride", "2", "--max-frames", "2",
        "--executor", "sequential")
    rows = pd.read_csv(ds / "train.csv")
    assert len(rows) == 3 and list(rows.columns) == ["image", "mask", "prompt", "prompt_2"]
    assert all(p.startswith("road with ") and p.endswith(" lane markings") for p in rows.prompt)
    cli("filter", str(ds), "-o", str(kept), "--link", "hardlink")
    assert len(pd.read_csv(kept / "train.csv")) == 3

    lora_out = tmp_path / "lora"
    submission_id = f"lanepipe-train-{secrets.token_hex(4)}"
    cmd = [str(VENV_BIN / "ray"), "job", "submit", "--address", ray_head.address, "--submission-id", submission_id,
           "--working-dir", str(REPO), "--runtime-env-json", json.dumps({
               "excludes": EXCLUDES, "env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}}), "--",
           "python", "jobs/train_lora.py", "--dataset", str(kept), "--output", str(lora_out),
           "--set", "preset=tiny-random", "--set", "max_steps=2", "--set", "checkpoint_every=1",
           "--set", "warmup_steps=0", "--set", "lr=0.01"]
    try:
        proc = subprocess.run(cmd, env=ray_head.env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=JOB_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"training job did not finish in {JOB_TIMEOUT_S:.0f} s: {e.stdout!r}\n{_log_tail(ray_head.log)}")
    status = ray_head.get(f"/api/jobs/{submission_id}")
    assert proc.returncode == 0 and status["status"] == "SUCCEEDED", (
        f"rc={proc.returncode} status={status}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    adapter = lora_out / "pytorch_lora_weights.safetensors"
    assert adapter.is_file() and "trained 2 step(s)" in proc.stdout
    summary = json.loads((lora_out / "train_summary.json").read_text())
    assert summary["steps"] == 2

    runs = tmp_path / "runs"
    cli("run", "--input", str(real_clip), "--stages", "segment,edit", "--output", str(runs), "--executor", "sequential",
        "--edit", "double yellow solid", "--set", "edit.backend=flux_cogvideox", "--set", "edit.preset=tiny-random",
        "--set", f"edit.generative.lora_path={adapter}", "--set", "edit.qa.max_iterations=1")
    df = pd.concat(pd.read_parquet(p) for p in runs.glob("*/results.parquet"))
    edit = df[df.stage == "edit"]
    assert list(edit.status) == ["ok"], edit.error.tolist()
    diag = json.loads(edit.geometry.iloc[0])
    assert diag["lora"] == str(adapter)
