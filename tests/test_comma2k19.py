"""comma2k19 poses as EgoMotion, and the history / future cut from them, checked against the real log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanepipe.datasets.comma2k19 import load_comma2k19_pose
from lanepipe.datasets.trajectory import ego_state_at, future_at
from lanepipe.errors import InputError
from lanepipe.geometry.ego import EgoMotion


@pytest.fixture(scope="module")
def seg(data_dir: Path) -> Path:
    return data_dir / "comma2k19_example_pose"


@pytest.fixture(scope="module")
def ego(seg: Path) -> EgoMotion:
    return load_comma2k19_pose(seg)


def _log(seg: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = seg / "processed_log" / name
    return np.load(d / "t"), np.load(d / "value")


def test_loads_the_segment(ego: EgoMotion, seg: Path) -> None:
    assert ego.timestamps.shape == (1200,)
    assert ego.rot.shape == (1200, 3, 3)
    assert np.allclose(np.einsum("nji,njk->nik", ego.rot, ego.rot), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(ego.rot), 1.0)
    length = float(np.linalg.norm(np.diff(ego.xyz, axis=0), axis=1).sum())
    assert length == pytest.approx(1012.0, abs=2.0)
    assert load_comma2k19_pose(seg / "global_pose").timestamps[0] == ego.timestamps[0]


def test_forward_axis_follows_velocity(ego: EgoMotion, seg: Path) -> None:
    """The convention check: ego x (forward) must point along the ECEF velocity, ego y (left) across it."""
    vel = np.load(seg / "global_pose" / "frame_velocities")
    speed = np.linalg.norm(vel, axis=1)
    moving = speed > 5.0
    unit = vel[moving] / speed[moving, None]
    fwd = np.einsum("nij,ni->nj", ego.rot[moving], unit)  # velocity in the ego frame, unit length
    assert np.min(fwd[:, 0]) > 0.98
    assert np.max(np.abs(fwd[:, 1])) < 0.1


def test_speed_matches_can(ego: EgoMotion, seg: Path) -> None:
    t_can, v_can = _log(seg, "CAN/speed")
    ts = np.arange(ego.timestamps[0] + 0.5, ego.timestamps[-1] - 0.5, 0.5)
    ours = np.array([ego.speed(t) for t in ts])
    can = np.interp(ts, t_can, v_can[:, 0])
    assert ours.min() > 8.0
    assert ours.max() < 20.5
    assert np.median(np.abs(ours - can)) < 0.3
    assert np.max(np.abs(ours - can)) < 0.6


def test_yaw_rate_matches_gyro(ego: EgoMotion, seg: Path) -> None:
    t_g, gyro = _log(seg, "IMU/gyro")
    ts = np.arange(ego.timestamps[0] + 1.0, ego.timestamps[-1] - 1.0, 0.5)
    ours = []
    for t in ts:
        _, r = ego.in_ego_frame(t - 0.25, np.array([t + 0.25]))
        ours.append(np.arctan2(r[0, 1, 0], r[0, 0, 0]) / 0.5)
    # gyro axes are [forward, right, down]: a left turn (+ yaw about z up) is a negative rate about "down"
    gyro_yaw = np.array([-gyro[(t_g >= t - 0.25) & (t_g <= t + 0.25), 2].mean() for t in ts])
    assert np.corrcoef(ours, gyro_yaw)[0, 1] > 0.95
    assert np.mean(np.abs(np.asarray(ours) - gyro_yaw)) < 0.002


def test_history_and_future(ego: EgoMotion) -> None:
    t0 = float(ego.timestamps[0]) + 30.0
    state = ego_state_at(ego, t0)
    assert state.xyz.dtype == np.float32 and state.rot.dtype == np.float32
    assert np.allclose(state.xyz[-1], 0.0, atol=1e-4)
    assert np.allclose(state.rot[-1], np.eye(3), atol=1e-5)
    assert 8.0 < state.speed < 20.5
    assert np.all(np.diff(state.xyz[:, 0]) > 0)  # driving forward into the origin
    assert state.xyz[0, 0] == pytest.approx(-1.5 * state.speed, rel=0.1)
    fut = future_at(ego, t0)
    assert fut.shape == (64, 3) and fut.dtype == np.float32
    assert np.all(np.diff(fut[:, 0]) > 0)
    path = np.vstack([np.zeros((1, 2)), fut[:, :2].astype(np.float64)])
    travelled = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
    assert fut[-1, 0] == pytest.approx(travelled, rel=0.02)  # nearly straight ahead
    assert np.max(np.abs(fut[:, 1])) < 0.05 * float(fut[-1, 0])  # small lateral drift


def test_bad_input(ego: EgoMotion, tmp_path: Path, seg: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_comma2k19_pose(tmp_path)
    with pytest.raises(InputError, match="history"):
        ego_state_at(ego, float(ego.timestamps[0]) + 1.0)
    with pytest.raises(InputError, match="future"):
        future_at(ego, float(ego.timestamps[-1]) - 6.0)
    bad = tmp_path / "global_pose"
    bad.mkdir()
    for name in ("frame_times", "frame_positions"):
        (bad / name).write_bytes((seg / "global_pose" / name).read_bytes())
    q = np.load(seg / "global_pose" / "frame_orientations") * 2.0
    with (bad / "frame_orientations").open("wb") as f:
        np.save(f, q)
    with pytest.raises(InputError, match="unit quaternions"):
        load_comma2k19_pose(tmp_path)
