"""Model deployments of the Serve app: one Ray Serve deployment per model stage (``segment``, ``edit``,
``evaluate``), each keeping its stage's models resident on its replicas, and the job-side proxy that composes them.

A job is still a run of the real pipeline (``pipeline.run(cfg, executor="sequential")``, the same stage code,
backend registry, run folder, manifest and report as a batch run), driven from the ingress's job thread; only the
model stages' ``process`` runs elsewhere: :class:`RemoteStage` sends each typed item
(:mod:`lanepipe.engine.items`: ClipItem → SegmentResult → EditResult → PredictionResult) to its stage's deployment
through a DeploymentHandle and gets the stage's items back. Items carry paths into the run folder (the clip's
source, ``masks_npz``, the edited video, the evaluation document), never frames, so no large array crosses a
handle. ``render`` (no models) runs in the job thread.

Each replica of :class:`StageModels` sets its stage's models up once per distinct model config
(:class:`ResidentStages`) and hands them to every later job's stage object; the loads it caused travel back with
its answer and land in the job's rows (``model_loads``), as in a batch run. Each deployment has its own Ray
resources: those the stage's backends ask for by default under the config (:meth:`Stage.resources`, the rule batch
runs use: a GPU backend reserves its GPU share only when the cluster has GPUs) and its own autoscaling bounds.
A replica that dies is replaced by Serve; :class:`RemoteStage` retries a call that reached a dead replica, so a
job carries on (stage outputs are written atomically: an item redone overwrites nothing half-written).
"""

# No `from __future__ import annotations`: Serve builds the deployment from this module at run time.
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from ray import serve

from lanepipe.config import RunConfig, load_config
from lanepipe.engine import Stage, StageSpec
from lanepipe.engine.items import StageItem
from lanepipe.engine.stage import fit_asks
from lanepipe.monitoring import record_model_loads, take_model_loads
from lanepipe.serve.jobs import summarize_rows
from lanepipe.serve.settings import ServeSettings

logger = logging.getLogger("ray.serve")

#: Stages with models, each its own deployment (``render`` has none: it runs in the job thread).
MODEL_STAGES: tuple[str, ...] = ("segment", "edit", "evaluate")
#: Config keys that name a job's inputs and outputs, not its models: two jobs differing only there share models.
_JOB_KEYS = ("run_id", "output", "from_run", "stages")
_JOB_SUBKEYS = {"input": ("paths",), "edit": ("instructions",)}
#: Stage objects a replica keeps per job spec (jobs at once; a job's items come one after another).
_KEEP_JOBS = 16


def deployment_name(stage: str) -> str:
    """The Serve deployment that holds ``stage``'s models: ``lanepipe-segment``, ``lanepipe-edit``, …"""
    return f"lanepipe-{stage}"


def model_key(name: str, cfg: RunConfig) -> str:
    """The key of stage ``name``'s models under ``cfg``: its config without the job's own inputs and outputs."""
    data = cfg.model_dump(mode="json")
    for k in _JOB_KEYS:
        data.pop(k, None)
    for section, keys in _JOB_SUBKEYS.items():
        for k in keys:
            data.get(section, {}).pop(k, None)
    return name + ":" + json.dumps(data, sort_keys=True, default=str)


class ResidentStages:
    """Stages for jobs, with models set up once per distinct model config and shared by every later job.

    The first stage built for a key is handed out as it is (its ``setup`` loads the models) and kept; what that
    ``setup`` added to the object (the segmenter, the painter and verifier, the predictors, the ready flag) is
    copied onto the stage objects of later jobs, so their ``setup`` is a no-op.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: dict[str, tuple[Stage, dict[str, Any]]] = {}  # key -> (first stage, its attributes before setup)
        self._models: dict[str, dict[str, Any]] = {}

    def __call__(self, spec: StageSpec) -> Stage:
        stage = spec.build()
        cfg = getattr(stage, "cfg", None)
        if not isinstance(cfg, RunConfig):
            return stage
        key = model_key(spec.name, cfg)
        with self._lock:
            held = self._models.get(key)
            if held is None and key in self._first:
                first, before = self._first[key]
                if getattr(first, "_ready", True):  # its setup has run: keep what it added
                    held = {k: v for k, v in vars(first).items() if k not in before or before[k] is not v}
                    self._models[key] = held
                    del self._first[key]
            if held is None:
                self._first.setdefault(key, (stage, dict(vars(stage))))
                return stage
        for k, v in held.items():
            setattr(stage, k, v)
        return stage

    def resident(self) -> list[str]:
        with self._lock:
            return sorted({k.split(":", 1)[0] for k in self._models})


class StageModels:
    """One model stage's replica: its models set up once (per model config) and every job's items through them.

    ``setup`` and ``process`` answer ``{"loads": [{"model", "seconds"}, ...]}`` (the model loads the call caused
    on this replica), ``process`` also ``"items"`` (what the stage emitted for the item)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.stages = ResidentStages()
        self._lock = threading.Lock()  # the counters
        self._setup_lock = threading.Lock()  # one setup at a time: two jobs that start together load once
        self._jobs: OrderedDict[StageSpec, Stage] = OrderedDict()
        self.loads = 0
        self.load_s = 0.0
        self.calls = 0

    def _count(self, loads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            self.loads += len(loads)
            self.load_s += sum(float(x["seconds"]) for x in loads)
        return loads

    def _stage(self, spec: StageSpec) -> Stage:
        if spec.name != self.stage:
            raise ValueError(f"stage spec: expected a {self.stage!r} stage (deployment {deployment_name(self.stage)}),"
                             f" found {spec.name!r}")
        with self._setup_lock:
            stage = self._jobs.get(spec)
            if stage is None:
                stage = self.stages(spec)
                self._jobs[spec] = stage
                while len(self._jobs) > _KEEP_JOBS:
                    self._jobs.popitem(last=False)
            else:
                self._jobs.move_to_end(spec)
            stage.setup()  # loads models the first time a model config is seen on this replica, else a no-op
        return stage

    def setup(self, spec: StageSpec) -> dict[str, Any]:
        """Set the models of ``spec``'s stage up on this replica (nothing when they are resident)."""
        self._stage(spec)
        return {"loads": self._count(take_model_loads())}

    def process(self, spec: StageSpec, item: StageItem) -> dict[str, Any]:
        """``item`` through ``spec``'s stage (a job's stage, bound to its run folder)."""
        stage = self._stage(spec)
        items = stage.process(item)
        with self._lock:
            self.calls += 1
        return {"items": items, "loads": self._count(take_model_loads())}

    def stats(self) -> dict[str, Any]:
        """This replica's model loads and load seconds (by stage), its resident stages, the items it processed
        and the Ray resources it was scheduled with."""
        import ray

        with self._lock:
            loads = {self.stage: self.loads} if self.loads else {}
            load_s = {self.stage: round(self.load_s, 3)} if self.loads else {}
            calls = self.calls
        return {"model_loads": loads, "model_load_s": load_s, "resident": self.stages.resident(), "calls": calls,
                "resources": ray.get_runtime_context().get_assigned_resources()}  # type: ignore[no-untyped-call]


ModelDeployment: Any = serve.deployment(StageModels, name="lanepipe-models", max_ongoing_requests=4)


def _dead_replica_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorUnavailableError, RayActorError

    return (RayActorError, ActorUnavailableError)


class RemoteStage:
    """A job's stage whose ``setup`` and ``process`` run on its model deployment (the runner's side of it).

    Model loads a call caused on the replica are recorded in this process (:func:`record_model_loads`), so the
    runner puts them on the job's rows as if they had happened here. A call that reaches a replica that died
    (killed, its node gone) is sent again, up to ``retry_s`` seconds, while Serve starts a replacement."""

    def __init__(self, spec: StageSpec, handle: Any, retry_s: float = 120.0) -> None:
        self.name = spec.name
        self.spec = spec
        self.handle = handle
        self.retry_s = retry_s

    def resources(self) -> Any:
        return self.spec.build().resources()

    def _call(self, method: str, *args: Any) -> dict[str, Any]:
        errors = _dead_replica_errors()
        deadline = time.monotonic() + self.retry_s
        wait = 0.5
        while True:
            try:
                out: dict[str, Any] = getattr(self.handle, method).remote(*args).result()
                break
            except errors as e:
                if time.monotonic() + wait > deadline:
                    raise
                logger.warning("%s.%s: the replica is gone (%s); calling again in %.1f s",
                               deployment_name(self.name), method, type(e).__name__, wait)
                time.sleep(wait)
                wait = min(8.0, wait * 2)
        record_model_loads(out.get("loads") or [])
        return out

    def setup(self) -> None:
        self._call("setup", self.spec)

    def process(self, item: StageItem) -> list[StageItem]:
        items: list[StageItem] = self._call("process", self.spec, item)["items"]
        return items


class ModelStages:
    """``provide`` for :func:`lanepipe.pipeline.run`: a :class:`RemoteStage` for each stage with a deployment,
    the stage itself (built here) for the others."""

    def __init__(self, handles: dict[str, Any]) -> None:
        self.handles = handles

    def __call__(self, spec: StageSpec) -> Stage:
        handle = self.handles.get(spec.name)
        if handle is None:
            return spec.build()
        return RemoteStage(spec, handle)  # type: ignore[return-value]  # the Stage protocol, structurally


def run_job(cfg: RunConfig, handles: dict[str, Any]) -> dict[str, Any]:
    """One job through the pipeline, its model stages on their deployments: ``{"rows", "model_loads"}`` (the
    loads this job caused, summed over deployments)."""
    from lanepipe import pipeline

    summary = pipeline.run(cfg, executor="sequential", provide=ModelStages(handles))
    rows = [{k: v for k, v in r.items() if _plain(v)} for r in summary.rows]
    return {"rows": rows, "model_loads": sum(int(r.get("model_loads") or 0) for r in rows)}


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def job_config(settings: ServeSettings) -> RunConfig:
    """The server's base run config (what each deployment's resources are computed from)."""
    import copy

    base = copy.deepcopy(settings.base_config)
    base["output"] = settings.output
    for key in ("from_run", "run_id"):
        base.pop(key, None)
    return load_config(None, [], base=base)


def stage_options(settings: ServeSettings, cfg: RunConfig | None = None) -> dict[str, dict[str, Any]]:
    """Per model stage, the Serve options of its deployment: ``ray_actor_options`` (``num_gpus`` and custom
    resources the stage's backends ask for by default under the config: :meth:`Stage.resources`, which asks for a
    ``gpu_if_available`` backend's GPU only when the Ray cluster this process is connected to has GPUs;
    ``num_cpus`` likewise, unless ``replica_cpus`` was set, which then applies to every replica) and
    ``autoscaling_config`` (``min_replicas``/``max_replicas``, overridden per stage by ``stage_replicas``)."""
    from lanepipe.pipeline import stage_spec

    cfg = cfg or job_config(settings)
    out: dict[str, dict[str, Any]] = {}
    for name in MODEL_STAGES:
        res = stage_spec(name, cfg, cfg.output, "serve", cfg.output, "serve").build().resources()
        actor: dict[str, Any] = {"num_cpus": settings.replica_cpus if "replica_cpus" in settings.model_fields_set
                                 else res.num_cpus, "num_gpus": res.num_gpus}
        if res.custom_resources:
            actor["resources"] = dict(res.custom_resources)
        if res.runtime_env:
            actor["runtime_env"] = dict(res.runtime_env)
        bounds = settings.replicas(name)
        out[name] = {"name": deployment_name(name), "ray_actor_options": actor,
                     "max_ongoing_requests": max(1, settings.workers),
                     "autoscaling_config": {**bounds, "target_ongoing_requests": settings.target_ongoing_requests}}
    return out


def gpu_demand(options: dict[str, dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Per model stage whose replicas reserve GPUs: ``(min_replicas, num_gpus per replica)`` from
    :func:`stage_options`."""
    out: dict[str, tuple[int, float]] = {}
    for stage, opts in options.items():
        share = float(opts["ray_actor_options"].get("num_gpus") or 0.0)
        if share > 0:
            out[stage] = (int(opts["autoscaling_config"]["min_replicas"]), share)
    return out


#: The ingress replica's name in :func:`fit_replicas`'s messages.
INGRESS = "the ingress"


def fit_replicas(options: dict[str, dict[str, Any]], ingress_cpus: float, cluster_cpus: float,
                 cluster_gpus: float) -> tuple[dict[str, dict[str, Any]], float, list[str]]:
    """The model deployments' :func:`stage_options` and the ingress's ``num_cpus`` scaled down to what the Ray
    cluster has when the ingress and every deployment's minimum replicas together ask for more CPUs or GPUs, and a
    warning per resource scaled. Serve would otherwise wait for those replicas forever and the app never become
    ready, with no error: seen with the defaults on a 2-core laptop (1 CPU each for the ingress and three model
    replicas) and on one H200 (SAM2's 0.5 GPU beside the edit stack's 1), both on 2026-12-05. The asks are Ray's
    bookkeeping: replicas sharing a GPU share its memory. A cluster with no GPU keeps the GPU asks (an autoscaler
    may add GPU nodes; :func:`lanepipe.engine.stage.require_gpus` refuses full-size models otherwise)."""
    options = {stage: {**opts, "ray_actor_options": dict(opts["ray_actor_options"])} for stage, opts in options.items()}
    notes: list[str] = []

    def label(name: str) -> str:
        return name if name == INGRESS else deployment_name(name)

    cpus = {INGRESS: (1, ingress_cpus)} | {
        stage: (int(opts["autoscaling_config"]["min_replicas"]), float(opts["ray_actor_options"]["num_cpus"] or 0))
        for stage, opts in options.items()}
    for key, unit, demand, capacity in (
            ("num_cpus", "CPUs", {k: v for k, v in cpus.items() if v[1] > 0}, cluster_cpus),
            ("num_gpus", "GPUs", gpu_demand(options), cluster_gpus)):
        fit = fit_asks(demand, capacity, unit, label)
        if fit is None:
            continue
        fitted, what = fit
        ingress_cpus = fitted.get(INGRESS, ingress_cpus)
        for stage, share in fitted.items():
            if stage != INGRESS:
                options[stage]["ray_actor_options"][key] = share
        notes.append(f"serve: the replicas ask for {what}" + ("; these models then share the GPU's memory"
                                                              if key == "num_gpus" else "")
                     + "; --set ray.fit_pools=false keeps the asks (a cluster that adds nodes on demand)")
    return options, ingress_cpus, notes


__all__ = ["INGRESS", "MODEL_STAGES", "ModelDeployment", "ModelStages", "RemoteStage", "ResidentStages", "StageModels",
           "deployment_name", "fit_replicas", "gpu_demand", "model_key", "run_job", "stage_options", "summarize_rows"]
