"""What ``lanepipe run|segment|edit|evaluate`` print while a run goes: the plan before it starts, live progress
(per-stage bars in a terminal, one plain line per finished item otherwise: CI logs, ``ray job`` logs), each
failure once, and the summary with the report's path. Also keeps Ray's start-up chatter out of the way unless
asked for (``-v``)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from lanepipe.pipeline import RunPlan, RunSummary

Row = dict[str, Any]


def quiet_ray(verbose: bool) -> None:
    """Unless ``verbose``: Ray's C++ log lines (e.g. ``core_worker.cc … E`` about actor constructor arguments, which
    is not an error of the run) and its Python INFO/WARNING start-up lines are not shown. Must run before Ray
    starts; variables the user already set win."""
    if verbose:
        return
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    os.environ.setdefault("LANEPIPE_RAY_LOG_LEVEL", "ERROR")
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # read when ray.data configures its loggers
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def item_label(row: Row) -> str:
    what = str(row.get("clip"))
    if row.get("instruction"):
        what += f" [{row['instruction']}]"
    if row.get("predictor") and row.get("stage") in ("evaluate", "render"):
        what += f" ({row['predictor']})"
    return what


def first_failures(rows: Sequence[Row]) -> list[tuple[Row, list[str]]]:
    """Failed rows, each failure once: a later stage's row that only repeats an earlier stage's failure of the same
    clip ("segment stage failed: …") is folded into it; returns (row, later stages that did not run)."""
    out: list[tuple[Row, list[str]]] = []
    for row in rows:
        if row.get("status") == "ok":
            continue
        err = str(row.get("error") or "")
        for first, later in out:
            head = str(first.get("error") or "").splitlines()[0] if first.get("error") else ""
            if first.get("clip") == row.get("clip") and head and head in err:
                if row.get("stage") not in later and row.get("stage") != first.get("stage"):
                    later.append(str(row.get("stage")))
                break
        else:
            out.append((row, []))
    return out


class RunReporter:
    """Prints a run's plan, its progress and its outcome on ``console`` (stderr; stdout keeps only the run's URL).

    ``live``: rich progress bars (default: when ``console`` is a terminal); else plain lines."""

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.seen: set[tuple[Any, ...]] = set()
        self.lock = threading.Lock()  # stage events come from a driver thread of the Ray runner

    def __enter__(self) -> RunReporter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def plan(self, p: RunPlan) -> None:
        c = self.console
        c.print(f"lanepipe run {p.run_id}: {' → '.join(p.stages)}", soft_wrap=True, highlight=False)
        inputs = f"{p.inputs} clip(s)" if p.stages[0] in ("segment", "edit") else f"{p.inputs} item(s)"
        source = f" from run {p.from_run}" if p.from_run else ""
        skipped = f", {p.skipped} already finished (resumed)" if p.skipped else ""
        c.print(f"  inputs: {inputs}{escape(source)}{skipped}", soft_wrap=True, highlight=False)
        c.print("  backends: " + ", ".join(f"{k}={v}" for k, v in p.backends.items()), soft_wrap=True,
                highlight=False)
        if "edit" in p.stages:
            default = " (default: no --edit given)" if p.instructions_default else ""
            c.print("  instructions: " + escape("; ".join(p.instructions)) + default, soft_wrap=True, highlight=False)
        c.print(f"  output: {escape(p.url)}", soft_wrap=True, highlight=False)
        self.totals = dict(p.totals)
        self.done = dict.fromkeys(p.stages, 0)
        self.failed = dict.fromkeys(p.stages, 0)
        if self.live:
            self.bar = Progress(TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[failed]} failed · {task.fields[last]}"),
                                TimeElapsedColumn(), console=c)
            for name in p.stages:
                self.tasks[name] = self.bar.add_task(name, total=p.totals.get(name), failed=0, last="")
            self.bar.start()

    def row(self, row: Row) -> None:
        """A row as its stage emitted it (a stage event) or as it left the last stage; counted once."""
        stage = str(row.get("stage"))
        key = (stage, row.get("clip"), row.get("instruction"), row.get("predictor"))
        with self.lock:
            if stage not in self.done or key in self.seen:
                return
            self.seen.add(key)
            self._count(stage, row)

    def _count(self, stage: str, row: Row) -> None:
        self.done[stage] += 1
        ok = row.get("status") == "ok"
        self.failed[stage] += not ok
        status = "skipped (done before)" if row.get("skipped") else ("ok" if ok else "failed")
        if self.bar is not None:
            self.bar.update(self.tasks[stage], advance=1, failed=self.failed[stage],
                            last=escape(f"{item_label(row)} {status}"))
        else:
            total = self.totals.get(stage)
            n = f"{self.done[stage]}/{total}" if total else str(self.done[stage])
            secs = f" {float(row['busy_s']):.1f} s" if row.get("busy_s") is not None and not row.get("skipped") else ""
            self.console.print(escape(f"[{stage} {n}] {item_label(row)}: {status}{secs}"), soft_wrap=True,
                               highlight=False)

    def finish(self, summary: RunSummary) -> None:
        self.__exit__(None, None, None)
        c = self.console
        for row, later in first_failures(summary.rows):
            tail = f" ({', '.join(later)} not run)" if later else ""
            reason = str(row.get("error")).splitlines()[0]
            c.print(f"[red]failed[/red] {row['stage']} " + escape(f"{item_label(row)}: {reason}{tail}"),
                    soft_wrap=True)
        for r in summary.rows:
            if r.get("stage") == "edit" and r["status"] == "ok":
                c.print(escape(f"edit {r['clip']} [{r['instruction']}]") + f": QA {r.get('qa_verdict')} "
                        f"after {r.get('qa_iterations')} attempt(s)", soft_wrap=True)
        ok = len(summary.rows) - len(summary.failed)
        c.print(f"run {summary.run_id}: {ok} ok, {len(summary.failed)} failed, {summary.skipped} skipped "
                f"in {summary.seconds:.1f} s → {escape(summary.url)}", soft_wrap=True, highlight=False)
        if summary.report:
            c.print(f"report: {escape(summary.report)}", soft_wrap=True, highlight=False)
