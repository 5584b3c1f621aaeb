"""The Ray side of the engine: the one generic actor that hosts any stage (:class:`StageActor`), fault
bookkeeping, and the Ray Data runner (:class:`RayDataRunner`)."""

from lanepipe.actors.base import StageActor
from lanepipe.actors.runner import RayDataRunner, make_runner, start_ray

__all__ = ["RayDataRunner", "StageActor", "make_runner", "start_ray"]
