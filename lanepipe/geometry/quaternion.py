"""Unit quaternions ↔ rotation matrices, in either component order.

Two orders meet in lanepipe's data: scalar-last ``(x, y, z, w)`` (scipy, PhysicalAI-AV calibration and
ego-motion tables) and scalar-first ``(w, x, y, z)`` (Hamilton order of comma2k19's ``frame_orientations``).
Both name the same rotation: for a unit quaternion with vector part ``(x, y, z)`` and scalar ``w``,

    R = [[1 - 2(y² + z²), 2(xy - zw),     2(xz + yw)],
         [2(xy + zw),     1 - 2(x² + z²), 2(yz - xw)],
         [2(xz - yw),     2(yz + xw),     1 - 2(x² + y²)]]

``R`` maps vectors of the rotated frame into the reference frame (``p_ref = R @ p``). All functions are pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

F64 = npt.NDArray[np.float64]
QuatOrder = Literal["xyzw", "wxyz"]
#: Index of the components ``(x, y, z, w)`` in each order.
_XYZW_INDEX: dict[str, list[int]] = {"xyzw": [0, 1, 2, 3], "wxyz": [1, 2, 3, 0]}


def _order(order: str) -> list[int]:
    if order not in _XYZW_INDEX:
        raise InputError("quaternion order", "'xyzw' (scalar last) or 'wxyz' (scalar first)", repr(order))
    return _XYZW_INDEX[order]


def quat_to_matrix(q: Sequence[float] | F64, order: QuatOrder) -> F64:
    """Quaternions → rotation matrices (normalised first).

    Shape:
        q ``(..., 4)`` in ``order`` → ``(..., 3, 3) float64``.
    """
    arr = np.asarray(q, dtype=np.float64)
    if arr.shape[-1:] != (4,):
        raise InputError("quaternion", "an array of shape (..., 4)", f"shape {arr.shape}")
    idx = _order(order)
    if idx != [0, 1, 2, 3]:
        arr = arr[..., idx]
    # one quaternion: the whole-vector norm (as the f-theta model always did); a batch: row norms
    arr = arr / (np.linalg.norm(arr) if arr.ndim == 1 else np.linalg.norm(arr, axis=-1, keepdims=True))
    x, y, z, w = arr[..., 0], arr[..., 1], arr[..., 2], arr[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(r: F64, order: QuatOrder) -> F64:
    """One rotation matrix ``(3, 3)`` → unit quaternion ``(4,)`` in ``order``, with ``w >= 0`` (Shepperd's method)."""
    m = np.asarray(r, dtype=np.float64)
    if m.shape != (3, 3):
        raise InputError("rotation matrix", "shape (3, 3)", f"shape {m.shape}")
    tr = float(np.trace(m))
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    out = np.asarray(q, dtype=np.float64)
    out /= np.linalg.norm(out)
    out = out if out[3] >= 0 else -out
    if order == "xyzw":
        return out
    return out[np.argsort(_order(order))]


def quat_xyzw_to_matrix(q: Sequence[float] | F64) -> F64:
    """:func:`quat_to_matrix` for scalar-last quaternions ``(..., 4)`` (scipy order)."""
    return quat_to_matrix(q, "xyzw")


def matrix_to_quat_xyzw(r: F64) -> F64:
    """:func:`matrix_to_quat` giving a scalar-last quaternion ``(4,)``."""
    return matrix_to_quat(r, "xyzw")
