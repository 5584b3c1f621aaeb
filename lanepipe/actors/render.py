"""Ray Data actor for the render stage (CPU: drawing and encoding)."""

from __future__ import annotations

from lanepipe.actors.base import StageActor


class RenderActor(StageActor):
    """Batch in: evaluate rows (others pass through); out: one render row per evaluate row."""

    stage_name = "render"
