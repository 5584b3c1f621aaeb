"""Models kept resident between jobs: :class:`ResidentStages` (stages whose models were set up once, handed to
each job) and :class:`ModelService`, the Ray Serve deployment that holds them and runs jobs through them.

A job is still a run of the real pipeline (``pipeline.run(cfg, executor="sequential")``, the same stage code and
backend registry as a batch run); only the stage objects differ: each job gets fresh stage objects (bound to its
run folder) that take over the models a first job's ``setup`` built — segmenter, painter + verifier (the edit
stack, QA loop included) and predictors. Their ``setup`` then loads nothing, so the library's ``model_loads``
counter counts one load per model per replica, not per job.
"""

# No `from __future__ import annotations`: Serve builds the deployment from this module at run time.
import json
import logging
import threading
from typing import Any

from ray import serve

from lanepipe.config import RunConfig, load_config
from lanepipe.engine import Stage, StageSpec
from lanepipe.engine.stage import cluster_has_gpus
from lanepipe.serve.jobs import summarize_rows

logger = logging.getLogger("ray.serve")

#: Config keys that name a job's inputs and outputs, not its models: two jobs differing only there share models.
_JOB_KEYS = ("run_id", "output", "from_run", "stages")
_JOB_SUBKEYS = {"input": ("paths",), "edit": ("instructions",)}


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

    The first stage built for a key is handed out as it is (the runner's ``setup`` loads its models, and the run's
    rows count those loads) and kept; what that ``setup`` added to the object (the segmenter, the painter and
    verifier, the predictors, the ready flag) is copied onto the stage objects of later jobs, so their ``setup`` is
    a no-op. Two jobs that start at once on a fresh replica may both load (each counts its loads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: dict[str, tuple[Stage, dict[str, Any]]] = {}  # key -> (first stage, its attributes before setup)
        self._models: dict[str, dict[str, Any]] = {}
        self.loads: dict[str, int] = {}  # stage -> model loads on this replica (the rows' ``model_loads``)
        self.load_s: dict[str, float] = {}

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

    def count(self, rows: list[dict[str, Any]]) -> None:
        """Add the model loads (and their seconds) a job's rows report to this replica's totals."""
        with self._lock:
            for r in rows:
                n = int(r.get("model_loads") or 0)
                if n:
                    name = str(r.get("stage"))
                    self.loads[name] = self.loads.get(name, 0) + n
                    self.load_s[name] = round(self.load_s.get(name, 0.0) + float(r.get("model_load_s") or 0.0), 3)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"model_loads": dict(self.loads), "model_load_s": dict(self.load_s),
                    "resident": sorted({k.split(":", 1)[0] for k in self._models})}


def run_job(cfg: RunConfig, stages: ResidentStages) -> dict[str, Any]:
    """One job through the pipeline with resident models: ``{"rows", "model_loads"}`` (loads this job caused)."""
    from lanepipe import pipeline

    summary = pipeline.run(cfg, executor="sequential", provide=stages)
    rows = [{k: v for k, v in r.items() if _plain(v)} for r in summary.rows]
    stages.count(rows)
    return {"rows": rows, "model_loads": sum(int(r.get("model_loads") or 0) for r in rows)}


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


@serve.deployment(name="lanepipe-models", max_ongoing_requests=4)
class ModelService:
    """Holds the models of the configured backends resident and runs jobs through them (one replica per GPU set
    the backends' default resources ask for; autoscaled between the settings' bounds)."""

    def __init__(self) -> None:
        self.stages = ResidentStages()
        self.jobs = 0

    def run(self, cfg_json: str) -> dict[str, Any]:
        """Run the job whose config is ``cfg_json`` (a :class:`RunConfig` as JSON)."""
        cfg = load_config(None, [], base=json.loads(cfg_json))
        out = run_job(cfg, self.stages)
        self.jobs += 1
        return out

    def stats(self) -> dict[str, Any]:
        """Model loads and load seconds per stage on this replica, and the jobs it ran."""
        return {**self.stages.stats(), "jobs": self.jobs}


def model_resources(cfg: RunConfig) -> dict[str, float]:
    """Ray actor options of a model replica: the largest GPU share any selected stage's backends ask for by
    default (:mod:`lanepipe.registry`), when the cluster has GPUs; CPUs summed as in one worker."""
    from lanepipe.pipeline import stage_spec

    gpus = 0.0
    if cluster_has_gpus():
        for name in cfg.stages:
            stage = stage_spec(name, cfg, cfg.output, "serve", cfg.output, "serve").build()
            gpus = max(gpus, float(stage.resources().num_gpus))
    return {"num_gpus": gpus}


__all__ = ["ModelService", "ResidentStages", "model_key", "model_resources", "run_job", "summarize_rows"]
