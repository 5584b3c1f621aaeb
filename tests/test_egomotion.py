from __future__ import annotations

import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.geometry.ego import EgoMotion
from lanepipe.geometry.quaternion import quat_xyzw_to_matrix


def _yaw_quat(yaw: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2), np.cos(yaw / 2)], -1)


def test_quaternion_matches_yaw_rotation() -> None:
    r = quat_xyzw_to_matrix(_yaw_quat(np.array([np.pi / 2])))[0]
    assert np.allclose(r @ [1, 0, 0], [0, 1, 0])


def test_circle_drive_in_ego_frame() -> None:
    # drive a circle of radius 50 m anticlockwise at 10 m/s: yaw = heading
    t = np.arange(0, 10, 0.01)
    w = 10 / 50
    yaw = w * t
    xyz = np.stack([50 * np.sin(yaw), 50 * (1 - np.cos(yaw)), np.zeros_like(t)], -1)
    ego = EgoMotion.from_quaternions(t, xyz, _yaw_quat(yaw))
    p, r = ego.in_ego_frame(5.0, np.array([5.0, 6.0]))
    assert np.allclose(p[0], 0, atol=1e-6)
    # one second later: chord of the circle, left turn → +y
    ang = w * 1.0
    assert np.allclose(p[1], [50 * np.sin(ang), 50 * (1 - np.cos(ang)), 0], atol=1e-3)
    assert np.allclose(r[1], quat_xyzw_to_matrix(_yaw_quat(np.array([ang])))[0], atol=1e-4)
    assert ego.speed(5.0) == pytest.approx(10.0, rel=1e-3)


def test_bad_egomotion() -> None:
    t = np.array([0.0, 0.1, 0.2])
    xyz = np.zeros((3, 3))
    q = _yaw_quat(np.zeros(3))
    with pytest.raises(InputError, match="NaN"):
        EgoMotion.from_quaternions(t, np.where(np.eye(3) > 0, np.nan, 0), q)
    with pytest.raises(InputError, match="increasing"):
        EgoMotion.from_quaternions(np.array([0.0, 0.0, 0.1]), xyz, q)
    ego = EgoMotion.from_quaternions(t, xyz, q)
    with pytest.raises(InputError, match="covering"):
        ego.interpolate(np.array([-1.5, 0.0]))
