"""Builds and runs a lanepipe run: stage selection, lineage, the Ray Data plan, manifest and results.

Each stage is a Ray Data ``map_batches`` over a stateful actor pool (one backend load per actor) with the
stage's resources from the config; stages are chained so clips stream through them. Rows (JSON) flow between
stages: a stage passes the rows it does not handle through. ``executor="sequential"`` runs the same stage
classes in this process (no Ray), which is what the benchmarks compare against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lanepipe.config import STAGES, RayConfig, Resources, RunConfig
from lanepipe.datasets.sources import resolve_inputs
from lanepipe.errors import ConfigError, InputError
from lanepipe.io import storage
from lanepipe.io.layout import (
    RunStore,
    git_sha,
    new_run_id,
    package_versions,
    utc_now,
    write_videopainter_meta,
)

IMPLEMENTED: tuple[str, ...] = STAGES
#: What each stage reads from the run before it (checked before anything runs).
UPSTREAM_OUTPUT: dict[str, tuple[str, str]] = {
    "edit": ("segment", "road masks (segment/<clip>/meta.json)"),
    "evaluate": ("edit", "edited clips (edit/<clip>/<slug>/meta.json)"),
    "render": ("evaluate", "predictions (evaluate/<clip>/…)"),
}
ProgressFn = Callable[[dict[str, Any]], None]
DEFAULT_CAPTION = "road with lane markings"


class Stage(Protocol):
    def process(self, item: dict[str, Any]) -> list[dict[str, Any]]: ...


@dataclass
class RunSummary:
    run_id: str
    url: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    ray_init_s: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


def build_stage(name: str, cfg: RunConfig, root: str, run_id: str, upstream_root: str,
                upstream_run_id: str) -> Stage:
    """The plain (Ray-free) stage object for ``name``; its backend loads here."""
    if name == "segment":
        from lanepipe.stages.segment import SegmentStage

        return SegmentStage(cfg, root, run_id)
    if name == "edit":
        from lanepipe.stages.edit import EditStage

        return EditStage(cfg, root, run_id, upstream_root, upstream_run_id)
    if name == "evaluate":
        from lanepipe.stages.evaluate import EvaluateStage

        return EvaluateStage(cfg, root, run_id, upstream_root, upstream_run_id)
    if name == "render":
        from lanepipe.stages.render import RenderStage

        return RenderStage(cfg, root, run_id, upstream_root, upstream_run_id)
    raise ConfigError(f"stage {name!r} is not available; available: {', '.join(IMPLEMENTED)}")


def stage_resources(cfg: RunConfig, name: str) -> Resources:
    res: Resources = getattr(cfg, name).resources
    return res


def check_lineage(cfg: RunConfig) -> list[str]:
    """Validate ``--from-run`` for a selection that starts after ``segment``; return upstream run ids.

    Raises:
        ConfigError: selection starts later but names no run (or names one while starting at segment).
        InputError: the named run or its outputs for the first selected stage are missing.
    """
    first = cfg.stages[0]
    if first == "segment":
        if cfg.from_run:
            raise ConfigError(f"from_run={cfg.from_run!r} given, but the stages start at segment, which reads "
                              "no earlier run; drop --from-run or start later (e.g. --stages edit)")
        return []
    if not cfg.from_run:
        raise ConfigError(f"stages start at {first!r}, which reads the outputs of an earlier run: "
                          "pass --from-run RUN_ID (a folder under --output)")
    upstream = RunStore(storage.absolute(cfg.output), cfg.from_run)
    manifest = upstream.read_manifest()
    need_stage, what = UPSTREAM_OUTPUT[first]
    done = upstream.finished(need_stage)
    if not done:
        raise InputError(upstream.url, f"{what} from a finished {need_stage!r} stage",
                         f"no finished clips for {need_stage!r}",
                         f"run --stages {need_stage} first, or pick another run id")
    return [cfg.from_run, *manifest.get("upstream_run_ids", [])]


def _check_implemented(cfg: RunConfig) -> None:
    missing = [s for s in cfg.stages if s not in IMPLEMENTED]
    if missing:
        raise ConfigError(f"stage(s) {', '.join(missing)} are not available in this version of lanepipe; "
                          f"available: {', '.join(IMPLEMENTED)} (of {' → '.join(STAGES)})")


def init_ray(cfg: RunConfig) -> float:
    """Start or join Ray as configured; returns the seconds it took (0 when already initialised)."""
    return start_ray(cfg.ray)


def start_ray(ray_cfg: RayConfig) -> float:
    """Start or join Ray (``ray_cfg.address``: ``local`` or a cluster); seconds taken, 0 when already running."""
    import ray

    if ray.is_initialized():
        return 0.0
    t = time.perf_counter()
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
    if ray_cfg.address == "local":
        kwargs.update(address="local", num_cpus=ray_cfg.num_cpus, num_gpus=ray_cfg.num_gpus)
    else:
        kwargs.update(address=ray_cfg.address)
    ray.init(**kwargs)
    return time.perf_counter() - t


def item_stream(items: list[dict[str, Any]]) -> Any:
    """A Ray Dataset of one JSON ``row`` per item, one block each, that drops (rather than fails on) an item whose
    actor keeps dying: the caller reports the missing items (see :func:`drain`)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    errored_blocks, ctx.max_errored_blocks = ctx.max_errored_blocks, -1
    try:  # the dataset keeps a copy of the context: other datasets of this process keep the default
        return ray.data.from_items([{"row": json.dumps(i)} for i in items], override_num_blocks=len(items))
    finally:
        ctx.max_errored_blocks = errored_blocks


def through_actor_pool(ds: Any, actor: type, ctor: dict[str, Any], res: Resources,
                       resources: dict[str, float] | None = None, batch_size: int | None = 1) -> Any:
    """``ds.map_batches`` through a pool of stateful ``actor`` instances sized by ``res``, fault tolerant.

    Fault tolerance (knobs checked in ray/data/_internal/execution/operators/actor_pool_map_operator.py,
    ray/data/context.py, ray/data/_internal/execution/streaming_executor_state.py of Ray 2.60): an actor whose
    process dies is restarted (max_restarts=-1) and the task it was running is retried on it, up to
    MAX_TASK_RETRIES times; one task in flight per actor, so a crash takes down only the item being processed.
    """
    import warnings

    import ray.data

    from lanepipe.actors.base import MAX_TASK_RETRIES

    remote_args: dict[str, Any] = {"max_restarts": -1, "max_task_retries": MAX_TASK_RETRIES}
    if resources:
        remote_args["resources"] = dict(resources)
    if res.runtime_env:  # e.g. the Alpamayo predictor's own pip pins / interpreter for its actor pool
        remote_args["runtime_env"] = res.runtime_env
    with warnings.catch_warnings():  # restart/retry knobs exist only as **ray_remote_args (deprecated in 2.60)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return ds.map_batches(actor, fn_constructor_kwargs=ctor, batch_size=batch_size,
                              compute=ray.data.ActorPoolStrategy(size=res.concurrency,
                                                                 max_tasks_in_flight_per_actor=1),
                              num_cpus=res.num_cpus, num_gpus=res.num_gpus or None, **remote_args)


def drain(ds: Any, progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Every row the stream emits (JSON-decoded), reported to ``progress`` as it arrives."""
    rows: list[dict[str, Any]] = []
    for item in ds.iter_rows():
        row = json.loads(item["row"])
        rows.append(row)
        if progress:
            progress(row)
    return rows


def _initial_items(cfg: RunConfig, upstream: RunStore) -> list[dict[str, Any]]:
    if cfg.stages[0] == "segment":
        return [{"source": r.source, "name": r.name} for r in resolve_inputs(cfg.input.paths)]
    need_stage, _ = UPSTREAM_OUTPUT[cfg.stages[0]]
    return [row for row in upstream.finished(need_stage).values() if row.get("status") == "ok"]


def _run_ray(cfg: RunConfig, ctor: dict[str, str], items: list[dict[str, Any]],
             progress: ProgressFn | None) -> list[dict[str, Any]]:
    from lanepipe.actors import ACTORS
    from lanepipe.actors.base import custom_resources, lost_item_rows, remove_orphan_temps

    # A clip that kills its actor every time is dropped from the stream (item_stream) instead of failing the
    # sweep or retrying forever, and gets a failed row below.
    ds = item_stream(items)
    for name in cfg.stages:
        res = stage_resources(cfg, name)
        ds = through_actor_pool(ds, ACTORS[name], ctor, res, custom_resources(cfg, name), res.batch_size)
    rows = drain(ds, progress)
    store = RunStore(ctor["root"], ctor["run_id"])
    seen = {str(r.get("clip")) for r in rows}
    for item in items:
        if str(item.get("name", item.get("clip"))) not in seen:
            for row in lost_item_rows(store, cfg.stages, item):
                rows.append(row)
                if progress:
                    progress(row)
    remove_orphan_temps(store.url)  # temp files of writers killed mid-write (this run's work is all done)
    return rows


def _run_sequential(cfg: RunConfig, ctor: dict[str, str], items: list[dict[str, Any]],
                    progress: ProgressFn | None) -> list[dict[str, Any]]:
    stages = [build_stage(n, cfg, ctor["root"], ctor["run_id"], ctor["upstream_root"], ctor["upstream_run_id"])
              for n in cfg.stages]
    rows: list[dict[str, Any]] = []
    for item in items:
        batch = [item]
        for stage in stages:
            batch = [out for r in batch for out in stage.process(r)]
        for row in batch:
            rows.append(row)
            if progress:
                progress(row)
    return rows


def run(cfg: RunConfig, *, executor: str = "ray", progress: ProgressFn | None = None,
        on_plan: Callable[[int, int], None] | None = None) -> RunSummary:
    """Run the configured stages. A re-run with the same run id skips items already finished.

    Args:
        executor: ``"ray"`` (Ray Data actor pools) or ``"sequential"`` (same stages, this process).
        progress: called with every results row as it arrives (rows of all selected stages).
        on_plan: called once with (clips to stream, clips whose first stage is already finished).
    """
    if executor not in ("ray", "sequential"):
        raise ConfigError(f"executor: expected 'ray' or 'sequential', got {executor!r}")
    t_start = time.perf_counter()
    upstream_ids = check_lineage(cfg)
    _check_implemented(cfg)
    root = storage.absolute(cfg.output)
    run_id = cfg.run_id or new_run_id(cfg)
    store = RunStore(root, run_id)
    upstream = RunStore(root, cfg.from_run) if cfg.from_run else store
    items = _initial_items(cfg, upstream)
    if not items:
        raise InputError(upstream.url, "clips to process", "none")
    manifest: dict[str, Any] = store.read_manifest() if store.exists() else {
        "run_id": run_id, "created": utc_now(), "stages": {}}
    manifest.update(config=cfg.model_dump(mode="json") | {"run_id": run_id}, versions=package_versions(),
                    git_sha=git_sha(), upstream_run_ids=upstream_ids, updated=utc_now())
    summary = RunSummary(run_id=run_id, url=store.url)
    first_done = store.finished(cfg.stages[0])
    if on_plan:
        on_plan(len(items), sum(1 for i in items if str(i.get("name", i.get("clip"))) in first_done))
    for name in cfg.stages:
        manifest["stages"][name] = {"status": "running", "started": utc_now()}
    store.write_manifest(manifest)

    ctor = {"cfg_json": cfg.model_dump_json(), "root": root, "run_id": run_id, "upstream_root": upstream.root,
            "upstream_run_id": upstream.run_id}
    if executor == "ray":
        summary.ray_init_s = init_ray(cfg)
        rows = _run_ray(cfg, ctor, items, progress)
    else:
        rows = _run_sequential(cfg, ctor, items, progress)
    rows = [r for r in rows if r.get("stage") in cfg.stages]
    order = {str(i.get("name", i.get("clip"))): k for k, i in enumerate(items)}
    stage_order = {s: k for k, s in enumerate(STAGES)}
    rows.sort(key=lambda r: (order.get(r["clip"], len(order)), stage_order[r["stage"]], r.get("instruction") or ""))
    summary.rows = rows
    summary.skipped = sum(bool(r.get("skipped")) for r in rows)

    store.write_results(rows)
    if "segment" in cfg.stages:
        write_videopainter_meta(store, rows, caption=DEFAULT_CAPTION)
    if "render" in cfg.stages and cfg.render.report:
        from lanepipe.viz.report import write_report

        manifest["report"] = write_report(store.url)
    summary.seconds = time.perf_counter() - t_start
    for name in cfg.stages:
        mine = [r for r in rows if r["stage"] == name]
        n_ok = sum(r["status"] == "ok" for r in mine)
        manifest["stages"][name].update(
            status="done" if mine and n_ok == len(mine) else "partial", finished=utc_now(),
            items=len(mine), ok=n_ok, failed=len(mine) - n_ok, skipped=sum(bool(r.get("skipped")) for r in mine),
            seconds=round(summary.seconds, 3), ray_init_s=round(summary.ray_init_s, 3))
    manifest["inputs"] = [{"clip": r["clip"], "source": r["source"], "sha256": r.get("input_sha256")}
                          for r in rows if r["stage"] == "segment"] or manifest.get("inputs", [])
    manifest["updated"] = utc_now()
    store.write_manifest(manifest)
    return summary
