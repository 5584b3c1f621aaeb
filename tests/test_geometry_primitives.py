"""Shared geometry primitives against independent references: quaternions (both orders), camera rescale,
vanishing points (consensus on paint and edges, vote) and pose from a vanishing point."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.geometry.quaternion import matrix_to_quat, quat_to_matrix
from lanepipe.geometry.vanishing import (
    PAINT_CONSENSUS,
    consensus_vanishing_point,
    edge_vanishing_point,
    longest_per_side,
    paint_vanishing_point,
    pose_from_vanishing_point,
    pose_from_vanishing_points,
    smooth_vanishing_points,
    voted_vanishing_point,
)


# ---------------------------------------------------------------------------------------------- quaternions
def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _hamilton(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product of two scalar-first quaternions (independent of the library)."""
    w1, x1, y1, z1 = p
    w2, x2, y2, z2 = q
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def test_quaternion_known_rotations_both_orders() -> None:
    a, b = 0.7, -1.1
    qz_wxyz = np.array([math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)])
    qx_wxyz = np.array([math.cos(b / 2), math.sin(b / 2), 0.0, 0.0])
    assert np.allclose(quat_to_matrix(qz_wxyz, "wxyz"), _rz(a), atol=1e-12)
    assert np.allclose(quat_to_matrix(qz_wxyz[[1, 2, 3, 0]], "xyzw"), _rz(a), atol=1e-12)
    assert np.allclose(quat_to_matrix(qx_wxyz, "wxyz"), _rx(b), atol=1e-12)
    # composition: R(p q) = R(p) R(q)
    pq = _hamilton(qz_wxyz, qx_wxyz)
    assert np.allclose(quat_to_matrix(pq, "wxyz"), _rz(a) @ _rx(b), atol=1e-12)
    # batches keep their leading shape; a non-unit quaternion is normalised
    batch = np.stack([qz_wxyz, 3.0 * qx_wxyz])
    out = quat_to_matrix(batch, "wxyz")
    assert out.shape == (2, 3, 3)
    assert np.allclose(out[1], _rx(b), atol=1e-12)


@pytest.mark.parametrize("order", ["xyzw", "wxyz"])
def test_quaternion_round_trip(order: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w_index = 3 if order == "xyzw" else 0
        q = q if q[w_index] >= 0 else -q
        r = quat_to_matrix(q, order)  # type: ignore[arg-type]
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(r), 1.0)
        assert np.allclose(matrix_to_quat(r, order), q, atol=1e-12)  # type: ignore[arg-type]


def test_quaternion_bad_input() -> None:
    with pytest.raises(InputError, match="order"):
        quat_to_matrix([0.0, 0.0, 0.0, 1.0], "wzyx")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"\(\.\.\., 4\)"):
        quat_to_matrix(np.zeros((2, 3)), "xyzw")
    with pytest.raises(InputError, match=r"\(3, 3\)"):
        matrix_to_quat(np.eye(4), "xyzw")


# ---------------------------------------------------------------------------------------------- rescale
@pytest.mark.parametrize(("w", "h"), [(480, 270), (1920, 1080), (640, 360)])
def test_pinhole_rescaled_matches_resizing_the_image(w: int, h: int) -> None:
    cam = PinholeCamera(width=960, height=540, fx=700.0, fy=690.0, cx=481.3, cy=265.2, mount_height_m=1.4,
                        pitch_rad=0.04, yaw_rad=-0.02)
    small = cam.rescaled(w, h)
    assert (small.width, small.height) == (w, h)
    assert (small.mount_height_m, small.pitch_rad, small.yaw_rad) == (1.4, 0.04, -0.02)
    pts = np.stack([np.linspace(4, 80, 40), np.linspace(-6, 6, 40), np.zeros(40)], axis=1)
    full, ok = cam.project(pts)
    sx, sy = w / 960, h / 540
    # a pixel centre u of the full image lands at (u + 0.5) s - 0.5 of the resized image
    expect = np.stack([(full[:, 0] + 0.5) * sx - 0.5, (full[:, 1] + 0.5) * sy - 0.5], axis=1)
    got, ok2 = small.project(pts)
    assert ok.all() and ok2.all()
    assert np.allclose(got, expect, atol=1e-9)
    back = small.rescaled(960, 540)
    assert np.allclose([back.fx, back.fy, back.cx, back.cy], [cam.fx, cam.fy, cam.cx, cam.cy], atol=1e-9)


def test_ftheta_rescaled_matches_resizing_the_image() -> None:
    cam = FThetaCamera(width=640, height=360, cx=321.3, cy=178.6, fw_poly=(0.0, 300.0, 0.0, -10.0, 0.0),
                       bw_poly=(0.0, 1 / 300.0, 0.0, 0.0, 0.0))
    pts = np.array([[10.0, 1.0, 0.5], [20.0, -3.0, 1.0], [6.0, 0.5, -0.3]])
    full, ok = cam.project(pts)
    small = cam.rescaled(320, 240)
    got, ok2 = small.project(pts)
    assert ok.all() and ok2.all()
    assert np.allclose(got[:, 0], full[:, 0] * 320 / 640, atol=1e-6)
    assert np.allclose(got[:, 1], full[:, 1] * 240 / 360, atol=1e-6)


# ---------------------------------------------------------------------------------------------- vanishing point
def _lines_to(vp: tuple[float, float], bottoms: list[float], h: int) -> np.ndarray:
    """Segments from ``(x, h - 1)`` to 40 % of the way up to ``vp``."""
    out = []
    for x in bottoms:
        x2 = x + 0.6 * (vp[0] - x)
        y2 = (h - 1) + 0.6 * (vp[1] - (h - 1))
        out.append([x, h - 1, x2, y2])
    return np.asarray(out, dtype=np.float64)


def test_consensus_of_exact_lines_is_their_intersection() -> None:
    vp = (203.7, 81.2)
    segs = _lines_to(vp, [20.0, 90.0, 300.0, 390.0], 240)
    found = consensus_vanishing_point(segs, (240, 400), PAINT_CONSENSUS)
    assert found is not None
    assert found[0] == pytest.approx(vp[0], abs=1e-6) and found[1] == pytest.approx(vp[1], abs=1e-6)
    assert found[2] == 4
    # lines all leaning one way: no vanishing point
    assert consensus_vanishing_point(_lines_to(vp, [20.0, 90.0], 240), (240, 400), PAINT_CONSENSUS) is None


def test_paint_vanishing_point_of_two_drawn_lines() -> None:
    h, w = 240, 400
    vp = (212.0, 90.0)
    img = np.zeros((h, w), np.uint8)
    for x0 in (40.0, 380.0):
        x1, y1 = x0 + 0.8 * (vp[0] - x0), (h - 1) + 0.8 * (vp[1] - (h - 1))
        cv2.line(img, (round(x0), h - 1), (round(x1), round(y1)), 255, 2)
    found = paint_vanishing_point(img, int(0.3 * h))
    assert found is not None
    # Hough angles are quantised to 1 degree: about 3 px at 170 px from the line ends
    assert math.hypot(found[0] - vp[0], found[1] - vp[1]) < 4.0
    assert paint_vanishing_point(np.zeros((h, w), np.uint8), 10) is None


def test_edge_vanishing_point_of_a_road_trapezoid() -> None:
    h, w = 240, 320
    vp = (150.0, 80.0)
    img = np.full((h, w), 60, np.uint8)
    top = 0.7
    poly = np.array([[20, h - 1], [20 + top * (vp[0] - 20), (h - 1) + top * (vp[1] - h + 1)],
                     [300 + top * (vp[0] - 300), (h - 1) + top * (vp[1] - h + 1)], [300, h - 1]])
    cv2.fillPoly(img, [poly.round().astype(np.int32)], 160)
    found = edge_vanishing_point(img, np.ones((h, w), bool))
    assert found is not None
    assert math.hypot(found[0] - vp[0], found[1] - vp[1]) < 3.0


def test_voted_vanishing_point_of_converging_segments() -> None:
    h, w = 360, 640
    vp = (330.0, 150.0)
    segs = _lines_to(vp, [60.0, 160.0, 520.0, 600.0], h).astype(np.float32)
    seg_p = longest_per_side(segs, 6)
    assert len(seg_p) == 4
    found = voted_vanishing_point(np.zeros((0, 4), np.float32), seg_p, (h, w), 16)
    assert found is not None
    (u, v), score = found
    assert math.hypot(u - vp[0], v - vp[1]) <= 1.5 and 0.5 < score <= 1.0
    # one side only: no vote
    assert voted_vanishing_point(np.zeros((0, 4), np.float32), seg_p[:2], (h, w), 16) is None


def test_longest_per_side_drops_duplicates() -> None:
    seg = np.array([[10, 200, 100, 20]], np.float32)
    dup = seg + np.array([[1, 0, 1, 0]], np.float32)  # the same line, shifted 1 px
    out = longest_per_side(np.concatenate([seg, dup]), 5)
    assert len(out) == 1


def test_smooth_vanishing_points() -> None:
    pts: list[tuple[float, float] | None] = [(10.0, 5.0), None, (14.0, 7.0), (100.0, 90.0), None, None, None]
    out = smooth_vanishing_points(pts, 1)
    assert out[0] == (10.0, 5.0)  # frames 0..1: only frame 0 is valid
    assert out[1] == (12.0, 6.0)  # median of frames 0 and 2
    assert out[2] == (57.0, 48.5)  # frames 2 and 3
    assert out[5] == (100.0, 90.0)  # nearest valid (frame 3) fills a gap with no neighbours
    assert smooth_vanishing_points([None, None], 2) == [None, None]


@pytest.mark.parametrize(("pitch", "yaw"), [(0.05, 0.0), (-0.03, 0.08), (0.12, -0.1)])
def test_pose_from_vanishing_point_inverts_projection(pitch: float, yaw: float) -> None:
    cam = PinholeCamera(width=960, height=540, fx=800.0, fy=780.0, cx=470.0, cy=275.0, mount_height_m=1.5,
                        pitch_rad=pitch, yaw_rad=yaw)
    far, ok = cam.project(np.array([[1e7, 0.0, 1.5]]))  # a point far along the ego x axis at camera height
    assert ok[0]
    level = PinholeCamera(width=960, height=540, fx=800.0, fy=780.0, cx=470.0, cy=275.0, mount_height_m=1.5,
                          pitch_rad=0.0)
    p, y = pose_from_vanishing_point(level, float(far[0, 0]), float(far[0, 1]))
    assert p == pytest.approx(pitch, abs=1e-6) and y == pytest.approx(yaw, abs=1e-6)


def test_pose_from_vanishing_points_gates() -> None:
    cam = PinholeCamera.from_fov(640, 360, 60.0)
    assert pose_from_vanishing_points(cam, [], 1).source == "pitch prior (no vanishing point)"
    assert pose_from_vanishing_points(cam, [(320.0, 170.0)], 2).pitch_rad is None
    far = pose_from_vanishing_points(cam, [(320.0, -400.0)], 1)
    assert far.source == "pitch prior (implausible vanishing point)" and far.vp == (320.0, -400.0)
    ok = pose_from_vanishing_points(cam, [(319.5, 150.0), (330.0, 160.0), (300.0, 140.0)], 2)
    assert ok.source == "vanishing point" and ok.vp == (319.5, 150.0) and ok.frames == 3
    assert ok.pitch_rad == pytest.approx(math.atan((cam.cy - 150.0) / cam.fy))
