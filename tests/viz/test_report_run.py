"""The report of a real run (segment → edit → evaluate → render on the synthetic sample, sequential executor):
stage table from the final manifest, inline players that resolve and play in headless Chromium, start/middle/end
thumbnails, a BEV plot whose curves all show, a summary that fits a 1400 px window and true captions."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.viz.bev import GT_COLOR, PREDICTION_COLORS

NUM_FRAMES = 24
INSTRUCTION = "none@right"
SLUG = "none-at-right"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lanepipe.sample import write_sample

    base = tmp_path_factory.mktemp("report-run")
    sample = write_sample(base / "sample", num_frames=NUM_FRAMES, width=640, height=360)
    cfg = load_config(None, ["stages=all", "run_id=rep", f"edit.instructions=[{INSTRUCTION}]",
                             "edit.qa.max_iterations=1"],
                      base={"input": {"paths": [str(sample)]}, "output": str(base / "runs")})
    summary = pipeline.run(cfg, executor="sequential")
    assert all(r["status"] == "ok" for r in summary.rows), [r.get("error") for r in summary.rows]
    return Path(summary.url)


class _Page(HTMLParser):
    """Tables (rows of cell texts), <video> sources and <img> attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.videos: list[dict[str, str | None]] = []
        self.imgs: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None
        self._video: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "video":
            self._video = dict(a)
            self.videos.append(self._video)
        elif tag == "source" and self._video is not None and not self._video.get("src"):
            self._video["src"] = a.get("src")
        elif tag == "img":
            self.imgs.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "video":
            self._video = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _page(run: Path) -> _Page:
    p = _Page()
    p.feed((run / "report.html").read_text())
    return p


def test_report_written_by_run_shows_the_final_stage_status(run_dir: Path) -> None:
    """Issue 12 item 14: the report of `lanepipe run` showed every stage as "running" with no counts."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stage_table = next(t for t in _page(run_dir).tables if t and t[0][:2] == ["stage", "status"])
    header, body = stage_table[0], {row[0]: dict(zip(stage_table[0], row, strict=True)) for row in stage_table[1:]}
    assert "items" in header and "ok" in header
    assert set(body) == {"segment", "edit", "evaluate", "render"}
    for name, st in manifest["stages"].items():
        assert st["status"] == "done"
        assert body[name]["status"] == st["status"], (name, body[name])
        assert body[name]["items"] == str(st["items"]) == "1" and body[name]["ok"] == "1"
    assert manifest.get("report", "").endswith("report.html")


def test_report_players_resolve_inside_the_run(run_dir: Path, serve: Callable[[Path], str]) -> None:
    """Issue 12 item 20: inline players for the original, edited and comparison videos."""
    served = serve(run_dir)
    videos = _page(run_dir).videos
    srcs = [str(v.get("src")) for v in videos]
    assert all("controls" in v for v in videos), videos
    for name in ("videopainter/raw_videos/sample/sample.0.mp4", f"edit/sample/{SLUG}/edited.mp4",
                 f"evaluate/sample/{SLUG}/comparison.mp4"):
        assert name in srcs, (name, srcs)
    for src in srcs:
        assert not src.startswith(("/", "file:", "http")) and ".." not in src.split("/"), src
        assert (run_dir / src).resolve().is_relative_to(run_dir.resolve()), src
        with urllib.request.urlopen(served + src, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "video/mp4", src


def test_report_thumbnails_from_start_middle_and_end(run_dir: Path) -> None:
    """Issue 12 item 20: frame 0 alone hides mid-clip defects; each clip strip shows start, middle and end."""
    imgs = _page(run_dir).imgs
    strips: dict[str, list[int]] = {}
    seen: set[tuple[str, str]] = set()  # the original strip is shown again next to each edit's
    for a in imgs:
        key = (str(a.get("data-strip")), str(a.get("src")))
        if a.get("data-frame") is not None and key not in seen:
            seen.add(key)
            strips.setdefault(key[0], []).append(int(str(a["data-frame"])))
    assert set(strips) >= {"sample/original", f"sample/{SLUG}/edited"}, strips
    for name, frames in strips.items():
        assert len(frames) == 3, (name, frames)
        assert frames[0] == 0 and frames[2] == NUM_FRAMES - 1 and abs(frames[1] - (NUM_FRAMES - 1) / 2) <= 1, frames
    for a in imgs:
        assert (run_dir / str(a["src"])).is_file(), a
    # the three thumbnails are different frames (the sample's ego moves)
    files = [cv2.imread(str(run_dir / src)) for strip, src in sorted(seen) if strip == "sample/original"]
    assert len(files) == 3 and all(f is not None for f in files)
    assert np.abs(files[0].astype(int) - files[2].astype(int)).mean() > 1.0


def _colour_pixels(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    bgr = np.array(rgb[::-1])
    return int((np.abs(img.astype(int) - bgr).max(axis=-1) <= tol).sum())


def test_bev_plot_shows_every_curve(run_dir: Path) -> None:
    """Issue 12 item 20: on the sample the original and edited predictions nearly coincide with the ground
    truth; each of the three must still be visible (the edited one used to hide the original, the ground truth
    both)."""
    img = cv2.imread(str(run_dir / "evaluate" / "sample" / SLUG / "bev.png"))
    assert img is not None
    h, w = img.shape[:2]
    plot = img.copy()
    plot[: h // 4, w // 2:] = 0  # leave out the legend (top right)
    counts = {name: _colour_pixels(plot, rgb) for name, rgb in
              (("ground truth", GT_COLOR), ("original", PREDICTION_COLORS[0]), ("edited", PREDICTION_COLORS[1]))}
    assert all(n >= 150 for n in counts.values()), counts


def test_report_in_chromium_plays_videos_and_fits_1400px(
        run_dir: Path, serve: Callable[[Path], str], measure_report: Callable[[Path, str, Path], dict[str, Any]],
        tmp_path: Path) -> None:
    """Issue 12 item 20: the videos decode in Chromium and the page fits a 1400 px window."""
    r = measure_report(run_dir, serve(run_dir), tmp_path / "profile")
    assert r["innerWidth"] == 1400 and r["scrollWidth"] <= min(1400, r["clientWidth"]), r
    assert len(r["videos"]) >= 3, r
    for v in r["videos"]:
        assert v["error"] is None and v["ready"] >= 2 and v["width"] > 0, v


def test_partial_edit_caption_is_true(run_dir: Path) -> None:
    """Issue 12 item 20: `none@right` removes only the right boundary; the report must not say the road has no
    lane markings."""
    text = (run_dir / "report.html").read_text()
    assert "road with no lane markings on the right boundary; left boundary unchanged" in text
    assert not re.search(r"road with no lane markings(?! on the right boundary)", text)
