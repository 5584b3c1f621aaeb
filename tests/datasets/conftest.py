"""Fixtures of the training-data tests: hand-built datasets with known captions, and an S3 bucket.

The S3 bucket is a real SeaweedFS on loopback, started by the helpers of ``tests/storage/conftest.py`` (loaded
here by path: tests/ has no packages). Run together with tests/storage, the session starts two servers.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lanepipe.testing import load_script

_storage = load_script("tests/storage/conftest.py", "lanepipe_tests_storage_fixtures", register=True)
seaweedfs = _storage.seaweedfs  # session fixture: one SeaweedFS (S3) on a free loopback port


@pytest.fixture
def s3_bucket(seaweedfs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>`` on the SeaweedFS, with this test's environment pointing S3 clients at it."""
    env = _storage.storage_env_for(tmp_path, seaweedfs.endpoint)
    with _storage.applied_env(monkeypatch, env):
        bucket = f"ds-{uuid.uuid4().hex[:8]}"
        seaweedfs.client().mkdir(bucket)
        yield f"s3://{bucket}"


def png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(buf.tobytes())


def road_image(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def road_mask(h: int = 24, w: int = 32) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 2 :] = 255
    return m


MakeDataset = Callable[..., Path]


@pytest.fixture
def make_dataset(tmp_path: Path) -> MakeDataset:
    """``make_dataset(prompts, name="ds", columns=…)``: a dataset folder with one good 32x24 image + mask per
    prompt (``images/NNN.png``, ``masks/NNN.png``), rows in prompt order; ``extra_rows`` are appended as given."""

    def make(prompts: list[str], name: str = "ds", columns: tuple[str, ...] = ("image", "mask", "prompt",
                                                                              "prompt_2"),
             extra_rows: list[dict[str, str]] | None = None) -> Path:
        root = tmp_path / name
        rows: list[dict[str, str]] = []
        for k, prompt in enumerate(prompts):
            png(root / "images" / f"{k:03d}.png", road_image(seed=k))
            png(root / "masks" / f"{k:03d}.png", road_mask())
            rows.append({"image": f"images/{k:03d}.png", "mask": f"masks/{k:03d}.png", "prompt": prompt,
                         "prompt_2": f"{prompt}, detail {k}"})
        rows.extend(extra_rows or [])
        with (root / "train.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        return root

    return make
