"""Issue 13 figures for the procedural painter: does new paint look like paint, and does the erase leave remnants?

Per clip (the light-concrete bridge clip, the vehicle-detection clip, the synthetic sample, two BDD night
stills as one-frame clips), with the grid segmenter's road mask (the sample: its true mask):

- white: "single white solid" painted; per frame the median luma of the stripe's core (within 4 cm of the
  painted centre line, nearer than 30 m) vs the pavement beside it (0.3-0.6 m from the line), after the edit;
  reported: the median over frames of both, the smallest per-frame margin, frames where paint <= pavement;
- yellow: "single yellow solid" painted; Lab b* and HSV hue of the stripe's core (median);
- remnants: "single white dashed" painted over the old line of the left boundary; yellow pixels
  (:func:`yellow_remnants`: clearly yellower than the pavement 0.4-0.8 m beside the line) within 0.3 m of the
  tracked boundary, down to the lowest road row or the hood (the verifier's hood finder), per frame, original
  vs edited;
- sample only: ``none@both`` changes no pixel off the true road, and none farther than 0.6 m from the ego
  lane's boundaries (the edge lines stay); the painted white vs the clip's own white edge lines (RGB).

The measuring code reads the painter's analysis (``_analyse``), so the same script runs on older trees:

    LANEPIPE_DATA_DIR=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/paint_appearance.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

import cv2
import numpy as np
from _common import data_dir, machine

from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.geometry.road import boundary_eval
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.segment.grid import GridSegmenter
from lanepipe.types import Clip, RoadMasks


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _band(an: Any, t: int, lo_m: float, hi_m: float, x_max: float = 90.0) -> np.ndarray:
    """Pixels whose ground point lies ``lo_m``-``hi_m`` metres from the tracked left boundary, nearer than x_max."""
    x, y = an.maps.x, an.maps.y
    ok = np.isfinite(x) & (x < x_max)
    d = np.full(x.shape, np.inf, dtype=np.float64)
    d[ok] = np.abs(y[ok] - boundary_eval(an.coefs["left"][t], x[ok].astype(np.float64), an.fit_range_m))
    out: np.ndarray = (d >= lo_m) & (d < hi_m)
    return out


def yellow_remnants(rgb: np.ndarray, band: np.ndarray, beside: np.ndarray, rows_per_step: int = 16) -> np.ndarray:
    """Pixels of ``band`` clearly yellower than the pavement beside the line: yellowness ``(R + G) / 2 - B`` more
    than 25 above the median of ``beside`` in the same ``rows_per_step`` rows (beige concrete is not paint),
    and ``R > 80``."""
    p = rgb.astype(np.float32)
    yel = 0.5 * (p[..., 0] + p[..., 1]) - p[..., 2]
    ref = np.full(rgb.shape[0], np.median(yel[beside]) if beside.any() else 0.0, dtype=np.float32)
    for r in range(0, rgb.shape[0], rows_per_step):
        b = beside[r:r + rows_per_step]
        if b.sum() >= 10:
            ref[r:r + rows_per_step] = np.median(yel[r:r + rows_per_step][b])
    out: np.ndarray = band & (yel > ref[:, None] + 25.0) & (p[..., 0] > 80)
    return out


def _lab(rgb: np.ndarray) -> np.ndarray:
    x = (rgb.astype(np.float32) / 255.0).reshape(-1, 1, 3)
    out: np.ndarray = cv2.cvtColor(x, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return out


def _hsv_hue(rgb: np.ndarray) -> np.ndarray:
    x = (rgb.astype(np.float32) / 255.0).reshape(-1, 1, 3)
    out: np.ndarray = cv2.cvtColor(x, cv2.COLOR_RGB2HSV).reshape(-1, 3)[:, 0]
    return out


def hood_cut(clip: Clip) -> int:
    """First full-resolution row of the ego vehicle's hood (the verifier's hood finder on three frames, minus 4
    rows), or the frame height: remnants are counted above it whatever the road mask does."""
    from lanepipe.verify.config import LaneDetectorConfig
    from lanepipe.verify.lane_detector.frame import hood_row
    from lanepipe.verify.lane_detector.paint import paint_map

    rows = []
    for t in sorted({0, clip.num_frames // 2, clip.num_frames - 1}):
        small = cv2.resize(clip.frames[t], (640, round(640 * clip.height / clip.width)))
        r = hood_row(paint_map(small, LaneDetectorConfig()))
        rows.append(clip.height if r is None else r * clip.width // 640 - 4)
    return min(rows)


def measure(clip: Clip, masks: RoadMasks) -> dict[str, Any]:
    painter = ProceduralPainter()
    out: dict[str, Any] = {"frames": clip.num_frames, "size": [clip.width, clip.height]}
    white = painter.paint(clip, masks, parse_instruction("single white solid"))
    an = painter._analyse(clip, masks)
    out["paint_appearance"] = white.diagnostics.get("paint_appearance")
    out["paint_rgb"] = white.diagnostics.get("paint_rgb")
    paint_l, pave_l = [], []
    for t in range(clip.num_frames):
        m = masks.masks[t]
        core, beside = _band(an, t, 0.0, 0.04, 30.0) & m, _band(an, t, 0.3, 0.6, 30.0) & m
        if core.sum() < 20 or beside.sum() < 20:
            continue
        lum = _luma(white.frames[t])
        paint_l.append(float(np.median(lum[core])))
        pave_l.append(float(np.median(lum[beside])))
    margin = np.asarray(paint_l) - np.asarray(pave_l)
    out["white"] = {"paint_luma": round(float(np.median(paint_l)), 1),
                    "pavement_luma": round(float(np.median(pave_l)), 1),
                    "min_margin": round(float(margin.min()), 1),
                    "frames_paint_not_brighter": int((margin <= 0).sum()), "frames_measured": len(margin)}
    yel = painter.paint(clip, masks, parse_instruction("single yellow solid"))
    px = np.concatenate([yel.frames[t][_band(an, t, 0.0, 0.04, 30.0) & masks.masks[t]]
                         for t in range(clip.num_frames)])
    lab = _lab(px)
    out["yellow"] = {"rgb": [round(float(v), 1) for v in np.median(px, axis=0)],
                     "b_star": round(float(np.median(lab[:, 2])), 1),
                     "hsv_hue_deg": round(float(np.median(_hsv_hue(px))), 1)}
    dashed = painter.paint(clip, masks, parse_instruction("single white dashed"))
    cut = hood_cut(clip)
    out["hood_cut_row"] = cut
    before, after = [], []
    for t in range(clip.num_frames):
        m = masks.masks[t]
        rows = np.flatnonzero(m.any(axis=1))
        band = _band(an, t, 0.0, 0.3)
        band[min(rows[-1] + 1, cut):] = False
        beside = _band(an, t, 0.4, 0.8)
        before.append(int(yellow_remnants(clip.frames[t], band, beside).sum()))
        after.append(int(yellow_remnants(dashed.frames[t], band, beside).sum()))
    out["yellow_remnants_px_per_frame"] = {"original": before, "edited": after, "frames_with_remnants_over_20px":
                                           int((np.asarray(after) > 20).sum())}
    return out


def sample_extras(clip: Clip, masks: RoadMasks, sample: Any) -> dict[str, Any]:
    painter = ProceduralPainter()
    res = painter.paint(clip, masks, parse_instruction("none@both"))
    an = painter._analyse(clip, masks)
    changed = (res.frames != clip.frames).any(axis=-1)
    far = np.zeros_like(changed)
    for t in range(clip.num_frames):
        near = np.zeros(changed.shape[1:], dtype=bool)
        for side in ("left", "right"):
            x, y = an.maps.x, an.maps.y
            ok = np.isfinite(x)
            d = np.full(x.shape, np.inf)
            d[ok] = np.abs(y[ok] - boundary_eval(an.coefs[side][t], x[ok].astype(np.float64), an.fit_range_m))
            near |= d < 0.6
        far[t] = changed[t] & ~near
    white = painter.paint(clip, masks, parse_instruction("single white solid"))
    edge, painted = [], []
    for t in range(clip.num_frames):
        m = masks.masks[t]
        core = _band(an, t, 0.0, 0.04, 20.0) & m
        painted.append(white.frames[t][core])
        for ln in sample.lanes[t]:
            if ln.side == "edge" and ln.offset_m < 0:  # the right edge line (near the camera, in view)
                pts = ln.points[(ln.points[:, 1] > 0.55 * clip.height) & (ln.points[:, 1] < clip.height - 1)]
                u, v = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
                ok = (u >= 0) & (u < clip.width)
                edge.append(clip.frames[t][v[ok], u[ok]])
    e, p = np.concatenate(edge), np.concatenate(painted)
    return {"none_both_changed_px_off_road": int((changed & ~masks.masks).sum()),
            "none_both_changed_px_beyond_0.6m_of_ego_boundaries": int(far.sum()),
            "clip_white_edge_line_rgb": [round(float(v), 1) for v in np.median(e, axis=0)],
            "painted_white_rgb": [round(float(v), 1) for v in np.median(p, axis=0)]}


def still(path: str) -> Clip:
    bgr = cv2.imread(path)
    if bgr is None:
        raise SystemExit(f"{path}: expected a readable image, found none")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    frames = np.stack([rgb, rgb])  # two identical frames: the painter wants a clip
    return Clip(name="still", source=path, frames=frames, fps=8.0, timestamps=np.array([0.0, 0.125]),
                source_fps=8.0, source_indices=np.arange(2, dtype=np.int64), meta={"speed_mps": 0.0})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-frames", type=int, default=48)
    args = ap.parse_args()
    data = data_dir()
    seg = GridSegmenter()
    results: dict[str, Any] = {"machine": machine()}
    adv = data / "udacity_advanced_lane_lines"
    for name, fps in (("project_video_subclip_bridge_6s.mp4", 8.0), ("vehicle_detection_test_video.mp4", None)):
        clip = decode(str(adv / name), target_fps=fps, max_frames=args.max_frames)
        results[name] = measure(clip, seg.segment(clip))
    from lanepipe.sample import render_sample

    s = render_sample(num_frames=min(24, args.max_frames), fps=8.0, width=960, height=540, seed=0)
    sclip = s.to_clip()
    sclip = dataclasses.replace(sclip, meta={**sclip.meta, "ego": s.ego})
    smasks = RoadMasks(s.road_masks, "gt")
    results["sample"] = {**measure(sclip, smasks), **sample_extras(sclip, smasks, s)}
    for name in ("3c0e7240-96e390d2.jpg", "9aa94005-ff1d4c9a.jpg"):
        clip = still(str(data / "bdd100k_yolop_images" / name))
        try:
            results[f"night {name}"] = measure(clip, seg.segment(clip))
        except Exception as e:  # a still the painter refuses is a figure too
            results[f"night {name}"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    print(json.dumps(results, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o)))


if __name__ == "__main__":
    main()
