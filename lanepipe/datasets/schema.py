"""The on-disk schema of a training dataset: folder names, ``train.csv`` columns, per-frame records.

A dataset is a folder (local path or any fsspec URL)::

    <dataset>/
      train.csv                      columns image, mask, prompt, prompt_2 (paths relative to <dataset>)
      images/<clip>_f<index>.png     (H, W, 3) uint8 RGB frame, as decoded (no resizing)
      masks/<clip>_f<index>.png      (H, W) uint8, 255 = road = region to inpaint, 0 = keep
      records/<clip>_f<index>.json   one record per frame, written last: the frame is finished
      clips/<clip>.json              one record per clip, written when all its selected frames are done
      summary.json                   counts per caption attribute, failed clips, the config

``prompt`` is the canonical caption ``road with {count} {color} {pattern} lane markings`` (DESIGN.md §3), with
count ∈ single|double|unknown, color ∈ white|yellow|mixed|unknown, pattern ∈ solid|dashed|solid-dashed|mixed|
unknown; it parses with :func:`lanepipe.lanes.instructions.parse_caption`, the regex the filter uses too.
``prompt_2`` starts with the same caption and adds details after a comma (what each boundary looks like, or the
VLM's description), for a second, longer text encoder (FLUX's T5).

``index`` is the frame's index in the source video (decode order, 0-based; 6 digits). A re-run skips the frames
that have a record (and clips whose record says the same frames were asked for); ``train.csv`` is rewritten at
the end, atomically, from all records in the folder. Every file is written with :mod:`lanepipe.io.storage`
atomic writes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lanepipe.datasets.captions import ATTRIBUTES, VOCABULARY
from lanepipe.io import storage
from lanepipe.lanes.instructions import parse_caption

log = logging.getLogger(__name__)

TRAIN_CSV = "train.csv"
SUMMARY_JSON = "summary.json"
IMAGES_DIR, MASKS_DIR, RECORDS_DIR, CLIPS_DIR = "images", "masks", "records", "clips"
#: Columns of ``train.csv``, in order. image/mask: paths relative to the dataset folder.
CSV_COLUMNS: tuple[str, ...] = ("image", "mask", "prompt", "prompt_2")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_FRAME_KEY = re.compile(r"^(?P<clip>.+)_f(?P<index>\d{6,})$")


def frame_key(clip: str, index: int) -> str:
    """``<clip>_f<index:06d>``: the stem of a frame's image, mask and record."""
    return f"{clip}_f{index:06d}"


def read_records(root: str, max_workers: int = 8) -> list[dict[str, Any]]:
    """Every per-frame record of a dataset folder, sorted by (clip, frame); unreadable ones are logged, skipped."""
    url = storage.join(storage.absolute(root), RECORDS_DIR)
    if not storage.exists(url):
        return []
    urls = [u for u in storage.list_files(url) if u.endswith(".json")]

    def _one(u: str) -> dict[str, Any] | None:
        try:
            rec = json.loads(storage.read_text(u))
        except (OSError, ValueError) as e:
            log.warning("skipping unreadable record %s: %s", u, e)
            return None
        return rec if isinstance(rec, dict) and all(c in rec for c in CSV_COLUMNS) else None

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        records = [r for r in pool.map(_one, urls) if r is not None]
    records.sort(key=lambda r: (str(r.get("clip")), int(r.get("frame") or 0), str(r["image"])))
    return records


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    """``train.csv`` text: header :data:`CSV_COLUMNS`, one line per row (RFC 4180 quoting)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in CSV_COLUMNS})
    return buf.getvalue()


def attribute_counts(prompts: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per caption attribute, how many prompts have each value (every value of :data:`VOCABULARY` listed);
    prompts that do not parse are counted under ``"unparseable"``."""
    counts: dict[str, dict[str, int]] = {a: dict.fromkeys(VOCABULARY[a], 0) for a in ATTRIBUTES}
    counts["unparseable"] = {"rows": 0}
    for p in prompts:
        parsed = parse_caption(p)
        if parsed is None:
            counts["unparseable"]["rows"] += 1
            continue
        for a in ATTRIBUTES:
            counts[a][parsed[a]] = counts[a].get(parsed[a], 0) + 1
    return counts


def write_train_csv(root: str) -> tuple[str, list[dict[str, Any]]]:
    """Rewrite ``train.csv`` atomically from all records of ``root``; returns its URL and the records."""
    records = read_records(root)
    url = storage.join(storage.absolute(root), TRAIN_CSV)
    storage.write_text_atomic(url, csv_text(records))
    return url, records
