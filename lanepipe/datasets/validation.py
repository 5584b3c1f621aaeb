"""Checks of a dataset's ``train.csv`` rows: columns, paths inside the folder, readable matching files."""

from __future__ import annotations

import csv
import io
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.datasets.schema import CSV_COLUMNS, TRAIN_CSV
from lanepipe.errors import InputError
from lanepipe.io import storage


@dataclass(frozen=True)
class TrainRow:
    """A usable row of ``train.csv``.

    Attributes:
        line: the row's line in ``train.csv`` (the header is line 1).
        image / mask: paths as written in the CSV, relative to the dataset folder.
        prompt / prompt_2: the captions, as written.
        image_url / mask_url: the files' full paths or URLs.
        width / height: the image's (and mask's) size in pixels.
    """

    line: int
    image: str
    mask: str
    prompt: str
    prompt_2: str
    image_url: str
    mask_url: str
    width: int
    height: int


@dataclass(frozen=True)
class BadRow:
    """A row of ``train.csv`` that cannot be used: its line, its values as read, and why."""

    line: int
    values: dict[str, str]
    reason: str


def dataset_root(dataset_url: str) -> tuple[str, str]:
    """``(folder, csv_url)`` of a dataset given as its folder or its ``train.csv`` (path or URL)."""
    url = storage.absolute(dataset_url)
    if url.rstrip("/").lower().endswith(".csv"):
        return url.rstrip("/").rsplit("/", 1)[0], url.rstrip("/")
    return url.rstrip("/"), storage.join(url, TRAIN_CSV)


def read_train_csv(dataset_url: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line, values)`` rows of a dataset's ``train.csv``.

    Raises:
        InputError: no ``train.csv`` there, unreadable, not UTF-8 or with no header line.
    """
    _, csv_url = dataset_root(dataset_url)
    try:
        text = storage.read_text(csv_url)
    except FileNotFoundError:
        raise InputError(csv_url, "a train.csv (columns " + ", ".join(CSV_COLUMNS) + ")", "no file there",
                         "run `lanepipe dataset` first or point at the dataset folder") from None
    except UnicodeDecodeError as e:
        raise InputError(csv_url, "a UTF-8 CSV file", f"undecodable bytes ({e})") from None
    except OSError as e:
        raise InputError(csv_url, "a readable train.csv", f"an error reading it: {e}") from e
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(csv_url, "a header line " + ",".join(CSV_COLUMNS), "an empty file") from None
    rows: list[tuple[int, dict[str, str]]] = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue  # blank line
        rows.append((reader.line_num, {h: (values[k] if k < len(values) else "") for k, h in enumerate(header)}))
    return header, rows


def safe_relative(path: str) -> str | None:
    """The normalised form of a path relative to the dataset folder, or None if it leaves the folder (absolute,
    a URL, a drive, or ``..`` above the top). Checked on the text only: a symlink inside is followed."""
    p = path.strip().replace("\\", "/")
    if not p or "://" in p or p.startswith("/") or re.match(r"^[A-Za-z]:", p):
        return None
    norm = posixpath.normpath(p)
    if norm in (".", "..") or norm.startswith("../"):
        return None
    return norm


def _decode(url: str, flags: int) -> tuple[npt.NDArray[np.uint8] | None, str | None]:
    try:
        data = storage.read_bytes(url)
    except FileNotFoundError:
        return None, "no file there"
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if img is None:
        return None, f"{len(data)} bytes that do not decode as an image"
    return np.asarray(img, dtype=np.uint8), None


def check_row(root: str, line: int, values: dict[str, str], *, check_files: bool = True) -> TrainRow | BadRow:
    """Check one row: columns present and non-empty, paths inside the dataset folder, and (``check_files``)
    image and mask readable, of one size, mask not empty (no pixel above 127)."""
    def bad(reason: str) -> BadRow:
        return BadRow(line=line, values=dict(values), reason=reason)

    missing = [c for c in CSV_COLUMNS if c not in values]
    if missing:
        return bad(f"missing column(s) {', '.join(missing)} (the CSV has {', '.join(values) or 'none'})")
    empty = [c for c in CSV_COLUMNS if not values[c].strip() and c != "prompt_2"]
    if empty:
        return bad(f"empty {', '.join(empty)}")
    rel: dict[str, str] = {}
    for c in ("image", "mask"):
        norm = safe_relative(values[c])
        if norm is None:
            return bad(f"{c} path {values[c]!r} is outside the dataset folder (give a path relative to it, "
                       "without '..')")
        rel[c] = norm
    image_url, mask_url = storage.join(root, rel["image"]), storage.join(root, rel["mask"])
    w = h = 0
    if check_files:
        img, err = _decode(image_url, cv2.IMREAD_COLOR)
        if img is None:
            return bad(f"image {values['image']!r} unreadable: {err}")
        mask, err = _decode(mask_url, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            return bad(f"mask {values['mask']!r} unreadable: {err}")
        h, w = img.shape[:2]
        if mask.shape[:2] != (h, w):
            return bad(f"image is {w}x{h} but mask is {mask.shape[1]}x{mask.shape[0]} (W x H); they must match")
        if not (mask > 127).any():
            return bad("mask is empty (no white pixel: nothing to inpaint)")
    return TrainRow(line=line, image=values["image"], mask=values["mask"], prompt=values["prompt"],
                    prompt_2=values["prompt_2"], image_url=image_url, mask_url=mask_url, width=int(w), height=int(h))


def validate_rows(dataset_url: str, *, check_files: bool = True,
                  max_workers: int = 8) -> tuple[list[TrainRow], list[BadRow]]:
    """Split a dataset's ``train.csv`` rows into usable rows and bad rows with their reasons.

    A row is bad when the CSV lacks one of :data:`CSV_COLUMNS`, image/mask/prompt is empty, a path leaves the
    dataset folder (absolute, URL, ``..``), the image or mask cannot be read or decoded, their sizes differ, or
    the mask is empty. ``prompt_2`` may be empty. The caption is not parsed here (see ``datasets.filter``).

    Args:
        dataset_url: the dataset folder or its ``train.csv`` (local path or fsspec URL).
        check_files: also read and decode every image and mask (False: columns and paths only).
        max_workers: files read in parallel.

    Returns:
        ``(good_rows, bad_rows)`` in CSV order; image sizes are 0 when ``check_files`` is False.

    Raises:
        InputError: no readable ``train.csv`` (a missing file or no header is not a row problem).
    """
    root, _ = dataset_root(dataset_url)
    _, rows = read_train_csv(dataset_url)
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        results = list(pool.map(lambda r: check_row(root, r[0], r[1], check_files=check_files), rows))
    good = [r for r in results if isinstance(r, TrainRow)]
    bad = [r for r in results if isinstance(r, BadRow)]
    return good, bad
