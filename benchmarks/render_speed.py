"""Render-stage speed on the 48-frame 960x540 synthetic sample clip, measured in one run.

Work per repeat, with and without drawing:

* full: ``overlay_video`` (prediction + ground truth + HUD + BEV inset, ego poses given) and its H.264
  encode, then ``comparison_video`` (original | edited, 1920x540) and its encode;
* encode-only: the same two encodes of the undrawn frames (the original, and original | edited side by side).

Prints frames/s of both (frames of the clip per second of wall time), their ratio (goal >= 0.5), and the drawing
time alone. Ground truth, ego poses and predictions come from the sample's exact road geometry.

    .venv/bin/python benchmarks/render_speed.py [--repeats 3] [--workers 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

from lanepipe import sample as sample_mod
from lanepipe.io.video import encode
from lanepipe.viz.overlay import comparison_video, overlay_video

T0_INDEX = 12  # t0 = 1.5 s into the clip: 16 history steps at 10 Hz fit before it


def _ego_frame(xy: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """World ``(N, 2)`` points into the ego frame of ``origin`` = (x, y, yaw), as ``(N, 3)`` with z = 0."""
    c, s = np.cos(origin[2]), np.sin(origin[2])
    d = xy - origin[:2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], np.zeros(len(d))], axis=1)


def scene(smp: sample_mod.SampleClip) -> dict[str, np.ndarray]:
    """Ground truth, history, per-frame ego poses (t0 frame) and two predictions for the sample clip."""
    t0 = T0_INDEX / smp.fps
    origin = smp.ego[T0_INDEX, :3]

    def ego_at(times: np.ndarray) -> np.ndarray:
        x, y, _ = sample_mod.road_pose(sample_mod.EGO_SPEED_MPS * times, np.full_like(times, sample_mod.EGO_OFFSET_M))
        return _ego_frame(np.stack([x, y], axis=1), origin)

    gt = ego_at(t0 + np.arange(1, 65) * 0.1)
    history = ego_at(t0 + np.arange(-15, 1) * 0.1)
    poses = np.repeat(np.eye(4)[None], smp.num_frames, axis=0)
    c0, s0 = np.cos(origin[2]), np.sin(origin[2])
    for i, (x, y, yaw, _) in enumerate(smp.ego):
        d = np.array([x, y]) - origin[:2]
        poses[i, :2, 3] = [c0 * d[0] + s0 * d[1], -s0 * d[0] + c0 * d[1]]
        a = yaw - origin[2]
        poses[i, :2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    ramp = np.linspace(0.0, 1.0, 64)[:, None] * np.array([0.0, 1.0, 0.0])
    original = np.stack([gt + k * 0.4 * ramp for k in (-1, 0, 1)])  # K = 3 samples fanning out
    edited = original + 1.2 * ramp  # the edit pulls the path 1.2 m to the left by 6.4 s
    return {"gt": gt, "history": history, "poses": poses, "original": original, "edited": edited,
            "t_frames": np.arange(smp.num_frames) / smp.fps - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="drawing threads (overlay_video workers)")
    ap.add_argument("--out", type=Path, default=None, help="keep the last repeat's mp4s here")
    args = ap.parse_args()

    smp = sample_mod.render_sample(num_frames=48, fps=8.0, width=960, height=540)
    sc = scene(smp)
    frames, cam, n = smp.frames, smp.camera, smp.num_frames
    edited_frames = frames.copy()  # the pixels of the edit do not change the drawing or encoding cost
    hud = {"minADE": "0.40 m", "clip": "sample", "camera": "front 70 deg"}
    common = {"gt": sc["gt"], "history": sc["history"], "ego_poses": sc["poses"], "workers": args.workers}

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        overlay_video(frames[:2], cam, sc["t_frames"][:2], {"original": sc["original"]},
                      gt=sc["gt"], history=sc["history"], ego_poses=sc["poses"][:2])  # warm-up
        encode(frames[:2], str(out / "warmup.mp4"), smp.fps)
        enc, full, draw = [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            encode(frames, str(out / "encode_only_overlay.mp4"), smp.fps)
            encode(np.concatenate([frames, edited_frames], axis=2), str(out / "encode_only_comparison.mp4"), smp.fps)
            enc.append(time.perf_counter() - t)

            t = time.perf_counter()
            ov = overlay_video(frames, cam, sc["t_frames"], {"original": sc["original"]}, hud=hud, **common)
            t_draw = time.perf_counter() - t
            encode(ov, str(out / "overlay.mp4"), smp.fps)
            t1 = time.perf_counter()
            cmp = comparison_video(frames, sc["original"], edited_frames, sc["edited"], cam, sc["t_frames"],
                                   hud=hud, titles=("original", "edited: double yellow solid"), **common)
            t_draw += time.perf_counter() - t1
            encode(cmp, str(out / "comparison.mp4"), smp.fps)
            full.append(time.perf_counter() - t)
            draw.append(t_draw)
        (out / "warmup.mp4").unlink(missing_ok=True)

    f_enc, f_full = n / statistics.median(enc), n / statistics.median(full)
    print(f"machine: {machine()}")
    print(f"clip: synthetic sample 960x540, {n} frames at {smp.fps:g} fps; t0 = frame {T0_INDEX}; K = 3 samples; "
          f"{args.repeats} repeats (median); drawing threads: {args.workers}")
    print(f"encode-only (overlay 960x540 + comparison 1920x540): {f_enc:.1f} frames/s")
    print(f"overlay+comparison render + encode: {f_full:.1f} frames/s")
    print(f"drawing alone (overlay + both comparison panels): {n / statistics.median(draw):.1f} frames/s")
    ratio = f_full / f_enc
    print(f"ratio render+encode / encode-only: {ratio:.2f} (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
