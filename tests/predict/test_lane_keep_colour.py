"""``lane_keep`` reacts to geometry, not colour: a colour-only repaint barely moves it, a removal does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.metrics import prediction_shift
from lanepipe.predict import lane_keep as lk
from lanepipe.predict.lane_keep.boundaries import refine_vanishing_point, stroke_edges, thin_rows
from lanepipe.segment.grid import GridSegmenter
from lanepipe.testing.recolour import recolour_paint
from lanepipe.types import CameraView, Clip, EgoState, Prediction, PredictorInput


def _straight_history(speed: float) -> EgoState:
    xyz = np.zeros((16, 3), np.float32)
    xyz[:, 0] = speed * 0.1 * (np.arange(16) - 15)
    return EgoState(xyz=xyz, rot=np.tile(np.eye(3, dtype=np.float32), (16, 1, 1)), speed=speed)


def _predict(clip: Clip, frames: np.ndarray) -> Prediction:
    """The fallback camera (no calibration), as on footage without one, and a straight 25 m/s history."""
    view = CameraView(name="front", frames=frames, timestamps=clip.timestamps - clip.timestamps[-1], camera=None)
    inp = PredictorInput(clip=clip.name, cameras={"front": view}, ego=_straight_history(25.0))
    return lk.LaneKeepPredictor().predict(inp)


@pytest.fixture(scope="module")
def clip(data_dir: Path) -> Clip:
    """Camera B, 3 s at 8 fps: solid yellow left line on asphalt, then light concrete; dashed white right."""
    return decode(str(data_dir / "udacity_advanced_lane_lines" / "project_video_subclip_4s.mp4"), max_frames=24)


def test_colour_only_repaint_keeps_the_path_a_removal_moves_it(clip: Clip) -> None:
    base = _predict(clip, clip.frames)
    assert base.meta["left"] is not None
    white = recolour_paint(clip.frames, "white")  # the solid yellow left line, now white: nothing moved
    changed = np.abs(white.astype(np.int16) - clip.frames.astype(np.int16)).max(axis=-1) > 30
    assert changed.mean() > 0.002  # the line was recoloured
    recoloured = _predict(clip, white)
    assert prediction_shift(base.trajectories, recoloured.trajectories)["ade"] <= 0.2
    removed = ProceduralPainter().paint(clip, GridSegmenter().segment(clip), parse_instruction("none@left")).frames
    gone = _predict(clip, removed)
    assert prediction_shift(base.trajectories, gone.trajectories)["ade"] > 0.5


def test_thin_rows_keeps_the_middle_of_each_stroke() -> None:
    mask = np.zeros((3, 12), bool)
    mask[0, 2:7] = True  # 5 wide: middle 4
    mask[0, 9:11] = True  # 2 wide: left of the two middles
    mask[2, 0:12] = True
    out = thin_rows(mask)
    assert np.flatnonzero(out[0]).tolist() == [4, 9]
    assert not out[1].any() and np.flatnonzero(out[2]).tolist() == [5]


def test_vanishing_point_refined_from_stroke_edges() -> None:
    """Two painted lines meeting at (330, 100): the fit lands there from a start 12 px away."""
    h, w = 360, 640
    tone = np.full((h, w), 90, np.float32)
    for x_bottom in (150.0, 560.0):
        pts = np.array([[330.0, 100.0], [x_bottom, h - 1.0]])
        poly = np.array([pts[0] + [-1, 0], pts[1] + [-6, 0], pts[1] + [6, 0], pts[0] + [1, 0]], np.int32)
        tone_u8 = tone.astype(np.uint8)
        cv2.fillConvexPoly(tone_u8, poly, 200)
        tone = tone_u8.astype(np.float32)
    paint = tone > 150
    paint[: int(0.3 * h)] = False
    vp = refine_vanishing_point(stroke_edges(tone, paint), (340.0, 92.0))
    assert vp is not None
    assert vp[0] == pytest.approx(330.0, abs=1.5) and vp[1] == pytest.approx(100.0, abs=1.5)
