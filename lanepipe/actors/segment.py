"""Ray Data actor for the segment stage: loads the segmentation backend once per worker."""

from __future__ import annotations

from lanepipe.actors.base import StageActor


class SegmentActor(StageActor):
    """Batch in: ``{"row": [json {"source", "name"}]}``; out: one segment results row per clip."""

    stage_name = "segment"
