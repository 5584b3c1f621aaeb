"""The procedural painter on the synthetic sample (known camera and lanes) and on a real dashcam clip."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from lanepipe.edit.config import ProceduralConfig
from lanepipe.edit.procedural import PaintedLine, PaintParams, PaintResult, ProceduralPainter
from lanepipe.errors import InputError
from lanepipe.lanes.instructions import MarkingSizes, parse_instruction
from lanepipe.sample import LANE_WIDTH_M, SampleClip, render_sample
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.lane_detector import LaneDetector

T, W, H, FPS = 12, 640, 360, 8.0


@pytest.fixture(scope="module")
def sample() -> SampleClip:
    return render_sample(num_frames=T, fps=FPS, width=W, height=H, seed=3)


@pytest.fixture(scope="module")
def clip_ego(sample: SampleClip) -> Clip:
    """The sample clip with its camera and ego motion in ``meta``."""
    clip = sample.to_clip()
    return dataclasses.replace(clip, meta={**clip.meta, "ego": sample.ego})


@pytest.fixture(scope="module")
def painter() -> ProceduralPainter:
    return ProceduralPainter(ProceduralConfig(threads=2))


@pytest.fixture(scope="module")
def dashed_left(painter: ProceduralPainter, clip_ego: Clip, sample: SampleClip) -> PaintResult:
    return painter.paint(clip_ego, RoadMasks(sample.road_masks, "gt"), parse_instruction("single white dashed"))


def _yellow(px: np.ndarray) -> np.ndarray:
    p = px.astype(np.int32)
    return ((p[..., 0] + p[..., 1]) // 2 - p[..., 2] > 40) & (p[..., 0] > 100)


def _white(px: np.ndarray) -> np.ndarray:
    p = px.astype(np.int32)
    return (p.min(axis=-1) > 140) & (p.max(axis=-1) - p.min(axis=-1) < 40)


def _near_points(line_points: np.ndarray, mask: np.ndarray, v_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``(u, v)`` of a ground-truth polyline, densified, below row ``v_min`` and inside the mask."""
    pts = line_points[line_points[:, 1] > v_min]
    v = np.arange(int(pts[:, 1].min()) + 1, int(pts[:, 1].max()))
    u = np.interp(v, pts[::-1, 1], pts[::-1, 0])
    ui, vi = np.round(u).astype(int), v.astype(int)
    ok = (ui >= 0) & (ui < mask.shape[1]) & mask[vi, np.clip(ui, 0, mask.shape[1] - 1)]
    return ui[ok], vi[ok]


def _gt_left(sample: SampleClip, t: int) -> np.ndarray:
    return next(ln for ln in sample.lanes[t] if ln.side == "left").points


# ------------------------------------------------------------------------------------------------ known answers
def test_white_dashes_replace_the_yellow_centre_line(dashed_left: PaintResult, sample: SampleClip) -> None:
    horizon = sample.camera.horizon_row()
    yellow_before, yellow_after, white_after = [], [], []
    for t in range(T):
        u, v = _near_points(_gt_left(sample, t), sample.road_masks[t], horizon + 25)
        # the double yellow has its two lines 0.11 m either side of the polyline: look across a few pixels
        win = np.stack([sample.frames[t][v, np.clip(u + k, 0, W - 1)] for k in range(-6, 7)], axis=1)
        win_after = np.stack([dashed_left.frames[t][v, np.clip(u + k, 0, W - 1)] for k in range(-6, 7)], axis=1)
        yellow_before.append(_yellow(win).any(axis=1).mean())
        yellow_after.append(_yellow(win_after).any(axis=1).mean())
        white_after.append(_white(win_after[:, 4:9]).any(axis=1).mean())
    assert np.mean(yellow_before) > 0.8
    assert np.mean(yellow_after) < 0.02
    # a broken line: 10 ft of paint per 40 ft, seen in perspective (near rows are longer): some rows, not all
    assert 0.08 < np.mean(white_after) < 0.7, white_after
    assert min(white_after) > 0.0  # every frame shows paint on the line


def test_erased_asphalt_keeps_its_texture(painter: ProceduralPainter, clip_ego: Clip, sample: SampleClip) -> None:
    import cv2

    res = painter.paint(clip_ego, RoadMasks(sample.road_masks, "gt"), parse_instruction("none@left"))
    inside, beside, step = [], [], []
    for t in (0, 5, 10):
        orig = sample.frames[t].astype(np.float32)
        edit = res.frames[t].astype(np.float32)
        changed = np.abs(orig - edit).sum(axis=-1) > 0
        hp = (edit - cv2.GaussianBlur(edit, (0, 0), 2.0)).mean(axis=-1)
        rows = np.arange(int(sample.camera.horizon_row()) + 60, H - 10)
        for r in rows[::8]:
            cols = np.flatnonzero(changed[r])
            if len(cols) < 6:
                continue
            inside.append(hp[r, cols].std())
            beside.append(hp[r, cols.max() + 4: cols.max() + 40].std())
            step.append(abs(edit[r, cols].mean() - edit[r, cols.max() + 4: cols.max() + 40].mean()))
    assert len(inside) > 10
    # grain, not a flat fill; and no visible step in brightness
    assert np.median(inside) > 0.6 * np.median(beside)
    assert np.median(step) < 4.0


def test_pixels_outside_the_road_are_unchanged(dashed_left: PaintResult, sample: SampleClip) -> None:
    outside = ~sample.road_masks
    assert np.array_equal(dashed_left.frames[outside], sample.frames[outside])
    assert dashed_left.frames.shape == sample.frames.shape
    assert dashed_left.frames.dtype == np.uint8
    # and the road did change
    assert np.abs(dashed_left.frames.astype(int) - sample.frames).sum() > 0


def test_lanes_follow_the_ground_truth_and_stay_in_the_mask(dashed_left: PaintResult, sample: SampleClip) -> None:
    assert len(dashed_left.lanes) == T
    for t, lines in enumerate(dashed_left.lanes):
        assert len(lines) == 1
        ln = lines[0]
        assert isinstance(ln, PaintedLine)
        assert (ln.id, ln.side, ln.color, ln.pattern, ln.count) == (0, "left", "white", "dashed", 1)
        assert ln.visible and ln.points.shape[1] == 2 and len(ln.points) >= 5
        ui, vi = np.round(ln.points).astype(int).T
        assert sample.road_masks[t, vi, ui].all()
        assert np.all(np.diff(ln.points[:, 1]) < 0)  # near to far
        gt = _gt_left(sample, t)
        near = ln.points[ln.points[:, 1] > sample.camera.horizon_row() + 40]
        u_gt = np.interp(near[:, 1], gt[::-1, 1], gt[::-1, 0])
        assert np.median(np.abs(near[:, 0] - u_gt)) < 3.0


def _line_profile(frames: np.ndarray, sample: SampleClip, t: int, xs: np.ndarray) -> np.ndarray:
    """Whiteness along the centre line (ego y = +1.83 m on the straight start of the road)."""
    pts = np.stack([xs, np.full_like(xs, LANE_WIDTH_M / 2), np.zeros_like(xs)], axis=1)
    px, _ = sample.camera.project(pts)
    u = np.clip(np.round(px[:, 0]).astype(int), 0, W - 1)
    v = np.clip(np.round(px[:, 1]).astype(int), 0, H - 1)
    return frames[t][v, u].astype(float).min(axis=1)


def test_dashes_move_with_the_ego_not_the_camera(dashed_left: PaintResult, sample: SampleClip) -> None:
    step = sample.ego[0, 3] / FPS  # 1.875 m per frame
    xs = np.arange(8.0, 25.0, 0.05)
    shifts = []
    for t in range(3):  # the first 40 m of road are straight
        p0 = _line_profile(dashed_left.frames, sample, t, xs)
        cand = np.arange(0.0, 6.0, 0.05)
        # a dash at x in frame t is at x - step in frame t + 1
        scores = [np.corrcoef(p0, _line_profile(dashed_left.frames, sample, t + 1, xs - s))[0, 1] for s in cand]
        shifts.append(cand[int(np.argmax(scores))])
    assert np.allclose(shifts, step, atol=0.3), shifts


def test_speed_is_estimated_from_the_image_without_ego_motion(painter: ProceduralPainter, sample: SampleClip) -> None:
    res = painter.paint(sample.to_clip(), RoadMasks(sample.road_masks, "gt"), parse_instruction("single white dashed"))
    assert res.diagnostics["speed_source"].startswith("image motion")
    assert res.diagnostics["speed_mps_median"] == pytest.approx(15.0, rel=0.08)
    assert res.diagnostics["camera_source"] == "clip meta"


def test_none_removes_the_markings(painter: ProceduralPainter, clip_ego: Clip, sample: SampleClip) -> None:
    """`none@both` removes the ego lane's two boundaries; the edge lines keep their paint (README: boundaries
    that are not named keep their markings)."""
    res = painter.paint(clip_ego, RoadMasks(sample.road_masks, "gt"), parse_instruction("none@both"))
    road = sample.road_masks
    yellow_before, yellow_after = int((_yellow(sample.frames) & road).sum()), int((_yellow(res.frames) & road).sum())
    assert yellow_before > 2000 and yellow_after < 0.05 * yellow_before
    white_before, white_after = int((_white(sample.frames) & road).sum()), int((_white(res.frames) & road).sum())
    # the dashed right boundary goes, the two solid white edge lines (most of the white) stay
    assert 0.4 * white_before < white_after < 0.97 * white_before
    assert all(lines == [] for lines in res.lanes)
    assert np.array_equal(res.frames[~road], sample.frames[~road])
    # every old dash of the right boundary is erased where it was painted (issue 13: the erase followed the
    # guide-tracked course of issue 18, which missed the old dashes), in every frame, out to the far rows
    top = sample.camera.horizon_row() + 25
    for t in range(len(sample.frames)):
        right = next(ln for ln in sample.lanes[t] if ln.side == "right").points
        u, v = _near_points(right, road[t], top)
        band = np.zeros(road[t].shape, bool)
        for du in range(-3, 4):  # the dash's width around its centre curve
            band[v, np.clip(u + du, 0, band.shape[1] - 1)] = True
        band &= road[t]
        before, after = int(_white(sample.frames[t][band]).sum()), int(_white(res.frames[t][band]).sum())
        assert after <= max(3, 0.03 * before), (t, before, after)
    # the verifier does not take the right edge line, which the removal uncovered, for the ego lane's right
    # boundary (it did: QA failed after 10 attempts, each erasing harder, on the demo's sample)
    verdict = LaneDetector().check(sample.frames, res.frames, road, parse_instruction("none@both"))
    assert verdict.passed, verdict.reasons


def test_double_yellow_on_the_right_and_solid_dashed(painter: ProceduralPainter, clip_ego: Clip,
                                                     sample: SampleClip) -> None:
    masks = RoadMasks(sample.road_masks, "gt")
    res = painter.paint(clip_ego, masks, parse_instruction("double yellow solid@right"))
    gt_right = next(ln for ln in sample.lanes[0] if ln.side == "right").points
    u, v = _near_points(gt_right, sample.road_masks[0], sample.camera.horizon_row() + 25)
    win = np.stack([res.frames[0][v, np.clip(u + k, 0, W - 1)] for k in range(-6, 7)], axis=1)
    assert _yellow(win).any(axis=1).mean() > 0.8
    res2 = painter.paint(clip_ego, masks, parse_instruction("double yellow solid-dashed@both"))
    assert [ln.side for ln in res2.lanes[0]] == ["left", "right"]
    assert all(ln.count == 2 and ln.pattern == "solid-dashed" for ln in res2.lanes[0])


# ------------------------------------------------------------------------------------------------ bad inputs
def test_bad_masks_raise_input_error(painter: ProceduralPainter, clip_ego: Clip, sample: SampleClip) -> None:
    spec = parse_instruction("single white solid")
    with pytest.raises(InputError, match="all-zero"):
        painter.paint(clip_ego, RoadMasks(np.zeros_like(sample.road_masks), "gt"), spec)
    with pytest.raises(InputError, match="road masks of shape"):
        painter.paint(clip_ego, RoadMasks(sample.road_masks[:-1], "gt"), spec)
    with pytest.raises(InputError, match="road masks of shape"):
        painter.paint(clip_ego, RoadMasks(sample.road_masks[:, :, :-8], "gt"), spec)


def _ego_lane_mask(sample: SampleClip, half_width_m: float) -> np.ndarray:
    """A road mask covering only ``|y| < half_width_m`` around the camera (ego frame)."""
    vv, uu = np.mgrid[0:H, 0:W]
    pts, ok = sample.camera.pixel_to_ground(uu.ravel(), vv.ravel())
    m = ok & (np.abs(pts[:, 1]) < half_width_m) & (pts[:, 0] < 60)
    return np.broadcast_to(m.reshape(H, W), (T, H, W)).copy()


def test_instructions_the_road_cannot_take(painter: ProceduralPainter, clip_ego: Clip, sample: SampleClip) -> None:
    narrow = RoadMasks(_ego_lane_mask(sample, 1.2), "test")  # the lane's lines lie outside the mask
    with pytest.raises(InputError, match="left boundary"):
        painter.paint(clip_ego, narrow, parse_instruction("single white solid"))
    one_lane = RoadMasks(_ego_lane_mask(sample, 2.1), "test")  # a 4.2 m road: one lane
    with pytest.raises(InputError, match="double line"):
        painter.paint(clip_ego, one_lane, parse_instruction("double yellow solid"))
    res = painter.paint(clip_ego, one_lane, parse_instruction("single white solid"))  # a single line fits
    assert res.frames.shape == sample.frames.shape


# ------------------------------------------------------------------------------------------------ QA knobs
def test_params_adjusted_by_typed_reasons() -> None:
    from lanepipe.verify.base import CheckResult, JudgeRemark, Mismatch

    p = PaintParams()
    colour = p.adjusted([Mismatch("left", "color", "yellow", "white", 0.8)], 0)
    assert colour.saturation > p.saturation and colour.contrast > p.contrast
    white = p.adjusted([Mismatch("left", "color", "white", "yellow", 0.8)], 0)
    assert white.saturation < p.saturation and white.erase_strength > p.erase_strength
    pattern = p.adjusted([Mismatch("left", "pattern", "dashed", "solid", 0.8)], 1)
    assert pattern.sharpness > p.sharpness and pattern.wear_scale < p.wear_scale
    count = p.adjusted([Mismatch("left", "count", 2, 1, 0.8)], 0)
    assert count.spacing_scale > p.spacing_scale
    assert p.adjusted([Mismatch("right", "count", 0, 1, 0.8)], 0).erase_strength > 1.0
    faint = p.adjusted([Mismatch("left", "count", 1, 0, 0.8)], 0)
    assert faint.contrast > p.contrast and faint.opacity > p.opacity
    # the checks' typed reasons
    remnant = CheckResult("remnants", "left", "fail", 0.4, 0.15, (3, 4))
    assert p.adjusted([remnant], 0).erase_strength > p.erase_strength
    dark = CheckResult("white_brightness", "left", "fail", -12.0, 10.0)
    assert p.adjusted([dark], 0).contrast > p.contrast
    assert p.adjusted([CheckResult("yellow_hue", "left", "fail", 40.0, 60.0)], 0).saturation > p.saturation
    spill = CheckResult("erase_band", "frame", "fail", 0.5, 0.1, (0,))
    assert p.adjusted([spill], 0).erase_strength < p.erase_strength
    assert p.adjusted([JudgeRemark("something odd")], 0) != p  # a judge's free text: a generic nudge
    passed = p.adjusted([CheckResult("remnants", "left", "pass", 0.0, 0.15)], 0)  # a passed check is no reason
    assert passed.erase_strength == p.erase_strength
    q = p
    for attempt in range(30):
        q = q.adjusted([Mismatch("left", "color", "yellow", "white", 0.8), Mismatch("left", "count", 2, 1, 0.8)],
                       attempt)
    assert q.saturation <= 3.0 and q.spacing_scale <= 4.0  # stays within bounds
    assert ProceduralConfig(sizes=MarkingSizes(line_width=0.1)).sizes.line_width == 0.1


def test_retry_with_adjusted_params_changes_the_paint(painter: ProceduralPainter, clip_ego: Clip,
                                                      sample: SampleClip) -> None:
    masks = RoadMasks(sample.road_masks, "gt")
    spec = parse_instruction("double yellow solid")
    a = painter.paint(clip_ego, masks, spec)
    from lanepipe.verify.base import Mismatch

    b = painter.paint(clip_ego, masks, spec, PaintParams().adjusted([Mismatch("left", "count", 2, 1, 0.9)], 0))
    assert not np.array_equal(a.frames, b.frames)
    assert b.diagnostics["timing_s"]["analyse"] < 0.05  # the clip analysis is cached across retries


# ------------------------------------------------------------------------------------------------ real footage
def test_real_clip_smoke(real_clip: Path) -> None:
    import cv2

    from lanepipe.edit.procedural.render import boundary_band
    from lanepipe.geometry.road import boundary_eval
    from lanepipe.io.video import decode
    from lanepipe.segment.grid import GridSegmenter

    t0 = time.perf_counter()
    clip = decode(str(real_clip), target_fps=8.0, max_frames=48)
    decode_s = time.perf_counter() - t0
    masks = GridSegmenter().segment(clip)
    painter = ProceduralPainter()
    t0 = time.perf_counter()
    res = painter.paint(clip, masks, parse_instruction("double yellow solid"))
    paint_s = time.perf_counter() - t0
    assert res.frames.shape == clip.frames.shape
    # off the road mask only the old paint of the left boundary (where the mask misses it) may change: within
    # 0.5 m of the line, or 5 px (the erase works at half this resolution and widens strokes by their border).
    # Above the hood: the erase reaches down to the hood the segmenter cut from the mask, never onto it.
    an = painter.analysis(clip, masks)
    off_road = (res.frames != clip.frames).any(axis=-1) & ~masks.masks
    off_road[:, 660:] = False  # this camera's hood starts at row ~664 (the verifier's hood finder)
    assert off_road.any()  # the mask misses the yellow line in the shade of the trees
    for t in range(clip.num_frames):
        # within 0.5 m on the ground (boundary_band's pixel reach uses the pixel footprint's diagonal, up to 2x the
        # lateral step per column here, so it can stop short of 0.5 m)
        dist = np.abs(an.maps.y - boundary_eval(an.coefs["left"][t], np.nan_to_num(an.maps.x), an.fit_range_m))
        band = boundary_band(an, t, "left", 0.5) | (np.isfinite(an.maps.x) & (dist < 0.5))
        corridor = cv2.dilate(band.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
        assert not (off_road[t] & ~corridor).any()
    assert res.diagnostics["camera_source"].startswith("fallback")
    assert res.diagnostics["lines_found_fraction"]["left"] > 0.5
    assert 15.0 < res.diagnostics["speed_mps_median"] < 45.0  # a highway
    assert all(len(lines) == 1 and lines[0].visible for lines in res.lanes)
    # generous bound (shared CI machines): the goal is paint time <= decode time / 0.3
    assert paint_s < max(10.0, 8.0 * decode_s)


def test_an_old_line_is_cleaned_off_the_hood_rim_and_the_qa_sees_what_is_left(data_dir: Path) -> None:
    """Camera B's yellow line straddles the blurred rim of the hood: its last rows lie on rows the segmenter calls
    hood. The erase used to stop at the hood, leaving a ~25x5 px yellow fleck that QA passed. Now the rim is cleaned
    (only paint-coloured pixels, nothing else on the hood) and QA's remnant check reads the rim."""
    import cv2

    from lanepipe.io.video import decode
    from lanepipe.segment.grid import GridSegmenter
    from lanepipe.verify.edit_checks import EditChecker

    clip = decode(str(data_dir / "udacity_advanced_lane_lines" / "project_video_subclip_4s.mp4"), max_frames=16)
    masks = GridSegmenter().segment(clip)
    assert masks.hood_top is not None
    spec = parse_instruction("single white dashed")  # the left boundary is a solid yellow line
    res = ProceduralPainter().paint(clip, masks, spec)
    hood = np.asarray(masks.hood_top)
    h = clip.height
    rr = np.arange(h)[:, None]
    rim = (rr >= hood[None, :] - 2) & (rr < hood[None, :] + 8)
    rim[:, clip.width // 2:] = False  # the yellow line meets the hood on the left half

    def yellow(frames: np.ndarray) -> np.ndarray:
        b = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2LAB)[..., 2] for f in frames]).astype(np.int16)
        below = np.nanmedian(np.where((rr >= hood[None, :] + 10) & (rr < hood[None, :] + 20), b, np.nan)[0])
        return b > below + 10

    before, after = (yellow(clip.frames) & rim).sum(), (yellow(res.frames) & rim).sum()
    assert before > 16 * 40 and after < 0.1 * before, (before, after)
    deep = rr >= hood[None, :] + 8  # below the rim the hood is untouched
    assert np.array_equal(res.frames[:, deep], clip.frames[:, deep])
    # QA: the cleaned edit passes the remnant check; with the rim pasted back from the original it fails
    checker = EditChecker(clip.frames, masks.masks, spec, hood_top=masks.hood_top)
    ok = next(c for c in checker.check(res.frames) if c.check == "remnants")
    assert ok.status == "pass" and "hood rim" in ok.note, ok
    fleck = res.frames.copy()
    fleck[:, rim] = clip.frames[:, rim]
    bad = next(c for c in checker.check(fleck) if c.check == "remnants")
    assert bad.status == "fail" and "hood rim" in bad.note, bad
    # a short piece of the old line left just above the hood (rows hood-7..hood-2, ~25x5 px) is a remnant too,
    # though a small share of the whole boundary (it passed QA)
    above = (rr >= hood[None, :] - 7) & (rr < hood[None, :] - 2)
    above[:, clip.width // 2:] = False
    fleck = res.frames.copy()
    fleck[:, above] = clip.frames[:, above]
    bad = next(c for c in checker.check(fleck) if c.check == "remnants" and c.boundary == "left")
    assert bad.status == "fail" and len(bad.frames) >= 8 and "nearest rows" in bad.note, bad
    on_hood = next(c for c in checker.check(res.frames) if c.check == "on_hood")
    assert on_hood.status == "pass", on_hood


# ------------------------------------------------------------------------------------------------ pure helpers
def test_ground_maps_match_the_camera() -> None:
    from lanepipe.geometry.camera import PinholeCamera
    from lanepipe.geometry.road import ground_maps

    cam = PinholeCamera.from_fov(160, 90, 60.0, mount_height_m=1.4, pitch_deg=4.0, yaw_deg=2.0)
    maps = ground_maps(cam, 200.0)
    vv, uu = np.mgrid[0:90, 0:160]
    pts, ok = cam.pixel_to_ground(uu.ravel(), vv.ravel())
    ok = ok & (pts[:, 0] > 0) & (pts[:, 0] <= 200.0)
    assert np.array_equal(np.isfinite(maps.x).ravel(), ok)
    assert np.allclose(maps.x.ravel()[ok], pts[ok, 0], rtol=1e-4)
    assert np.allclose(maps.y.ravel()[ok], pts[ok, 1], atol=1e-3)


def test_push_pull_fills_a_hole_smoothly() -> None:
    from lanepipe.edit.erase import push_pull_fill

    ramp = np.tile(np.linspace(50, 150, 64, dtype=np.float32), (48, 1))[..., None]
    known = np.ones((48, 64), dtype=bool)
    known[20:28, 10:54] = False
    filled = push_pull_fill(ramp, known)
    assert np.abs(filled[~known] - ramp[~known]).max() < 6.0
    assert np.array_equal(filled[known], ramp[known])


def testdash_coverage_keeps_the_duty_cycle() -> None:
    from lanepipe.edit.procedural.render import dash_coverage

    sz = MarkingSizes()
    period = sz.dash_length + sz.gap_length
    s = np.arange(0.0, 10 * period, 0.01)
    for foot in (0.05, 1.0, 5.0, 30.0):  # sharp near, blurred far, beyond a period
        cov = dash_coverage(s, np.full_like(s, foot), sz.dash_length, period)
        assert cov.min() >= 0.0 and cov.max() <= 1.0
        assert cov.mean() == pytest.approx(sz.dash_length / period, abs=0.01)


def test_boundaries_follow_the_curve_the_car_drives_into() -> None:
    """Frames 16-23 of the sample drive from the straight into its 250 m curve (the right boundary dashed): the
    painter's boundaries agree with the road's ground truth within 10 cm at 5-30 m in every frame. Before the
    dashed side was tracked along the solid one and neighbours were weighted by agreement, the dashed boundary's
    search ran straight on across dash gaps (up to 1.8 m off at 30 m) and the temporal smoothing flattened the
    curve on entry (up to 26 cm)."""
    from lanepipe.geometry.road import boundary_eval
    from lanepipe.sample.rig import ground_truth_line

    front = render_sample(num_frames=24, fps=8.0, width=640, height=360, seed=0)
    clip = front.to_clip()
    clip = dataclasses.replace(clip, meta={**clip.meta, "speed_mps": float(front.ego[0, 3])})
    res = ProceduralPainter().paint(clip, RoadMasks(masks=front.road_masks, backend="truth"),
                                    parse_instruction("single white solid@both"))
    assert res.road is not None
    xb = np.arange(5.0, 30.0 + 1e-9, 1.0)
    for side, offset in (("left", 0.0), ("right", -LANE_WIDTH_M)):
        err = np.array([boundary_eval(res.road.coefs[side][t], xb, res.road.fit_range_m)
                        - np.interp(xb, *ground_truth_line(front.ego[t], offset).T) for t in range(clip.num_frames)])
        assert np.abs(err).max() < 0.10, (side, np.abs(err).max(axis=1).round(3))
    # the end of the clip is in the curve: the painter's curvature there is the road's (1 / 250 m)
    assert abs(2 * res.road.coefs["left"][-1, 2] - 1 / 250.0) < 0.001


def test_a_short_60_fps_clip_paints_at_a_default_speed(data_dir: Path, tmp_path: Path) -> None:
    """A real clip re-encoded at 60 fps, 24 frames (0.4 s), decoded at 8 fps: 4 frames whose two image speed
    measurements disagree, so the outlier rule rejected both and the speed became NaN, the dash phase a NaN cast
    to an index (IndexError in the renderer). Now such a clip paints at the default speed, saying so."""
    import av
    import cv2

    from lanepipe.io.video import decode
    from lanepipe.segment.config import GridConfig
    from lanepipe.segment.grid import GridSegmenter

    cap = cv2.VideoCapture(str(data_dir / "udacity_lanelines_p1" / "solidWhiteRight.mp4"))
    frames = []
    while len(frames) < 24:
        ok, f = cap.read()
        assert ok
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    path = tmp_path / "fast.mov"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = 960, 540, "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    clip = decode(str(path))
    assert clip.num_frames == 4
    masks = RoadMasks(GridSegmenter(GridConfig()).segment(clip).masks, "grid")
    for text in ("double yellow solid", "single white dashed"):
        result = ProceduralPainter(ProceduralConfig()).paint(clip, masks, parse_instruction(text))
        assert result.diagnostics["speed_source"] in ("image", "default")
        assert np.isfinite(result.diagnostics["speed_mps_median"])
        assert (result.frames != clip.frames).any()
