"""Issue 18 figure: one lane edit painted into every camera of the synthetic rig lands on the same ground.

The sample rig (:mod:`lanepipe.sample.rig`: front wide and tele pinholes, two f-theta cross cameras) is rendered;
the procedural painter edits the front camera (its exact calibration, the ground-truth road masks); the edit, moved
into the rig frame (:class:`lanepipe.edit.rig.RoadEdit`), is painted into the other three cameras; then in every
camera the painted line's pixels are back-projected onto the ground with that camera's calibration
(:func:`lanepipe.edit.rig.recover_lines`) and its lateral position per 1 m bin of x is compared with

* the ground truth (the road's centre line, the ego lane's left boundary, from the sample's road geometry), and
* the same bin recovered from the other cameras (pairwise).

Printed per edited boundary: per camera the median, 95th percentile and largest |error| over frames and 1 m bins
at 5-30 m ahead, against the ground truth and against the edit's own road-plane line (the rig painter's accuracy,
without the front painter's estimation error); pairwise the camera-to-camera differences; and the edit's line vs
the ground truth (what the front painter estimated). Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/rig_consistency.py [--frames 24] [--width 960] [--height 540]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.edit.rig import RoadEdit, measure_paint, paint_camera, recover_lines
from lanepipe.geometry.rig import pixel_ground
from lanepipe.lanes.instructions import MarkingSizes, parse_instruction
from lanepipe.sample import LANE_WIDTH_M
from lanepipe.sample.rig import FRONT, ground_truth_line, render_rig
from lanepipe.types import RoadMasks

try:
    from benchmarks._common import machine
except ImportError:  # run as a script from benchmarks/
    from _common import machine  # type: ignore[no-redef]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--instruction", default="single white solid@both")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rig = render_rig(num_frames=args.frames, width=args.width, height=args.height)
    t1 = time.perf_counter()
    spec = parse_instruction(args.instruction)
    front = rig.front
    clip = front.to_clip()
    clip = type(clip)(**{**clip.__dict__, "meta": {**clip.meta, "speed_mps": float(front.ego[0, 3])}})
    res = ProceduralPainter().paint(clip, RoadMasks(masks=front.road_masks, backend="truth"), spec)
    assert res.road is not None
    edit = RoadEdit.from_front(res.road, spec, MarkingSizes(), rig.views[FRONT].camera.offset,
                               paint_ratio=measure_paint(front.frames, res.frames, front.road_masks, res.lanes, spec))
    t2 = time.perf_counter()
    xb = np.arange(5.0, 30.0 + 1e-9, 1.0)
    offsets = {"left": 0.0, "right": -LANE_WIDTH_M}  # the ego lane's boundaries in the sample's road layout
    truth = {s: np.stack([np.interp(xb, *ground_truth_line(front.ego[t], offsets[s]).T)
                          for t in range(front.num_frames)]) for s in edit.sides}
    drawn = {s: np.stack([edit.boundary_y(t, s, xb) for t in range(edit.num_frames)]) for s in edit.sides}
    rec: dict[str, dict[str, np.ndarray]] = {}
    for name, view in rig.views.items():
        g = pixel_ground(view.camera)
        frames = res.frames if name == FRONT else paint_camera(view.frames, view.road_masks, view.camera, edit,
                                                               ground=g).frames
        rec[name] = recover_lines(frames, view.road_masks, view.camera, edit, x_bins=xb, ground=g).y
    t3 = time.perf_counter()
    print(f"# rig consistency: '{spec.to_text()}', {args.frames} frames {args.width}x{args.height}; {machine()}")
    print(f"render {t1 - t0:.1f} s, front paint {t2 - t1:.1f} s, other cameras + read-back {t3 - t2:.1f} s")

    def stats(err: np.ndarray) -> str:
        e = np.abs(err[np.isfinite(err)])
        if not len(e):
            return "not seen"
        return f"median {100 * np.median(e):.1f} cm, p95 {100 * np.percentile(e, 95):.1f} cm, max " \
               f"{100 * e.max():.1f} cm ({len(e)} bins)"

    for s in edit.sides:
        print(f"\n{s} boundary; the edit's road-plane line (front painter's estimate) vs ground truth: "
              f"{stats(drawn[s] - truth[s])}")
        print("| camera | read back vs ground truth | read back vs the edit's line | x seen (m) |")
        print("|---|---|---|---|")
        for name, y in rec.items():
            seen = np.isfinite(y[s]).any(axis=0)
            span = f"{xb[seen].min():.0f}-{xb[seen].max():.0f}" if seen.any() else "-"
            print(f"| {name} | {stats(y[s] - truth[s])} | {stats(y[s] - drawn[s])} | {span} |")
        print("| camera pair | read back, one camera vs the other | | |")
        print("|---|---|---|---|")
        for a, b in itertools.combinations(rec, 2):
            d = rec[a][s] - rec[b][s]
            if np.isfinite(d).any():
                print(f"| {a} / {b} | {stats(d)} | | |")


if __name__ == "__main__":
    main()
