"""The Ray Data runner: items stream through one actor pool per stage, each actor the generic
:class:`~lanepipe.actors.base.StageActor` hosting one :class:`~lanepipe.engine.Stage`.

Fault tolerance (knobs checked in ray/data/_internal/execution/operators/actor_pool_map_operator.py,
ray/data/context.py, ray/data/_internal/execution/streaming_executor_state.py of Ray 2.60): an actor whose process
dies is restarted (Ray Data's default ``max_restarts=-1`` for actor pools) and the task it was running is retried
on it, up to :data:`~lanepipe.actors.base.MAX_TASK_RETRIES` times; one task in flight per actor (``resources.in_flight``
where a stage overlaps clips), so a crash takes down only the items being processed. An item whose actor keeps
dying is dropped from the stream (not the whole sweep) and reported by the runner's ``lost`` callback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from lanepipe.actors.base import MAX_TASK_RETRIES, StageActor, resolve_custom_resources
from lanepipe.config import RayConfig, Resources
from lanepipe.engine import ProgressFn, Row, Runner, SequentialRunner, StageSpec, item_key
from lanepipe.engine.lifecycle import raise_pending
from lanepipe.engine.stage import fit_asks, gpu_shortfall
from lanepipe.errors import InterruptError

LostFn = Callable[[Row], list[Row]]
log = logging.getLogger(__name__)


#: Ray reads this when ``ray._private.ray_constants`` is imported: "0" makes a node's IP the loopback address, so
#: every gRPC server, agent and the metrics exporter of a local instance bind 127.0.0.1 instead of all interfaces
#: (checked in ray/_private/services.py ``get_node_ip_address``, ray/dashboard/agent.py and
#: ray/dashboard/modules/reporter/reporter_agent.py of Ray 2.60).
_RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _local_ray_kwargs(ray_cfg: RayConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"address": "local", "num_cpus": ray_cfg.num_cpus, "num_gpus": ray_cfg.num_gpus,
                              "dashboard_host": "127.0.0.1" if ray_cfg.bind_host in LOOPBACK else ray_cfg.bind_host}
    if ray_cfg.bind_host not in LOOPBACK:
        kwargs["_node_ip_address"] = ray_cfg.bind_host
    return kwargs


_STARTED_HERE: list[bool] = []  # non-empty while a local instance start_ray started is up


def _ray_descendants() -> list[Any]:
    """This process's Ray descendants (GCS, raylet, its agents and workers), if psutil (Ray's ``default`` extra)
    is there."""
    try:
        import psutil
    except ImportError:
        return []
    out = []
    try:
        for p in psutil.Process().children(recursive=True):
            try:
                if any("ray" in part for part in [p.name(), *p.cmdline()]):
                    out.append(p)
            except psutil.Error:
                continue
    except psutil.Error:
        return []
    return out


def stop_local_ray(grace_s: float = 2.0) -> bool:
    """Shut down the local Ray instance :func:`start_ray` started in this process (its raylet, GCS, agents and
    workers); a joined cluster is left alone. True if one was stopped.

    ``ray.shutdown()`` stops the GCS and raylet; the agents the raylet started notice its death late (minutes,
    listening all the while), so those of this process's Ray descendants still there after ``grace_s`` are
    terminated (then killed)."""
    if not _STARTED_HERE:
        return False
    import ray

    _STARTED_HERE.clear()
    procs = _ray_descendants()
    if ray.is_initialized():
        ray.shutdown()
    if procs:
        import psutil

        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for sig_name in ("terminate", "kill"):  # the agents wait out SIGTERM: a short wait, then SIGKILL
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    getattr(p, sig_name)()
            _, alive = psutil.wait_procs(alive, timeout=1.0)
    return True


def start_ray(ray_cfg: RayConfig, *, log_to_driver: bool = False) -> float:
    """Start or join Ray (``ray_cfg.address``: ``local`` or a cluster); seconds taken, 0 when already running.

    A local instance listens on ``ray_cfg.bind_host`` only (127.0.0.1 by default: no Ray port, agent or metrics
    endpoint answers from another machine)."""
    import ray

    if ray.is_initialized():
        return 0.0
    t = time.perf_counter()
    # LANEPIPE_RAY_LOG_LEVEL: the CLI sets ERROR unless -v (lanepipe.progress.quiet_ray)
    level = os.environ.get("LANEPIPE_RAY_LOG_LEVEL", "WARNING")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": level, "log_to_driver": log_to_driver}
    if ray_cfg.address != "local":
        ray.init(address=ray_cfg.address, **kwargs)
        return time.perf_counter() - t
    from ray._private import ray_constants

    loopback = ray_cfg.bind_host in LOOPBACK
    saved_env, saved_const = os.environ.get(_RAY_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    if loopback:  # the processes Ray spawns read the variable, this one the constant (read at each call)
        os.environ[_RAY_CLUSTER_ENV] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
    main = threading.current_thread() is threading.main_thread()
    term = signal.getsignal(signal.SIGTERM) if main else None
    _STARTED_HERE.append(True)  # before init: an interrupt during start-up leaves processes to stop too
    # a Ctrl-C inside ray.init was lost or crashed the driver (exit 0 after the whole run, or SIGSEGV): it waits
    # until the start-up is done, then stops the run as usual. Ray blocks SIGINT in the processes it starts anyway
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
    try:
        ray.init(**kwargs, **_local_ray_kwargs(ray_cfg))
        if callable(term):  # ray.init replaces a SIGTERM handler of ours (a run's clean stop) with sys.exit
            signal.signal(signal.SIGTERM, term)
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a Ctrl-C that came meanwhile is delivered here
            held = None
    except SystemExit as e:  # that sys.exit, on a SIGTERM during start-up: stop as our handler would
        if callable(term) and e.code == signal.SIGTERM:
            signal.signal(signal.SIGTERM, term)
            raise InterruptError(signal.SIGTERM, "SIGTERM") from None
        raise
    finally:
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if loopback:
            ray_constants.ENABLE_RAY_CLUSTER = saved_const
            if saved_env is None:
                os.environ.pop(_RAY_CLUSTER_ENV, None)
            else:
                os.environ[_RAY_CLUSTER_ENV] = saved_env
    return time.perf_counter() - t


def item_stream(items: list[Row]) -> Any:
    """A Ray Dataset of one JSON ``row`` per item, one block each, that drops (rather than fails on) an item whose
    actor keeps dying: the caller reports the missing items (see :class:`RayDataRunner`)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    errored_blocks, ctx.max_errored_blocks = ctx.max_errored_blocks, -1
    try:  # the dataset keeps a copy of the context: other datasets of this process keep the default
        return ray.data.from_items([{"row": json.dumps(i)} for i in items], override_num_blocks=len(items))
    finally:
        ctx.max_errored_blocks = errored_blocks


def pool_strategy(res: Resources) -> Any:
    """``ActorPoolStrategy`` for ``res``: ``min_concurrency``..``concurrency`` actors (a fixed pool when no
    minimum is set), ``res.in_flight`` tasks in flight per actor (default one).

    With ``in_flight > 1`` that many calls run at once in each actor, in threads (Ray 2.60's
    ``max_concurrent_calls_per_actor`` with ``enable_true_multi_threading``, ray/data/_internal/compute.py): the
    stage itself runs its model calls one clip at a time (:class:`lanepipe.monitoring.DeviceTurn`) while the other
    clips decode, composite and encode. A crash of such an actor retries each of its in-flight clips."""
    import ray.data

    lo = res.concurrency if res.min_concurrency is None else res.min_concurrency
    if res.in_flight > 1:
        return ray.data.ActorPoolStrategy(min_size=lo, max_size=res.concurrency,
                                          max_tasks_in_flight_per_actor=res.in_flight,
                                          max_concurrent_calls_per_actor=res.in_flight,
                                          enable_true_multi_threading=True)
    return ray.data.ActorPoolStrategy(min_size=lo, max_size=res.concurrency, max_tasks_in_flight_per_actor=1)


_ACTOR_CLASSES: dict[str, type[StageActor]] = {}


def actor_class(stage: str) -> type[StageActor]:
    """The generic :class:`StageActor` under a per-stage name (``SegmentActor``, ``EditActor`` …), so Ray's
    actor table and dashboard say which stage an actor runs; the behaviour is :class:`StageActor`'s."""
    name = "".join(p.title() for p in stage.split("_")) + "Actor"
    if name not in _ACTOR_CLASSES:
        _ACTOR_CLASSES[name] = type(name, (StageActor,), {"__doc__": f"StageActor hosting the {stage} stage."})
    return _ACTOR_CLASSES[name]


def through_actor_pool(ds: Any, spec: StageSpec, res: Resources, custom: dict[str, float] | None = None,
                       run_id: str = "", events: Any = None) -> Any:
    """``ds.map_batches`` through a pool of :class:`StageActor` hosting ``spec``'s stage, sized by ``res``."""
    # Named map_batches parameters for everything Ray 2.60 names (num_cpus, num_gpus, resources, runtime_env);
    # max_task_retries has no named parameter, no ActorPoolStrategy/DataContext field (ray_remote_args_fn is
    # deprecated too), and Ray Data's default is -1 (retry forever), which would hang a sweep on a clip that kills
    # its actor every time. So it stays a **ray_remote_args entry; Ray's deprecation warning for it is left
    # visible on purpose (nothing is filtered).
    kwargs: dict[str, Any] = {"spec": spec, "run_id": run_id} | ({"events": events} if events is not None else {})
    return ds.map_batches(actor_class(spec.name), fn_constructor_kwargs=kwargs,
                          batch_size=res.batch_size, compute=pool_strategy(res), num_cpus=res.num_cpus,
                          num_gpus=res.num_gpus or None, resources=custom or None,
                          runtime_env=res.runtime_env or None, max_task_retries=MAX_TASK_RETRIES)


def drain(ds: Any, progress: ProgressFn | None) -> list[Row]:
    """Every row the stream emits (JSON-decoded), reported to ``progress`` as it arrives."""
    rows: list[Row] = []
    for item in ds.iter_rows():
        raise_pending()  # a Ctrl-C that Ray Data's iterator swallowed
        row = json.loads(item["row"])
        rows.append(row)
        if progress:
            progress(row)
    raise_pending()
    return rows


def worker_died_row(item: Row, stage: str) -> Row:
    """A failed row for an item dropped after its actor died ``MAX_TASK_RETRIES + 1`` times."""
    return {"clip": item_key(item), "source": item.get("source"), "stage": stage, "status": "failed",
            "error_type": "WorkerDied", "skipped": False,
            "error": f"the Ray worker running this clip died {MAX_TASK_RETRIES + 1} times (a crash or an "
                     "out-of-memory kill); see the Ray worker logs"}


class EventRelay:
    """A Ray queue the stage actors put :func:`~lanepipe.engine.stage_event` rows into, and a driver thread that
    hands them to ``callback`` as they come; :meth:`close` delivers the rest and removes the queue."""

    def __init__(self, callback: ProgressFn) -> None:
        from ray.util.queue import Queue

        self.callback = callback
        self.queue = Queue(actor_options={"num_cpus": 0})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="lanepipe-progress", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        from ray.util.queue import Empty

        while not self.stop.is_set():
            try:
                event = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue is gone (Ray shut down): progress only
                return
            self.callback(event)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        try:
            while not self.queue.empty():
                self.callback(self.queue.get_nowait())
            self.queue.shutdown()
        except Exception as e:  # progress only
            log.warning("live progress queue: %s", e)


class RayDataRunner:
    """Streams items through one autoscaling actor pool per stage (Ray Data ``map_batches``), in order.

    Args:
        ray: where to start or join Ray.
        lost: rows for an item that never came out of the stream (its actor died every retry); default: one
            :func:`worker_died_row` for the first stage.
        prefer: per stage name, custom resources to ask for when the cluster has them.
        run_id: written into rows of items whose stage raised.
        after: called once the stream is drained (e.g. remove temp files of killed writers).
        events: called (from a driver thread) with each row's :func:`~lanepipe.engine.stage_event` as soon as its
            stage emitted it, through a Ray queue the actors write to (live per-stage progress).
    """

    def __init__(self, ray: RayConfig, *, lost: LostFn | None = None,
                 prefer: dict[str, tuple[str, ...]] | None = None, run_id: str = "",
                 after: Callable[[], object] | None = None, events: ProgressFn | None = None) -> None:
        self.ray = ray
        self.lost = lost
        self.prefer = prefer or {}
        self.run_id = run_id
        self.after = after
        self.events = events
        self.ray_init_s = 0.0

    def run(self, specs: Sequence[StageSpec], items: list[Row], progress: ProgressFn | None = None) -> list[Row]:
        import ray

        self.ray_init_s = start_ray(self.ray)
        ds = item_stream(items)
        relay = EventRelay(self.events) if self.events else None
        asks = {spec.name: spec.build().resources() for spec in specs}  # cheap: models load in setup(), on workers
        have = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus, gpus = float(have.get("CPU", 0.0)), float(have.get("GPU", 0.0))
        if self.ray.fits_pools():
            asks, notes = fit_pools(asks, cpus, gpus)
            for level, note in notes:
                log.log(level, note)
        elif short := pools_gpu_warning(asks, gpus):
            log.warning(short)
        pools = [(spec, asks[spec.name]) for spec in specs]
        for spec, res in pools:
            custom = resolve_custom_resources(spec.name, res, self.prefer.get(spec.name, ()))
            ds = through_actor_pool(ds, spec, res, custom, self.run_id, relay.queue if relay else None)
        try:
            rows = drain(ds, progress)
        finally:
            if relay:
                relay.close()
        seen = {str(r.get("clip")) for r in rows}
        for item in items:
            if item_key(item) not in seen:
                for row in self.lost(item) if self.lost else [worker_died_row(item, specs[0].name)]:
                    rows.append(row)
                    if progress:
                        progress(row)
        if self.after:
            self.after()
        return rows


def fewest_actors(res: Resources) -> int:
    """The actors a pool sized by ``res`` starts with (and never goes below)."""
    return res.concurrency if res.min_concurrency is None else res.min_concurrency


def fit_pools(pools: dict[str, Resources], cluster_cpus: float,
              cluster_gpus: float) -> tuple[dict[str, Resources], list[tuple[int, str]]]:
    """``pools`` with each stage's ``num_cpus`` and ``num_gpus`` scaled down (:func:`fitted_shares`) where the pools'
    fewest actors together ask for more than the cluster has, and what to log (level, message) about it.

    Ray Data starts every pool's fewest actors at once and keeps them until the stream ends; when they cannot all
    be placed, which pool gets the resources first is up to Ray's scheduler, and a downstream pool that got them
    first waits forever for input from an upstream pool whose actor never starts (seen on 2 CPUs with four 1-CPU
    stages; certain on 1 CPU). The asks are Ray's bookkeeping, not limits: a CPU actor's threads still use every
    core, GPU actors sharing a GPU share its memory. A cluster with no GPU is left to
    :func:`lanepipe.engine.stage.require_gpus` (or to an autoscaler adding GPU nodes)."""
    notes: list[tuple[int, str]] = []
    for key, unit, capacity in (("num_cpus", "CPUs", cluster_cpus), ("num_gpus", "GPUs", cluster_gpus)):
        fit = fit_asks({name: (fewest_actors(res), float(getattr(res, key))) for name, res in pools.items()
                        if getattr(res, key) > 0}, capacity, unit)
        if fit is None:
            continue
        fitted, what = fit
        pools = {name: res.model_copy(update={key: fitted[name]}) if name in fitted else res
                 for name, res in pools.items()}
        gpu = key == "num_gpus"
        notes.append((logging.WARNING if gpu else logging.INFO,
                      f"the stages' actor pools ask for {what}"
                      + ("; these models then share the GPU's memory" if gpu else "")
                      + "; ray.fit_pools=false keeps the asks (a cluster that adds nodes on demand)"))
    return pools, notes


def pools_gpu_warning(pools: dict[str, Resources], cluster_gpus: float) -> str | None:
    """What to tell the user when the stages' GPU actor pools cannot all be up at once (their fewest actors times
    their GPU shares exceed the cluster's GPUs, e.g. SAM2's default 0.5 beside a generative edit's 1 on one GPU)
    and ``ray.fit_pools`` is off: a pool's actors wait for another pool's shares, and if the scheduler serves a
    downstream pool first the stream stalls until the cluster grows. None when they fit."""
    short = gpu_shortfall({name: (fewest_actors(res), res.num_gpus) for name, res in pools.items()
                           if res.num_gpus > 0}, cluster_gpus)
    if short is None:
        return None
    what, fix = short
    return (f"the GPU stages' actor pools ask for {what}: a pool's actors wait until another pool's shares free "
            "(the stream stalls if a later stage's pool takes them first) unless the cluster adds GPUs"
            + (f"; shares that fit: {fix}" if fix else ""))


def make_runner(executor: str, ray: RayConfig, **ray_options: Any) -> Runner:
    """``"ray"`` → :class:`RayDataRunner` (``ray_options`` passed on), ``"sequential"`` → in this process."""
    from lanepipe.errors import ConfigError

    if executor == "ray":
        return RayDataRunner(ray, **ray_options)
    if executor == "sequential":
        return SequentialRunner(events=ray_options.get("events"))
    raise ConfigError(f"executor: expected 'ray' or 'sequential', got {executor!r}")
