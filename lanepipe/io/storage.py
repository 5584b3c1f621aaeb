"""fsspec storage helpers: URL joins, existence checks and atomic writes.

Local paths and any fsspec URL (``gs://``, ``s3://``, ``memory://``…) are accepted everywhere.
A write goes to a temporary name first and is renamed (local) or uploaded in one PUT (object
stores, where a single PUT is already atomic) so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.core import url_to_fs

T = TypeVar("T")

REMOTE_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "http", "https", "memory")


def is_remote(url: str) -> bool:
    """True for URLs with a scheme other than file://."""
    return "://" in url and not url.startswith("file://")


def absolute(url: str) -> str:
    """Local paths made absolute (Ray workers may run in another folder); URLs unchanged."""
    if is_remote(url):
        return url
    return str(Path(url.removeprefix("file://")).resolve())


def join(base: str, *parts: str) -> str:
    """Join URL or path components with '/' (never os.sep, so URLs stay URLs)."""
    out = base.rstrip("/")
    for part in parts:
        p = part.strip("/")
        if p:
            out = f"{out}/{p}"
    return out


def filesystem(url: str) -> tuple[Any, str]:
    """Return ``(fs, path)`` for a URL or local path."""
    fs, path = url_to_fs(url)
    return fs, path


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return bool(fs.exists(path))


def retry(fn: Callable[[], T], attempts: int = 4, base_delay: float = 0.5,
          retry_on: tuple[type[BaseException], ...] = (OSError, TimeoutError)) -> T:
    """Call ``fn`` with exponential back-off on transient storage errors."""
    for i in range(attempts):
        try:
            return fn()
        except FileNotFoundError:
            raise
        except retry_on:
            if i == attempts - 1:
                raise
            time.sleep(base_delay * (2**i))
    raise AssertionError("unreachable")


def read_bytes(url: str) -> bytes:
    def _read() -> bytes:
        with fsspec.open(url, "rb") as f:
            data: bytes = f.read()
            return data

    return retry(_read)


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` atomically (temp name + rename, or a single PUT)."""
    if is_remote(url):
        fs, rpath = filesystem(url)
        retry(lambda: fs.pipe_file(rpath, data))
        return
    path = Path(url.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(url: str, text: str) -> None:
    write_bytes_atomic(url, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_local_file(url: str, suffix: str = "") -> Iterator[Path]:
    """Yield a local temp path; on success its content lands at ``url`` atomically.

    For writers that need a real file (video encoders, ``np.savez_compressed``).
    """
    with tempfile.TemporaryDirectory(prefix="lanepipe-") as d:
        tmp = Path(d) / f"out{suffix}"
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{url}: writer produced no file")
        if is_remote(url):
            fs, rpath = filesystem(url)
            retry(lambda: fs.put_file(str(tmp), rpath))
        else:
            dst: Path = Path(url.removeprefix("file://"))
            dst.parent.mkdir(parents=True, exist_ok=True)
            staged = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                # copy into the destination folder first so the final rename stays on one filesystem
                with tmp.open("rb") as src, staged.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                staged.replace(dst)
            finally:
                staged.unlink(missing_ok=True)


def list_files(url: str) -> list[str]:
    """All files below a folder URL, as full URLs/paths, sorted."""
    fs, path = filesystem(url)
    proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    found = sorted(fs.find(path))
    return [f if not is_remote(url) else f"{proto}://{f}" for f in found]
