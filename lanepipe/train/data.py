"""Training rows for the LoRA trainer: the usable rows of a dataset, and one example at the model's size.

A dataset is a folder or bucket URL holding ``train.csv`` with columns ``image, mask, prompt, prompt_2``
(paths relative to the folder; an empty ``prompt_2`` means the T5 prompt equals ``prompt``), RGB images and
masks where white (> 127) is the road, the region FLUX repaints. ``lanepipe dataset`` writes this layout and
:func:`lanepipe.datasets.validation.validate_rows` checks it (columns, paths inside the folder, readable files of
one size, non-empty mask).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.datasets.validation import TrainRow, validate_rows
from lanepipe.errors import InputError
from lanepipe.io import storage

U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

log = logging.getLogger(__name__)

#: Bad rows quoted in full in an error message; the rest are counted.
MAX_REASONS = 10

__all__ = ["TrainRow", "load_example", "load_rows", "prompt_pair", "read_mask", "read_rgb"]


def load_rows(dataset_url: str) -> list[TrainRow]:
    """The usable rows of a dataset; bad rows among good ones are logged and skipped.

    Raises:
        InputError: no ``train.csv``, a ``train.csv`` without rows, or one whose rows are all unusable (the
            message lists the reasons, line by line).
    """
    good, bad = validate_rows(dataset_url)
    if not good:
        if not bad:
            raise InputError(dataset_url, "a train.csv with at least one row (image, mask, prompt, prompt_2)",
                             "a train.csv with no rows", "generate a dataset with `lanepipe dataset` first")
        reasons = "; ".join(f"line {b.line}: {b.reason}" for b in bad[:MAX_REASONS])
        more = f" (and {len(bad) - MAX_REASONS} more)" if len(bad) > MAX_REASONS else ""
        raise InputError(dataset_url, "at least one usable row in train.csv",
                         f"{len(bad)} unusable row(s): {reasons}{more}", "fix or drop these rows")
    for b in bad:
        log.warning("%s: skipping train.csv line %d: %s", dataset_url, b.line, b.reason)
    return good


def prompt_pair(row: TrainRow) -> tuple[str, str]:
    """``(prompt, prompt_2)`` of a row: the CLIP prompt and the T5 prompt (``prompt`` when ``prompt_2`` is empty)."""
    p = row.prompt.strip()
    return p, row.prompt_2.strip() or p


def read_rgb(url: str) -> U8:
    """Decode an image file to ``(H, W, 3) uint8`` RGB.

    Raises:
        InputError: the bytes are not an image OpenCV can decode.
    """
    data = np.frombuffer(storage.read_bytes(url), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(url, "a PNG or JPEG image", f"{data.size} bytes OpenCV cannot decode")
    return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def read_mask(url: str) -> Bool:
    """Decode a mask image to ``(H, W) bool``: True where the grey value is above 127 (white = repaint).

    Raises:
        InputError: the bytes are not an image OpenCV can decode.
    """
    data = np.frombuffer(storage.read_bytes(url), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if img is None:
        raise InputError(url, "a PNG mask image", f"{data.size} bytes OpenCV cannot decode")
    return np.asarray(img > 127, dtype=bool)


def load_example(row: TrainRow, width: int, height: int) -> tuple[U8, Bool]:
    """Image ``(height, width, 3) uint8`` and mask ``(height, width) bool`` of a row, at the model size.

    A plain resize (no crop), as the edit stage resizes frames before FLUX Fill; the mask is resized by area and
    kept wherever a road pixel falls in the target pixel, so thin road regions do not vanish.
    """
    img = read_rgb(row.image_url)
    mask = read_mask(row.mask_url)
    if img.shape[:2] != (height, width):
        shrink = width < img.shape[1] and height < img.shape[0]
        img = np.asarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC),
                         dtype=np.uint8)
    if mask.shape != (height, width):
        m = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
        mask = np.asarray(m > 0.0, dtype=bool)
    return img, mask
