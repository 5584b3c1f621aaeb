"""Job state of the Serve app: a :class:`Job` per run, the :class:`JobQueue` that runs them on a small thread pool
and keeps ``<output>/<id>/serve_job.json`` up to date, and the run-folder helpers (:func:`summarize_rows`,
:func:`resolve_inside`).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at run time.
import datetime as dt
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi.responses import FileResponse, Response

from lanepipe.config import RunConfig, new_run_id
from lanepipe.errors import LanepipeError
from lanepipe.serve.settings import HTTPProblemError, ServeSettings, echo

logger = logging.getLogger("ray.serve")

JobStatus = Literal["queued", "running", "done", "failed"]
JOB_FILE = "serve_job.json"
INPUT_DIR = "input"
_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}-[0-9a-f]{8}$")
_METRIC_KEYS = ("t0_s", "shift_ade", "shift_max_lateral", "min_ade_original", "min_ade_edited",
                "min_fde_original", "min_fde_edited")


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
    interrupted: bool = False
    model_loads: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# An absolute path under a usual top-level folder (not the path part of a URL, an HTML closing tag or a fraction:
# no word character, ':', '/', '.', '~', '-' or '<' just before it), with at least one name below that folder.
_TOP = ("tmp", "home", "root", "usr", "opt", "var", "etc", "srv", "mnt", "media", "data", "work", "workspace",
        "private", "Users", "run", "nix", "lib", "lib64", "bin", "sbin", "snap", "scratch", "proc", "sys", "dev", "app")
_ABS_PATH = re.compile(r"(?<![\w:/.~<-])/(?:" + "|".join(_TOP) + r")(?:/[^\s'\"`<>()\[\]{},;:/]+)+")
_SHA = re.compile(r"\b[0-9a-f]{40}\b")


def scrub(text: str, run_dir: Path | None = None) -> str:
    """``text`` without server paths or commits: paths inside ``run_dir`` become relative to it, the run root
    (its parent) and any other absolute path under a usual top-level folder ``…/<last name>``, and a 40-hex
    commit ``(hidden)``. HTML and scripts stay intact (closing tags, ``a / b`` and URL paths are not paths)."""
    if run_dir is not None:
        for root in dict.fromkeys([str(run_dir), str(run_dir.resolve())]):
            text = text.replace(root.rstrip("/") + "/", "").replace(root, ".")
        for root in dict.fromkeys([str(run_dir.parent), str(run_dir.resolve().parent)]):
            if root != "/":
                text = text.replace(root.rstrip("/") + "/", "…/").replace(root, "…")
    text = _ABS_PATH.sub(lambda m: "…/" + m.group(0).rsplit("/", 1)[-1], text)
    return _SHA.sub("(hidden)", text)


def utc_now() -> str:
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
                out["error"] = _scrubbed(r.get("error"), root)
    edits: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r.get("stage") != "edit":
            continue
        edited = rel(r.get("edited"))
        d = Path(str(r["edited"])).parent if r.get("edited") else None
        e = {"clip": r["clip"], "instruction": r.get("instruction"), "status": r.get("status"),
             "error": _scrubbed(r.get("error"), root), "caption": r.get("caption"), "qa_verdict": r.get("qa_verdict"),
             "qa_iterations": r.get("qa_iterations"), "edited": edited,
             "qa": rel(d / "qa.json") if d else None, "lanes": rel(d / "lanes.json") if d else None,
             "poster": rel(d / "first_frame.png") if d else None, "predictions": []}
        edits[(str(r["clip"]), str(r.get("instruction")))] = e
        out["edits"].append(e)
    preds: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (str(r.get("clip")), str(r.get("instruction")))
        if r.get("stage") == "evaluate" and key in edits:
            p = {"predictor": r.get("predictor"), "status": r.get("status"), "error": _scrubbed(r.get("error"), root),
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
                preds[key3].update(status=r.get("status"), error=_scrubbed(r.get("error"), root))
    return out


def _scrubbed(v: Any, root: Path) -> Any:
    return scrub(v, root) if isinstance(v, str) else v


def resolve_inside(run_dir: Path, rel_path: str) -> Path:
    """The file ``rel_path`` inside ``run_dir``, refusing anything that leaves it (``..``, absolute, links).

    Raises:
        HTTPProblemError: 403 for a path that leaves the folder, 404 for a missing file.
    """
    parts = rel_path.replace("\\", "/").split("/")
    if rel_path.startswith(("/", "\\")) or any(p in ("..", "") for p in parts) or "\x00" in rel_path or (
            ":" in parts[0]):
        raise HTTPProblemError(403, "path", "a relative file path inside the job's run folder",
                               f"{echo(rel_path)}, which leaves it")
    root = run_dir.resolve()
    target = (root / rel_path).resolve()
    if not target.is_relative_to(root):
        raise HTTPProblemError(403, "path", "a file inside the job's run folder",
                               f"{echo(rel_path)}, which resolves outside it")
    if not target.is_file():
        raise HTTPProblemError(404, "path", "a file of this job's run", f"no file {echo(rel_path)}")
    return target


_TEXT_TYPES = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
               ".txt": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8",
               ".csv": "text/csv; charset=utf-8", ".md": "text/markdown; charset=utf-8",
               ".yaml": "application/yaml", ".yml": "application/yaml", ".svg": "image/svg+xml"}
_HIDDEN_KEYS = frozenset({"versions", "git_sha", "git_commit", "hostname", "host", "python"})
_NOT_SERVED = frozenset({".parquet", ".tmp", ".part"})


def _clean_json(v: Any, run_dir: Path) -> Any:
    if isinstance(v, dict):
        return {k: _clean_json(x, run_dir) for k, x in v.items() if k not in _HIDDEN_KEYS}
    if isinstance(v, list):
        return [_clean_json(x, run_dir) for x in v]
    return scrub(v, run_dir) if isinstance(v, str) else v


def served_file(target: Path, run_dir: Path) -> Response:
    """The answer for a file of a run folder: media as they are (``Range`` works), text and JSON without server
    paths, package versions or commits; tables that hold server paths (``results.parquet``) are not served."""
    suffix = target.suffix.lower()
    if suffix in _NOT_SERVED or target.name.startswith("."):
        raise HTTPProblemError(403, "path", "a video, image, JSON or report file of the run",
                               f"{target.name!r}, which the API does not serve")
    if suffix == ".json":
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HTTPProblemError(403, "path", "a readable JSON file", f"{target.name!r}, which is not") from None
        return Response(json.dumps(_clean_json(data, run_dir), indent=2), media_type="application/json")
    if suffix in _TEXT_TYPES:
        text = target.read_text(encoding="utf-8", errors="replace")
        return Response(scrub(text, run_dir), media_type=_TEXT_TYPES[suffix])
    return FileResponse(target)


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
            raise HTTPProblemError(404, "id", "a job id like 20261125T203000Z-1a2b3c4d-5e6f7a8b", echo(job_id))
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
            job.status, job.interrupted = "failed", True
            job.error = ("interrupted: the server restarted before this job finished; submit it again (what it "
                         "finished is kept in its run folder)")
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
            job.status, job.started = "running", utc_now()
            self._running_since[job.id] = t
        self._save(job)
        logger.info("job %s: running %s on %s", job.id, " → ".join(job.stages), job.source)
        status: JobStatus = "failed"
        try:
            summary = self._runner(cfg)
            rows: list[dict[str, Any]] = list(getattr(summary, "rows", []))
            job.result = summarize_rows(rows, self.root / job.id)
            job.model_loads = sum(int(r.get("model_loads") or 0) for r in rows)
            bad = [r for r in rows if r.get("status") != "ok"]
            if bad:
                first = bad[0]
                job.error = scrub(f"{first.get('stage')} {first.get('instruction') or ''}: {first.get('error')}"
                                  .replace("  ", " "), self.root / job.id)
            else:
                status = "done"
            logger.info("job %s: %s in %.1f s", job.id, "done" if status == "done" else "failed",
                        time.monotonic() - t)
        except LanepipeError as e:
            job.error = scrub(str(e), self.root / job.id)
            logger.warning("job %s: failed: %s", job.id, e)
        except Exception as e:  # a bug, not a bad input: keep the traceback in the server log
            job.error = f"internal error ({type(e).__name__}); see the server log"
            logger.exception("job %s: internal error", job.id)
        finally:
            seconds = time.monotonic() - t
            with self._lock:
                job.status, job.finished, job.seconds = status, utc_now(), round(seconds, 3)
                self._running_since.pop(job.id, None)
                self._slots = max(0, self._slots - 1)
                self._durations.append(seconds)
            self._save(job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _run_pipeline(cfg: RunConfig) -> Any:
    from lanepipe import pipeline

    return pipeline.run(cfg, executor="sequential")


