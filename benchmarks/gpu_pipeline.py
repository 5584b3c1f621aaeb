"""The whole pipeline on a GPU machine, as one command (issue 14 item 4): ``lanepipe run --stages all`` through Ray
Data with GPU actor pools on shared clips x instructions, random-init weights (SAM2.1 Hiera-L, FLUX.1 Fill + T5-XXL
+ CLIP-L + VAE, CogVideoX-5B-I2V, the Qwen2.5-VL-7B judge), lane_keep and render; NVML sampled during the run.

Reports per clip and per stage wall (busy) time, the GPU busy fraction while the edit stage works (NVML
``utilization.gpu``: the share of each sample period in which a kernel ran), the edit stage's idle gaps (the CPU
stages making the GPU wait), peak GPU memory per actor (NVML per process, and torch's peak on each actor's rows),
model loads and their seconds, clips per hour per GPU, and Ray's overhead: the part of the pipeline's wall time in
which no stage computed (no Ray start-up, worker set-up or stage item running: :func:`summarise`). Per clip, "GPU
idle waiting on CPU" from the spans the edit rows record (issue 15, lever 5:
:func:`lanepipe.monitoring.idle_per_item`: the part of the clip's window on its edit actor in which no model call
ran) beside NVML's busy fraction in that window; ``--set edit.resources.in_flight=1`` gives the figure without the
overlap (the generative edit stage runs two clips in flight by default). Writes ``gpu_pipeline.json`` (and
``nvml_samples.csv``) to ``--out``.

Device machine, 1 x H200 (wheels the image lacks: ``cluster/gpu/pack_wheels.sh`` here first, then see its
docstring for the two-call install)::

    python3 benchmarks/gpu_pipeline.py --out $OUT          # 4 clips x 2 instructions, 20 steps, 49 frames

CPU wiring check (tiny-random models, same code path; NVML absent -> the GPU columns are empty)::

    python benchmarks/gpu_pipeline.py --size tiny --out /tmp/gpu_pipeline_tiny

On one GPU the SAM2 pool asks for 0.2 GPU and the edit pool for 0.8 (they share the GPU, declared to Ray); on G >= 2
GPUs SAM2 takes 0.5 and G - 1 edit actors one GPU each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lanepipe.monitoring import merged, union_s  # noqa: E402

DEFAULT_INSTRUCTIONS = ("double yellow solid", "single white dashed")
#: Stage of a Ray Data actor process from its title, e.g. ``ray::MapWorker(MapBatches(EditActor))``.
_ACTOR_TITLE = re.compile(r"MapBatches\((\w+?)Actor\)")


# ---------------------------------------------------------------------------------------------- NVML sampling
class _Periodic:
    """A daemon thread that calls ``tick`` every ``period_s`` (first after one period) until :meth:`stop`; an
    exception in ``tick`` is kept in ``error`` (the first one) and sampling goes on."""

    def __init__(self, period_s: float, name: str) -> None:
        self.period_s = period_s
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.tick()
            except Exception as e:  # keep going; say what failed once
                self.error = self.error or f"{type(e).__name__}: {e}"

    def tick(self) -> None:
        raise NotImplementedError


class NvmlSampler(_Periodic):
    """Samples every GPU's utilisation and memory, and each process's GPU memory, every ``period_s`` in a thread.

    ``available`` is False where ``pynvml`` (nvidia-ml-py) or a driver is missing: nothing is sampled."""

    def __init__(self, period_s: float = 0.25) -> None:
        super().__init__(period_s, "nvml")
        self.samples: list[dict[str, Any]] = []  # t, gpu, util_pct, mem_used_mib
        self.proc_peak_mib: dict[int, float] = {}
        self.proc_now_mib: dict[int, float] = {}  # the last sample's GPU memory per process
        self.proc_stage: dict[int, str] = {}  # each GPU process's stage, read from its title while it runs
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml: Any = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.available = bool(self.handles)
        except Exception as e:  # no nvidia-ml-py, no driver: the GPU columns stay empty
            self.available, self.handles, self.error = False, [], f"{type(e).__name__}: {e}"

    def start(self) -> NvmlSampler:
        if self.available:
            self._thread.start()
        return self

    def tick(self) -> None:
        nv = self._nvml
        t = time.time()
        for i, h in enumerate(self.handles):
            try:
                util = nv.nvmlDeviceGetUtilizationRates(h).gpu
                mem = nv.nvmlDeviceGetMemoryInfo(h).used / 2**20
                self.samples.append({"t": t, "gpu": i, "util_pct": float(util), "mem_used_mib": round(mem, 1)})
                for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                    used = (p.usedGpuMemory or 0) / 2**20
                    self.proc_now_mib[p.pid] = round(used, 1)
                    self.proc_peak_mib[p.pid] = max(self.proc_peak_mib.get(p.pid, 0.0), round(used, 1))
                    if p.pid not in self.proc_stage:  # the actors are gone when the run's report is written
                        self.proc_stage.update(process_stages([p.pid]))
            except Exception as e:  # keep sampling the rest; say what failed once
                self.error = self.error or f"{type(e).__name__}: {e}"


class MetricsScraper(_Periodic):
    """Scrapes this node's Ray metrics endpoint (Prometheus text, what a Prometheus server or the Grafana dashboard in
    ``cluster/monitoring/`` reads) every ``period_s`` once Ray is up in this process, keeping Ray's node GPU series
    (:data:`lanepipe.monitoring.RAY_GPU_METRICS`) and lanepipe's own stage metrics (issue 14, item 7)."""

    PREFIXES = ("ray_node_gpus_", "ray_node_gram_", "ray_lanepipe_")

    def __init__(self, period_s: float = 5.0) -> None:
        super().__init__(period_s, "metrics-scrape")
        self.port: int | None = None
        self.scrapes = 0
        self.samples: list[tuple[float, str, dict[str, str], float]] = []  # t, name, labels, value

    def start(self) -> MetricsScraper:
        self._thread.start()
        return self

    def tick(self) -> None:
        if self.port is None:
            import ray

            if not ray.is_initialized():
                return
            self.port = int(ray._private.worker.global_worker.node.metrics_export_port)  # type: ignore[union-attr]
        self.scrape_once()

    def scrape_once(self) -> None:
        from urllib.request import urlopen

        text = urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        self.scrapes += 1
        t = time.time()
        self.samples.extend((t, name, labels, value) for name, labels, value in parse_metrics(text, self.PREFIXES))

    def summary(self) -> dict[str, Any]:
        """Per metric: series count, max and last value over the run; Ray's GPU utilisation as a time series."""
        per: dict[str, dict[str, Any]] = {}
        for t, name, labels, value in self.samples:
            d = per.setdefault(name, {"series": set(), "max": value, "last": value, "last_t": t})
            d["series"].add(tuple(sorted(labels.items())))
            d["max"] = max(d["max"], value)
            if t >= d["last_t"]:
                d["last"], d["last_t"] = value, t
        return {"port": self.port, "scrapes": self.scrapes, "error": self.error,
                "metrics": {k: {"series": len(v["series"]), "max": v["max"], "last": v["last"]}
                            for k, v in sorted(per.items())},
                "gpu_utilization": [[round(t, 1), labels.get("GpuIndex", ""), v] for t, n, labels, v in self.samples
                                    if n == "ray_node_gpus_utilization"]}


class Heartbeat(_Periodic):
    """One progress line every ``period_s`` while the run goes on: GPU busy and memory (NVML's last sample), GPU
    memory of each Ray actor process by stage, and the stage items finished so far. While no edit item has finished
    after ``dump_after_s`` (and again every ``dump_after_s``), it prints a ``py-spy dump`` of each actor process
    holding GPU memory (where a slow model build or compile is spending its time), when py-spy is installed."""

    def __init__(self, sampler: NvmlSampler, events: list[tuple[float, dict[str, Any]]], period_s: float = 30.0,
                 dump_after_s: float = 200.0, out: Any = print, on_tick: Any = None) -> None:
        super().__init__(period_s, "heartbeat")
        self.sampler, self.events, self.dump_after_s, self.out = sampler, events, dump_after_s, out
        self.on_tick = on_tick  # e.g. rewrite the partial report: a run killed outright still leaves one
        self.t0 = time.time()
        self._last_dump = self.t0

    def line(self) -> str:
        """The progress line of now."""
        last = self.sampler.samples[-1] if self.sampler.samples else None
        gpu = f"util {last['util_pct']:.0f}% mem {last['mem_used_mib']:.0f} MiB" if last else "no NVML sample"
        stages = process_stages(self.sampler.proc_now_mib)
        now_mib = sorted(self.sampler.proc_now_mib.items())
        procs = ", ".join(f"{stages.get(pid, pid)} {mib:.0f} MiB" for pid, mib in now_mib)
        done: dict[str, int] = defaultdict(int)
        for _, e in list(self.events):
            done[f"{e.get('stage')}:{e.get('status')}"] += 1
        items = " ".join(f"{k}={v}" for k, v in sorted(done.items())) or "none"
        return f"[{time.time() - self.t0:7.1f}s] heartbeat: {gpu}; {procs or 'no GPU process'}; items {items}"

    def tick(self) -> None:
        self.out(self.line(), flush=True)
        if self.on_tick is not None:
            self.on_tick()
        now = time.time()
        if any(e.get("stage") == "edit" for _, e in list(self.events)) or now - self._last_dump < self.dump_after_s:
            return
        self._last_dump = now
        spy = py_spy()
        if spy is None:
            return
        import subprocess

        for pid in list(self.sampler.proc_now_mib):
            dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60,
                                  check=False)
            self.out(f"--- py-spy dump of pid {pid} ---\n{(dump.stdout or dump.stderr)[-6000:]}", flush=True)


def py_spy() -> str | None:
    """The ``py-spy`` executable on PATH or in a ``bin/`` beside an import path (``pip install --target``)."""
    import shutil

    found = shutil.which("py-spy")
    if found:
        return found
    for entry in sys.path:
        cand = Path(entry or ".") / "bin" / "py-spy"
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def worker_log_tails(logs: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of each Ray worker log (``worker-*.out``/``.err`` under ``logs``) that belongs to a
    Ray Data actor (its text names ``MapWorker``): what each stage actor said, kept beside the report."""
    parts: list[str] = []
    for f in sorted(logs.glob("worker-*.*")) if logs.is_dir() else []:
        if f.suffix not in (".out", ".err"):
            continue
        with contextlib.suppress(OSError):
            text = f.read_text(errors="replace")
            if "MapWorker" in text and text.strip():
                parts.append(f"=== {f.name}\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(parts)


def parse_metrics(text: str, prefixes: Sequence[str]) -> list[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` of each sample in a Prometheus text exposition whose name starts with one of
    ``prefixes``."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), float(s.value)) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name.startswith(tuple(prefixes))]


# ---------------------------------------------------------------------------------------------- analysis
def item_intervals(events: Sequence[tuple[float, dict[str, Any]]], stage: str | None = None,
                   gap_s: float = 2.0) -> list[dict[str, Any]]:
    """The stage items behind live events ``(arrival time, row)`` (of ``stage``, or every stage): the rows one
    ``process`` call emitted (same stage and clip, equal ``busy_s``, since the call's time is split evenly over its
    rows, arriving within ``gap_s`` of each other) form one item, which ran ``[last arrival - sum of busy_s,
    last arrival]``; its worker's ``setup_s`` (on the first row of a worker) ran just before it. Returns
    ``{"stage", "clip", "start", "end", "setup_start"}`` per item (``setup_start`` None without a set-up)."""
    groups: list[list[tuple[float, dict[str, Any]]]] = []
    for t, e in sorted(events, key=lambda te: te[0]):
        if (stage is not None and e.get("stage") != stage) or e.get("busy_s") is None or e.get("skipped"):
            continue
        key = (e.get("stage"), e.get("clip"), e.get("busy_s"))
        mine = next((g for g in reversed(groups) if t - g[-1][0] <= gap_s
                     and (g[-1][1].get("stage"), g[-1][1].get("clip"), g[-1][1].get("busy_s")) == key), None)
        if mine is None:
            groups.append([(t, e)])
        else:
            mine.append((t, e))
    out: list[dict[str, Any]] = []
    for g in groups:
        end = g[-1][0]
        start = end - sum(float(e["busy_s"]) for _, e in g)
        setup = sum(float(e.get("setup_s") or 0.0) for _, e in g)
        out.append({"stage": g[0][1].get("stage"), "clip": g[0][1].get("clip"), "start": start, "end": end,
                    "setup_start": start - setup if setup else None})
    return out


def busy_fraction(samples: Sequence[dict[str, Any]], intervals: Sequence[tuple[float, float]],
                  gpu: int | None = None) -> float | None:
    """Mean NVML ``utilization.gpu`` (as a fraction) of the samples inside ``intervals`` (of GPU ``gpu``, or all);
    None without samples there."""
    vals = [s["util_pct"] for s in samples if (gpu is None or s["gpu"] == gpu)
            and any(a <= s["t"] <= b for a, b in intervals)]
    return round(sum(vals) / len(vals) / 100.0, 4) if vals else None


def stage_of_title(title: str) -> str | None:
    """``edit`` for ``ray::MapWorker(MapBatches(EditActor))``; None for any other process."""
    m = _ACTOR_TITLE.search(title)
    return m.group(1).lower() if m else None


def process_stages(pids: Iterable[int]) -> dict[int, str]:
    """The stage of each Ray actor process among ``pids`` that still runs (from its process title, which Ray writes
    over the process's arguments: ``/proc/PID/cmdline``)."""
    out: dict[int, str] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stage = stage_of_title(title)
            if stage:
                out[pid] = stage
    return out


def gpu_wait_per_clip(rows: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per clip of the edit stage: its window on its actor, the seconds and share of it in which no model call ran
    (the GPU waiting on CPU work, from the rows' spans) and NVML's busy fraction in the window; the median share."""
    from lanepipe.monitoring import idle_per_item

    by_actor: dict[Any, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("stage") == "edit" and r.get("spans") and not r.get("skipped"):
            by_actor[r.get("worker_pid")][str(r["clip"])].extend(json.loads(r["spans"]))
    per_clip: dict[str, dict[str, Any]] = {}
    for by_clip in by_actor.values():
        for clip, v in idle_per_item(by_clip).items():
            per_clip[clip] = {"window_s": round(v["window_s"], 3), "gpu_idle_waiting_on_cpu_s": round(v["idle_s"], 3),
                              "gpu_idle_waiting_on_cpu_fraction": round(v["idle_fraction"], 4),
                              "nvml_busy_fraction": busy_fraction(samples, [(v["t0"], v["t1"])])}
    shares = [v["gpu_idle_waiting_on_cpu_fraction"] for v in per_clip.values()]
    return {"per_clip": per_clip, "median_fraction": round(statistics.median(shares), 4) if shares else None}


def summarise(rows: Sequence[dict[str, Any]], events: Sequence[tuple[float, dict[str, Any]]],
              manifest: dict[str, Any], samples: Sequence[dict[str, Any]], proc_peak: dict[int, float],
              pid_stage: dict[int, str], gpus: int, wall_s: float, t0: float | None = None) -> dict[str, Any]:
    """Every figure of the module docstring from the run's rows, live stage events (driver arrival time, row),
    manifest and NVML samples; ``t0``: when the run started (default: ``wall_s`` before the last event).

    Ray's overhead is the part of the wall time in which nothing computed: neither Ray's start-up, nor a worker's
    set-up, nor any stage's item (:func:`item_intervals`). The stages' busy seconds are also summed
    (``sum_stage_compute_s``), but pipelined stages and clips in flight overlap, so that sum exceeds the wall time
    of a run that overlaps well; it is not the overhead's reference."""
    stages = list(manifest.get("stages", {}))
    per_clip: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.get("busy_s") is not None and not r.get("skipped"):
            d = per_clip[str(r["clip"])]
            d[r["stage"]] = round(d.get(r["stage"], 0.0) + float(r["busy_s"]), 3)
    items = item_intervals(events)
    edit_items = [(it["start"], it["end"]) for it in items if it["stage"] == "edit"]
    edit_union = merged(edit_items)
    span = [(edit_union[0][0], edit_union[-1][1])] if edit_union else []
    # after the first edit item finished (it holds the compiled blocks' warm-up): the steady state of the stage
    first_end = min((b for _, b in edit_items), default=None)
    steady = [(max(a, first_end), b) for a, b in edit_union if first_end is not None and b > first_end]
    timing = manifest.get("timing", {})
    busy = timing.get("busy_s", {})
    setup = timing.get("setup_s", {})
    compute = sum(busy.values()) + sum(setup.values()) + float(timing.get("ray_start_s") or 0.0)
    ray_start = float(timing.get("ray_start_s") or 0.0)
    start = t0 if t0 is not None else (max((t for t, _ in events), default=wall_s) - wall_s)
    end = start + wall_s
    activity = merged([(start, start + ray_start),
                      *((it["setup_start"] if it["setup_start"] is not None else it["start"], it["end"])
                        for it in items)])
    active = union_s([(max(a, start), min(b, end)) for a, b in activity if min(b, end) > max(a, start)])
    peak_rows: dict[str, float] = {}
    for r in rows:
        if r.get("gpu_peak_mib") is not None:
            peak_rows[r["stage"]] = max(peak_rows.get(r["stage"], 0.0), float(r["gpu_peak_mib"]))
    per_actor = [{"pid": pid, "stage": pid_stage.get(pid), "peak_mib": mib} for pid, mib in sorted(proc_peak.items())]
    clips = len({str(r["clip"]) for r in rows if r["stage"] == "render" and r.get("status") == "ok"})
    edits = sum(1 for r in rows if r["stage"] == "edit" and r.get("status") == "ok")
    return {
        "wall_s": round(wall_s, 2), "gpus": gpus, "clips_done": clips, "edits_done": edits,
        "per_clip_stage_busy_s": dict(per_clip),
        "per_stage": {s: {"busy_s": busy.get(s), "setup_s": setup.get(s),
                          "model_loads": manifest["stages"][s].get("model_loads"),
                          "torch_peak_gpu_mib": peak_rows.get(s)} for s in stages},
        "peak_gpu_mib_per_actor_nvml": per_actor,
        "actor_gpus": [{"stage": r["stage"], "cuda_visible_devices": r.get("cuda_visible_devices")}
                       for r in rows if r.get("setup_s") is not None],
        "gpu_busy_fraction_edit_items": busy_fraction(samples, edit_union),
        "gpu_busy_fraction_edit_span": busy_fraction(samples, span),
        "gpu_busy_fraction_edit_after_first_item": busy_fraction(samples, steady),
        "edit_span_s": round(union_s(span), 2), "edit_idle_gaps_s": round(union_s(span) - union_s(edit_union), 2),
        "clips_per_hour_per_gpu": round(clips / (wall_s / 3600) / gpus, 2) if gpus and wall_s else None,
        "clips_per_hour": round(clips / (wall_s / 3600), 2) if wall_s else None,
        "edits_per_hour_per_gpu": round(edits / (wall_s / 3600) / gpus, 2) if gpus and wall_s else None,
        "sum_stage_compute_s": round(compute, 2), "ray_start_s": timing.get("ray_start_s"),
        "active_s": round(active, 2), "overhead_s": round(wall_s - active, 2),
        "overhead_fraction": round((wall_s - active) / wall_s, 4) if wall_s else None,
        "model_loads": manifest.get("model_loads"),
        "random_weights": manifest.get("random_weights"),
        "gpu_idle_waiting_on_cpu": gpu_wait_per_clip(rows, samples),
    }


def partial_report(events: Sequence[tuple[float, dict[str, Any]]], sampler: NvmlSampler, scraper: MetricsScraper,
                   wall_s: float, exc: BaseException) -> dict[str, Any]:
    """What an interrupted run had shown: the items each stage finished (with busy and setup seconds), NVML's busy
    fraction and memory over the run, peak GPU memory per process, and the Ray metrics scraped."""
    t0 = events[0][0] - float(events[0][1].get("busy_s") or 0.0) if events else None
    done: dict[str, int] = defaultdict(int)
    for _, e in events:
        done[f"{e.get('stage')}:{e.get('status')}"] += 1
    util = [x["util_pct"] for x in sampler.samples]
    return {"interrupted": f"{type(exc).__name__}: {exc}", "wall_s": round(wall_s, 1), "items_done": dict(done),
            "events": [{"t": round(t - (t0 or t), 2), **{k: e.get(k) for k in
                        ("stage", "clip", "instruction", "status", "busy_s", "setup_s", "error")}}
                       for t, e in events],
            "nvml_mean_busy_fraction": round(sum(util) / len(util) / 100, 4) if util else None,
            "nvml_max_mem_used_mib": max((x["mem_used_mib"] for x in sampler.samples), default=None),
            "peak_gpu_mib_per_process": sampler.proc_peak_mib, "ray_metrics": scraper.summary()}


# ---------------------------------------------------------------------------------------------- the run
def find_clips(n: int) -> list[str]:
    """``n`` shared dashcam clips: carried ones (``.device_data/``) first, then ``LANEPIPE_DATA_DIR``."""
    shared = Path(os.environ.get("LANEPIPE_DATA_DIR", REPO.parent / "shared" / "data"))
    found: list[Path] = sorted((REPO / ".device_data").glob("*.mp4")) if (REPO / ".device_data").is_dir() else []
    if shared.is_dir():
        found += sorted(p for p in shared.rglob("*.mp4") if p.name not in {f.name for f in found})
    if len(found) < n:
        sys.exit(f"need {n} clips in .device_data/ or LANEPIPE_DATA_DIR={shared}, found {len(found)}")
    return [str(p) for p in found[:n]]


def run_overrides(size: str, gpus: int, steps: int, max_frames: int, instructions: Sequence[str],
                  cpus: int, gpu_gib: float | None = None) -> list[str]:
    """The ``--set`` overrides of the measured run (see the module docstring for the GPU split). A GPU too small
    for FLUX, CogVideoX, the judge and SAM2 at once (an H100's 80 GB,
    :func:`lanepipe.edit.generative.published.parks_between_phases`) parks the idle phase's pipeline in host memory
    (``unload_between_phases``)."""
    from lanepipe.edit.generative.published import parks_between_phases

    common = ["stages=all", f"input.max_frames={max_frames}", "segment.backend=sam2",
              "edit.backend=flux_cogvideox", "verify.backend=qwen_vl", "edit.qa.max_iterations=1",
              "evaluate.predictors=[lane_keep]", f"edit.instructions=[{','.join(instructions)}]",
              f"ray.num_cpus={cpus}", f"ray.num_gpus={gpus}"]
    if size == "tiny":
        return [*common, "segment.sam2.preset=tiny-random", "edit.preset=tiny-random",
                *[f"{s}.resources.num_cpus=0.5" for s in ("segment", "edit", "evaluate", "render")]]
    one = gpus == 1
    return [*common, "segment.sam2.preset=random-init", "edit.preset=random-init",
            f"edit.generative.flux_steps={steps}", f"edit.generative.video_steps={steps}",
            f"segment.resources.num_gpus={0.2 if one else 0.5}", f"edit.resources.num_gpus={0.8 if one else 1}",
            f"edit.resources.concurrency={1 if one else max(1, gpus - 1)}",
            *(["edit.generative.unload_between_phases=true"] if parks_between_phases(gpu_gib) else [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--instructions", nargs="+", default=list(DEFAULT_INSTRUCTIONS))
    ap.add_argument("--steps", type=int, default=20, help="FLUX and CogVideoX denoising steps (published: 50)")
    ap.add_argument("--max-frames", type=int, default=None, help="frames per clip (default 49 full, 9 tiny)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_pipeline_out")
    ap.add_argument("--set", action="append", default=[], help="extra config override KEY=VALUE")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from lanepipe import pipeline
    from lanepipe.config import load_config

    sampler = NvmlSampler()
    gpus = len(sampler.handles) if args.size == "full" else 0
    if args.size == "full" and not gpus:
        sys.exit(f"--size full needs NVIDIA GPUs and nvidia-ml-py ({sampler.error}); use --size tiny on CPU")
    cpus = (os.cpu_count() or 2) if args.size == "full" else 2
    max_frames = args.max_frames or (49 if args.size == "full" else 9)
    from lanepipe import torchkit

    overrides = [*run_overrides(args.size, gpus, args.steps, max_frames, args.instructions, cpus,
                                torchkit.smallest_gpu_gib()), *args.set]
    cfg = load_config(None, overrides, base={"input": {"paths": find_clips(args.clips)},
                                             "output": str(out / "runs")})
    events: list[tuple[float, dict[str, Any]]] = []
    sampler.start()
    scraper = MetricsScraper().start()
    t0 = time.time()

    def write_partial(exc: BaseException) -> dict[str, Any]:  # atomic: a kill mid-write leaves the previous one
        partial = partial_report(events, sampler, scraper, time.time() - t0, exc)
        tmp = out / "gpu_pipeline_partial.json.tmp"
        tmp.write_text(json.dumps(partial, indent=1, default=str))
        tmp.replace(out / "gpu_pipeline_partial.json")
        return partial

    # every 30 s: a progress line and the partial report so far (the call's hard kill at its limit, 10 s after
    # SIGTERM, came before the interrupted run had shut Ray down on 2026-12-05)
    heartbeat = Heartbeat(sampler, events, on_tick=lambda: write_partial(RuntimeError("still running"))).start()

    def on_event(e: Any) -> None:  # live progress in the log: one line per stage item as it finishes
        events.append((time.time(), dict(e)))
        print(f"[{time.time() - t0:7.1f}s] {e.get('stage')} {e.get('clip')} {e.get('instruction') or ''} "
              f"{e.get('status')} busy {e.get('busy_s')} setup {e.get('setup_s')}", flush=True)

    try:
        summary = pipeline.run(cfg, on_event=on_event)
    except BaseException as exc:  # SIGTERM at a call's time limit, a crash: keep what was seen so far
        heartbeat.stop()
        sampler.stop()
        scraper.stop()
        partial = write_partial(exc)
        print(json.dumps({k: v for k, v in partial.items() if k != "events"}, indent=1, default=str))
        raise
    finally:
        heartbeat.stop()
        sampler.stop()
        scraper.stop()
        tails = worker_log_tails(Path(os.environ.get("RAY_TMPDIR", "/tmp/ray")) / "session_latest" / "logs")
        (out / "ray_worker_tails.txt").write_text(tails)
    wall = time.time() - t0
    manifest = json.loads((Path(summary.url) / "manifest.json").read_text())
    pid_stage = {int(r["worker_pid"]): str(r["stage"]) for r in summary.rows if r.get("worker_pid") is not None}
    result = summarise(summary.rows, events, manifest, sampler.samples, sampler.proc_peak_mib,
                       {**pid_stage, **sampler.proc_stage}, gpus, wall, t0)
    result["events"] = [{"t": round(t - t0, 3), **e} for t, e in events]  # seconds since the run started
    result.update(size=args.size, overrides=overrides, nvml=sampler.available, nvml_error=sampler.error,
                  failed=[{k: r.get(k) for k in ("clip", "stage", "instruction", "error")} for r in summary.failed],
                  run=summary.url, ray_metrics=scraper.summary())
    with contextlib.suppress(Exception):
        import torch

        result["torch"] = torch.__version__
        if torch.cuda.is_available():
            result["gpu_name"] = torch.cuda.get_device_name()
    (out / "gpu_pipeline.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "gpu_pipeline_partial.json").unlink(missing_ok=True)  # the finished report replaces it
    if sampler.samples:
        lines = ["t,gpu,util_pct,mem_used_mib", *(f"{s['t']:.3f},{s['gpu']},{s['util_pct']},{s['mem_used_mib']}"
                                                  for s in sampler.samples)]
        (out / "nvml_samples.csv").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
