"""Predictor inputs and ground truth cut from an ego-motion timeline.

Both helpers express poses in the ego frame at ``t0`` (x forward, y left, z up, metres), the frame of
:mod:`lanepipe.predict.base`: history at ``t0 - 1.5 … t0`` s and future at ``t0 + 0.1 … t0 + 6.4`` s, 10 Hz.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.ego import EgoMotion
from lanepipe.types import DT, FUTURE_STEPS, HISTORY_STEPS, EgoState

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def history_times(t0: float) -> F64:
    """``(16,) float64`` times ``t0 - 1.5, …, t0`` (s) of :class:`EgoState`'s rows."""
    out: F64 = t0 + DT * (np.arange(HISTORY_STEPS, dtype=np.float64) - (HISTORY_STEPS - 1))
    return out


def future_times(t0: float) -> F64:
    """``(64,) float64`` times ``t0 + 0.1, …, t0 + 6.4`` (s) of the predicted waypoints."""
    out: F64 = t0 + DT * np.arange(1, FUTURE_STEPS + 1, dtype=np.float64)
    return out


def _check_covers(ego: EgoMotion, t: F64, what: str) -> None:
    if not ego.covers(t):
        raise InputError(ego.source, f"ego-motion covering {t.min():.3f}…{t.max():.3f} s for the {what}",
                         f"poses for {ego.timestamps[0]:.3f}…{ego.timestamps[-1]:.3f} s",
                         "pick a t0 at least 1.5 s after the start and 6.4 s before the end")


def ego_state_at(ego: EgoMotion, t0: float) -> EgoState:
    """The 16-step ego history at ``t0`` for a predictor.

    Args:
        ego: pose timeline (any world frame, rot world-from-ego).
        t0: the prediction time, in ``ego.timestamps``' clock (s).

    Returns:
        :class:`EgoState`: ``xyz (16, 3) float32`` and ``rot (16, 3, 3) float32`` in the t0 ego frame at
        ``t0 - 1.5 … t0`` (last row the origin and identity), and the speed at ``t0`` (m/s, central difference
        over 0.1 s, one-sided at the timeline's end).

    Raises:
        InputError: the timeline does not cover ``t0 - 1.5 … t0``.
    """
    t = history_times(t0)
    _check_covers(ego, t, "history")
    xyz, rot = ego.in_ego_frame(t0, t)
    return EgoState(xyz=xyz.astype(np.float32), rot=rot.astype(np.float32), speed=ego.speed(t0))


def future_at(ego: EgoMotion, t0: float) -> F32:
    """Ground-truth future ``(64, 3) float32``: ego positions at ``t0 + 0.1 … t0 + 6.4`` s in the t0 ego frame.

    Raises:
        InputError: the timeline does not cover ``t0 … t0 + 6.4``.
    """
    t = future_times(t0)
    _check_covers(ego, np.concatenate([[t0], t]), "6.4 s future")
    xyz, _ = ego.in_ego_frame(t0, t)
    return xyz.astype(np.float32)
