"""Stage metrics for dashboards: Ray application metrics (``ray.util.metrics``), exported by every node's
metrics agent in Prometheus text format (names get Ray's ``ray_`` prefix; counters a ``_total`` suffix).

Recorded by :class:`lanepipe.actors.base.StageActor` from the rows each stage emits, one series per
``stage`` / ``backend`` (the segment or edit backend; the predictor for evaluate and render rows):

================================  =========  ==============================  ====================================
metric (as exported)              type       tags                            what
================================  =========  ==============================  ====================================
``ray_lanepipe_clips_processed``  counter    stage, backend, status          results rows emitted: one per clip
                                                                             (segment), clip x instruction (edit),
                                                                             x predictor (evaluate, render);
                                                                             status ok | failed | skipped (resumed)
``ray_lanepipe_frames_processed`` counter    stage, backend                  frames of the rows done now (ok)
``ray_lanepipe_stage_latency_s``  histogram  stage, backend, status          seconds per input item (one clip) in
                                                                             the stage, status as above
``ray_lanepipe_failures``         counter    stage, backend, error_type      failed rows by exception class
``ray_lanepipe_qa_verdicts``      counter    stage, backend, verdict         edit QA verdicts (PASS / FAIL / …)
``ray_lanepipe_qa_pass_rate``     gauge      stage, backend                  PASS share of this actor's PASS/FAIL
                                                                             verdicts (one series per actor)
``ray_lanepipe_model_loads``      counter    stage, backend, model           model loads (weights read or random
                                                                             weights built): one per model per
                                                                             actor when models stay resident
``ray_lanepipe_model_load_s``     counter    stage, backend, model           seconds spent loading them
================================  =========  ==============================  ====================================

Model loads are counted where they happen: a backend wraps each load in :func:`model_load`; the stage actor takes
the process's new loads after each item (:func:`take_model_loads`), records them here and on the item's own row
(``model_loads``), and the run manifest sums them per stage (``model_loads``: loads, load seconds, models).

GPU utilisation and memory per node come from Ray itself (``ray_node_gpus_utilization``,
``ray_node_gram_used``, ``ray_node_gram_available``, exported by each node's metrics agent when ``nvidia-ml-py`` is
installed there: the ``gpu`` extra); ``cluster/monitoring/grafana-lanepipe.json`` puts them beside these.

QA pass rate over the whole cluster, in PromQL::

    sum(ray_lanepipe_qa_verdicts_total{verdict="PASS"}) / sum(ray_lanepipe_qa_verdicts_total{verdict=~"PASS|FAIL"})

Without Ray (the sequential executor, a backend used on its own, a machine without the ``ray`` package)
every call here is a no-op; a metrics error is logged once and never fails a stage.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Histogram bucket boundaries (seconds) of the per-item stage latency: CPU backends take ~0.1-10 s a clip,
#: generative edits and the Alpamayo predictor minutes.
LATENCY_BOUNDARIES_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                                           300.0, 600.0, 1800.0)
METRIC_NAMES: tuple[str, ...] = ("lanepipe_clips_processed", "lanepipe_frames_processed", "lanepipe_stage_latency_s",
                                 "lanepipe_failures", "lanepipe_qa_verdicts", "lanepipe_qa_pass_rate",
                                 "lanepipe_model_loads", "lanepipe_model_load_s")
#: Ray's own per-node GPU metrics (ray/dashboard/modules/reporter/reporter_agent.py of Ray 2.60; needs nvidia-ml-py
#: on the node), as exported.
RAY_GPU_METRICS: tuple[str, ...] = ("ray_node_gpus_utilization", "ray_node_gram_used", "ray_node_gram_available",
                                    "ray_node_gpus_available")

_LOADS: list[dict[str, Any]] = []
_LOADS_LOCK = threading.Lock()


@contextlib.contextmanager
def model_load(model: str) -> Iterator[None]:
    """Count one model load of this process (its seconds too) when the block finishes without an exception.

    Backends wrap each load of weights (or build of random weights) in it; :func:`take_model_loads` hands the
    loads to whoever reports them (the stage actor)."""
    t = time.perf_counter()
    yield
    with _LOADS_LOCK:
        _LOADS.append({"model": model, "seconds": round(time.perf_counter() - t, 6)})


def take_model_loads() -> list[dict[str, Any]]:
    """The model loads of this process since the last call (``[{"model", "seconds"}, ...]``), oldest first."""
    with _LOADS_LOCK:
        out = list(_LOADS)
        _LOADS.clear()
    return out


def record_model_loads(loads: Iterable[Mapping[str, Any]]) -> None:
    """Count loads that happened in another process (a Serve model replica) as this process's, so the runner here
    reports them on its rows (``[{"model", "seconds"}, ...]`` as :func:`take_model_loads` gave them there)."""
    with _LOADS_LOCK:
        _LOADS.extend({"model": str(x["model"]), "seconds": float(x["seconds"])} for x in loads)


def loads_columns(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """The results-row columns of some model loads: ``model_loads`` (count), ``model_load_s`` (seconds) and
    ``models_loaded`` (the models' names, comma-separated, in load order)."""
    return {"model_loads": len(loads), "model_load_s": round(sum(float(x["seconds"]) for x in loads), 6),
            "models_loaded": ",".join(str(x["model"]) for x in loads)}


def summarise_loads(rows: Iterable[Mapping[str, Any]], stages: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per stage: ``loads`` (count), ``load_s`` (seconds) and ``models`` (loads by model name) from the
    :func:`loads_columns` the runners put on the rows."""
    out: dict[str, dict[str, Any]] = {s: {"loads": 0, "load_s": 0.0, "models": {}} for s in stages}
    for r in rows:
        st = out.get(str(r.get("stage")))
        n = r.get("model_loads")
        if st is None or r.get("skipped") or not isinstance(n, (int, float)) or not n > 0:  # None, NaN (parquet)
            continue
        st["loads"] += int(n)
        st["load_s"] = round(st["load_s"] + float(r.get("model_load_s") or 0.0), 6)
        for name in str(r.get("models_loaded") or "").split(","):
            if name:
                st["models"][name] = st["models"].get(name, 0) + 1
    return out


def ray_ready() -> bool:
    """True when this process is connected to Ray (a driver after ``ray.init`` or any Ray worker)."""
    try:
        import ray
    except ImportError:
        return False
    return bool(ray.is_initialized())


class _RayMetrics:
    """The ``ray.util.metrics`` objects; created once per process (metric names are process-wide)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self.clips = Counter("lanepipe_clips_processed", "results rows emitted by a stage (one per clip, "
                             "clip x instruction or clip x instruction x predictor)",
                             tag_keys=("stage", "backend", "status"))
        self.frames = Counter("lanepipe_frames_processed", "frames of the rows a stage finished now",
                              tag_keys=("stage", "backend"))
        self.latency = Histogram("lanepipe_stage_latency_s", "seconds a stage spent on one input item",
                                 boundaries=list(LATENCY_BOUNDARIES_S), tag_keys=("stage", "backend", "status"))
        self.failures = Counter("lanepipe_failures", "failed results rows by stage and error type",
                                tag_keys=("stage", "backend", "error_type"))
        self.qa = Counter("lanepipe_qa_verdicts", "edit QA verdicts", tag_keys=("stage", "backend", "verdict"))
        self.qa_rate = Gauge("lanepipe_qa_pass_rate", "PASS share of the QA verdicts this actor produced",
                             tag_keys=("stage", "backend"))
        self.loads = Counter("lanepipe_model_loads", "model loads (weights read or random weights built)",
                             tag_keys=("stage", "backend", "model"))
        self.load_s = Counter("lanepipe_model_load_s", "seconds spent loading models",
                              tag_keys=("stage", "backend", "model"))


_METRICS: _RayMetrics | None = None


def _metrics() -> _RayMetrics | None:
    global _METRICS  # noqa: PLW0603 - one set of metric objects per process
    if _METRICS is None and ray_ready():
        _METRICS = _RayMetrics()
    return _METRICS


def row_status(row: Mapping[str, Any]) -> str:
    """``skipped`` for a row read back from a finished item, else its ``status`` (ok | failed)."""
    return "skipped" if row.get("skipped") else str(row.get("status") or "unknown")


def row_backend(row: Mapping[str, Any], default: str = "default") -> str:
    return str(row.get("backend") or row.get("predictor") or default)


class StageMetrics:
    """Records one stage's metrics from the rows it emits. Cheap to create; a no-op without Ray."""

    def __init__(self, stage: str, backend: str = "default") -> None:
        self.stage = stage
        self.backend = backend
        self.qa_seen: dict[str, list[int]] = {}  # backend -> [passed, verdicts]
        self._warned = False

    @property
    def enabled(self) -> bool:
        return _metrics() is not None

    def record(self, rows: Iterable[Mapping[str, Any]], seconds: float) -> None:
        """One input item went through the stage in ``seconds`` and produced ``rows`` (rows of other stages
        passed through are ignored)."""
        try:
            self._record(list(rows), seconds)
        except Exception as e:  # metrics must never fail a sweep
            self._warn(e)

    def record_loads(self, loads: Iterable[Mapping[str, Any]]) -> None:
        """Model loads of this actor (:func:`take_model_loads`)."""
        try:
            m = _metrics()
            if m is None:
                return
            for load in loads:
                tags = {"stage": self.stage, "backend": self.backend, "model": str(load.get("model"))}
                m.loads.inc(1, tags)
                if float(load.get("seconds") or 0.0) > 0:  # a Ray counter takes only positive increments
                    m.load_s.inc(float(load["seconds"]), tags)
        except Exception as e:
            self._warn(e)

    def record_exception(self, exc: BaseException, seconds: float) -> None:
        """The stage raised instead of returning rows (a bug: stages record their own failures as rows)."""
        try:
            m = _metrics()
            if m is None:
                return
            m.failures.inc(1, {"stage": self.stage, "backend": self.backend, "error_type": type(exc).__name__})
            m.latency.observe(max(seconds, 0.0), {"stage": self.stage, "backend": self.backend, "status": "failed"})
        except Exception as e:
            self._warn(e)

    def _record(self, rows: list[Mapping[str, Any]], seconds: float) -> None:
        m = _metrics()
        if m is None:
            return
        mine = [r for r in rows if r.get("stage") == self.stage]
        if not mine:  # a row of another stage passed through: nothing done here
            return
        statuses = {row_status(r) for r in mine}
        overall = "failed" if "failed" in statuses else "ok" if "ok" in statuses else \
            "skipped" if statuses == {"skipped"} else "unknown"
        backend = row_backend(mine[0], self.backend)
        m.latency.observe(max(seconds, 0.0), {"stage": self.stage, "backend": backend, "status": overall})
        for r in mine:
            b = row_backend(r, self.backend)
            status = row_status(r)
            m.clips.inc(1, {"stage": self.stage, "backend": b, "status": status})
            if status == "skipped":
                continue
            if status == "ok" and int(r.get("num_frames") or 0) > 0:
                m.frames.inc(int(r["num_frames"]), {"stage": self.stage, "backend": b})
            if status == "failed":
                m.failures.inc(1, {"stage": self.stage, "backend": b,
                                   "error_type": str(r.get("error_type") or "unknown")})
            if self.stage == "edit" and r.get("qa_verdict"):
                verdict = str(r["qa_verdict"])
                m.qa.inc(1, {"stage": self.stage, "backend": b, "verdict": verdict})
                if verdict not in ("PASS", "FAIL"):  # SKIPPED: QA disabled
                    continue
                seen = self.qa_seen.setdefault(b, [0, 0])
                seen[0] += verdict == "PASS"
                seen[1] += 1
                m.qa_rate.set(seen[0] / seen[1], {"stage": self.stage, "backend": b})

    def _warn(self, e: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("lanepipe metrics of stage %s: %s: %s (logged once; the stage goes on)", self.stage,
                        type(e).__name__, e)
