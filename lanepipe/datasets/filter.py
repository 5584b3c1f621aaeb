"""Select rows of a training dataset by caption attribute; copy or link their files into a new dataset.

Captions (``prompt``) are parsed with :func:`lanepipe.lanes.instructions.parse_caption`, the regex the generator
(:mod:`lanepipe.datasets.building`) writes for: ``road with (count) (color) (pattern) lane markings``. A row is
kept when every attribute matches the selection (``any`` matches every value, ``unknown`` included unless
``require_known``); pattern ``mixed`` also matches ``solid-dashed`` (a double line with one of each).

A dropped row is counted under its first reason, in this order: ``invalid`` (see
:func:`~lanepipe.datasets.validation.validate_rows`: missing column, path outside the folder, unreadable image or
mask, sizes differ, empty mask), ``unparseable`` (caption not in the canonical form; listed, never kept),
``count``, ``color``, ``pattern``, ``unknown`` (an attribute reads ``unknown`` and ``require_known`` is set).

The output is a dataset folder of its own: ``train.csv`` (same columns, same relative paths, written atomically)
and the kept rows' images and masks, copied (any storage), hard-linked or symlinked (local folders only).
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from lanepipe.datasets.captions import ATTRIBUTES, UNKNOWN
from lanepipe.datasets.schema import CSV_COLUMNS, csv_text
from lanepipe.datasets.validation import BadRow, TrainRow, check_row, dataset_root, read_train_csv, safe_relative
from lanepipe.errors import ConfigError, InputError
from lanepipe.io import storage
from lanepipe.lanes.instructions import parse_caption

LinkMode = Literal["copy", "hardlink", "symlink"]
LINK_MODES: tuple[str, ...] = get_args(LinkMode)
#: What each attribute may be selected by.
CHOICES: dict[str, tuple[str, ...]] = {
    "count": ("single", "double", "any"),
    "color": ("white", "yellow", "mixed", "any"),
    "pattern": ("solid", "dashed", "mixed", "solid-dashed", "any"),
}
#: Caption values a selected value accepts (default: itself).
_MATCHES: dict[tuple[str, str], frozenset[str]] = {("pattern", "mixed"): frozenset({"mixed", "solid-dashed"})}
DROP_REASONS: tuple[str, ...] = ("invalid", "unparseable", *ATTRIBUTES, UNKNOWN)


@dataclass(frozen=True)
class Selection:
    """Which captions to keep.

    Raises:
        ConfigError: a value outside :data:`CHOICES` (the message lists them).
    """

    count: str = "any"
    color: str = "any"
    pattern: str = "any"
    require_known: bool = False

    def __post_init__(self) -> None:
        for attr in ATTRIBUTES:
            value = getattr(self, attr)
            if value not in CHOICES[attr]:
                raise ConfigError(f"filter {attr}: expected one of {', '.join(CHOICES[attr])}, got {value!r}")

    def reason(self, attrs: dict[str, str]) -> str | None:
        """Why parsed caption attributes are dropped (``count``, ``color``, ``pattern``, ``unknown``), or None."""
        for attr in ATTRIBUTES:
            want = getattr(self, attr)
            if want != "any" and attrs[attr] not in _MATCHES.get((attr, want), frozenset({want})):
                return attr
        if self.require_known and UNKNOWN in (attrs[a] for a in ATTRIBUTES):
            return UNKNOWN
        return None


@dataclass
class FilterSummary:
    """What :func:`filter_dataset` did.

    Attributes:
        source / output: the two dataset folders. csv_url: the output's ``train.csv``.
        kept: rows written. dropped: rows dropped per reason (every reason of :data:`DROP_REASONS` listed).
        unparseable: ``(line, prompt)`` of each row whose caption does not parse.
        invalid: the rows :func:`~lanepipe.datasets.validation.validate_rows` rejected, with reasons.
        files: files copied or linked.
    """

    source: str
    output: str
    csv_url: str
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    unparseable: list[tuple[int, str]] = field(default_factory=list)
    invalid: list[BadRow] = field(default_factory=list)
    files: int = 0

    @property
    def total(self) -> int:
        return self.kept + sum(self.dropped.values())


def _check_link(mode: str, src_root: str, dst_root: str) -> None:
    if mode not in LINK_MODES:
        raise ConfigError(f"filter link: expected one of {', '.join(LINK_MODES)}, got {mode!r}")
    if mode != "copy":
        for url in (src_root, dst_root):
            if storage.is_remote(url):
                raise InputError(url, f"a local folder for --link {mode}",
                                 f"a {url.split('://', 1)[0]}:// URL (object stores have no links)",
                                 "use --link copy for buckets")


def _place(src: str, dst: str, mode: str) -> None:
    """Copy or link one file to ``dst`` (replacing what is there, atomically for links)."""
    if mode == "copy":
        try:
            data = storage.read_bytes(src)
        except FileNotFoundError:
            raise InputError(src, "a file listed in train.csv", "no file there",
                             "filter with validation on (the default) to drop such rows") from None
        storage.write_bytes_atomic(dst, data)
        return
    s, d = Path(src.removeprefix("file://")), Path(dst.removeprefix("file://"))
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = d.with_name(f".{d.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if mode == "hardlink":
            try:
                tmp.hardlink_to(s)
            except OSError as e:
                if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise InputError(str(s), f"a file that can be hard-linked into {d.parent}",
                                     f"{os.strerror(e.errno or 0)}", "use --link symlink or --link copy") from None
                raise
        else:
            tmp.symlink_to(s.resolve())
        tmp.replace(d)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def _select(rows: Iterable[TrainRow | BadRow], selection: Selection,
            summary: FilterSummary) -> list[TrainRow]:
    kept: list[TrainRow] = []
    for r in rows:
        if isinstance(r, BadRow):
            summary.invalid.append(r)
            summary.dropped["invalid"] += 1
            continue
        attrs = parse_caption(r.prompt)
        if attrs is None:
            summary.unparseable.append((r.line, r.prompt))
            summary.dropped["unparseable"] += 1
            continue
        why = selection.reason(attrs)
        if why is not None:
            summary.dropped[why] += 1
            continue
        kept.append(r)
    return kept


def filter_dataset(source: str, output: str, selection: Selection | None = None, *, link: str = "copy",
                   validate: bool = True, max_workers: int = 8) -> FilterSummary:
    """Write the rows of ``source`` that match ``selection`` (and their files) as a new dataset at ``output``.

    Args:
        source: dataset folder or its ``train.csv`` (local path or fsspec URL).
        output: the new dataset folder (local path or fsspec URL); must differ from the source.
        link: ``copy`` (any storage), ``hardlink`` or ``symlink`` (local folders only; a symlink points at the
            source file's absolute path).
        validate: read and check every image and mask (:func:`~lanepipe.datasets.validation.validate_rows`);
            False checks columns and paths only (files are still never read from outside the source folder).
        max_workers: files checked and copied in parallel.

    Raises:
        InputError: no readable ``train.csv`` at ``source``; a link mode with a bucket; a hard link across
            filesystems.
        ConfigError: an unknown selection value or link mode; ``output`` is the source folder.
    """
    selection = selection or Selection()
    src_root, _ = dataset_root(source)
    dst_root = storage.absolute(output).rstrip("/")
    _check_link(link, src_root, dst_root)
    if dst_root == src_root:
        raise ConfigError(f"filter: the output {output!r} is the source dataset folder; write to another folder")
    _, raw_rows = read_train_csv(source)
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        checked = list(pool.map(lambda r: check_row(src_root, r[0], r[1], check_files=validate), raw_rows))
    csv_url = storage.join(dst_root, "train.csv")
    summary = FilterSummary(source=src_root, output=dst_root, csv_url=csv_url)
    kept = _select(checked, selection, summary)
    summary.kept = len(kept)
    files: dict[str, str] = {}  # destination → source (rows may share a file)
    for r in kept:
        for rel, url in ((r.image, r.image_url), (r.mask, r.mask_url)):
            files[storage.join(dst_root, safe_relative(rel) or "")] = url
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        list(pool.map(lambda kv: _place(kv[1], kv[0], link), files.items()))
    summary.files = len(files)
    storage.write_text_atomic(csv_url, csv_text({c: getattr(r, c) for c in CSV_COLUMNS} for r in kept))
    return summary
