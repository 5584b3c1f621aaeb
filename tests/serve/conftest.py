"""Fixtures of the Serve tests: a lanepipe Serve app through real Ray Serve on the session's local Ray."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from lanepipe.serve.settings import ServeSettings


class ServeApp:
    """One Serve app under test on a free loopback ``port``: :meth:`start` deploys it (again, after a
    ``serve.delete``, on the same port), :meth:`submit` posts a clip and :meth:`wait` polls its job."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.base = ""

    def start(self, settings: ServeSettings, name: str, **kwargs: Any) -> str:
        """Deploy app ``name`` at route ``/`` and wait until it answers; returns (and keeps) its base URL."""
        from lanepipe.serve.app import start

        self.base = start(settings, port=self.port, name=name, route_prefix="/", **kwargs)
        return self.base

    def submit(self, clip: Path, instructions: Sequence[str], stages: str) -> str:
        """Post ``clip`` to ``/v1/edits``; returns the job id (the request must be accepted: 202)."""
        with clip.open("rb") as f:
            r = requests.post(self.base + "v1/edits", files={"clip": (clip.name, f, "video/mp4")},
                              data={"instructions": list(instructions), "stages": stages}, timeout=30)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def wait(self, job_id: str, until: tuple[str, ...] = ("done", "failed"), timeout: float = 60) -> dict[str, Any]:
        """Poll job ``job_id`` until its status is one of ``until``; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = requests.get(f"{self.base}v1/edits/{job_id}", timeout=10).json()
            if job["status"] in until:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not {until} after {timeout} s")

    def submit_and_wait(self, clip: Path, instructions: Sequence[str], stages: str,
                        timeout: float = 60) -> dict[str, Any]:
        """:meth:`submit`, then :meth:`wait` until the job is done or failed."""
        return self.wait(self.submit(clip, instructions, stages), timeout=timeout)


@pytest.fixture
def serve_app(ray_local: Any) -> Iterator[ServeApp]:
    """A :class:`ServeApp` on a free port; Serve is shut down after the test, the proxy too (the next module
    starts Serve on its own port)."""
    from ray import serve

    try:
        yield ServeApp()
    finally:
        serve.shutdown()
