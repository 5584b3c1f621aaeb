"""The generic stage actor (rows in, rows out, as JSON strings: robust Arrow blocks) and fault bookkeeping.

Fault tolerance (see :class:`lanepipe.actors.runner.RayDataRunner`): Ray restarts an actor whose process dies and
retries the task it was running on the new process, whose ``__init__`` sets the stage up again. A retried clip is
simply done again: every stage writes its outputs atomically and its marker (``meta.json`` …) last, so a
half-finished clip leaves no marker and is redone whole, and a finished one is read back. Rows a retried task
had already emitted are not emitted twice (Ray replays a streaming task's outputs by index).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lanepipe import torchkit
from lanepipe.config import Resources, RunConfig
from lanepipe.engine import Stage, StageSpec, item_from_row, item_to_row, stage_event, stamp_busy
from lanepipe.errors import ConfigError
from lanepipe.io import storage
from lanepipe.io.layout import RunStore
from lanepipe.monitoring import StageMetrics, take_model_loads

log = logging.getLogger(__name__)

#: Retries of a task whose actor died (each on the restarted actor); then the clip is reported failed.
MAX_TASK_RETRIES = 3
#: ``{"stage": {"resource": amount}}`` (JSON): custom Ray resources a stage's actors ask for, e.g.
#: ``{"evaluate": {"alpamayo": 1}}`` so they land on the Alpamayo worker group (cluster/README.md).
RESOURCES_ENV = "LANEPIPE_RAY_RESOURCES"
#: Custom resource the Alpamayo worker group advertises; evaluate actors with the alpamayo predictor ask for it
#: when the cluster has it (or through ``LANEPIPE_RAY_RESOURCES`` on an autoscaling cluster).
ALPAMAYO_RESOURCE = "alpamayo"
#: Temp names of ``storage`` atomic writes: ``.<name>.<8 hex>.tmp``.
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def configured_backend(cfg: RunConfig, stage: str) -> str:
    """The stage's backend name for metric tags (predictors for evaluate, ``default`` where none)."""
    if stage == "evaluate":
        return ",".join(cfg.evaluate.predictors)
    return str(getattr(getattr(cfg, stage, None), "backend", None) or "default")


def failure_row(stage: str, item: dict[str, Any], run_id: str, exc: BaseException) -> dict[str, Any]:
    """A results row for an item whose stage raised (stages normally report failures as rows themselves)."""
    return {"run_id": run_id, "clip": str(item.get("clip", item.get("name"))), "source": item.get("source"),
            "stage": stage, "instruction": item.get("instruction"), "status": "failed",
            "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
            "error_type": type(exc).__name__, "skipped": False}


def custom_resources(cfg: RunConfig, stage: str) -> dict[str, float]:
    """Custom Ray resources for ``stage``'s actors of a run: see :func:`resolve_custom_resources` (the evaluate
    stage prefers the ``alpamayo`` resource when it runs that predictor)."""
    prefer = (ALPAMAYO_RESOURCE,) if stage == "evaluate" and ALPAMAYO_RESOURCE in cfg.evaluate.predictors else ()
    return resolve_custom_resources(stage, getattr(cfg, stage).resources, prefer)


def resolve_custom_resources(stage: str, res: Resources, prefer: tuple[str, ...] = ()) -> dict[str, float]:
    """Custom Ray resources for ``stage``'s actors: ``res.custom_resources`` from the config, else
    ``LANEPIPE_RAY_RESOURCES`` if set, else one of each ``prefer`` resource the cluster has (e.g. ``alpamayo``
    for an evaluate stage running the alpamayo predictor)."""
    configured: dict[str, float] = dict(res.custom_resources)
    if configured:
        return configured
    raw = os.environ.get(RESOURCES_ENV, "").strip()
    if raw:
        try:
            spec = json.loads(raw)
            out = {str(k): float(v) for k, v in (spec.get(stage) or {}).items()}
        except (ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"{RESOURCES_ENV}: expected JSON like '{{\"evaluate\": {{\"alpamayo\": 1}}}}', "
                              f"got {raw!r} ({e})") from None
        return out
    if prefer:
        import ray

        have = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return {name: 1.0 for name in prefer if have.get(name, 0) > 0}
    return {}


def lost_item_rows(store: RunStore, stages: Sequence[str], item: dict[str, Any],
                   retries: int = MAX_TASK_RETRIES) -> list[dict[str, Any]]:
    """Rows for an item whose task was dropped after its actor died ``retries + 1`` times: the finished rows of
    each stage (read back from their markers), then a failed row for the first stage that did not finish."""
    clip = str(item.get("name", item.get("clip")))
    rows: list[dict[str, Any]] = []
    for stage in stages:
        done = [r | {"skipped": True} for key, r in store.finished(stage).items()
                if key == clip or key.startswith(f"{clip}/")]
        if not done:
            rows.append({"run_id": store.run_id, "clip": clip, "source": item.get("source"), "stage": stage,
                         "status": "failed", "error_type": "WorkerDied", "skipped": False,
                         "error": f"the Ray worker running this clip died {retries + 1} times (a crash or an "
                                  "out-of-memory kill); see the Ray worker logs"})
            break
        rows.extend(done)
    return rows


def remove_orphan_temps(run_url: str) -> int:
    """Delete temp files that writers killed mid-write left in a local run folder; returns how many.

    Call only when no writer of this run is active (after the run's stream is drained)."""
    if storage.is_remote(run_url):  # object stores are written with one PUT: no temp names
        return 0
    root = Path(run_url.removeprefix("file://"))
    n = 0
    for p in root.rglob(".*.tmp"):
        if TEMP_NAME.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    if n:
        log.info("removed %d temp file(s) of interrupted writes under %s", n, root)
    return n


def gpu_visibility(assigned: Sequence[Any], env: dict[str, str]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` a Ray worker should have: ``""`` (no GPU) when Ray assigned it none, so that a
    backend's ``device: auto`` cannot take a GPU it did not reserve; None (leave it) when Ray assigned GPUs (Ray set
    the variable to exactly those) or the variable already hides every GPU."""
    if assigned or env.get("CUDA_VISIBLE_DEVICES") == "":
        return None
    return ""


def hide_unreserved_gpus() -> str | None:
    """In a Ray worker that reserved no GPU, hide every GPU from it (:func:`gpu_visibility`). Called before the
    stage is built, so before torch initialises CUDA.

    Returns:
        The worker's ``CUDA_VISIBLE_DEVICES`` afterwards (``""``: none; Ray sets the ids of the GPUs it assigned), or
        None outside a Ray actor (nothing changed).
    """
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        if ray.get_runtime_context().get_actor_id() is None:  # the driver (a stage actor built in-process)
            return None
        assigned = ray.get_gpu_ids()
    except Exception:  # metadata unavailable: leave the environment alone
        return None
    value = gpu_visibility(assigned, dict(os.environ))
    if value is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = value
    return os.environ.get("CUDA_VISIBLE_DEVICES")


class StageActor:
    """The one Ray Data stateful callable; it hosts any :class:`~lanepipe.engine.Stage`.

    ``__init__`` builds the stage from its :class:`~lanepipe.engine.StageSpec` and runs ``setup()`` (its
    backends load here, once per actor); ``__call__`` maps a batch ``{"row": [json, ...]}`` to the rows the stage
    emits (failures included) and records the stage's metrics (:mod:`lanepipe.monitoring`). This is the one
    serialisation boundary: rows are JSON between actors (robust Arrow blocks), dicts inside a stage.
    """

    stage_name: str = ""
    setup_s: float | None = None  # this actor's setup() seconds, until reported on its first own row
    events: Any = None  # a ray.util.queue.Queue the driver reads for live progress, or None
    scratch: str = ""  # the run's scratch folder for writers' temp files (class default: an actor built bare)
    loads: tuple[dict[str, Any], ...] = ()  # model loads not yet reported on a row of this stage
    visible_gpus: str | None = None  # CUDA_VISIBLE_DEVICES of this Ray actor (None outside Ray)
    _stamp_lock = threading.Lock()  # resources.in_flight > 1: the actor's calls run in threads

    def __init__(self, spec: StageSpec, run_id: str = "", events: Any = None) -> None:
        self.stage_name = spec.name
        self.run_id = run_id
        self.events = events
        self.scratch = spec.scratch
        #: the GPUs this actor may use (reported on its first row as ``cuda_visible_devices`` when it holds any)
        self.visible_gpus = hide_unreserved_gpus()
        self.stage: Stage = spec.build()
        take_model_loads()
        t = time.perf_counter()
        self.stage.setup()
        self.setup_s = time.perf_counter() - t
        self.metrics = StageMetrics(spec.name, spec.backend)
        self.loads = tuple(take_model_loads())  # setup's loads, reported on the first own row
        self.metrics.record_loads(self.loads)

    def process(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """One row through the stage (as its typed item), timed and recorded; an exception becomes a failed row
        (the sweep goes on)."""
        t0 = time.perf_counter()
        try:
            with storage.scratch_dir(self.scratch):
                rows = [item_to_row(out) for out in self.stage.process(item_from_row(item))]
        except Exception as e:
            self.metrics.record_exception(e, time.perf_counter() - t0)
            passed = [item] if item.get("stage") not in (None, self.stage_name) else []
            rows = [*passed, failure_row(self.stage_name, item, self.run_id, e)]
        else:
            self.metrics.record(rows, time.perf_counter() - t0)
        self._stamp(rows, time.perf_counter() - t0)
        return rows

    def _stamp(self, rows: list[dict[str, Any]], seconds: float) -> None:
        with self._stamp_lock:
            self._stamp_rows(rows, seconds)

    def _stamp_rows(self, rows: list[dict[str, Any]], seconds: float) -> None:
        new = take_model_loads()  # loads an item caused (a backend that loads lazily, a restarted worker)
        self.metrics.record_loads(new)
        self.loads = (*self.loads, *new)
        stamp_busy(self.stage_name, rows, seconds, self.setup_s, list(self.loads))
        if self.setup_s is not None and self.visible_gpus:  # the first own row of an actor that holds GPUs
            for r in rows:
                if r.get("stage") == self.stage_name:
                    r["cuda_visible_devices"] = self.visible_gpus
                    break
        peak = torchkit.cuda_peak_mib()  # this actor's GPU memory high-water mark, where it uses CUDA
        if peak is not None:
            for r in rows:
                if r.get("stage") == self.stage_name:
                    r["gpu_peak_mib"] = peak
        own = [stage_event(r) for r in rows if r.get("stage") == self.stage_name]
        if own:
            self.setup_s = None
            self.loads = ()
        if own and self.events is not None:
            try:
                self.events.put_nowait_batch(own)
            except Exception as e:  # progress only: never fail an item for it
                log.warning("live progress event lost: %s", e)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out: list[str] = []
        for raw in batch["row"]:
            out.extend(json.dumps(r, default=str) for r in self.process(json.loads(str(raw))))
        return {"row": out}
