"""Load on the Ray Serve app: N concurrent uploads against a bounded queue, loopback only.

Starts a private local Ray (2 CPUs, its own temp folder) and the app on a free 127.0.0.1 port with
``max_queue`` (default 4), renders the 4 s sample clip (32 frames at 8 fps, 960x540), then N threads (default
20) upload it at once with one instruction. A client whose job is accepted (202) polls until done/failed; a
503 is a final answer (its ``Retry-After`` is recorded, no retry). Checks: every request answered (accepted
and finished, or 503), none lost, no traceback or ERROR line in the Serve logs (controller, proxy, replica)
or in the Ray workers' stderr. Prints p50/p95 latency of accepted jobs (submit → done) and of the 503
answers, plus the machine and date. Bounded: one wave of N requests, a hard deadline (default 900 s).

    .venv/bin/python benchmarks/serve_load.py [--requests 20] [--max-queue 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from _common import machine

from lanepipe.sample import write_sample

_BAD = re.compile(r"Traceback \(most recent call last\)|\bERROR\b")


@dataclass
class Outcome:
    code: int | None = None  # HTTP status of the submission
    status: str | None = None  # final job status for an accepted job
    seconds: float | None = None  # submit → answer (503) or submit → done/failed (202)
    retry_after: int | None = None
    error: str | None = None


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(base: str, clip: Path, start: threading.Barrier, deadline: float, out: Outcome) -> None:
    try:
        start.wait()
        t = time.perf_counter()
        with clip.open("rb") as f:
            r = requests.post(base + "v1/edits", files={"clip": (clip.name, f, "video/mp4")},
                              data={"instructions": "preset:double-yellow-solid"}, timeout=120)
        out.code = r.status_code
        if r.status_code == 503:
            out.seconds = time.perf_counter() - t
            out.retry_after = int(r.headers["Retry-After"])
            return
        if r.status_code != 202:
            out.error = r.text[:300]
            return
        status_url = "/".join(base.split("/", 3)[:3]) + r.json()["status_url"]  # origin + /v1/edits/<id>
        while time.monotonic() < deadline:
            job = requests.get(status_url, timeout=30).json()
            if job["status"] in ("done", "failed"):
                out.status, out.seconds = job["status"], time.perf_counter() - t
                if job["status"] == "failed":
                    out.error = job["error"]
                return
            time.sleep(0.5)
        out.error = "not finished before the deadline"
    except Exception as e:  # recorded: a lost request fails the benchmark
        out.error = f"{type(e).__name__}: {e}"


def scan_logs(dirs: list[Path]) -> tuple[list[str], list[str]]:
    """(files read, offending lines) over the Serve logs and the Ray workers' stdout/stderr."""
    bad: list[str] = []
    read: list[str] = []
    for d in dirs:
        for f in sorted(d.rglob("*")):
            if not f.is_file() or f.suffix not in (".log", ".err", ".out"):
                continue
            if d.name == "logs" and not (f.name.startswith("worker-") or f.parent.name == "serve"):
                continue  # Ray's own daemons: not the app
            read.append(f.name)
            for line in f.read_text(errors="replace").splitlines():
                if _BAD.search(line):
                    bad.append(f"{f.name}: {line.strip()[:200]}")
    return read, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-queue", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--frames", type=int, default=32, help="sample clip frames at 8 fps (32 = 4 s)")
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds for the whole wave")
    args = ap.parse_args()

    import ray

    from lanepipe.serve.app import ServeSettings, start, stop

    tmp = Path(tempfile.mkdtemp(prefix="lp-serve-"))
    try:
        clip = write_sample(tmp / "clip", num_frames=args.frames)
        t = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False, _temp_dir=str(tmp / "ray"))
        serve_logs = tmp / "serve-logs"
        port = free_port()
        base = start(ServeSettings(output=str(tmp / "runs"), max_queue=args.max_queue, workers=args.workers),
                     port=port, logging_config={"logs_dir": str(serve_logs), "enable_access_log": True})
        startup = time.perf_counter() - t
        outcomes = [Outcome() for _ in range(args.requests)]
        barrier = threading.Barrier(args.requests)
        deadline = time.monotonic() + args.deadline
        threads = [threading.Thread(target=client, args=(base, clip, barrier, deadline, o), daemon=True)
                   for o in outcomes]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()) + 30)
        wall = time.perf_counter() - t
        health = requests.get(base + "v1/health", timeout=10).json()
        stop()
        ray.shutdown()

        accepted = [o for o in outcomes if o.code == 202]
        done = [o for o in accepted if o.status == "done"]
        rejected = [o for o in outcomes if o.code == 503]
        lost = [o for o in outcomes if o not in rejected and o.status not in ("done", "failed")]
        failed = [o for o in accepted if o.status == "failed"]
        log_files, bad_lines = scan_logs([serve_logs, tmp / "ray" / "session_latest" / "logs"])

        print(f"machine: {machine()}")
        print(f"clip: sample.mp4 960x540, {args.frames} frames at 8 fps ({args.frames / 8:.0f} s), "
              f"{clip.stat().st_size / 1e6:.2f} MB; instruction preset:double-yellow-solid, stages all")
        print(f"server: max_queue {args.max_queue}, workers {args.workers}; Ray + Serve start-up {startup:.1f} s")
        print(f"requests: {args.requests} concurrent, wall {wall:.1f} s")
        print(f"answers: {len(accepted)} accepted (202) → {len(done)} done, {len(failed)} failed; "
              f"{len(rejected)} rejected (503); lost {len(lost)}")
        if done:
            lat = sorted(o.seconds for o in done if o.seconds is not None)
            print(f"accepted jobs, submit → done: p50 {pct(lat, 50):.1f} s, p95 {pct(lat, 95):.1f} s "
                  f"(min {lat[0]:.1f}, max {lat[-1]:.1f})")
        if rejected:
            lat = sorted(o.seconds for o in rejected if o.seconds is not None)
            ra = sorted(o.retry_after for o in rejected if o.retry_after is not None)
            print(f"503 answers: p50 {pct(lat, 50) * 1000:.0f} ms, p95 {pct(lat, 95) * 1000:.0f} ms; "
                  f"Retry-After {ra[0]} to {ra[-1]} s")
        print(f"queue after the wave: {health}")
        kinds = sorted({"worker" if n.startswith("worker-") else n.split("_")[0] for n in log_files})
        job_lines = sum(len(re.findall(r"job \S+: done in", f.read_text(errors="replace")))
                        for f in serve_logs.rglob("replica_*.log"))
        print(f"server log: {len(bad_lines)} traceback/ERROR line(s) in {len(log_files)} files "
              f"({', '.join(kinds)}); it records {job_lines} finished job(s)")
        for line in bad_lines[:10]:
            print("  " + line)
        for o in lost + failed:
            print(f"  problem: code {o.code}, status {o.status}: {o.error}")
        ok = (not lost and not failed and not bad_lines and len(accepted) + len(rejected) == args.requests
              and job_lines == len(done))
        print("result: " + ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
