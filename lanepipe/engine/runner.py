"""Runners: push items through a chain of stages. :class:`SequentialRunner` runs in this process (no Ray);
:class:`lanepipe.actors.runner.RayDataRunner` streams the same stages through Ray Data actor pools."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from lanepipe.engine.items import item_from_row, item_to_row
from lanepipe.engine.stage import Item, Row, Stage, StageSpec
from lanepipe.io import storage

ProgressFn = Callable[[Row], None]


class Runner(Protocol):
    def run(self, specs: Sequence[StageSpec], items: list[Row], progress: ProgressFn | None = None) -> list[Row]:
        """Every item (as a row) through every stage, in order; returns the rows of every item the last stage
        emitted (``progress`` gets each as it comes)."""
        ...


class SequentialRunner:
    """The stages in this process, one item at a time through all of them (what the benchmarks compare with).

    Each stage is built and set up once per :meth:`run`."""

    def build(self, specs: Sequence[StageSpec]) -> list[Stage]:
        stages = [s.build() for s in specs]
        for stage in stages:
            stage.setup()
        return stages

    def run(self, specs: Sequence[StageSpec], items: list[Row], progress: ProgressFn | None = None) -> list[Row]:
        stages = self.build(specs)
        rows: list[Row] = []
        for row in items:
            batch: list[Item] = [item_from_row(row)]
            for spec, stage in zip(specs, stages, strict=True):
                with storage.scratch_dir(spec.scratch):
                    batch = [out for it in batch for out in stage.process(it)]
            for it in batch:
                rows.append(item_to_row(it))
                if progress:
                    progress(rows[-1])
        return rows
