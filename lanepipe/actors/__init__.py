"""Ray Data stateful callables, one per stage. Thin: the stage logic lives in plain classes."""

from lanepipe.actors.edit import EditActor
from lanepipe.actors.segment import SegmentActor

ACTORS = {"segment": SegmentActor, "edit": EditActor}

__all__ = ["ACTORS", "EditActor", "SegmentActor"]
