"""Every backend of every capability, by name: ``(capability, name) -> BackendSpec``, imported lazily.

Capabilities and their config keys:

============  ====================  =====================================  ===========================
capability    chosen by             contract                               user entry-point group
============  ====================  =====================================  ===========================
segmenter     ``segment.backend``   :class:`lanepipe.segment.base.Segmenter`  ``lanepipe.segmenters``
painter       ``edit.backend``      :class:`lanepipe.edit.base.Painter`       ``lanepipe.painters``
verifier      ``verify.backend``    :class:`lanepipe.verify.base.Verifier`    ``lanepipe.verifiers``
predictor     ``evaluate.predictors``  :class:`lanepipe.predict.base.Predictor`  ``lanepipe.predictors``
============  ====================  =====================================  ===========================

A name is a built-in (:data:`BUILTINS`), ``package.module:ClassName``, or an entry point of the capability's
group. Adding a built-in backend is one file (the class) plus one :class:`BackendSpec` line here. Importing this
module imports no backend module and nothing heavy (torch, diffusers, OpenCV-based backends): :func:`create` and
:func:`load_class` import the one asked for.

A built-in backend gets its own config section (``segment.sam2``, ``edit.generative``, …, see
:attr:`BackendSpec.section`); a user backend gets ``<stage>.options`` (``evaluate.predictor_options.<name>`` for
predictors), built as :mod:`lanepipe.plugins` describes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel

from lanepipe import plugins
from lanepipe.errors import ConfigError

Capability = Literal["segmenter", "painter", "verifier", "predictor"]
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)

#: The config key that names each capability's backend (for messages).
CONFIG_KEY: dict[Capability, str] = {"segmenter": "segment.backend", "painter": "edit.backend",
                                     "verifier": "verify.backend", "predictor": "evaluate.predictors"}


def entry_point_group(capability: Capability) -> str:
    """``lanepipe.segmenters``, ``lanepipe.painters``, ``lanepipe.verifiers`` or ``lanepipe.predictors``."""
    return f"lanepipe.{capability}s"


@dataclass(frozen=True)
class DefaultResources:
    """What one worker of a backend asks Ray for, unless the stage's ``resources`` say otherwise.

    Attributes:
        num_cpus: CPU cores per worker.
        num_gpus: GPUs per worker (a fraction shares one GPU between workers).
        gpu_if_available: ``num_gpus`` only on a cluster with GPUs; on a CPU-only cluster the backend runs on CPU.
        custom_resources: Ray custom resources, e.g. ``{"alpamayo": 1}`` (the worker group with its own env).
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    gpu_if_available: bool = False
    custom_resources: dict[str, float] = field(default_factory=dict)

    def under(self, configured: BaseModel, gpus_available: bool = True) -> Any:
        """A stage's ``resources`` section with these defaults for the fields the config did not set.

        Args:
            configured: a :class:`lanepipe.config.Resources` (fields given in YAML / ``--set`` win).
            gpus_available: whether the cluster has GPUs; without, a ``gpu_if_available`` backend asks for none.

        Returns:
            A copy of ``configured`` (same type).
        """
        given = configured.model_fields_set
        update: dict[str, Any] = {}
        if "num_cpus" not in given:
            update["num_cpus"] = self.num_cpus
        if "num_gpus" not in given:
            update["num_gpus"] = 0.0 if self.gpu_if_available and not gpus_available else self.num_gpus
        if "custom_resources" not in given and self.custom_resources:
            update["custom_resources"] = dict(self.custom_resources)
        return configured.model_copy(update=update)

    def describe(self) -> str:
        """``1 CPU``, ``1 CPU + 0.5 GPU if any``, ``1 CPU + alpamayo=1``."""
        parts = [f"{self.num_cpus:g} CPU"]
        if self.num_gpus:
            parts.append(f"{self.num_gpus:g} GPU" + (" if any" if self.gpu_if_available else ""))
        parts += [f"{k}={v:g} if the cluster has it" for k, v in sorted(self.custom_resources.items())]
        return " + ".join(parts)


@dataclass(frozen=True)
class Needs:
    """What a backend needs to run.

    Attributes:
        device: ``"cpu"``, ``"gpu"`` (runs on CPU only at tiny size) or ``"cpu|gpu"``.
        weights: the model weights it loads, or None for none.
        extra: the pip extra that installs its third-party libraries (``pip install 'lanepipe[extra]'``), or None.
        modules: top-level modules that extra provides; the extra counts as installed when all are importable.
        note: anything else (e.g. its own Python environment).
    """

    device: Literal["cpu", "gpu", "cpu|gpu"] = "cpu"
    weights: str | None = None
    extra: str | None = None
    modules: tuple[str, ...] = ()
    note: str = ""

    def installed(self) -> bool:
        """All of :attr:`modules` can be imported (checked without importing them)."""
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def install_hint(self) -> str:
        return f"pip install 'lanepipe[{self.extra}]'" if self.extra else ""


@dataclass(frozen=True)
class BackendSpec:
    """One backend: where its class lives, which config section it takes, what it needs.

    Attributes:
        capability: ``segmenter``, ``painter``, ``verifier`` or ``predictor``.
        name: the value of its config key (``grid``, ``flux_cogvideox``…), or the ``module:Class`` / entry point
            a user gave.
        target: ``package.module:ClassName``, imported only by :meth:`load`.
        section: its settings in the run config, a dotted path (``segment.sam2``); None = ``<stage>.options``.
        summary: one line for ``lanepipe backends``.
        needs: device, weights, pip extra.
        resources: default Ray resources of a worker.
        entry_point: the entry point's name when the backend came from one.
    """

    capability: Capability
    name: str
    target: str
    section: str | None = None
    summary: str = ""
    needs: Needs = field(default_factory=Needs)
    resources: DefaultResources = field(default_factory=DefaultResources)
    entry_point: str | None = None

    @property
    def builtin(self) -> bool:
        return self.name in BUILTINS.get(self.capability, {})

    @property
    def what(self) -> str:
        """``edit.backend 'flux_cogvideox'``: how messages name it."""
        return f"{CONFIG_KEY[self.capability]} {self.name!r}"

    def load(self) -> type[Any]:
        """Import the class (a missing extra raises BackendUnavailableError naming the pip install)."""
        if self.entry_point is not None:
            cls = plugins.load_entry_point(entry_point_group(self.capability), self.entry_point)
            if cls is None:
                raise ConfigError(f"{self.what}: entry point {self.entry_point!r} disappeared")
            return cls
        return plugins.import_target(self.target, self.what, self.needs.extra)


#: One GPU per worker on a cluster with GPUs; none on a CPU-only cluster (the tiny-random presets run on CPU).
_GPU = DefaultResources(num_cpus=1.0, num_gpus=1.0, gpu_if_available=True)

#: The built-in backends, by capability and name. One line per backend.
BUILTINS: dict[Capability, dict[str, BackendSpec]] = {
    "segmenter": {s.name: s for s in (
        BackendSpec("segmenter", "grid", "lanepipe.segment.grid:GridSegmenter", "segment.grid",
                    "classical road segmentation seeded by the 9-point grid (embedded default)"),
        BackendSpec("segmenter", "sam2", "lanepipe.segment.sam2:Sam2Segmenter", "segment.sam2",
                    "SAM2.1 video predictor prompted with the 9-point grid",
                    Needs("cpu|gpu", "SAM2.1 checkpoint (segment.sam2.checkpoint; none with preset=tiny-random)",
                          "sam2", ("torch", "hydra", "iopath")),
                    DefaultResources(num_cpus=1.0, num_gpus=0.5, gpu_if_available=True)),
    )},
    "painter": {s.name: s for s in (
        BackendSpec("painter", "procedural", "lanepipe.edit.procedural:ProceduralPainter", "edit.procedural",
                    "erase + repaint lane markings on the road plane (embedded default)"),
        BackendSpec("painter", "flux_cogvideox", "lanepipe.edit.generative:GenerativePainter", "edit.generative",
                    "FLUX.1 Fill first frame, CogVideoX-I2V propagation",
                    Needs("gpu", "FLUX.1-Fill-dev + CogVideoX-5b-I2V (none with edit.preset=tiny-random)",
                          "generative", ("torch", "diffusers", "transformers", "peft", "accelerate")),
                    _GPU),
    )},
    "verifier": {s.name: s for s in (
        BackendSpec("verifier", "lane_detector", "lanepipe.verify.lane_detector:LaneDetector",
                    "verify.lane_detector", "classical lane-attribute detector (embedded default)"),
        BackendSpec("verifier", "qwen_vl", "lanepipe.verify.qwen_vl:QwenJudge", "verify.qwen_vl",
                    "Qwen2.5-VL judge of original vs edited first frame",
                    Needs("gpu", "Qwen2.5-VL-7B-Instruct (none with preset=tiny-random)", "generative",
                          ("torch", "transformers")),
                    _GPU),
    )},
    "predictor": {s.name: s for s in (
        BackendSpec("predictor", "lane_keep", "lanepipe.predict.lane_keep:LaneKeepPredictor", None,
                    "lane-keeping baseline: BEV lane tracking + pure pursuit"),
        BackendSpec("predictor", "alpamayo", "lanepipe.predict.alpamayo:AlpamayoPredictor", None,
                    "NVIDIA Alpamayo-R1 in a long-lived worker process",
                    Needs("gpu", "Alpamayo-R1", None, (),
                          "its own Python 3.12 env (evaluate.predictor_options.alpamayo.python)"),
                    DefaultResources(num_cpus=1.0, num_gpus=1.0, gpu_if_available=True,
                                     custom_resources={"alpamayo": 1.0})),
    )},
}


def _check_capability(capability: str) -> Capability:
    if capability not in CAPABILITIES:
        raise ConfigError(f"unknown backend capability {capability!r}; choose one of {', '.join(CAPABILITIES)}")
    return capability  # type: ignore[return-value]


def names(capability: Capability) -> list[str]:
    """Built-in names then installed entry-point names of ``capability``."""
    builtin = list(BUILTINS[_check_capability(capability)])
    return builtin + [n for n in plugins.entry_point_names(entry_point_group(capability)) if n not in builtin]


def choices(capability: Capability) -> str:
    """The names a config may give, for messages."""
    return f"{', '.join(names(capability))}, or 'package.module:ClassName'"


def spec(capability: Capability, name: str) -> BackendSpec:
    """The backend ``name`` of ``capability``: a built-in, ``module:Class`` or an entry point (not imported).

    Raises:
        ConfigError: an unknown name; the message lists the choices.
    """
    capability = _check_capability(capability)
    key = CONFIG_KEY[capability]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{key}: expected a backend name ({choices(capability)}), found {name!r}")
    name = name.strip()
    if name in BUILTINS[capability]:
        return BUILTINS[capability][name]
    if ":" in name:
        mod, _, attr = name.partition(":")
        if not mod or not attr:
            raise ConfigError(f"{key} {name!r}: expected 'package.module:ClassName'")
        return BackendSpec(capability, name, name, None, "user backend")
    group = entry_point_group(capability)
    if name in plugins.entry_point_names(group):
        return BackendSpec(capability, name, name, None, f"entry point in {group}", entry_point=name)
    raise ConfigError(f"{key}: unknown backend {name!r}; choose one of {choices(capability)} (or an entry point "
                      f"in the '{group}' group)")


def validate_name(capability: Capability, name: str) -> str:
    """``name`` unchanged when it names a backend (nothing imported); else ValueError listing the choices.

    For config validators: a ``module:Class`` is accepted as written (it is imported when the stage starts).
    """
    try:
        return spec(capability, name).name
    except ConfigError as e:
        raise ValueError(str(e)) from None


def load_class(capability: Capability, name: str) -> type[Any]:
    """Import the class of a backend (see :meth:`BackendSpec.load`)."""
    return spec(capability, name).load()


def create(capability: Capability, name: str, settings: BaseModel | dict[str, Any] | None = None) -> Any:
    """Build backend ``name`` of ``capability`` from its settings.

    Args:
        capability: ``segmenter``, ``painter``, ``verifier`` or ``predictor``.
        name: built-in name, ``package.module:ClassName`` or entry-point name.
        settings: its config section (``cfg.segment.grid``…), a dict for it, or None for its defaults.

    Returns:
        The backend, checked against the capability's contract.

    Raises:
        ConfigError: unknown name (lists the choices), invalid settings, or a class that breaks the contract.
        BackendUnavailableError: its pip extra is not installed (the message names ``pip install``).
    """
    s = spec(capability, name)
    obj = plugins.instantiate(s.load(), settings, s.what)
    _check_contract(s, obj)
    return obj


def create_from(capability: Capability, section: BaseModel) -> Any:
    """Build the backend a stage's config section names (``section.backend``) from its settings there.

    A built-in takes its own sub-section (``cfg.segment`` → ``cfg.segment.sam2``, see :attr:`BackendSpec.section`);
    a user backend takes ``section.options``.

    Args:
        capability: ``segmenter`` (``cfg.segment``), ``painter`` (``cfg.edit``) or ``verifier`` (``cfg.verify``).
        section: that stage's config section.
    """
    name = getattr(section, "backend", None)
    if not isinstance(name, str):
        raise ConfigError(f"{CONFIG_KEY[capability]}: {type(section).__name__} names no backend")
    s = spec(capability, name)
    sub = s.section.rpartition(".")[2] if s.section is not None else "options"
    return create(capability, s.name, getattr(section, sub, None))


#: The methods each capability's contract asks for (checked on what :func:`create` builds).
CONTRACT_METHODS: dict[Capability, tuple[str, ...]] = {
    "segmenter": ("segment",), "painter": ("prepare",), "verifier": ("check",), "predictor": ("predict",)}


def _check_contract(s: BackendSpec, obj: Any) -> None:
    missing = [m for m in CONTRACT_METHODS[s.capability] if not callable(getattr(obj, m, None))]
    if missing or not isinstance(getattr(obj, "name", None), str):
        raise ConfigError(f"{s.what}: {type(obj).__name__} is not a {s.capability} (expected a 'name' attribute "
                          f"and the method(s) {', '.join(CONTRACT_METHODS[s.capability])}; see "
                          f"lanepipe/{_BASE[s.capability]}/base.py)")


_BASE: dict[Capability, str] = {"segmenter": "segment", "painter": "edit", "verifier": "verify",
                                "predictor": "predict"}


def default_resources(capability: Capability, name: str) -> DefaultResources:
    """Default Ray resources of a worker of backend ``name`` (a user backend: 1 CPU)."""
    return spec(capability, name).resources
