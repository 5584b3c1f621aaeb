"""Ray Data actor for the evaluate stage: loads every configured predictor once per worker."""

from __future__ import annotations

from lanepipe.actors.base import StageActor


class EvaluateActor(StageActor):
    """Batch in: edit rows (others pass through); out: one evaluate row per (edit, predictor)."""

    stage_name = "evaluate"
