"""Runners: push items through a chain of stages. :class:`SequentialRunner` runs in this process (no Ray);
:class:`lanepipe.actors.runner.RayDataRunner` streams the same stages through Ray Data actor pools."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from lanepipe.engine.stage import Item, Stage, StageSpec

ProgressFn = Callable[[Item], None]


class Runner(Protocol):
    def run(self, specs: Sequence[StageSpec], items: list[Item], progress: ProgressFn | None = None) -> list[Item]:
        """Every item through every stage (in order); returns every emitted item of the last stage."""
        ...


class SequentialRunner:
    """The stages in this process, one item at a time through all of them (what the benchmarks compare with).

    Each stage is built and set up once per :meth:`run`."""

    def build(self, specs: Sequence[StageSpec]) -> list[Stage]:
        stages = [s.build() for s in specs]
        for stage in stages:
            stage.setup()
        return stages

    def run(self, specs: Sequence[StageSpec], items: list[Item], progress: ProgressFn | None = None) -> list[Item]:
        stages = self.build(specs)
        rows: list[Item] = []
        for item in items:
            batch = [item]
            for stage in stages:
                batch = [out for r in batch for out in stage.process(r)]
            for row in batch:
                rows.append(row)
                if progress:
                    progress(row)
        return rows
