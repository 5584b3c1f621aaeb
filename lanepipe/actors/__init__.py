"""Ray Data stateful callables, one per stage. Thin: the stage logic lives in plain classes."""

from lanepipe.actors.edit import EditActor
from lanepipe.actors.evaluate import EvaluateActor
from lanepipe.actors.render import RenderActor
from lanepipe.actors.segment import SegmentActor

ACTORS = {"segment": SegmentActor, "edit": EditActor, "evaluate": EvaluateActor, "render": RenderActor}

__all__ = ["ACTORS", "EditActor", "EvaluateActor", "RenderActor", "SegmentActor"]
