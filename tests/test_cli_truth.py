"""What the CLI tells a user (issue 12, items 13 and 15-19, 21), through the real ``lanepipe`` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lanepipe import pipeline
from lanepipe.config import Resources, RunConfig, load_config
from lanepipe.engine import ClipItem, ResultItem, StageItem, StageSpec

ROOT = Path(__file__).resolve().parents[1]
EXE = [sys.executable, "-m", "lanepipe.cli"]


def lanepipe(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
                          env=env)


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lanepipe.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), num_frames=12, width=320, height=180)


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("bad") / "bad.mp4"
    p.write_text("not a video\n")
    return p


def test_run_defaults_to_all_stages_prints_plan_progress_failures_once_and_exits_1(
        tmp_path: Path, sample_file: Path, bad_file: Path) -> None:
    res = lanepipe("run", "-i", str(sample_file), "-i", str(bad_file), "-o", str(tmp_path), "--run-id", "r1",
                   "--executor", "sequential", "--set", "input.max_frames=6", "--set", "edit.qa.max_iterations=1")
    err = res.stderr
    assert res.returncode == 1, err  # an item failed: not 0
    run = tmp_path / "r1"
    assert res.stdout.strip().splitlines()[-1] == str(run)
    # the plan, before anything runs: all four stages, inputs, backends, the default instruction, output folder
    plan = err[:err.index("[segment 1/2]")]
    assert "segment → edit → evaluate → render" in plan
    assert "inputs: 2 clip(s)" in plan
    assert "backends: segment=grid, edit=procedural, evaluate=lane_keep, qa=lane_detector" in plan
    assert "instructions: double yellow solid (default: no --edit given)" in plan
    assert f"output: {run}" in plan
    # plain progress lines (stderr is not a terminal), one per item and stage
    for stage, n in (("segment", 2), ("edit", 2), ("evaluate", 2), ("render", 2)):
        assert f"[{stage} {n}/2]" in err, err
    # the bad clip's error once, naming the stages that did not run
    assert err.count("expected a video container") == 1, err
    assert "(edit, evaluate, render not run)" in err
    report = re.search(r"report: (\S+)", err)
    assert report and Path(report.group(1)).is_file()
    # manifest: each stage's own busy time, and where the rest of the wall time went
    manifest = json.loads((run / "manifest.json").read_text())
    secs = [manifest["stages"][s]["seconds"] for s in ("segment", "edit", "evaluate", "render")]
    timing = manifest["timing"]
    assert len(set(secs)) == 4 and all(s > 0 for s in secs)
    assert sum(secs) <= timing["wall_s"]
    assert timing["busy_s"] == dict(zip(("segment", "edit", "evaluate", "render"), secs, strict=True))
    assert timing["decode_s"] > 0 and timing["other_s"] >= 0 and timing["ray_start_s"] == 0
    assert sum(secs) + sum(timing["setup_s"].values()) + timing["other_s"] == pytest.approx(timing["wall_s"],
                                                                                          abs=0.01)


def test_out_of_order_stages_are_refused_with_the_order(tmp_path: Path) -> None:
    res = lanepipe("run", "--stages", "edit,segment", "--executor", "sequential", cwd=tmp_path)
    assert res.returncode == 2
    assert "pipeline order (segment,edit,evaluate,render)" in res.stderr and "got edit,segment" in res.stderr


def test_an_output_that_cannot_be_written_exits_3_with_one_line(tmp_path: Path, sample_file: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    res = lanepipe("segment", "-i", str(sample_file), "-o", str(tmp_path / "a_file" / "runs"), "--executor",
                   "sequential")
    assert res.returncode == 3, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Not a directory" in errors[0] and "Traceback" not in res.stderr


def test_help_documents_exit_codes() -> None:
    for verb in ([], ["run"], ["segment"], ["edit"], ["evaluate"]):
        res = lanepipe(*verb, "--help")
        assert res.returncode == 0 and "1 some items failed" in res.stdout and "2 usage" in res.stdout, verb


@pytest.fixture(scope="module")
def edited_run(tmp_path_factory: pytest.TempPathFactory, sample_file: Path) -> Path:
    """``<tmp>/runs/up``: a segment,edit run (one edit) to evaluate; the tests run the CLI from ``<tmp>``."""
    tmp = tmp_path_factory.mktemp("chain")
    up = pipeline.run(load_config(None, ["stages=segment,edit", "run_id=up", "input.max_frames=6",
                                         "edit.instructions=[single white dashed]", "edit.qa.max_iterations=1"],
                                  base={"input": {"paths": [str(sample_file)]}, "output": str(tmp / "runs")}),
                      executor="sequential")
    assert [r["status"] for r in up.rows] == ["ok", "ok"]
    return Path(up.url)


def test_evaluate_from_run_renders_the_evaluations_it_wrote(edited_run: Path) -> None:
    tmp = edited_run.parents[1]
    res = lanepipe("evaluate", "--from-run", "up", "-o", "runs", "--run-id", "down", "--executor", "sequential",
                   "--set", "input.max_frames=6", cwd=tmp)
    assert res.returncode == 0, res.stderr
    overlays = list((tmp / "runs" / "down" / "evaluate").rglob("overlay.mp4"))
    assert len(overlays) == 1 and overlays[0].stat().st_size > 0
    assert "render 1/1" in res.stderr and "report: " in res.stderr


def test_from_run_takes_the_run_folder_the_cli_printed(edited_run: Path) -> None:
    tmp = edited_run.parents[1]
    # the absolute path, and the relative one as printed with -o runs; the new runs go to other roots
    for ref, out in ((str(edited_run), str(tmp / "abs")), ("runs/up", "rel")):
        res = lanepipe("evaluate", "--from-run", ref, "-o", out, "--no-render", "--executor", "sequential",
                       "--set", "input.max_frames=6", cwd=tmp)
        assert res.returncode == 0, res.stderr
        assert "1 ok, 0 failed" in res.stderr and f"from run {edited_run}" in res.stderr


def test_ray_start_up_is_quiet_unless_verbose(tmp_path: Path, sample_file: Path) -> None:
    res = lanepipe("segment", "-i", str(sample_file), "-o", str(tmp_path), "--set", "input.max_frames=2",
                   "--set", "ray.num_cpus=2")
    assert res.returncode == 0, res.stderr
    assert "core_worker.cc" not in res.stderr and not re.search(r"\bINFO\b", res.stderr), res.stderr
    assert "Token authentication" not in res.stderr and "Progress bars disabled" not in res.stderr, res.stderr


def test_make_demo_installs_only_the_core_and_paints_a_visible_change() -> None:
    # -B: the recipes whatever stamps .venv has; no MAKE* variables: CI runs this test from inside `make test`
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}

    def recipes(target: str) -> str:
        return subprocess.run(["make", "-n", "-B", "--no-print-directory", target], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True).stdout

    demo, test = recipes("demo"), recipes("test")
    installs = [line for line in demo.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv/bin/python -m pip install -q -e ."], demo
    assert "torch" not in demo and "double-yellow-solid" not in demo  # the sample already has a double yellow line
    assert "preset:single-white-dashed" in demo and "preset:no-ego-lane-markings" in demo
    assert "'.[sam2,cloud,dev,generative]'" in test and "torch==" in test and "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec make test" in ci


class FirstStage:
    """Test stage "segment": one row per clip."""

    name = "segment"

    def __init__(self, cfg: RunConfig, flags: str) -> None:
        self.cfg = cfg

    def resources(self) -> Resources:
        return self.cfg.segment.resources

    def setup(self) -> None:
        pass

    def process(self, item: StageItem) -> list[StageItem]:
        assert isinstance(item, ClipItem)
        return [ResultItem(clip=item.name, source=item.source, stage="segment")]


class WaitsForTheDriver(FirstStage):
    """Test stage "edit": waits (at most 60 s) until the driver has heard of the clip's segment row; says whether
    it did. Only live progress can tell the driver while the clip is still in the stream."""

    name = "edit"

    def __init__(self, cfg: RunConfig, flags: str) -> None:
        super().__init__(cfg, flags)
        self.flags = Path(flags)

    def resources(self) -> Resources:
        return self.cfg.edit.resources

    def process(self, item: StageItem) -> list[StageItem]:
        import time

        assert isinstance(item, ResultItem)
        flag = self.flags / item.clip
        t = time.monotonic()
        while not flag.exists() and time.monotonic() - t < 60:
            time.sleep(0.05)
        return [item, ResultItem(clip=item.clip, stage="edit", extra={"driver_knew": flag.exists()})]


def test_ray_runner_reports_each_stage_while_the_clip_is_still_in_the_stream(ray_local: object,
                                                                             tmp_path: Path) -> None:
    from lanepipe.actors.runner import RayDataRunner

    env = "{env_vars: {PYTHONPATH: '" + os.pathsep.join([str(ROOT), str(ROOT / "tests")]) + "'}}"
    cfg = load_config(None, [f"segment.resources.runtime_env={env}", f"edit.resources.runtime_env={env}"])
    specs = [StageSpec(name=n, target=f"test_cli_truth:{cls}", config="lanepipe.config:RunConfig",
                       cfg_json=cfg.model_dump_json(), args=(str(tmp_path),))
             for n, cls in (("segment", "FirstStage"), ("edit", "WaitsForTheDriver"))]
    events: list[dict[str, object]] = []

    def on_event(event: dict[str, object]) -> None:
        events.append(event)
        if event["stage"] == "segment":
            (tmp_path / str(event["clip"])).touch()

    rows = RayDataRunner(cfg.ray, events=on_event).run(specs, [{"source": "x.mp4", "name": f"c{i}"} for i in range(3)])
    edits = [r for r in rows if r["stage"] == "edit"]
    assert len(edits) == 3 and all(r["driver_knew"] for r in edits), edits
    assert sorted((e["stage"], e["clip"]) for e in events) == sorted(
        (s, f"c{i}") for s in ("segment", "edit") for i in range(3))
    assert all(float(e["busy_s"]) >= 0 for e in events)  # type: ignore[arg-type]
