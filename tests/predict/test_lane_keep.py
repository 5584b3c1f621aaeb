"""The lane_keep predictor, the sample clip's context (camera, ego-motion, ground truth) and the registry.

The sample is rendered small (30 frames, 480x270 at 8 fps, t0 = 3.6 s on the left-hand curve) to keep the
module at a few seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from lanepipe import sample as sample_mod
from lanepipe.datasets.sample_context import SampleContext, load_sample_context
from lanepipe.edit.procedural import PaintParams, ProceduralPainter
from lanepipe.errors import ConfigError, InputError, LanepipeError
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.metrics import min_ade, prediction_shift
from lanepipe.predict import lane_keep as lk
from lanepipe.predict.base import Predictor
from lanepipe.predict.registry import BUILTIN, build_predictor
from lanepipe.types import CameraView, Clip, EgoState, Prediction, PredictorInput, RoadMasks


@dataclasses.dataclass(frozen=True)
class SampleCase:
    mp4: Path
    ctx: SampleContext
    clip: Clip
    masks: RoadMasks


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> SampleCase:
    d = tmp_path_factory.mktemp("lane_keep_sample")
    mp4 = sample_mod.write_sample(d, num_frames=30, width=480, height=270)
    gt = np.load(d / "sample_gt.npz")
    meta = json.loads((d / "sample_gt.json").read_text())
    clip = decode(str(mp4), target_fps=8.0)
    clip = dataclasses.replace(clip, meta={"camera": meta["camera"], "ego": gt["ego"]})
    return SampleCase(mp4=mp4, ctx=load_sample_context(mp4), clip=clip,
                      masks=RoadMasks(masks=gt["road_masks"], backend="ground_truth"))


@pytest.fixture(scope="module")
def predictor() -> lk.LaneKeepPredictor:
    return lk.LaneKeepPredictor()


@pytest.fixture(scope="module")
def base_prediction(case: SampleCase, predictor: lk.LaneKeepPredictor) -> Prediction:
    return predictor.predict(case.ctx.predictor_input(case.clip.frames, case.clip.timestamps))


def _edited(case: SampleCase, instruction: str, offset: float = 0.0) -> np.ndarray:
    res = ProceduralPainter().paint(case.clip, case.masks, parse_instruction(instruction),
                                    PaintParams(lateral_offset_m=offset))
    return res.frames


# ---------------------------------------------------------------------------------------------- sample context
def test_context_matches_the_sample(case: SampleCase) -> None:
    ctx = case.ctx
    meta = json.loads(case.mp4.with_name("sample_gt.json").read_text())
    assert ctx.t_last == pytest.approx(29 / 8)
    assert ctx.ego.covers(np.array([-6.5, ctx.t_last + 6.5]))
    xyz, rot = ctx.ego.interpolate(ctx.frame_times)
    ego = np.array([[f["ego"]["x"], f["ego"]["y"], f["ego"]["yaw"]] for f in meta["frames"]])
    assert np.allclose(xyz[:, :2], ego[:, :2], atol=1e-9)
    assert np.allclose(np.arctan2(rot[:, 1, 0], rot[:, 0, 0]), ego[:, 2], atol=1e-9)
    camera, motion = ctx  # unpacks as (camera, ego)
    assert camera == ctx.camera and motion is ctx.ego


def test_future_beyond_the_clip_keeps_the_lane(case: SampleCase) -> None:
    ctx = case.ctx
    fut = ctx.future()
    assert fut.shape == (64, 3) and fut.dtype == np.float32
    steps = np.linalg.norm(np.diff(np.vstack([np.zeros((1, 3)), fut.astype(np.float64)]), axis=0), axis=1)
    assert np.allclose(steps, steps[0], atol=2e-3)  # constant speed across the end of the clip
    assert steps[0] == pytest.approx(1.5 * (sample_mod.RADIUS_M - sample_mod.EGO_OFFSET_M) / sample_mod.RADIUS_M,
                                     abs=0.01)  # 15 m/s along the reference line, at the lane-centre radius
    # every waypoint lies on the ego lane's centre line (independent check through world_to_road)
    xyz, _ = ctx.ego.interpolate(ctx.t_last + 0.1 * np.arange(1, 65, dtype=np.float64))
    _, d, _ = sample_mod.world_to_road(xyz[:, 0], xyz[:, 1])
    assert np.allclose(d, sample_mod.EGO_OFFSET_M, atol=1e-6)
    assert fut[-1, 1] > 10.0  # the road bends left
    hist = ctx.ego_state()
    assert np.allclose(hist.xyz[-1], 0.0) and hist.speed == pytest.approx(steps[0] / 0.1, rel=1e-3)


def test_context_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"sample_gt\.json"):
        load_sample_context(tmp_path / "sample.mp4")
    (tmp_path / "sample_gt.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match=r"lanepipe\.sample/1"):
        load_sample_context(tmp_path)


def test_predictor_input(case: SampleCase) -> None:
    inp = case.ctx.predictor_input(case.clip.frames, case.clip.timestamps, t0=2.0)
    view = inp.cameras["front"]
    assert len(view.frames) == 17  # frames at 0 … 2.0 s
    assert view.timestamps[-1] == 0.0 and np.all(view.timestamps <= 0)
    assert inp.t0 == 2.0


# ---------------------------------------------------------------------------------------------- lane_keep
def test_follows_the_lane_on_the_sample(case: SampleCase, base_prediction: Prediction) -> None:
    pred = base_prediction
    assert isinstance(lk.LaneKeepPredictor(), Predictor)
    assert pred.trajectories.shape == (1, 64, 3) and pred.trajectories.dtype == np.float32
    assert pred.meta["centre"]["source"] == "both"
    assert pred.reasoning is not None and pred.reasoning[0].startswith("lane_keep")
    assert min_ade(pred.trajectories, case.ctx.future()) <= 0.5
    assert pred.meta["centre"]["curvature"] == pytest.approx(1 / 251.83, rel=0.15)


@pytest.mark.parametrize(("instruction", "offset", "sign"), [("single white solid@right", -1.0, -1),
                                                             ("single white solid", 1.0, 1)])
def test_moved_boundary_moves_the_path(case: SampleCase, predictor: lk.LaneKeepPredictor,
                                       base_prediction: Prediction, instruction: str, offset: float,
                                       sign: int) -> None:
    """A boundary repainted 1 m outwards widens the lane on that side: the lane centre, and the path, move
    about 0.5 m towards it."""
    frames = _edited(case, instruction, offset)
    pred = predictor.predict(case.ctx.predictor_input(frames, case.clip.timestamps))
    shift = prediction_shift(base_prediction.trajectories, pred.trajectories)
    moved = pred.meta["centre"]["offset_m"] - base_prediction.meta["centre"]["offset_m"]
    assert sign * moved > 0.3
    assert sign * shift["lateral_offset_1s"] > 0.05
    assert shift["ade"] > 0.1


def test_removed_markings(case: SampleCase, predictor: lk.LaneKeepPredictor, base_prediction: Prediction) -> None:
    left_gone = predictor.predict(case.ctx.predictor_input(_edited(case, "none@left"), case.clip.timestamps))
    assert left_gone.meta["centre"]["source"] == "right"
    assert abs(left_gone.meta["centre"]["offset_m"]) < 0.3  # nominal lane width from the dashed line
    none = predictor.predict(case.ctx.predictor_input(_edited(case, "none@both"), case.clip.timestamps))
    assert none.meta["centre"]["source"] == "none"
    assert np.allclose(none.trajectories[0, :, 1], 0.0, atol=1e-6)  # straight ahead
    assert prediction_shift(base_prediction.trajectories, none.trajectories)["max_lateral_offset"] < -5.0


# ---------------------------------------------------------------------------------------------- pure functions
def _bev_with_lines(offsets: list[float], curvature: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cfg = lk.LaneKeepConfig()
    xs, ys = lk.bev_grid(3.0, cfg)
    score = np.zeros((len(xs), len(ys)), np.float32)
    for off in offsets:
        y = off + 0.5 * curvature * xs**2
        score[np.abs(ys[None, :] - y[:, None]) <= 0.075] = 1.0
    return score, xs, ys


@pytest.mark.parametrize(("offsets", "source", "centre"), [
    ([1.83, -1.83], "both", 0.0),
    ([2.83, -1.83], "both", 0.5),  # left boundary 1 m further left
    ([-1.83], "right", 0.0),  # nominal 3.66 m lane from the right boundary
    ([2.3], "left", 0.47),
    ([], "none", 0.0),
])
def test_lane_centre_known_answers(offsets: list[float], source: str, centre: float) -> None:
    cfg = lk.LaneKeepConfig()
    score, xs, ys = _bev_with_lines(offsets, curvature=0.004)
    b = lk.find_boundaries(score, xs, ys, cfg)
    c = lk.lane_centre(b["left"], b["right"], cfg)
    assert c.source == source
    assert c.offset == pytest.approx(centre, abs=0.05)
    assert c.curvature == pytest.approx(0.004 if offsets else 0.0, abs=2e-4)


def test_drive_lane_known_answers() -> None:
    cfg = lk.LaneKeepConfig()
    r = 250.0
    on_circle = lk.drive_lane(lk.LaneCentre(0.0, 0.0, 1 / r, "both"), 15.0, cfg).astype(np.float64)
    assert np.allclose(np.hypot(on_circle[:, 0], on_circle[:, 1] - r), r, atol=0.05)
    assert np.allclose(np.linalg.norm(np.diff(on_circle[:, :2], axis=0), axis=1), 1.5, atol=1e-3)
    offset = lk.drive_lane(lk.LaneCentre(0.5, 0.0, 0.0, "both"), 15.0, cfg)
    assert abs(offset[0, 1]) < 0.05 and offset[-1, 1] == pytest.approx(0.5, abs=0.02)
    assert offset[:, 1].max() < 0.55  # pure pursuit overshoots a little (about 4 %)
    sharp = lk.drive_lane(lk.LaneCentre(0.0, 0.0, 0.5, "both"), 15.0, cfg)  # curvature capped at 0.02
    assert np.hypot(sharp[-1, 0], sharp[-1, 1] - 50.0) == pytest.approx(50.0, abs=0.5)
    stopped = lk.drive_lane(lk.LaneCentre(1.0, 0.0, 0.0, "both"), 0.0, cfg)
    assert np.all(stopped == 0.0)


# ---------------------------------------------------------------------------------------------- bad input
def _inp(frames: np.ndarray, ts: np.ndarray, camera: Any = None, ego: EgoState | None = None,
         name: str = "front") -> PredictorInput:
    hist = ego or EgoState(xyz=np.zeros((16, 3), np.float32), rot=np.tile(np.eye(3, dtype=np.float32), (16, 1, 1)),
                           speed=10.0)
    return PredictorInput(clip="t", cameras={name: CameraView(name, frames, ts, camera)}, ego=hist)


def test_bad_input(predictor: lk.LaneKeepPredictor, case: SampleCase) -> None:
    frames = np.zeros((2, 54, 96, 3), np.uint8)
    ts = np.array([-0.125, 0.0])
    with pytest.raises(InputError, match="finite"):
        EgoState(xyz=np.full((16, 3), np.nan, np.float32), rot=np.zeros((16, 3, 3), np.float32), speed=1.0)
    neg = EgoState(xyz=np.zeros((16, 3), np.float32), rot=np.tile(np.eye(3, dtype=np.float32), (16, 1, 1)),
                   speed=-1.0)
    with pytest.raises(InputError, match="speed"):
        predictor.predict(_inp(frames, ts, ego=neg))
    with pytest.raises(InputError, match="front camera"):
        predictor.predict(_inp(frames, ts, name="rear"))
    with pytest.raises(InputError, match="uint8"):
        predictor.predict(_inp(frames.astype(np.float32), ts))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="before t0"):
        predictor.predict(_inp(frames, np.array([-3.0, -2.0])))
    with pytest.raises(InputError, match="aspect"):
        predictor.predict(_inp(np.zeros((2, 96, 96, 3), np.uint8), ts, camera=case.ctx.camera))
    with pytest.raises(InputError, match="project"):
        predictor.predict(_inp(frames, ts, camera=object()))


def test_blank_frames_keep_straight(predictor: lk.LaneKeepPredictor) -> None:
    pred = predictor.predict(_inp(np.full((2, 54, 96, 3), 90, np.uint8), np.array([-0.125, 0.0])))
    assert pred.meta["centre"]["source"] == "none"
    assert np.allclose(pred.trajectories[0, :, 0], 1.0 * np.arange(1, 65), atol=1e-4)
    assert np.all(pred.trajectories[0, :, 1] == 0.0)


def test_real_clip_with_fallback_camera(real_clips: list[Path], predictor: lk.LaneKeepPredictor) -> None:
    clip = decode(str(next(p for p in real_clips if p.stem == "solidWhiteRight")), target_fps=8.0, max_frames=8)
    pred = predictor.predict(_inp(clip.frames, clip.timestamps - clip.timestamps[-1]))
    assert pred.meta["camera_source"].startswith("fallback")
    assert pred.meta["centre"]["source"] == "both"
    assert abs(pred.meta["centre"]["offset_m"]) < 0.8
    assert math.isfinite(float(pred.trajectories.sum()))


# ---------------------------------------------------------------------------------------------- config, registry
def test_config_validates() -> None:
    with pytest.raises(ValidationError, match="search_min_m"):
        lk.LaneKeepConfig(search_min_m=3.0, search_max_m=2.0)
    with pytest.raises(ValidationError):
        lk.LaneKeepConfig(frames_used=0)


def test_registry() -> None:
    p = build_predictor("lane_keep", {"frames_used": 2})
    assert isinstance(p, lk.LaneKeepPredictor) and p.cfg.frames_used == 2
    assert isinstance(build_predictor("lanepipe.predict.lane_keep:LaneKeepPredictor", None), lk.LaneKeepPredictor)
    assert set(BUILTIN) >= {"lane_keep", "alpamayo"}
    with pytest.raises(ConfigError, match="lane_keep, alpamayo"):
        build_predictor("no_such_predictor", None)
    with pytest.raises(ConfigError, match="frames_used"):
        build_predictor("lane_keep", {"frames_used": 0})
    with pytest.raises(ConfigError, match="not a predictor"):
        build_predictor("lanepipe.predict.lane_keep:LaneKeepConfig", None)
    try:  # alpamayo is referenced lazily; here it either builds or says what it lacks
        alp = build_predictor("alpamayo", None)
    except LanepipeError as e:
        assert str(e)
    else:
        assert isinstance(alp, Predictor)
