"""The grid backend: shapes, known answers (synthetic sample, TuSimple lane labels), stability, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lanepipe.config import SegmentConfig
from lanepipe.errors import InputError
from lanepipe.io.video import decode
from lanepipe.sample import SampleClip, render_sample
from lanepipe.segment import Segmenter, build_segmenter
from lanepipe.segment.config import GridConfig
from lanepipe.segment.grid import GridSegmenter, segment_frame
from lanepipe.types import Clip

#: Hand-drawn vehicle boxes (x0, y0, x1, y1) on the TuSimple frames: the lane labels are interpolated through
#: the cars that hide them, and the mask is meant to leave cars out. Same boxes as benchmarks/segment_quality.py.
TUSIMPLE_VEHICLES: dict[int, list[tuple[int, int, int, int]]] = {
    0: [(622, 245, 688, 300), (552, 245, 595, 282), (752, 212, 845, 305), (700, 245, 748, 280)],
    1: [(588, 240, 702, 322), (565, 240, 600, 265), (750, 205, 840, 290), (705, 235, 748, 268)],
    2: [(0, 280, 170, 620), (368, 230, 502, 345), (570, 250, 750, 400), (845, 228, 978, 335),
        (1075, 180, 1280, 360), (800, 245, 860, 312), (745, 238, 805, 300)],
}


def _clip(frames: np.ndarray, name: str = "synthetic") -> Clip:
    t = frames.shape[0]
    return Clip(name=name, source=f"memory://{name}", frames=frames, fps=8.0, timestamps=np.arange(t) / 8.0,
                source_fps=8.0, source_indices=np.arange(t, dtype=np.int64))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    axes = tuple(range(a.ndim - 2, a.ndim))
    return (a & b).sum(axis=axes) / np.maximum((a | b).sum(axis=axes), 1)


@pytest.fixture(scope="module")
def sample() -> SampleClip:
    return render_sample(num_frames=6, width=480, height=270)


@pytest.fixture(scope="module")
def sample_masks(sample: SampleClip) -> np.ndarray:
    return GridSegmenter().segment(sample.to_clip()).masks


def test_smoke_shape_dtype(sample: SampleClip, sample_masks: np.ndarray) -> None:
    seg = build_segmenter(SegmentConfig(backend="grid"))
    assert isinstance(seg, GridSegmenter) and isinstance(seg, Segmenter) and seg.name == "grid"
    clip = sample.to_clip()
    out = seg.segment(clip)
    out.check_matches(clip)
    assert out.backend == "grid" and out.masks.dtype == np.bool_ and out.masks.shape == (6, 270, 480)
    np.testing.assert_array_equal(out.masks, sample_masks)  # deterministic
    assert 0.2 < out.masks.mean() < 0.8


def test_known_answer_sample(sample: SampleClip, sample_masks: np.ndarray) -> None:
    iou = _iou(sample_masks, sample.road_masks)
    assert iou.min() >= 0.9, f"IoU with the ground-truth road per frame: {np.round(iou, 3)}"


def test_pure_function_matches_backend(sample: SampleClip) -> None:
    one = GridSegmenter().segment(_clip(sample.frames[:1])).masks[0]
    np.testing.assert_array_equal(segment_frame(sample.frames[0]), one)


def test_sky_rows_empty(sample: SampleClip, sample_masks: np.ndarray, data_dir: Path) -> None:
    # The sample's horizon is where its ground-truth road starts; nothing a few rows above may be road.
    top = int(np.nonzero(sample.road_masks.any(axis=(0, 2)))[0].min())
    assert not sample_masks[:, : max(0, top - 3)].any()
    # A real frame: camera B's horizon is near 58 % of the height; the top 45 % is sky, trees and hills.
    frame = cv2.cvtColor(cv2.imread(str(data_dir / "udacity_advanced_lane_lines" / "test_images" / "test1.jpg")),
                         cv2.COLOR_BGR2RGB)
    mask = segment_frame(frame)
    assert not mask[: int(0.45 * mask.shape[0])].any()
    assert mask[int(0.8 * mask.shape[0])].mean() > 0.5  # and the road just ahead is found


def test_tusimple_lane_pixels_inside_road(data_dir: Path) -> None:
    covered = visible = covered_all = total = 0
    for i in range(3):
        bgr = cv2.imread(str(data_dir / "tusimple_lanenet_examples" / "image" / f"{i:04d}.png"))
        gt = cv2.imread(str(data_dir / "tusimple_lanenet_examples" / "gt_binary_image" / f"{i:04d}.png"), 0) > 127
        mask = GridSegmenter().segment(_clip(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[None], f"tusimple{i}")).masks[0]
        vehicles = np.zeros_like(gt)
        for x0, y0, x1, y1 in TUSIMPLE_VEHICLES[i]:
            vehicles[y0:y1, x0:x1] = True
        vis = gt & ~vehicles
        covered += int(mask[vis].sum())
        visible += int(vis.sum())
        covered_all += int(mask[gt].sum())
        total += int(gt.sum())
        top = int(np.nonzero(gt.any(axis=1))[0].min())
        assert mask[:top].sum() <= 0.01 * mask.sum(), f"image {i}: mask reaches above the highest lane pixel"
        if i == 0:  # the frame without occluding cars near the camera
            assert mask[gt].mean() >= 0.95
    assert covered / visible >= 0.95, f"visible lane pixels inside the road: {covered / visible:.3f}"
    assert covered_all / total >= 0.85, f"all lane pixels inside the road: {covered_all / total:.3f}"


def test_temporal_stability_real_clip(data_dir: Path) -> None:
    clip = decode(str(data_dir / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4"))
    masks = GridSegmenter().segment(clip).masks
    iou = _iou(masks[1:], masks[:-1])
    assert iou.mean() >= 0.9, f"consecutive-frame IoU: mean {iou.mean():.3f}, min {iou.min():.3f}"
    # The smoothing matters: without it the same clip flickers more.
    raw = GridSegmenter(GridConfig(temporal_radius=0, model_min_frames=10**6)).segment(clip).masks
    assert _iou(raw[1:], raw[:-1]).mean() < iou.mean()


@pytest.mark.parametrize(
    "bad",
    [
        "not a clip",
        np.zeros((2, 64, 64, 3), dtype=np.uint8),
        _clip(np.zeros((0, 64, 64, 3), dtype=np.uint8), "empty"),
        _clip(np.zeros((2, 4, 64, 3), dtype=np.uint8), "tiny"),
    ],
    ids=["string", "bare-array", "no-frames", "4px-high"],
)
def test_bad_clip(bad: object) -> None:
    with pytest.raises(InputError) as e:
        GridSegmenter().segment(bad)  # type: ignore[arg-type]
    assert "expected" in str(e.value)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((64, 64), dtype=np.uint8), np.zeros((64, 64, 3), dtype=np.float32), np.zeros((4, 4, 3), np.uint8)],
    ids=["grey", "float", "4x4"],
)
def test_bad_frame(bad: np.ndarray) -> None:
    with pytest.raises(InputError):
        segment_frame(bad)


def test_uniform_frame_does_not_crash() -> None:
    # A flat grey frame has no edges: no vanishing point, the fallback horizon applies.
    mask = segment_frame(np.full((90, 160, 3), 120, dtype=np.uint8))
    assert mask.shape == (90, 160)
    assert not mask[: int(0.5 * 90)].any() and mask[-5:].all()
