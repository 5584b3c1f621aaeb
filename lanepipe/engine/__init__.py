"""The engine: one stage contract (:class:`Stage`), a picklable way to build a stage anywhere
(:class:`StageSpec`) and the in-process runner (:class:`SequentialRunner`). The Ray side (the generic actor and
the Ray Data runner) lives in :mod:`lanepipe.actors`; nothing here imports Ray."""

from lanepipe.engine.runner import ProgressFn, Runner, SequentialRunner
from lanepipe.engine.stage import Item, Stage, StageSpec, item_key

__all__ = ["Item", "ProgressFn", "Runner", "SequentialRunner", "Stage", "StageSpec", "item_key"]
