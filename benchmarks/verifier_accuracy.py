"""Accuracy of the `lane_detector` verifier on hand-labelled real frames, plus the synthetic sample check.

Labels: tests/data/lane_labels.json (see tests/data/LABELS.md), paths relative to the shared data folder.
For every labelled ego-lane boundary it compares count, colour and pattern; colour and pattern are scored on
the boundaries that carry a marking in the labels (a missed line counts as wrong). Prints overall and
per-source accuracy, the same without boundaries flagged ambiguous, the sample clip's answer, the time per
analysed frame, the machine and the date.

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/verifier_accuracy.py [--verbose] [--masks]

``--masks`` also passes road masks from the `grid` segmentation backend (clips and stills alike).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import data_dir, machine

from lanepipe.io.video import decode
from lanepipe.verify.base import BoundaryReport
from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector import LaneDetector

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "lane_labels.json"
GOALS = {"count": 0.85, "color": 0.90, "pattern": 0.90}


def load_frames(root: Path, item: dict[str, Any]) -> np.ndarray:
    """``(T, H, W, 3) uint8`` RGB frames of a labelled item (a still is T = 1)."""
    path = root / item["path"]
    if "frames" not in item:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{path}: expected an image, could not read it")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[None]
    clip = decode(str(path), target_fps=8.0, max_frames=150)
    lo, hi = item["frames"]["source_start"], item["frames"]["source_end"]
    keep = (clip.source_indices >= lo) & (clip.source_indices < hi)
    return clip.frames[keep]


def road_masks(frames: np.ndarray) -> np.ndarray:
    from lanepipe.segment.config import GridConfig
    from lanepipe.segment.grid import segment_frames

    return segment_frames(frames, GridConfig())


def score(seen: BoundaryReport, want: dict[str, Any]) -> dict[str, bool | None]:
    """Per attribute: True / False, or None where the attribute is not scored (no marking in the label)."""
    out: dict[str, bool | None] = {"count": seen.count == want["count"]}
    for attr in ("color", "pattern"):
        out[attr] = None if want["count"] == 0 else getattr(seen, attr) == want[attr]
    return out


def table(rows: list[dict[str, Any]], title: str) -> None:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["source"]].append(r)
        groups["ALL"].append(r)
        if r["source"] != "clips":
            groups["ALL stills"].append(r)
    print(f"\n{title}")
    print(f"{'source':<18}{'boundaries':>11}{'count':>14}{'color':>14}{'pattern':>14}{'all 3':>14}")
    for name in [*sorted(k for k in groups if not k.startswith("ALL")), "ALL stills", "ALL"]:
        g = groups[name]
        cells = []
        for attr in ("count", "color", "pattern", "all"):
            vals = [r[attr] for r in g if r[attr] is not None]
            cells.append(f"{sum(vals)}/{len(vals)} {sum(vals) / len(vals):.2f}" if vals else "-")
        print(f"{name:<18}{len(g):>11}" + "".join(f"{c:>14}" for c in cells))


def sample_check(det: LaneDetector) -> None:
    from lanepipe.sample import render_sample

    s = render_sample()
    for label, masks in (("frames only", None), ("with road masks", s.road_masks)):
        r = det.inspect(s.frames, masks)
        ok = (r.left.describe() == "double yellow solid") and (r.right.describe() == "single white dashed")
        print(f"sample ({label}): left = {r.left.describe()} ({r.left.confidence:.2f}), "
              f"right = {r.right.describe()} ({r.right.confidence:.2f}) -> {'OK' if ok else 'WRONG'} "
              "(expected left double yellow solid, right single white dashed)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true", help="one line per labelled item")
    ap.add_argument("--masks", action="store_true", help="also pass grid-backend road masks")
    args = ap.parse_args()
    root = data_dir()
    labels = json.loads(LABELS.read_text())
    det = LaneDetector(LaneDetectorConfig())
    print(f"machine: {machine()}")
    print(f"labels: {LABELS.name}, {len(labels['items'])} items; detector config: {det.cfg.model_dump()}")
    rows: list[dict[str, Any]] = []
    n_frames, seconds = 0, 0.0
    for item in labels["items"]:
        frames = load_frames(root, item)
        masks = road_masks(frames) if args.masks else None
        t0 = time.perf_counter()
        rep = det.inspect(frames, masks)
        seconds += time.perf_counter() - t0
        n_frames += int(rep.diagnostics["frames_used"])
        where = item["path"] + (f"[{item['frames']['source_start']}:{item['frames']['source_end']}]"
                                if "frames" in item else "")
        for side in ("left", "right"):
            want = item[side]
            seen = rep.boundary(side)
            s = score(seen, want)
            all_ok = all(v for v in s.values() if v is not None)
            rows.append({"source": item["source"], **s, "all": all_ok, "ambiguous": bool(want.get("ambiguous"))})
            if args.verbose:
                exp = "none" if want["count"] == 0 else (
                    f"{'single' if want['count'] == 1 else 'double'} {want['color']} {want['pattern']}")
                print(f"{'ok  ' if all_ok else 'MISS'} {where:<62} {side:<5} want {exp:<22} "
                      f"seen {seen.describe():<22} conf {seen.confidence:.2f} cov {seen.coverage or 0:.2f} "
                      f"yel {seen.yellowness or 0:.1f} seen {seen.frames_seen}/{seen.frames_used}")
    table(rows, f"accuracy per labelled boundary (goals: count >= {GOALS['count']}, colour >= {GOALS['color']}, "
                f"pattern >= {GOALS['pattern']}){' with grid road masks' if args.masks else ''}")
    table([r for r in rows if not r["ambiguous"]], "same, without boundaries labelled ambiguous")
    print(f"\ntime: {1000 * seconds / max(n_frames, 1):.1f} ms per analysed frame ({n_frames} frames, "
          f"work width {det.cfg.work_width})")
    print("note: the detector's thresholds were chosen while looking at these same labelled images (there is no "
          "held-out set), so these figures are optimistic for unseen cameras.")
    sample_check(det)


if __name__ == "__main__":
    main()
