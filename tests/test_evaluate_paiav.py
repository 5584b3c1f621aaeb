"""Evaluate a PhysicalAI-AV clip from local files: front camera replaced by the edited video, the other cameras
and the ego history from the dataset, ground truth from its ego-motion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lanepipe.config import load_config
from lanepipe.datasets.context import load_context
from lanepipe.datasets.sources import resolve_inputs
from lanepipe.engine import item_from_row
from lanepipe.errors import InputError
from lanepipe.io.layout import RunStore
from lanepipe.io.video import decode, encode
from lanepipe.stages.evaluate import EvaluateStage
from lanepipe.testing.paiav import FIXTURE_CLIP_ID, write_fixture

FRONT = "camera_front_wide_120fov"


@pytest.fixture(scope="module")
def paiav_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paiav")
    write_fixture(root, FIXTURE_CLIP_ID, seconds=3.0, egomotion_seconds=12.0)
    return root


def test_paiav_source_and_context(paiav_root: Path) -> None:
    refs = resolve_inputs([f"paiav://{paiav_root}?camera={FRONT}"])
    assert len(refs) == 1 and refs[0].name == f"{FIXTURE_CLIP_ID}_{FRONT}"
    clip = decode(refs[0].source)
    assert clip.fps == 8.0 and clip.frames.shape[1:] == (108, 192, 3)
    ctx = load_context(refs[0].source, clip.width, clip.height)
    assert ctx.kind == "physical_ai_av" and ctx.ego is not None
    assert set(ctx.extra_cameras) == {"camera_cross_left_120fov", "camera_cross_right_120fov",
                                      "camera_front_tele_30fov"}
    view = ctx.extra_cameras["camera_cross_left_120fov"](ctx.time_offset + 2.0)
    assert view.frames.shape[0] == 4 and np.all(view.timestamps <= 1e-9) and view.timestamps[0] < -0.25
    with pytest.raises(InputError, match="camera"):
        resolve_inputs([f"paiav://{paiav_root}?camera=camera_rear_tele_30fov"])


def test_evaluate_stage_on_paiav_with_edited_front(paiav_root: Path, tmp_path: Path) -> None:
    src = resolve_inputs([f"paiav://{paiav_root}?camera={FRONT}"])[0]
    clip = decode(src.source)
    store = RunStore(str(tmp_path), "r")
    edited = clip.frames.copy()
    edited[:, 60:, 90:100] = 255  # a painted stripe
    encode(edited, store.edit_paths(src.name, "single-white-solid").video, clip.fps)
    cfg = load_config(None, ["stages=evaluate", "from_run=r", "run_id=r2"], base={"output": str(tmp_path)})
    stage = EvaluateStage(cfg, str(tmp_path), "r2", str(tmp_path), "r")
    edit_row = {"stage": "edit", "status": "ok", "clip": src.name, "source": src.source,
                "instruction": "single white solid", "geometry": "{}"}
    rows = stage.process(item_from_row(edit_row))
    ev = rows[1].to_row()
    assert ev["status"] == "ok", ev["error"]
    assert ev["min_ade_original"] is not None  # PAI-AV has ego-motion: ground truth exists
    doc = json.loads(Path(ev["evaluation"]).read_text())
    assert doc["context"] == "physical_ai_av" and doc["camera"]["model"] == "ftheta"
    assert doc["speed_mps"] == pytest.approx(10.0, rel=0.05)  # the fixture drives at 10 m/s
    with np.load(Path(ev["evaluation"]).with_suffix(".npz")) as z:
        assert z["ground_truth"].shape == (64, 3) and z["ground_truth"][-1, 0] > 50  # 6.4 s at 10 m/s


def test_paiav_timeline_not_covering_history_is_a_recorded_failure(paiav_root: Path, tmp_path: Path) -> None:
    src = resolve_inputs([f"paiav://{paiav_root}?camera={FRONT}"])[0]
    clip = decode(src.source)
    store = RunStore(str(tmp_path), "r")
    encode(clip.frames, store.edit_paths(src.name, "none").video, clip.fps)
    cfg = load_config(None, ["stages=evaluate", "from_run=r", "evaluate.t0_s=0.5"], base={"output": str(tmp_path)})
    stage = EvaluateStage(cfg, str(tmp_path), "r3", str(tmp_path), "r")
    rows = [r.to_row() for r in stage.process(item_from_row({"stage": "edit", "status": "ok", "clip": src.name,
                                                             "source": src.source, "instruction": "none",
                                                             "geometry": "{}"}))]
    assert rows[1]["status"] == "failed" and "history" in rows[1]["error"]
