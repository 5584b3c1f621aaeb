"""Helpers shared by the benchmark scripts: data folder, machine line."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path


def data_dir() -> Path:
    raw = os.environ.get("LANEPIPE_DATA_DIR")
    p = Path(raw) if raw else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (p / "README.md").is_file():
        sys.exit(f"LANEPIPE_DATA_DIR={p}: expected the shared data folder with README.md, found none")
    return p


def machine() -> str:
    return (f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{dt.datetime.now(dt.timezone.utc).date().isoformat()}")
