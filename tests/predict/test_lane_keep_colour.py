"""``lane_keep`` reacts to geometry, not colour: a colour-only repaint leaves its boundaries where they were, a
removal moves them and the path.

The path is asserted too (issue 13: a colour-only edit moves it at most 0.2 m ADE); a removal of the same line
moves it more than 0.5 m. Figures on every shared clip: BENCHMARKS.md, issue 13.

The evaluate stage predicts on the original and the edited clip with the same camera (the painter's estimate on
the original clip: an edit does not move the camera); these tests do the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.metrics import prediction_shift
from lanepipe.predict import lane_keep as lk
from lanepipe.segment.grid import GridSegmenter
from lanepipe.testing.recolour import recolour_paint
from lanepipe.types import CameraView, Clip, EgoState, Prediction, PredictorInput


def _straight_history(speed: float) -> EgoState:
    xyz = np.zeros((16, 3), np.float32)
    xyz[:, 0] = speed * 0.1 * (np.arange(16) - 15)
    return EgoState(xyz=xyz, rot=np.tile(np.eye(3, dtype=np.float32), (16, 1, 1)), speed=speed)


def _predict(clip: Clip, frames: np.ndarray, camera: PinholeCamera) -> Prediction:
    view = CameraView(name="front", frames=frames, timestamps=clip.timestamps - clip.timestamps[-1], camera=camera)
    inp = PredictorInput(clip=clip.name, cameras={"front": view}, ego=_straight_history(25.0))
    return lk.LaneKeepPredictor().predict(inp)


@pytest.fixture(scope="module")
def clip(data_dir: Path) -> Clip:
    """Camera B, 4 s at 8 fps: solid yellow left line on asphalt, then light concrete; dashed white right."""
    return decode(str(data_dir / "udacity_advanced_lane_lines" / "project_video_subclip_4s.mp4"))


def test_colour_only_repaint_keeps_the_path_a_removal_moves_it(clip: Clip) -> None:
    removed = ProceduralPainter().paint(clip, GridSegmenter().segment(clip), parse_instruction("none@left"))
    camera = PinholeCamera.from_dict(removed.diagnostics["camera"])
    base = _predict(clip, clip.frames, camera)
    assert base.meta["left"] is not None and base.meta["right"] is not None
    white = recolour_paint(clip.frames, "white")  # the solid yellow left line, now white: nothing moved
    yellow_before = (clip.frames[..., :2].mean(axis=-1) - clip.frames[..., 2] > 60).sum()
    yellow_after = (white[..., :2].mean(axis=-1) - white[..., 2] > 60).sum()
    assert yellow_after < 0.2 * yellow_before  # the line was recoloured
    recoloured = _predict(clip, white, camera)
    assert recoloured.meta["left"] is not None
    for side in ("left", "right"):  # the boundaries stay where they were, whatever their colour
        for key, tol in (("offset_m", 0.1), ("heading", 0.01)):
            assert abs(recoloured.meta[side][key] - base.meta[side][key]) < tol, (side, key)
    assert prediction_shift(base.trajectories, recoloured.trajectories)["ade"] <= 0.2
    gone = _predict(clip, removed.frames, camera)
    # the removal moves the left boundary (what is left there is no lane line) and the path
    assert gone.meta["left"] is None or abs(gone.meta["left"]["offset_m"] - base.meta["left"]["offset_m"]) > 0.25
    assert prediction_shift(base.trajectories, gone.trajectories)["ade"] > 0.5


def test_paint_beside_a_line_does_not_move_it() -> None:
    """A brighter patch beside the line's near windows (a light shoulder next to a recoloured stroke) leaves the
    boundary where the stroke is; a double line's two strokes 0.2 m apart are read at their middle."""
    cfg = lk.LaneKeepConfig()
    xs, ys = lk.bev_grid(4.5, cfg)
    line = np.zeros((len(xs), len(ys)), np.float32)
    line[np.abs(ys[None, :] - 1.8 - 0.002 * xs[:, None]) <= 0.075] = 1.0
    clutter = line.copy()
    # 0.45 m beside the stroke, within the ±0.45 m tracking window (a plain centroid moved the line 0.18 m)
    clutter[(xs < 10.5)[:, None] & (np.abs(ys - 1.35) <= 0.08)[None, :]] = 0.6
    clean = lk.track_boundary(line, xs, ys, 1.8, cfg)
    moved = lk.track_boundary(clutter, xs, ys, 1.8, cfg)
    assert clean is not None and moved is not None
    assert clean.coefs[0] == pytest.approx(1.8, abs=0.03)
    assert moved.coefs[0] == pytest.approx(clean.coefs[0], abs=0.01)
    assert moved.coefs[1] == pytest.approx(clean.coefs[1], abs=0.001)
    double = np.zeros_like(line)
    for y0 in (1.7, 1.9):
        double[:, np.abs(ys - y0) <= 0.06] = 1.0
    both = lk.track_boundary(double, xs, ys, 1.8, cfg)
    assert both is not None and both.coefs[0] == pytest.approx(1.8, abs=0.03)
