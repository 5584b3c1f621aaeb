"""How ``pipeline_recomputed.txt`` was made: the H200 pipeline run of 2026-12-05 (third lease, call B) summarised
again with the fixed :func:`gpu_pipeline.summarise` (the rows of one call are one item; Ray's overhead is the wall
time in which nothing ran), from what the call brought back: the run folder (``results.parquet``,
``manifest.json``; 1 MB, not committed), the call's ``pipeline.log`` (one line per stage item) and
``nvml_samples.csv``. Runs made after this change save their events in ``gpu_pipeline.json``.

    python benchmarks/results/h200-2026-12-05-third/recompute_overhead.py EXTRACTED_RES_B/
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from lanepipe.testing import load_script  # noqa: E402

LINE = re.compile(r"^\[\s*([\d.]+)s\] (\w+) (\S+) (.*?) ?(ok|failed) busy ([\d.]+) setup")


def main(res: Path) -> None:
    bench = load_script("benchmarks/gpu_pipeline.py", "gpu_pipeline_bench")
    run = next((res / "pipeline" / "runs").iterdir())
    rows = pq.read_table(run / "results.parquet").to_pylist()
    manifest = json.loads((run / "manifest.json").read_text())
    samples = []
    for line in (res / "pipeline" / "nvml_samples.csv").read_text().splitlines()[1:]:
        t, g, u, m = line.split(",")
        samples.append({"t": float(t), "gpu": int(g), "util_pct": float(u), "mem_used_mib": float(m)})
    t0 = samples[0]["t"]  # the sampler starts just before the run's clock
    setups = {(r["stage"], r["clip"], r.get("instruction")): r["setup_s"] for r in rows
              if r.get("setup_s") is not None and r["setup_s"] == r["setup_s"]}
    events: list[tuple[float, dict[str, Any]]] = []
    for line in (res / "pipeline.log").read_text().splitlines():
        hit = LINE.match(line)
        if hit:
            rel, stage, clip, instr, status, busy = hit.groups()
            e: dict[str, Any] = {"stage": stage, "clip": clip, "instruction": instr or None, "status": status,
                                 "busy_s": float(busy)}
            setup = setups.pop((stage, clip, instr or None), None)
            if setup:
                e["setup_s"] = setup
            events.append((t0 + float(rel), e))
    wall = json.loads((res / "pipeline" / "gpu_pipeline.json").read_text())["wall_s"]
    out = bench.summarise(rows, events, manifest, samples, {}, {}, 1, wall, t0)
    for k in ("wall_s", "active_s", "overhead_s", "overhead_fraction", "sum_stage_compute_s", "edit_span_s",
              "edit_idle_gaps_s", "gpu_busy_fraction_edit_items", "gpu_busy_fraction_edit_span",
              "gpu_busy_fraction_edit_after_first_item"):
        print(k, out[k])
    for it in bench.item_intervals(events):
        setup = None if it["setup_start"] is None else round(it["setup_start"] - t0, 1)
        print(it["stage"], it["clip"], round(it["start"] - t0, 1), round(it["end"] - t0, 1), setup)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
