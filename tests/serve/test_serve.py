"""The Ray Serve app over real HTTP on loopback: upload → poll → download, URL input, auth, limits, queue, paths.

Two apps share one Serve proxy on a free loopback port: ``open`` at ``/`` (no token, 1 MiB uploads, `url` allowed
under the sample clip's folder only) and ``locked`` at ``/locked`` (a token, a queue of one job, uploads only).
Jobs run the real pipeline on a 16-frame 320x180 sample clip with one QA attempt.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.ray

TOKEN = "s3cret-token"
MAX_UPLOAD = 2**20
BASE_CONFIG = {"input": {"max_frames": 16}, "edit": {"qa": {"max_iterations": 1}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    host: str  # http://127.0.0.1:PORT
    port: int
    open: str  # base URL of the open app, ending in /
    locked: str
    open_root: Path  # run roots on disk
    locked_root: Path
    clip_dir: Path  # the open app's one allowed `url` prefix


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lanepipe.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("serve_clip"), num_frames=16, width=320, height=180)


@pytest.fixture(scope="module")
def server(ray_local, tmp_path_factory: pytest.TempPathFactory, sample_clip: Path) -> Iterator[Server]:
    from ray import serve

    from lanepipe.serve.app import ServeSettings, start

    port = free_port()
    out = tmp_path_factory.mktemp("serve_runs")
    open_url = start(ServeSettings(output=str(out / "open"), replica_cpus=0, max_upload_bytes=MAX_UPLOAD,
                                   allow_url_prefixes=[str(sample_clip.parent)], base_config=BASE_CONFIG),
                     port=port, name="open", route_prefix="/")
    locked_url = start(ServeSettings(output=str(out / "locked"), token=TOKEN, max_queue=1, replica_cpus=0,
                                     base_config=BASE_CONFIG), port=port, name="locked", route_prefix="/locked")
    try:
        yield Server(f"http://127.0.0.1:{port}", port, open_url, locked_url, out / "open", out / "locked",
                     sample_clip.parent)
    finally:
        serve.shutdown()


def wait_done(status_url: str, headers: dict[str, str] | None = None, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(status_url, headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["status"] in ("done", "failed"):
            return job
        assert job["status"] in ("queued", "running")
        time.sleep(0.25)
    raise AssertionError(f"{status_url} not finished after {timeout} s")


def upload(base: str, clip: Path, instructions: list[str] | str, headers: dict[str, str] | None = None,
           **fields: Any) -> requests.Response:
    with clip.open("rb") as f:
        return requests.post(base + "v1/edits", files={"clip": (clip.name, f, "video/mp4")},
                             data={"instructions": instructions, **fields}, headers=headers, timeout=30)


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def done_job(server: Server, sample_clip: Path) -> dict[str, Any]:
    r = upload(server.open, sample_clip, ["preset:double-yellow-solid"])
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == r.json()["status_url"]
    return wait_done(server.host + r.json()["status_url"])


def test_upload_poll_done_links_download_real_mp4s(server: Server, done_job: dict[str, Any], tmp_path: Path) -> None:
    from lanepipe.io.video import probe

    job = done_job
    assert job["status"] == "done", job["error"]
    assert job["stages"] == ["segment", "edit", "evaluate", "render"]
    links = job["links"]
    assert set(links) >= {"original", "edited", "comparison", "metrics", "report"}
    for name in ("original", "edited", "comparison"):
        r = requests.get(server.host + links[name], timeout=10)
        assert r.status_code == 200, (name, r.text[:200])
        assert r.headers["content-type"] == "video/mp4"
        assert r.content[4:8] == b"ftyp"
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(r.content)
        info = probe(str(path))
        assert info.height == 180 and info.width in (320, 640), (name, info)  # comparison: side by side
    part = requests.get(server.host + links["edited"], headers={"Range": "bytes=0-99"}, timeout=10)
    assert part.status_code == 206 and len(part.content) == 100  # seekable in a <video>
    metrics = requests.get(server.host + links["metrics"], timeout=10).json()
    assert "shift" in metrics
    (edit,) = job["edits"]
    assert edit["instruction"] == "double yellow solid" and edit["qa_verdict"] in ("PASS", "FAIL")
    (pred,) = edit["predictions"]
    assert pred["predictor"] == "lane_keep" and isinstance(pred["shift_ade"], float)
    # The job id is the run id: its folder holds the upload, the manifest and the job record.
    run = server.open_root / job["id"]
    assert (run / "manifest.json").is_file() and (run / "serve_job.json").is_file()
    assert json.loads((run / "manifest.json").read_text())["run_id"] == job["id"]
    assert (run / "input" / "sample.mp4").is_file()


def test_url_input_with_stage_selection(server: Server, sample_clip: Path) -> None:
    r = requests.post(server.open + "v1/edits", timeout=30, json={
        "url": str(sample_clip), "instructions": ["single white dashed@right"], "stages": "segment,edit"})
    assert r.status_code == 202, r.text
    job = wait_done(server.host + r.json()["status_url"])
    assert job["status"] == "done", job["error"]
    assert job["stages"] == ["segment", "edit"] and job["source"] == str(sample_clip)
    assert job["links"]["comparison"] is None and job["links"]["metrics"] is None  # no evaluate/render
    r = requests.get(server.host + job["links"]["edited"], timeout=10)
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"


def test_token_required_when_set(server: Server, sample_clip: Path) -> None:
    r = upload(server.locked, sample_clip, "none")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["field"] == "Authorization" and r.json()["found"] == "none"
    r = upload(server.locked, sample_clip, "none", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["found"] == "a wrong token"
    r = requests.get(server.locked + "v1/edits/20261125T203000Z-1a2b3c4d-5e6f7a8b", timeout=10)
    assert r.status_code == 401  # status and files too, before anything else
    r = requests.get(server.locked + "v1/edits/20261125T203000Z-1a2b3c4d-5e6f7a8b",
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 404
    assert requests.get(server.locked + "v1/health", timeout=10).status_code == 200


def test_oversize_upload_is_413(server: Server) -> None:
    big = b"\0" * (2 * MAX_UPLOAD)
    r = requests.post(server.open + "v1/edits", files={"clip": ("big.mp4", big, "video/mp4")},
                      data={"instructions": "none"}, timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["field"] == "body" and str(MAX_UPLOAD) in r.json()["expected"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield (b'--xyz\r\nContent-Disposition: form-data; name="instructions"\r\n\r\nnone\r\n--xyz\r\n'
               b'Content-Disposition: form-data; name="clip"; filename="a.mp4"\r\nContent-Type: video/mp4\r\n\r\n')
        for _ in range(4):
            yield b"\0" * MAX_UPLOAD
        yield b"\r\n--xyz--\r\n"

    r = requests.post(server.open + "v1/edits", data=chunked(), timeout=30,
                      headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413, r.text


def test_wrong_types_say_field_expected_found(server: Server, tmp_path: Path) -> None:
    r = requests.post(server.open + "v1/edits", data=b"clip", headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 415 and r.json()["field"] == "Content-Type" and "text/plain" in r.json()["found"]
    r = requests.post(server.open + "v1/edits", files={"clip": ("notes.txt", b"hello", "text/plain")},
                      data={"instructions": "none"}, timeout=10)
    assert r.status_code == 415 and r.json()["field"] == "clip"
    assert "video" in r.json()["expected"] and "notes.txt" in r.json()["found"]
    r = requests.post(server.open + "v1/edits", files={"clip": ("fake.mp4", b"not a video\n" * 100, "video/mp4")},
                      data={"instructions": "none"}, timeout=10)
    assert r.status_code == 422 and r.json()["field"] == "clip", r.text
    assert "fake.mp4" in r.text and str(server.open_root) not in r.text  # no server paths in answers
    two = [("clip", ("a.mp4", b"x", "video/mp4")), ("clip", ("b.mp4", b"y", "video/mp4"))]
    r = requests.post(server.open + "v1/edits", files=two, data={"instructions": "none"}, timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "body" and "Too many files" in r.json()["found"]
    r = requests.post(server.open + "v1/edits", data={"url": "x.mp4", "instructions": "none", "colour": "red"},
                      timeout=10)
    assert r.status_code == 422 and "colour" in r.json()["found"]
    r = requests.post(server.open + "v1/edits", json=["none"], timeout=10)
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = requests.post(server.open + "v1/edits", json={"instructions": ["none"]}, timeout=10)
    assert r.status_code == 422 and r.json()["field"] == "clip/url" and r.json()["found"] == "neither"
    r = requests.post(server.open + "v1/edits", json={"url": str(tmp_path / "missing.mp4"), "instructions": "none"},
                      timeout=10)  # outside the allowed prefixes: the one refusal, whether the path exists or not
    assert r.status_code == 403 and r.json()["field"] == "url"
    assert r.json()["found"] == "a url this server does not serve"
    allowed_missing = {"url": str(server.clip_dir / "missing.mp4"), "instructions": "none"}
    r = requests.post(server.open + "v1/edits", json=allowed_missing, timeout=10)
    assert r.status_code == 422 and r.json()["field"] == "url" and "no file" in r.json()["found"]
    r = requests.post(server.open + "v1/edits", json={"url": "http://127.0.0.1:9/x.mp4", "instructions": "none"},
                      timeout=10)
    assert r.status_code == 422 and r.json()["found"] == "scheme 'http'"


def test_bad_instruction_and_options_are_422(server: Server, sample_clip: Path) -> None:
    r = upload(server.open, sample_clip, "double purple zigzag")
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == "instructions" and "double purple zigzag" in body["found"]
    for form in ("{single|double} {white|yellow} {solid|dashed}", "double yellow solid-dashed", "@both",
                 "preset:NAME", "passing-zone"):
        assert form in body["expected"]
    r = upload(server.open, sample_clip, ["preset:double-yellow-solid", "double  yellow solid@left"])
    assert r.status_code == 422 and r.json()["expected"] == "distinct edits"
    r = upload(server.open, sample_clip, "preset:zebra")
    assert r.status_code == 422 and "no-ego-lane-markings" in r.json()["expected"]
    r = upload(server.open, sample_clip, ["none", ""], predictors="mypkg.planner:Planner")
    assert r.status_code == 422 and r.json()["field"] == "predictors" and "lane_keep" in r.json()["expected"]
    r = upload(server.open, sample_clip, "none", stages="edit,render")
    assert r.status_code == 422 and r.json()["field"] == "stages"
    assert not list(server.open_root.glob("*/input/fake.mp4"))  # refused uploads leave nothing behind


def test_queue_full_is_503_with_retry_after(server: Server, sample_clip: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = upload(server.locked, sample_clip, "preset:single-white-solid", headers=auth)
    assert first.status_code == 202, first.text
    second = upload(server.locked, sample_clip, "preset:single-white-solid", headers=auth)
    assert second.status_code == 503, second.text
    assert int(second.headers["Retry-After"]) >= 1
    assert second.json()["field"] == "queue" and "retry after" in second.json()["detail"]
    job = wait_done(server.host + first.json()["status_url"], headers=auth)
    assert job["status"] == "done", job["error"]
    health = requests.get(server.locked + "v1/health", timeout=10).json()
    assert health == {"status": "ok", "queued": 0, "running": 0, "max_queue": 1}
    again = upload(server.locked, sample_clip, "preset:no-ego-lane-markings", headers=auth)  # the slot is free again
    assert again.status_code == 202, again.text
    assert wait_done(server.host + again.json()["status_url"], headers=auth)["status"] == "done"


def test_path_traversal_is_refused(server: Server, done_job: dict[str, Any], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    run = server.open_root / done_job["id"]
    (run / "escape.txt").symlink_to(secret)
    files = f"/v1/edits/{done_job['id']}/files/"
    up = "../" * 12
    for path in (files + up + "etc/passwd", files + "%2e%2e/%2e%2e/" + str(secret).lstrip("/"),
                 files + "edit/..%2F..%2F..%2Fsecret.txt", files + "/" + str(secret).lstrip("/"),
                 files + "%2F" + str(secret).lstrip("/"), files + "escape.txt", files + "..%5c..%5csecret.txt"):
        status, body = raw_get(server.port, path)
        assert status in (403, 404), (path, status, body[:200])
        assert b"TOP-SECRET" not in body and b"root:" not in body
    status, _ = raw_get(server.port, files + "escape.txt")
    assert status == 403  # a link that leaves the run folder
    status, _ = raw_get(server.port, f"/v1/edits/..%2F..%2F{secret.parent.name}/files/secret.txt")
    assert status == 404
    status, _ = raw_get(server.port, files + "manifest.json")
    assert status == 200


def test_job_queue_bounds_and_restart_without_http(tmp_path: Path) -> None:
    """The HTTP-free queue: slots bound queued + running jobs; a record left running by a dead server reads failed."""
    import threading

    from lanepipe.config import load_config
    from lanepipe.serve.jobs import Job, JobQueue
    from lanepipe.serve.settings import ServeSettings

    release = threading.Event()

    def runner(cfg) -> SimpleNamespace:
        release.wait(10)
        return SimpleNamespace(rows=[])  # a RunSummary with no rows

    q = JobQueue(ServeSettings(output=str(tmp_path), max_queue=2), runner=runner)
    assert q.reserve() and q.reserve() and not q.reserve()
    q.release()
    cfg = load_config(None, [], base={"output": str(tmp_path)})
    job = Job(id=q.new_id(cfg), status="queued", created="now", source="x.mp4", instructions=["none"],
              stages=["segment"], predictors=["lane_keep"], input_name="")
    q.submit(job, cfg)
    record = tmp_path / job.id / "serve_job.json"
    deadline = time.monotonic() + 10
    while json.loads(record.read_text())["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert q.counts() == {"queued": 0, "running": 1, "max_queue": 2}
    assert 1 <= q.retry_after() <= 30  # default mean job time minus the running job's age
    # A new server process (a fresh queue on the same root) reads the record left "running" as failed.
    assert "restarted" in (JobQueue(ServeSettings(output=str(tmp_path))).get(job.id).error or "")
    release.set()
    while q.get(job.id).status == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert q.get(job.id).status == "done" and q.counts()["running"] == 0
    assert q.reserve() and q.reserve() and not q.reserve()  # both slots free again
    q.shutdown()


# ------------------------------------------------------------------------------- hardening (issue 12, items 10-12)


def job_dirs(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def test_url_outside_allowed_prefixes_gets_one_uniform_answer(server: Server, sample_clip: Path,
                                                              tmp_path: Path) -> None:
    """Item 10: no probing of the file system through `url`: every location outside the allowed prefixes (missing,
    a folder, a secret, `..` escapes, a look-alike prefix, a link out, buckets) gets the same status and body."""
    allowed = server.clip_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "clip.mp4").write_bytes(sample_clip.read_bytes())  # a real video outside the allowed folder
    evil = allowed.parent / f"{allowed.name}-evil"
    evil.mkdir(exist_ok=True)
    (evil / "clip.mp4").write_bytes(sample_clip.read_bytes())
    link = allowed / "link-out.mp4"
    if not link.is_symlink():
        link.symlink_to(outside / "clip.mp4")
    rel_up = "../" * len(allowed.parts)
    urls = ["/etc/shadow", "/root", "/etc", str(tmp_path / "missing.mp4"), str(outside / "clip.mp4"),
            f"{allowed}/../{evil.name}/clip.mp4", f"{allowed}/{rel_up}etc/passwd", str(evil / "clip.mp4"),
            str(link), f"file://{outside}/clip.mp4", "file:///etc/shadow", "sample.mp4", f"{allowed}/../",
            "s3://bucket/clip.mp4", "gs://bucket/clip.mp4", "s3://bucket/../etc/clip.mp4"]
    before = job_dirs(server.open_root)
    answers = set()
    for url in urls:
        r = requests.post(server.open + "v1/edits", json={"url": url, "instructions": "none"}, timeout=30)
        answers.add((r.status_code, r.content))
        assert r.status_code == 403, (url, r.status_code, r.text)
    assert len(answers) == 1, answers  # one status, one body, whatever the path is
    (status, body), = answers
    assert json.loads(body) == {"detail": json.loads(body)["detail"], "field": "url",
                                "expected": json.loads(body)["expected"], "found": "a url this server does not serve"}
    assert job_dirs(server.open_root) == before
    # No prefix allowed (the default): uploads only, even for the sample clip itself.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(server.locked + "v1/edits", json={"url": str(sample_clip), "instructions": "none"},
                      headers=auth, timeout=30)
    assert (r.status_code, r.content) == (status, body)


def test_url_prefix_matching_is_on_normalised_paths() -> None:
    """Item 10 without HTTP: prefixes and urls are compared segment by segment after normalisation."""
    from lanepipe.serve.ingress import check_url
    from lanepipe.serve.settings import HTTPProblemError, ServeSettings

    s = ServeSettings(allow_url_prefixes=["/data/clips/", "s3://bucket/videos", "/data/./more/../x"])
    assert s.allow_url_prefixes == ["/data/clips", "s3://bucket/videos", "/data/x"]
    prefixes, schemes = s.url_prefixes(), s.url_schemes
    assert check_url("/data/clips/a.mp4", prefixes, schemes) == "/data/clips/a.mp4"
    assert check_url("file:///data/clips/./b/../a.mp4", prefixes, schemes) == "/data/clips/a.mp4"
    assert check_url("s3://bucket/videos/x/a.mp4", prefixes, schemes) == "s3://bucket/videos/x/a.mp4"
    for bad in ("/data/clips-evil/a.mp4", "/data/clips/../secret.mp4", "/data/clipsa.mp4", "/data",
                "s3://bucket/videos-evil/a.mp4", "s3://bucket/videos/../other/a.mp4", "s3://other/videos/a.mp4",
                "gs://bucket/videos/a.mp4", "clips/a.mp4", "/data/clips\x00/a.mp4",
                "s3://bucket/videos/a.mp4::file:///etc/shadow", "/data/clips/a.mp4::/etc/shadow"):
        with pytest.raises(HTTPProblemError) as e:
            check_url(bad, prefixes, schemes)
        assert (e.value.status, e.value.found) == (403, "a url this server does not serve"), bad
    with pytest.raises(HTTPProblemError):
        check_url("/data/clips/a.mp4", ServeSettings().url_prefixes(), schemes)  # default: uploads only
    assert ServeSettings(allow_url_prefixes=["rel/dir"]).allow_url_prefixes == [str(Path("rel/dir").resolve())]
    with pytest.raises(ValueError, match="allow_url_prefixes"):
        ServeSettings(allow_url_prefixes=["s3://"])


def test_serve_cli_has_allow_url_prefix() -> None:
    from typer.testing import CliRunner

    from lanepipe.cli import app

    out = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    assert "--allow-url-prefix" in out


@pytest.fixture
def s3_app(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int, int]]:
    """A third app at ``/s3`` allowed ``s3://bucket``, whose storage endpoint is a loopback port; yields (base URL,
    a port that refuses connections, a port that accepts and never answers)."""
    from ray import serve

    from lanepipe.serve.app import ServeSettings, start

    closed = free_port()  # nothing listens there: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # the kernel accepts connections; nobody ever reads or answers
    endpoint = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1/",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    for k, v in endpoint.items():
        monkeypatch.setenv(k, v)
    # a replica reads its storage endpoint from its environment: one app per endpoint
    apps = []
    try:
        for name, port in (("s3refused", closed), ("s3silent", int(silent.getsockname()[1]))):
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
            start(ServeSettings(output=str(server.open_root.parent / name), replica_cpus=0,
                                allow_url_prefixes=["s3://bucket"], url_connect_timeout_s=1.0,
                                url_read_timeout_s=1.5, url_attempts=2, base_config=BASE_CONFIG),
                  port=server.port, name=name, route_prefix=f"/{name}")
            apps.append(name)
        yield server.host, closed, int(silent.getsockname()[1])
    finally:
        for name in apps:
            serve.delete(name)
        silent.close()


def test_unreachable_s3_url_is_json_502_or_504_in_bounded_time(s3_app: tuple[str, int, int]) -> None:
    """Item 11: an s3:// url whose endpoint refuses (502) or never answers (504): the documented JSON body, fast."""
    host, _, _ = s3_app
    for name, status, cause in (("s3refused", 502, "refused"), ("s3silent", 504, "no answer")):
        t = time.monotonic()
        r = requests.post(f"{host}/{name}/v1/edits", json={"url": "s3://bucket/clip.mp4", "instructions": "none"},
                          timeout=60)
        took = time.monotonic() - t
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert set(body) == {"detail", "field", "expected", "found"} and body["field"] == "url"
        assert cause in body["found"], body
        assert took < 9.0, (name, took)  # connect/read timeouts and two attempts, not the client's 11 s default
        assert "127.0.0.1" not in r.text  # the storage endpoint's address is the server's business


def _storage_fixtures() -> Any:
    """tests/storage/conftest.py as a module (SeaweedFS, storage_env_for): its fixtures are not visible here."""
    from lanepipe.testing import load_script

    # registered: its dataclasses look their module up
    return load_script("tests/storage/conftest.py", "lanepipe_storage_fixtures", register=True)


def test_allowed_s3_url_on_a_real_s3_is_accepted(server: Server, sample_clip: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Items 10/11: the bounded check reads a real S3 (SeaweedFS on loopback): an allowed object is queued and
    edited; a missing one under the prefix is a 422, another bucket the uniform 403."""
    from ray import serve

    from lanepipe.serve.app import ServeSettings, start

    fx = _storage_fixtures()
    weed = fx.SeaweedFS(tmp_path / "seaweedfs")
    try:
        weed.start()
        fs = weed.client()
        fs.mkdir("clips")
        fs.put_file(str(sample_clip), "clips/ok/sample.mp4")
        for k, v in fx.storage_env_for(tmp_path, weed.endpoint).items():
            monkeypatch.setenv(k, v)
        start(ServeSettings(output=str(server.open_root.parent / "s3ok"), replica_cpus=0,
                            allow_url_prefixes=["s3://clips/ok"], base_config=BASE_CONFIG),
              port=server.port, name="s3ok", route_prefix="/s3ok")
        try:
            base = f"{server.host}/s3ok/v1/edits"
            r = requests.post(base, json={"url": "s3://clips/ok/sample.mp4", "instructions": "none",
                                          "stages": "segment,edit"}, timeout=60)
            assert r.status_code == 202, r.text
            job = wait_done(server.host + r.json()["status_url"])
            assert job["status"] == "done", job["error"]
            assert job["source"] == "s3://clips/ok/sample.mp4"
            r = requests.post(base, json={"url": "s3://clips/ok/missing.mp4", "instructions": "none"}, timeout=60)
            assert r.status_code == 422 and "no object" in r.json()["found"], r.text
            r = requests.post(base, json={"url": "s3://clips/other.mp4", "instructions": "none"}, timeout=60)
            assert r.status_code == 403, r.text
        finally:
            serve.delete("s3ok")
    finally:
        weed.close()


def png_bytes() -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.full((90, 160, 3), 128, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def test_unusable_uploads_are_422_before_queueing(server: Server, tmp_path: Path) -> None:
    """Item 12: a one-frame clip or a PNG is refused at once (422 naming the client's file name), never queued."""
    import numpy as np

    from lanepipe.io.video import encode

    one = tmp_path / "one.mp4"
    encode(np.full((1, 90, 160, 3), 120, np.uint8), str(one), 8.0)
    cases = [("my one frame.mp4", one.read_bytes(), "1 decodable frame"), ("still.mp4", png_bytes(), "PNG image"),
             ("still.png", png_bytes(), "PNG image")]
    before = job_dirs(server.open_root)
    for name, data, found in cases:
        r = requests.post(server.open + "v1/edits", files={"clip": (name, data, "video/mp4")},
                          data={"instructions": "none"}, timeout=30)
        assert r.status_code == 422, (name, r.status_code, r.text)
        body = r.json()
        assert body["field"] == "clip" and name in body["found"] and found in body["found"], body
        assert str(server.open_root) not in r.text and "/tmp" not in r.text, r.text
    assert job_dirs(server.open_root) == before  # nothing queued, nothing left behind


def test_long_instruction_is_refused_and_never_echoed_in_full(server: Server, sample_clip: Path) -> None:
    """Item 12: a huge instruction gets a short 422 (length cap) that says the echo was cut."""
    huge = "double yellow solid " + "z" * 500_000
    r = requests.post(server.open + "v1/edits", json={"url": str(sample_clip), "instructions": [huge]}, timeout=30)
    assert r.status_code == 422 and r.json()["field"] == "instructions", r.text[:300]
    assert "at most 200 characters" in r.json()["expected"]
    assert len(r.content) < 2000 and "cut" in r.json()["found"] and str(len(huge)) in r.json()["found"]
    r = upload(server.open, sample_clip, ["purple " * 25])  # under the cap, unparsable: echoed in full once
    assert r.status_code == 422 and len(r.content) < 2000
    r = requests.get(server.open + "v1/edits/" + "x" * 5000, timeout=10)  # a huge job id is not mirrored either
    assert r.status_code == 404 and len(r.content) < 2000 and "cut" in r.json()["found"]


def test_answers_hide_server_paths_versions_and_commit(server: Server, done_job: dict[str, Any]) -> None:
    """Item 12: job JSON, served files and the page name no server path, package versions or git commit."""
    import subprocess

    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    files = f"{server.host}/v1/edits/{done_job['id']}/files/"
    texts = {"job": requests.get(f"{server.host}/v1/edits/{done_job['id']}", timeout=10).text,
             "page": requests.get(server.open, timeout=10).text}
    for rel in ("manifest.json", "serve_job.json", "report.html"):
        r = requests.get(files + rel, timeout=10)
        assert r.status_code == 200, (rel, r.text[:200])
        texts[rel] = r.text
    for name, text in texts.items():
        assert str(server.open_root) not in text and str(server.open_root.resolve()) not in text, name
        assert not sha or sha not in text, name
    manifest = json.loads(texts["manifest.json"])
    assert "versions" not in manifest and "git_sha" not in manifest
    on_disk = (server.open_root / done_job["id"] / "report.html").read_text()
    for tag in ("</div>", "</script>", "</html>", 'src="'):  # scrubbing leaves the page intact
        assert texts["report.html"].count(tag) == on_disk.count(tag), tag
    assert manifest["run_id"] == done_job["id"]  # the rest of the manifest is still there
    assert requests.get(files + "results.parquet", timeout=10).status_code == 403  # it holds server paths


def test_job_errors_name_no_server_paths(tmp_path: Path) -> None:
    """Item 12 without HTTP: a failed job's error (the pipeline's message, a failed row) is scrubbed of paths."""
    from lanepipe.config import load_config
    from lanepipe.errors import InputError
    from lanepipe.serve.jobs import Job, JobQueue
    from lanepipe.serve.settings import ServeSettings

    def fail(cfg) -> SimpleNamespace:
        raise InputError(cfg.input.paths[0], "a video whose frames decode", "a decoding error at frame 7 in "
                         "/usr/lib/python3/site-packages/av/container.py")

    def bad_row(cfg) -> SimpleNamespace:
        return SimpleNamespace(rows=[{"stage": "segment", "clip": "c", "status": "failed",
                                      "error": f"{cfg.input.paths[0]}: broken (see {tmp_path}/elsewhere/log.txt)"}])

    for runner in (fail, bad_row):
        q = JobQueue(ServeSettings(output=str(tmp_path)), runner=runner)
        cfg = load_config(None, [], base={"output": str(tmp_path)})
        job = Job(id=q.new_id(cfg), status="queued", created="now", source="clip.mp4", instructions=["none"],
                  stages=["segment"], predictors=["lane_keep"], input_name="clip.mp4")
        cfg.input.paths = [str(tmp_path / job.id / "input" / "clip.mp4")]
        assert q.reserve()
        q.submit(job, cfg)
        record = tmp_path / job.id / "serve_job.json"
        deadline = time.monotonic() + 10
        while json.loads(record.read_text())["status"] != "failed" and time.monotonic() < deadline:
            time.sleep(0.01)
        error = q.get(job.id).error or ""
        assert "input/clip.mp4" in error, error
        assert str(tmp_path) not in error and "/usr/lib" not in error, error
        assert json.loads(record.read_text())["error"] == error  # the record on disk too
        q.shutdown()
