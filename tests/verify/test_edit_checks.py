"""The QA checks of an edit against its original: deliberately bad edits of real frames and of the synthetic sample
each FAIL with their own typed reason; a good procedural edit passes; every check is in the QA record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lanepipe.edit.base import run_qa
from lanepipe.edit.config import ProceduralConfig, QAConfig
from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.sample import SampleClip, render_sample
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import CheckResult, Verdict
from lanepipe.verify.edit_checks import CHECKS, EditChecker, static_hood
from lanepipe.verify.lane_detector import LaneDetector

T, W, H = 12, 640, 360


@pytest.fixture(scope="module")
def sample() -> SampleClip:
    return render_sample(num_frames=T, fps=8.0, width=W, height=H, seed=3)


@pytest.fixture(scope="module")
def clip(sample: SampleClip) -> Clip:
    c = sample.to_clip()
    return dataclasses.replace(c, meta={**c.meta, "ego": sample.ego})


@pytest.fixture(scope="module")
def masks(sample: SampleClip) -> RoadMasks:
    return RoadMasks(sample.road_masks, "gt")


@pytest.fixture(scope="module")
def painter() -> ProceduralPainter:
    return ProceduralPainter(ProceduralConfig(threads=2))


@pytest.fixture(scope="module")
def dashed(painter: ProceduralPainter, clip: Clip, masks: RoadMasks) -> np.ndarray:
    """A good edit: the sample's double yellow centre line replaced by white dashes."""
    return painter.paint(clip, masks, parse_instruction("single white dashed")).frames


def _by(results: list[CheckResult], check: str, boundary: str | None = None) -> CheckResult:
    found = [r for r in results if r.check == check and (boundary is None or r.boundary == boundary)]
    assert len(found) == 1, (check, boundary, results)
    return found[0]


def _failed(results: list[CheckResult]) -> set[tuple[str, str]]:
    return {(r.check, r.boundary) for r in results if r.failed}


def _stripe(frames: np.ndarray, checker: EditChecker, lat: float, width_m: float, rgb: tuple[int, int, int],
            ts: range | list[int]) -> np.ndarray:
    """``frames`` with a ground stripe ``width_m`` wide at lateral ``lat`` painted ``rgb`` over the near range."""
    view, _ = checker.boundaries(len(frames))
    assert view is not None
    out = frames.copy()
    u0, v0 = view.vp
    h_m = checker.cfg.camera_height_m
    for t in ts:
        for v in range(int(view.rows[0]), int(view.rows[-1]) + 1):
            c, half = u0 - lat * (v - v0) / h_m, 0.5 * width_m * (v - v0) / h_m
            out[t, v, max(0, round(c - half)):max(0, round(c + half) + 1)] = rgb
    return out


# ------------------------------------------------------------------------------------------------ good edits
def test_a_good_edit_passes_every_check_and_qa_records_them(painter: ProceduralPainter, clip: Clip,
                                                            masks: RoadMasks, dashed: np.ndarray) -> None:
    spec = parse_instruction("single white dashed")
    results = EditChecker(clip.frames, masks.masks, spec).check(dashed)
    assert not _failed(results), [r.reason() for r in results if r.failed]
    assert {r.check for r in results} == set(CHECKS)
    assert _by(results, "white_brightness").value > 30  # white paint well above the asphalt
    assert _by(results, "yellow_hue").status == "not applicable"  # recorded, with why
    assert _by(results, "remnants").status == "pass"  # the double yellow line was there, and is gone

    out = run_qa(painter, LaneDetector(), clip, masks, spec, QAConfig(max_iterations=2))
    assert out.passed and out.verdict == "PASS"
    checks = out.iterations[-1]["checks"]
    assert {c["check"] for c in checks} == {"target", *CHECKS} and checks[0]["check"] == "target"
    assert all({"check", "boundary", "status", "value", "threshold", "frames", "reason"} <= set(c) for c in checks)
    assert {c["status"] for c in checks} <= {"pass", "not applicable"}


# ------------------------------------------------------------------------------------------------ bad edits
def test_a_leftover_dash_in_three_frames_fails_remnants_in_those_frames(clip: Clip, masks: RoadMasks,
                                                                        dashed: np.ndarray) -> None:
    """Flicker counts: old yellow paint put back in 3 of the frames is a FAIL naming exactly those frames."""
    spec = parse_instruction("single white dashed")
    checker = EditChecker(clip.frames, masks.masks, spec)
    view, bands = checker.boundaries(T)
    assert view is not None and "left" in bands
    hi, lo = bands["left"]
    bad = dashed.copy()
    rows = slice(int(view.rows[len(view.rows) // 3]), int(view.rows[-1]) + 1)  # the near part of the old line
    lats = (view.lats <= hi + 0.1) & (view.lats >= lo - 0.1)
    for t in (2, 6, 9):
        cols = view.map_u[:, lats]
        left, right = int(np.floor(cols.min())), int(np.ceil(cols.max())) + 1
        bad[t, rows, left:right] = clip.frames[t, rows, left:right]
    r = _by(checker.check(bad), "remnants", "left")
    assert r.failed and r.frames == (2, 6, 9) and r.value is not None and r.value > r.threshold
    assert "remnants on left" in r.reason() and "frames 2, 6, 9" in r.reason()


def test_a_changed_unnamed_boundary_fails(painter: ProceduralPainter, clip: Clip, masks: RoadMasks) -> None:
    """``none@left`` must not touch the right boundary: an edit that also removed it FAILs on the right."""
    both = painter.paint(clip, masks, parse_instruction("none@both")).frames
    results = EditChecker(clip.frames, masks.masks, parse_instruction("none@left")).check(both)
    r = _by(results, "unnamed_unchanged", "right")
    assert r.failed and r.value is not None and r.value > 0.5
    # the honest none@left leaves it alone
    left = painter.paint(clip, masks, parse_instruction("none@left")).frames
    assert _by(EditChecker(clip.frames, masks.masks, parse_instruction("none@left")).check(left),
               "unnamed_unchanged", "right").status == "pass"


def test_changes_off_the_paint_and_outside_the_road_fail(clip: Clip, masks: RoadMasks, dashed: np.ndarray) -> None:
    """Asphalt painted over the middle of the lane (no paint near) and over the verge outside the road mask."""
    spec = parse_instruction("single white dashed")
    checker = EditChecker(clip.frames, masks.masks, spec)
    smear = _stripe(dashed, checker, 0.0, 1.0, (70, 70, 72), range(T))
    assert ("erase_band", "frame") in _failed(checker.check(smear))
    verge = dashed.copy()
    off = ~masks.masks
    off[:, : H // 2] = False  # the verge beside the road, not the sky
    verge[off] = (80, 80, 80)
    r = _by(checker.check(verge), "outside_road")
    assert r.failed and r.frames == tuple(range(T))


def test_old_paint_erased_where_the_mask_misses_it_is_not_outside_the_road(painter: ProceduralPainter, clip: Clip,
                                                                           masks: RoadMasks) -> None:
    """The mask misses the near part of the double yellow centre line (as in deep shade): the painter erases and
    repaints it there anyway (the old line's ground is road); that is no change outside the road, paint beside
    it on the verge is."""
    import cv2

    lab = cv2.cvtColor(clip.frames.reshape(-1, W, 3), cv2.COLOR_RGB2LAB).reshape(T, H, W, 3)
    yellow = (lab[..., 2].astype(np.int16) - 128 > 25) & masks.masks
    yellow[:, : int(0.7 * H)] = False
    holed = masks.masks & ~np.stack([cv2.dilate(y.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for y in yellow])
    spec = parse_instruction("single white dashed")
    edited = painter.paint(clip, RoadMasks(holed, "gt"), spec).frames
    off = np.abs(edited.astype(np.int16) - clip.frames.astype(np.int16)).max(axis=-1) > 12
    assert (off & ~holed).sum() > 200  # the line was erased where the mask misses it
    checker = EditChecker(clip.frames, holed, spec)
    r = _by(checker.check(edited), "outside_road")
    assert r.status == "pass" and "old paint" in r.note
    beside = ~masks.masks  # the verge beside the road, not the sky
    beside[:, : H // 2] = False
    painted = edited.copy()
    painted[beside] = (235, 235, 235)
    assert _by(checker.check(painted), "outside_road").failed


def test_a_colour_or_hue_that_is_not_paint_fails(clip: Clip, masks: RoadMasks) -> None:
    checker = EditChecker(clip.frames, masks.masks, parse_instruction("single yellow solid@right"))
    _, bands = checker.boundaries(T)
    lat = sum(bands["right"]) / 2
    frames = _stripe(clip.frames, checker, lat, 0.3, (60, 60, 64), range(T))  # erase the old dashes ...
    orange = _stripe(frames, checker, lat, 0.15, (235, 110, 40), range(T))  # ... paint a red-orange line
    results = checker.check(orange)
    assert _by(results, "yellow_hue").failed and _by(results, "yellow_hue").value < 60
    good = _stripe(frames, checker, lat, 0.15, (230, 190, 40), range(T))
    assert _by(checker.check(good), "yellow_hue").status == "pass"
    assert _by(checker.check(good), "yellow_chroma").status == "pass"


def test_dark_white_paint_on_light_concrete_fails(data_dir: Path) -> None:
    """The bridge clip's light concrete: a "white" line darker than the concrete FAILs white_brightness; a
    bright one passes it."""
    from lanepipe.io.video import decode
    from lanepipe.segment.config import GridConfig
    from lanepipe.segment.grid import GridSegmenter

    real = decode(str(data_dir / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4"),
                  max_frames=6)
    m = GridSegmenter(GridConfig()).segment(real).masks
    checker = EditChecker(real.frames, m, parse_instruction("single white solid@right"))
    view, bands = checker.boundaries(real.num_frames)
    assert view is not None
    lat = sum(bands["right"]) / 2 if "right" in bands else -1.8
    concrete = float(np.median(real.frames[:, int(view.rows[-1]) - 20:int(view.rows[-1]), :][m[:, int(
        view.rows[-1]) - 20:int(view.rows[-1]), :]]))
    grey = int(max(0.0, concrete - 45))
    dark = _stripe(real.frames, checker, lat, 0.15, (grey, grey, grey), range(real.num_frames))
    r = _by(checker.check(dark), "white_brightness", "right")
    assert r.failed and r.value is not None and r.value < 0, r.reason()
    bright = _stripe(real.frames, checker, lat, 0.15, (250, 250, 250), range(real.num_frames))
    assert _by(checker.check(bright), "white_brightness", "right").status == "pass"


def test_a_night_clip_finds_its_lines_and_still_catches_a_changed_unnamed_boundary(data_dir: Path,
                                                                                   painter: ProceduralPainter) -> None:
    """A real clip at night (its frames at 12 % light: pavement lightness ~7, the dashed left line a few steps
    above it): the ego boundaries are still found (the paint threshold follows the pavement's lightness,
    ``dark_contrast_share``; a boundary the original hides is taken from the edit's new paint), so honest edits
    pass every check, where they used to FAIL ``unnamed_unchanged`` on their own new or erased paint; an edit that
    also removes the unnamed right line still FAILs."""
    import dataclasses as dc

    from lanepipe.io.video import decode
    from lanepipe.segment.config import GridConfig
    from lanepipe.segment.grid import GridSegmenter

    day = decode(str(data_dir / "udacity_lanelines_p1" / "solidWhiteRight.mp4"), max_frames=8)
    night = dc.replace(day, frames=(day.frames * 0.12).astype(np.uint8))
    m = RoadMasks(GridSegmenter(GridConfig()).segment(day).masks, "grid")
    for text in ("single white dashed", "none@both", "double yellow solid"):
        spec = parse_instruction(text)
        edited = painter.paint(night, m, spec).frames
        results = EditChecker(night.frames, m.masks, spec).check(edited)
        assert not _failed(results), (text, [r.reason() for r in results if r.failed])
    checker = EditChecker(night.frames, m.masks, parse_instruction("none@left"))
    _, bands = checker.boundaries(night.num_frames)
    assert {"left", "right"} <= set(bands)  # the dim dashed left line is found in the original
    both = painter.paint(night, m, parse_instruction("none@both")).frames
    assert _by(checker.check(both), "unnamed_unchanged", "right").failed


def test_paint_on_the_hood_fails(painter: ProceduralPainter, sample: SampleClip) -> None:
    """A static hood at the bottom of every frame, wrongly inside the road mask: the painter's lines run onto it
    and on_hood FAILs; the static block is found from the frames alone."""
    frames = sample.frames.copy()
    hood = int(0.88 * H)
    ramp = np.linspace(150, 60, H - hood).astype(np.uint8)[:, None, None]
    frames[:, hood:] = np.broadcast_to(ramp, (H - hood, W, 3))
    road = sample.road_masks.copy()
    road[:, hood:] = True
    c = dataclasses.replace(sample.to_clip(), frames=frames)
    found = static_hood(frames, 0.3)
    assert found is not None and np.abs(found - hood).max() <= 3
    edited = painter.paint(c, RoadMasks(road, "gt"), parse_instruction("single white solid")).frames
    r = _by(EditChecker(frames, road, parse_instruction("single white solid")).check(edited), "on_hood")
    assert r.failed and r.frames
    # the segmenter's hood, when given, is combined with the checker's own: both see this one
    with_seg = EditChecker(frames, road, parse_instruction("single white solid"), hood_top=found.astype(np.int32))
    assert _by(with_seg.check(edited), "on_hood").failed

    # a retry repaints the same mask: the QA loop stops after the first attempt and qa.json says why
    out = run_qa(painter, LaneDetector(), c, RoadMasks(road, "gt"), parse_instruction("single white solid"),
                 QAConfig(max_iterations=4))
    assert not out.passed and len(out.iterations) == 1
    assert "on_hood" in out.iterations[0]["stopped"]
    assert out.qa_fields["stopped_early"]["checks"] == ["on_hood"]
    assert out.qa_fields["stopped_early"]["attempt"] == 0

    # the same clip with the hood cut from the mask (as every segment backend does): nothing painted on it
    cut = RoadMasks(road & (np.arange(H) < found.min())[None, :, None], "gt", hood_top=found.astype(np.int32))
    edited = painter.paint(c, cut, parse_instruction("single white solid")).frames
    assert (edited[:, hood:] == frames[:, hood:]).all()
    r = _by(EditChecker(frames, cut.masks, parse_instruction("single white solid")).check(edited), "on_hood")
    assert r.status == "pass"


# ------------------------------------------------------------------------------------------------ the verdict
def test_rubber_stamp_and_not_applicable(clip: Clip, masks: RoadMasks, painter: ProceduralPainter) -> None:
    """The original offered as an edit of a differing instruction FAILs (verifier and remnants); a check with
    nothing to measure says so instead of passing."""
    spec = parse_instruction("single white dashed")
    v = LaneDetector().check(clip.frames, clip.frames, masks.masks, spec)
    checked = v.with_checks(EditChecker(clip.frames, masks.masks, spec).check(clip.frames), "left")
    assert not checked.passed and _by(checked.checks, "remnants").failed
    assert checked.checks[0].check == "target" and checked.checks[0].failed
    assert any(isinstance(f, CheckResult) and f.check == "remnants" for f in checked.failures)
    assert any(r.startswith("remnants on left") for r in checked.reasons)
    # no left line in this "original": removing it has nothing to check for remnants
    bare = painter.paint(clip, masks, parse_instruction("none@left")).frames
    na = _by(EditChecker(bare, masks.masks, parse_instruction("none@left")).check(bare), "remnants")
    assert na.status == "not applicable" and not na.failed and na.value is None and "not applicable" in na.reason()


def test_a_failed_check_turns_a_verifier_pass_into_fail() -> None:
    v = Verdict(True, [], "lane_detector")
    bad = CheckResult("outside_road", "frame", "fail", 0.01, 0.0005, (0, 1), "share of the pixels")
    out = v.with_checks([bad, CheckResult("on_hood", "frame", "not applicable", note="no hood found")], "left")
    assert not out.passed and out.failures == [bad] and out.reasons == [bad.reason()]
    assert [c.check for c in out.checks] == ["target", "outside_road", "on_hood"]
    assert v.with_checks([CheckResult("on_hood", "frame", "not applicable")], "left").passed
