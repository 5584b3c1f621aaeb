"""Sweep scaling on one host (issue 17 item 1), as one command: clips per hour against GPUs, both edit placements.

The edit stage (``flux_cogvideox``, random-init weights: FLUX.1 Fill + T5-XXL + CLIP-L + VAE, the Qwen2.5-VL-7B
judge, CogVideoX-5B-I2V) runs through Ray Data on ``G`` GPUs for each ``G`` in {1, 2, 4, 8} the machine has, in
each placement:

* ``whole``: ``G`` edit actors, each holding the whole stack on its GPU;
* ``split``: ``k`` first-frame actors (FLUX + judge QA loop) feeding ``G - k`` propagation actors (CogVideoX), a
  pipeline across clips (``edit.placement=split``; ``k`` from the measured stage times unless
  ``--first-frame-actors``; not run for ``G = 1``).

Every configuration edits the same ``--clips`` clips (default 16) x 2 instructions, read from a folder
(``--clips-dir``, default the git-ignored ``.device_data/`` that ``cluster/gpu/pack_wheels.sh`` fills, else
``LANEPIPE_DATA_DIR``), cycled to reach the count (each copy a symlink under its own name). The clips are segmented
once beforehand (``--segment``, default ``grid`` on CPU) so that only the edit stage is measured; every
configuration reads those masks (``from_run``).

Per configuration: wall seconds (actor start and model builds included), the steady span (first edit item start
to last item end, from the live stage events), clips per hour on each, efficiency against linear (clips per hour
/ (G x the 1-GPU whole figure measured in the same invocation)), NVML busy fraction of each GPU during the steady
span, model loads per pool and failures. Writes ``sweep_scaling.json`` (and ``nvml_samples.csv``) to ``--out``.

Device machine with N GPUs (wheels and clips carried as for ``benchmarks/gpu_pipeline.py``, see
``cluster/gpu/pack_wheels.sh``)::

    python3 benchmarks/sweep_scaling.py --out $OUT                 # G in {1,2,4,8} <= N, 16 clips x 2
    # one GPU count per call where calls are time-limited, the 1-GPU figure of the first as the reference:
    python3 benchmarks/sweep_scaling.py --gpus 1 --out $OUT
    python3 benchmarks/sweep_scaling.py --gpus 8 --baseline earlier/sweep_scaling.json --out $OUT

CPU wiring check (tiny-random models, CPU actors with num_gpus=0; "GPUs" are then actors, on 2 cores they do not
scale: it checks the wiring, not the speed)::

    python benchmarks/sweep_scaling.py --size tiny --clips 4 --gpus 1 2 4 --out /tmp/sweep_scaling_tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_pipeline import DEFAULT_INSTRUCTIONS, NvmlSampler, busy_fraction, item_intervals  # noqa: E402

from lanepipe.monitoring import merged, union_s  # noqa: E402

GPU_COUNTS = (1, 2, 4, 8)
#: stages whose live events mark the edit work of a run (the split placement has both)
EDIT_STAGES = ("edit", "edit_first_frame")


def cycled_clips(folder: Path, n: int, dest: Path) -> list[str]:
    """``n`` clips from ``folder`` (its ``*.mp4``, recursively, sorted), cycled, each a symlink in ``dest`` under
    its own name (``c00_<stem>.mp4`` …) so that copies of one clip are separate items with separate outputs."""
    found = sorted(folder.rglob("*.mp4")) if folder.is_dir() else []
    if not found:
        sys.exit(f"--clips-dir {folder}: expected .mp4 clips, found none")
    dest.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    for i in range(n):
        src = found[i % len(found)].resolve()
        link = dest / f"c{i:02d}_{src.stem}.mp4"
        if not link.exists():
            link.symlink_to(src)
        out.append(str(link))
    return out


def default_clips_dir() -> Path:
    carried = REPO / ".device_data"
    if carried.is_dir() and any(carried.glob("*.mp4")):
        return carried
    return Path(os.environ.get("LANEPIPE_DATA_DIR", REPO.parent / "shared" / "data"))


def edit_overrides(size: str, steps: int, max_frames: int, qa_iterations: int,
                   instructions: Sequence[str]) -> list[str]:
    """Overrides shared by every measured configuration."""
    common = ["stages=edit", "edit.backend=flux_cogvideox", "verify.backend=qwen_vl",
              f"edit.qa.max_iterations={qa_iterations}", f"input.max_frames={max_frames}",
              f"edit.instructions=[{','.join(instructions)}]"]
    if size == "tiny":
        return [*common, "edit.preset=tiny-random", "edit.resources.num_gpus=0", "edit.resources.num_cpus=0.25"]
    return [*common, "edit.preset=random-init", f"edit.generative.flux_steps={steps}",
            f"edit.generative.video_steps={steps}", "edit.resources.num_gpus=1"]


def config_overrides(gpus: int, placement: str, first_frame_actors: int | None) -> list[str]:
    """The pool sizes of one configuration: ``gpus`` edit actors (one GPU each on a GPU machine)."""
    out = [f"edit.resources.concurrency={gpus}", f"edit.placement={placement}"]
    if placement == "split" and first_frame_actors is not None:
        out.append(f"edit.split_first_frame_actors={min(first_frame_actors, gpus - 1)}")
    return out


def measure(rows: Sequence[dict[str, Any]], events: Sequence[tuple[float, dict[str, Any]]], wall_s: float,
            clips: int, samples: Sequence[dict[str, Any]], gpu_ids: Sequence[int]) -> dict[str, Any]:
    """One configuration's figures from its rows (every row the run emitted, first-frame items included), live
    stage events (driver arrival time, event) and NVML samples."""
    edits = [r for r in rows if r.get("stage") == "edit"]
    done = {str(r["clip"]) for r in edits} - {str(r["clip"]) for r in edits if r.get("status") != "ok"}
    # the rows of one call are one item (its busy seconds split over them): gpu_pipeline.item_intervals
    work = merged((it["start"], it["end"]) for it in item_intervals(events) if it["stage"] in EDIT_STAGES)
    span = [(work[0][0], work[-1][1])] if work else []
    span_s = union_s(span)
    ff = [r for r in rows if r.get("stage") == "edit_first_frame"]
    loads: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.get("models_loaded"):
            pool = loads.setdefault(str(r["stage"]), {})
            for m in str(r["models_loaded"]).split(","):
                pool[m] = pool.get(m, 0) + 1
    used = sorted({str(r["cuda_visible_devices"]) for r in rows if r.get("cuda_visible_devices")})
    return {
        "clips": clips, "clips_done": len(done), "edits_ok": sum(r.get("status") == "ok" for r in edits),
        "failed": [{k: r.get(k) for k in ("clip", "instruction", "error_type", "failed_phase")}
                   for r in edits if r.get("status") != "ok"],
        "wall_s": round(wall_s, 2), "steady_span_s": round(span_s, 2),
        "clips_per_hour_wall": round(len(done) / (wall_s / 3600), 2) if wall_s else None,
        "clips_per_hour": round(len(done) / (span_s / 3600), 2) if span_s else None,
        "edit_busy_s": round(sum(float(r.get("busy_s") or 0) for r in edits), 2),
        "first_frame_busy_s": round(sum(float(r.get("busy_s") or 0) for r in ff), 2) if ff else None,
        "model_loads": loads, "actor_gpus": used,
        "gpu_busy_fraction": {str(g): busy_fraction(samples, span, g) for g in gpu_ids} if samples else None,
    }


def efficiency(results: list[dict[str, Any]], earlier: Sequence[dict[str, Any]] = ()) -> dict[str, Any] | None:
    """Add ``efficiency_vs_linear`` (clips per hour / (G x the 1-GPU whole figure)) to each result, in place; the
    1-GPU figure from ``results``, else from ``earlier`` (the results of a previous invocation, ``--baseline``).
    Returns the reference result used (None: no 1-GPU whole figure, efficiencies None)."""
    base = next((r for r in [*results, *earlier] if r["gpus"] == 1 and r["placement"] == "whole"
                 and r.get("clips_per_hour")), None)
    for r in results:
        for key, ref in (("efficiency_vs_linear", "clips_per_hour"), ("efficiency_vs_linear_wall",
                                                                      "clips_per_hour_wall")):
            if base is None or not r.get(ref) or not base.get(ref):
                r[key] = None
            else:
                r[key] = round(float(r[ref]) / (r["gpus"] * float(base[ref])), 4)
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--clips", type=int, default=16, help="clips per configuration (cycled from --clips-dir)")
    ap.add_argument("--clips-dir", type=Path, default=None, help="folder of .mp4 clips (default .device_data/, "
                    "else LANEPIPE_DATA_DIR)")
    ap.add_argument("--instructions", nargs="+", default=list(DEFAULT_INSTRUCTIONS))
    ap.add_argument("--gpus", type=int, nargs="+", default=None,
                    help="GPU counts (tiny: actor counts); default {1,2,4,8} up to the GPUs present")
    ap.add_argument("--placements", nargs="+", choices=["whole", "split"], default=["whole", "split"])
    ap.add_argument("--first-frame-actors", type=int, default=None,
                    help="split: first-frame actors (default: from the measured stage times)")
    ap.add_argument("--steps", type=int, default=20, help="FLUX and CogVideoX denoising steps (published: 50)")
    ap.add_argument("--max-frames", type=int, default=None, help="frames per clip (default 49 full, 8 tiny)")
    ap.add_argument("--qa-iterations", type=int, default=1, help="edit.qa.max_iterations")
    ap.add_argument("--segment", default="grid", help="segment.backend of the one segmentation run beforehand")
    ap.add_argument("--out", default=os.environ.get("OUT") or "sweep_scaling_out")
    ap.add_argument("--set", action="append", default=[], help="extra config override KEY=VALUE (every run)")
    ap.add_argument("--baseline", type=Path, default=None, help="sweep_scaling.json of an earlier invocation on the "
                    "same machine whose 1-GPU whole figure is the reference when --gpus leaves out 1 (one device "
                    "call per GPU count when a call is time-limited)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from lanepipe import pipeline
    from lanepipe.config import load_config

    sampler = NvmlSampler()
    have = len(sampler.handles) if args.size == "full" else max(args.gpus or [4])
    if args.size == "full" and not have:
        sys.exit(f"--size full needs NVIDIA GPUs and nvidia-ml-py ({sampler.error}); use --size tiny on CPU")
    counts = sorted(set(args.gpus or [g for g in GPU_COUNTS if g <= have]))
    if args.size == "full" and max(counts) > have:
        sys.exit(f"--gpus {counts}: this machine has {have} GPU(s)")
    cpus = (os.cpu_count() or 2) if args.size == "full" else 2
    ray_sets = [f"ray.num_cpus={cpus}", f"ray.num_gpus={have if args.size == 'full' else 0}"]
    clips = cycled_clips(args.clips_dir or default_clips_dir(), args.clips, out / "clips")
    runs = str(out / "runs")
    max_frames = args.max_frames or (49 if args.size == "full" else 8)
    seg_cfg = load_config(None, ["stages=segment", "run_id=segment", f"segment.backend={args.segment}",
                                 f"input.max_frames={max_frames}", "segment.overlay=false", *ray_sets, *args.set],
                          base={"input": {"paths": clips}, "output": runs})
    t = time.time()
    seg = pipeline.run(seg_cfg)
    seg_s = time.time() - t
    if seg.failed:
        sys.exit(f"segmentation failed for {[r['clip'] for r in seg.failed]}: {seg.failed[0].get('error')}")
    common = edit_overrides(args.size, args.steps, max_frames, args.qa_iterations, args.instructions)
    plan = [(g, p) for g in counts for p in args.placements if not (p == "split" and g < 2)]
    results: list[dict[str, Any]] = []
    sampler.start()
    try:
        for gpus, placement in plan:
            sets = [*common, *ray_sets, *config_overrides(gpus, placement, args.first_frame_actors),
                    f"run_id=g{gpus}-{placement}", "from_run=segment", *args.set]
            cfg = load_config(None, sets, base={"input": {"paths": clips}, "output": runs})
            rows: list[dict[str, Any]] = []
            events: list[tuple[float, dict[str, Any]]] = []
            n0 = len(sampler.samples)
            t = time.time()

            def on_event(e: dict[str, Any], ev: list[tuple[float, dict[str, Any]]] = events) -> None:
                ev.append((time.time(), dict(e)))

            pipeline.run(cfg, progress=rows.append, on_event=on_event)
            wall = time.time() - t
            res = measure(rows, events, wall, len(clips), sampler.samples[n0:], range(len(sampler.handles)))
            res.update(gpus=gpus, placement=placement, overrides=sets)
            if placement == "split":
                from lanepipe.stages.edit_split import split_actors

                res["split_actors"] = list(split_actors(cfg))
            results.append(res)
            print(f"G={gpus} {placement:5s}: {res['clips_done']}/{len(clips)} clips, steady "
                  f"{res['clips_per_hour']} clips/h, wall {res['clips_per_hour_wall']} clips/h", flush=True)
    finally:
        sampler.stop()
    earlier = json.loads(args.baseline.read_text())["results"] if args.baseline else []
    base = efficiency(results, earlier)
    doc: dict[str, Any] = {"size": args.size, "gpus_present": have if args.size == "full" else 0,
                           "clips": len(clips), "instructions": args.instructions, "max_frames": max_frames,
                           "steps": args.steps if args.size == "full" else None, "segment_s": round(seg_s, 2),
                           "segment_backend": args.segment, "nvml": sampler.available, "nvml_error": sampler.error,
                           "baseline": None if base is None else {k: base.get(k) for k in (
                               "gpus", "placement", "clips_per_hour", "clips_per_hour_wall")},
                           "baseline_from": str(args.baseline) if base is not None and base not in results else None,
                           "results": results}
    with contextlib.suppress(Exception):
        import torch

        doc["torch"] = torch.__version__
        if torch.cuda.is_available():
            doc["gpu_name"] = torch.cuda.get_device_name()
    tmp = out / ".sweep_scaling.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(out / "sweep_scaling.json")
    if sampler.samples:
        lines = ["t,gpu,util_pct,mem_used_mib", *(f"{s['t']:.3f},{s['gpu']},{s['util_pct']},{s['mem_used_mib']}"
                                                  for s in sampler.samples)]
        (out / "nvml_samples.csv").write_text("\n".join(lines) + "\n")
    print(f"{'G':>2} {'placement':9} {'clips/h':>9} {'eff':>6} {'clips/h wall':>12} {'eff wall':>8}")
    for r in results:
        print(f"{r['gpus']:>2} {r['placement']:9} {r['clips_per_hour']!s:>9} {r['efficiency_vs_linear']!s:>6} "
              f"{r['clips_per_hour_wall']!s:>12} {r['efficiency_vs_linear_wall']!s:>8}")
    print(f"wrote {out / 'sweep_scaling.json'}")


if __name__ == "__main__":
    main()
