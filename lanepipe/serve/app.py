"""Ray Serve application: submit lane edits over HTTP, poll them, download the results, and a web page.

API (JSON unless said; every ``/v1`` route needs ``Authorization: Bearer <token>`` or the cookie
``lanepipe_token`` when the server has a token):

``POST /v1/edits`` → 202 ``{"id", "status": "queued", "status_url"}``
    ``multipart/form-data`` with a file part ``clip`` (a video), or a field ``url`` (a local path or a
    ``file``/``gs``/``s3`` URL of one clip, only under a prefix the operator allowed with
    ``--allow-url-prefix``; none by default) in a form or a JSON object. ``instructions``: one or more lane
    instructions (at most ``max_instruction_chars`` characters each) or ``preset:NAME`` (repeat the form
    field, or a JSON list). Options: ``stages`` (``segment`` … ``all``, default ``all``) and ``predictors``
    (among the server's allowed ones). The clip is checked before the job is queued: a video stream, at least
    2 decodable frames, frames within ``input.max_pixels``.
    Errors: 401 no/bad token; 403 a ``url`` outside the allowed prefixes (one answer, whatever the location
    is); 413 upload over the size limit; 415 a body or file part of the wrong type; 422 a missing/invalid
    field, an instruction that parses to nothing (the accepted forms are listed) or a clip that is not a usable
    video (named by its client file name); 502 the storage endpoint of a remote ``url`` refused or failed,
    504 it did not answer within the connect/read timeouts; 503 with ``Retry-After`` when ``max_queue`` jobs
    are queued or running. Every error body is ``{"detail", "field", "expected", "found"}``; echoed input is
    cut to 200 characters, and no answer names a server path, package version or commit.
``GET /v1/edits/{id}`` → ``{"id", "status": queued|running|done|failed, "position", "error", "links",
    "edits", …}``; when the run has finished, ``links`` has ``original``, ``edited``, ``comparison``,
    ``metrics`` and ``report`` (first instruction and predictor) and ``edits`` lists them all with the QA
    verdict and the trajectory-shift metrics.
``GET /v1/edits/{id}/files/{path}`` → a file of the job's run folder (``Range`` supported for media); JSON
    and text files are served without server paths, ``versions`` or ``git_sha``; ``results.parquet`` and a
    path that leaves the folder are refused with 403.
``GET /v1/health`` → ``{"status": "ok", "queued", "running", "max_queue"}`` (no token needed).
``GET /v1/metrics`` → the queue counts and ``models``: per model deployment, ``model_loads`` and
    ``model_load_s`` per stage of the replica that answered, its ``resident`` stages, ``calls`` (items processed)
    and Ray ``resources``; ``lanepipe-models``: the loads of all of them and the ``jobs`` run on them.
``GET /`` → the web page (``/?job=<id>`` shows an existing job).

A job is a run: its id is the run id (``<UTC timestamp>-<config hash>-<random>``) and its folder
``<output>/<id>/`` holds the upload (``input/``), the run's outputs and ``serve_job.json`` (the job record,
read back after a restart; a job a restart cut short reads ``failed`` with ``interrupted: true``). Jobs run the
real pipeline (``pipeline.run(cfg, executor="sequential")``) from the ingress's job threads, each model stage on
its own deployment (:mod:`lanepipe.serve.models`: ``lanepipe-segment`` → ``lanepipe-edit`` →
``lanepipe-evaluate``, then ``render`` here), whose replicas keep that stage's models resident: a job's status
carries the ``model_loads`` it caused (0 once the replicas have loaded them). Requests choose only the
instructions, stages and predictors — everything else comes from the server's base config.

Modules: :mod:`~lanepipe.serve.settings` (settings, error answers), :mod:`~lanepipe.serve.ingress` (request
checks and uploads), :mod:`~lanepipe.serve.jobs` (job state and queue); this one holds the FastAPI routes, the
Serve deployment and :func:`start` / :func:`stop`.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at run time.
import asyncio
import copy
import hmac
import json
import logging
import shutil
import time
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve

from lanepipe.config import STAGES, RunConfig, load_config
from lanepipe.errors import InputError, LanepipeError
from lanepipe.io import storage
from lanepipe.io.video import decode, probe
from lanepipe.serve.ingress import (
    Submission,
    check_instructions,
    check_remote,
    check_upload_type,
    check_url,
    read_submission,
    remote_problem,
    store_upload,
)
from lanepipe.serve.jobs import INPUT_DIR, Job, JobQueue, resolve_inside, scrub, served_file, utc_now
from lanepipe.serve.settings import TOKEN_COOKIE, HTTPProblemError, ServeSettings, echo

__all__ = ["EditService", "ServeSettings", "api", "build_app", "start", "stop", "wait_ready"]

logger = logging.getLogger("ray.serve")

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

    def __init__(self, settings: dict[str, Any], models: dict[str, Any] | None = None) -> None:
        self.settings = ServeSettings.model_validate(settings)
        # per model stage, a DeploymentHandle of its deployment; None: jobs load their models themselves
        self.models = models
        self.jobs = JobQueue(self.settings, runner=self._on_models if models else None)
        self.model_jobs = 0
        self.page = _page()
        logger.info("lanepipe serve: output %s, max_queue %d, workers %d, token %s", self.settings.output,
                    self.settings.max_queue, self.settings.workers, "set" if self.settings.token else "none")

    def _on_models(self, cfg: RunConfig) -> Any:
        """Run a job with its model stages on their deployments (called from a job thread: blocking is fine)."""
        from lanepipe.serve.models import run_job

        assert self.models is not None
        out = run_job(cfg, self.models)
        self.model_jobs += 1
        return SimpleNamespace(rows=out["rows"])

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

    @api.get("/v1/metrics")
    async def metrics(self, request: Request) -> dict[str, Any]:
        """Queue counts and ``models``: per model deployment (``lanepipe-segment``, ``lanepipe-edit``,
        ``lanepipe-evaluate``) the model loads and load seconds per stage of the replica that answered, its
        resident stages, items processed and Ray resources; ``lanepipe-models`` sums the loads over them, with
        the jobs run on them (``models``: null when jobs run without the model deployments)."""
        self._auth(request)
        if not self.models:
            return {**self.jobs.counts(), "models": None}
        from lanepipe.serve.models import deployment_name

        per = {deployment_name(stage): await h.stats.remote() for stage, h in self.models.items()}
        total: dict[str, Any] = {"model_loads": {}, "model_load_s": {}, "resident": [], "jobs": self.model_jobs}
        for m in per.values():
            total["model_loads"].update(m["model_loads"])
            total["model_load_s"].update(m["model_load_s"])
            total["resident"] = sorted({*total["resident"], *m["resident"]})
        return {**self.jobs.counts(), "models": {"lanepipe-models": total, **per}}

    @api.post("/v1/edits", status_code=202)
    async def submit(self, request: Request) -> JSONResponse:
        self._auth(request)
        if self.jobs.full():  # before reading a large body
            raise self._full()
        sub = await read_submission(request, self.settings.max_upload_bytes)
        try:
            return await self._accept(request, sub)
        except HTTPProblemError:
            raise
        except Exception:  # a bug: the documented JSON body, the traceback only in the server log
            logger.exception("POST /v1/edits: internal error")
            raise HTTPProblemError(500, "server", "a request the server can handle", "an internal error",
                                   hint="see the server log") from None
        finally:
            if sub.upload is not None:
                await sub.upload.close()

    async def _accept(self, request: Request, sub: Submission) -> JSONResponse:
        s = self.settings
        if (sub.upload is None) == (sub.url is None):
            raise HTTPProblemError(422, "clip/url", "exactly one of a file part 'clip' or a field 'url'",
                                   "both" if sub.upload is not None else "neither")
        instructions = check_instructions(sub.instructions, s.max_instruction_chars)
        predictors = sub.predictors or list(s.predictors[:1])
        bad = [p for p in predictors if p not in s.predictors]
        if bad:
            raise HTTPProblemError(422, "predictors", f"names among {', '.join(s.predictors)}",
                                   echo(", ".join(bad)))
        url: str | None = None
        if sub.url is not None:
            url = check_url(sub.url, s.url_prefixes(), s.url_schemes)
            if storage.is_remote(url):
                await self._check_remote(url)
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
                shown = Path(sub.upload.filename or stored).name[:200]  # a client's name, bounded
            else:
                source = shown = str(url)
            await self._check_clip(source, cfg)
            cfg.input.paths = [source]
            cfg.run_id = job_id
        except InputError as e:
            self.jobs.release()
            shutil.rmtree(run_dir, ignore_errors=True)
            field = "clip" if sub.upload is not None else "url"

            def clean(text: str) -> str:  # the upload's name, never where the server keeps it
                return scrub(text.replace(source, shown), run_dir)

            found = clean(e.found)
            if found.strip().isdigit():  # a count alone ("found 1"): say of what
                found = f"{found.strip()} decodable frame{'' if found.strip() == '1' else 's'}"
            raise HTTPProblemError(422, field, clean(e.expected), f"{echo(shown)}: {found}",
                                   hint=clean(e.hint) if e.hint else None) from None
        except BaseException:
            self.jobs.release()
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        job = Job(id=job_id, status="queued", created=utc_now(), source=shown, instructions=instructions,
                  stages=list(cfg.stages), predictors=predictors, input_name=stored or "",
                  config=cfg.model_dump(mode="json"))
        self.jobs.submit(job, cfg)
        logger.info("job %s: queued (%s, %s)", job_id, shown, "; ".join(instructions))
        status_url = f"{self._base(request)}/v1/edits/{job_id}"
        return JSONResponse({"id": job_id, "status": "queued", "status_url": status_url}, status_code=202,
                            headers={"Location": status_url})

    async def _check_remote(self, url: str) -> None:
        """Stat a remote clip within the settings' connect/read timeouts and attempts: 502/504 say why not."""
        s = self.settings
        bound = s.check_timeout_s()
        try:
            await asyncio.wait_for(asyncio.to_thread(check_remote, url, s.url_connect_timeout_s,
                                                     s.url_read_timeout_s, s.url_attempts), timeout=bound)
        except Exception as e:  # every storage failure becomes an answer naming its cause
            logger.warning("url check of %s failed: %r", url, e)
            raise remote_problem(e, bound) from None

    async def _check_clip(self, source: str, cfg: RunConfig) -> None:
        """Refuse, before queueing, a clip the run could not use: no video stream (a PNG, audio), frames over
        the pixel limit, fewer than 2 decodable frames. InputErrors pass through; storage faults are 502/504."""
        remote = storage.is_remote(source)
        bound = self.settings.check_timeout_s()
        limit = bound if remote else None  # a local file is never waited out (a slow disk is not a 504)
        try:
            info = await asyncio.wait_for(asyncio.to_thread(probe, source), timeout=limit)
            if info.width * info.height > cfg.input.max_pixels:
                raise InputError(source, f"frames of at most {cfg.input.max_pixels} pixels",
                                 f"{info.width}x{info.height}")
            await asyncio.wait_for(asyncio.to_thread(
                decode, source, target_fps=None, max_frames=2, min_frames=2, max_pixels=cfg.input.max_pixels),
                timeout=limit)
        except (InputError, HTTPProblemError):
            raise
        except Exception as e:  # a remote read that failed after the check
            if not remote:
                raise
            logger.warning("reading %s failed: %r", source, e)
            raise remote_problem(e, bound) from None

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
                "predictors": job.predictors, "error": job.error, "interrupted": job.interrupted,
                "model_loads": job.model_loads,
                "links": links if job.status in ("done", "failed") else {}, "edits": edits}

    @api.get("/v1/edits/{job_id}/files/{path:path}")
    async def files(self, request: Request, job_id: str, path: str) -> Response:
        self._auth(request)
        job = self.jobs.get(job_id)
        run_dir = self.jobs.run_dir(job.id)
        target = resolve_inside(run_dir, path)
        return served_file(target, run_dir)


def build_app(settings: ServeSettings) -> Any:
    """The Serve application (``serve.run(build_app(settings))``): one ingress replica (HTTP, job state, the
    jobs' runner) composed through DeploymentHandles with one model deployment per model stage
    (:class:`~lanepipe.serve.models.StageModels`: ``lanepipe-segment``, ``lanepipe-edit``, ``lanepipe-evaluate``;
    models resident, each with its stage's Ray resources and autoscaling bounds:
    :func:`~lanepipe.serve.models.stage_options`) unless ``resident_models`` is off."""
    import ray

    from lanepipe.serve.models import ModelDeployment, fit_replicas, stage_options

    deployment: Any = EditService  # a serve.Deployment at run time
    options: dict[str, Any] = {"num_cpus": settings.replica_cpus}
    env = storage.storage_env()
    if env:  # the replica is a Ray worker: it sees the Ray node's environment, not this process's storage settings
        options["runtime_env"] = {"env_vars": env}
    models: dict[str, Any] | None = None
    if settings.resident_models:
        models = {}
        per_stage = stage_options(settings)
        if ray.is_initialized() and settings.fit_to_cluster:
            have = ray.cluster_resources()  # type: ignore[no-untyped-call]
            per_stage, options["num_cpus"], notes = fit_replicas(per_stage, settings.replica_cpus,
                                                                 float(have.get("CPU", 0.0)),
                                                                 float(have.get("GPU", 0.0)))
            for note in notes:
                logging.getLogger(__name__).warning(note)
        for stage, opts in per_stage.items():
            actor = dict(opts["ray_actor_options"])
            if env:  # the stage's own runtime_env (pip pins, py_executable) keeps its keys; storage env added
                renv = dict(actor.get("runtime_env") or {})
                renv["env_vars"] = {**env, **(renv.get("env_vars") or {})}
                actor["runtime_env"] = renv
            models[stage] = ModelDeployment.options(**{**opts, "ray_actor_options": actor}).bind(stage)
    return deployment.options(ray_actor_options=options).bind(settings.model_dump(mode="json"), models)


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

