"""Shared body of the stage actors: rows in, rows out, as JSON strings (robust Arrow blocks)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from lanepipe.config import RunConfig


class StageActor:
    """Ray Data stateful callable. ``__init__`` builds the stage (its backend loads here, once per actor);
    ``__call__`` maps a batch ``{"row": [json, ...]}`` to the rows the stage emits (failures included)."""

    stage_name: ClassVar[str] = ""

    def __init__(self, cfg_json: str, root: str, run_id: str, upstream_root: str, upstream_run_id: str) -> None:
        from lanepipe.pipeline import build_stage

        cfg = RunConfig.model_validate_json(cfg_json)
        self.stage = build_stage(self.stage_name, cfg, root, run_id, upstream_root, upstream_run_id)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out: list[str] = []
        for raw in batch["row"]:
            out.extend(json.dumps(r, default=str) for r in self.stage.process(json.loads(str(raw))))
        return {"row": out}
