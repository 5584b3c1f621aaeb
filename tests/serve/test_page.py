"""The web page in headless Chromium: ``/?job=<id>`` shows the original and edited clips and the metrics.

A job is submitted over HTTP and finished first; Chromium (Debian's ``/usr/bin/chromium``, loopback only)
then loads the page twice: ``--dump-dom`` for the rendered DOM, ``--screenshot`` for a picture.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.ray

CHROMIUM = "/usr/bin/chromium"
BASE_CONFIG = {"input": {"max_frames": 16}, "edit": {"qa": {"max_iterations": 1}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(ray_local, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    from lanepipe.serve.app import ServeSettings, start

    out = tmp_path_factory.mktemp("page_runs")
    url = start(ServeSettings(output=str(out), replica_cpus=0, base_config=BASE_CONFIG), port=free_port(),
                name="page")
    try:
        yield url
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def job_id(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    from lanepipe.sample import write_sample

    clip = write_sample(tmp_path_factory.mktemp("page_clip"), num_frames=16, width=320, height=180)
    with clip.open("rb") as f:
        r = requests.post(app_url + "v1/edits", files={"clip": ("drive.mp4", f, "video/mp4")},
                          data={"instructions": "preset:passing-zone"}, timeout=30)
    assert r.status_code == 202, r.text
    jid: str = r.json()["id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = requests.get(app_url + f"v1/edits/{jid}", timeout=10).json()["status"]
        if status in ("done", "failed"):
            assert status == "done"
            return jid
        time.sleep(0.25)
    raise AssertionError(f"job {jid} not finished in 90 s")


def chromium(args: list[str], user_data: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on loopback only; on a timeout its whole process group is ended."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-domain-reliability", "--no-pings", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
           f"--user-data-dir={user_data}", "--virtual-time-budget=10000", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_page_shows_original_and_edited_side_by_side(app_url: str, job_id: str, tmp_path: Path) -> None:
    import cv2

    page = f"{app_url}?job={job_id}"
    dom = chromium(["--dump-dom", page], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    videos = {m.group(1): m.group(0) for m in re.finditer(r'<video id="(original|edited)"[^>]*>', html)}
    assert set(videos) == {"original", "edited"}, html[:2000]
    host = app_url.split("/", 3)[:3]
    for name, tag in videos.items():
        src = re.search(r' src="([^"]+)"', tag)
        assert src, f"<video id={name}> has no src: {tag}"
        r = requests.get("/".join(host) + src.group(1), timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", (name, src.group(1))
        poster = re.search(r' poster="([^"]+)"', tag)  # the first frame, shown before the clip loads
        assert poster, f"<video id={name}> has no poster: {tag}"
        r = requests.get("/".join(host) + poster.group(1), timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/"), (name, poster.group(1))
    assert re.search(r'<span id="status"[^>]*class="done"[^>]*>done</span>', html), html[:3000]
    table = re.search(r'<table id="metrics">.*?</table>', html, re.S)
    assert table and "double yellow solid-dashed" in table.group(0) and "lane_keep" in table.group(0)

    png = tmp_path / "page.png"
    shot = chromium([f"--screenshot={png}", "--window-size=1280,900", page], tmp_path / "profile-shot")
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (900, 1280)
    # The two <video> boxes (below the form) show frames (posters or the clips), not empty black boxes.
    videos_band = img[430:640, 60:1210]
    assert float(videos_band.mean()) > 60, float(videos_band.mean())
