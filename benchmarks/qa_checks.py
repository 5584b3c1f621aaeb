"""The QA checks (issue 13 item 3) on the shared real clips and the sample clip, every preset.

- not a rubber stamp: each *original* clip offered as the edit of a preset that differs from its labelled markings
  (tests/data/lane_labels.json; the sample's own truth); share that FAILs, verifier alone and verifier + checks
  (goal >= 0.95);
- the checks on today's procedural edits: one attempt per clip and preset (no retries), which checks fail;
- cost of the checks per attempt.

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/qa_checks.py [--max-frames 24] [--no-edits]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from _common import data_dir, machine

from lanepipe.edit.config import ProceduralConfig
from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import PRESETS, LaneSpec, parse_instruction
from lanepipe.sample import render_sample
from lanepipe.segment.config import GridConfig
from lanepipe.segment.grid import GridSegmenter
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.edit_checks import EditChecker
from lanepipe.verify.lane_detector import LaneDetector

REPO = Path(__file__).resolve().parents[1]
#: The sample's own markings (lanepipe.sample: double solid yellow centre line, dashed white lane line).
SAMPLE_TRUTH = {"left": {"count": 2, "color": "yellow", "pattern": "solid"},
                "right": {"count": 1, "color": "white", "pattern": "dashed"}}


def clip_truth(rel: str) -> dict[str, dict[str, object]]:
    for it in json.loads((REPO / "tests" / "data" / "lane_labels.json").read_text())["items"]:
        if it["path"] == rel:
            return {"left": it["left"], "right": it["right"]}
    raise SystemExit(f"no labels for {rel}")


def differs(spec: LaneSpec, truth: dict[str, dict[str, object]]) -> bool:
    for side in (["left", "right"] if spec.side == "both" else [spec.side]):
        t = truth[side]
        if spec.is_removal and t["count"] != 0:
            return True
        if not spec.is_removal and (t["count"], t["color"], t["pattern"]) != (spec.count, spec.color, spec.pattern):
            return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-frames", type=int, default=24)
    ap.add_argument("--no-edits", action="store_true", help="only the rubber-stamp figure")
    args = ap.parse_args()
    d = data_dir()
    seg = GridSegmenter(GridConfig())
    painter = ProceduralPainter(ProceduralConfig())
    verifier = LaneDetector()
    specs = {name: parse_instruction(text) for name, text in PRESETS.items()}
    print(f"machine: {machine()}")
    items: list[tuple[str, Clip, RoadMasks, dict[str, dict[str, object]]]] = []
    for p in sorted(d.glob("udacity_*/*.mp4")):
        rel = p.relative_to(d).as_posix()
        clip = decode(str(p), max_frames=args.max_frames)
        items.append((rel, clip, seg.segment(clip), clip_truth(rel)))
    s = render_sample(num_frames=args.max_frames, width=960, height=540)
    items.append(("sample", s.to_clip(), RoadMasks(s.road_masks, "gt"), SAMPLE_TRUTH))
    stamp_v = stamp_c = stamp_n = 0
    fails: Counter[str] = Counter()
    edit_pass = edits = 0
    check_s: list[float] = []
    for rel, clip, masks, truth in items:
        for name, spec in specs.items():
            checker = EditChecker(clip.frames, masks.masks, spec)
            if differs(spec, truth):
                v = verifier.check(clip.frames, clip.frames, masks.masks, spec)
                full = v.with_checks(checker.check(clip.frames), str(spec.side))
                stamp_n += 1
                stamp_v += not v.passed
                stamp_c += not full.passed
                failed = [f"{c.check}@{c.boundary}" for c in full.checks if c.failed]
                print(f"{rel} [{name}] original as edit: verifier {'PASS' if v.passed else 'FAIL'}, with checks "
                      f"{'PASS (rubber stamp!)' if full.passed else 'FAIL'} ({', '.join(failed)})")
            if args.no_edits:
                continue
            edited = painter.paint(clip, masks, spec).frames
            v = verifier.check(clip.frames, edited, masks.masks, spec)
            t0 = time.perf_counter()
            results = checker.check(edited)
            check_s.append(time.perf_counter() - t0)
            full = v.with_checks(results, str(spec.side))
            edits += 1
            edit_pass += full.passed
            failed = [c for c in full.checks if c.failed]
            fails.update(c.check for c in failed if c.check != "target")
            print(f"{rel} [{name}] one procedural attempt: verifier {'PASS' if v.passed else 'FAIL'}, with checks "
                  f"{'PASS' if full.passed else 'FAIL'}" + "".join(f"\n    {c.reason()}" for c in failed))
    print(f"not a rubber stamp: verifier alone {stamp_v}/{stamp_n} = {stamp_v / max(stamp_n, 1):.2f}, verifier + "
          f"checks {stamp_c}/{stamp_n} = {stamp_c / max(stamp_n, 1):.2f} of originals FAIL a differing preset "
          "(goal >= 0.95)")
    if edits:
        print(f"one procedural attempt per clip and preset: {edit_pass}/{edits} pass verifier + checks; failed "
              f"checks: {dict(fails)}; checks take {sum(check_s) / len(check_s):.2f} s per attempt (after the "
              f"original's analysis) on {args.max_frames} frames")


if __name__ == "__main__":
    main()
