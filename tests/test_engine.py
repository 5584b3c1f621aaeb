"""The engine: one Stage contract, a picklable StageSpec, the sequential runner and the Ray Data runner hosting
any stage in the one generic actor."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lanepipe.config import Resources, RunConfig, load_config
from lanepipe.engine import ClipItem, ResultItem, SequentialRunner, Stage, StageItem, StageSpec
from lanepipe.errors import ConfigError
from lanepipe.pipeline import stage_spec

_VOLATILE = ("decode_s", "segment_s", "write_s", "edit_s", "predict_s", "render_s", "geometry", "busy_s", "setup_s")


class Doubler:
    """A test stage: ``{"name": n, "source": s}`` → two rows; counts setups in its rows."""

    name = "segment"

    def __init__(self, cfg: RunConfig, tag: str) -> None:
        self.cfg, self.tag, self.setups = cfg, tag, 0

    def resources(self) -> Resources:
        return self.cfg.segment.resources

    def setup(self) -> None:
        self.setups += 1

    def process(self, item: StageItem) -> list[StageItem]:
        assert isinstance(item, ClipItem)  # typed: the runner converted the input row
        extra = {"tag": self.tag, "setups": self.setups}
        return [ResultItem(clip=item.name, source=item.source, stage="segment", extra=extra | {"part": part})
                for part in (0, 1)]


def _doubler_spec(cfg: RunConfig) -> StageSpec:
    return StageSpec(name="segment", target=f"{__name__}:Doubler", config="lanepipe.config:RunConfig",
                     cfg_json=cfg.model_dump_json(), args=("t",))


TESTS = Path(__file__).resolve().parent


def test_spec_builds_a_stage_without_setting_it_up() -> None:
    stage = _doubler_spec(RunConfig()).build()
    assert isinstance(stage, Stage) and stage.setups == 0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="cannot be imported"):
        StageSpec(name="x", target="lanepipe.nope:X", config="lanepipe.config:RunConfig", cfg_json="{}").build()


def test_every_run_stage_is_cheap_to_build_and_declares_its_resources(tmp_path: Path) -> None:
    cfg = load_config(None, ["edit.resources.num_cpus=2", "evaluate.resources.concurrency=3"])
    for name in ("segment", "edit", "evaluate", "render"):
        stage = stage_spec(name, cfg, str(tmp_path), "r", str(tmp_path), "r").build()
        assert stage.name == name
        assert stage.resources() == getattr(cfg, name).resources
        assert not getattr(stage, "_ready", False)  # nothing loaded before setup()


def test_pool_bounds_are_validated() -> None:
    assert Resources(concurrency=4, min_concurrency=1).min_concurrency == 1
    with pytest.raises(ValidationError, match="min_concurrency"):
        Resources(concurrency=2, min_concurrency=3)


def test_ray_runner_gives_the_sequential_rows(ray_local: Any, tmp_path: Path, synthetic_clip_file: Path) -> None:
    """The generic actor hosting the real segment stage through Ray Data (an autoscaling pool) emits the rows the
    sequential runner does; no warning other than Ray's for max_task_retries comes from our map_batches call."""
    from lanepipe.actors.runner import RayDataRunner, pool_strategy

    items = [{"source": str(synthetic_clip_file), "name": n} for n in ("a", "b", "c")]
    rows = {}
    for executor in ("sequential", "ray"):
        cfg = load_config(None, ["input.max_frames=4", "segment.resources.concurrency=2",
                                 "segment.resources.min_concurrency=1"], base={"output": str(tmp_path)})
        spec = stage_spec("segment", cfg, str(tmp_path), executor, str(tmp_path), executor)
        runner = SequentialRunner() if executor == "sequential" else RayDataRunner(cfg.ray, run_id=executor)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = runner.run([spec], items)
        ours = [w for w in caught if "ray_remote_args" in str(w.message) or "concurrency" in str(w.message)]
        assert len(ours) <= 1, [str(w.message) for w in ours]  # at most the documented max_task_retries one
        rows[executor] = sorted(({k: v for k, v in r.items() if k not in (*_VOLATILE, "run_id", "masks_npz",
                                                                              "overlay")} for r in out),
                                key=lambda r: r["clip"])
    assert [r["status"] for r in rows["ray"]] == ["ok"] * 3
    assert rows["ray"] == rows["sequential"]
    strategy = pool_strategy(Resources(concurrency=4, min_concurrency=1))
    assert (strategy.min_size, strategy.max_size) == (1, 4)
    fixed = pool_strategy(Resources(concurrency=2))
    assert (fixed.min_size, fixed.max_size) == (2, 2)


def test_generic_actor_hosts_any_stage(ray_local: Any) -> None:
    """A stage from outside lanepipe (this test module, importable in the actors through the stage's runtime_env)
    through the Ray runner: set up once per actor."""
    from lanepipe.actors.runner import RayDataRunner

    path = os.pathsep.join([str(TESTS.parent), str(TESTS)])
    cfg = load_config(None, ["segment.resources.runtime_env={env_vars: {PYTHONPATH: '" + path + "'}}"])
    items = [{"source": f"s{i}.mp4", "name": f"c{i}"} for i in range(4)]
    seq = SequentialRunner().run([_doubler_spec(cfg)], items)
    ray_rows = RayDataRunner(cfg.ray).run([_doubler_spec(cfg)], items)
    key = lambda r: (r["clip"], r["part"])  # noqa: E731
    timed = [r for r in (*ray_rows, *seq) if r.pop("busy_s") >= 0 and r.pop("setup_s", 0) >= 0]
    assert len(timed) == 16  # every row says how long its stage worked on it
    assert sorted(ray_rows, key=key) == sorted(seq, key=key)
    assert {r["setups"] for r in ray_rows} == {1}


def test_typed_items_round_trip_through_json() -> None:
    """Rows → typed items → JSON → typed items → rows: same rows; the camera and geometry are typed values."""
    import json

    from lanepipe.engine import EditResult, SegmentResult, item_from_row
    from lanepipe.geometry.camera import PinholeCamera

    cam = PinholeCamera(width=160, height=96, fx=120.0, fy=120.0, cx=80.0, cy=48.0, mount_height_m=1.5,
                        pitch_rad=0.02)
    rows = [
        {"source": "a.mp4", "name": "a"},
        {"run_id": "r", "clip": "a", "source": "a.mp4", "stage": "segment", "backend": "grid", "status": "ok",
         "error": None, "error_type": None, "num_frames": 8, "fps": 8.0, "width": 160, "height": 96,
         "road_fraction": 0.4, "decode_s": 0.1, "masks_npz": "/r/segment/a/all_masks.npz", "skipped": False},
        {"run_id": "r", "clip": "a", "source": "a.mp4", "stage": "edit", "instruction": "double yellow solid",
         "slug": "double-yellow-solid", "status": "ok", "error": None, "qa_verdict": "PASS",
         "geometry": json.dumps({"camera": cam.to_dict(), "speed_mps_median": 12.5}), "psnr_out_mask": float("inf")},
        {"run_id": "r", "clip": "a", "source": "a.mp4", "stage": "evaluate", "instruction": "double yellow solid",
         "predictor": "lane_keep", "status": "failed", "error": "x\ny", "error_type": "InputError"},
        {"run_id": "r", "clip": "a", "source": "a.mp4", "stage": "render", "predictor": "lane_keep", "status": "ok"},
    ]
    for row in rows:
        item = item_from_row(row)
        assert item.to_row() == row and list(item.to_row()) == list(row)
        again = item_from_row(json.loads(json.dumps(item.to_row())))
        assert again == item and again.to_row() == row
    seg = item_from_row(rows[1])
    assert isinstance(seg, SegmentResult) and seg.num_frames == 8 and seg.get("road_fraction") == 0.4
    edit = item_from_row(rows[2])
    assert isinstance(edit, EditResult) and edit.camera == cam and edit.speed_mps == 12.5
    assert isinstance(edit.geometry, dict) and edit.get("psnr_out_mask") == float("inf")
    assert item_from_row(rows[3]).first_error_line == "x"  # type: ignore[attr-defined]
    fresh = SegmentResult(run_id="r", clip="b", source="b.mp4", num_frames=3)
    assert fresh.to_row()["stage"] == "segment" and item_from_row(fresh.to_row()) == fresh


class CatchAll(Doubler):
    """A test stage that records any error of an item as its row, as the real stages do ("never raises"); on item
    ``c1`` a Ctrl-C arrives while it works."""

    def process(self, item: StageItem) -> list[StageItem]:
        assert isinstance(item, ClipItem)
        try:
            if item.name == "c1":
                signal.raise_signal(signal.SIGINT)
            error = None
        except Exception as e:  # the point: a per-item handler takes the signal's exception too
            error = str(e)
        return [ResultItem(clip=item.name, source=item.source, stage="segment", extra={"error": error})]


def test_a_ctrl_c_a_stage_swallowed_still_stops_the_run() -> None:
    """A signal's exception lands wherever the main thread is; a stage's per-item ``except Exception`` takes it
    for that item's failure. The runner raises it again before the next item: the run stops as interrupted
    instead of going on with c2 and c3."""
    from lanepipe.engine.lifecycle import interrupt_signals
    from lanepipe.errors import InterruptError

    cfg = load_config(None, [])
    spec = StageSpec(name="segment", target=f"{__name__}:CatchAll", config="lanepipe.config:RunConfig",
                     cfg_json=cfg.model_dump_json(), args=("t",))
    seen: list[str] = []
    # Python's own Ctrl-C handler, as in a fresh `lanepipe run` (an earlier test's Ray may have left its own here)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with interrupt_signals(), pytest.raises(InterruptError) as err:
            SequentialRunner().run([spec], [{"source": f"s{i}.mp4", "name": f"c{i}"} for i in range(4)],
                                   lambda row: seen.append(str(row["clip"])))
        with interrupt_signals():  # a new run starts with no signal pending
            rows = SequentialRunner().run([_doubler_spec(cfg)], [{"source": "s.mp4", "name": "c0"}])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert err.value.exit_code == 128 + signal.SIGINT
    assert seen == ["c0"]  # c1's row was never reported, c2 and c3 never ran
    assert len(rows) == 2
