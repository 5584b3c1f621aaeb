"""Sweep figures, measured in one run:

1. throughput: clips per minute through segment+edit+evaluate with the embedded backends, local Ray (2 actors per
   stage) vs a plain sequential loop over the same stage classes, and the Ray overhead as a ratio;
2. bad-input sweep: a folder of malformed files mixed with good clips — every good clip done, every bad one
   recorded with a reason, nothing written outside the run folder.

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/sweep.py
"""

from __future__ import annotations

import fractions
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from _common import data_dir, machine

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.io.video import encode

SETS = ["stages=segment,edit,evaluate", "input.max_frames=24", "edit.instructions=[preset:double-yellow-solid]",
        "edit.qa.max_iterations=2"]


def _write(path: Path, frames: np.ndarray, fps: float, pix_fmt: str = "yuv420p", pts: list[int] | None = None,
           fmt: str | None = None) -> Path:
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1000))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pts is not None:
            s.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts is not None:
                vf.pts, vf.time_base = pts[i], fractions.Fraction(1, 1000)
            for pkt in s.encode(vf):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


def bad_folder(root: Path, good: list[Path]) -> tuple[list[str], list[str]]:
    """Malformed files plus copies of good clips; returns (good names, bad names)."""
    root.mkdir(parents=True)
    for g in good:
        shutil.copy(g, root / g.name)
    (root / "zero.mp4").write_bytes(b"")
    data = good[0].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 4])
    (root / "wrong_extension.mp4").write_text("a text file with a video extension\n" * 20)
    with av.open(str(root / "audio_only.mp4"), "w") as out:
        s = out.add_stream("aac", rate=16000)
        for i in range(8):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            for pkt in s.encode(fr):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    encode(np.full((4, 1, 1, 3), 128, np.uint8), str(root / "one_by_one.mp4"), 8.0)
    encode(np.full((1, 64, 96, 3), 128, np.uint8), str(root / "one_frame.mp4"), 8.0)
    (root / "..__..__escape.mp4").write_bytes(data)  # a name that tries to climb out of the run folder
    yy, xx = np.mgrid[0:120, 0:160]
    gray = np.stack([np.repeat(((xx + 3 * t + yy) % 256).astype(np.uint8)[..., None], 3, -1) for t in range(16)])
    _write(root / "grayscale.mp4", gray, 8.0, pix_fmt="gray")
    vfr_pts = [0, 40, 130, 170, 300, 340, 420, 600, 640, 700, 880, 900]
    _write(root / "variable_rate.mkv", gray[:12], 25.0, pts=vfr_pts, fmt="matroska")
    bad = ["zero", "truncated", "wrong_extension", "audio_only", "one_by_one", "one_frame"]
    return [g.stem for g in good] + ["escape", "grayscale", "variable_rate"], bad


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def main() -> None:
    d = data_dir()
    clips = sorted(d.glob("udacity_*/*.mp4"))
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        base = {"input": {"paths": [str(c) for c in clips]}}
        t = time.perf_counter()
        seq = pipeline.run(load_config(None, SETS, base=base | {"output": str(tmp / "seq")}), executor="sequential")
        t_seq = time.perf_counter() - t
        init_s = pipeline.init_ray(load_config(None, ["ray.num_cpus=2"]))
        par = [f"{s}.resources.concurrency=2" for s in ("segment", "edit", "evaluate")]
        t = time.perf_counter()
        ray_run = pipeline.run(load_config(None, SETS + par, base=base | {"output": str(tmp / "ray")}))
        t_ray = time.perf_counter() - t
        n = len(clips)
        ok_seq = sum(r["status"] == "ok" for r in seq.rows)
        ok_ray = sum(r["status"] == "ok" for r in ray_run.rows)
        print(f"throughput, {n} real clips x segment+edit+evaluate (24 frames, 1 instruction, lane_keep): "
              f"sequential {t_seq:.1f} s = {60 * n / t_seq:.1f} clips/min ({ok_seq} ok rows); local Ray, 2 actors per "
              f"stage {t_ray:.1f} s = {60 * n / t_ray:.1f} clips/min ({ok_ray} ok rows); Ray/sequential time ratio "
              f"{t_ray / t_seq:.2f} (Ray start-up {init_s:.1f} s not included)")

        folder = tmp / "inputs" / "mixed"
        good, bad = bad_folder(folder, clips[:2])
        before = snapshot(tmp / "inputs")
        out = tmp / "out"
        run = pipeline.run(load_config(None, ["stages=segment,edit", "input.max_frames=16",
                                              "edit.qa.max_iterations=1", "run_id=bad-input"],
                                       base={"input": {"paths": [str(folder)]}, "output": str(out)}))
        seg = {r["clip"]: r for r in run.rows if r["stage"] == "segment"}
        print(f"bad-input sweep: {len(seg)} clips in the folder")
        for name in sorted(seg):
            r = seg[name]
            reason = str(r["error"]).splitlines()[0] if r["error"] else ""
            print(f"  {name:28s} {r['status']:6s} {reason[:150]}")
        good_done = all(seg[g]["status"] == "ok" for g in good if g in seg)
        bad_recorded = all(seg[b]["status"] == "failed" and seg[b]["error"] for b in bad)
        outside = (snapshot(tmp / "inputs") != before) or any(
            p.name not in ("bad-input",) for p in out.iterdir())
        print(f"every good clip done: {good_done}; every bad one recorded with a reason: {bad_recorded}; "
              f"anything written outside the run folder: {outside}")


if __name__ == "__main__":
    main()
