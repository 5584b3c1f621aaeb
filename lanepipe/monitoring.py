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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


# ---------------------------------------------------------------------------------------------- device / CPU spans
#: Span kinds: ``device`` (model calls: denoising, transformer, VAE, the judge's forward), ``cpu`` (decode,
#: pre-processing, compositing, metrics, encoding, writing) and ``wait`` (a clip waiting for its device turn).
SPAN_KINDS: tuple[str, ...] = ("device", "cpu", "wait")
_SPANS = threading.local()


@contextlib.contextmanager
def collect_spans() -> Iterator[list[dict[str, Any]]]:
    """Collect the :func:`span` records of this thread inside the block into the yielded list (nested blocks
    collect their own; the outer one resumes afterwards)."""
    prev = getattr(_SPANS, "sink", None)
    out: list[dict[str, Any]] = []
    _SPANS.sink = out
    try:
        yield out
    finally:
        _SPANS.sink = prev


@contextlib.contextmanager
def span(kind: str, name: str) -> Iterator[None]:
    """Record ``{"kind", "name", "t0", "t1"}`` (wall-clock seconds, ``time.time``: comparable across the threads of
    an actor and with NVML samples) for the block, into this thread's :func:`collect_spans` list; a no-op outside
    one. The span is recorded when the block raises too."""
    sink = getattr(_SPANS, "sink", None)
    t0 = time.time()
    try:
        yield
    finally:
        if sink is not None:
            sink.append({"kind": kind, "name": name, "t0": round(t0, 6), "t1": round(time.time(), 6)})


def merged(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, merged ``(t0, t1)`` intervals (empty ones dropped)."""
    out: list[tuple[float, float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in intervals if b > a):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def union_s(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``(t0, t1)`` intervals."""
    return sum(b - a for a, b in merged(intervals))


def overlap_s(a: Iterable[tuple[float, float]], b: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by both the union of ``a`` and the union of ``b``."""
    ma, mb = merged(a), merged(b)
    i = j = 0
    total = 0.0
    while i < len(ma) and j < len(mb):
        lo, hi = max(ma[i][0], mb[j][0]), min(ma[i][1], mb[j][1])
        total += max(0.0, hi - lo)
        if ma[i][1] < mb[j][1]:
            i += 1
        else:
            j += 1
    return total


def spans_of(spans: Iterable[Mapping[str, Any]], kind: str) -> list[tuple[float, float]]:
    """The ``(t0, t1)`` of the spans of one kind."""
    return [(float(s["t0"]), float(s["t1"])) for s in spans if s.get("kind") == kind]


def device_wait_summary(spans: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """How much of a window of work the device spent waiting on the CPU, from spans of one actor (any clips).

    The window runs from the first span's start to the last one's end; ``device_s`` is the union of the device
    spans, ``cpu_s`` of the CPU spans, ``idle_s = wall_s - device_s`` (the device had nothing to run: the actor was
    on CPU work, or between items), ``overlap_s`` the CPU seconds that ran while a device span ran (another clip's
    CPU work hidden behind this one's model calls) and ``idle_fraction = idle_s / wall_s``."""
    if not spans:
        return {"wall_s": 0.0, "device_s": 0.0, "cpu_s": 0.0, "idle_s": 0.0, "overlap_s": 0.0, "idle_fraction": 0.0}
    lo = min(float(s["t0"]) for s in spans)
    hi = max(float(s["t1"]) for s in spans)
    dev, cpu = spans_of(spans, "device"), spans_of(spans, "cpu")
    wall, d = hi - lo, union_s(dev)
    return {"wall_s": round(wall, 6), "device_s": round(d, 6), "cpu_s": round(union_s(cpu), 6),
            "idle_s": round(wall - d, 6), "overlap_s": round(overlap_s(cpu, dev), 6),
            "idle_fraction": round((wall - d) / wall, 6) if wall > 0 else 0.0}


class DeviceTurn:
    """One clip at a time on the device, while other clips of the same actor do their CPU work.

    A stage that works on several items at once in one actor (``resources.in_flight > 1``) holds the turn around
    its device work (:meth:`hold`); a backend ends it early with :func:`release_device` once its last model call
    of the item is done (e.g. before compositing), so the next item's model calls start while this one
    composites and encodes. Time spent waiting for the turn is recorded as a ``wait`` span."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with span("wait", "device_turn"):
            self._lock.acquire()
        _SPANS.turn = self
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        """End this thread's turn (no-op where it holds none)."""
        if getattr(_SPANS, "turn", None) is self:
            _SPANS.turn = None
            self._lock.release()

    def take(self) -> None:
        """Take the turn back after a :func:`lend_device` (waiting is a ``wait`` span)."""
        with span("wait", "device_turn"):
            self._lock.acquire()
        _SPANS.turn = self


def release_device() -> None:
    """End the current thread's :class:`DeviceTurn` early: its remaining work for the item is CPU work. A no-op
    outside a turn (a backend used on its own, one item at a time)."""
    turn = getattr(_SPANS, "turn", None)
    if turn is not None:
        turn.release()


@contextlib.contextmanager
def lend_device() -> Iterator[None]:
    """Within a :class:`DeviceTurn`, let another clip of the actor use the device during a CPU step whose result
    this clip's next model call needs (the QA loop's image checks between the judge and propagation: about 1 s of
    each ~24 s edit on the H200 run of 2026-12-05, with the GPU idle); the turn is taken back afterwards, after
    whatever model work the other clip started. A no-op outside a turn."""
    turn = getattr(_SPANS, "turn", None)
    if turn is None:
        yield
        return
    turn.release()
    try:
        yield
    finally:
        turn.take()


def idle_per_item(spans_by_item: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """The device's idle time charged to each item of one actor (the spans of each item, e.g. each clip's rows).

    Items are ordered by their first device span; item ``i`` owns the window from its first device span to the
    next item's (the first item's from the actor's first span, so its decode counts; the last item's to the
    actor's last span, so its encode counts). ``idle_s`` is the part of the window no device span of any item
    covers: the device waited on CPU work. Items without device spans are left out."""
    starts = {k: min(t0 for t0, _ in spans_of(v, "device")) for k, v in spans_by_item.items()
              if spans_of(v, "device")}
    if not starts:
        return {}
    every = [s for v in spans_by_item.values() for s in v]
    lo, hi = min(float(s["t0"]) for s in every), max(float(s["t1"]) for s in every)
    device = merged(spans_of(every, "device"))
    order = sorted(starts, key=lambda k: starts[k])
    out: dict[str, dict[str, float]] = {}
    for i, k in enumerate(order):
        a = lo if i == 0 else starts[k]
        b = starts[order[i + 1]] if i + 1 < len(order) else hi
        busy = overlap_s(device, [(a, b)])
        out[k] = {"t0": round(a, 6), "t1": round(b, 6), "window_s": round(b - a, 6), "idle_s": round(b - a - busy, 6),
                  "idle_fraction": round((b - a - busy) / (b - a), 6) if b > a else 0.0}
    return out
