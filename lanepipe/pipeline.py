"""Builds and runs a lanepipe run: stage selection, lineage, the Ray Data plan, manifest and results.

Each stage is a Ray Data ``map_batches`` over a stateful actor pool (one backend load per actor) with the
stage's resources from the config. ``executor="sequential"`` runs the same stage classes in this process
(no Ray), which is what the benchmarks compare against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lanepipe.config import STAGES, RunConfig
from lanepipe.datasets.sources import ClipRef, resolve_inputs
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

IMPLEMENTED: tuple[str, ...] = ("segment",)
#: What each stage reads from the run before it (checked before anything runs).
UPSTREAM_OUTPUT: dict[str, tuple[str, str]] = {
    "edit": ("segment", "road masks (segment/<clip>/meta.json)"),
    "evaluate": ("edit", "edited clips (edit/<clip>/…)"),
    "render": ("evaluate", "predictions (evaluate/<clip>/…)"),
}
ProgressFn = Callable[[dict[str, Any]], None]
DEFAULT_CAPTION = "road with lane markings"


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


def check_lineage(cfg: RunConfig) -> list[str]:
    """Validate ``--from-run`` for a selection that starts after ``segment``; return upstream run ids.

    Raises:
        ConfigError: selection starts later but names no run.
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
    import ray

    if ray.is_initialized():
        return 0.0
    t = time.perf_counter()
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              "log_to_driver": False}
    if cfg.ray.address == "local":
        kwargs.update(address="local", num_cpus=cfg.ray.num_cpus, num_gpus=cfg.ray.num_gpus)
    else:
        kwargs.update(address=cfg.ray.address)
    ray.init(**kwargs)
    return time.perf_counter() - t


def _run_segment_ray(cfg: RunConfig, store: RunStore, todo: list[ClipRef], progress: ProgressFn | None,
                     ) -> list[dict[str, Any]]:
    import ray.data

    from lanepipe.actors.segment import SegmentActor

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    res = cfg.segment.resources
    ds: Any = ray.data.from_items([{"source": r.source, "name": r.name} for r in todo],
                             override_num_blocks=len(todo))
    ds = ds.map_batches(SegmentActor, fn_constructor_kwargs={"cfg_json": cfg.model_dump_json(),
                                                             "root": store.root, "run_id": store.run_id},
                        batch_size=res.batch_size, compute=ray.data.ActorPoolStrategy(size=res.concurrency),
                        num_cpus=res.num_cpus,
                        num_gpus=res.num_gpus or None)
    rows: list[dict[str, Any]] = []
    for item in ds.iter_rows():
        row = json.loads(item["row"])
        rows.append(row)
        if progress:
            progress(row)
    return rows


def _run_segment_sequential(cfg: RunConfig, store: RunStore, todo: list[ClipRef],
                            progress: ProgressFn | None) -> list[dict[str, Any]]:
    from lanepipe.segment.stage import SegmentStage

    stage = SegmentStage(cfg, store.root, store.run_id)
    rows = []
    for ref in todo:
        row = stage(ref)
        rows.append(row)
        if progress:
            progress(row)
    return rows


def run(cfg: RunConfig, *, executor: str = "ray", progress: ProgressFn | None = None,
        on_plan: Callable[[int, int], None] | None = None) -> RunSummary:
    """Run the configured stages. A re-run with the same run id skips clips already finished.

    Args:
        executor: ``"ray"`` (Ray Data actor pools) or ``"sequential"`` (same stages, this process).
        progress: called with each finished clip's results row.
        on_plan: called once with (clips to process, clips skipped as finished).
    """
    t_start = time.perf_counter()
    upstream_ids = check_lineage(cfg)
    _check_implemented(cfg)
    run_id = cfg.run_id or new_run_id(cfg)
    store = RunStore(storage.absolute(cfg.output), run_id)
    refs = resolve_inputs(cfg.input.paths)
    manifest: dict[str, Any] = store.read_manifest() if store.exists() else {
        "run_id": run_id, "created": utc_now(), "stages": {}}
    manifest.update(config=cfg.model_dump(mode="json") | {"run_id": run_id}, versions=package_versions(),
                    git_sha=git_sha(), upstream_run_ids=upstream_ids, updated=utc_now())
    summary = RunSummary(run_id=run_id, url=store.url)

    done = store.finished("segment")
    todo = [r for r in refs if r.name not in done]
    summary.skipped = len(refs) - len(todo)
    if on_plan:
        on_plan(len(todo), summary.skipped)
    stage_info: dict[str, Any] = {"status": "running", "started": utc_now(), "clips_total": len(refs)}
    manifest["stages"]["segment"] = stage_info
    store.write_manifest(manifest)

    rows: list[dict[str, Any]] = []
    if todo:
        if executor == "ray":
            summary.ray_init_s = init_ray(cfg)
            rows = _run_segment_ray(cfg, store, todo, progress)
        elif executor == "sequential":
            rows = _run_segment_sequential(cfg, store, todo, progress)
        else:
            raise ConfigError(f"executor: expected 'ray' or 'sequential', got {executor!r}")
    by_name = {r.name: r for r in refs}
    previous = [done[n] | {"skipped": True} for n in by_name if n in done]
    all_rows = [*previous, *[r | {"skipped": False} for r in rows]]
    order = {r.name: i for i, r in enumerate(refs)}
    all_rows.sort(key=lambda r: order.get(r["clip"], len(order)))
    summary.rows = all_rows

    store.write_results(all_rows)
    write_videopainter_meta(store, all_rows, caption=DEFAULT_CAPTION)
    n_ok = sum(r["status"] == "ok" for r in all_rows)
    summary.seconds = time.perf_counter() - t_start
    stage_info.update(status="done" if n_ok == len(refs) else "partial", finished=utc_now(),
                      seconds=round(summary.seconds, 3), clips_ok=n_ok, clips_failed=len(refs) - n_ok,
                      clips_skipped=summary.skipped, ray_init_s=round(summary.ray_init_s, 3))
    manifest["inputs"] = [{"clip": r["clip"], "source": r["source"], "sha256": r.get("input_sha256")}
                          for r in all_rows]
    manifest["updated"] = utc_now()
    store.write_manifest(manifest)
    return summary
