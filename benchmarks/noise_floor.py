"""Issue 18 figures: the noise floor of lane_keep's shifts on the shared real clips, and each preset tested against it.

One ``lanepipe run`` (all stages but the videos, the five presets, ``lane_keep``, the default noise floor: the
re-encoded original as the baseline and a ``reencode`` null edit), then two ``evaluate`` runs on its edits:

1. ``reencode`` (the default): per clip the null-edit shift ADE (goal <= 0.05 m on every clip), per preset the
   shift on every clip, the mean floor and the paired sign-flip p-value over the clips;
2. ``source baseline``: the same with ``evaluate.baseline=source`` (the decoded source, as before issue 18): the
   null edit then measures what the encoder alone does to lane_keep;
3. ``repaint``: ``evaluate.noise_floor.null_edit=repaint``: the null edit repaints the markings the verifier reads
   on each clip, so the floor includes the painter's own rendering.

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/noise_floor.py [--max-frames 48] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from _common import data_dir, machine

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.lanes.instructions import PRESETS

FAST = ["render.overlay=false", "render.comparison=false", "evaluate.predictors=[lane_keep]"]


def _table(title: str, rows: list[dict[str, Any]]) -> None:
    ev = [r for r in rows if r["stage"] == "evaluate" and r["status"] == "ok"]
    clips = sorted({r["clip"] for r in ev})
    print(f"\n{title}")
    print("  null-edit shift ADE (floor) per clip:")
    for c in clips:
        floor = next(r["floor_ade_m"] for r in ev if r["clip"] == c)
        print(f"    {c:34s} {floor:7.3f} m  {'<= 0.05 m' if floor <= 0.05 else '> 0.05 m'}")
    print("  per preset: shift ADE per clip (m) | mean floor | p (one-sided, paired over clips) | significant")
    print("    " + " " * 26 + "".join(f"{c[:14]:>16s}" for c in clips))
    for instr in sorted({r["instruction"] for r in ev}):
        by = {r["clip"]: r for r in ev if r["instruction"] == instr}
        shifts = "".join(f"{by[c]['shift_ade']:16.3f}" if c in by else f"{'-':>16s}" for c in clips)
        floors = [by[c]["floor_ade_m"] for c in by if by[c]["floor_ade_m"] is not None]
        first = next(iter(by.values()))
        sig = "yes" if first["significant"] else "no"
        print(f"    {instr:26s}{shifts} | {sum(floors) / len(floors):6.3f} | p = {first['p_value']:.4f} "
              f"({first['p_pairs']} clips) | {sig}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-frames", type=int, default=48, help="frames per clip (8 fps)")
    ap.add_argument("--out", default=None, help="runs folder (default: a temporary one)")
    args = ap.parse_args()
    print(f"noise_floor on {machine()}")
    clips = sorted(str(p) for p in data_dir().glob("udacity_*/*.mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        frames = f"input.max_frames={args.max_frames}"
        presets = "edit.instructions=[" + ", ".join(f"preset:{p}" for p in PRESETS) + "]"
        t = time.perf_counter()
        up = pipeline.run(load_config(None, ["stages=all", "run_id=floor", frames, presets, *FAST],
                                      base={"input": {"paths": clips}, "output": out}), executor="sequential")
        print(f"run {up.url}: {len(up.rows)} rows in {time.perf_counter() - t:.0f} s")
        _table("1. default: re-encoded baseline, reencode null edit", up.rows)
        for run_id, what, sets in (("source", "2. source baseline (the decoded source), reencode null edit",
                                    ["evaluate.baseline=source"]),
                                   ("repaint", "3. re-encoded baseline, repaint null edit (the verifier's reading)",
                                    ["evaluate.noise_floor.null_edit=repaint"])):
            t = time.perf_counter()
            down = pipeline.run(load_config(None, ["stages=evaluate", f"from_run={up.url}", f"run_id={run_id}",
                                                   frames, *FAST, *sets], base={"output": out}),
                                executor="sequential")
            _table(f"{what} ({time.perf_counter() - t:.0f} s)", down.rows)


if __name__ == "__main__":
    main()
