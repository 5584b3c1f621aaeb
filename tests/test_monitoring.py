"""Stage metrics: exported by Ray's metrics agent after a real sweep; no-ops without Ray; never fail a stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lanepipe import monitoring, pipeline
from lanepipe.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text from the node's metrics export port → {sample name: [(labels, value)]} (lanepipe only)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if "lanepipe" in s.name:
                out[s.name].append((s.labels, s.value))
    return out


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """Sum of a metric's series whose labels match (one series per worker process)."""
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lanepipe.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), num_frames=10, width=640, height=360)


@pytest.mark.ray
def test_sweep_metrics_reach_the_prometheus_endpoint(ray_local: Any, tmp_path: Path, sample_file: Path) -> None:
    import ray

    port = int(ray._private.worker.global_worker.node.metrics_export_port)  # type: ignore[union-attr]
    assert port == ray.nodes()[0]["MetricsExportPort"]  # type: ignore[no-untyped-call]
    before = _scrape(port)  # counters are cumulative over the session: compare increases
    cfg = load_config(None, ["stages=segment,edit", "run_id=metrics", "input.max_frames=8",
                             "edit.instructions=[single white dashed]", "edit.qa.max_iterations=2"],
                      base={"input": {"paths": [str(sample_file), str(tmp_path / "missing.mp4")]},
                            "output": str(tmp_path / "runs")})
    summary = pipeline.run(cfg)
    df = pd.read_parquet(Path(summary.url) / "results.parquet")
    seg_ok = df[(df.stage == "segment") & (df.status == "ok")]
    edits = df[(df.stage == "edit") & (df.status == "ok")]
    assert len(seg_ok) == 1 and len(edits) == 1 and (df.status == "failed").sum() == 2  # missing clip: both stages
    frames = int(seg_ok.num_frames.sum())
    verdict = str(edits.qa_verdict.iloc[0])

    def grew(now: dict[str, list[tuple[dict[str, str], float]]], name: str, by: float, **labels: str) -> bool:
        return _total(now, name, **labels) - _total(before, name, **labels) >= by

    checks = {
        "segment ok": ("ray_lanepipe_clips_processed_total", 1, {"stage": "segment", "status": "ok"}),
        "segment failed": ("ray_lanepipe_clips_processed_total", 1, {"stage": "segment", "status": "failed"}),
        "edit ok": ("ray_lanepipe_clips_processed_total", 1, {"stage": "edit", "backend": "procedural",
                                                              "status": "ok"}),
        "frames": ("ray_lanepipe_frames_processed_total", frames, {"stage": "segment", "backend": "grid"}),
        "latency": ("ray_lanepipe_stage_latency_s_count", 1, {"stage": "segment", "status": "ok"}),
        "failure type": ("ray_lanepipe_failures_total", 1, {"stage": "segment", "error_type": "InputError"}),
        "upstream failure": ("ray_lanepipe_failures_total", 1, {"stage": "edit", "error_type": "UpstreamFailed"}),
        "qa verdict": ("ray_lanepipe_qa_verdicts_total", 1, {"stage": "edit", "verdict": verdict}),
    }
    deadline = time.monotonic() + 45  # workers report every few seconds
    while True:
        now = _scrape(port)
        missing = [k for k, (name, by, labels) in checks.items() if not grew(now, name, by, **labels)]
        if not missing:
            break
        assert time.monotonic() < deadline, f"metrics not exported: {missing}; have {sorted(now)}"
        time.sleep(1)
    rates = [v for lab, v in now["ray_lanepipe_qa_pass_rate"] if lab.get("stage") == "edit"]
    assert rates and all(0.0 <= r <= 1.0 for r in rates)
    assert "ray_lanepipe_stage_latency_s_bucket" in now  # a histogram: buckets for latency quantiles
    buckets = {lab["le"] for lab, _ in now["ray_lanepipe_stage_latency_s_bucket"]}
    assert {"0.5", "60.0", "+Inf"} <= buckets


def test_metrics_are_no_ops_without_ray(tmp_path: Path, synthetic_clip_file: Path) -> None:
    """A stage actor used in a process that never started Ray records nothing and works (own process: the test
    session may have Ray running)."""
    code = f"""
import json, sys
from lanepipe import monitoring
from lanepipe.actors.base import StageActor
from lanepipe.config import load_config
from lanepipe.pipeline import stage_spec
cfg = load_config(None, ["input.max_frames=4"])
a = StageActor(stage_spec("segment", cfg, {str(tmp_path)!r}, "norray", {str(tmp_path)!r}, "norray"), "norray")
out = a({{"row": [json.dumps({{"source": {str(synthetic_clip_file)!r}, "name": "clip"}})]}})
row = json.loads(out["row"][0])
assert row["status"] == "ok", row
assert not a.metrics.enabled and monitoring._METRICS is None
print("OK", row["num_frames"])
"""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["OK", "4"]
    assert (tmp_path / "norray" / "segment" / "clip" / "meta.json").exists()


def test_metric_errors_never_fail_a_stage(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("metrics backend down")

    monkeypatch.setattr(monitoring, "_metrics", Broken)
    m = monitoring.StageMetrics("edit", "procedural")
    rows = [{"stage": "edit", "status": "ok", "qa_verdict": "PASS", "num_frames": 8}]
    m.record(rows, 0.5)
    m.record(rows, 0.5)
    m.record_exception(ValueError("x"), 0.1)
    assert sum("metrics backend down" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_rows_map_to_metric_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Which series each emitted row feeds (recorded into fakes: the tag sets Ray would export)."""
    calls: list[tuple[str, float, dict[str, str]]] = []

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def inc(self, v: float, tags: dict[str, str]) -> None:
            calls.append((self.name, v, tags))

        observe = set = inc

    class FakeMetrics:
        def __getattr__(self, name: str) -> Fake:
            return Fake(name)

    monkeypatch.setattr(monitoring, "_metrics", FakeMetrics)
    m = monitoring.StageMetrics("edit", "procedural")
    passthrough = {"stage": "segment", "status": "ok", "num_frames": 8, "backend": "grid"}
    m.record([passthrough,
              {"stage": "edit", "backend": "procedural", "status": "ok", "qa_verdict": "PASS", "num_frames": 8},
              {"stage": "edit", "backend": "procedural", "status": "ok", "qa_verdict": "FAIL", "num_frames": 8},
              {"stage": "edit", "backend": "procedural", "status": "failed", "error_type": "InputError"},
              {"stage": "edit", "backend": "procedural", "status": "ok", "qa_verdict": "PASS", "skipped": True}],
             2.0)
    by = defaultdict(list)
    for name, v, tags in calls:
        by[name].append((v, tags))
    assert by["latency"] == [(2.0, {"stage": "edit", "backend": "procedural", "status": "failed"})]
    assert sorted(t["status"] for _, t in by["clips"]) == ["failed", "ok", "ok", "skipped"]
    assert by["frames"] == [(8, {"stage": "edit", "backend": "procedural"})] * 2  # not the segment row
    assert by["failures"] == [(1, {"stage": "edit", "backend": "procedural", "error_type": "InputError"})]
    assert [t["verdict"] for _, t in by["qa"]] == ["PASS", "FAIL"]  # the skipped (read back) row not again
    assert [v for v, _ in by["qa_rate"]] == [1.0, 0.5]
    # evaluate rows carry the edit's qa_verdict: not counted as QA again; their backend is the predictor
    calls.clear()
    monitoring.StageMetrics("evaluate", "lane_keep").record(
        [{"stage": "evaluate", "predictor": "lane_keep", "status": "ok", "qa_verdict": "PASS"}], 1.0)
    assert {n for n, _, _ in calls} == {"latency", "clips"}
    assert all(t["backend"] == "lane_keep" for _, _, t in calls)
    calls.clear()
    m.record([passthrough], 0.01)  # a row the stage only passes on: no latency sample, no counts
    assert calls == []


def test_actor_turns_a_raising_stage_into_a_failed_row() -> None:
    """The actor wrapper only observes rows; a stage that raises (a bug) becomes a failed row, the sweep goes on."""
    from lanepipe.actors.base import StageActor

    class Boom:
        def process(self, item: dict[str, Any]) -> list[dict[str, Any]]:
            raise KeyError("bug")

    class EditLike(StageActor):
        stage_name = "edit"

    a = EditLike.__new__(EditLike)
    a.stage, a.run_id = Boom(), "r"
    a.metrics = monitoring.StageMetrics("edit")
    seg_row = {"stage": "segment", "clip": "c", "source": "s.mp4", "status": "ok"}
    out = [json.loads(r) for r in a({"row": [json.dumps(seg_row)]})["row"]]
    assert out[0] == seg_row
    assert out[1]["stage"] == "edit" and out[1]["status"] == "failed" and out[1]["error_type"] == "KeyError"
    assert out[1]["clip"] == "c"
