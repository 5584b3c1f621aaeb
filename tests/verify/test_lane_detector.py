"""The classical lane-attribute verifier: known answers (synthetic sample, labelled real frames), no markings,
bad input, the PASS/FAIL verdict and the report's JSON form."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from lanepipe.errors import InputError
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.verify import Verifier
from lanepipe.verify.base import BoundaryReport, LaneReport, verdict
from lanepipe.verify.config import LaneDetectorConfig
from lanepipe.verify.lane_detector import LaneDetector

LABELS = Path(__file__).resolve().parents[1] / "data" / "lane_labels.json"


@pytest.fixture(scope="module")
def detector() -> LaneDetector:
    return LaneDetector(LaneDetectorConfig())


@pytest.fixture(scope="module")
def sample():
    from lanepipe.sample import render_sample

    return render_sample(num_frames=16, seed=0)  # 2 s at 8 fps: 30 m of road, 2.5 dash cycles


def _label(path: str, source_start: int | None = None) -> dict:
    for item in json.loads(LABELS.read_text())["items"]:
        if item["path"] == path and (source_start is None or item["frames"]["source_start"] == source_start):
            return item
    raise KeyError(path)


def _describe(b: dict) -> str:
    if b["count"] == 0:
        return "none"
    return f"{'single' if b['count'] == 1 else 'double'} {b['color']} {b['pattern']}"


def _still(data_dir: Path, rel: str) -> np.ndarray:
    bgr = cv2.imread(str(data_dir / rel), cv2.IMREAD_COLOR)
    assert bgr is not None, rel
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[None]


def test_is_a_verifier(detector: LaneDetector) -> None:
    assert isinstance(detector, Verifier)
    assert detector.name == "lane_detector"


def test_config_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        LaneDetectorConfig(work_widht=320)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        LaneDetectorConfig(solid_coverage=1.5)


def test_sample_known_answer(detector: LaneDetector, sample) -> None:
    """The synthetic clip: left boundary double yellow solid, right single white dashed (MUTCD 10/30 ft)."""
    for masks in (None, sample.road_masks):
        r = detector.inspect(sample.frames, masks)
        assert r.left.describe() == "double yellow solid", r.left
        assert r.right.describe() == "single white dashed", r.right
        assert r.left.confidence > 0.8
        # the reported x positions are in input pixels: left of the centre, right of it
        assert r.left.x_bottom is not None and r.left.x_bottom < sample.frames.shape[2] / 2
        assert r.right.x_bottom is not None and r.right.x_bottom > sample.frames.shape[2] / 2


def test_sample_ground_truth_positions(detector: LaneDetector, sample) -> None:
    """The reported boundaries are the ground-truth lines (ids 1 and 2), not the edge lines."""
    r = detector.inspect(sample.frames)
    gt = {ln.side: ln for ln in sample.lanes[-1]}
    h = sample.frames.shape[1]

    def x_at_bottom(points: np.ndarray) -> float:
        near = points[np.argsort(-points[:, 1])[:2]]
        (x0, y0), (x1, y1) = near
        return float(x0 + (x1 - x0) * (h - 1 - y0) / (y1 - y0)) if y1 != y0 else float(x0)

    assert r.left.x_bottom == pytest.approx(x_at_bottom(gt["left"].points), abs=0.06 * sample.frames.shape[2])
    assert r.right.x_bottom == pytest.approx(x_at_bottom(gt["right"].points), abs=0.06 * sample.frames.shape[2])


@pytest.mark.parametrize("rel", [
    "udacity_lanelines_p1/test_images/solidWhiteRight.jpg",
    "udacity_lanelines_p1/test_images/solidYellowLeft.jpg",
    "udacity_advanced_lane_lines/test_images/straight_lines1.jpg",
    "tusimple_lanenet_examples/image/0000.png",
    "bdd100k_yolop_images/7dd9ef45-f197db95.jpg",  # snow: no markings on either side
])
def test_labelled_stills(detector: LaneDetector, data_dir: Path, rel: str) -> None:
    item = _label(rel)
    r = detector.inspect(_still(data_dir, rel))
    assert r.left.describe() == _describe(item["left"])
    assert r.right.describe() == _describe(item["right"])


def test_labelled_clip_window(detector: LaneDetector, real_clip: Path) -> None:
    """First second of the 1280x720 Udacity clip: solid yellow left, dashed white right."""
    item = _label("udacity_advanced_lane_lines/vehicle_detection_test_video.mp4", source_start=0)
    clip = decode(str(real_clip))
    lo, hi = item["frames"]["source_start"], item["frames"]["source_end"]
    frames = clip.frames[(clip.source_indices >= lo) & (clip.source_indices < hi)]
    r = detector.inspect(frames)
    assert r.left.describe() == _describe(item["left"])
    assert r.right.describe() == _describe(item["right"])
    assert r.diagnostics["frames_used"] == len(frames)
    assert r.diagnostics["hood_row"] is not None  # camera B sees its hood


def _plain_road(t: int = 3, h: int = 360, w: int = 640, seed: int = 0) -> np.ndarray:
    """Grey textured road trapezoid under a blue sky, grass beside it, no markings."""
    rng = np.random.default_rng(seed)
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        img = np.zeros((h, w, 3), np.float32)
        img[: h // 2] = (110, 150, 210)
        img[h // 2:] = (70, 110, 60)
        for y in range(h // 2, h):
            half = int((y - h // 2) / (h / 2) * w * 0.7)
            img[y, max(0, w // 2 - half): w // 2 + half] = (92, 92, 95)
        img += rng.normal(0, 4, img.shape)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def test_no_markings_means_count_zero(detector: LaneDetector) -> None:
    r = detector.inspect(_plain_road())
    assert (r.left.count, r.right.count) == (0, 0)
    assert r.left.color is None and r.left.pattern is None
    ok, reasons = verdict(r, parse_instruction("none@both"))
    assert ok, reasons


def test_single_frame_and_small_frames(detector: LaneDetector) -> None:
    r = detector.inspect(_plain_road(t=1, h=48, w=64))
    assert r.diagnostics["frames_used"] == 1


@pytest.mark.parametrize("frames", [
    np.zeros((2, 64, 64, 3), np.float32),  # wrong dtype
    np.zeros((64, 64, 3), np.uint8),  # one frame without the T axis
    np.zeros((2, 64, 64), np.uint8),  # grey
    np.zeros((2, 64, 64, 4), np.uint8),  # RGBA
    np.zeros((0, 64, 64, 3), np.uint8),  # no frame
    [[0]],  # not an array
])
def test_bad_frames(detector: LaneDetector, frames) -> None:
    with pytest.raises(InputError) as e:
        detector.inspect(frames)
    assert "expected" in str(e.value)


def test_bad_masks(detector: LaneDetector) -> None:
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="road_masks"):
        detector.inspect(frames, np.ones((2, 64, 64), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="road_masks"):
        detector.inspect(frames, np.ones((2, 32, 64), bool))


def _report(left: str, right: str) -> LaneReport:
    def b(text: str) -> BoundaryReport:
        if text == "none":
            return BoundaryReport(count=0, color=None, pattern=None, confidence=0.9)
        count, color, pattern = text.split()
        return BoundaryReport(count=1 if count == "single" else 2, color=color, pattern=pattern,  # type: ignore[arg-type]
                              confidence=0.8)

    return LaneReport(left=b(left), right=b(right), verifier="test")


def test_verdict_passes_matching_specs() -> None:
    rep = _report("double yellow solid", "single white dashed")
    for text in ("double yellow solid", "double yellow solid@left", "single white dashed@right",
                 "preset:double-yellow-solid"):
        ok, reasons = verdict(rep, parse_instruction(text))
        assert ok and reasons == [], text


def test_verdict_fails_with_reasons_naming_the_attribute() -> None:
    rep = _report("double yellow solid", "single white dashed")
    ok, reasons = verdict(rep, parse_instruction("single yellow solid"))
    assert not ok and len(reasons) == 1
    assert reasons[0].startswith("left boundary count") and "single" in reasons[0] and "double" in reasons[0]

    ok, reasons = verdict(rep, parse_instruction("double white dashed"))
    assert not ok
    assert [r.split(":")[0] for r in reasons] == ["left boundary color", "left boundary pattern"]

    ok, reasons = verdict(rep, parse_instruction("single white solid@right"))
    assert not ok and reasons == [r for r in reasons if r.startswith("right boundary pattern")] and reasons

    ok, reasons = verdict(rep, parse_instruction("double yellow solid@both"))  # right is single white dashed
    assert not ok and {r.split(":")[0] for r in reasons} == {
        "right boundary count", "right boundary color", "right boundary pattern"}

    ok, reasons = verdict(rep, parse_instruction("none"))  # removal: only the count is checked
    assert not ok and len(reasons) == 1 and reasons[0].startswith("left boundary count")

    ok, reasons = verdict(_report("none", "none"), parse_instruction("single white dashed@both"))
    assert not ok and [r.split(":")[0] for r in reasons] == ["left boundary count", "right boundary count"]


def test_report_to_dict_is_json(detector: LaneDetector, sample) -> None:
    r = detector.inspect(sample.frames[:4])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["verifier"] == "lane_detector"
    assert set(d["left"]) >= {"count", "color", "pattern", "confidence", "x_bottom", "coverage", "votes"}
    assert 0.0 <= d["left"]["confidence"] <= 1.0


def test_painted_passing_zone_is_double_yellow_solid_dashed(detector: LaneDetector) -> None:
    """A painted passing zone (solid yellow on the ego side, dashed yellow 4 in outside it, MUTCD 3B.02) on the
    sample clip: the pair is resolved near the camera, where each line's coverage is measured on its own."""
    from lanepipe.edit.config import ProceduralConfig
    from lanepipe.edit.procedural import PaintParams, ProceduralPainter
    from lanepipe.sample import render_sample
    from lanepipe.types import RoadMasks

    s = render_sample()
    spec = parse_instruction("double yellow solid-dashed")
    painted = ProceduralPainter(ProceduralConfig()).paint(s.to_clip(), RoadMasks(masks=s.road_masks, backend="gt"),
                                                          spec, PaintParams())
    r = detector.inspect(painted.frames, s.road_masks)
    assert (r.left.count, r.left.color, r.left.pattern) == (2, "yellow", "solid-dashed"), r.left
    ok, reasons = verdict(r, spec)
    assert ok, reasons
    assert r.right.describe() == "single white dashed"  # the other boundary is untouched


def test_removal_verdict_ignores_weak_leftovers_but_not_real_lines() -> None:
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.verify.base import BoundaryReport, LaneReport, verdict

    none = BoundaryReport(count=0, color=None, pattern=None, confidence=0.9)
    weak = BoundaryReport(count=1, color="white", pattern="solid", confidence=0.3)
    real = BoundaryReport(count=1, color="yellow", pattern="solid", confidence=0.8)
    spec = parse_instruction("none@both")
    assert verdict(LaneReport(left=weak, right=none), spec)[0]
    ok, reasons = verdict(LaneReport(left=real, right=weak), spec)
    assert not ok and len(reasons) == 1 and reasons[0].startswith("left boundary count")
    assert not verdict(LaneReport(left=weak, right=none), spec, removal_min_confidence=0.2)[0]
