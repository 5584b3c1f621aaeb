"""Trajectory metrics (minADE, minFDE, prediction shift) against independent references and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.metrics import min_ade, min_fde, prediction_shift, trajectory_metrics


def _ref_min_ade_fde(pred: np.ndarray, gt: np.ndarray, steps: int) -> tuple[float, float]:
    """Plain loops over samples and steps, math.hypot per waypoint (a different code path from the library)."""
    best_ade, best_fde = math.inf, math.inf
    for k in range(pred.shape[0]):
        total = 0.0
        for i in range(steps):
            total += math.hypot(float(pred[k, i, 0]) - float(gt[i, 0]), float(pred[k, i, 1]) - float(gt[i, 1]))
        best_ade = min(best_ade, total / steps)
        last = steps - 1
        best_fde = min(best_fde, math.hypot(float(pred[k, last, 0]) - float(gt[last, 0]),
                                            float(pred[k, last, 1]) - float(gt[last, 1])))
    return best_ade, best_fde


@pytest.fixture
def random_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    t = 0.1 * np.arange(1, 65)
    gt = np.stack([15.0 * t, 0.02 * t**2, 0.01 * t], axis=1).astype(np.float32)
    pred = (gt[None] + rng.normal(0, 0.6, (6, 64, 3)).cumsum(axis=1) * 0.2).astype(np.float32)
    return pred, gt


@pytest.mark.parametrize(("horizon", "steps"), [(0.5, 5), (1.0, 10), (3.0, 30), (5.0, 50), (None, 64)])
def test_matches_loop_reference(random_case: tuple[np.ndarray, np.ndarray], horizon: float | None,
                                steps: int) -> None:
    pred, gt = random_case
    ref_ade, ref_fde = _ref_min_ade_fde(pred, gt, steps)
    assert min_ade(pred, gt, horizon) == pytest.approx(ref_ade, rel=1e-9, abs=1e-9)
    assert min_fde(pred, gt, horizon) == pytest.approx(ref_fde, rel=1e-9, abs=1e-9)


def test_matches_av2(random_case: tuple[np.ndarray, np.ndarray]) -> None:
    metrics = pytest.importorskip("av2.datasets.motion_forecasting.eval.metrics")
    pred, gt = random_case
    for steps, horizon in ((10, 1.0), (64, None)):
        p = pred[:, :steps, :2].astype(np.float64)
        g = gt[:steps, :2].astype(np.float64)
        assert min_ade(pred, gt, horizon) == pytest.approx(float(metrics.compute_ade(p, g).min()), rel=1e-9)
        assert min_fde(pred, gt, horizon) == pytest.approx(float(metrics.compute_fde(p, g).min()), rel=1e-9)


def test_known_answers() -> None:
    gt = np.zeros((64, 3))
    gt[:, 0] = 1.5 * np.arange(1, 65)
    off = gt.copy()
    off[:, :2] += (3.0, 4.0)  # 5 m everywhere
    assert min_ade(off[None], gt) == pytest.approx(5.0)
    assert min_fde(off[None], gt) == pytest.approx(5.0)
    # two samples: the exact one wins
    assert min_ade(np.stack([off, gt]), gt) == 0.0
    # error growing 0.1 m per step to the left: ADE over 1 s = mean(0.1 … 1.0) = 0.55, FDE at 1 s = 1.0
    ramp = gt.copy()
    ramp[:, 1] += 0.1 * np.arange(1, 65)
    assert min_ade(ramp[None], gt, 1.0) == pytest.approx(0.55)
    assert min_fde(ramp[None], gt, 1.0) == pytest.approx(1.0)
    assert min_fde(ramp[None], gt, 0.5) == pytest.approx(0.5)
    assert min_fde(ramp[None], gt) == pytest.approx(6.4)
    # z is ignored
    up = gt.copy()
    up[:, 2] += 10.0
    assert min_ade(up[None], gt) == 0.0


def test_trajectory_metrics_keys() -> None:
    gt = np.zeros((64, 3))
    gt[:, 0] = np.arange(64)
    pred = gt[None] + np.array([0.0, 1.0, 0.0])
    m = trajectory_metrics(pred, gt)
    assert set(m) == {f"min_{k}_{h}s" for k in ("ade", "fde") for h in ("0.5", "1", "3", "5")} | {"min_ade", "min_fde"}
    assert all(v == pytest.approx(1.0) for v in m.values())


def test_prediction_shift_known_answers() -> None:
    a = np.zeros((1, 64, 3))
    a[0, :, 0] = 1.5 * np.arange(1, 65)
    left = a.copy()
    left[..., 1] += 0.5
    s = prediction_shift(a, left)
    assert s["ade"] == pytest.approx(0.5)
    assert s["fde"] == pytest.approx(0.5)
    assert s["max_lateral_offset"] == pytest.approx(0.5)
    assert s["lateral_offset_1s"] == pytest.approx(0.5)
    # drifting right, largest at the end
    right = a.copy()
    right[0, :, 1] -= 0.05 * np.arange(1, 65)
    s = prediction_shift(a, right)
    assert s["max_lateral_offset"] == pytest.approx(-3.2)
    assert s["max_lateral_offset_t_s"] == pytest.approx(6.4)
    # sample means: K = 3 around the same mean as K = 1
    three = np.concatenate([a + np.array([0, d, 0]) for d in (-1.0, 0.0, 1.0)])
    assert prediction_shift(a, three)["ade"] == pytest.approx(0.0, abs=1e-12)
    assert prediction_shift(a, a)["max_lateral_offset"] == 0.0


@pytest.mark.parametrize(
    ("pred", "gt", "horizon"),
    [
        (np.zeros((1, 64, 3)), np.zeros((32, 3)), None),  # step counts differ
        (np.zeros((64, 3)), np.zeros((64, 3)), None),  # no K axis
        (np.full((1, 64, 3), np.nan), np.zeros((64, 3)), None),  # NaN
        (np.zeros((1, 64, 3)), np.zeros((64, 3)), 0.55),  # not a multiple of 0.1 s
        (np.zeros((1, 64, 3)), np.zeros((64, 3)), 7.0),  # beyond 6.4 s
        (np.zeros((1, 64, 3)), np.zeros((64, 3)), 0.0),
    ],
)
def test_bad_input(pred: np.ndarray, gt: np.ndarray, horizon: float | None) -> None:
    with pytest.raises(InputError):
        min_ade(pred, gt, horizon)


def test_prediction_shift_bad_input() -> None:
    with pytest.raises(InputError):
        prediction_shift(np.zeros((1, 64, 3)), np.zeros((1, 32, 3)))
