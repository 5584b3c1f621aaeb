"""Helpers for report tests: serve a folder over loopback HTTP and measure a page in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: Loads report.html in a 1400 px wide iframe (same origin), waits for every <video> to load its first frame or
#: fail, and prints the measurements between RESULT and END.
HARNESS = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="report.html" style="width:1400px;height:900px;border:0"></iframe><pre id="out">pending</pre>
<script>
const f = document.getElementById("f");
f.addEventListener("load", async () => {
  const d = f.contentDocument;
  const vids = [...d.querySelectorAll("video")];
  await Promise.all(vids.map(v => new Promise(done => {
    if (v.readyState >= 2) return done();
    v.addEventListener("loadeddata", done); v.addEventListener("error", done); setTimeout(done, 20000);
    v.preload = "auto"; v.load();
  })));
  const r = {innerWidth: f.contentWindow.innerWidth, scrollWidth: d.scrollingElement.scrollWidth,
             clientWidth: d.scrollingElement.clientWidth,
             videos: vids.map(v => ({src: v.currentSrc, ready: v.readyState, width: v.videoWidth,
                                     error: v.error ? v.error.code : null}))};
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(r) + "END";
});
</script></body></html>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """``serve(folder)`` → the base URL of ``folder`` over a loopback http.server (stopped after the test)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 functools.partial(_QuietHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed; install it with `apt-get install -y chromium` (Debian/Ubuntu)")
    return exe


def _measure_report(run: Path, base_url: str, profile: Path) -> dict[str, Any]:
    """Open ``<run>/report.html`` (served at ``base_url``) in headless Chromium at a 1400 px viewport: page and
    scroll widths, and each video's ready state, width and error code after loading."""
    harness = run / "_harness.html"
    harness.write_text(HARNESS)
    try:
        cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1440,1000",
               "--virtual-time-budget=30000", "--dump-dom", base_url + harness.name]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    finally:
        harness.unlink()
    m = re.search(r"RESULT(.*?)END", res.stdout, re.S)
    assert m, f"no result from Chromium (rc={res.returncode}): {res.stdout[-1500:]} {res.stderr[-1500:]}"
    out: dict[str, Any] = json.loads(m.group(1))
    return out


@pytest.fixture
def measure_report() -> Callable[[Path, str, Path], dict[str, Any]]:
    """``measure_report(run, base_url, profile_dir)``: see :func:`_measure_report`."""
    return _measure_report
