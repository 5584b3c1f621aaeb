"""Ray Data actor for ``lanepipe dataset``: loads the segmentation backend and the captioner once per worker."""

from __future__ import annotations

import json
import time
from typing import Any

from lanepipe.actors.base import failure_row
from lanepipe.config import DatasetConfig
from lanepipe.monitoring import StageMetrics


class DatasetActor:
    """Batch in: ``{"row": [json {"source", "name"}]}``; out: one clip row each (failures included).

    Thin: the work is :class:`lanepipe.datasets.training.DatasetStage`, which the sequential executor calls
    directly.
    """

    def __init__(self, cfg_json: str, root: str) -> None:
        from lanepipe.datasets.training import DatasetStage

        cfg = DatasetConfig.model_validate_json(cfg_json)
        self.stage = DatasetStage(cfg, root)
        self.metrics = StageMetrics("dataset", cfg.segment.backend)

    def process(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        try:
            rows = self.stage.process(item)
        except Exception as e:  # DatasetStage reports failures as rows; this is a bug's last line of defence
            self.metrics.record_exception(e, time.perf_counter() - t0)
            return [failure_row("dataset", item, "", e)]
        self.metrics.record(rows, time.perf_counter() - t0)
        return rows

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out: list[str] = []
        for raw in batch["row"]:
            out.extend(json.dumps(r, default=str) for r in self.process(json.loads(str(raw))))
        return {"row": out}
