"""fsspec storage helpers: URL joins, existence checks, atomic writes and retries on transient errors.

Local paths and any fsspec URL (``gs://``, ``s3://``, ``memory://``…) are accepted everywhere.
A write goes to a temporary name first and is renamed (local) or uploaded in one PUT (object
stores, where a single PUT is already atomic) so a reader never sees a half-written file.

Endpoints and credentials come from the environment, read by the storage libraries themselves:

- S3 (s3fs/botocore): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3`` (or
  ``AWS_ENDPOINT_URL``) for S3-compatible servers (SeaweedFS, MinIO…), ``AWS_DEFAULT_REGION``…
- GCS (gcsfs): ``GOOGLE_APPLICATION_CREDENTIALS`` or the default credentials; ``STORAGE_EMULATOR_HOST``
  for an emulator (fake-gcs-server), which then gets no credentials (``token="anon"``) unless one is
  configured, so google-auth does not probe the GCE metadata server;
  ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` keeps gcsfs from probing every bucket's layout (a 60 s
  hang against an emulator).
- any fsspec protocol: ``FSSPEC_<PROTOCOL>_<KWARG>=value`` or ``FSSPEC_<PROTOCOL>='{"kwarg": …}'``
  (fsspec storage_options, e.g. ``FSSPEC_S3_ENDPOINT_URL``).

They are applied when this module is imported (every Ray worker imports it) and again by
:func:`configure_from_env` after a process changes its environment. Retries: :func:`retry` retries
transient errors only (connection refused/reset, timeouts, HTTP 408/429/5xx from S3 or GCS) with
exponential back-off and jitter; ``LANEPIPE_STORAGE_RETRIES`` (attempts, default 5) and
``LANEPIPE_STORAGE_RETRY_DELAY`` (first delay in seconds, default 0.5; doubled per attempt, at most 8 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fsspec
import fsspec.config
from fsspec.core import url_to_fs

T = TypeVar("T")
log = logging.getLogger(__name__)

REMOTE_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "http", "https", "memory")
#: Environment variables (names or prefixes) that configure object-store access; see :func:`storage_env`.
STORAGE_ENV_PREFIXES = ("AWS_", "FSSPEC_", "GCSFS_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "LANEPIPE_STORAGE_")
DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 0.5
MAX_DELAY = 8.0
#: S3 error codes that mean "try again" (throttling, server-side trouble).
TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeoutException", "Throttling",
    "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequests",
    "TooManyRequestsException", "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete",
})
_PERMANENT_OSERRORS = (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)
_PERMANENT_ERRNOS = frozenset({
    errno.ENOENT, errno.EACCES, errno.EPERM, errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.EINVAL,
    errno.ENAMETOOLONG, errno.ENOTEMPTY, errno.EMSGSIZE, errno.ENOSPC, errno.EROFS, errno.EFBIG,
})
_TRANSIENT_ERRNOS = frozenset({
    errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED,
    errno.EPIPE, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, getattr(errno, "EREMOTEIO", errno.EIO),
})


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


# ---------------------------------------------------------------------------------------------------------------
# configuration from the environment


def storage_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The storage settings of ``environ`` (default: this process), e.g. to hand to Ray workers.

    A Ray worker inherits the environment of the process that started Ray, not of a driver that joins
    later: pass ``runtime_env={"env_vars": storage_env()}`` to ``ray.init``/actors/jobs. Mind that it
    holds credentials when they are set as variables, and a runtime_env is visible in the job's metadata.
    """
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(STORAGE_ENV_PREFIXES)}


def configure_from_env(environ: Mapping[str, str] | None = None) -> None:
    """Apply the storage variables of ``environ`` (default: this process) to fsspec; idempotent.

    fsspec reads ``FSSPEC_*`` and gcsfs reads ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` only when first imported,
    and filesystem instances are cached with the settings they were created with; call this after changing
    storage variables in a running process (tests, notebooks).
    """
    env = dict(os.environ if environ is None else environ)
    fsspec.config.set_conf_env(fsspec.config.conf, env)
    if env.get("STORAGE_EMULATOR_HOST"):
        for proto in ("gs", "gcs"):
            if "token" not in fsspec.config.conf.get(proto, {}):
                fsspec.config.conf.setdefault(proto, {})["token"] = "anon"
    gcsfs_mod = sys.modules.get("gcsfs")
    if gcsfs_mod is not None and env.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "true").lower() not in ("true", "1"):
        core = gcsfs_mod.core.GCSFileSystem
        for proto in ("gs", "gcs"):  # gcsfs was imported with the experimental class: register the plain one
            fsspec.register_implementation(proto, core, clobber=True)
    for mod, cls in (("s3fs", "S3FileSystem"), ("gcsfs", "GCSFileSystem")):
        if mod in sys.modules:
            getattr(sys.modules[mod], cls).clear_instance_cache()
            if mod == "gcsfs":
                sys.modules[mod].core.GCSFileSystem.clear_instance_cache()


configure_from_env()


def filesystem(url: str) -> tuple[Any, str]:
    """Return ``(fs, path)`` for a URL or local path."""
    fs, path = url_to_fs(url)
    return fs, path


# ---------------------------------------------------------------------------------------------------------------
# retries


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError, gcsfs HttpError or aiohttp ClientResponseError."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    for attr in ("code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def _s3_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _transient_types() -> tuple[type[BaseException], ...]:
    """Connection-level error classes of the storage libraries that are imported (none is imported here)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, asyncio.TimeoutError]
    botocore_exc = sys.modules.get("botocore.exceptions")
    if botocore_exc is not None:
        found += [botocore_exc.ConnectionError, botocore_exc.HTTPClientError, botocore_exc.IncompleteReadError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        found += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError]
    fsspec_exc = sys.modules.get("fsspec.exceptions")
    if fsspec_exc is not None:
        found.append(fsspec_exc.FSTimeoutError)
    return tuple(found)


def _classify(exc: BaseException) -> bool | None:
    """True: transient; False: permanent; None: this exception alone does not tell."""
    if isinstance(exc, _PERMANENT_OSERRORS):
        return False
    if _s3_code(exc) in TRANSIENT_S3_CODES:
        return True
    status = _http_status(exc)
    if status is not None:
        return status in (408, 429) or status >= 500
    if isinstance(exc, _transient_types()):
        return True
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _TRANSIENT_ERRNOS:
            return True
        if exc.errno in _PERMANENT_ERRNOS:
            return False
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a storage error is worth retrying: connection trouble, timeouts, throttling or a 5xx.

    Looks through the exception's causes (s3fs and gcsfs wrap the client's error); a plain ``OSError``
    that nothing classifies counts as transient, any other exception as permanent.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(seen) < 8:
        seen.add(id(cur))
        verdict = _classify(cur)
        if verdict is not None:
            return verdict
        cur = cur.__cause__ or cur.__context__
    return isinstance(exc, OSError)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default


def retry(fn: Callable[[], T], attempts: int | None = None, base_delay: float | None = None,
          retry_on: tuple[type[BaseException], ...] | None = None, what: str = "storage call") -> T:
    """Call ``fn``; on a transient error (:func:`is_transient`) retry with exponential back-off.

    Args:
        attempts: calls in all (default ``LANEPIPE_STORAGE_RETRIES`` or 5).
        base_delay: the first pause in seconds, doubled per attempt up to 8 s, each with ±25 % jitter
            (default ``LANEPIPE_STORAGE_RETRY_DELAY`` or 0.5).
        retry_on: retry these exception types too (a missing file is never retried).
        what: named in the warning logged before each retry.
    """
    n = int(attempts if attempts is not None else _env_number("LANEPIPE_STORAGE_RETRIES", DEFAULT_ATTEMPTS))
    base = base_delay if base_delay is not None else _env_number("LANEPIPE_STORAGE_RETRY_DELAY", DEFAULT_BASE_DELAY)
    n = max(1, n)
    for i in range(n):
        try:
            return fn()
        except FileNotFoundError:
            raise
        except Exception as e:
            if i == n - 1 or not (is_transient(e) or (retry_on is not None and isinstance(e, retry_on))):
                raise
            delay = min(MAX_DELAY, base * 2**i) * random.uniform(0.75, 1.25)
            log.warning("%s failed (attempt %d/%d, retrying in %.1f s): %s: %s", what, i + 1, n, delay,
                        type(e).__name__, e)
            time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------------------
# reads and writes


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return bool(retry(lambda: fs.exists(path), what=f"exists {url}"))


def read_bytes(url: str) -> bytes:
    def _read() -> bytes:
        with fsspec.open(url, "rb") as f:
            data: bytes = f.read()
            return data

    return retry(_read, what=f"read {url}")


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` atomically (temp name + rename, or a single PUT)."""
    if is_remote(url):
        fs, rpath = filesystem(url)
        retry(lambda: fs.pipe_file(rpath, data), what=f"write {url}")
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


_SCRATCH: contextvars.ContextVar[str | None] = contextvars.ContextVar("lanepipe_scratch", default=None)


@contextlib.contextmanager
def scratch_dir(path: str | None) -> Iterator[None]:
    """Within this block (this thread), :func:`atomic_local_file` stages its temp files under the local folder
    ``path`` (a run's scratch area, cleaned when the run resumes) instead of the system temp folder, so a writer
    killed mid-write leaves nothing behind that nobody cleans. ``None``/empty: the system temp folder."""
    token = _SCRATCH.set(path or None)
    try:
        yield
    finally:
        _SCRATCH.reset(token)


@contextlib.contextmanager
def atomic_local_file(url: str, suffix: str = "") -> Iterator[Path]:
    """Yield a local temp path; on success its content lands at ``url`` atomically.

    For writers that need a real file (video encoders, ``np.savez_compressed``). The temp file lives under the
    current :func:`scratch_dir` (the system temp folder outside one).
    """
    scratch = _SCRATCH.get()
    if scratch:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lanepipe-", dir=scratch) as d:
        tmp = Path(d) / f"out{suffix}"
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{url}: writer produced no file")
        if is_remote(url):
            fs, rpath = filesystem(url)
            retry(lambda: fs.put_file(str(tmp), rpath), what=f"upload {url}")
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
    found = sorted(retry(lambda: fs.find(path), what=f"list {url}"))
    return [f if not is_remote(url) else f"{proto}://{f}" for f in found]


# ---------------------------------------------------------------------------------------------------------------
# failures of the storage itself

#: Top-level packages whose exceptions mean "the store failed" (clients of object stores and their transports).
STORAGE_MODULES = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google", "fsspec", "urllib3",
                             "requests", "adlfs", "azure"})
_FULL = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_storage_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is an OS-level I/O error or an object-store client's error."""
    cur: BaseException | None = exc
    for _ in range(10):
        if cur is None:
            break
        if isinstance(cur, OSError) or type(cur).__module__.split(".")[0] in STORAGE_MODULES:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def describe_failure(exc: BaseException) -> str:
    """One line naming a storage failure's cause (``File too large``, ``Could not connect to …``)."""
    text = " ".join(str(exc).split()) or "no details"
    if len(text) > 300:
        text = text[:297] + "…"
    line = f"{type(exc).__name__}: {text}"
    if isinstance(exc, OSError) and exc.errno in _FULL:
        line += " (the disk is full or a file-size limit was reached)"
    return line
