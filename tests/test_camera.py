"""PinholeCamera: projection against cv2.projectPoints, ray-ground round trips, near plane, bad input."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.camera import FOV_BY_NAME, NEAR_PLANE_M, YAW_BY_NAME, PinholeCamera

CAMERAS = [
    PinholeCamera.from_fov(960, 540, 70.0, mount_height_m=1.5, pitch_deg=5.0),
    PinholeCamera.from_fov(640, 480, 120.0, mount_height_m=1.2, pitch_deg=-3.0, yaw_deg=90.0),
    PinholeCamera.from_fov(320, 200, 30.0, mount_height_m=2.0, pitch_deg=12.0, yaw_deg=-135.0),
    PinholeCamera(width=800, height=600, fx=500.0, fy=520.0, cx=410.3, cy=290.7, mount_height_m=1.6,
                  pitch_rad=0.1, yaw_rad=math.pi),
]


def _cv2_project(cam: PinholeCamera, pts: np.ndarray) -> np.ndarray:
    """Independent reference: OpenCV with rvec/tvec built from the camera's extrinsics."""
    rot = cam.rotation_ego_to_camera
    rvec, _ = cv2.Rodrigues(rot)
    tvec = -rot @ cam.centre_ego
    out, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), rvec, tvec, cam.K, np.zeros(5))
    return out.reshape(-1, 2)


@pytest.mark.parametrize("cam", CAMERAS)
def test_project_matches_cv2(cam: PinholeCamera) -> None:
    rng = np.random.default_rng(0)
    # points all around the vehicle; compare only those in front of the near plane
    pts = rng.uniform([-60, -60, -1], [60, 60, 5], size=(2000, 3))
    pix, valid = cam.project(pts)
    assert pix.shape == (2000, 2) and pix.dtype == np.float64
    assert valid.shape == (2000,) and valid.dtype == np.bool_
    assert 200 < valid.sum() < 2000
    ref = _cv2_project(cam, pts[valid])
    np.testing.assert_allclose(pix[valid], ref, rtol=1e-9, atol=1e-6)
    assert np.isnan(pix[~valid]).all()


def test_rotation_is_proper_and_axes_match_frames() -> None:
    cam = PinholeCamera.from_fov(960, 540, 70.0, pitch_deg=0.0)
    r = cam.rotation_ego_to_camera
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # ego forward is camera z, ego left is camera -x, ego up is camera -y
    pc = cam.ego_to_camera(np.array([[10.0, 0.0, 1.5], [0.0, 2.0, 1.5], [0.0, 0.0, 4.5]]))
    np.testing.assert_allclose(pc, [[0, 0, 10], [-2, 0, 0], [0, -3, 0]], atol=1e-12)


def test_from_fov_intrinsics_and_edge_ray() -> None:
    cam = PinholeCamera.from_fov(960, 540, FOV_BY_NAME["normal"])
    assert cam.fx == pytest.approx(960 / (2 * math.tan(math.radians(35.0))))
    assert cam.fy == cam.fx
    assert (cam.cx, cam.cy) == (479.5, 269.5)
    # the left border of the image (u = -0.5) is at half the FOV
    ray = cam.pixel_rays_ego([-0.5], [cam.cy])[0]
    assert math.degrees(math.atan2(ray[1], ray[0])) == pytest.approx(35.0)


@pytest.mark.parametrize("mount", sorted(YAW_BY_NAME))
def test_named_mount_sees_along_its_yaw(mount: str) -> None:
    cam = PinholeCamera.from_names(mount, "wide", 640, 480, pitch_deg=0.0)
    yaw = YAW_BY_NAME[mount]
    pt = np.array([[20 * math.cos(yaw), 20 * math.sin(yaw), cam.mount_height_m]])
    pix, valid = cam.project(pt)
    assert valid[0]
    np.testing.assert_allclose(pix[0], [cam.cx, cam.cy], atol=1e-9)


def test_named_lenses() -> None:
    assert FOV_BY_NAME == {"wide": 120.0, "normal": 70.0, "tele": 30.0}
    cam = PinholeCamera.from_names("front", "tele", 1000, 500)
    assert cam.fx == pytest.approx(500 / math.tan(math.radians(15.0)))
    with pytest.raises(ConfigError, match="choose one of"):
        PinholeCamera.from_names("roof", "wide", 10, 10)
    with pytest.raises(ConfigError, match="choose one of"):
        PinholeCamera.from_names("front", "fisheye", 10, 10)


@pytest.mark.parametrize("cam", CAMERAS)
def test_pixel_ground_pixel_round_trip(cam: PinholeCamera) -> None:
    hz = cam.horizon_row()
    v0 = max(hz + 2.0, 0.0)
    vv, uu = np.meshgrid(np.linspace(v0, cam.height - 1, 25), np.linspace(0, cam.width - 1, 31), indexing="ij")
    ground, valid = cam.pixel_to_ground(uu, vv)
    assert ground.shape == (uu.size, 3)
    assert valid.all()
    np.testing.assert_allclose(ground[:, 2], 0.0)
    pix, ok = cam.project(ground)
    assert ok.all()
    np.testing.assert_allclose(pix, np.stack([uu.ravel(), vv.ravel()], axis=1), atol=1e-6)


def test_ground_pixel_ground_round_trip() -> None:
    cam = CAMERAS[0]
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(4, 80, 500), rng.uniform(-15, 15, 500), np.zeros(500)])
    pix, valid = cam.project(pts)
    assert valid.all()
    back, ok = cam.pixel_to_ground(pix[:, 0], pix[:, 1])
    assert ok.all()
    np.testing.assert_allclose(back, pts, atol=1e-7)


def test_horizon_splits_ground_and_sky() -> None:
    cam = CAMERAS[0]
    hz = cam.horizon_row()
    assert hz == pytest.approx(cam.cy - cam.fy * math.tan(math.radians(5.0)))
    pts, valid = cam.pixel_to_ground([100, 100, 100], [hz - 1.0, hz - 1e-3, hz + 1.0])
    assert valid.tolist() == [False, False, True]
    assert np.isnan(pts[:2]).all()
    # a point very far ahead on the ground projects onto the horizon row
    pix, _ = cam.project(np.array([[1e8, 0.0, 0.0]]))
    assert pix[0, 1] == pytest.approx(hz, abs=1e-3)


def test_near_plane_cut() -> None:
    cam = PinholeCamera.from_fov(640, 480, 90.0, mount_height_m=1.0, pitch_deg=0.0)
    # depth = ego x when pitch and yaw are 0
    pts = np.array([[NEAR_PLANE_M - 0.01, 0, 1.0], [NEAR_PLANE_M, 0, 1.0], [0.6, 0.1, 1.0], [-5.0, 0, 1.0],
                    [np.nan, 0, 1.0]])
    pix, valid = cam.project(pts)
    assert valid.tolist() == [False, True, True, False, False]
    assert np.isnan(pix[~valid]).all()
    assert np.isfinite(pix[valid]).all()


def test_dict_round_trip_through_json() -> None:
    for cam in CAMERAS:
        d = json.loads(json.dumps(cam.to_dict()))
        assert d["model"] == "pinhole"
        assert PinholeCamera.from_dict(d) == cam


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((4, 2)), np.zeros((2, 3, 1)), [[1.0, 2.0]]])
def test_project_rejects_wrong_shape(bad: object) -> None:
    cam = CAMERAS[0]
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        cam.project(bad)
    with pytest.raises(InputError):
        cam.ego_to_camera(bad)


def test_bad_pixels_and_dicts_and_configs() -> None:
    cam = CAMERAS[0]
    with pytest.raises(InputError, match="same length"):
        cam.pixel_to_ground([1.0, 2.0], [3.0])
    with pytest.raises(InputError, match="pinhole"):
        PinholeCamera.from_dict({**cam.to_dict(), "model": "ftheta"})
    with pytest.raises(InputError, match="missing"):
        PinholeCamera.from_dict({"model": "pinhole", "width": 10})
    with pytest.raises(ConfigError, match="fx, fy > 0"):
        PinholeCamera(10, 10, 0.0, 1.0, 5, 5, 1.5, 0.0)
    with pytest.raises(ConfigError, match="pitch"):
        PinholeCamera.from_fov(10, 10, 60.0, pitch_deg=95.0)
    with pytest.raises(ConfigError, match="fov_deg"):
        PinholeCamera.from_fov(10, 10, 180.0)
    with pytest.raises(ConfigError, match="mount_height_m"):
        PinholeCamera.from_fov(10, 10, 60.0, mount_height_m=0.0)
