"""comma2k19 poses (commaai/comma2k19) as an :class:`~lanepipe.geometry.ego.EgoMotion`.

A segment's ``global_pose/`` folder holds raw ``numpy.save`` files without extension:

* ``frame_times`` ``(N,) float64``: seconds since device boot, 20 Hz;
* ``frame_positions`` ``(N, 3) float64``: camera position in ECEF metres;
* ``frame_orientations`` ``(N, 4) float64``: Hamilton quaternion ``[w, x, y, z]`` (scalar first).

The quaternion's rotation matrix ``R(q)`` maps device-frame vectors (``[forward, right, down]``) to ECEF:
checked on the example segment, ``R(q)^T v_ecef`` is about ``[14.7, 0.2, -0.9]`` m/s for a car driving 14.7 m/s
(``R(q) v_ecef`` is not aligned with the velocity at all). So ``R(q)`` is world-from-device, i.e. the data
README's "ECEF → device" describes the inverse of this matrix. The ego frame here is x forward, y left, z up:
``R_world_from_ego = R(q) · diag(1, -1, -1)``. The world frame stays ECEF (its z is not "up").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.geometry.ego import EgoMotion
from lanepipe.geometry.quaternion import quat_to_matrix

F64 = npt.NDArray[np.float64]
#: Device frame ``[forward, right, down]`` → ego frame ``[forward, left, up]``.
DEVICE_TO_EGO = np.diag([1.0, -1.0, -1.0])


def _load(path: Path, shape_tail: tuple[int, ...]) -> F64:
    if not path.is_file():
        raise InputError(str(path), "a numpy.save file (comma2k19 global_pose)", "no such file",
                         "point at a segment folder holding global_pose/")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InputError(str(path), "a numpy.save file", f"unreadable ({e})") from None
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise InputError(str(path), f"an array of shape (N, {', '.join(map(str, shape_tail))})".replace(", )", ")"),
                         f"shape {arr.shape}")
    return arr


def load_comma2k19_pose(segment_dir: str | Path) -> EgoMotion:
    """Read a comma2k19 segment's ``global_pose`` as an ego-motion timeline.

    Args:
        segment_dir: the segment folder (holding ``global_pose/``) or the ``global_pose`` folder itself.

    Returns:
        :class:`EgoMotion` with ``timestamps (N,)`` s since boot, ``xyz (N, 3)`` ECEF metres and
        ``rot (N, 3, 3)`` world(ECEF)-from-ego, ego = x forward, y left, z up (origin at the camera).

    Raises:
        InputError: missing or malformed files, arrays of different lengths, non-finite values.
    """
    root = Path(segment_dir)
    gp = root if root.name == "global_pose" else root / "global_pose"
    t = _load(gp / "frame_times", ())
    xyz = _load(gp / "frame_positions", (3,))
    q = _load(gp / "frame_orientations", (4,))
    if not len(t) == len(xyz) == len(q):
        raise InputError(str(gp), "frame_times, frame_positions and frame_orientations of the same length",
                         f"{len(t)}, {len(xyz)} and {len(q)}")
    norms = np.linalg.norm(q, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1.0) > 1e-3):
        raise InputError(str(gp / "frame_orientations"), "unit quaternions [w, x, y, z]",
                         f"norms from {np.nanmin(norms):.4f} to {np.nanmax(norms):.4f}")
    rot = quat_to_matrix(q, "wxyz") @ DEVICE_TO_EGO
    return EgoMotion(timestamps=t, xyz=xyz, rot=rot, source=str(gp))
