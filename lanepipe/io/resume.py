"""Resuming a run safely: what changed in its config, and merging a resume's results into the run's table.

A run folder records its config in ``manifest.json``. Resuming it (same ``--run-id``) with other settings would mix
outputs made with two configs under one manifest, so :func:`config_diff` names the keys that differ (dotted paths)
and the pipeline refuses unless asked. Keys that do not change what an item's outputs are (:data:`RESUME_IGNORED`:
which inputs and stages this invocation runs, where Ray runs) may differ freely. :func:`merge_rows` keeps the rows
of items a resume did not touch, so ``results.parquet`` never loses a finished output's row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from lanepipe.errors import ConfigError

#: Config keys (dotted) a resume may change: they choose what runs and where, not what an output is.
RESUME_IGNORED: tuple[str, ...] = ("run_id", "output", "ray", "input.paths", "stages", "resume_changed_config")
_MISSING = object()


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = RESUME_IGNORED,
                prefix: str = "") -> list[str]:
    """Dotted paths of the keys whose values differ between two config dicts (sorted), ``ignore`` left out."""
    skip = set(ignore)
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if path in skip:
            continue
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(config_diff(a, b, skip, f"{path}."))
        elif a != b:
            out.append(path)
    return out


def describe_diff(old: Mapping[str, Any], new: Mapping[str, Any], keys: list[str], limit: int = 8) -> str:
    """``key: old → new`` for the first ``limit`` keys."""
    def get(d: Mapping[str, Any], path: str) -> Any:
        for part in path.split("."):
            d = d.get(part, "(unset)") if isinstance(d, Mapping) else "(unset)"
        return d

    parts = [f"{k}: {get(old, k)!r} → {get(new, k)!r}" for k in keys[:limit]]
    return "; ".join(parts) + (f"; … {len(keys) - limit} more" if len(keys) > limit else "")


def row_key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What a results row is about: (stage, clip, instruction, predictor)."""
    stage, clip, instruction, predictor = (str(row.get(k) or "") for k in ("stage", "clip", "instruction", "predictor"))
    return stage, clip, instruction, predictor


def clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row read back from parquet with pandas' NaN for missing values turned back into None."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def merge_rows(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's rows after a resume: each earlier row replaced by this invocation's row about the same item (in
    place), earlier rows of items not in this invocation kept, then this invocation's new items."""
    fresh: dict[tuple[str, str, str, str], dict[str, Any] | None] = {row_key(r): r for r in current}
    out = [fresh.pop(row_key(r), None) or r for r in map(clean_row, previous)]
    out.extend(r for r in current if row_key(r) in fresh)
    return out


def check_resume_config(run_url: str, recorded: Mapping[str, Any], current: Mapping[str, Any], *,
                        allowed: bool) -> list[str]:
    """The dotted keys whose values differ between a run's recorded config and this invocation's.

    Raises:
        ConfigError: they differ and the resume was not allowed explicitly (``resume_changed_config``).
    """
    changed = config_diff(recorded, current)
    if changed and not allowed:
        raise ConfigError(
            f"{run_url} was made with other settings ({len(changed)} key(s) differ: "
            f"{describe_diff(recorded, current, changed)}); resuming would mix outputs of two configs. Resume with "
            "the recorded settings, pick another --run-id, or pass --resume-changed-config "
            "(--set resume_changed_config=true) to resume it with these settings anyway")
    return changed
