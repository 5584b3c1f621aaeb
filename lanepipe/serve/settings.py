"""What a lanepipe Serve app allows (:class:`ServeSettings`) and how it answers a refused request
(:class:`HTTPProblemError`: ``{"detail", "field", "expected", "found"}``).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at run time.
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOKEN_COOKIE = "lanepipe_token"
ECHO_MAX = 200  # characters of a request's own input an error answer repeats


#: Stages with a model deployment (:data:`lanepipe.serve.models.MODEL_STAGES`).
REPLICA_STAGES: tuple[str, ...] = ("segment", "edit", "evaluate")


class ReplicaBounds(BaseModel):
    """Autoscaling bounds of one model deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(1, ge=0, le=1000)
    max_replicas: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _order(self) -> "ReplicaBounds":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})")
        return self


def parse_replicas(text: str) -> tuple[str, ReplicaBounds]:
    """``STAGE=MIN:MAX`` (or ``STAGE=N``: a fixed count) as given to ``lanepipe serve --replicas``.

    Raises:
        ValueError: naming the text, the expected form and the stages that have a deployment.
    """
    stage, sep, bounds = text.partition("=")
    stage = stage.strip()
    lo, _, hi = bounds.partition(":")
    if not sep or stage not in REPLICA_STAGES or not lo.strip().isdigit() or not (hi or lo).strip().isdigit():
        raise ValueError(f"--replicas {text!r}: expected STAGE=MIN:MAX or STAGE=N with STAGE among "
                         f"{', '.join(REPLICA_STAGES)}, e.g. edit=1:4")
    return stage, ReplicaBounds(min_replicas=int(lo), max_replicas=int(hi or lo))


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
    allow_url_prefixes: list[str] = Field(
        default_factory=list, description="local folders or gs://, s3:// prefixes a request's `url` may name "
        "(normalised; none = uploads only)")
    input_roots: list[str] | None = Field(None, description="deprecated: local folders added to allow_url_prefixes")
    url_schemes: list[str] = Field(default_factory=lambda: ["file", "gs", "s3"],
                                   description="URL schemes accepted in `url` besides local paths")
    url_connect_timeout_s: float = Field(2.0, gt=0, le=60, description="connect timeout of a remote `url` check")
    url_read_timeout_s: float = Field(3.0, gt=0, le=120, description="read timeout of a remote `url` check")
    url_attempts: int = Field(2, ge=1, le=5, description="attempts of a remote `url` check (retry budget)")
    max_instruction_chars: int = Field(200, ge=16, le=10_000, description="longest accepted instruction")
    replica_cpus: float = Field(1.0, ge=0, description="Ray CPUs reserved by the ingress replica; when set, by "
                                "every model replica too (unset: each model stage's own resources)")
    resident_models: bool = Field(True, description="run the model stages on their deployments, models loaded "
                                  "once per replica (False: in the ingress's threads, models loaded per job)")
    min_replicas: int = Field(1, ge=0, le=1000, description="fewest replicas of each model deployment "
                              "(autoscaling lower bound)")
    max_replicas: int = Field(1, ge=1, le=1000, description="most replicas of each model deployment "
                              "(autoscaling upper bound)")
    stage_replicas: dict[str, ReplicaBounds] = Field(
        default_factory=dict, description="per model stage (segment, edit, evaluate): bounds that override "
        "min_replicas/max_replicas for its deployment")
    fit_to_cluster: bool = Field(False, description="scale the replicas' CPU and GPU asks down when the ingress "
                                 "and the model deployments' minimum replicas ask for more than the Ray cluster has "
                                 "at start: replicas that cannot be placed keep the app from ever becoming ready. "
                                 "`lanepipe serve` turns it on for a local Ray instance (ray.fit_pools); off, a "
                                 "cluster that adds nodes on demand gets the asks as they are")
    target_ongoing_requests: float = Field(1.0, gt=0, description="jobs per model replica the autoscaler aims at")
    default_retry_after_s: int = Field(30, ge=1, description="Retry-After before any job has finished")

    @field_validator("stage_replicas")
    @classmethod
    def _stages(cls, v: dict[str, ReplicaBounds]) -> dict[str, ReplicaBounds]:
        bad = sorted(set(v) - set(REPLICA_STAGES))
        if bad:
            raise ValueError(f"stage_replicas: expected stages among {', '.join(REPLICA_STAGES)}, found {bad}")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> "ServeSettings":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})")
        return self

    def replicas(self, stage: str) -> dict[str, int]:
        """``{"min_replicas", "max_replicas"}`` of ``stage``'s deployment: its override, else the global bounds."""
        b = self.stage_replicas.get(stage)
        if b is not None:
            return {"min_replicas": b.min_replicas, "max_replicas": b.max_replicas}
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas}

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

    @field_validator("allow_url_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        out = []
        for raw in v:
            given = raw.strip()
            if "://" not in given and given:  # the operator's folder: relative to where the server starts
                given = str(Path(given).expanduser().absolute())
            norm = normalise_url(given)
            if norm is None:
                raise ValueError(f"allow_url_prefixes: expected an absolute local folder or a gs://, s3:// "
                                 f"prefix, found {raw!r}")
            out.append(norm)
        return out

    def url_prefixes(self) -> list[str]:
        """Every allowed prefix, normalised (``allow_url_prefixes`` plus the deprecated ``input_roots``)."""
        return [*self.allow_url_prefixes, *(self.input_roots or [])]

    def check_timeout_s(self) -> float:
        """Upper bound of a remote `url` check: every attempt's connect + read, plus back-off slack."""
        return self.url_attempts * (self.url_connect_timeout_s + self.url_read_timeout_s) + 1.0


def normalise_url(url: str) -> str | None:
    """``url`` with ``.``/``..``/duplicate slashes collapsed: an absolute local path (symlinks resolved, no
    ``file://``) or ``scheme://bucket/key``; None for a relative path or an empty remote location.
    """
    if "://" in url and not url.lower().startswith("file://"):
        scheme, rest = url.split("://", 1)
        parts: list[str] = []
        for seg in rest.split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                if not parts:
                    return None
                parts.pop()
            else:
                parts.append(seg)
        return f"{scheme.lower()}://{'/'.join(parts)}" if parts else None
    path = url[len("file://"):] if url.lower().startswith("file://") else url
    if not path.startswith("/") or "\x00" in path:
        return None
    return str(Path(os.path.normpath(path)).resolve())


def url_under(url: str, prefix: str) -> bool:
    """Whether normalised ``url`` lies under normalised ``prefix``, segment by segment (``/data-evil`` is not
    under ``/data``)."""
    if url == prefix:
        return True
    return url.startswith(prefix.rstrip("/") + "/")


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



def echo(value: str, limit: int = ECHO_MAX) -> str:
    """``repr(value)``, cut to ``limit`` characters (saying so) so an answer never mirrors a huge input."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… (cut: {len(value)} characters in all)"
