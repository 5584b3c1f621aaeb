"""CPU work off the device's critical path (issue 15, lever 5): clips in flight in one edit actor take turns on the
device while the others decode, composite and encode (:mod:`lanepipe.stages.edit`, :class:`DeviceTurn`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.io.video import decode
from lanepipe.monitoring import (
    DeviceTurn,
    collect_spans,
    device_wait_summary,
    idle_per_item,
    lend_device,
    merged,
    overlap_s,
    release_device,
    span,
    spans_of,
    union_s,
)

GEN = ["edit.backend=flux_cogvideox", "edit.preset=tiny-random", "edit.qa.max_iterations=1",
       "edit.instructions=[double yellow solid]", "input.max_frames=8"]
SLUG = "double-yellow-solid"


# ------------------------------------------------------------------------------------------ spans and the turn
def test_interval_sums() -> None:
    assert union_s([(0, 2), (1, 3), (5, 6), (4, 4)]) == pytest.approx(4.0)
    assert merged([(5, 6), (0, 2), (1, 3), (4, 4)]) == [(0, 3), (5, 6)]
    assert overlap_s([(0, 2), (5, 6)], [(1, 5.5)]) == pytest.approx(1.5)
    assert overlap_s([(0, 1)], [(1, 2)]) == 0.0
    s = device_wait_summary([{"kind": "cpu", "name": "decode", "t0": 0, "t1": 1},
                             {"kind": "device", "name": "flux", "t0": 1, "t1": 3},
                             {"kind": "cpu", "name": "encode", "t0": 2.5, "t1": 4}])
    assert (s["wall_s"], s["device_s"], s["idle_s"], s["overlap_s"]) == pytest.approx((4, 2, 2, 0.5))
    assert s["idle_fraction"] == pytest.approx(0.5)


def _spans(*items: tuple[str, str, float, float]) -> list[dict]:
    return [{"kind": k, "name": n, "t0": a, "t1": b} for k, n, a, b in items]


def test_idle_per_item_charges_each_gap_to_the_clip_whose_window_holds_it() -> None:
    a = _spans(("cpu", "decode", 0, 1), ("device", "flux", 1, 3), ("cpu", "encode", 3, 4))
    b = _spans(("cpu", "decode", 1, 2), ("device", "flux", 3.5, 6), ("cpu", "encode", 6, 7))
    out = idle_per_item({"b": b, "a": a, "c": _spans(("cpu", "decode", 7, 8))})  # c: no model call, left out
    assert set(out) == {"a", "b"}
    assert (out["a"]["t0"], out["a"]["t1"], out["a"]["idle_s"]) == pytest.approx((0, 3.5, 1.5))
    assert (out["b"]["t0"], out["b"]["t1"], out["b"]["idle_s"]) == pytest.approx((3.5, 8, 2.0))
    assert out["b"]["idle_fraction"] == pytest.approx(2.0 / 4.5)

    from lanepipe.testing import load_script

    bench = load_script("benchmarks/gpu_pipeline.py", "gpu_pipeline_bench")
    rows = [{"clip": c, "stage": "edit", "worker_pid": 7, "spans": json.dumps(v)} for c, v in (("a", a), ("b", b))]
    samples = [{"t": t, "gpu": 0, "util_pct": u} for t, u in ((0.5, 0), (2.0, 100), (5.0, 100), (7.5, 0))]
    got = bench.gpu_wait_per_clip(rows, samples)
    assert got["per_clip"]["a"]["gpu_idle_waiting_on_cpu_s"] == 1.5
    assert got["per_clip"]["a"]["nvml_busy_fraction"] == pytest.approx(0.5)
    assert got["median_fraction"] == pytest.approx((1.5 / 3.5 + 1.0 / 3.5) / 2, abs=1e-4)  # b ends at 7 here


def test_device_turn_serialises_model_calls_and_hands_on_early() -> None:
    """Two threads: their device spans never overlap; the first one's work after :func:`release_device` runs while
    the second holds the turn; spans go to each thread's own collection."""
    turn = DeviceTurn()
    got: dict[str, list[dict]] = {}
    released, b_done = threading.Event(), threading.Event()

    def work(name: str, first: bool) -> None:
        if not first:
            assert released.wait(10)
        with collect_spans() as spans, turn.hold():
            with span("device", "model"):
                time.sleep(0.05)
            if not first:
                b_done.set()
            release_device()
            if first:
                released.set()
            with span("cpu", "encode"):  # a encodes until b's model call is over
                assert b_done.wait(10) if first else True
        got[name] = spans

    threads = [threading.Thread(target=work, args=(n, n == "a")) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s["name"] for s in got["a"]] == ["device_turn", "model", "encode"]
    assert overlap_s(spans_of(got["a"], "device"), spans_of(got["b"], "device")) == 0.0
    assert overlap_s(spans_of(got["a"], "cpu"), spans_of(got["b"], "device")) > 0
    release_device()  # outside a turn: nothing to do
    with turn.hold():  # the turn is free again after early releases
        pass


def test_a_turn_lent_for_a_cpu_step_lets_the_other_clip_run_its_model_call() -> None:
    """Clip a lends its turn during a CPU step (the QA checks): clip b, waiting, runs its model call then; a takes
    the turn back only after b released it, so model calls still never overlap, and a's wait is recorded."""
    turn = DeviceTurn()
    got: dict[str, list[dict]] = {}
    a_holds, b_ran = threading.Event(), threading.Event()

    def a() -> None:
        with collect_spans() as spans, turn.hold():
            with span("device", "judge"):
                a_holds.set()
                time.sleep(0.05)
            with span("cpu", "checks"), lend_device():
                assert b_ran.wait(10)  # b's model call ran inside a's CPU step
            with span("device", "propagate"):
                time.sleep(0.01)
        got["a"] = spans

    def b() -> None:
        assert a_holds.wait(10)
        with collect_spans() as spans, turn.hold():
            with span("device", "flux"):
                time.sleep(0.05)
            b_ran.set()
            time.sleep(0.05)  # still b's turn: a must wait for it
        got["b"] = spans

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [s["name"] for s in got["a"]]
    assert names.count("device_turn") == 2 and names[-1] == "propagate"
    assert overlap_s(spans_of(got["a"], "device"), spans_of(got["b"], "device")) == 0.0
    wait_back = [s for s in got["a"] if s["name"] == "device_turn"][-1]
    assert wait_back["t1"] - wait_back["t0"] > 0.02  # a waited for b's turn to end
    with lend_device():  # outside a turn: nothing to lend
        pass
    with turn.hold():  # the turn is free again
        pass


# ------------------------------------------------------------------------------------------ through Ray
@pytest.mark.ray
def test_clips_in_flight_overlap_cpu_work_with_model_calls_same_outputs(
        ray_local, tmp_path: Path, make_road_clip: Callable[[Path, int], Path]) -> None:
    """4 clips through a Ray edit actor (flux_cogvideox, tiny-random), one clip at a time vs two in flight: the same
    frames; with two in flight one clip's CPU work runs during another's model calls; an encode that fails (its
    output path is taken by a folder) fails that clip's row only."""
    clips = [make_road_clip(tmp_path / f"clip{i}.mp4", 80 + 6 * i) for i in range(4)]
    up = load_config(None, ["stages=segment", "run_id=up", "input.max_frames=8", "segment.overlay=false",
                            "segment.videopainter=false"],
                     base={"input": {"paths": [str(p) for p in clips]}, "output": str(tmp_path)})
    assert all(r["status"] == "ok" for r in pipeline.run(up, executor="sequential").rows)

    def edit(run_id: str, in_flight: int) -> pd.DataFrame:
        cfg = load_config(None, [*GEN, "stages=edit", "from_run=up", f"run_id={run_id}",
                                 "edit.resources.concurrency=1", f"edit.resources.in_flight={in_flight}"],
                          base={"input": {"paths": []}, "output": str(tmp_path)})
        pipeline.run(cfg)
        df = pd.read_parquet(tmp_path / run_id / "results.parquet")
        return df[df.stage == "edit"].set_index("clip")

    blocked = tmp_path / "two" / "edit" / "clip2" / SLUG / "edited.mp4"
    blocked.mkdir(parents=True)  # a real write failure: the rename onto it fails
    one, two = edit("one", 1), edit("two", 2)
    assert (one.status == "ok").all(), one.error.tolist()
    assert two.loc["clip2"].status == "failed" and "edited.mp4" in str(two.loc["clip2"].error)
    assert not (blocked.parent / "meta.json").exists()  # not marked finished: a resume redoes it
    for c in ("clip0", "clip1", "clip3"):
        assert two.loc[c].status == "ok", two.loc[c].error
        a, b = (tmp_path / r / "edit" / c / SLUG for r in ("one", "two"))
        assert (a / "first_frame.png").read_bytes() == (b / "first_frame.png").read_bytes()
        np.testing.assert_array_equal(decode(str(a / "edited.mp4"), target_fps=None).frames,
                                      decode(str(b / "edited.mp4"), target_fps=None).frames)

    spans = {c: json.loads(s) for c, s in two.spans.items()}
    for c, sp in spans.items():  # each clip: decode, model calls, compositing; encode where it got that far
        names = {s["name"] for s in sp}
        assert {"decode", "preprocess", "flux", "cogvideox", "composite"} <= names, (c, names)
        assert two.loc[c].device_s > 0 and two.loc[c].cpu_s > 0
        paint = min(s["t0"] for s in sp if s["kind"] == "paint")  # the device turn's start
        assert all(s["t1"] <= paint for s in sp if s["name"] in ("decode", "preprocess")), c  # before the turn
    ok = [c for c in spans if c != "clip2"]
    assert all("encode" in {s["name"] for s in spans[c]} for c in ok)
    devices = {c: spans_of(sp, "device") for c, sp in spans.items()}
    for a in spans:  # one clip on the device at a time
        for b in spans:
            if a < b:
                assert overlap_s(devices[a], devices[b]) == 0.0, (a, b)
    hidden = sum(overlap_s(spans_of(spans[a], "cpu"), devices[b]) for a in spans for b in spans if a != b)
    assert hidden > 0  # another clip's CPU work ran during model calls
    timing = json.loads((tmp_path / "two" / "manifest.json").read_text())["timing"]["spans_s"]["edit"]
    assert timing["device_s"] == pytest.approx(two.device_s.sum(), abs=0.01) and timing["cpu_s"] > 0
    serial = {c: json.loads(s) for c, s in one.spans.items()}
    assert sum(overlap_s(spans_of(serial[a], "cpu"), spans_of(serial[b], "device"))
               for a in serial for b in serial if a != b) == 0.0  # one clip at a time: nothing hidden
