"""Fault tolerance with real kills: a stage actor's process SIGKILLed mid-clip, and the driver SIGKILLed mid-sweep.

Both sweeps segment six small synthetic clips (40 frames each, ~0.5 s of work apiece) with one actor, so
the kills land while some clips are finished and others are not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import RunConfig, load_config
from lanepipe.io.video import encode

pytestmark = pytest.mark.ray

N_CLIPS = 6
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six 40-frame 8 fps 320x192 clips (road trapezoid, a different sky each)."""
    d = tmp_path_factory.mktemp("ft_clips")
    t, h, w = 40, 192, 320
    out = []
    for i in range(N_CLIPS):
        frames = np.zeros((t, h, w, 3), np.uint8)
        frames[:, : h // 2] = (120, 160 - 8 * i, 220)
        frames[:, h // 2 :] = (70, 110, 60)
        for y in range(h // 2, h):
            half = int((y - h // 2) / (h / 2) * w * 0.6)
            frames[:, y, max(0, w // 2 - half) : w // 2 + half] = (90, 90, 92)
        frames[:, :, :, 0] += np.arange(t, dtype=np.uint8)[:, None, None] % 7  # frames differ a little
        encode(frames, str(d / f"clip{i}.mp4"), 8.0)
        out.append(d / f"clip{i}.mp4")
    return out


def _cfg(clips: list[Path], out: Path, run_id: str) -> RunConfig:
    return load_config(None, [f"run_id={run_id}", "segment.resources.concurrency=1"],
                       base={"input": {"paths": [str(c) for c in clips]}, "output": str(out)})


def _temps(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob("*.tmp"))


def _check_run_complete(run: Path, clips: list[Path]) -> pd.DataFrame:
    """results.parquet has every clip once and ok; every clip folder is whole; no temp files or strays."""
    df = pd.read_parquet(run / "results.parquet")
    assert sorted(df["clip"]) == sorted(c.stem for c in clips)  # each clip exactly once
    assert (df["status"] == "ok").all(), df[["clip", "status", "error"]].to_string()
    assert _temps(run) == []
    assert sorted(p.name for p in (run / "segment").iterdir()) == sorted(c.stem for c in clips)
    for clip in df["clip"]:
        d = run / "segment" / clip
        meta = json.loads((d / "meta.json").read_text())
        assert meta["status"] == "ok" and meta["num_frames"] == 40
        assert sorted(p.name for p in d.iterdir()) == ["all_masks.npz", "masks", "meta.json", "overlay.mp4"]
        assert [p.name for p in sorted((d / "masks").iterdir())] == [f"{i:05d}.png" for i in range(40)]
        with np.load(d / "all_masks.npz") as z:
            assert z["arr_0"].shape == (40, 192, 320)
        raw = run / "videopainter" / "raw_videos" / clip
        assert [p.name for p in raw.iterdir()] == [f"{clip}.0.mp4"]
    meta_csv = pd.read_csv(run / "videopainter" / "meta.csv")
    assert sorted(meta_csv["path"]) == sorted(f"{c.stem}.0.mp4" for c in clips)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["segment"]["status"] == "done"
    assert manifest["stages"]["segment"]["ok"] == N_CLIPS
    return df


def _segment_actors() -> dict[str, dict[str, Any]]:
    """The segment stage's Ray Data actors of this driver's job, by actor id (from the GCS actor table)."""
    import ray
    from ray._private import state

    job = ray.get_runtime_context().get_job_id()
    return {aid: a for aid, a in state.actors().items()
            if "SegmentActor" in a["ActorClassName"] and a["JobID"] == job}


def _in_progress(run: Path) -> tuple[list[str], list[str]]:
    """(finished clips, clips being written: outputs started, no meta.json yet)."""
    seg = run / "segment"
    if not seg.is_dir():
        return [], []
    done, busy = [], []
    for d in seg.iterdir():
        if (d / "meta.json").exists():
            done.append(d.name)
        elif (d / "masks").is_dir():
            busy.append(d.name)
    return done, busy


def test_killed_actor_is_restarted_and_every_clip_finishes_once(ray_local: Any, tmp_path: Path,
                                                                sweep_clips: list[Path]) -> None:
    cfg = _cfg(sweep_clips, tmp_path / "runs", "ft-actor")
    run = tmp_path / "runs" / "ft-actor"
    before = set(_segment_actors())
    kills: list[dict[str, Any]] = []
    stop = threading.Event()

    def killer() -> None:
        """SIGKILL the segment actor while it writes a clip: once after the first finished clip, once after 3."""
        deadline = time.monotonic() + 120
        while not stop.is_set() and len(kills) < 2 and time.monotonic() < deadline:
            done, busy = _in_progress(run)
            if busy and len(done) >= (1 if not kills else 3) and len(done) < N_CLIPS - 1:
                live = {aid: a for aid, a in _segment_actors().items()
                        if aid not in before and a["State"] == "ALIVE" and a["Pid"]}
                pids = {a["Pid"] for a in live.values()} - {k["pid"] for k in kills}
                if len(pids) == 1:  # one actor in the pool: it is the one writing `busy`
                    pid = pids.pop()
                    os.kill(pid, signal.SIGKILL)
                    kills.append({"pid": pid, "clips": busy, "done": done, "actor": next(iter(live))})
                    continue
            time.sleep(0.005)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        summary = pipeline.run(cfg)
    finally:
        stop.set()
        t.join(10)
    assert len(kills) == 2, f"the kills did not happen: {kills}"
    for k in kills:  # each kill hit a clip mid-write, in the middle of the sweep
        assert 1 <= len(k["done"]) < N_CLIPS and k["clips"]
    assert len({k["pid"] for k in kills}) == 2  # the second kill hit the restarted process
    info = _segment_actors()[kills[0]["actor"]]
    assert info["NumRestarts"] >= 2
    df = _check_run_complete(run, sweep_clips)
    assert not df["skipped"].any()  # all done in this run, killed clips redone by the restarted actor
    assert [r["status"] for r in summary.rows] == ["ok"] * N_CLIPS


def test_clip_that_keeps_killing_its_actor_fails_alone(ray_local: Any, tmp_path: Path, sweep_clips: list[Path]) -> None:
    """A poison clip (its actor dies every time it runs it) is retried MAX_TASK_RETRIES times, then reported
    failed (WorkerDied); the sweep neither hangs nor aborts, and every other clip finishes."""
    from lanepipe.actors.base import MAX_TASK_RETRIES

    cfg = _cfg(sweep_clips, tmp_path / "runs", "ft-poison")
    run = tmp_path / "runs" / "ft-poison"
    before = set(_segment_actors())
    kills: list[dict[str, Any]] = []
    stop = threading.Event()

    def newest_write(clip: str) -> int:
        return max((p.stat().st_mtime_ns for p in (run / "segment" / clip).rglob("*")), default=0)

    def killer() -> None:
        """Pick the first clip being written after one finished; kill the actor whenever it writes that clip."""
        poison: str | None = None
        last = 0
        deadline = time.monotonic() + 120
        while not stop.is_set() and len(kills) < MAX_TASK_RETRIES + 1 and time.monotonic() < deadline:
            try:
                done, busy = _in_progress(run)
                if poison is None and busy and done:
                    poison = busy[0]
                if poison is not None and poison not in done and newest_write(poison) > last:
                    live = [a for aid, a in _segment_actors().items()
                            if aid not in before and a["State"] == "ALIVE" and a["Pid"]]
                    pids = {a["Pid"] for a in live} - {k["pid"] for k in kills}
                    if len(pids) == 1:
                        pid = pids.pop()
                        os.kill(pid, signal.SIGKILL)
                        last = time.time_ns()
                        kills.append({"pid": pid, "clip": poison})
                        continue
            except FileNotFoundError:  # a temp file renamed while listed
                pass
            time.sleep(0.005)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        summary = pipeline.run(cfg)
    finally:
        stop.set()
        t.join(10)
    assert len(kills) == MAX_TASK_RETRIES + 1, kills
    poison = kills[0]["clip"]
    df = pd.read_parquet(run / "results.parquet").set_index("clip")
    assert sorted(df.index) == sorted(c.stem for c in sweep_clips)
    assert df.loc[poison, "status"] == "failed" and df.loc[poison, "error_type"] == "WorkerDied"
    assert (df.drop(index=poison)["status"] == "ok").all()
    assert not (run / "segment" / poison / "meta.json").exists()  # unfinished: a re-run redoes it
    assert _temps(run) == []
    assert json.loads((run / "manifest.json").read_text())["stages"]["segment"]["failed"] == 1
    assert len(summary.failed) == 1


def _session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (the killed driver's Ray instance, started in its own session)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: session id
            out.append(int(stat.parent.name))
    return out


def test_killed_driver_rerun_redoes_only_unfinished_clips(ray_local: Any, tmp_path: Path,
                                                          sweep_clips: list[Path]) -> None:
    out = tmp_path / "runs"
    run = out / "ft-driver"
    lanepipe = Path(sys.executable).with_name("lanepipe")
    cmd = [str(lanepipe), "run", "--stages", "segment", "-o", str(out), "--run-id", "ft-driver",
           "--set", "segment.resources.concurrency=1", "--set", "ray.num_cpus=2"]
    for c in sweep_clips:
        cmd += ["-i", str(c)]
    # own session: the driver's private Ray instance (gcs, raylet, workers) can be found and ended after it
    log = (tmp_path / "driver.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while len(_in_progress(run)[0]) < 2:
            assert proc.poll() is None, f"driver exited early: {(tmp_path / 'driver.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no clip finished in 120 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-sweep
        proc.wait(10)
    finally:
        # then its Ray instance: workers outlive a killed local driver for a while and would keep writing
        for _ in range(50):
            pids = _session_pids(proc.pid)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert not (run / "results.parquet").exists()
    done, _ = _in_progress(run)
    assert 2 <= len(done) < N_CLIPS, done
    todo = sorted({c.stem for c in sweep_clips} - set(done))
    # what a writer killed between its temp write and the rename leaves (whether this kill left one is luck)
    orphan = run / "segment" / todo[0] / "masks" / ".00003.png.0badc0de.tmp"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"partial")
    stamps = {p: p.stat().st_mtime_ns for c in done for p in (run / "segment" / c).rglob("*")}
    stamps |= {p: p.stat().st_mtime_ns for c in done for p in (run / "videopainter").rglob(f"{c}*")}

    summary = pipeline.run(_cfg(sweep_clips, out, "ft-driver"))  # re-run the same run id

    assert summary.run_id == "ft-driver"
    skipped = {r["clip"] for r in summary.rows if r["skipped"]}
    assert skipped == set(done)  # finished clips read back, the rest redone
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished outputs untouched
    df = _check_run_complete(run, sweep_clips)
    assert sorted(df.loc[~df["skipped"], "clip"]) == todo
    assert not orphan.exists()
