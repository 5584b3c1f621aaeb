"""Segment-stage throughput on a 1280x720 real clip, measured in one run.

Prints decode-only frames/s, decode+segment frames/s of the `grid` backend and their ratio (goal ≥ 0.5),
then Ray start-up seconds and the per-clip overhead of running the stage through Ray Data actor pools
versus a plain sequential loop over the same stage class.

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/throughput.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from _common import data_dir, machine

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.io.video import decode
from lanepipe.segment.config import GridConfig
from lanepipe.segment.grid import GridSegmenter

REPEATS = 5


def main() -> None:
    d = data_dir()
    clip_path = str(d / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4")
    seg = GridSegmenter(GridConfig())
    seg.segment(decode(clip_path, max_frames=4))  # warm-up (imports, allocations)
    dec, both = [], []
    n = 0
    for _ in range(REPEATS):
        t = time.perf_counter()
        clip = decode(clip_path)
        dec.append(time.perf_counter() - t)
        t = time.perf_counter()
        clip = decode(clip_path)
        seg.segment(clip)
        both.append(time.perf_counter() - t)
        n = clip.num_frames
    fd, fb = n / statistics.median(dec), n / statistics.median(both)
    print(f"machine: {machine()}")
    print(f"clip: {Path(clip_path).name} 1280x720, {n} frames after resampling to 8 fps")
    print(f"decode-only: {fd:.1f} frames/s")
    print(f"decode+segment (grid): {fb:.1f} frames/s")
    print(f"ratio decode+segment / decode-only: {fb / fd:.2f} (goal >= 0.5)")

    clips = sorted(str(p) for p in d.glob("udacity_*/*.mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        sets = ["input.max_frames=150", "segment.overlay=false", "segment.videopainter=false"]
        t = time.perf_counter()
        seq = pipeline.run(load_config(None, sets, base={"input": {"paths": clips}, "output": f"{tmp}/seq"}),
                           executor="sequential")
        t_seq = time.perf_counter() - t
        t = time.perf_counter()
        init_s = pipeline.init_ray(load_config(None, ["ray.num_cpus=2"]))
        t = time.perf_counter()
        ray_run = pipeline.run(load_config(None, sets, base={"input": {"paths": clips}, "output": f"{tmp}/ray"}))
        t_ray = time.perf_counter() - t
    assert all(r["status"] == "ok" for r in seq.rows + ray_run.rows)
    print(f"ray start-up: {init_s:.2f} s")
    print(f"{len(clips)} clips sequential: {t_seq:.2f} s; through Ray Data (1 actor): {t_ray:.2f} s")
    print(f"per-clip Ray overhead: {(t_ray - t_seq) / len(clips):.2f} s")


if __name__ == "__main__":
    main()
