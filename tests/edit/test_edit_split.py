"""Issue 17 on CPU: ``edit.placement=split`` (first-frame pool → propagation pool) through local Ray with several
actors per pool gives the outputs of ``whole`` for the same seed; each pool loads its own models once per actor;
the split ratio and the config's refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.errors import ConfigError
from lanepipe.io.video import decode
from lanepipe.stages.edit_split import first_frame_share

GEN = ["edit.backend=flux_cogvideox", "edit.preset=tiny-random", "verify.backend=qwen_vl",
       "edit.qa.max_iterations=2", "edit.instructions=[double yellow solid,none@both]", "input.max_frames=8"]
#: per-attempt seconds in qa.json: the only fields of an attempt's record that differ between two runs
TIMES = ("first_frame_s", "judge_s")


@pytest.fixture(scope="module")
def three_clips(tmp_path_factory: pytest.TempPathFactory, make_road_clip: Callable[[Path, int], Path]) -> list[str]:
    d = tmp_path_factory.mktemp("clips")
    return [str(make_road_clip(d / f"clip{i}.mp4", 80 + 6 * i)) for i in range(3)]


def _qa(path: Path) -> dict:
    qa = json.loads(path.read_text())
    qa["iterations"] = [{k: v for k, v in it.items() if k not in TIMES} for it in qa["iterations"]]
    return qa


def test_first_frame_share_balances_the_measured_stage_times() -> None:
    # FLUX + judge 3.6 s vs CogVideoX + composite 77.7 s per clip: one first-frame actor up to 33 actors in all
    assert [first_frame_share(n) for n in (2, 4, 8, 16, 33)] == [1, 1, 1, 1, 1]
    assert first_frame_share(34) == 2 and first_frame_share(40) == 2  # 34 * 3.63 / 81.31 = 1.52
    assert first_frame_share(64) == 3
    assert first_frame_share(8, first_s=10.0, propagate_s=10.0) == 4  # equal halves: half the actors each
    assert first_frame_share(2, first_s=100.0, propagate_s=1.0) == 1  # always one propagation actor left
    with pytest.raises(ConfigError, match=">= 2 edit actors"):
        first_frame_share(1)


@pytest.mark.parametrize("sets, message", [
    (["edit.placement=split", "edit.resources.concurrency=2"], "only the flux_cogvideox painter"),
    ([*GEN[:2], "edit.placement=split"], "concurrency >= 2"),
    ([*GEN[:2], "edit.placement=split", "edit.resources.concurrency=3", "edit.split_first_frame_actors=3"],
     "must leave propagation actors"),
    ([*GEN[:2], "edit.placement=split", "edit.resources.concurrency=3", "edit.resources.min_concurrency=2"],
     "leave edit.resources.min_concurrency unset"),
])
def test_split_placement_config_errors_name_the_key(sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, sets)


def test_whole_is_the_default_and_keeps_one_edit_stage() -> None:
    cfg = load_config(None, GEN)
    assert cfg.edit.placement == "whole"
    assert [s.name for s in pipeline.stage_specs("edit", cfg, "/r", "a", "/r", "a")] == ["edit"]
    split = load_config(None, [*GEN, "stages=segment,edit", "edit.placement=split", "edit.resources.concurrency=8"])
    specs = pipeline.stage_specs("edit", split, "/r", "a", "/r", "a")
    assert [s.name for s in specs] == ["edit_first_frame", "edit"]
    # resources per pool: the edit stage's per-actor figures, 1 + 7 actors (the measured ratio)
    first, prop = (s.build().resources() for s in specs)
    assert (first.concurrency, prop.concurrency) == (1, 7) and first.num_cpus == prop.num_cpus
    assert pipeline._plan_backends(split)["edit"] == "flux_cogvideox (split: 1 first-frame + 7 propagation actors)"


@pytest.mark.ray
def test_split_through_ray_equals_whole_and_loads_once_per_actor(ray_local, tmp_path: Path,
                                                                 three_clips: list[str]) -> None:
    """3 clips x 2 instructions: ``whole`` on 2 edit actors, then ``split`` on 2 first-frame + 2 propagation
    actors from the same segment run. Same edited frames, first frames (bytes), QA records (a tiny Qwen judge:
    a malformed FAIL, so both attempts run, seeds 0 and 1, inside the first-frame pool) and verdicts."""
    actors = ["edit.resources.num_gpus=0", "edit.resources.num_cpus=0.25", "segment.resources.num_cpus=0.25"]
    base = {"input": {"paths": three_clips}, "output": str(tmp_path)}
    whole = pipeline.run(load_config(None, [*GEN, *actors, "stages=segment,edit", "run_id=whole",
                                            "edit.resources.concurrency=2"], base=base))
    split = pipeline.run(load_config(None, [*GEN, *actors, "stages=edit", "run_id=split", "from_run=whole",
                                            "edit.placement=split", "edit.resources.concurrency=4",
                                            "edit.split_first_frame_actors=2"], base=base))
    ew = {(r["clip"], r["slug"]): r for r in whole.rows if r["stage"] == "edit"}
    es = {(r["clip"], r["slug"]): r for r in split.rows}
    assert {r["stage"] for r in split.rows} == {"edit"} and len(es) == len(ew) == 6
    assert all(r["status"] == "ok" for r in [*ew.values(), *es.values()]), [r.get("error") for r in es.values()]
    for key, rw in ew.items():
        rs = es[key]
        assert (rs["qa_verdict"], rs["qa_iterations"]) == (rw["qa_verdict"], rw["qa_iterations"]) == ("FAIL", 2)
        dw, ds = (Path(s.url) / "edit" / key[0] / key[1] for s in (whole, split))
        np.testing.assert_array_equal(decode(str(ds / "edited.mp4"), target_fps=None).frames,
                                      decode(str(dw / "edited.mp4"), target_fps=None).frames)
        assert (ds / "first_frame.png").read_bytes() == (dw / "first_frame.png").read_bytes()
        qw, qs = _qa(dw / "qa.json"), _qa(ds / "qa.json")
        assert qs == qw and [it["seed"] for it in qs["iterations"]] == [0, 1]
        assert json.loads(rs["geometry"])["edit_placement"] == "split"
        assert json.loads(rs["geometry"])["seed"] == json.loads(rw["geometry"])["seed"] == 1

    manifest = json.loads((Path(split.url) / "manifest.json").read_text())
    prop, first = manifest["stages"]["edit"]["model_loads"], manifest["stages"]["edit"]["first_frame"]
    assert first["items"] == 6 and first["busy_s"] > 0
    # each pool loads only its own models, once per actor that took items (at most 2 each), never per clip
    n_prop = prop["models"].get("cogvideox_i2v", 0)
    n_first = first["model_loads"]["models"].get("flux_fill", 0)
    assert set(prop["models"]) == {"cogvideox_i2v"} and 1 <= n_prop <= 2 and prop["loads"] == n_prop
    assert set(first["model_loads"]["models"]) == {"flux_fill", "qwen_vl:tiny-random"}
    assert 1 <= n_first <= 2 and first["model_loads"]["models"]["qwen_vl:tiny-random"] == n_first
    reported = sum(1 for r in split.rows if r.get("setup_s") is not None)  # one row per propagation actor
    assert reported == n_prop


def test_propagation_failure_is_recorded_with_the_qa_verdict(tmp_path: Path, three_clips: list[str]) -> None:
    """A first frame that cannot be read back (removed between the pools) is a failed edit row naming the
    propagation phase and the verdict the QA loop had reached; the other instruction is done."""
    from lanepipe.engine.items import FirstFrameItem
    from lanepipe.engine.runner import SequentialRunner

    base = {"input": {"paths": three_clips[:1]}, "output": str(tmp_path)}
    cfg = load_config(None, [*GEN, "stages=segment,edit", "run_id=f", "edit.placement=split",
                             "edit.resources.concurrency=2", "edit.qa.max_iterations=1"], base=base)
    specs = [s for n in cfg.stages for s in pipeline.stage_specs(n, cfg, str(tmp_path), "f", str(tmp_path), "f")]
    first_stage = specs[1].build()
    seen: list[str] = []

    class Losing(SequentialRunner):  # removes one first frame between the two pools, as a lost file would
        def build(self, s):  # type: ignore[no-untyped-def]
            stages = super().build(s)
            inner = stages[1].process

            def process(item):  # type: ignore[no-untyped-def]
                out = inner(item)
                for o in out:
                    if isinstance(o, FirstFrameItem) and not seen:
                        seen.append(o.slug)
                        Path(o.first_frame).unlink()
                return out

            stages[1].process = process  # type: ignore[method-assign]
            return stages

    assert first_stage.name == "edit_first_frame"
    rows = Losing().run(specs, [{"source": three_clips[0], "name": "clip0"}])
    edits = {r["slug"]: r for r in rows if r.get("stage") == "edit"}
    lost = edits[seen[0]]
    assert lost["status"] == "failed" and lost["failed_phase"] == "propagate" and lost["qa_verdict"] == "FAIL"
    assert "propagation of the first frame (QA verdict FAIL) failed" in lost["error"]
    assert [r["status"] for s, r in edits.items() if s != seen[0]] == ["ok"]


def _bench():
    from lanepipe.testing import load_script

    return load_script("benchmarks/sweep_scaling.py", "sweep_scaling_bench")


def test_sweep_scaling_cycles_clips_and_measures_against_linear(tmp_path: Path, three_clips: list[str]) -> None:
    b = _bench()
    links = b.cycled_clips(Path(three_clips[0]).parent, 7, tmp_path / "c")
    assert len(links) == len(set(links)) == 7  # 3 clips cycled to 7 items, each under its own name
    assert [Path(p).resolve().name for p in links] == [f"clip{i % 3}.mp4" for i in range(7)]
    with pytest.raises(SystemExit, match=r"expected \.mp4 clips"):
        b.cycled_clips(tmp_path / "empty", 2, tmp_path / "d")
    # two clips x 2 instructions; a failed edit makes its clip not done; the span runs over both pools' items
    rows = [{"clip": "a", "stage": "edit_first_frame", "busy_s": 1.0, "models_loaded": "flux_fill",
             "cuda_visible_devices": "0"},
            {"clip": "a", "stage": "edit", "status": "ok", "busy_s": 4.0, "models_loaded": "cogvideox_i2v"},
            {"clip": "a", "stage": "edit", "status": "ok", "busy_s": 4.0},
            {"clip": "b", "stage": "edit", "status": "failed", "busy_s": 1.0, "failed_phase": "propagate"}]
    events = [(1.0, {"stage": "edit_first_frame", "busy_s": 1.0}), (9.0, {"stage": "edit", "busy_s": 4.0})]
    samples = [{"t": 2.0, "gpu": 0, "util_pct": 50.0}, {"t": 20.0, "gpu": 0, "util_pct": 100.0}]
    m = b.measure(rows, events, 18.0, 2, samples, [0])
    assert (m["clips_done"], m["edits_ok"], m["steady_span_s"]) == (1, 2, 9.0)
    assert m["clips_per_hour"] == 400.0 and m["clips_per_hour_wall"] == 200.0
    assert m["failed"] == [{"clip": "b", "instruction": None, "error_type": None, "failed_phase": "propagate"}]
    assert m["model_loads"] == {"edit_first_frame": {"flux_fill": 1}, "edit": {"cogvideox_i2v": 1}}
    assert m["gpu_busy_fraction"] == {"0": 0.5} and m["actor_gpus"] == ["0"]
    results = [{"gpus": 1, "placement": "whole", "clips_per_hour": 100.0, "clips_per_hour_wall": 50.0},
               {"gpus": 4, "placement": "split", "clips_per_hour": 360.0, "clips_per_hour_wall": None}]
    assert b.efficiency(results) is results[0]
    assert [r["efficiency_vs_linear"] for r in results] == [1.0, 0.9]
    assert results[1]["efficiency_vs_linear_wall"] is None
    later = [{"gpus": 8, "placement": "whole", "clips_per_hour": 720.0, "clips_per_hour_wall": None}]
    assert b.efficiency(later) is None and later[0]["efficiency_vs_linear"] is None  # no 1-GPU figure
    assert b.efficiency(later, results) is results[0] and later[0]["efficiency_vs_linear"] == 0.9
    assert b.config_overrides(4, "split", 9)[-1] == "edit.split_first_frame_actors=3"
