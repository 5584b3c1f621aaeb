"""Quality benchmark: every shared clip x every preset through the real pipeline, checks and contact sheets.

The pipeline runs the segment and edit stages (grid segmenter, procedural painter, ``lane_detector`` QA loop) with
the sequential executor on every ``udacity_*/*.mp4`` clip of the shared data, one edit per preset of
``lanepipe.lanes.instructions.PRESETS``. For each edit it reads ``qa.json`` and collects the automatic checks
generically: every entry of the final QA iteration that carries a boolean ``pass``/``passed``/``ok`` (or a
``verdict`` of PASS/FAIL) is a check; its reasons are kept. It then writes one contact sheet per clip (PNG:
the original, then one row per preset, at the start, middle and end frame, labelled with the preset, its
verdict and its failed checks) for a person to look at, and prints a table clip x preset → verdict + failed
checks. Everything is deterministic (fixed frames, fixed settings); one command:

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/quality_sheet.py [--max-frames 32] \
        [--out runs/quality_sheet] [--clips bridge,4s] [--presets no-markings]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import data_dir, machine

from lanepipe.config import RunConfig
from lanepipe.io.layout import RunLayout
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import PRESETS
from lanepipe.pipeline import run

TILE_W = 480
BOOL_KEYS = ("pass", "passed", "ok")


def find_checks(node: Any, path: str = "") -> list[dict[str, Any]]:
    """Every check in a qa.json subtree: dicts with a boolean ``pass``/``passed``/``ok`` or a PASS/FAIL verdict.

    Returns ``[{"name", "pass", "reason"}]``; a check's name is its ``name``/``check`` field, else its JSON path.
    """
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        flag = next((node[k] for k in BOOL_KEYS if isinstance(node.get(k), bool)), None)
        if flag is None and node.get("verdict") in ("PASS", "FAIL") and path:
            flag = node["verdict"] == "PASS"
        if flag is not None:
            name = str(node.get("name") or node.get("check") or path or "check")
            reason = node.get("reason") or node.get("reasons") or node.get("detail") or ""
            if isinstance(reason, list):
                reason = "; ".join(str(r) for r in reason)
            out.append({"name": name, "pass": bool(flag), "reason": str(reason)})
        for k, v in node.items():
            if isinstance(v, dict | list):
                out.extend(find_checks(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(find_checks(v, f"{path}[{i}]"))
    return out


def read_qa(url: Path) -> dict[str, Any]:
    """Verdict, checks and reasons of an edit's qa.json (its final iteration)."""
    doc = json.loads(url.read_text())
    its = doc.get("iterations") or []
    last = its[-1] if its else doc
    checks = find_checks({k: v for k, v in last.items() if k != "seen"})
    top = [c for c in find_checks({k: v for k, v in doc.items() if k != "iterations"})]
    reasons = [str(r) for r in last.get("reasons", [])]
    failed = [c["name"] for c in checks + top if not c["pass"]]
    return {"verdict": doc.get("final_verdict", last.get("verdict", "?")), "iterations": len(its),
            "checks": checks + top, "failed": failed, "reasons": reasons}


def label(img: np.ndarray, lines: list[str], colour: tuple[int, int, int]) -> np.ndarray:
    """Text lines on a dark box at the top left of an RGB tile."""
    out = np.ascontiguousarray(img.copy())
    scale, th = 0.5, 1
    y = 18
    for text in lines:
        (tw, tht), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
        cv2.rectangle(out, (2, y - tht - 4), (6 + tw, y + 4), (0, 0, 0), -1)
        cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, th, cv2.LINE_AA)
        y += tht + 10
    return out


def tile(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.asarray(cv2.resize(frame, (TILE_W, round(h * TILE_W / w)), interpolation=cv2.INTER_AREA))


def contact_sheet(original: np.ndarray, edits: list[tuple[str, np.ndarray | None, dict[str, Any] | None, str]],
                  clip: str) -> np.ndarray:
    """Rows: the original, then one per preset; columns: start, middle and end frame."""
    t_count = original.shape[0]
    picks = [0, t_count // 2, t_count - 1]
    rows = []
    orig = [tile(original[t]) for t in picks]
    orig[0] = label(orig[0], [f"{clip}: ORIGINAL", f"frames {picks}"], (255, 255, 255))
    rows.append(np.concatenate(orig, axis=1))
    blank = np.zeros_like(orig[0])
    for name, frames, qa, note in edits:
        if frames is None:
            row = [label(blank, [name, note[:60]], (255, 80, 80)), blank, blank]
        else:
            idx = [min(t, len(frames) - 1) for t in picks]
            row = [tile(frames[t]) for t in idx]
            assert qa is not None
            ok = qa["verdict"] == "PASS"
            text = [f"{name}: {qa['verdict']} ({qa['iterations']} it.)"]
            text += [f"x {f}"[:70] for f in qa["failed"][:3]]
            row[0] = label(row[0], text, (80, 255, 80) if ok else (255, 80, 80))
        rows.append(np.concatenate(row, axis=1))
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    out = []
    for r in rows:
        out += [r, sep]
    return np.concatenate(out[:-1], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-frames", type=int, default=32, help="frames per clip at 8 fps")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "runs" / "quality_sheet"),
                    help="folder for the contact sheets (runs/ is not tracked by git)")
    ap.add_argument("--clips", default="", help="comma-separated substrings of clip names (default: all)")
    ap.add_argument("--presets", default="", help="comma-separated preset names (default: all)")
    ap.add_argument("--keep-run", default="", help="keep the pipeline run in this folder (default: temporary)")
    args = ap.parse_args()
    d = data_dir()
    clips = sorted(d.glob("udacity_*/*.mp4"))
    if args.clips:
        clips = [c for c in clips if any(s in c.name for s in args.clips.split(","))]
    presets = [p for p in PRESETS if not args.presets or p in args.presets.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"quality_sheet on {machine()}: {len(clips)} clips x {len(presets)} presets, "
          f"<= {args.max_frames} frames at 8 fps")
    tmp = Path(args.keep_run) if args.keep_run else Path(tempfile.mkdtemp(prefix="quality_sheet_"))
    try:
        cfg = RunConfig.model_validate({
            "input": {"paths": [str(c) for c in clips], "max_frames": args.max_frames, "target_fps": 8.0},
            "output": str(tmp), "run_id": "quality", "stages": ["segment", "edit"],
            "segment": {"backend": "grid", "overlay": False, "videopainter": False},
            "edit": {"backend": "procedural", "instructions": [f"preset:{p}" for p in presets]}})
        t0 = time.perf_counter()
        summary = run(cfg, executor="sequential")
        print(f"pipeline: {time.perf_counter() - t0:.0f} s")
        rows = {(r["clip"], r.get("instruction")): r for r in summary.rows if r.get("stage") == "edit"}
        layout = RunLayout(str(tmp), "quality")
        table: list[tuple[str, str, str, str]] = []
        for c in clips:
            name = c.stem
            original = decode(str(c), target_fps=8.0, max_frames=args.max_frames).frames
            edits: list[tuple[str, np.ndarray | None, dict[str, Any] | None, str]] = []
            for p in presets:
                instr = PRESETS[p]
                r = rows.get((name, instr), {})
                paths = layout.edit_paths(name, layout.slug(instr))
                qa_url = Path(paths.qa)
                if r.get("status") != "ok" or not qa_url.is_file():
                    err = str(r.get("error") or "no edit row")
                    edits.append((p, None, None, err))
                    table.append((name, p, "NOT PAINTED", err.splitlines()[0][:100]))
                    continue
                qa = read_qa(qa_url)
                edited = decode(paths.video, target_fps=None).frames
                edits.append((p, edited, qa, ""))
                detail = "; ".join([*qa["failed"], *qa["reasons"]]) or "-"
                table.append((name, p, f"{qa['verdict']} ({qa['iterations']} it.)", detail))
            sheet = contact_sheet(original, edits, name)
            png = out / f"{name}.png"
            ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            if not ok:
                raise SystemExit(f"PNG encoding failed for {png}")
            part = png.with_suffix(".png.part")
            part.write_bytes(buf.tobytes())
            part.replace(png)
            print(f"contact sheet: {png}")
        print("\n| clip | preset | verdict | failed checks / reasons |\n|---|---|---|---|")
        for name, p, v, detail in table:
            print(f"| {name} | {p} | {v} | {detail} |")
    finally:
        if not args.keep_run:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
