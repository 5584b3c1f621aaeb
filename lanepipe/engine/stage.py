"""The stage contract every pipeline stage implements, and the picklable spec that builds a stage in a worker.

A stage is built cheaply (``__init__`` reads its config, no model loads), asked for its :meth:`Stage.resources`
by the driver, then :meth:`Stage.setup` runs once per worker (models load there) and :meth:`Stage.process`
maps one typed item (:mod:`lanepipe.engine.items`) to the items it emits: the item itself when the stage passes it
on, its own results, or both. Items become rows (``dict``, JSON) only at the runners' edges: the generic Ray actor
(:mod:`lanepipe.actors.base`) and :class:`~lanepipe.engine.SequentialRunner`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from lanepipe.config import STAGES, Resources
from lanepipe.engine.items import StageItem
from lanepipe.errors import ConfigError

#: What flows between stages (typed); :data:`Row` is its form in the results table and between Ray actors.
Item = StageItem
Row = dict[str, Any]


@runtime_checkable
class Stage(Protocol):
    """One step of a pipeline, run in-process by :class:`~lanepipe.engine.SequentialRunner` or hosted by the
    generic Ray actor (:class:`lanepipe.actors.base.StageActor`)."""

    #: ``segment`` | ``edit`` | ``evaluate`` | ``render`` | ``dataset``
    name: str

    def resources(self) -> Resources:
        """Resources of this stage's workers (the config's ``<stage>.resources``, which override defaults)."""
        ...

    def setup(self) -> None:
        """Load models / backends. Called once per worker before the first :meth:`process`; idempotent."""
        ...

    def process(self, item: Item) -> list[Item]:
        """One item in, the items it leads to out. Failures are rows with ``status="failed"``, not exceptions."""
        ...


def item_key(item: Row) -> str:
    """The clip a row belongs to (``name`` of an input row, ``clip`` of a results row)."""
    return str(item.get("name", item.get("clip")))


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ConfigError(f"stage target {target!r}: expected 'package.module:Name'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"stage target {target!r} cannot be imported: {e}") from None


@dataclass(frozen=True)
class StageSpec:
    """Everything needed to build a stage in another process, as plain strings (picklable, importable lazily).

    Attributes:
        name: the stage's name (metric tag, failure rows).
        target: ``module:Class`` of the stage; called as ``Class(config, *args)``.
        config: ``module:Model`` of the pydantic config class the stage takes.
        cfg_json: the config, as JSON.
        args: further positional string arguments (run root, run id, upstream run …).
        backend: backend name(s) for metric tags.
        scratch: local folder for the stage's temp files (the run's scratch area); empty: the system temp folder.
    """

    name: str
    target: str
    config: str
    cfg_json: str
    args: tuple[str, ...] = ()
    backend: str = "default"
    scratch: str = ""

    def build(self) -> Stage:
        """The stage object (cheap: no ``setup``)."""
        model = _import(self.config)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"stage config {self.config!r} is not a pydantic model")
        stage = _import(self.target)(model.model_validate_json(self.cfg_json), *self.args)
        if not isinstance(stage, Stage):
            raise ConfigError(f"{self.target} does not implement the Stage contract (name, resources, setup, "
                              "process)")
        return stage


def config_json(cfg: BaseModel) -> str:
    """A stage's config as :class:`StageSpec` carries it: only the fields that were set (``exclude_unset``), so the
    config rebuilt in a worker knows which fields its user gave. Backend defaults depend on that
    (:meth:`lanepipe.registry.DefaultResources.under` fills only the ``resources`` fields not set, e.g. one GPU for
    the generative painter); a full dump would mark every field set and those defaults would never apply. The
    rebuilt config has the same values (``RunConfig.model_validate_json(config_json(cfg)) == cfg``)."""
    return cfg.model_dump_json(exclude_unset=True)


def cluster_has_gpus() -> bool:
    """Whether the Ray cluster this process is connected to has GPUs (False when Ray is not running here).

    Backends whose default asks for a GPU "if any" (:class:`lanepipe.registry.DefaultResources`) ask for none on
    a CPU-only cluster; Ray is never imported or started by this check."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    return float(ray.cluster_resources().get("GPU", 0.0)) > 0.0


def fitted_shares(demand: dict[str, tuple[int, float]], capacity: float) -> dict[str, float] | None:
    """Per-actor shares scaled down so that every pool's fewest actors fit ``capacity`` together: ``demand`` is,
    per pool, its fewest actors and each one's share of a resource (CPUs or GPUs). None when they fit already or
    ``capacity`` is zero; else each share times ``capacity / total``, rounded down to 0.01 (at least 0.01)."""
    total = sum(n * share for n, share in demand.values())
    if total <= capacity + 1e-9 or capacity <= 0:
        return None
    return {name: max(0.01, int(share * capacity / total * 100) / 100) for name, (_, share) in demand.items()}


def _asks(demand: dict[str, tuple[int, float]], label: Callable[[str], str]) -> tuple[float, str]:
    """The total of ``demand`` (per pool: fewest actors, each one's share) and each ask as ``label`` names it."""
    total = sum(n * share for n, share in demand.values())
    return total, ", ".join(f"{label(name)} {n} x {share:g}" for name, (n, share) in demand.items())


def fit_asks(demand: dict[str, tuple[int, float]], capacity: float, unit: str,
             label: Callable[[str], str] = str) -> tuple[dict[str, float], str] | None:
    """:func:`fitted_shares` of ``demand`` (per pool: fewest actors, each one's share of ``unit``) and a sentence
    naming the total, each ask (as ``label`` writes the pool), the cluster's ``capacity`` and the scaled shares;
    None when they fit."""
    fitted = fitted_shares(demand, capacity)
    if not fitted:
        return None
    total, asked = _asks(demand, label)
    given = ", ".join(f"{label(name)} {share:g}" for name, share in fitted.items())
    return fitted, (f"{total:g} {unit} ({asked}) but the Ray cluster has {capacity:g}: each one's {unit} scaled to "
                    f"fit so that all are up at once ({given})")


def gpu_shortfall(demand: dict[str, tuple[int, float]], cluster_gpus: float,
                  label: Callable[[str], str] = str) -> tuple[str, str] | None:
    """Whether GPU actors can all be up at once: ``demand`` is, per stage, its fewest actors and each one's GPU
    share. None when they fit ``cluster_gpus``; else ``(what, fix)``: ``what`` names the total, each ask (the stage
    as ``label`` writes it) and the cluster's GPUs, ``fix`` the ``--set`` overrides of shares scaled down to fit
    (:func:`fitted_shares`; only for the run config's stages; empty when the cluster has no GPU)."""
    total, asks = _asks(demand, label)
    if total <= cluster_gpus + 1e-9:
        return None
    fitted = fitted_shares(demand, cluster_gpus) or {}
    fix = " ".join(f"--set {name}.resources.num_gpus={share:g}" for name, share in fitted.items()
                   if name in STAGES)  # a split edit's two pools share edit.resources
    return f"{total:g} GPUs ({asks}) but the Ray cluster has {cluster_gpus:g}", fix


def require_gpus(full_size: list[str], resources: Resources | None = None) -> None:
    """Refuse to run full-size GPU models (``full_size``: what each is, as config keys) on a Ray cluster without
    GPUs: they would run on CPU for hours instead of failing. A no-op when ``full_size`` is empty, when Ray is not
    running here, when the cluster has GPUs, or when the stage's ``resources`` ask for GPUs explicitly (the actors
    then wait for GPU nodes, e.g. a worker group an autoscaler starts from zero).

    Raises:
        ConfigError: naming the models, the cluster's resources and the ways out (tiny-random, a GPU cluster,
            or an explicit ``device=cpu``).
    """
    ray = sys.modules.get("ray")
    if not full_size or ray is None or not ray.is_initialized() or cluster_has_gpus():
        return
    if resources is not None and "num_gpus" in resources.model_fields_set and resources.num_gpus > 0:
        return
    have = {k: v for k, v in ray.cluster_resources().items() if not k.startswith(("node:", "memory",
                                                                                  "object_store"))}
    raise ConfigError(
        f"{'; '.join(full_size)}: full-size GPU model(s) asked for, but the Ray cluster has no GPU (resources: "
        f"{have}); run on a GPU cluster (--address, or ray.num_gpus for a local instance), use the tiny-random "
        "preset for a CPU check (edit.preset=tiny-random, segment.sam2.preset=tiny-random), or set the model's "
        "device to cpu explicitly to run it on CPU anyway (hours per clip); a cluster that adds GPU nodes on demand: "
        "set the stage's resources.num_gpus")
