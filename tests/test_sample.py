"""The synthetic sample clip: shapes, determinism, ground truth consistent with the pixels, files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lanepipe.errors import ConfigError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.io.video import decode
from lanepipe.sample import (
    DASH_M,
    GAP_M,
    LAYOUT,
    LaneLine,
    SampleClip,
    render_sample,
    road_pose,
    world_to_road,
    write_sample,
)
from lanepipe.types import Clip


@pytest.fixture(scope="module")
def sample() -> SampleClip:
    """The default sample (48 frames, 960x540), rendered once for the module."""
    return render_sample()


@pytest.fixture(scope="module")
def small() -> SampleClip:
    return render_sample(num_frames=6, width=320, height=180, seed=3)


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_shapes_and_dtypes(sample: SampleClip) -> None:
    t, h, w = 48, 540, 960
    assert sample.frames.shape == (t, h, w, 3) and sample.frames.dtype == np.uint8
    assert sample.road_masks.shape == (t, h, w) and sample.road_masks.dtype == np.bool_
    assert sample.vehicle_masks.shape == (t, h, w) and sample.vehicle_masks.dtype == np.bool_
    assert sample.ego.shape == (t, 4) and sample.ego.dtype == np.float64
    assert sample.vehicle.shape == (t, 3)
    assert len(sample.lanes) == t
    assert sample.fps == 8.0
    assert (sample.camera.width, sample.camera.height) == (w, h)
    for frame_lanes in sample.lanes:
        assert [ln.id for ln in frame_lanes] == [spec.id for spec in LAYOUT]
        for ln in frame_lanes:
            assert isinstance(ln, LaneLine)
            assert ln.points.ndim == 2 and ln.points.shape[1] == 2 and ln.points.dtype == np.float64


def test_layout_has_double_yellow_left_and_dashed_white_right() -> None:
    by_side = {spec.side: spec for spec in LAYOUT if spec.side != "edge"}
    assert (by_side["left"].color, by_side["left"].pattern, by_side["left"].count) == ("yellow", "solid", 2)
    assert (by_side["right"].color, by_side["right"].pattern, by_side["right"].count) == ("white", "dashed", 1)
    assert [s.color for s in LAYOUT if s.side == "edge"] == ["white", "white"]
    assert (DASH_M, GAP_M) == (3.05, 9.14)


def test_ego_drives_along_the_lane(sample: SampleClip) -> None:
    s, d, heading = world_to_road(sample.ego[:, 0], sample.ego[:, 1])
    np.testing.assert_allclose(d, -3.66 / 2, atol=1e-9)
    np.testing.assert_allclose(np.diff(s), 15.0 / 8.0, atol=1e-9)
    np.testing.assert_allclose(sample.ego[:, 2], heading, atol=1e-12)
    np.testing.assert_allclose(sample.ego[:, 3], 15.0)
    assert sample.ego[-1, 2] > 0.1  # the clip reaches the left-hand curve


def test_road_coordinates_round_trip() -> None:
    s = np.linspace(-10, 400, 200)
    d = np.linspace(-9, 6, 200)
    x, y, h = road_pose(s, d)
    s2, d2, h2 = world_to_road(x, y)
    np.testing.assert_allclose(s2, s, atol=1e-9)
    np.testing.assert_allclose(d2, d, atol=1e-9)
    np.testing.assert_allclose(h2, h, atol=1e-12)


def test_deterministic_for_a_seed(small: SampleClip) -> None:
    again = render_sample(num_frames=6, width=320, height=180, seed=3)
    np.testing.assert_array_equal(again.frames, small.frames)
    np.testing.assert_array_equal(again.road_masks, small.road_masks)
    other = render_sample(num_frames=6, width=320, height=180, seed=4)
    assert not np.array_equal(other.frames, small.frames)
    np.testing.assert_array_equal(other.road_masks, small.road_masks)  # geometry does not depend on the seed


def test_road_mask_covers_bottom_centre_not_sky(sample: SampleClip) -> None:
    h, w = sample.road_masks.shape[1:]
    hz = int(np.floor(sample.camera.horizon_row()))
    assert sample.road_masks[:, h - 1, w // 2].all()
    assert sample.road_masks[:, h - 20:, w // 2 - 50: w // 2 + 50].all()
    assert not sample.road_masks[:, : hz + 1].any()
    frac = sample.road_masks.mean(axis=(1, 2))
    assert ((frac > 0.3) & (frac < 0.7)).all()
    # masked pixels are grey asphalt or paint; the unmasked ground holds the green grass
    img = sample.frames[0].astype(np.int32)
    road = sample.road_masks[0]
    ground = np.zeros_like(road)
    ground[hz + 5:] = True
    green_road = (img[..., 1] - img[..., 2])[road].mean()
    green_off = (img[..., 1] - img[..., 2])[ground & ~road & ~sample.vehicle_masks[0]].mean()
    assert green_road < 15 < green_off


def test_vehicle_pixels_are_excluded_from_the_road(sample: SampleClip) -> None:
    assert sample.vehicle_masks.any(axis=(1, 2)).all()
    assert not (sample.road_masks & sample.vehicle_masks).any()
    cam = sample.camera
    for t in (0, 24, 47):
        vx, vy, _ = sample.vehicle[t]
        ex, ey, yaw, _ = sample.ego[t]
        c, s = np.cos(yaw), np.sin(yaw)
        centre = np.array([[c * (vx - ex) + s * (vy - ey), -s * (vx - ex) + c * (vy - ey), 0.8]])
        pix, ok = cam.project(centre)
        assert ok[0]
        u, v = np.round(pix[0]).astype(int)
        assert sample.vehicle_masks[t, v, u]
        # the car hides the road: its pixels would be paved ground without it
        rows, cols = np.nonzero(sample.vehicle_masks[t])
        assert 20 < rows.max() - rows.min() < 200 and 20 < cols.max() - cols.min() < 200


def test_dashes_move_between_frames(sample: SampleClip) -> None:
    """Along the dashed line the painted/unpainted pattern changes with ego motion; along a solid line not."""
    hz = sample.camera.horizon_row()

    def luma_along(line_id: int, t: int) -> np.ndarray:
        pts = next(ln for ln in sample.lanes[0] if ln.id == line_id).points  # frame 0's line, fixed pixels
        uv = np.round(pts[pts[:, 1] > hz + 60]).astype(int)  # near part, lines several pixels wide
        return _luma(sample.frames[t][uv[:, 1], uv[:, 0]])

    dashed0, dashed1 = luma_along(2, 0), luma_along(2, 1)
    for luma in (dashed0, dashed1):  # dashes and gaps both present
        assert (luma > 150).any() and (luma < 120).any()
    assert not np.array_equal(dashed0 > 150, dashed1 > 150)
    assert (np.logical_xor(dashed0 > 150, dashed1 > 150)).mean() > 0.05
    solid0, solid1 = luma_along(3, 0), luma_along(3, 1)
    assert (solid0 > 150).mean() > 0.9 and (solid1 > 150).mean() > 0.9
    # every frame pair differs on the road (texture and dashes flow towards the camera)
    diff = np.abs(np.diff(sample.frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (diff > 2).all()


def test_lane_polylines_lie_in_the_road(sample: SampleClip) -> None:
    h, w = sample.road_masks.shape[1:]
    for t in range(sample.road_masks.shape[0]):
        visible = sample.road_masks[t] | sample.vehicle_masks[t]  # polylines are not cut by the car
        near_visible = cv2.dilate(visible.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        for ln in sample.lanes[t]:
            assert len(ln.points) > 30
            u, v = ln.points[:, 0], ln.points[:, 1]
            assert ((u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)).all()
            ui, vi = np.round(u).astype(int), np.round(v).astype(int)
            # far away the road is a band a few pixels tall, so allow one pixel of rounding there
            assert visible[vi, ui].mean() > 0.85, (t, ln.id)
            assert near_visible[vi, ui].mean() > 0.95, (t, ln.id)
            assert (np.diff(v) <= 1e-6).all()  # ordered near (bottom) to far (top)


def test_lane_polylines_sit_on_the_paint(sample: SampleClip) -> None:
    """Known answer: near points of the single solid lines are bright paint; the asphalt is darker."""
    hz = sample.camera.horizon_row()
    road_luma = np.median(_luma(sample.frames[0][sample.road_masks[0]]))
    for ln in sample.lanes[0]:
        pts = ln.points[ln.points[:, 1] > hz + 60]
        uv = np.round(pts).astype(int)
        luma = _luma(sample.frames[0][uv[:, 1], uv[:, 0]])
        if ln.count == 1 and ln.pattern == "solid":
            assert np.median(luma) > road_luma + 60
        if ln.count == 2:  # the polyline runs between the two yellow lines, over asphalt
            assert np.median(luma) < road_luma + 40


def test_polyline_reaches_the_bottom_border(sample: SampleClip) -> None:
    h = sample.road_masks.shape[1]
    yellow = next(ln for ln in sample.lanes[0] if ln.id == 1)
    assert yellow.points[0, 1] == pytest.approx(h - 1)


def test_to_clip(small: SampleClip) -> None:
    clip = small.to_clip("demo")
    assert isinstance(clip, Clip)
    assert clip.num_frames == 6 and clip.fps == small.fps
    np.testing.assert_allclose(clip.timestamps, np.arange(6) / small.fps)
    assert PinholeCamera.from_dict(clip.meta["camera"]) == small.camera


def test_write_sample_round_trip(tmp_path: Path, small: SampleClip) -> None:
    mp4 = write_sample(tmp_path / "out", num_frames=6, width=320, height=180, seed=3)
    assert mp4 == tmp_path / "out" / "sample.mp4"
    clip = decode(str(mp4), target_fps=None)
    assert clip.num_frames == 6
    assert (clip.height, clip.width) == (180, 320)
    assert clip.fps == pytest.approx(8.0)
    err = np.abs(clip.frames.astype(int) - small.frames.astype(int)).mean()
    assert err < 6  # H.264 at crf 18
    with np.load(tmp_path / "out" / "sample_gt.npz") as gt:
        assert gt["road_masks"].dtype == np.bool_
        np.testing.assert_array_equal(gt["road_masks"], small.road_masks)
        np.testing.assert_array_equal(gt["vehicle_masks"], small.vehicle_masks)
        np.testing.assert_allclose(gt["ego"], small.ego)
    meta = json.loads((tmp_path / "out" / "sample_gt.json").read_text())
    assert PinholeCamera.from_dict(meta["camera"]) == small.camera
    assert meta["fps"] == 8.0 and meta["num_frames"] == 6 and len(meta["frames"]) == 6
    f0 = meta["frames"][0]
    assert set(f0["ego"]) == {"x", "y", "yaw", "speed"}
    assert [ln["id"] for ln in f0["lanes"]] == [spec.id for spec in LAYOUT]
    lane = f0["lanes"][2]
    assert (lane["side"], lane["color"], lane["pattern"], lane["count"]) == ("right", "white", "dashed", 1)
    np.testing.assert_allclose(np.array(lane["points"]), small.lanes[0][2].points, atol=0.01)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"num_frames": 0}, "num_frames"),
    ({"fps": 0.0}, "fps"),
    ({"width": 16}, "width and height"),
    ({"num_frames": 300, "fps": 8.0}, "at most 30"),
])
def test_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        render_sample(**kwargs)  # type: ignore[arg-type]
