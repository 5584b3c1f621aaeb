"""``lanepipe dataset``: build (or resume) a training dataset with the engine's runners."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanepipe.actors.runner import make_runner, worker_died_row
from lanepipe.config import DatasetConfig, load_model
from lanepipe.datasets.frames import resolve_dataset_inputs
from lanepipe.datasets.schema import SUMMARY_JSON, attribute_counts, write_train_csv
from lanepipe.engine import Row, StageSpec
from lanepipe.engine.stage import config_json
from lanepipe.io import storage

ProgressFn = Callable[[dict[str, Any]], None]


def lost_clip_row(item: Row) -> Row:
    """The row of a clip whose Ray worker died every retry (the dataset row shape)."""
    return worker_died_row(item, "dataset") | {"frames": [], "num_frames": 0}


@dataclass
class DatasetSummary:
    """What ``generate_dataset`` did.

    Attributes:
        url: the dataset folder. csv_url: its ``train.csv``.
        clips: one row per input clip (status ok/failed, error, frames written/resumed/dropped).
        rows: rows in ``train.csv`` (all records of the folder, earlier runs included).
        counts: per attribute, rows per value (see :func:`attribute_counts`).
        frames_written / frames_resumed: frames done now / found finished.
    """

    url: str
    csv_url: str
    clips: list[dict[str, Any]]
    rows: int
    counts: dict[str, dict[str, int]]
    frames_written: int
    frames_resumed: int
    seconds: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.clips if c.get("status") != "ok"]


def generate_dataset(cfg: DatasetConfig, *, executor: str = "ray",
                     progress: ProgressFn | None = None) -> DatasetSummary:
    """Build (or resume) the dataset of ``cfg.paths`` in ``cfg.output``; rewrite ``train.csv`` at the end.

    Args:
        executor: ``"ray"`` (Ray Data actor pool, ``cfg.resources``) or ``"sequential"`` (this process).
        progress: called with each clip's row as it finishes.

    Raises:
        InputError: no inputs, or an input that names nothing usable (empty folder, unknown scheme). A clip
            that cannot be decoded is not raised: its row says why (``status="failed"``).
        ConfigError: an unknown executor.
    """
    runner = make_runner(executor, cfg.ray, lost=lambda item: [lost_clip_row(item)])
    t0 = time.perf_counter()
    root = storage.absolute(cfg.output)
    refs = resolve_dataset_inputs(cfg.paths)
    items: list[Row] = [{"source": r.source, "name": r.name} for r in refs]
    spec = StageSpec(name="dataset", target="lanepipe.stages.dataset:DatasetStage",
                     config="lanepipe.config:DatasetConfig", cfg_json=config_json(cfg), args=(root,),
                     backend=cfg.segment.backend)
    rows = runner.run([spec], items, progress)
    order = {i["name"]: k for k, i in enumerate(items)}
    rows.sort(key=lambda r: order.get(str(r.get("clip")), len(order)))
    csv_url, records = write_train_csv(root)
    counts = attribute_counts(str(r["prompt"]) for r in records)
    summary = DatasetSummary(url=root, csv_url=csv_url, clips=rows, rows=len(records), counts=counts,
                             frames_written=sum(int(r.get("num_frames") or 0) for r in rows),
                             frames_resumed=sum(int(r.get("frames_resumed") or 0) for r in rows),
                             seconds=time.perf_counter() - t0)
    failed = [{"clip": r.get("clip"), "source": r.get("source"), "error_type": r.get("error_type"),
               "error": r.get("error")} for r in summary.failed]
    storage.write_text_atomic(storage.join(root, SUMMARY_JSON), json.dumps({
        "rows": summary.rows, "counts": counts, "clips": len(rows), "failed": failed,
        "frames_written": summary.frames_written, "frames_resumed": summary.frames_resumed,
        "seconds": round(summary.seconds, 3), "config": cfg.model_dump(mode="json")}, indent=2, default=str))
    return summary


def load_dataset_config(path: str | Path | None = None, overrides: list[str] | None = None,
                        base: dict[str, Any] | None = None) -> DatasetConfig:
    """A :class:`DatasetConfig` from an optional YAML file, then ``base`` (CLI flags), then ``a.b=c`` overrides
    (the same loader as ``lanepipe run``'s: :func:`lanepipe.config.load_model`).

    Raises:
        ConfigError: unreadable YAML, unknown keys or invalid values, with pydantic's explanation.
    """
    return load_model(DatasetConfig, path, overrides, base, what="dataset config")
