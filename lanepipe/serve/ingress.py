"""Request checks of the Serve app: fields, instructions, local inputs, uploads (size-limited streaming, type
check, storage). Each refusal is an :class:`~lanepipe.serve.settings.HTTPProblemError` naming the field.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at run time.
import json
import re
import shutil
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from lanepipe.errors import InputError
from lanepipe.io.video import VIDEO_EXTENSIONS
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.serve.settings import HTTPProblemError, echo, normalise_url, url_under

MAX_INSTRUCTIONS = 8
_FORM_MAX_PART = 64 * 1024  # non-file form fields
_BODY_SLACK = 64 * 1024  # multipart boundaries and small fields on top of the file itself
_FIELDS = frozenset({"clip", "url", "instructions", "preset", "stages", "predictors"})


@dataclass
class Submission:
    """A parsed ``POST /v1/edits`` body, before the clip is checked."""

    instructions: list[str]
    stages: str
    predictors: list[str]
    url: str | None = None
    upload: UploadFile | None = None


def _as_list(v: Any, name: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise HTTPProblemError(422, name, "a string or a list of strings", f"{type(v).__name__} {json.dumps(v)[:80]}")


def _one_string(v: Any, name: str) -> str | None:
    if v is None or isinstance(v, str):
        return v
    raise HTTPProblemError(422, name, "a string", f"{type(v).__name__} {json.dumps(v, default=str)[:80]}")


def check_instructions(texts: list[str], max_chars: int = 200) -> list[str]:
    """Validate each instruction with :func:`parse_instruction`; 422 names the bad one and the accepted forms."""
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise HTTPProblemError(422, "instructions", "at least one lane instruction or preset:NAME, e.g. "
                               "'double yellow solid' or 'preset:passing-zone'", "none")
    if len(texts) > MAX_INSTRUCTIONS:
        raise HTTPProblemError(422, "instructions", f"at most {MAX_INSTRUCTIONS} instructions per job", str(len(texts)))
    seen: dict[str, str] = {}
    for t in texts:
        if len(t) > max_chars:
            raise HTTPProblemError(422, "instructions", f"instructions of at most {max_chars} characters",
                                   f"{len(t)} characters: {echo(t, 60)}")
    for t in texts:
        try:
            canonical = parse_instruction(t).to_text()
        except InputError as e:
            raise HTTPProblemError(422, "instructions", e.expected, f"{echo(t)} ({e.found})") from None
        if canonical in seen:  # both would write edit/<clip>/<same slug>/
            raise HTTPProblemError(422, "instructions", "distinct edits",
                                   f"{echo(seen[canonical])} and {echo(t)}, both {canonical!r}")
        seen[canonical] = t
    return texts


#: The one answer for a `url` the server does not serve: the same status and body whatever the path is, exists
#: as, or is allowed to contain, so nobody can probe the server's file system (or buckets) with it.
URL_REFUSED = (403, "url", "a clip under a URL prefix this server allows (ask its operator), or an upload",
               "a url this server does not serve")


def url_refused() -> HTTPProblemError:
    return HTTPProblemError(*URL_REFUSED)


def check_url(url: str, prefixes: list[str], schemes: list[str]) -> str:
    """The normalised source of a request's ``url``; :data:`URL_REFUSED` unless it lies under an allowed prefix.

    A scheme the server never reads (``http``) is named; anything else outside ``prefixes`` (a missing path, a
    folder, ``/etc/shadow``, ``..`` escapes, ``/data-evil`` for ``/data``, a bucket) gets :data:`URL_REFUSED`.
    """
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme not in schemes:
        raise HTTPProblemError(422, "url", f"a local path or a URL with scheme {', '.join(schemes)}",
                               f"scheme {echo(scheme)}")
    try:  # "::" would chain fsspec filesystems (zip://…::file:///…): never from a request
        norm = None if "::" in url else normalise_url(url)
    except (OSError, ValueError, RuntimeError):  # e.g. a symlink loop
        norm = None
    if norm is None or not any(url_under(norm, p) for p in prefixes):
        raise url_refused()
    return norm


def _limited(receive: Callable[[], Awaitable[MutableMapping[str, Any]]], limit: int,
             max_bytes: int) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """``receive`` that stops a body (chunked or lying about its length) once it passes ``limit`` bytes."""
    total = 0

    async def wrapped() -> MutableMapping[str, Any]:
        nonlocal total
        msg = await receive()
        if msg.get("type") == "http.request":
            total += len(msg.get("body", b""))
            if total > limit:
                raise HTTPProblemError(413, "body", f"an upload of at most {max_bytes} bytes (the server's limit)",
                                       f"more than {limit} bytes in the body")
        return msg

    return wrapped


async def read_submission(request: Request, max_bytes: int) -> Submission:
    """Parse a JSON, urlencoded or multipart body; 413/415/422 say which field, what was expected and found."""
    limit = max_bytes + _BODY_SLACK
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPProblemError(413, "body", f"an upload of at most {max_bytes} bytes (the server's limit)",
                               f"Content-Length {length}")
    mime = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    limited = Request(request.scope, receive=_limited(request.receive, limit, max_bytes))
    if mime == "application/json":
        raw = await limited.body()
        try:
            data = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HTTPProblemError(422, "body", "a JSON object", f"invalid JSON ({e})") from None
        if not isinstance(data, dict):
            raise HTTPProblemError(422, "body", "a JSON object with 'url' and 'instructions'", type(data).__name__)
        unknown = sorted(set(data) - (_FIELDS - {"clip"}))
        if unknown:
            raise HTTPProblemError(422, "body", f"JSON fields among {', '.join(sorted(_FIELDS - {'clip'}))}",
                                   f"unknown {echo(str(unknown))}")
        presets = [f"preset:{p}" for p in _as_list(data.get("preset"), "preset")]
        return Submission(instructions=_as_list(data.get("instructions"), "instructions") + presets,
                          stages=_one_string(data.get("stages"), "stages") or "all",
                          predictors=_as_list(data.get("predictors"), "predictors"),
                          url=_one_string(data.get("url"), "url"))
    if mime not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPProblemError(415, "Content-Type", "multipart/form-data (file part 'clip'), "
                               "application/x-www-form-urlencoded or application/json (field 'url')",
                               echo(mime or "none", 80))
    try:
        form = await limited.form(max_files=1, max_fields=64, max_part_size=_FORM_MAX_PART)
    except HTTPException as e:  # Starlette's multipart errors: malformed body, too many files or fields
        raise HTTPProblemError(e.status_code, "body", "a well-formed form with at most one file part 'clip'",
                               str(e.detail)) from None
    unknown = sorted(set(form.keys()) - _FIELDS)
    if unknown:
        raise HTTPProblemError(422, "body", f"form fields among {', '.join(sorted(_FIELDS))}",
                               f"unknown {echo(str(unknown))}")
    clip = form.get("clip")
    if isinstance(clip, UploadFile) and not clip.filename and not clip.size:
        clip = None  # a browser form's empty file input
    if clip is not None and not isinstance(clip, UploadFile):
        raise HTTPProblemError(422, "clip", "a file part (multipart/form-data with a filename)", "a text field")
    texts = [v for v in form.getlist("instructions") if isinstance(v, str)]
    texts += [f"preset:{v}" for v in form.getlist("preset") if isinstance(v, str) and v]
    url = form.get("url")
    stages = form.get("stages")
    return Submission(instructions=texts, stages=stages if isinstance(stages, str) and stages else "all",
                      predictors=[v for v in form.getlist("predictors") if isinstance(v, str) and v],
                      url=url if isinstance(url, str) and url.strip() else None, upload=clip)


def check_upload_type(upload: UploadFile) -> str:
    """The file name to store an upload under; 415 unless its name or type says video."""
    name = Path(upload.filename or "").name
    ext = Path(name).suffix.lower()
    ctype = (upload.content_type or "").lower()
    if ext not in VIDEO_EXTENSIONS and not ctype.startswith("video/"):
        found = f"{echo(ctype, 80) if ctype else 'no content type'} named {echo(name) if name else '(no name)'}"
        raise HTTPProblemError(415, "clip", f"a video file (video/* or a name ending in {', '.join(VIDEO_EXTENSIONS)})",
                               found)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")[:64] or "clip"
    return stem + (ext if ext in VIDEO_EXTENSIONS else ".mp4")


def store_upload(upload: UploadFile, dest: Path) -> None:
    """Copy an upload to ``dest`` (written under a temporary name, then renamed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    tmp = dest.with_name(f".{dest.name}.part")
    with tmp.open("wb") as f:
        shutil.copyfileobj(upload.file, f, length=1 << 20)
    tmp.replace(dest)




def _bounded_fs(url: str, connect_s: float, read_s: float, attempts: int) -> tuple[Any, str]:
    """A fresh filesystem for ``url`` with explicit connect/read timeouts and retry budget (the shared, cached
    instances retry for many seconds on an unreachable endpoint)."""
    import fsspec

    scheme = url.split("://", 1)[0].lower()
    conf = dict(fsspec.config.conf.get(scheme, {}))
    if scheme == "s3":
        config = dict(conf.pop("config_kwargs", {}) or {})
        config.update(connect_timeout=connect_s, read_timeout=read_s,
                      retries={"max_attempts": attempts, "mode": "standard"})
        fs = fsspec.filesystem("s3", skip_instance_cache=True, config_kwargs=config,
                               **{k: v for k, v in conf.items() if k != "skip_instance_cache"})
        fs.retries = 1  # s3fs's own loop on top of botocore's (instance attribute, not an __init__ argument)
    elif scheme in ("gs", "gcs"):
        conf.update(timeout=connect_s + read_s)  # gcsfs: a total per request; the caller bounds the attempts
        fs = fsspec.filesystem(scheme, skip_instance_cache=True, **conf)
    else:
        fs = fsspec.filesystem(scheme, skip_instance_cache=True, **conf)
    return fs, url.split("://", 1)[1]


def _names(exc: BaseException) -> list[str]:
    """Type names along ``exc``'s cause/context chain."""
    out: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return out


def remote_problem(exc: BaseException, timeout_s: float) -> HTTPProblemError:
    """The answer for a failed read of a remote ``url``: 504 when the storage endpoint did not answer in time,
    502 when it could not be reached or answered with an error, 422 for a missing object."""
    names = _names(exc)
    if isinstance(exc, FileNotFoundError):
        return HTTPProblemError(422, "url", "a readable video object", "no object at that URL")
    if isinstance(exc, PermissionError):
        return HTTPProblemError(422, "url", "a readable video object", "access to that object was denied")
    if isinstance(exc, TimeoutError) or any("Timeout" in n for n in names):
        return HTTPProblemError(504, "url", f"an answer from the storage endpoint within {timeout_s:.0f} s",
                                f"no answer in time ({names[0]})", hint="the storage endpoint is slow or down; "
                                "try again later")
    if any("Connect" in n or "Connection" in n for n in names):
        return HTTPProblemError(502, "url", "a reachable storage endpoint",
                                f"the storage endpoint refused or dropped the connection ({names[0]})",
                                hint="the storage endpoint is down or unreachable from the server")
    return HTTPProblemError(502, "url", "an answer from the storage endpoint",
                            f"an error from the storage endpoint ({names[0]})")


def check_remote(url: str, connect_s: float, read_s: float, attempts: int) -> None:
    """Stat a remote ``url`` with bounded timeouts; raises the exception :func:`remote_problem` maps."""
    fs, path = _bounded_fs(url, connect_s, read_s, attempts)
    info = fs.info(path)
    if info.get("type") == "directory":
        raise FileNotFoundError(url)
