"""Runners: push items through a chain of stages. :class:`SequentialRunner` runs in this process (no Ray);
:class:`lanepipe.actors.runner.RayDataRunner` streams the same stages through Ray Data actor pools."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lanepipe.engine.items import StageItem, item_from_row, item_to_row
from lanepipe.engine.lifecycle import raise_pending
from lanepipe.engine.stage import Item, Row, Stage, StageSpec
from lanepipe.io import storage
from lanepipe.monitoring import loads_columns, take_model_loads

ProgressFn = Callable[[Row], None]
#: Row keys the runners add: seconds the stage spent in ``process`` for this row (a call's time split evenly over
#: the rows it emitted for its own stage) and, on the first such row of each worker, its ``setup`` seconds.
BUSY_KEY, SETUP_KEY = "busy_s", "setup_s"
#: Keys of a stage event: a light copy of a row, sent as soon as its stage emitted it (live progress).
EVENT_KEYS = ("stage", "clip", "instruction", "predictor", "status", "skipped", "error", BUSY_KEY, SETUP_KEY)


def stage_event(row: Row | Item) -> Row:
    """The light copy of ``row`` that live progress gets when its stage emits it (before later stages run)."""
    return {k: row.get(k) for k in EVENT_KEYS}


def stamp_busy(stage: str, outputs: Sequence[Item | Row], seconds: float, setup_s: float | None = None,
               loads: list[dict[str, Any]] | None = None) -> None:
    """Record ``seconds`` of ``stage.process`` (and ``setup_s`` and the model ``loads`` not yet reported, once) on
    the outputs that are ``stage``'s own rows (not rows of earlier stages it passed through)."""
    own = [o for o in outputs if o.get("stage") == stage]
    for k, out in enumerate(own):
        extra = out.extra if isinstance(out, StageItem) else out
        extra[BUSY_KEY] = round(seconds / len(own), 6)
        if setup_s is not None and k == 0:
            extra[SETUP_KEY] = round(setup_s, 6)
        if loads and k == 0:
            extra.update(loads_columns(loads))


class Runner(Protocol):
    def run(self, specs: Sequence[StageSpec], items: list[Row], progress: ProgressFn | None = None) -> list[Row]:
        """Every item (as a row) through every stage, in order; returns the rows of every item the last stage
        emitted (``progress`` gets each as it comes)."""
        ...


class SequentialRunner:
    """The stages in this process, one item at a time through all of them (what the benchmarks compare with).

    Each stage is built and set up once per :meth:`run`. ``events``: called with :func:`stage_event` of each row a
    stage emits for itself, as it emits it (live per-stage progress). ``provide``: builds a stage from its spec in
    place of :meth:`StageSpec.build` (the Serve model deployment hands out stages whose models are already
    resident; their ``setup`` then loads nothing)."""

    def __init__(self, events: ProgressFn | None = None,
                 provide: Callable[[StageSpec], Stage] | None = None) -> None:
        self.events = events
        self.provide = provide

    def build(self, specs: Sequence[StageSpec]) -> list[Stage]:
        stages = [self.provide(s) if self.provide else s.build() for s in specs]
        self.setup_s: dict[str, float] = {}
        self.loads: dict[str, list[dict[str, Any]]] = {}
        take_model_loads()  # loads of earlier work in this process are not this run's
        for stage in stages:
            t = time.perf_counter()
            stage.setup()
            self.setup_s[stage.name] = time.perf_counter() - t
            self.loads[stage.name] = take_model_loads()
        return stages

    def run(self, specs: Sequence[StageSpec], items: list[Row], progress: ProgressFn | None = None) -> list[Row]:
        stages = self.build(specs)
        setup: dict[str, float | None] = dict(self.setup_s)
        rows: list[Row] = []
        for row in items:
            batch: list[Item] = [item_from_row(row)]
            for spec, stage in zip(specs, stages, strict=True):
                nxt: list[Item] = []
                with storage.scratch_dir(spec.scratch):
                    for it in batch:
                        t = time.perf_counter()
                        outs = stage.process(it)
                        raise_pending()  # a Ctrl-C the stage's per-item handler took for the item's failure
                        loads = self.loads[stage.name] + take_model_loads()
                        stamp_busy(stage.name, outs, time.perf_counter() - t, setup.get(stage.name), loads)
                        if any(o.get("stage") == stage.name for o in outs):
                            setup[stage.name] = None
                            self.loads[stage.name] = []
                        else:
                            self.loads[stage.name] = loads
                        if self.events:
                            for o in outs:
                                if o.get("stage") == stage.name:
                                    self.events(stage_event(o))
                        nxt.extend(outs)
                batch = nxt
            for it in batch:
                rows.append(item_to_row(it))
                if progress:
                    progress(rows[-1])
        return rows
