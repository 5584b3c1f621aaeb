"""``report.html`` for a run folder, and a terminal summary table (``lanepipe report RUN``).

Reads whatever a run has produced (DESIGN.md §2) and never requires a stage to exist:

```
<run>/manifest.json                                 run id, created, per-stage status (optional)
<run>/results.parquet                               one row per (clip, stage[, instruction][, predictor])
<run>/segment/<clip>/masks/00000.png                first road mask (255 = road)
<run>/segment/<clip>/overlay.mp4                    segmentation overlay (played inline)
<run>/videopainter/raw_videos/<clip>/<clip>.0.mp4   decoded source clip: the "original" player and frame strip
<run>/edit/<clip>/<slug>/{first_frame.png, qa.json, edited.mp4}   (edited.mp4: player and frame strip)
<run>/evaluate/<clip>/<slug>/{<predictor>.json, bev.png, overlay.mp4, comparison.mp4,
                              <predictor>.bev.png, <predictor>.overlay.mp4, <predictor>.comparison.mp4}
```

``<predictor>.json`` holds ``metrics``, ``shift`` (``{"ade", "max_lateral_offset", …}`` floats, metres) and
``reasoning``. ``metrics`` may be absent or None (no ground-truth ego motion), nested per clip variant
(``{"original": {"min_ade": …}, "edited": {…}}``, as the evaluate stage writes it) or a flat ``{name: float}``
dict, whose keys ending in ``_original``/``_orig`` or ``_edited``/``_edit`` name their variant and whose other
keys are taken as the edited clip's. ``reasoning`` is text, a list of texts, or ``{variant: text | list}``.
Missing JSON values fall back to the evaluate rows of ``results.parquet`` (``min_ade_original``,
``shift_ade``, ``shift_max_lateral``…). Un-prefixed ``bev.png``/``overlay.mp4``/``comparison.mp4`` belong
to the first predictor; others carry the ``<predictor>.`` prefix.

The report is self-contained next to the run: thumbnails (the first, middle and last frame of the original and
of each edited clip) are written under ``<run>/report_assets/`` and linked with relative URLs; the original,
edited, overlay and comparison videos play inline (``<video controls>``) from where they lie in the run folder,
so the folder can be copied or served as is. File names come from :class:`~lanepipe.io.layout.RunLayout`.
An edit of one boundary is described as such (:meth:`~lanepipe.lanes.instructions.LaneSpec.describe`).
Works on any fsspec URL (local folder, ``gs://``, ``s3://``).

The data is gathered by :mod:`lanepipe.viz.report_data`; the page is the Jinja2 template
``lanepipe/viz/templates/report.html.j2`` (autoescaped).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jinja2
import markupsafe

from lanepipe.errors import InputError
from lanepipe.io import storage
from lanepipe.viz.report_data import (
    VARIANTS,
    Assets,
    ClipView,
    EvalView,
    as_number,
    collect,
    report_url,
    significance_rows,
    table_rows,
)

TEMPLATE = "report.html.j2"


def summary_table(run_url: str) -> list[dict[str, Any]]:
    """One flat row per (clip, instruction, predictor) of a run, for terminals and notebooks.

    Keys: ``clip, segment, instruction, edit, qa, predictor, minADE_orig, minADE_edit, minFDE_orig, minFDE_edit,
    shift_ade, max_lateral_offset, floor_ade, p_value, error``: minADE/minFDE (whole horizon) of the predictions on
    the original and on the edited clip against the ground truth, the shift between the two predictions and its
    noise floor (the clip's null-edit shift), all in metres, and the preset's permutation-test p-value;
    None where a stage did not run or there is no ground truth. A clip with no instruction gets one row.

    Raises:
        InputError: ``run_url`` holds no run outputs at all.
    """
    clips, manifest = collect(run_url, assets=None)
    if not clips and not manifest:
        raise InputError(run_url, "a run folder (manifest.json, results.parquet or stage folders)",
                         "none of them")
    return table_rows(clips)


def format_table(rows: Sequence[dict[str, Any]], float_digits: int = 3, max_width: int = 48) -> str:
    """Plain-text table of ``rows`` (columns in first-seen key order; None shows as ``-``)."""
    if not rows:
        return "(no rows)"
    cols: list[str] = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.{float_digits}f}"
        s = str(v).replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in cols]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(vals, widths, numeric, strict=True)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cols), sep, *(line(b) for b in body)])



# ----------------------------------------------------------------------------------------------- html
def _alnum(v: Any) -> str:
    return "".join(c for c in str(v) if c.isalnum())


def _breakable(v: Any) -> markupsafe.Markup:
    """``v`` escaped, with a line-break opportunity after each ``_`` (long column names wrap)."""
    return markupsafe.Markup("_<wbr>").join(markupsafe.escape(p) for p in str(v).split("_"))


def _metric_names(e: EvalView) -> list[str]:
    return list(dict.fromkeys(k for v in VARIANTS for k in e.metrics.get(v, {})))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("lanepipe.viz", "templates"), autoescape=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["alnum"] = _alnum
    env.filters["metric_names"] = _metric_names
    env.filters["breakable"] = _breakable
    return env


def _random_weights(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``random_weights`` (models with random weights: a banner says the outputs mean nothing)."""
    rw = manifest.get("random_weights")
    if not isinstance(rw, dict) or not rw.get("models"):
        return None
    return {"models": [str(m) for m in rw["models"]], "note": str(rw.get("note") or "")}


def render_html(run_url: str, clips: list[ClipView], manifest: dict[str, Any]) -> str:
    """The report page for collected ``clips`` (image URLs relative to the run folder)."""
    run_id = manifest.get("run_id") or run_url.rstrip("/").rsplit("/", 1)[-1]
    meta = [f"{k}: {manifest[k]}" for k in ("created", "updated", "git_sha") if manifest.get(k)]
    upstream = manifest.get("upstream_run_ids")
    if upstream:
        meta.append(f"upstream: {upstream}")
    stages: list[dict[str, Any]] = []
    raw_stages = manifest.get("stages")
    if isinstance(raw_stages, dict):
        for name, raw in raw_stages.items():
            st = raw if isinstance(raw, dict) else {}
            stages.append({"name": name, "status": st.get("status"), "items": st.get("items"), "ok": st.get("ok"),
                           "failed": st.get("failed"), "skipped": st.get("skipped"),
                           "seconds": as_number(st.get("seconds"))})
    return _environment().get_template(TEMPLATE).render(
        run_id=run_id, meta=meta, stages=stages, rows=table_rows(clips), clips=clips, variants=VARIANTS,
        random_weights=_random_weights(manifest),
        significance=significance_rows(clips), alpha=_alpha(manifest))


def _alpha(manifest: dict[str, Any]) -> float:
    """The run's significance level (``evaluate.noise_floor.alpha`` in the manifest's config; 0.05 if absent)."""
    try:
        return float(manifest["config"]["evaluate"]["noise_floor"]["alpha"])
    except (KeyError, TypeError, ValueError):
        return 0.05


def write_report(run_url: str) -> str:
    """Build ``<run>/report.html`` (and thumbnails under ``<run>/report_assets/``) from whatever the run holds.

    Args:
        run_url: the run folder (local path or fsspec URL), e.g. ``runs/20261125T203000Z-1a2b3c4d``.

    Returns:
        The URL of the written ``report.html``.

    Raises:
        InputError: ``run_url`` holds no run outputs at all (no manifest, results or stage folders).
    """
    run_url = storage.absolute(run_url)
    assets = Assets(run_url)
    clips, manifest = collect(run_url, assets)
    if not clips and not manifest:
        raise InputError(run_url, "a run folder (manifest.json, results.parquet or stage folders)",
                         "none of them", "check the run id and --root")
    url = report_url(run_url)
    storage.write_text_atomic(url, render_html(run_url, clips, manifest))
    return url
