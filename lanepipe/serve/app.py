"""Ray Serve application: submit lane edits over HTTP, poll them, download the results, and a web page.

API (JSON unless said; every ``/v1`` route needs ``Authorization: Bearer <token>`` or the cookie
``lanepipe_token`` when the server has a token):

``POST /v1/edits`` → 202 ``{"id", "status": "queued", "status_url"}``
    ``multipart/form-data`` with a file part ``clip`` (a video), or a field ``url`` (a local path or a
    ``file``/``gs``/``s3`` URL of one clip) in a form or a JSON object. ``instructions``: one or more lane
    instructions or ``preset:NAME`` (repeat the form field, or a JSON list). Options: ``stages``
    (``segment`` … ``all``, default ``all``) and ``predictors`` (among the server's allowed ones).
    Errors: 401 no/bad token; 413 upload over the size limit; 415 a body or file part of the wrong type;
    422 a missing/invalid field, an instruction that parses to nothing (the accepted forms are listed) or a
    clip that does not probe as a video; 503 with ``Retry-After`` when ``max_queue`` jobs are queued or
    running. Every error body is ``{"detail", "field", "expected", "found"}``.
``GET /v1/edits/{id}`` → ``{"id", "status": queued|running|done|failed, "position", "error", "links",
    "edits", …}``; when the run has finished, ``links`` has ``original``, ``edited``, ``comparison``,
    ``metrics`` and ``report`` (first instruction and predictor) and ``edits`` lists them all with the QA
    verdict and the trajectory-shift metrics.
``GET /v1/edits/{id}/files/{path}`` → a file of the job's run folder (``Range`` supported); a path that
    leaves the folder is refused with 403.
``GET /v1/health`` → ``{"status": "ok", "queued", "running", "max_queue"}`` (no token needed).
``GET /`` → the web page (``/?job=<id>`` shows an existing job).

A job is a run: its id is the run id (``<UTC timestamp>-<config hash>-<random>``) and its folder
``<output>/<id>/`` holds the upload (``input/``), the run's outputs and ``serve_job.json`` (the job record,
read back after a restart). Jobs run the real pipeline (``pipeline.run(cfg, executor="sequential")``) on a
small thread pool inside the single replica; requests choose only the instructions, stages and predictors —
everything else comes from the server's base config.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at run time.
import asyncio
import copy
import datetime as dt
import hmac
import json
import logging
import math
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from ray import serve
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from lanepipe.config import STAGES, RunConfig, load_config
from lanepipe.errors import InputError, LanepipeError
from lanepipe.io.layout import new_run_id
from lanepipe.io.video import VIDEO_EXTENSIONS, probe
from lanepipe.lanes.instructions import parse_instruction

logger = logging.getLogger("ray.serve")

JobStatus = Literal["queued", "running", "done", "failed"]
JOB_FILE = "serve_job.json"
INPUT_DIR = "input"
TOKEN_COOKIE = "lanepipe_token"
MAX_INSTRUCTIONS = 8
_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}-[0-9a-f]{8}$")
_METRIC_KEYS = ("t0_s", "shift_ade", "shift_max_lateral", "min_ade_original", "min_ade_edited",
                "min_fde_original", "min_fde_edited")
_FORM_MAX_PART = 64 * 1024  # non-file form fields
_BODY_SLACK = 64 * 1024  # multipart boundaries and small fields on top of the file itself
_FIELDS = frozenset({"clip", "url", "instructions", "preset", "stages", "predictors"})


class ServeSettings(BaseModel):
    """What the server allows and where it writes. Requests cannot change any of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: str = Field("runs", description="local run root: one folder per job")
    token: str | None = Field(None, description="bearer token required by every /v1 route (None = open)")
    max_queue: int = Field(4, ge=1, le=10_000, description="jobs queued or running before 503 + Retry-After")
    workers: int = Field(1, ge=1, le=16, description="jobs run at once (threads of the replica)")
    max_upload_bytes: int = Field(200 * 2**20, ge=1024, description="largest accepted request body")
    base_config: dict[str, Any] = Field(default_factory=dict,
                                        description="run config every job starts from (YAML + --set)")
    predictors: list[str] = Field(default_factory=lambda: ["lane_keep"],
                                  description="predictors a request may name")
    input_roots: list[str] | None = Field(None, description="local folders a `url` may point into (None = any)")
    url_schemes: list[str] = Field(default_factory=lambda: ["file", "gs", "s3"],
                                   description="URL schemes accepted in `url` besides local paths")
    replica_cpus: float = Field(1.0, ge=0, description="Ray CPUs reserved by the replica")
    default_retry_after_s: int = Field(30, ge=1, description="Retry-After before any job has finished")

    @field_validator("output")
    @classmethod
    def _local(cls, v: str) -> str:
        if "://" in v and not v.startswith("file://"):
            raise ValueError(f"output: expected a local folder (files are served from it), found URL {v!r}")
        return str(Path(v.removeprefix("file://")).expanduser().resolve())

    @field_validator("input_roots")
    @classmethod
    def _roots(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [str(Path(p).expanduser().resolve()) for p in v]


class HTTPProblemError(Exception):
    """An HTTP error answer naming the field, what was expected and what was found."""

    def __init__(self, status: int, field: str, expected: str, found: str, *, hint: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.field = field
        self.expected = expected
        self.found = found
        self.headers = headers or {}
        msg = f"{field}: expected {expected}, found {found}"
        self.detail = f"{msg} ({hint})" if hint else msg
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "field": self.field, "expected": self.expected, "found": self.found}


# ------------------------------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One submitted edit = one run folder ``<output>/<id>/``."""

    id: str
    status: JobStatus
    created: str
    source: str
    instructions: list[str]
    stages: list[str]
    predictors: list[str]
    input_name: str
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def summarize_rows(rows: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """Files (relative to ``run_dir``) and metrics of a finished run, one entry per instruction.

    Returns:
        ``{"original": rel | None, "original_poster": rel | None, "report": rel | None, "edits": [{"instruction",
        "status", "error", "qa_verdict", "qa_iterations", "caption", "edited", "qa", "lanes", "poster" (first
        edited frame), "predictions": [{"predictor", "status",
        "error", "metrics", "comparison", "overlay", "bev", <metric>: float | None}]}]}``.
    """
    root = run_dir.resolve()

    def rel(p: Any) -> str | None:
        if not p:
            return None
        try:
            q = Path(str(p)).resolve()
            return q.relative_to(root).as_posix() if q.is_file() else None
        except ValueError:
            return None

    out: dict[str, Any] = {"original": None, "original_poster": None, "report": rel(root / "report.html"),
                           "edits": []}
    for r in rows:
        if r.get("stage") == "segment":
            clip = str(r["clip"])
            out["original"] = out["original"] or rel(root / "videopainter" / "raw_videos" / clip / f"{clip}.0.mp4")
            out["original_poster"] = rel(root / "report_assets" / clip / "original.jpg")  # written by the report
            if r.get("status") != "ok":
                out["error"] = r.get("error")
    edits: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r.get("stage") != "edit":
            continue
        edited = rel(r.get("edited"))
        d = Path(str(r["edited"])).parent if r.get("edited") else None
        e = {"clip": r["clip"], "instruction": r.get("instruction"), "status": r.get("status"),
             "error": r.get("error"), "caption": r.get("caption"), "qa_verdict": r.get("qa_verdict"),
             "qa_iterations": r.get("qa_iterations"), "edited": edited,
             "qa": rel(d / "qa.json") if d else None, "lanes": rel(d / "lanes.json") if d else None,
             "poster": rel(d / "first_frame.png") if d else None, "predictions": []}
        edits[(str(r["clip"]), str(r.get("instruction")))] = e
        out["edits"].append(e)
    preds: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (str(r.get("clip")), str(r.get("instruction")))
        if r.get("stage") == "evaluate" and key in edits:
            p = {"predictor": r.get("predictor"), "status": r.get("status"), "error": r.get("error"),
                 "metrics": rel(r.get("evaluation")), "comparison": None, "overlay": None, "bev": None}
            p.update({k: _finite(r.get(k)) for k in _METRIC_KEYS})
            preds[(*key, str(r.get("predictor")))] = p
            edits[key]["predictions"].append(p)
    for r in rows:
        key3 = (str(r.get("clip")), str(r.get("instruction")), str(r.get("predictor")))
        if r.get("stage") == "render" and key3 in preds:
            preds[key3].update(comparison=rel(r.get("comparison")), overlay=rel(r.get("overlay")),
                               bev=rel(r.get("bev")))
            if r.get("status") != "ok":
                preds[key3].update(status=r.get("status"), error=r.get("error"))
    return out


def resolve_inside(run_dir: Path, rel_path: str) -> Path:
    """The file ``rel_path`` inside ``run_dir``, refusing anything that leaves it (``..``, absolute, links).

    Raises:
        HTTPProblemError: 403 for a path that leaves the folder, 404 for a missing file.
    """
    parts = rel_path.replace("\\", "/").split("/")
    if rel_path.startswith(("/", "\\")) or any(p in ("..", "") for p in parts) or "\x00" in rel_path or (
            ":" in parts[0]):
        raise HTTPProblemError(403, "path", "a relative file path inside the job's run folder",
                               f"{rel_path!r}, which leaves it")
    root = run_dir.resolve()
    target = (root / rel_path).resolve()
    if not target.is_relative_to(root):
        raise HTTPProblemError(403, "path", "a file inside the job's run folder",
                               f"{rel_path!r}, which resolves outside it")
    if not target.is_file():
        raise HTTPProblemError(404, "path", "a file of this job's run", f"no file {rel_path!r}")
    return target


class JobQueue:
    """Bounded job queue over a thread pool: the HTTP-free part of the service.

    ``max_queue`` bounds jobs queued or running (plus submissions being checked); ``reserve`` takes a slot or
    says no, ``submit`` runs a job in the slot, ``release`` gives an unused slot back.
    """

    def __init__(self, settings: ServeSettings,
                 runner: Callable[[RunConfig], Any] | None = None) -> None:
        self.settings = settings
        self.root = Path(settings.output)
        self.root.mkdir(parents=True, exist_ok=True)
        self._runner = runner or _run_pipeline
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._order: deque[str] = deque()
        self._slots = 0
        self._running_since: dict[str, float] = {}
        self._durations: deque[float] = deque(maxlen=20)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="lanepipe-job")

    # slots
    def reserve(self) -> bool:
        with self._lock:
            if self._slots >= self.settings.max_queue:
                return False
            self._slots += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._slots = max(0, self._slots - 1)

    def counts(self) -> dict[str, int]:
        with self._lock:
            running = len(self._running_since)
            return {"queued": self._slots - running, "running": running, "max_queue": self.settings.max_queue}

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: mean job time minus the age of the oldest running job."""
        with self._lock:
            mean = (sum(self._durations) / len(self._durations)) if self._durations else float(
                self.settings.default_retry_after_s)
            oldest = min(self._running_since.values(), default=time.monotonic())
        left = mean - (time.monotonic() - oldest)
        return int(min(3600, max(1, math.ceil(left))))

    def full(self) -> bool:
        with self._lock:
            return self._slots >= self.settings.max_queue

    # jobs
    def new_id(self, cfg: RunConfig) -> str:
        return f"{new_run_id(cfg)}-{secrets.token_hex(4)}"

    def run_dir(self, job_id: str) -> Path:
        if not _ID.match(job_id):
            raise HTTPProblemError(404, "id", "a job id like 20261125T203000Z-1a2b3c4d-5e6f7a8b", repr(job_id))
        return self.root / job_id

    def submit(self, job: Job, cfg: RunConfig) -> None:
        """Queue ``job`` in a slot taken with :meth:`reserve`."""
        with self._lock:
            self._jobs[job.id] = job
            self._order.append(job.id)
            while len(self._order) > 1000:  # older records stay on disk
                old = self._order.popleft()
                if self._jobs.get(old) and self._jobs[old].status in ("done", "failed"):
                    self._jobs.pop(old, None)
                else:
                    self._order.append(old)
                    break
        self._save(job)
        self._pool.submit(self._execute, job, cfg)

    def get(self, job_id: str) -> Job:
        d = self.run_dir(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        path = d / JOB_FILE
        if not path.is_file():
            raise HTTPProblemError(404, "id", "the id of a job submitted to this server", f"no job {job_id!r}")
        data = json.loads(path.read_text())
        job = Job(**data)
        if job.status in ("queued", "running"):  # recorded by an earlier server process
            job.status, job.error = "failed", "the server restarted before this job finished; submit it again"
        return job

    def position(self, job_id: str) -> int | None:
        with self._lock:
            queued = [j for j in self._order if self._jobs.get(j) and self._jobs[j].status == "queued"]
        return queued.index(job_id) + 1 if job_id in queued else None

    def _save(self, job: Job) -> None:
        d = self.root / job.id
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{JOB_FILE}.tmp"
        tmp.write_text(json.dumps(job.to_json(), indent=2, default=str))
        tmp.replace(d / JOB_FILE)

    def _execute(self, job: Job, cfg: RunConfig) -> None:
        t = time.monotonic()
        with self._lock:
            job.status, job.started = "running", _utc()
            self._running_since[job.id] = t
        self._save(job)
        logger.info("job %s: running %s on %s", job.id, " → ".join(job.stages), job.source)
        status: JobStatus = "failed"
        try:
            summary = self._runner(cfg)
            rows: list[dict[str, Any]] = list(getattr(summary, "rows", []))
            job.result = summarize_rows(rows, self.root / job.id)
            bad = [r for r in rows if r.get("status") != "ok"]
            if bad:
                first = bad[0]
                job.error = f"{first.get('stage')} {first.get('instruction') or ''}: {first.get('error')}".replace(
                    "  ", " ")
            else:
                status = "done"
            logger.info("job %s: %s in %.1f s", job.id, "done" if status == "done" else "failed",
                        time.monotonic() - t)
        except LanepipeError as e:
            job.error = str(e)
            logger.warning("job %s: failed: %s", job.id, e)
        except Exception as e:  # a bug, not a bad input: keep the traceback in the server log
            job.error = f"internal error ({type(e).__name__}: {e}); see the server log"
            logger.exception("job %s: internal error", job.id)
        finally:
            seconds = time.monotonic() - t
            with self._lock:
                job.status, job.finished, job.seconds = status, _utc(), round(seconds, 3)
                self._running_since.pop(job.id, None)
                self._slots = max(0, self._slots - 1)
                self._durations.append(seconds)
            self._save(job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _run_pipeline(cfg: RunConfig) -> Any:
    from lanepipe import pipeline

    return pipeline.run(cfg, executor="sequential")


# ----------------------------------------------------------------------------------------- submissions
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


def check_instructions(texts: list[str]) -> list[str]:
    """Validate each instruction with :func:`parse_instruction`; 422 names the bad one and the accepted forms."""
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise HTTPProblemError(422, "instructions", "at least one lane instruction or preset:NAME, e.g. "
                               "'double yellow solid' or 'preset:passing-zone'", "none")
    if len(texts) > MAX_INSTRUCTIONS:
        raise HTTPProblemError(422, "instructions", f"at most {MAX_INSTRUCTIONS} instructions per job", str(len(texts)))
    seen: dict[str, str] = {}
    for t in texts:
        try:
            canonical = parse_instruction(t).to_text()
        except InputError as e:
            raise HTTPProblemError(422, "instructions", e.expected, f"{t!r} ({e.found})") from None
        if canonical in seen:  # both would write edit/<clip>/<same slug>/
            raise HTTPProblemError(422, "instructions", "distinct edits", f"{seen[canonical]!r} and {t!r}, both "
                                   f"{canonical!r}")
        seen[canonical] = t
    return texts


def check_local_input(path: str, roots: list[str] | None) -> str:
    """A local ``url``: absolute, and under one of ``roots`` when the server restricts them."""
    p = Path(path.removeprefix("file://")).expanduser().resolve()
    if roots is not None and not any(p.is_relative_to(r) for r in roots):
        raise HTTPProblemError(422, "url", f"a clip under one of the server's input folders ({', '.join(roots)})",
                               repr(path))
    return str(p)


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
                                   f"unknown {unknown}")
        presets = [f"preset:{p}" for p in _as_list(data.get("preset"), "preset")]
        return Submission(instructions=_as_list(data.get("instructions"), "instructions") + presets,
                          stages=_one_string(data.get("stages"), "stages") or "all",
                          predictors=_as_list(data.get("predictors"), "predictors"),
                          url=_one_string(data.get("url"), "url"))
    if mime not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPProblemError(415, "Content-Type", "multipart/form-data (file part 'clip'), "
                               "application/x-www-form-urlencoded or application/json (field 'url')",
                               repr(mime or "none"))
    try:
        form = await limited.form(max_files=1, max_fields=64, max_part_size=_FORM_MAX_PART)
    except HTTPException as e:  # Starlette's multipart errors: malformed body, too many files or fields
        raise HTTPProblemError(e.status_code, "body", "a well-formed form with at most one file part 'clip'",
                               str(e.detail)) from None
    unknown = sorted(set(form.keys()) - _FIELDS)
    if unknown:
        raise HTTPProblemError(422, "body", f"form fields among {', '.join(sorted(_FIELDS))}", f"unknown {unknown}")
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
        raise HTTPProblemError(415, "clip", f"a video file (video/* or a name ending in {', '.join(VIDEO_EXTENSIONS)})",
                               f"{ctype or 'no content type'} named {name or '(no name)'!r}")
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


# ---------------------------------------------------------------------------------------------- the app
# Serve pickles the deployment class when it is decorated: everything it uses must be defined above it.
api = FastAPI(title="lanepipe", summary="Paint requested lane markings into driving clips and measure the effect",
              docs_url=None, redoc_url=None, openapi_url=None)


@api.exception_handler(HTTPProblemError)
async def _problem(_: Request, exc: HTTPProblemError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _page() -> str:
    return (resources.files("lanepipe.serve") / "static" / "index.html").read_text(encoding="utf-8")


@serve.deployment(name="lanepipe", num_replicas=1, max_ongoing_requests=256)
@serve.ingress(api)
class EditService:
    """The HTTP face of :class:`JobQueue` (one replica: jobs live in its memory and run folders)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = ServeSettings.model_validate(settings)
        self.jobs = JobQueue(self.settings)
        self.page = _page()
        logger.info("lanepipe serve: output %s, max_queue %d, workers %d, token %s", self.settings.output,
                    self.settings.max_queue, self.settings.workers, "set" if self.settings.token else "none")

    def _auth(self, request: Request) -> None:
        token = self.settings.token
        if not token:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPProblemError(401, "Authorization", "'Bearer <token>' (or the lanepipe_token cookie)",
                                   "a wrong token" if given else "none", headers={"WWW-Authenticate": "Bearer"})

    def _full(self) -> HTTPProblemError:
        c = self.jobs.counts()
        wait = self.jobs.retry_after()
        return HTTPProblemError(503, "queue", f"fewer than {c['max_queue']} jobs queued or running",
                                f"{c['queued']} queued and {c['running']} running", hint=f"retry after {wait} s",
                                headers={"Retry-After": str(wait)})

    def _base(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @api.get("/", response_class=HTMLResponse)
    async def index(self, request: Request) -> HTMLResponse:
        root = json.dumps(self._base(request)).replace("<", "\\u003c")
        return HTMLResponse(self.page.replace('"__API_ROOT__"', root),
                            headers={"Cache-Control": "no-store"})

    @api.get("/v1/health")
    async def health(self) -> dict[str, Any]:
        return {"status": "ok", **self.jobs.counts()}

    @api.post("/v1/edits", status_code=202)
    async def submit(self, request: Request) -> JSONResponse:
        self._auth(request)
        if self.jobs.full():  # before reading a large body
            raise self._full()
        sub = await read_submission(request, self.settings.max_upload_bytes)
        try:
            return await self._accept(request, sub)
        finally:
            if sub.upload is not None:
                await sub.upload.close()

    async def _accept(self, request: Request, sub: Submission) -> JSONResponse:
        s = self.settings
        if (sub.upload is None) == (sub.url is None):
            raise HTTPProblemError(422, "clip/url", "exactly one of a file part 'clip' or a field 'url'",
                                   "both" if sub.upload is not None else "neither")
        instructions = check_instructions(sub.instructions)
        predictors = sub.predictors or list(s.predictors[:1])
        bad = [p for p in predictors if p not in s.predictors]
        if bad:
            raise HTTPProblemError(422, "predictors", f"names among {', '.join(s.predictors)}", ", ".join(bad))
        local: str | None = None
        if sub.url is not None:
            url = sub.url.strip()
            scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
            if scheme not in s.url_schemes:
                raise HTTPProblemError(422, "url", f"a local path or a URL with scheme {', '.join(s.url_schemes)}",
                                       f"scheme {scheme!r}")
            if scheme == "file":
                local = check_local_input(url, s.input_roots)
        stored = check_upload_type(sub.upload) if sub.upload is not None else None
        cfg = self._config(sub.stages, instructions, predictors)
        if not self.jobs.reserve():
            raise self._full()
        job_id = self.jobs.new_id(cfg)
        run_dir = self.jobs.run_dir(job_id)
        source = shown = ""
        try:
            if sub.upload is not None and stored is not None:
                source = str(run_dir / INPUT_DIR / stored)
                await asyncio.to_thread(store_upload, sub.upload, Path(source))
                shown = sub.upload.filename or stored
            else:
                source = local or str(sub.url).strip()
                shown = source
            info = await asyncio.to_thread(probe, source)
            pixels = info.width * info.height
            if pixels > cfg.input.max_pixels:
                raise HTTPProblemError(422, "clip", f"frames of at most {cfg.input.max_pixels} pixels",
                                       f"{info.width}x{info.height}")
            cfg.input.paths = [source]
            cfg.run_id = job_id
        except InputError as e:
            self.jobs.release()
            shutil.rmtree(run_dir, ignore_errors=True)
            field = "clip" if sub.upload is not None else "url"
            found = e.found.replace(source, shown)  # the upload's name, not where the server keeps it
            raise HTTPProblemError(422, field, e.expected, found, hint=e.hint) from None
        except BaseException:
            self.jobs.release()
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        job = Job(id=job_id, status="queued", created=_utc(), source=shown, instructions=instructions,
                  stages=list(cfg.stages), predictors=predictors, input_name=stored or "",
                  config=cfg.model_dump(mode="json"))
        self.jobs.submit(job, cfg)
        logger.info("job %s: queued (%s, %s)", job_id, shown, "; ".join(instructions))
        status_url = f"{self._base(request)}/v1/edits/{job_id}"
        return JSONResponse({"id": job_id, "status": "queued", "status_url": status_url}, status_code=202,
                            headers={"Location": status_url})

    def _config(self, stages: str, instructions: list[str], predictors: list[str]) -> RunConfig:
        data = copy.deepcopy(self.settings.base_config)
        data["output"] = self.settings.output
        data["stages"] = stages
        data.pop("from_run", None)
        data.pop("run_id", None)
        data.setdefault("input", {})["paths"] = []
        data.setdefault("edit", {})["instructions"] = instructions
        data.setdefault("evaluate", {})["predictors"] = predictors
        try:
            cfg = load_config(None, [], base=data)
        except LanepipeError as e:
            raise HTTPProblemError(422, "stages", f"a contiguous selection of {' → '.join(STAGES)} or 'all'",
                                   repr(stages), hint=str(e).replace("\n", " ")) from None
        if cfg.stages[0] != "segment":
            raise HTTPProblemError(422, "stages", "a selection that starts at segment (an upload has no earlier run)",
                                   repr(stages))
        return cfg

    @api.get("/v1/edits/{job_id}")
    async def status(self, request: Request, job_id: str) -> dict[str, Any]:
        self._auth(request)
        job = self.jobs.get(job_id)
        files = f"{self._base(request)}/v1/edits/{job.id}/files/"

        def link(rel: Any) -> str | None:
            return files + rel if rel else None

        edits: list[dict[str, Any]] = []
        for e in job.result.get("edits", []):
            e2 = {k: link(v) if k in ("edited", "qa", "lanes", "poster") else v
                  for k, v in e.items() if k != "predictions"}
            e2["predictions"] = [{k: link(v) if k in ("metrics", "comparison", "overlay", "bev") else v
                                  for k, v in p.items()} for p in e.get("predictions", [])]
            edits.append(e2)
        first_e: dict[str, Any] = edits[0] if edits else {}
        first_p: dict[str, Any] = first_e["predictions"][0] if first_e.get("predictions") else {}
        links = {"original": link(job.result.get("original")), "edited": first_e.get("edited"),
                 "comparison": first_p.get("comparison"), "metrics": first_p.get("metrics"),
                 "report": link(job.result.get("report")),
                 "original_poster": link(job.result.get("original_poster")), "edited_poster": first_e.get("poster")}
        if links["original"] is None and job.input_name:
            links["original"] = link(f"{INPUT_DIR}/{job.input_name}")
        return {"id": job.id, "status": job.status, "position": self.jobs.position(job.id),
                "created": job.created, "started": job.started, "finished": job.finished, "seconds": job.seconds,
                "source": job.source, "instructions": job.instructions, "stages": job.stages,
                "predictors": job.predictors, "error": job.error,
                "links": links if job.status in ("done", "failed") else {}, "edits": edits}

    @api.get("/v1/edits/{job_id}/files/{path:path}")
    async def files(self, request: Request, job_id: str, path: str) -> FileResponse:
        self._auth(request)
        job = self.jobs.get(job_id)
        target = resolve_inside(self.jobs.run_dir(job.id), path)
        return FileResponse(target)


def build_app(settings: ServeSettings) -> Any:
    """The Serve application (``serve.run(build_app(settings))``), one replica."""
    deployment: Any = EditService  # a serve.Deployment at run time
    return deployment.options(ray_actor_options={"num_cpus": settings.replica_cpus}).bind(
        settings.model_dump(mode="json"))


def start(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8000, name: str = "lanepipe",
          route_prefix: str = "/", logging_config: dict[str, Any] | None = None, ready_timeout_s: float = 120.0) -> str:
    """Start Serve's HTTP proxy on ``host:port`` (Ray must be initialised), deploy the app, return its URL.

    Returns once the app answers ``GET /v1/health`` on that port; it keeps running until :func:`stop` or Ray
    stops. On a loaded machine Serve may kill a proxy that starts slower than its ready check (5 s) and start
    another; that is waited out, up to ``ready_timeout_s``.
    """
    from ray.exceptions import RayActorError

    for attempt in range(3):
        try:
            serve.start(http_options={"host": host, "port": port}, logging_config=logging_config)
            break
        except RayActorError as e:  # the proxy was killed while starting; the controller starts another
            if attempt == 2:
                raise
            logger.warning("Serve proxy did not start in time (%s); waiting for the next one", type(e).__name__)
    serve.run(build_app(settings), name=name, route_prefix=route_prefix, logging_config=logging_config)
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}/"
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # a wildcard bind answers on loopback
    wait_ready(f"http://{probe_host}:{port}{route_prefix.rstrip('/')}/v1/health", ready_timeout_s)
    return url


def wait_ready(health_url: str, timeout_s: float) -> None:
    """Poll ``health_url`` until it answers 200.

    Raises:
        TimeoutError: no 200 within ``timeout_s`` (the last error is named).
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health_url, timeout=5) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.25)
    raise TimeoutError(f"{health_url}: expected HTTP 200 within {timeout_s:.0f} s, found {last}")


def stop() -> None:
    """Shut Serve down: every app and the HTTP proxy."""
    serve.shutdown()  # type: ignore[no-untyped-call]
