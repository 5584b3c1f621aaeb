"""Edit-stage figures on the shared real clips and the sample clip, measured in one run.

- edit success: every preset x every clip through the QA loop; share the verifier passes (goal >= 0.9);
- not a rubber stamp: the verifier on the *original* clips, for presets that differ from the labelled markings
  (tests/data/lane_labels.json); share it fails (goal >= 0.9);
- background preservation: PSNR outside the road mask, edited.mp4 vs the input re-encoded once (goal >= 40 dB);
- temporal consistency inside the road mask: warping error (flow from the original clip) of original vs
  edited (goal: edited no worse than original by more than 10 %);
- speed on a 1280x720 clip: edit-stage frames/s vs decode-only frames/s (goal ratio >= 0.3).

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/edit_quality.py [--max-frames 48]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import data_dir, machine

from lanepipe.edit.config import ProceduralConfig
from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.io.video import decode, encode
from lanepipe.lanes.instructions import PRESETS, LaneSpec, parse_instruction
from lanepipe.metrics import farneback_flow, psnr, warping_error
from lanepipe.segment.config import GridConfig
from lanepipe.segment.grid import GridSegmenter
from lanepipe.stages.edit import qa_edit
from lanepipe.types import Clip
from lanepipe.verify.base import verdict
from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector import LaneDetector

REPO = Path(__file__).resolve().parents[1]


def clip_truth(rel: str) -> dict[str, dict[str, object]]:
    """Labelled boundaries of a clip (labels hold for the whole clip in the shared data)."""
    items = json.loads((REPO / "tests" / "data" / "lane_labels.json").read_text())["items"]
    for it in items:
        if it["path"] == rel:
            return {"left": it["left"], "right": it["right"]}
    raise SystemExit(f"no labels for {rel}")


def differs(spec: LaneSpec, truth: dict[str, dict[str, object]]) -> bool:
    sides = ["left", "right"] if spec.side == "both" else [spec.side]
    for side in sides:
        t = truth[side]
        if spec.is_removal:
            if t["count"] != 0:
                return True
        elif (t["count"], t["color"], t["pattern"]) != (spec.count, spec.color, spec.pattern):
            return True
    return False


def reencoded(clip: Clip, tmp: Path) -> np.ndarray:
    p = tmp / "ref.mp4"
    encode(clip.frames, str(p), clip.fps)
    return decode(str(p), target_fps=None).frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-frames", type=int, default=48)
    ap.add_argument("--max-iterations", type=int, default=10)
    ap.add_argument("--speed-only", action="store_true", help="only the speed figure")
    args = ap.parse_args()
    d = data_dir()
    clips = sorted(p.relative_to(d).as_posix() for p in d.glob("udacity_*/*.mp4"))
    seg = GridSegmenter(GridConfig())
    painter = ProceduralPainter(ProceduralConfig())
    verifier = LaneDetector(LaneDetectorConfig())
    specs = {name: parse_instruction(text) for name, text in PRESETS.items()}
    print(f"machine: {machine()}")
    if not args.speed_only:
        quality(args, d, clips, seg, painter, verifier, specs)
    speed(d, seg, verifier, specs)


def quality(args: argparse.Namespace, d: Path, clips: list[str], seg: GridSegmenter, painter: ProceduralPainter,
            verifier: LaneDetector, specs: dict[str, LaneSpec]) -> None:
    passed, total, stamp_fail, stamp_total = 0, 0, 0, 0
    psnrs: list[float] = []
    psnrs_mem: list[float] = []
    wes: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for rel in clips:
            clip = decode(str(d / rel), max_frames=args.max_frames)
            masks = seg.segment(clip)
            truth = clip_truth(rel)
            ref = reencoded(clip, tmp)
            flows = [farneback_flow(clip.frames[t], clip.frames[t + 1]) for t in range(clip.num_frames - 1)]
            we_orig = warping_error(clip.frames, flows, masks.masks)
            orig_report = verifier.inspect(clip.frames, masks.masks)
            for name, spec in specs.items():
                out = qa_edit(painter, verifier, clip, masks, spec, args.max_iterations)
                total += 1
                passed += out.passed
                p = tmp / "edited.mp4"
                encode(out.result.frames, str(p), clip.fps)
                edited = decode(str(p), target_fps=None).frames
                bg = psnr(edited, ref, ~masks.masks)
                psnrs.append(bg)
                bg_mem = psnr(out.result.frames, clip.frames, ~masks.masks)  # what the edit stage records
                psnrs_mem.append(bg_mem)
                we_edit = warping_error(out.result.frames, flows, masks.masks)
                wes.append((we_orig, we_edit))
                stamp = ""
                if differs(spec, truth):
                    ok_orig, _ = verdict(orig_report, spec)
                    stamp_total += 1
                    stamp_fail += not ok_orig
                    stamp = f"; original judged {'PASS (rubber stamp!)' if ok_orig else 'FAIL'}"
                print(f"{rel} [{name}]: QA {out.verdict} after {len(out.iterations)} attempt(s); background PSNR "
                      f"{bg_mem:.1f} dB before encoding, {bg:.1f} dB after; warping error orig {we_orig:.2f} "
                      f"edited {we_edit:.2f}{stamp}")
    print(f"edit success: {passed}/{total} = {passed / total:.2f} pass the verifier (goal >= 0.9)")
    print(f"not a rubber stamp: {stamp_fail}/{stamp_total} = {stamp_fail / max(stamp_total, 1):.2f} of originals "
          "fail a differing instruction (goal >= 0.9)")
    print(f"background PSNR outside the road mask, edited frames in memory vs decoded input (what the edit stage "
          f"records): min {min(psnrs_mem):.1f} dB, median {statistics.median(psnrs_mem):.1f} dB")
    print(f"background PSNR outside the road mask, edited.mp4 vs input re-encoded once: min {min(psnrs):.1f} dB, "
          f"median {statistics.median(psnrs):.1f} dB (goal >= 40)")
    ratios = [e / o for o, e in wes]
    print(f"warping error edited/original inside the road mask: median {statistics.median(ratios):.3f}, "
          f"max {max(ratios):.3f} (goal <= 1.10)")



def speed(d: Path, seg: GridSegmenter, verifier: LaneDetector, specs: dict[str, LaneSpec]) -> None:
    bridge = str(d / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4")
    spec = specs["double-yellow-solid"]
    times: dict[str, list[float]] = {"decode": [], "paint": [], "verify": [], "encode": []}
    n = 0
    for _ in range(3):
        t = time.perf_counter()
        clip = decode(bridge)
        times["decode"].append(time.perf_counter() - t)
        n = clip.num_frames
        masks = seg.segment(clip)
        fresh = ProceduralPainter(ProceduralConfig())  # no cached analysis: a first attempt
        t = time.perf_counter()
        result = fresh.paint(clip, masks, spec)
        times["paint"].append(time.perf_counter() - t)
        t = time.perf_counter()
        verifier.inspect(result.frames, masks.masks)
        times["verify"].append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmpdir:
            t = time.perf_counter()
            encode(result.frames, f"{tmpdir}/e.mp4", clip.fps)
            times["encode"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    fd = n / med["decode"]
    stage = med["paint"] + med["verify"] + med["encode"]
    print(f"speed on {Path(bridge).name} 1280x720, {n} frames (medians of 3): decode {med['decode']:.2f} s, paint "
          f"{med['paint']:.2f} s, verify {med['verify']:.2f} s, encode {med['encode']:.2f} s")
    print(f"decode-only {fd:.1f} frames/s; paint alone {n / med['paint']:.1f} frames/s (ratio "
          f"{n / med['paint'] / fd:.2f}); edit stage = paint + verify + encode, one QA attempt: {n / stage:.1f} "
          f"frames/s, ratio {n / stage / fd:.2f} (goal >= 0.3)")


if __name__ == "__main__":
    main()
