"""Load a backend class by ``module:Class``, by entry point, and build it from its settings.

Used by every capability's registry (:mod:`lanepipe.registry`, :mod:`lanepipe.predict.registry`); imports nothing
heavy. How a class is built from ``settings``: a class whose config is a pydantic model — its ``config_class``
attribute, else the type annotation of the first ``__init__`` parameter (``def __init__(self, cfg: MyConfig |
None)``) — gets ``cls(Model.model_validate(settings))``; any other class gets ``cls(**settings)`` (``cls()`` for
empty or missing settings).
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ValidationError

from lanepipe.errors import BackendUnavailableError, ConfigError


def import_target(target: str, what: str, extra: str | None = None) -> type[Any]:
    """Import ``module:Class``.

    Args:
        target: ``package.module:ClassName``.
        what: the config key it came from, for messages (``edit.backend 'x'``).
        extra: the pip extra that provides the module's third-party imports (built-ins), or None.

    Raises:
        BackendUnavailableError: a third-party module is missing and ``extra`` names the extra to install.
        ConfigError: the module or attribute does not exist.
    """
    mod_name, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        missing = e.name or ""
        if extra is not None and missing and not missing.startswith("lanepipe") and missing != mod_name:
            raise BackendUnavailableError(f"{what} needs {missing!r}, which is not installed "
                                          f"(pip install 'lanepipe[{extra}]')") from None
        raise ConfigError(f"{what}: cannot import {attr} from {mod_name} ({e})") from None
    try:
        cls = getattr(mod, attr)
    except AttributeError:
        raise ConfigError(f"{what}: {mod_name} has no {attr}") from None
    if not isinstance(cls, type):
        raise ConfigError(f"{what}: {target} is not a class")
    return cls


def entry_point_names(group: str) -> list[str]:
    """Names of the installed entry points in ``group`` (sorted)."""
    return sorted(ep.name for ep in metadata.entry_points(group=group))


def load_entry_point(group: str, name: str) -> type[Any] | None:
    """The class of entry point ``name`` in ``group``, or None when there is none by that name."""
    for ep in metadata.entry_points(group=group):
        if ep.name == name:
            return ep.load()  # type: ignore[no-any-return]
    return None


def config_model(cls: type[Any]) -> type[BaseModel] | None:
    """The pydantic config model a backend class takes, if it declares one (see the module docstring)."""
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


def instantiate(cls: type[Any], settings: BaseModel | dict[str, Any] | None, what: str) -> Any:
    """Build ``cls`` from a config model instance, a dict of settings or None (see the module docstring).

    Raises:
        ConfigError: settings the config model rejects, or keyword arguments the class does not take.
    """
    model = config_model(cls)
    if isinstance(settings, BaseModel):
        if model is None or isinstance(settings, model):
            return cls(settings) if model is not None else cls(**settings.model_dump())
        settings = settings.model_dump(exclude_unset=True)
    values = dict(settings or {})
    try:
        return cls(model.model_validate(values)) if model is not None else cls(**values)
    except ValidationError as e:
        raise ConfigError(f"{what}: invalid settings:\n{e}") from None
    except TypeError as e:
        raise ConfigError(f"{what}: cannot build {cls.__name__} from {sorted(values)} ({e})") from None
