"""A user predictor plugged in by import path that always raises (for failure-isolation tests)."""

from __future__ import annotations

from typing import Any


class Broken:
    name = "broken"

    def __init__(self, cfg: dict[str, Any] | None = None) -> None:
        self.cfg = cfg

    def predict(self, inp: Any) -> Any:
        raise RuntimeError(f"predictor exploded on {inp.clip}")
