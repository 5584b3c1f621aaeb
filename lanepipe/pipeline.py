"""Builds and runs a lanepipe run: stage selection, lineage, the Ray Data plan, manifest and results.

Each stage is described by a picklable :class:`~lanepipe.engine.StageSpec` and run by one of the engine's
runners: :class:`~lanepipe.actors.runner.RayDataRunner` (a Ray Data ``map_batches`` per stage over a pool of the
generic stage actor, one backend load per actor, the stage's resources from the config; stages are chained so
clips stream through them) or :class:`~lanepipe.engine.SequentialRunner` (``executor="sequential"``: the same
stages in this process, no Ray, which is what the benchmarks compare against). Rows flow between stages: a
stage passes the rows it does not handle through.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lanepipe.actors.base import ALPAMAYO_RESOURCE, configured_backend, lost_item_rows, remove_orphan_temps
from lanepipe.actors.runner import RayDataRunner, make_runner, start_ray, stop_local_ray
from lanepipe.config import STAGES, RunConfig, check_run_id, new_run_id, random_weight_models
from lanepipe.datasets.sources import InputFailure, resolve_each
from lanepipe.engine import BUSY_KEY, SETUP_KEY, Runner, SequentialRunner, Stage, StageSpec
from lanepipe.engine.lifecycle import interrupt_signals, raise_pending
from lanepipe.engine.stage import config_json
from lanepipe.errors import ConfigError, InputError, InterruptError, LanepipeError, StorageError
from lanepipe.io import storage
from lanepipe.io.layout import (
    RunStore,
    git_sha,
    package_versions,
    utc_now,
    write_videopainter_meta,
)
from lanepipe.io.resume import check_resume_config, merge_rows
from lanepipe.monitoring import summarise_loads
from lanepipe.stats import shift_significance

log = logging.getLogger(__name__)
IMPLEMENTED: tuple[str, ...] = STAGES
#: What each stage reads from the run before it (checked before anything runs).
UPSTREAM_OUTPUT: dict[str, tuple[str, str]] = {
    "edit": ("segment", "road masks (segment/<clip>/meta.json)"),
    "evaluate": ("edit", "edited clips (edit/<clip>/<slug>/meta.json)"),
    "render": ("evaluate", "predictions (evaluate/<clip>/…)"),
}
ProgressFn = Callable[[dict[str, Any]], None]
DEFAULT_CAPTION = "road with lane markings"
#: What manifest.json and report.html say about a run with random-weight models.
RANDOM_WEIGHTS_NOTE = ("models with random weights (tiny-random / random-init presets): masks, edits, verdicts "
                       "and the metrics computed from them are MEANINGLESS; the run measures wiring, time and "
                       "memory only")


@dataclass
class RunSummary:
    run_id: str
    url: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    ray_init_s: float = 0.0
    report: str | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


#: Stage name → its class (``module:Class``); built in each worker from a :class:`StageSpec`.
STAGE_TARGETS: dict[str, str] = {
    "segment": "lanepipe.stages.segment:SegmentStage",
    "edit": "lanepipe.stages.edit:EditStage",
    "evaluate": "lanepipe.stages.evaluate:EvaluateStage",
    "render": "lanepipe.stages.render:RenderStage",
}


def stage_spec(name: str, cfg: RunConfig, root: str, run_id: str, upstream_root: str,
               upstream_run_id: str) -> StageSpec:
    """The picklable recipe of stage ``name`` of this run (the worker builds and sets it up)."""
    if name not in STAGE_TARGETS:
        raise ConfigError(f"stage {name!r} is not available; available: {', '.join(IMPLEMENTED)}")
    return StageSpec(name=name, target=STAGE_TARGETS[name], config="lanepipe.config:RunConfig",
                     cfg_json=config_json(cfg), args=(root, run_id, upstream_root, upstream_run_id),
                     backend=configured_backend(cfg, name), scratch=RunStore(root, run_id).scratch)


#: ``edit.placement=split``: the edit stage as two pools (:mod:`lanepipe.stages.edit_split`), in order.
SPLIT_EDIT_TARGETS: tuple[tuple[str, str], ...] = (
    ("edit_first_frame", "lanepipe.stages.edit_split:FirstFrameStage"),
    ("edit", "lanepipe.stages.edit_split:PropagateStage"))


def stage_specs(name: str, cfg: RunConfig, root: str, run_id: str, upstream_root: str,
                upstream_run_id: str) -> list[StageSpec]:
    """The specs stage ``name`` runs as: one (:func:`stage_spec`), or for ``edit`` with ``edit.placement=split``
    the first-frame and the propagation stage (two actor pools)."""
    spec = stage_spec(name, cfg, root, run_id, upstream_root, upstream_run_id)
    if name != "edit" or cfg.edit.placement != "split":
        return [spec]
    return [StageSpec(name=n, target=t, config=spec.config, cfg_json=spec.cfg_json, args=spec.args,
                      backend=spec.backend, scratch=spec.scratch) for n, t in SPLIT_EDIT_TARGETS]


def split_first_frame_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the first-frame pool of a split edit did (from its items): items, busy and setup seconds, model
    loads (as :func:`~lanepipe.monitoring.summarise_loads` counts them)."""
    name = SPLIT_EDIT_TARGETS[0][0]
    mine = [r for r in rows if r.get("stage") == name]
    return {"items": len(mine), "busy_s": round(sum(float(r.get(BUSY_KEY) or 0) for r in mine), 3),
            "setup_s": round(sum(float(r.get(SETUP_KEY) or 0) for r in mine), 3),
            "model_loads": summarise_loads(mine, [name])[name]}


@dataclass(frozen=True)
class RunPlan:
    """What a run is about to do (the CLI prints it before anything runs)."""

    run_id: str
    url: str
    stages: list[str]
    backends: dict[str, str]
    instructions: list[str]
    instructions_default: bool
    inputs: int
    skipped: int
    from_run: str | None
    #: items each selected stage is expected to emit (clips x instructions x predictors)
    totals: dict[str, int]


def from_run_location(ref: str, output: str) -> tuple[str, str]:
    """``(run root, run id)`` of ``--from-run``: a run id (a folder under ``output``) or the run's own folder,
    as the CLI prints it: a relative or absolute path, ``file://`` or a bucket URL (``s3://b/runs/<id>``)."""
    ref = ref.strip()
    if "/" not in ref.rstrip("/") and "\\" not in ref:
        return storage.absolute(output), ref.rstrip("/")
    parent, _, run_id = ref.rstrip("/").rpartition("/")
    if not run_id or not parent or parent.endswith(":/"):
        raise ConfigError(f"from_run={ref!r}: expected a run id or a run folder (<output>/<run_id>)")
    return storage.absolute(parent), run_id


def _upstream_store(cfg: RunConfig) -> RunStore | None:
    if not cfg.from_run:
        return None
    return RunStore(*from_run_location(cfg.from_run, cfg.output))


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
                          "pass --from-run RUN (a run id under --output, or the run's folder)")
    upstream = _upstream_store(cfg)
    assert upstream is not None
    manifest = upstream.read_manifest()
    need_stage, what = UPSTREAM_OUTPUT[first]
    done = upstream.finished(need_stage)
    if not done:
        raise InputError(upstream.url, f"{what} from a finished {need_stage!r} stage",
                         f"no finished clips for {need_stage!r}",
                         f"run --stages {need_stage} first, or pick another run id")
    return [upstream.run_id, *manifest.get("upstream_run_ids", [])]


def _check_implemented(cfg: RunConfig) -> None:
    missing = [s for s in cfg.stages if s not in IMPLEMENTED]
    if missing:
        raise ConfigError(f"stage(s) {', '.join(missing)} are not available in this version of lanepipe; "
                          f"available: {', '.join(IMPLEMENTED)} (of {' → '.join(STAGES)})")


def init_ray(cfg: RunConfig) -> float:
    """Start or join Ray as configured; returns the seconds it took (0 when already initialised)."""
    return start_ray(cfg.ray)


def _initial_items(cfg: RunConfig, upstream: RunStore) -> tuple[list[dict[str, Any]], list[InputFailure]]:
    """The items the first stage streams, and the inputs that resolved to no clip (each a failed row later).

    Raises:
        InputError: not one input resolved to a clip (every input's reason in the message).
    """
    if cfg.stages[0] == "segment":
        refs, failures = resolve_each(cfg.input.paths)
        if not refs and len(failures) == 1:
            raise failures[0].error
        if not refs:
            raise InputError(", ".join(f.source for f in failures), "at least one input that holds a clip",
                             "none: " + "; ".join(str(f.error) for f in failures))
        return [{"source": r.source, "name": r.name} for r in refs], failures
    need_stage, _ = UPSTREAM_OUTPUT[cfg.stages[0]]
    return [row for row in upstream.finished(need_stage).values() if row.get("status") == "ok"], []


def input_failure_row(failure: InputFailure, run_id: str) -> dict[str, Any]:
    """The failed ``segment`` row of an input that resolved to no clip."""
    return {"run_id": run_id, "clip": failure.name, "source": failure.source, "stage": "segment",
            "status": "failed", "error": str(failure.error), "error_type": type(failure.error).__name__,
            "skipped": False}


def note_interrupted(store: RunStore, manifest: dict[str, Any]) -> list[str]:
    """On a resume, stages the manifest still calls ``running`` (their driver was killed, e.g. SIGKILL, and could
    not record it) or ``interrupted``: say so, record them in ``interruptions``; returns their names."""
    stale = {n: st for n, st in manifest.get("stages", {}).items() if st.get("status") in ("running", "interrupted")}
    if not stale:
        return []
    killed = [n for n, st in stale.items() if st["status"] == "running"]
    if killed:
        since = min(str(stale[n].get("started", "?")) for n in killed)
        log.warning("run %s: stage(s) %s still said 'running' (started %s) with no driver to finish them: it was "
                    "killed, so they count as interrupted; resuming (finished items are kept)",
                    store.run_id, ", ".join(killed), since)
    else:
        log.warning("run %s: resuming after an interruption of stage(s) %s (finished items are kept)",
                    store.run_id, ", ".join(stale))
    manifest.setdefault("interruptions", []).append(
        {"stages": sorted(stale), "started": min(str(st.get("started", "?")) for st in stale.values()),
         "recorded": "driver killed (stale 'running')" if killed else "interrupted", "resumed": utc_now()})
    return sorted(stale)


def with_significance(cfg: RunConfig, all_rows: list[dict[str, Any]],
                      rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``all_rows`` with each evaluate row's ``p_value``, ``significant`` and ``p_pairs``: its preset's shifts
    against the null-edit floors, over every clip of the run (:func:`lanepipe.stats.shift_significance`); the
    same columns are set on this invocation's ``rows`` (the summary). Unchanged when the floor is off or no
    evaluate stage ran."""
    nf = cfg.evaluate.noise_floor
    if not nf.enabled or "evaluate" not in cfg.stages:
        return all_rows
    out = shift_significance(all_rows, alpha=nf.alpha, n_resamples=nf.permutations, seed=nf.seed)
    keys = ("p_value", "significant", "p_pairs")
    tested = {(r.get("clip"), r.get("instruction"), r.get("predictor")): {k: r.get(k) for k in keys}
              for r in out if r.get("stage") == "evaluate"}
    for r in rows:
        if r.get("stage") == "evaluate":
            r.update(tested.get((r.get("clip"), r.get("instruction"), r.get("predictor")), dict.fromkeys(keys)))
    return out


def previous_rows(store: RunStore) -> list[dict[str, Any]]:
    """The rows ``results.parquet`` holds now (none for a new run)."""
    if not storage.exists(store.results_url):
        return []
    return list(store.read_results().to_dict("records"))


def make_run_runner(cfg: RunConfig, executor: str, store: RunStore, events: ProgressFn | None = None) -> Runner:
    """The runner of ``executor`` for this run: the Ray one reports clips whose worker kept dying from the
    stages' markers (:func:`~lanepipe.actors.base.lost_item_rows`) and removes orphan temp files afterwards."""
    prefer = {"evaluate": (ALPAMAYO_RESOURCE,)} if ALPAMAYO_RESOURCE in cfg.evaluate.predictors else {}
    return make_runner(executor, cfg.ray, lost=lambda item: lost_item_rows(store, cfg.stages, item),
                       prefer=prefer, run_id=store.run_id, after=lambda: remove_orphan_temps(store.url),
                       events=events)


def _plan_backends(cfg: RunConfig) -> dict[str, str]:
    out: dict[str, str] = {n: configured_backend(cfg, n) for n in cfg.stages if n != "render"}
    if "edit" in cfg.stages and cfg.edit.qa.enabled:
        out["qa"] = cfg.verify.backend
    if "edit" in cfg.stages and cfg.edit.placement == "split":
        from lanepipe.stages.edit_split import split_actors

        first, rest = split_actors(cfg)
        out["edit"] += f" (split: {first} first-frame + {rest} propagation actors)"
    return out


def _totals(cfg: RunConfig, n: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in cfg.stages:
        n *= {"edit": len(cfg.edit.instructions), "evaluate": len(cfg.evaluate.predictors)}.get(name, 1)
        out[name] = n
    return out


def _timing(cfg: RunConfig, rows: list[dict[str, Any]], wall_s: float, ray_start_s: float) -> dict[str, Any]:
    """Where the run's wall time went: Ray start-up, each stage's worker set-up and busy time (its ``process``
    calls, summed over workers: parallel workers can add up to more than the wall time), decoding (part of the
    segment stage's busy time) and the rest (planning, queueing between stages, results and report writing).
    ``spans_s``: per stage whose rows record spans (edit), the sums of their ``device_s`` (model calls), ``cpu_s``
    and ``device_wait_s`` (clips in flight waiting for the device turn)."""
    busy = {n: sum(float(r.get(BUSY_KEY) or 0) for r in rows if r["stage"] == n) for n in cfg.stages}
    spans = {n: {k: round(sum(float(r.get(k) or 0) for r in rows if r["stage"] == n and not r.get("skipped")), 3)
                 for k in ("device_s", "cpu_s", "device_wait_s")}
             for n in cfg.stages if any(r["stage"] == n and r.get("device_s") is not None for r in rows)}
    setup = {n: sum(float(r.get(SETUP_KEY) or 0) for r in rows if r["stage"] == n) for n in cfg.stages}
    accounted = ray_start_s + sum(busy.values()) + sum(setup.values())
    return {"wall_s": round(wall_s, 3), "ray_start_s": round(ray_start_s, 3),
            "setup_s": {n: round(v, 3) for n, v in setup.items()},
            "busy_s": {n: round(v, 3) for n, v in busy.items()},
            "decode_s": round(sum(float(r.get("decode_s") or 0) for r in rows if r["stage"] == "segment"), 3),
            "other_s": round(max(0.0, wall_s - accounted), 3),
            "parallel_overlap_s": round(max(0.0, accounted - wall_s), 3), "spans_s": spans}


@dataclass
class _RunState:
    """What :func:`run` needs to close a run that stops early: its folder and manifest once written."""

    store: RunStore | None = None
    manifest: dict[str, Any] | None = None
    in_runner: bool = False

    def close(self, status: str, error: BaseException) -> None:
        """Record ``status`` (``interrupted``/``failed``) for the stages still ``running``; best effort (the
        storage may be what failed)."""
        if self.store is None or self.manifest is None:
            return
        for st in self.manifest.get("stages", {}).values():
            if st.get("status") == "running":
                st.update(status=status, finished=utc_now(), error=" ".join(str(error).split())[:500] or status)
        self.manifest["updated"] = utc_now()
        try:
            self.store.write_manifest(self.manifest)
        except Exception as e:
            log.warning("could not record %r in %s: %s", status, self.store.manifest_url, e)


def run(cfg: RunConfig, *, executor: str = "ray", progress: ProgressFn | None = None,
        on_plan: Callable[[int, int], None] | None = None,
        on_start: Callable[[RunPlan], None] | None = None, on_event: ProgressFn | None = None,
        provide: Callable[[StageSpec], Stage] | None = None) -> RunSummary:
    """Run the configured stages. A re-run with the same run id skips items already finished.

    Args:
        executor: ``"ray"`` (Ray Data actor pools) or ``"sequential"`` (same stages, this process).
        progress: called with every results row as it arrives (rows of all selected stages).
        on_plan: called once with (clips to stream, clips whose first stage is already finished).
        on_start: called once with the :class:`RunPlan` before any stage runs.
        on_event: called with a light copy of each row as soon as its stage emits it (live per-stage progress;
            ``progress`` gets the full rows once an item is through all selected stages).
        provide: with ``executor="sequential"``, builds each stage from its spec (the Serve model deployment
            hands out stages whose models are resident); None: :meth:`StageSpec.build`.

    Raises:
        StorageError: the run's storage could not be read or written (unreachable, full); the run resumes.
        InterruptError: SIGINT/SIGTERM; ``interrupted`` is recorded and a local Ray started here is shut down.
    """
    state = _RunState()
    with interrupt_signals():
        try:
            summary = _run(cfg, state, executor=executor, progress=progress, on_plan=on_plan, on_start=on_start,
                           on_event=on_event, provide=provide)
            raise_pending()  # a signal swallowed after the last item: the run still stops as interrupted
            return summary
        except (InterruptError, KeyboardInterrupt) as e:
            err = e if isinstance(e, InterruptError) else InterruptError(signal.SIGINT, "SIGINT (Ctrl-C)")
            state.close("interrupted", err)
            stop_local_ray()
            if err is e:
                raise
            raise err from None
        except LanepipeError as e:
            state.close("failed", e)
            raise
        except Exception as e:
            state.close("failed", e)
            if state.in_runner or not storage.is_storage_failure(e):
                raise
            url = state.store.url if state.store else storage.absolute(cfg.output)
            resume = f"rerun with --run-id {state.store.run_id} to resume" if state.store else "rerun"
            raise StorageError(f"{url}: could not read or write the run: {storage.describe_failure(e)}. Nothing "
                               f"finished is lost: once the storage is back, {resume}") from e


def _run(cfg: RunConfig, state: _RunState, *, executor: str, progress: ProgressFn | None,
         on_plan: Callable[[int, int], None] | None, on_start: Callable[[RunPlan], None] | None = None,
         on_event: ProgressFn | None = None, provide: Callable[[StageSpec], Stage] | None = None) -> RunSummary:
    if executor not in ("ray", "sequential"):  # checked before anything is written
        raise ConfigError(f"executor: expected 'ray' or 'sequential', got {executor!r}")
    t_start = time.perf_counter()
    upstream_ids = check_lineage(cfg)
    _check_implemented(cfg)
    root = storage.absolute(cfg.output)
    run_id = check_run_id(cfg.run_id) if cfg.run_id else new_run_id(cfg)
    store = RunStore(root, run_id)
    upstream = _upstream_store(cfg) or store
    items, failures = _initial_items(cfg, upstream)
    if not items:
        raise InputError(upstream.url, "clips to process", "none")
    state.store = store
    manifest: dict[str, Any] = store.read_manifest() if store.exists() else {
        "run_id": run_id, "created": utc_now(), "stages": {}}
    if "config" in manifest:  # a resume: same settings, or explicitly allowed (changes recorded)
        changed = check_resume_config(store.url, manifest["config"], cfg.model_dump(mode="json") | {"run_id": run_id},
                                      allowed=cfg.resume_changed_config)
        if changed:
            manifest.setdefault("config_changes", []).append({"at": utc_now(), "keys": changed})
    manifest.update(config=cfg.model_dump(mode="json") | {"run_id": run_id}, versions=package_versions(),
                    git_sha=git_sha(), upstream_run_ids=upstream_ids, updated=utc_now())
    summary = RunSummary(run_id=run_id, url=store.url)
    first_done = store.finished(cfg.stages[0])
    n_skip = sum(1 for i in items if str(i.get("name", i.get("clip"))) in first_done)
    if on_start:
        on_start(RunPlan(run_id=run_id, url=store.url, stages=list(cfg.stages),
                         backends=_plan_backends(cfg),
                         instructions=list(cfg.edit.instructions),
                         instructions_default="instructions" not in cfg.edit.model_fields_set,
                         inputs=len(items), skipped=n_skip, from_run=upstream.url if cfg.from_run else None,
                         totals=_totals(cfg, len(items))))
    if on_plan:
        on_plan(len(items), n_skip)
    note_interrupted(store, manifest)
    if store.clean_scratch():  # temp files of writers killed in an earlier attempt
        log.info("removed the scratch files an interrupted attempt left in %s", store.scratch)
    for name in cfg.stages:
        manifest["stages"][name] = {"status": "running", "started": utc_now()}
    store.write_manifest(manifest)
    state.manifest = manifest

    specs = [s for n in cfg.stages for s in stage_specs(n, cfg, root, run_id, upstream.root, upstream.run_id)]
    runner: Runner = (SequentialRunner(on_event, provide=provide) if provide is not None and executor == "sequential"
                      else make_run_runner(cfg, executor, store, on_event))
    state.in_runner = True
    rows = runner.run(specs, items, progress)
    state.in_runner = False
    store.clean_scratch()
    for failure in failures:  # inputs that resolved to no clip: one failed row each, the others ran
        rows.append(input_failure_row(failure, run_id))
        if progress:
            progress(rows[-1])
    if isinstance(runner, RayDataRunner):
        summary.ray_init_s = runner.ray_init_s
    first_frame = split_first_frame_summary(rows) if len(specs) > len(cfg.stages) else None
    rows = [r for r in rows if r.get("stage") in cfg.stages]
    order = {str(i.get("name", i.get("clip"))): k for k, i in enumerate(items)}
    stage_order = {s: k for k, s in enumerate(STAGES)}
    rows.sort(key=lambda r: (order.get(r["clip"], len(order)), stage_order[r["stage"]], r.get("instruction") or ""))
    summary.rows = rows
    summary.skipped = sum(bool(r.get("skipped")) for r in rows)

    all_rows = merge_rows(previous_rows(store), rows)  # rows of items this invocation did not touch stay
    all_rows = with_significance(cfg, all_rows, rows)
    store.write_results(all_rows)
    if "segment" in cfg.stages:
        write_videopainter_meta(store, all_rows, caption=DEFAULT_CAPTION)
    summary.seconds = time.perf_counter() - t_start
    timing = _timing(cfg, rows, summary.seconds, summary.ray_init_s)
    for name in cfg.stages:
        mine = [r for r in all_rows if r["stage"] == name]
        n_ok = sum(r["status"] == "ok" for r in mine)
        manifest["stages"][name].update(
            status="done" if mine and n_ok == len(mine) else "partial", finished=utc_now(),
            items=len(mine), ok=n_ok, failed=len(mine) - n_ok, skipped=sum(bool(r.get("skipped")) for r in mine),
            seconds=timing["busy_s"][name], setup_s=timing["setup_s"][name])
    manifest["timing"] = timing
    loads = summarise_loads(rows, cfg.stages)
    for name in cfg.stages:
        manifest["stages"][name]["model_loads"] = loads[name]
    manifest["model_loads"] = {n: v["loads"] for n, v in loads.items()}
    if first_frame is not None:  # edit.placement=split: the first-frame pool of the edit stage
        manifest["stages"]["edit"]["first_frame"] = first_frame
    random_models = random_weight_models(cfg)
    if random_models:  # tiny-random / random-init presets: outputs for wiring and timing only
        manifest["random_weights"] = {"models": random_models, "note": RANDOM_WEIGHTS_NOTE}
    else:
        manifest.pop("random_weights", None)
    manifest["inputs"] = [{"clip": r["clip"], "source": r["source"], "sha256": r.get("input_sha256")}
                          for r in all_rows if r["stage"] == "segment"] or manifest.get("inputs", [])
    report = "render" in cfg.stages and cfg.render.report
    if report:
        manifest["report"] = store.report_url
    manifest["updated"] = utc_now()
    store.write_manifest(manifest)
    if report:  # last, from the final manifest
        from lanepipe.viz.report import write_report

        summary.report = write_report(store.url)
    return summary
