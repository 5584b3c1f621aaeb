"""Ray Data stateful callables, one per stage. Thin: the stage logic lives in plain classes."""

from lanepipe.actors.segment import SegmentActor

__all__ = ["SegmentActor"]
