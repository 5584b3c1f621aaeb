"""Overlay, comparison and BEV rendering: shapes, colours, projection against OpenCV, near-plane cut, reveal."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.geometry.camera import NEAR_PLANE_M, PinholeCamera
from lanepipe.viz.bev import (
    GT_COLOR,
    HISTORY_COLOR,
    PREDICTION_COLORS,
    auto_range_m,
    bev_inset,
    ego_to_bev_px,
    truncate_track,
)
from lanepipe.viz.overlay import (
    camera_for_size,
    comparison_video,
    overlay_video,
    project_polyline,
    reveal_horizons,
    to_frame,
)

CYAN, ORANGE = PREDICTION_COLORS[0], PREDICTION_COLORS[1]
STEPS = np.arange(1, 65) * 0.1


def _cam(w: int = 320, h: int = 180) -> PinholeCamera:
    return PinholeCamera.from_fov(w, h, 70.0, mount_height_m=1.5, pitch_deg=5.0)


def _straight(speed: float = 8.0, lateral: float = 0.0, curve: float = 0.0) -> np.ndarray:
    """``(1, 64, 3)`` waypoints: x = speed * t, y = lateral + curve * x^2."""
    x = speed * STEPS
    return np.stack([x, lateral + curve * x**2, np.zeros(64)], axis=1)[None]


def _cv2_project(cam: PinholeCamera, pts: np.ndarray) -> np.ndarray:
    """Independent reference: OpenCV's projection with the camera's extrinsics and intrinsics."""
    r = cam.rotation_ego_to_camera
    rvec, _ = cv2.Rodrigues(r)
    tvec = -r @ cam.centre_ego
    px, _ = cv2.projectPoints(pts.astype(np.float64), rvec, tvec, cam.K, np.zeros(5))
    return np.asarray(px, dtype=np.float64).reshape(-1, 2)


def _near(img: np.ndarray, u: float, v: float, color: tuple[int, int, int], radius: int = 1,
          tol: float = 40.0) -> bool:
    """True if some pixel within ``radius`` of (u, v) has ``color`` (within ``tol``, L-inf)."""
    h, w = img.shape[:2]
    ui, vi = round(u), round(v)
    patch = img[max(0, vi - radius): min(h, vi + radius + 1), max(0, ui - radius): min(w, ui + radius + 1)]
    return bool((np.abs(patch.astype(int) - np.array(color)).max(axis=-1) <= tol).any())


def _mask_of(img: np.ndarray, color: tuple[int, int, int], tol: float = 40.0) -> np.ndarray:
    return np.asarray(np.abs(img.astype(int) - np.array(color)).max(axis=-1) <= tol)


# ----------------------------------------------------------------------------------------------- BEV
def test_bev_shape_and_colours_where_expected() -> None:
    hist = np.stack([np.linspace(-12, 0, 16), np.zeros(16), np.zeros(16)], axis=1)
    gt = _straight(7.0)[0]  # straight ahead to 44.8 m
    left = _straight(7.0, lateral=9.0)  # parallel, 9 m to the left
    right = _straight(7.0, lateral=-9.0)
    img = bev_inset(hist, gt, {"original": left, "edited": right}, size=250, range_m=60.0)
    assert img.shape == (250, 250, 3) and img.dtype == np.uint8

    def at(x: float, y: float) -> tuple[float, float]:
        u, v = ego_to_bev_px([[x, y, 0.0]], 250, 60.0)[0]
        return float(u), float(v)

    # ego at the bottom centre, x up, y left
    u0, v0 = at(0, 0)
    assert u0 == pytest.approx(124.5) and 0.75 * 250 < v0 < 0.9 * 250
    assert at(10, 0)[1] < v0 and at(0, 5)[0] < u0
    assert _near(img, *at(20, 0), GT_COLOR), "ground truth should be red straight ahead"
    assert _near(img, *at(20, 9), CYAN), "the first (original) prediction should be cyan on the left"
    # the edited prediction is dashed: look along a stretch longer than a dash period
    assert any(_near(img, *at(x, -9), ORANGE) for x in np.arange(16.0, 24.5, 0.5)), \
        "the second (edited) prediction should be orange on the right"
    assert _near(img, *at(-6, 0), HISTORY_COLOR), "history should be grey behind the ego"
    assert not _near(img, *at(20, 4.5), CYAN, radius=2)  # between the lines: background


def test_bev_size_range_horizon_and_bad_input() -> None:
    pred = _straight(15.0)
    assert bev_inset(None, None, {"p": pred}, size=96).shape == (96, 96, 3)
    assert auto_range_m(pred) >= 96.0  # 15 m/s for 6.4 s
    full = bev_inset(None, None, {"p": pred}, size=200, range_m=120.0)
    early = bev_inset(None, None, {"p": pred}, size=200, range_m=120.0, horizon_s=1.0)
    assert _mask_of(early, CYAN).sum() < _mask_of(full, CYAN).sum()
    u, v = ego_to_bev_px([[60.0, 0.0, 0.0]], 200, 120.0)[0]
    assert not _near(early, float(u), float(v), CYAN, radius=2)
    with pytest.raises(InputError, match="K, 64, 3"):
        bev_inset(None, None, {"p": np.zeros((2, 64))})
    with pytest.raises(InputError, match="size"):
        bev_inset(None, None, {"p": pred}, size=10)


def test_truncate_track_interpolates_last_point() -> None:
    track = _straight(10.0)[0]
    part = truncate_track(track, 0.25)
    assert part.shape == (4, 3)  # origin, 0.1 s, 0.2 s, and half-way to 0.3 s
    np.testing.assert_allclose(part[-1], [2.5, 0.0, 0.0])
    assert truncate_track(track, None).shape == (65, 3)


# ----------------------------------------------------------------------------------------------- projection
def test_projection_matches_cv2_project_points() -> None:
    cam = _cam(960, 540)
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(2, 80, 50), rng.uniform(-10, 10, 50), rng.uniform(-0.5, 2.0, 50)], axis=1)
    runs = project_polyline(cam, pts)
    assert len(runs) == 1
    np.testing.assert_allclose(runs[0], _cv2_project(cam, pts), atol=1e-6)
    yawed = PinholeCamera.from_fov(640, 360, 120.0, mount_height_m=1.6, pitch_deg=2.0, yaw_deg=90.0)
    side = np.stack([rng.uniform(-5, 5, 20), rng.uniform(3, 30, 20), np.zeros(20)], axis=1)
    np.testing.assert_allclose(project_polyline(yawed, side)[0], _cv2_project(yawed, side), atol=1e-6)


def test_drawn_pixels_land_on_projected_points() -> None:
    cam = _cam(320, 180)
    frames = np.zeros((3, 180, 320, 3), np.uint8)
    pred = _straight(6.0, lateral=0.5, curve=0.004)
    out = overlay_video(frames, cam, np.array([-0.2, -0.1, 0.0]), {"pred": pred}, reveal="none", bev_size=0,
                        workers=1)
    img = out[-1]
    ref = _cv2_project(cam, pred[0])
    inside = (ref[:, 0] >= 0) & (ref[:, 0] < 320) & (ref[:, 1] >= 0) & (ref[:, 1] < 150)  # above the legend
    assert inside.sum() > 30
    for u, v in ref[inside]:
        assert _near(img, u, v, CYAN, radius=1), (u, v)
    # conversely: every cyan pixel outside the legend lies within the line's half-width of the projected path
    cyan = _mask_of(img, CYAN, tol=60)
    cyan[150:, :120] = False  # legend swatch
    vs, us = np.nonzero(cyan)
    dense = np.concatenate([a + (b - a) * np.linspace(0, 1, 20)[:, None] for a, b in itertools.pairwise(ref)])
    dist = np.sqrt(((np.stack([us, vs], 1)[:, None, :] - dense[None]) ** 2).sum(-1)).min(axis=1)
    assert len(dist) > 50 and dist.max() < 6.0


def test_near_plane_cut() -> None:
    cam = _cam(320, 180)
    sp, cp = math.sin(cam.pitch_rad), math.cos(cam.pitch_rad)
    x_near = (NEAR_PLANE_M - cam.mount_height_m * sp) / cp  # ground point on the y = 0 line at depth 0.5 m
    line = np.stack([np.linspace(-5, 30, 8), np.zeros(8), np.zeros(8)], axis=1)
    runs = project_polyline(cam, line)
    assert len(runs) == 1 and np.isfinite(runs[0]).all()
    np.testing.assert_allclose(runs[0][0], _cv2_project(cam, np.array([[x_near, 0.0, 0.0]]))[0], atol=1e-2)
    np.testing.assert_allclose(runs[0][1:], _cv2_project(cam, line[line[:, 0] > x_near]), atol=1e-6)
    # entirely behind: nothing; front → behind → front: two runs
    assert project_polyline(cam, line[:2] - [10, 0, 0]) == []
    zigzag = np.array([[10.0, 0, 0], [-3.0, 0, 0], [12.0, 1.0, 0]])
    assert len(project_polyline(cam, zigzag)) == 2
    # a path that is all behind the camera draws nothing (only the legend)
    frames = np.zeros((1, 180, 320, 3), np.uint8)
    behind = np.stack([-STEPS * 5, np.zeros(64), np.zeros(64)], axis=1)[None]
    out = overlay_video(frames, cam, [0.0], {"p": behind}, bev_size=0, reveal="none")
    assert not out[0, :140].any()


def test_ego_poses_move_the_path() -> None:
    cam = _cam(320, 180)
    pose = np.eye(4)
    pose[0, 3] = 10.0  # at this frame the ego is 10 m ahead of its t0 position
    np.testing.assert_allclose(to_frame(np.array([[30.0, 2.0, 0.0]]), pose), [[20.0, 2.0, 0.0]])
    yaw = np.eye(4)
    yaw[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]  # turned 90 deg left: a point ahead at t0 is now on the right
    np.testing.assert_allclose(to_frame(np.array([[5.0, 0.0, 0.0]]), yaw), [[0.0, -5.0, 0.0]], atol=1e-12)
    frames = np.zeros((2, 180, 320, 3), np.uint8)
    pred = _straight(6.0)
    poses = np.stack([np.eye(4), pose])
    out = overlay_video(frames, cam, [0.0, 0.0], {"p": pred}, ego_poses=poses, reveal="none", bev_size=0,
                        waypoint_dots_s=0)

    def far_row(img: np.ndarray) -> int:
        return int(np.nonzero(_mask_of(img[:150], CYAN).any(axis=1))[0].min())

    assert far_row(out[1]) > far_row(out[0])  # path end is nearer, so lower in the image
    with pytest.raises(InputError, match="4, 4"):
        overlay_video(frames, cam, [0.0, 0.0], {"p": pred}, ego_poses=np.eye(4))


def test_progressive_reveal() -> None:
    cam = _cam(320, 180)
    t = 12
    frames = np.zeros((t, 180, 320, 3), np.uint8)
    times = np.linspace(-1.0, 0.4, t)
    out = overlay_video(frames, cam, times, {"p": _straight(6.0)}, bev_size=0, workers=2)
    counts = [int(_mask_of(f[:150], CYAN).sum()) for f in out]
    assert counts[0] == 0 < counts[t // 2] < counts[-1]
    assert all(b >= a - 3 for a, b in itertools.pairwise(counts))
    np.testing.assert_allclose(reveal_horizons(times, "clip")[[0, -1]], [0.0, 6.4])
    np.testing.assert_allclose(reveal_horizons(np.array([-1.0, 0.5, 9.0]), "time"), [0.0, 0.5, 6.4])
    assert (reveal_horizons(times, "none") == 6.4).all()


class _Barrel:
    """A duck-typed non-pinhole camera: strong barrel distortion, only ``project`` (no ``ego_to_camera``)."""

    def __init__(self, base: PinholeCamera, k: float = -0.5, resizable: bool = True) -> None:
        self.base, self.k, self.width, self.height = base, k, base.width, base.height
        if resizable:
            self.resized = lambda w, h: _Barrel(camera_for_size(base, w, h), k)

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px, valid = self.base.project(pts)
        xn = (px[:, 0] - self.base.cx) / self.base.fx
        yn = (px[:, 1] - self.base.cy) / self.base.fy
        f = 1 + self.k * (xn**2 + yn**2)
        return np.stack([xn * f * self.base.fx + self.base.cx, yn * f * self.base.fy + self.base.cy], 1), valid


def test_non_pinhole_camera_draws_curves_and_resizes() -> None:
    cam = _Barrel(_cam(640, 360))
    # a straight line across the view: sparse waypoints, curved image
    line = np.stack([np.full(3, 6.0), np.linspace(4, -4, 3), np.zeros(3)], axis=1)
    runs = project_polyline(cam, line)
    assert len(runs) == 1 and len(runs[0]) == 9  # 4 pieces per segment by default
    frames = np.zeros((1, 360, 640, 3), np.uint8)
    traj = np.concatenate([line, np.repeat(line[-1:], 61, axis=0)])[None]  # 64 waypoints, the rest parked
    out = overlay_video(frames, cam, [0.0], {"p": traj}, reveal="none", bev_size=0, waypoint_dots_s=0)
    mids = (line[:-1] + line[1:]) / 2
    mid_px = cam.project(mids)[0]
    chord_px = (cam.project(line[:-1])[0] + cam.project(line[1:])[0]) / 2
    assert np.linalg.norm(mid_px - chord_px, axis=1).min() > 8  # the distortion bends the segments visibly
    for u, v in mid_px:
        assert _near(out[0], float(u), float(v), CYAN, radius=0)
    half = overlay_video(frames[:, ::2, ::2].copy(), cam, [0.0], {"p": traj}, bev_size=0)
    assert half.shape == (1, 180, 320, 3)
    with pytest.raises(InputError, match="camera for 320x180"):
        overlay_video(frames[:, ::2, ::2].copy(), _Barrel(_cam(640, 360), resizable=False), [0.0], {"p": traj})


# ----------------------------------------------------------------------------------------------- videos
def test_overlay_shapes_hud_inset_and_input_checks() -> None:
    cam = _cam(480, 270)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (4, 270, 480, 3), dtype=np.uint8)
    before = frames.copy()
    hist = np.stack([np.linspace(-9, 0, 16), np.zeros(16), np.zeros(16)], axis=1)
    out = overlay_video(frames, cam, np.arange(4) * 0.125, {"original": _straight(6.0, 0.3)}, _straight(6.0)[0],
                        hist, {"minADE": "0.31 m", "clip": "c1", "camera": "front"})
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frames, before)  # inputs untouched
    # BEV inset in the top-right corner: its dark background replaces the noise
    s = min(250, 270 // 2, 480 // 3)
    corner = out[-1, 10: 10 + s, 480 - 10 - s: 470].astype(int)
    assert corner.mean() < 60
    # HUD: shaded box top-left is darker than the noise
    assert out[-1, 8:20, 8:60].mean() < before[-1, 8:20, 8:60].mean()
    # a camera of another resolution is rescaled (pinhole)
    half = overlay_video(frames[:, ::2, ::2].copy(), cam, np.zeros(4), {"p": _straight()}, bev_size=0)
    assert half.shape == (4, 135, 240, 3)
    small = camera_for_size(cam, 240, 135)
    np.testing.assert_allclose(small.project([[20.0, 1.0, 0.0]])[0] * 2 + 0.5,
                               cam.project([[20.0, 1.0, 0.0]])[0] + 0.0, atol=1e-9)
    with pytest.raises(InputError, match="t_frames"):
        overlay_video(frames, cam, np.zeros(3), {"p": _straight()})
    with pytest.raises(InputError, match="K, 64, 3"):
        overlay_video(frames, cam, np.zeros(4), {"p": np.zeros((64, 2))})
    with pytest.raises(InputError, match="uint8"):
        overlay_video(frames.astype(np.float32), cam, np.zeros(4), {"p": _straight()})


def test_comparison_video_side_by_side() -> None:
    cam = _cam(320, 180)
    t = 3
    orig = np.full((t, 180, 320, 3), 90, np.uint8)
    edited = np.full((t, 120, 200, 3), 90, np.uint8)  # another size: resized to the panel
    a, b = _straight(6.0, 1.0), _straight(6.0, -1.0)
    out = comparison_video(orig, a, edited, b, cam, np.linspace(-0.25, 0, t), hud={"clip": "c"}, bev_size=0)
    assert out.shape == (t, 180, 640, 3)
    assert _mask_of(out[-1, :, :320], CYAN).sum() > 50 and _mask_of(out[-1, :, :320], ORANGE).sum() == 0
    assert _mask_of(out[-1, :, 320:], ORANGE).sum() > 50
    scaled = comparison_video(orig, a, edited, b, cam, np.zeros(t), scale=0.55)
    assert scaled.shape == (t, 100, 2 * 176, 3) and scaled.shape[1] % 2 == 0
    with pytest.raises(InputError, match="same number"):
        comparison_video(orig, a, edited[:2], b, cam, np.zeros(t))
