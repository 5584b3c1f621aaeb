"""What a lanepipe Serve app allows (:class:`ServeSettings`) and how it answers a refused request
(:class:`HTTPProblemError`: ``{"detail", "field", "expected", "found"}``).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at run time.
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOKEN_COOKIE = "lanepipe_token"


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

