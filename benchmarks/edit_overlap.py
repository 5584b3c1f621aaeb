"""How long the edit actor's device waits on CPU work, one clip in flight vs two (issue 15, lever 5).

Segments the shared dashcam clips once (grid, in this process), then runs the ``flux_cogvideox`` edit stage through
Ray Data twice on them, with ``edit.resources.in_flight`` 1 (each clip decodes, denoises, composites and encodes in
turn) and 2 (clips take turns on the device while the other decodes / composites / encodes:
:mod:`lanepipe.stages.edit`). From the spans each edit row records it reports, per clip, the share of the clip's
window in which no model call ran (:func:`lanepipe.monitoring.idle_per_item`: the device waiting on CPU work), its
median over the clips, and the edit stage's wall time.

CPU (tiny-random models: "device" calls run on the CPU, beside the CPU work, on the same cores)::

    python benchmarks/edit_overlap.py --clips 4 --out /tmp/edit_overlap    # tiny models, 50 + 50 steps

GPU (one H200; random-init weights at the published sizes, 20 steps)::

    python3 benchmarks/edit_overlap.py --size full --clips 4 --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import data_dir, machine  # noqa: E402


def clip_spans(rows: list[dict[str, Any]]) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """Spans per actor process, per clip (the rows of a clip's instructions merged)."""
    out: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("stage") == "edit" and r.get("spans") and not r.get("skipped"):
            out[int(r["worker_pid"])][str(r["clip"])].extend(json.loads(r["spans"]))
    return out


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-clip idle shares, their median, and the per-actor summary (:func:`device_wait_summary`)."""
    from lanepipe.monitoring import device_wait_summary, idle_per_item

    per_clip: dict[str, dict[str, float]] = {}
    actors = []
    for pid, by_clip in clip_spans(rows).items():
        per_clip.update(idle_per_item(by_clip))
        actors.append({"pid": pid, **device_wait_summary([s for v in by_clip.values() for s in v])})
    fr = [v["idle_fraction"] for v in per_clip.values()]
    return {"per_clip": per_clip, "median_idle_fraction": round(statistics.median(fr), 4) if fr else None,
            "actors": actors, "failed": [r.get("error") for r in rows if r.get("stage") == "edit"
                                         and r.get("status") == "failed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--max-frames", type=int, default=None, help="frames per clip (default 9 tiny, 49 full)")
    ap.add_argument("--steps", type=int, default=None, help="FLUX and CogVideoX denoising steps (default: the "
                    "published 50 for tiny, so the tiny models' device share is not negligible; 20 for full)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "edit_overlap_out")
    args = ap.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from lanepipe import pipeline
    from lanepipe.config import load_config

    clips = sorted(str(p) for p in data_dir().rglob("*.mp4"))[: args.clips]
    if len(clips) < args.clips:
        sys.exit(f"need {args.clips} clips under {data_dir()}, found {len(clips)}")
    out = Path(args.out).resolve()
    frames = args.max_frames or (9 if args.size == "tiny" else 49)
    base = {"input": {"paths": clips}, "output": str(out)}
    stamp = time.strftime("%H%M%S")
    up = f"seg-{stamp}"
    pipeline.run(load_config(None, ["stages=segment", f"run_id={up}", f"input.max_frames={frames}",
                                    "segment.overlay=false", "segment.videopainter=false"], base=base),
                 executor="sequential")
    gen = ["edit.backend=flux_cogvideox", "edit.qa.max_iterations=1", "edit.instructions=[double yellow solid]",
           f"input.max_frames={frames}", "stages=edit", f"from_run={up}", "edit.resources.concurrency=1"]
    steps = args.steps or (50 if args.size == "tiny" else 20)
    gen += [f"edit.generative.flux_steps={steps}", f"edit.generative.video_steps={steps}"]
    if args.size == "tiny":
        gen += ["edit.preset=tiny-random", "ray.num_cpus=2"]
    else:
        gen += ["edit.preset=random-init", "edit.resources.num_gpus=1"]
    result: dict[str, Any] = {"machine": machine(), "size": args.size, "clips": clips, "max_frames": frames,
                              "steps": steps}
    for in_flight in (1, 2):
        run_id = f"edit-{in_flight}-{stamp}"
        t = time.time()
        summary = pipeline.run(load_config(None, [*gen, f"run_id={run_id}", f"edit.resources.in_flight={in_flight}"],
                                           base={"input": {"paths": []}, "output": str(out)}))
        wall = time.time() - t
        manifest = json.loads((Path(summary.url) / "manifest.json").read_text())
        result[f"in_flight_{in_flight}"] = {"run_wall_s": round(wall, 2),
                                            "edit_busy_s": manifest["timing"]["busy_s"].get("edit"),
                                            **figures(summary.rows)}
    (out / "edit_overlap.json").write_text(json.dumps(result, indent=1))
    for k in ("in_flight_1", "in_flight_2"):
        r = result[k]
        print(f"{k}: median idle fraction {r['median_idle_fraction']}, run wall {r['run_wall_s']} s, "
              f"actors {[{x: a[x] for x in ('wall_s', 'device_s', 'cpu_s', 'idle_fraction')} for a in r['actors']]}")
    print(f"wrote {out / 'edit_overlap.json'}")


if __name__ == "__main__":
    main()
