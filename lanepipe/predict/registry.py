"""Build a trajectory predictor by name, import path or entry point (``predict.backend``).

Built-in names: ``lane_keep`` (:class:`~lanepipe.predict.lane_keep.LaneKeepPredictor`, CPU, no weights) and
``alpamayo`` (``lanepipe.predict.alpamayo:AlpamayoPredictor``, imported only when asked for: it needs its own
environment). Anything else is ``package.module:ClassName`` or the name of an entry point in the
``lanepipe.predictors`` group (:func:`lanepipe.predict.base.load_predictor_class`).

How the class is built from ``cfg``: :func:`lanepipe.plugins.instantiate` (as for every capability,
:mod:`lanepipe.registry`).
"""

from __future__ import annotations

from typing import Any

from lanepipe import plugins, registry
from lanepipe.errors import ConfigError
from lanepipe.predict.base import Predictor, load_predictor_class

#: Built-in predictors: name → ``module:Class`` (imported lazily), from :data:`lanepipe.registry.BUILTINS`.
BUILTIN: dict[str, str] = {name: s.target for name, s in registry.BUILTINS["predictor"].items()}


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
    what = f"predict.backend {spec!r}"
    if spec in BUILTIN:
        cls = plugins.import_target(BUILTIN[spec], what, extra=spec)
    else:
        try:
            cls = load_predictor_class(spec)
        except ConfigError as e:
            raise ConfigError(f"{e}; built-in predictors: {', '.join(BUILTIN)}") from None
    obj = plugins.instantiate(cls, cfg, what)
    if not isinstance(obj, Predictor):
        raise ConfigError(f"predict.backend {spec!r}: {cls.__name__} is not a predictor (expected a 'name' "
                          "attribute and a 'predict(PredictorInput) -> Prediction' method)")
    return obj  # type: ignore[no-any-return]
