"""Ray Data actor for the segment stage: loads the backend once per worker, segments a batch of clips."""

from __future__ import annotations

import json
from typing import Any

from lanepipe.config import RunConfig
from lanepipe.datasets.sources import ClipRef
from lanepipe.segment.stage import SegmentStage


class SegmentActor:
    """``__init__`` builds the backend (model weights load here, once); ``__call__`` takes a batch.

    Batch in: ``{"source": [...], "name": [...]}``. Batch out: ``{"row": [json, ...]}``, one results row per
    clip, failures included (the stage never raises for a bad clip).
    """

    def __init__(self, cfg_json: str, root: str, run_id: str) -> None:
        self.stage = SegmentStage(RunConfig.model_validate_json(cfg_json), root, run_id)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [self.stage(ClipRef(source=str(s), name=str(n))) for s, n in zip(batch["source"], batch["name"],
                                                                                 strict=True)]
        return {"row": [json.dumps(r, default=str) for r in rows]}
