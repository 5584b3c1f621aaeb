"""Build a trajectory predictor by name, import path or entry point (``predict.backend``).

Built-in names: ``lane_keep`` (:class:`~lanepipe.predict.lane_keep.LaneKeepPredictor`, CPU, no weights) and
``alpamayo`` (``lanepipe.predict.alpamayo:AlpamayoPredictor``, imported only when asked for: it needs its own
environment). Anything else is ``package.module:ClassName`` or the name of an entry point in the
``lanepipe.predictors`` group (:func:`lanepipe.predict.base.load_predictor_class`).

How the class is built from ``cfg``: a class whose config is a pydantic model — its ``config_class`` attribute,
else the type annotation of the first ``__init__`` parameter (``def __init__(self, cfg: MyConfig | None)``) —
gets ``cls(Model.model_validate(cfg))``; any other class gets ``cls(**cfg)`` (``cls()`` for an empty or
missing ``cfg``).
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from lanepipe.errors import BackendUnavailableError, ConfigError
from lanepipe.predict.base import Predictor, load_predictor_class

#: Built-in predictors: name → ``module:Class`` (imported lazily).
BUILTIN: dict[str, str] = {
    "lane_keep": "lanepipe.predict.lane_keep:LaneKeepPredictor",
    "alpamayo": "lanepipe.predict.alpamayo:AlpamayoPredictor",
}


def _import_builtin(name: str) -> type[Any]:
    mod_name, _, attr = BUILTIN[name].partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        if e.name is not None and not e.name.startswith("lanepipe"):
            raise BackendUnavailableError(
                f"predict.backend {name!r} needs {e.name!r}, which is not installed "
                f"(pip install 'lanepipe[{name}]')") from None
        raise ConfigError(f"predict.backend {name!r}: cannot import {BUILTIN[name]} ({e})") from None
    try:
        cls: type[Any] = getattr(mod, attr)
    except AttributeError:
        raise ConfigError(f"predict.backend {name!r}: {mod_name} has no {attr}") from None
    return cls


def _config_model(cls: type[Any]) -> type[BaseModel] | None:
    """The pydantic config model a predictor class takes, if it declares one (see the module docstring)."""
    cc = getattr(cls, "config_class", None)
    if isinstance(cc, type) and issubclass(cc, BaseModel):
        return cc
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        hints = typing.get_type_hints(cls.__init__)
    except (TypeError, ValueError, NameError):
        return None
    if not params or params[0].name not in hints:
        return None
    hint = hints[params[0].name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
    return models[0] if len(models) == 1 else None


def build_predictor(name_or_spec: str, cfg: dict[str, Any] | None = None) -> Predictor:
    """Build a predictor.

    Args:
        name_or_spec: ``lane_keep``, ``alpamayo``, ``package.module:ClassName`` or an entry-point name.
        cfg: settings for its config model (or keyword arguments); None = defaults.

    Returns:
        An object with ``name`` and ``predict(PredictorInput) -> Prediction``.

    Raises:
        ConfigError: an unknown name (the message lists the built-in names), settings the config rejects, or a
            class that does not make a predictor.
        BackendUnavailableError: a built-in backend whose optional dependency is missing.
    """
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise ConfigError(f"predict.backend: expected a name ({', '.join(BUILTIN)}), 'module:Class' or an entry "
                          f"point, found {name_or_spec!r}")
    spec = name_or_spec.strip()
    if spec in BUILTIN:
        cls = _import_builtin(spec)
    else:
        try:
            cls = load_predictor_class(spec)
        except ConfigError as e:
            raise ConfigError(f"{e}; built-in predictors: {', '.join(BUILTIN)}") from None
    settings = dict(cfg or {})
    model = _config_model(cls)
    try:
        obj = cls(model.model_validate(settings)) if model is not None else cls(**settings)
    except ValidationError as e:
        raise ConfigError(f"predict.backend {spec!r}: invalid settings:\n{e}") from None
    except TypeError as e:
        raise ConfigError(f"predict.backend {spec!r}: cannot build {cls.__name__} from {sorted(settings)} ({e})"
                          ) from None
    if not isinstance(obj, Predictor):
        raise ConfigError(f"predict.backend {spec!r}: {cls.__name__} is not a predictor (expected a 'name' "
                          "attribute and a 'predict(PredictorInput) -> Prediction' method)")
    return obj
