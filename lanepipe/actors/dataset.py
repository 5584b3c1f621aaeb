"""Ray Data actor for ``lanepipe dataset``: loads the segmentation backend and the captioner once per worker."""

from __future__ import annotations

from typing import ClassVar

from lanepipe.actors.base import StageActor
from lanepipe.config import DatasetConfig
from lanepipe.monitoring import StageMetrics


class DatasetActor(StageActor):
    """Batch in: ``{"row": [json {"source", "name"}]}``; out: one clip row each (failures included).

    Thin: the work is :class:`lanepipe.datasets.training.DatasetStage`, which the sequential executor calls
    directly; timing, metrics and the last-line failure row come from :class:`StageActor`.
    """

    stage_name: ClassVar[str] = "dataset"

    def __init__(self, cfg_json: str, root: str) -> None:  # not a run stage: no RunConfig to build from
        from lanepipe.datasets.training import DatasetStage

        cfg = DatasetConfig.model_validate_json(cfg_json)
        self.run_id = ""
        self.stage = DatasetStage(cfg, root)  # type: ignore[assignment]
        self.metrics = StageMetrics("dataset", cfg.segment.backend)
