"""Quality and speed of the `grid` segmentation backend, measured in one run.

Prints, with the machine and date:

* synthetic sample clip (``render_sample()`` defaults): IoU with the ground-truth road mask, and the share of
  the car's pixels that the mask covers;
* TuSimple frames ``tusimple_lanenet_examples/image/000{0,1,2}.png`` (labels ``gt_binary_image``): share of
  labelled lane-line pixels inside the road mask (all of them, and those outside hand-drawn vehicle boxes,
  since the labels are interpolated through the cars that hide them), and share of mask pixels above the
  highest labelled lane pixel;
* the four real clips ``udacity_*/*.mp4`` decoded at 8 fps (max 150 frames): mean and minimum IoU of
  consecutive frames' masks;
* speed on ``project_video_subclip_bridge_6s.mp4`` (1280x720): decode and segment seconds (median of 3).

    LANEPIPE_DATA_DIR=../shared/data .venv/bin/python benchmarks/segment_quality.py [--overlays DIR]

With ``--overlays DIR`` it also writes PNG overlays (mask in green) of the stills and of clip frames.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from _common import data_dir, machine

from lanepipe.io.video import decode
from lanepipe.sample import render_sample
from lanepipe.segment.config import GridConfig
from lanepipe.segment.grid import GridSegmenter
from lanepipe.types import Clip

#: Hand-drawn vehicle boxes (x0, y0, x1, y1) on the TuSimple frames (same as tests/segment/test_grid.py).
TUSIMPLE_VEHICLES: dict[int, list[tuple[int, int, int, int]]] = {
    0: [(622, 245, 688, 300), (552, 245, 595, 282), (752, 212, 845, 305), (700, 245, 748, 280)],
    1: [(588, 240, 702, 322), (565, 240, 600, 265), (750, 205, 840, 290), (705, 235, 748, 268)],
    2: [(0, 280, 170, 620), (368, 230, 502, 345), (570, 250, 750, 400), (845, 228, 978, 335),
        (1075, 180, 1280, 360), (800, 245, 860, 312), (745, 238, 805, 300)],
}
REPEATS = 3


def _clip(frames: np.ndarray, name: str) -> Clip:
    t = frames.shape[0]
    return Clip(name=name, source=name, frames=frames, fps=8.0, timestamps=np.arange(t) / 8.0, source_fps=8.0,
                source_indices=np.arange(t, dtype=np.int64))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a & b).sum(axis=(-2, -1)) / np.maximum((a | b).sum(axis=(-2, -1)), 1)


def _overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = rgb.astype(np.float32)
    out[mask] = 0.55 * out[mask] + 0.45 * np.array([0, 255, 0], dtype=np.float32)
    edge = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edge] = (255, 0, 255)
    return out.astype(np.uint8)


def _save(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overlays", type=Path, default=None, help="folder for PNG overlays")
    args = ap.parse_args()
    d = data_dir()
    seg = GridSegmenter(GridConfig())
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"config: {GridConfig().model_dump()}")

    sample = render_sample()
    m = seg.segment(sample.to_clip()).masks
    iou = _iou(m, sample.road_masks)
    car = (m & sample.vehicle_masks).sum() / max(1, sample.vehicle_masks.sum())
    print(f"sample clip {sample.frames.shape[2]}x{sample.frames.shape[1]}, {sample.num_frames} frames: "
          f"IoU with ground truth mean {iou.mean():.4f} min {iou.min():.4f} (goal mean >= 0.95); "
          f"car pixels inside the mask {car:.3f}")
    if args.overlays:
        _save(args.overlays / "sample_00.png", _overlay(sample.frames[0], m[0]))

    tot = {"all": [0, 0], "visible": [0, 0]}
    for i in range(3):
        bgr = cv2.imread(str(d / "tusimple_lanenet_examples" / "image" / f"{i:04d}.png"))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        gt = cv2.imread(str(d / "tusimple_lanenet_examples" / "gt_binary_image" / f"{i:04d}.png"), 0) > 127
        mask = seg.segment(_clip(rgb[None], f"tusimple/{i:04d}")).masks[0]
        veh = np.zeros_like(gt)
        for x0, y0, x1, y1 in TUSIMPLE_VEHICLES[i]:
            veh[y0:y1, x0:x1] = True
        vis = gt & ~veh
        top = int(np.nonzero(gt.any(axis=1))[0].min())
        above = mask[:top].sum() / max(1, mask.sum())
        for key, sel in (("all", gt), ("visible", vis)):
            tot[key][0] += int(mask[sel].sum())
            tot[key][1] += int(sel.sum())
        print(f"tusimple {i:04d}: lane pixels inside road {mask[gt].mean():.4f} (outside vehicle boxes "
              f"{mask[vis].mean():.4f}; {(gt & veh).sum() / gt.sum():.3f} of lane pixels lie in vehicle boxes); "
              f"mask above highest lane pixel (row {top}) {above:.4f} (goal <= 0.01)")
        if args.overlays:
            o = _overlay(rgb, mask)
            o[gt & mask] = (0, 0, 255)
            o[gt & ~mask] = (255, 0, 0)
            _save(args.overlays / f"tusimple_{i:04d}.png", o)
    print(f"tusimple pooled: lane pixels inside road {tot['all'][0] / tot['all'][1]:.4f} (goal >= 0.97), "
          f"outside vehicle boxes {tot['visible'][0] / tot['visible'][1]:.4f}")

    for p in sorted(d.glob("udacity_*/*.mp4")):
        clip = decode(str(p))
        masks = seg.segment(clip).masks
        ciou = _iou(masks[1:], masks[:-1])
        print(f"clip {p.parent.name}/{p.name} {clip.width}x{clip.height}, {clip.num_frames} frames: consecutive "
              f"IoU mean {ciou.mean():.4f} min {ciou.min():.4f} (goal mean >= 0.90); road share {masks.mean():.3f}")
        if args.overlays:
            for k in np.linspace(0, clip.num_frames - 1, 4).astype(int):
                _save(args.overlays / f"{p.stem}_{k:03d}.png", _overlay(clip.frames[k], masks[k]))

    if args.overlays:
        stills = sorted((d / "bdd100k_yolop_images").glob("*.jpg")) + sorted(d.glob("udacity_*/test_images/*.jpg"))
        for p in stills:
            rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            _save(args.overlays / f"still_{p.parent.parent.name}_{p.stem}.png",
                  _overlay(rgb, seg.segment(_clip(rgb[None], p.name)).masks[0]))

    bridge = str(d / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4")
    seg.segment(decode(bridge, max_frames=8))  # warm-up
    dec, run = [], []
    n = 0
    for _ in range(REPEATS):
        t = time.perf_counter()
        clip = decode(bridge)
        dec.append(time.perf_counter() - t)
        t = time.perf_counter()
        seg.segment(clip)
        run.append(time.perf_counter() - t)
        n = clip.num_frames
    td, ts = statistics.median(dec), statistics.median(run)
    print(f"speed on {Path(bridge).name} 1280x720, {n} frames at 8 fps: decode {td:.3f} s, segment {ts:.3f} s "
          f"({1000 * ts / n:.1f} ms/frame incl. upsampling, {n / ts:.1f} frames/s; goal: segment <= decode, "
          f"<= ~0.8 s); segment/decode {ts / td:.2f}")


if __name__ == "__main__":
    main()
