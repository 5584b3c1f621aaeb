"""The engine: one Stage contract, a picklable StageSpec, the sequential runner and the Ray Data runner hosting
any stage in the one generic actor."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lanepipe.config import Resources, RunConfig, load_config
from lanepipe.engine import SequentialRunner, Stage, StageSpec
from lanepipe.errors import ConfigError
from lanepipe.pipeline import stage_spec

_VOLATILE = ("decode_s", "segment_s", "write_s", "edit_s", "predict_s", "render_s", "geometry")


class Doubler:
    """A test stage: ``{"name": n, "source": s}`` → two rows; counts setups in its rows."""

    name = "segment"

    def __init__(self, cfg: RunConfig, tag: str) -> None:
        self.cfg, self.tag, self.setups = cfg, tag, 0

    def resources(self) -> Resources:
        return self.cfg.segment.resources

    def setup(self) -> None:
        self.setups += 1

    def process(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        base = {"clip": item["name"], "source": item["source"], "stage": "segment", "status": "ok", "tag": self.tag,
                "setups": self.setups}
        return [base | {"part": 0}, base | {"part": 1}]


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
    assert sorted(ray_rows, key=key) == sorted(seq, key=key)
    assert {r["setups"] for r in ray_rows} == {1}
