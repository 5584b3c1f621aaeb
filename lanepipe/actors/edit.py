"""Ray Data actor for the edit stage: loads the painter and verifier once per worker."""

from __future__ import annotations

from lanepipe.actors.base import StageActor


class EditActor(StageActor):
    """Batch in: segment rows; out: the segment rows passed through plus one edit row per instruction."""

    stage_name = "edit"
