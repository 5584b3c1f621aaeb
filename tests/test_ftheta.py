from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.ftheta import (
    FThetaCamera,
    camera_rotation,
    fit_backward_poly,
)
from lanepipe.geometry.quaternion import matrix_to_quat_xyzw, quat_xyzw_to_matrix


def _camera(fw, bw, yaw=0.3, pitch=0.08, t=(1.7, 0.2, 1.45), w=640, h=360, cx=321.3, cy=178.6) -> FThetaCamera:
    q = matrix_to_quat_xyzw(camera_rotation(yaw, pitch))
    return FThetaCamera(width=w, height=h, cx=cx, cy=cy, fw_poly=tuple(fw), bw_poly=tuple(bw),
                        quat_xyzw=tuple(float(c) for c in q), translation=t)


def _points(n=400, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-5, 60, n), rng.uniform(-30, 30, n), rng.uniform(-2, 4, n)], 1)


def test_quaternion_round_trip_and_default_orientation() -> None:
    r = camera_rotation(0.7, -0.2)
    assert np.allclose(quat_xyzw_to_matrix(matrix_to_quat_xyzw(r)), r, atol=1e-12)
    # default quaternion: camera z along ego x, camera x along ego -y, camera y along ego -z
    cam = FThetaCamera(width=100, height=50, cx=50, cy=25, fw_poly=(0, 40, 0, 0, 0), bw_poly=(0, 1 / 40, 0, 0, 0))
    assert np.allclose(cam.rotation_rig_from_camera, camera_rotation(0.0, 0.0), atol=1e-12)


def test_equidistant_matches_opencv_fisheye() -> None:
    f = 250.0
    cam = _camera((0.0, f, 0.0, 0.0, 0.0), (0.0, 1 / f, 0.0, 0.0, 0.0))
    pts = _points()
    px, valid = cam.project(pts)
    assert 50 < valid.sum() < len(pts)
    # independent reference: OpenCV's fisheye model with k = 0 is r = f * theta
    r_cam_from_ego = cam.rotation_rig_from_camera.T
    rvec, _ = cv2.Rodrigues(r_cam_from_ego)
    tvec = -r_cam_from_ego @ cam.centre_ego
    k = np.array([[f, 0, cam.cx], [0, f, cam.cy], [0, 0, 1]], dtype=np.float64)
    ref, _ = cv2.fisheye.projectPoints(pts[valid][None].astype(np.float64), rvec, tvec, k, np.zeros(4))
    assert np.abs(px[valid] - ref[0]).max() < 1e-6
    assert np.isnan(px[~valid]).all()


def test_near_plane_and_axis() -> None:
    cam = _camera((0.0, 200.0, 0.0, 0.0, 0.0), (0.0, 1 / 200.0, 0.0, 0.0, 0.0), yaw=0.0, pitch=0.0,
                  t=(0.0, 0.0, 1.0))
    pts = np.array([[10.0, 0.0, 1.0], [0.4, 0.0, 1.0], [0.5, 0.0, 1.0], [-3.0, 0.0, 1.0], [np.nan, 0.0, 0.0]])
    px, valid = cam.project(pts)
    assert valid.tolist() == [True, False, True, False, False]
    assert np.allclose(px[0], [cam.cx, cam.cy])
    assert np.isnan(px[1]).all() and np.isnan(px[3]).all()
    # a point 45 degrees to the left lands f * pi/4 to the left of the principal point
    px2, _ = cam.project(np.array([[5.0, 5.0, 1.0]]))
    assert np.allclose(px2[0], [cam.cx - 200 * math.pi / 4, cam.cy], atol=1e-9)


@pytest.mark.parametrize("fw", [(0.0, 250.0, 0.0, 0.0, 0.0), (0.0, 330.0, 0.0, -14.0, 1.5)])
def test_backward_poly_round_trips(fw) -> None:
    bw = fit_backward_poly(fw, max_angle_rad=1.2)
    cam = _camera(fw, bw)
    rng = np.random.default_rng(1)
    pix = np.stack([rng.uniform(0, cam.width, 300), rng.uniform(0, cam.height, 300)], 1)
    rays = cam.pixels_to_rays(pix)
    assert np.allclose(np.linalg.norm(rays, axis=1), 1.0)
    # pixel -> ray (camera frame) -> ego point 7 m deep along the ray -> project -> same pixel
    pts_ego = cam.centre_ego + (7.0 / rays[:, 2:]) * (rays @ cam.rotation_rig_from_camera.T)
    back, valid = cam.project(pts_ego)
    assert valid.all()
    assert np.abs(back - pix).max() < (1e-6 if fw[3] == 0 else 0.05)
    assert np.allclose(cam.pixel_rays_ego(pix[:, 0], pix[:, 1]), rays @ cam.rotation_rig_from_camera.T)


def test_pixel_to_ground_inverts_projection() -> None:
    fw = (0.0, 260.0, 0.0, -14.0, 1.5)
    cam = _camera(fw, fit_backward_poly(fw, 1.2), yaw=0.0, pitch=0.1)
    ground = np.array([[8.0, -1.5, 0.0], [20.0, 3.0, 0.0], [5.0, 0.0, 0.0]])
    px, valid = cam.project(ground)
    assert valid.all()
    back, ok = cam.pixel_to_ground(px[:, 0], px[:, 1])
    assert ok.all()
    assert np.abs(back - ground).max() < 0.05
    _, ok_sky = cam.pixel_to_ground(np.array([cam.cx]), np.array([0.0]))
    assert not ok_sky[0]


def test_from_intrinsics_row_and_dict() -> None:
    intr = pd.Series({"width": 1920, "height": 1080, "cx": 960.5, "cy": 540.2,
                      **{f"fw_poly_{i}": c for i, c in enumerate((0.0, 1000.0, 0.0, -40.0, 0.0))},
                      **{f"bw_poly_{i}": c for i, c in enumerate((0.0, 1e-3, 0.0, 4e-11, 0.0))}})
    q = matrix_to_quat_xyzw(camera_rotation(0.0, 0.0))
    extr = pd.Series({"qx": q[0], "qy": q[1], "qz": q[2], "qw": q[3], "x": 1.7, "y": 0.0, "z": 1.4})
    cam = FThetaCamera.from_intrinsics_row(intr, extr, name="camera_front_wide_120fov")
    assert (cam.width, cam.height) == (1920, 1080)
    assert cam.fw_poly[1] == 1000.0 and cam.translation == (1.7, 0.0, 1.4)
    px, _ = cam.project(np.array([[30.0, 0.0, 1.4]]))
    assert np.allclose(px[0], [960.5, 540.2])
    assert FThetaCamera.from_dict(cam.to_dict()) == cam
    with pytest.raises(InputError, match=r"missing \['bw_poly_4'\]"):
        FThetaCamera.from_intrinsics_row(intr.drop("bw_poly_4"), extr)
    with pytest.raises(InputError, match="NaN"):
        FThetaCamera.from_intrinsics_row(intr, extr.replace(1.7, np.nan))


def test_resized_scales_pixels() -> None:
    cam = _camera((0.0, 250.0, 0.0, 0.0, 0.0), (0.0, 1 / 250.0, 0.0, 0.0, 0.0))
    small = cam.rescaled(320, 240)
    pts = _points(50)
    a, va = cam.project(pts)
    b, vb = small.project(pts)
    assert (va == vb).all()
    assert np.allclose(b[va], a[va] * [0.5, 240 / 360])
    assert np.allclose(small.pixels_to_rays(b[va]), cam.pixels_to_rays(a[va]))
    assert small.rescaled(640, 360) == cam


def test_bad_inputs() -> None:
    cam = _camera((0.0, 250.0, 0.0, 0.0, 0.0), (0.0, 1 / 250.0, 0.0, 0.0, 0.0))
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        cam.project(np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        cam.pixels_to_rays(np.zeros(3))
    with pytest.raises(ConfigError, match="fw_poly"):
        FThetaCamera(width=10, height=10, cx=5, cy=5, fw_poly=(0.0, 1.0), bw_poly=(0.0, 1.0, 0, 0, 0))
    with pytest.raises(ConfigError, match="unit quaternion"):
        FThetaCamera(width=10, height=10, cx=5, cy=5, fw_poly=(0, 1.0, 0, 0, 0), bw_poly=(0, 1.0, 0, 0, 0),
                     quat_xyzw=(0.0, 0.0, 0.0, 2.0))


def test_folding_polynomial_limits_angle() -> None:
    # r = 100 θ - 60 θ³ stops increasing at θ = sqrt(100 / 180) ≈ 0.745 rad
    cam = _camera((0.0, 100.0, 0.0, -60.0, 0.0), (0.0, 0.01, 0.0, 0.0, 0.0), yaw=0.0, pitch=0.0, t=(0, 0, 0))
    assert cam.max_angle_rad == pytest.approx(math.sqrt(100 / 180), abs=2e-3)
    _, valid = cam.project(np.array([[5.0, 1.0, 0.0], [5.0, 5.0, 0.0]]))  # 0.2 rad and 0.785 rad
    assert valid.tolist() == [True, False]
