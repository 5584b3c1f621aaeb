"""Predictor Protocol (its input/output types live in :mod:`lanepipe.types`).

All coordinates are in the ego frame at t0 (x forward, y left, z up, metres). Waypoints are at 10 Hz:
``trajectories[k, i]`` is the ego position at ``t0 + (i + 1) * 0.1`` s for sample ``k``.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from lanepipe.errors import ConfigError
from lanepipe.types import Prediction, PredictorInput

ENTRY_POINT_GROUP = "lanepipe.predictors"


@runtime_checkable
class Predictor(Protocol):
    """A trajectory predictor. Built once per worker; ``predict`` is called per clip."""

    name: str

    def predict(self, inp: PredictorInput) -> Prediction: ...


def load_predictor_class(spec: str) -> type[Any]:
    """Resolve a user predictor: ``package.module:ClassName`` or an entry point in ``lanepipe.predictors``.

    Raises:
        ConfigError: nothing by that name, listing the installed entry points.
    """
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"predict.backend {spec!r}: cannot import {attr} from {mod_name} ({e})") from None
        return cls  # type: ignore[no-any-return]
    eps = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if spec in eps:
        return eps[spec].load()  # type: ignore[no-any-return]
    raise ConfigError(f"predict.backend {spec!r}: not a built-in predictor, not 'module:Class', and no "
                      f"'{ENTRY_POINT_GROUP}' entry point by that name (installed: {', '.join(sorted(eps)) or 'none'})")
