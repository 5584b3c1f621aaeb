"""report.html from a fake run folder with real files; rendered in headless Chromium; terminal summary table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest

from lanepipe.errors import InputError
from lanepipe.io.video import encode
from lanepipe.lanes.instructions import parse_caption, parse_instruction
from lanepipe.viz.bev import bev_inset
from lanepipe.viz.report import format_table, summary_table, write_report

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
INSTR_OK, INSTR_FAIL = "double yellow solid", "single white dashed"


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    assert cv2.imwrite(str(path), bgr)


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _frame(h: int = 120, w: int = 200, road: tuple[int, int, int] = (90, 90, 95)) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = (110, 160, 230)
    img[h // 2:] = road
    img[h // 2:, w // 2 - 3: w // 2 + 3] = (230, 190, 40)
    return img


def _segment(run: Path, clip: str, ok: bool = True) -> dict[str, Any]:
    row = {"run_id": run.name, "clip": clip, "source": f"/data/{clip}.mp4", "stage": "segment",
           "backend": "grid", "status": "ok" if ok else "failed",
           "error": None if ok else "InputError: /data/x.mp4: expected a video file, found a zero-byte file",
           "error_type": None if ok else "InputError", "num_frames": 3 if ok else 0, "fps": 8.0 if ok else None,
           "width": 200 if ok else None, "height": 120 if ok else None, "road_fraction": 0.5 if ok else None}
    if ok:
        d = run / "segment" / clip
        mask = np.zeros((120, 200), np.uint8)
        mask[60:] = 255
        _png(d / "masks" / "00000.png", mask)
        _json(d / "meta.json", row)
        frames = np.stack([_frame()] * 3)
        raw = run / "videopainter" / "raw_videos" / clip / f"{clip}.0.mp4"
        raw.parent.mkdir(parents=True, exist_ok=True)
        encode(frames, str(raw), 8.0)
    return row


def _edit(run: Path, clip: str, instruction: str, verdict: str) -> dict[str, Any]:
    spec = parse_instruction(instruction)
    d = run / "edit" / clip / spec.slug
    _png(d / "first_frame.png", _frame(road=(60, 60, 64)))
    reasons = [] if verdict == "PASS" else ["left: expected dashed, saw solid"]
    _json(d / "qa.json", {"instruction": spec.to_text(), "caption": spec.caption(), "verifier": "lane_detector",
                          "max_iterations": 3, "final_verdict": verdict,
                          "iterations": [{"attempt": 0, "verdict": verdict, "reasons": reasons}]})
    (d / "edited.mp4").write_bytes(b"\x00")  # only linked, never decoded
    row = {"run_id": run.name, "clip": clip, "source": f"/data/{clip}.mp4", "stage": "edit", "backend": "procedural",
           "status": "ok", "error": None, "instruction": spec.to_text(), "caption": spec.caption(),
           "qa_verdict": verdict, "qa_iterations": 1}
    _json(d / "meta.json", row)
    return row


def _bev(path: Path, lateral: float) -> None:
    x = np.arange(1, 65) * 0.8
    traj = np.stack([x, np.zeros(64), np.zeros(64)], axis=1)
    edited = traj + np.array([0.0, lateral, 0.0])
    _png(path, bev_inset(None, traj, {"original": traj[None], "edited": edited[None]}))


def _evaluate(run: Path, clip: str, instruction: str, with_metrics: bool) -> None:
    """Two predictors. ``lane_keeping`` in the evaluate stage's own format (nested metrics, per-variant
    reasoning, meta/render markers, un-prefixed BEV); ``other`` in the flat format, with a prefixed BEV."""
    d = run / "evaluate" / clip / parse_instruction(instruction).slug
    metrics = ({"original": {"min_ade": 1.234, "min_fde": 2.5, "min_ade_1s": 0.3},
                "edited": {"min_ade": 1.5, "min_fde": 3.0, "min_ade_1s": 0.4}} if with_metrics
               else {"original": None, "edited": None})
    _json(d / "lane_keeping.json", {
        "metrics": metrics, "shift": {"ade": 0.42, "fde": 0.8, "max_lateral_offset": 0.91},
        "reasoning": {"original": ["Keep lane; <yellow> line left."], "edited": None}})
    _json(d / "lane_keeping.meta.json", {"status": "ok"})
    _json(d / "lane_keeping.render.json", {"status": "ok"})
    _bev(d / "bev.png", 0.5)
    flat: dict[str, Any] = {"shift": {"ade": 0.1, "max_lateral_offset": -0.2}, "reasoning": "flat reasoning"}
    if with_metrics:
        flat["metrics"] = {"minADE": 2.0, "minFDE_original": 4.0}
    _json(d / "other.json", flat)
    _bev(d / "other.bev.png", -2.0)


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "20261125T203000Z-abcd1234"
    rows = [_segment(run, "clipA"), _segment(run, "clipB", ok=False),
            _edit(run, "clipA", INSTR_OK, "PASS"), _edit(run, "clipA", INSTR_FAIL, "FAIL")]
    rows.append({"run_id": run.name, "clip": "clipB", "source": "/data/clipB.mp4", "stage": "edit",
                 "status": "failed", "error": "segment stage failed: zero-byte file", "instruction": INSTR_OK,
                 "caption": "road with double yellow solid lane markings"})
    rows.append({"run_id": run.name, "clip": "clipA", "source": "/data/clipA.mp4", "stage": "evaluate",
                 "status": "ok", "instruction": INSTR_FAIL, "predictor": "rows_only", "min_ade_original": 0.7,
                 "min_ade_edited": 0.9, "shift_ade": 0.05, "shift_max_lateral": 0.1})
    rows.append({"run_id": run.name, "clip": "clipA", "source": "/data/clipA.mp4", "stage": "render",
                 "status": "failed", "error": "OSError: disk full", "instruction": INSTR_OK,
                 "predictor": "lane_keeping"})
    _evaluate(run, "clipA", INSTR_OK, with_metrics=True)
    _evaluate(run, "clipA", INSTR_FAIL, with_metrics=False)
    pd.DataFrame(rows).to_parquet(run / "results.parquet", index=False)
    _json(run / "manifest.json", {"run_id": run.name, "created": "2026-11-25T20:30:00+00:00",
                                  "stages": {"segment": {"status": "partial", "items": 2, "ok": 1, "failed": 1,
                                                         "skipped": 0, "seconds": 1.5}}})
    return run


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.srcs.append(str(a["src"]))
        if tag == "a" and a.get("href") and not str(a["href"]).startswith("#"):
            self.hrefs.append(str(a["href"]))


def _parse(report: Path) -> _Images:
    p = _Images()
    p.feed(report.read_text())
    return p


def test_report_links_resolve_and_content(full_run: Path) -> None:
    url = write_report(str(full_run))
    report = Path(url)
    assert report == full_run / "report.html"
    page = _parse(report)
    assert len(page.srcs) >= 8  # original strip, mask, 2 edited frames, 4 BEV plots
    for src in page.srcs + page.hrefs:
        assert not src.startswith(("/", "data:", "file:")), src  # relative links only
        assert (full_run / src).is_file(), f"{src} does not resolve"
    assert all(s.startswith("report_assets/") for s in page.srcs)
    text = report.read_text()
    for expected in ("PASS", "FAIL", "1.234", "0.910", "left: expected dashed, saw solid", "zero-byte file",
                     "double yellow solid", "original: Keep lane; &lt;yellow&gt; line left.",  # escaped
                     "flat reasoning", "min_ade_1s"):
        assert expected in text, expected
    thumb = cv2.imread(str(full_run / "report_assets" / "clipA" / "mask.jpg"))
    assert thumb is not None and thumb.shape[:2] == (120, 200)
    assets = full_run / "report_assets" / "clipA" / "double-yellow-solid"
    # edited.mp4 here is not a video: its strip falls back to first_frame.png
    assert sorted(p.name for p in assets.iterdir()) == ["edited-00000.jpg", "lane_keeping_bev.png", "other_bev.png"]
    # the 3-frame original clip: start, middle and end
    assert sorted(p.name for p in (full_run / "report_assets" / "clipA").glob("original-*")) == [
        "original-00000.jpg", "original-00001.jpg", "original-00002.jpg"]
    assert "lane_keeping.meta" not in text and "lane_keeping.render" not in text


def test_report_in_headless_chromium(full_run: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(f"chromium is not installed; install it with `{CHROMIUM_INSTALL}` (Debian/Ubuntu)")
    report = Path(write_report(str(full_run)))
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
           report.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert shot.is_file(), f"no screenshot (rc={res.returncode}): {res.stderr[-2000:]}"
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1280)
    assert img.std() > 20, "screenshot is blank"
    # the embedded thumbnails were loaded: the sky blue of the test frames (BGR 230,160,110) is on the page
    sky = np.abs(img.astype(int) - [230, 160, 110]).max(axis=-1) < 12
    assert sky.sum() > 2000, "no thumbnail pixels in the screenshot"


def test_segment_only_run_and_summary_table(tmp_path: Path) -> None:
    run = tmp_path / "seg-only"
    pd.DataFrame([_segment(run, "clipA")]).to_parquet(run / "results.parquet", index=False)
    report = Path(write_report(str(run)))
    page = _parse(report)
    assert page.srcs and all((run / s).is_file() for s in page.srcs)
    assert "No edits in this run" in report.read_text()
    rows = summary_table(str(run))
    assert rows == [{"clip": "clipA", "segment": "ok", "instruction": None, "edit": None, "qa": None,
                     "predictor": None, "minADE_orig": None, "minADE_edit": None, "minFDE_orig": None,
                     "minFDE_edit": None, "shift_ade": None, "max_lateral_offset": None, "floor_ade": None,
                     "p_value": None, "error": None}]


def test_summary_table_full_run(full_run: Path) -> None:
    rows = summary_table(str(full_run))
    by = {(r["clip"], r["instruction"], r["predictor"]): r for r in rows}
    assert len(rows) == 6  # 2 instructions x 2 predictors on clipA (+1 from rows only), one failed on clipB
    ok = by[("clipA", INSTR_OK, "lane_keeping")]
    assert ok["qa"] == "PASS" and ok["minADE_orig"] == pytest.approx(1.234) and ok["minFDE_orig"] == 2.5
    assert ok["minADE_edit"] == 1.5 and ok["minFDE_edit"] == 3.0
    assert ok["shift_ade"] == pytest.approx(0.42) and ok["max_lateral_offset"] == pytest.approx(0.91)
    flat = by[("clipA", INSTR_OK, "other")]  # unsuffixed flat keys are the edited clip's
    assert flat["minADE_edit"] == 2.0 and flat["minFDE_orig"] == 4.0 and flat["minADE_orig"] is None
    fail = by[("clipA", INSTR_FAIL, "lane_keeping")]
    assert fail["qa"] == "FAIL" and fail["minADE_orig"] is None and fail["shift_ade"] == pytest.approx(0.42)
    from_rows = by[("clipA", INSTR_FAIL, "rows_only")]  # no JSON: values from results.parquet
    assert from_rows["minADE_orig"] == 0.7 and from_rows["minADE_edit"] == 0.9
    assert from_rows["shift_ade"] == 0.05 and from_rows["max_lateral_offset"] == 0.1
    assert ok["error"] == "render: OSError: disk full"
    b = by[("clipB", INSTR_OK, None)]
    assert b["segment"] == "failed" and b["edit"] == "failed" and "zero-byte" in b["error"]
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["clip", "segment", "instruction"]
    assert len(lines) == 2 + len(rows) and "1.234" in table and " - " in lines[-1]
    assert format_table([]) == "(no rows)"


def test_report_on_an_fsspec_url(full_run: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for f in full_run.rglob("*"):
        if f.is_file():
            fs.pipe_file(f"/runs/r1/{f.relative_to(full_run).as_posix()}", f.read_bytes())
    try:
        url = write_report("memory://runs/r1")
        assert url == "memory://runs/r1/report.html"
        text = fs.cat_file("/runs/r1/report.html").decode()
        assert "1.234" in text and fs.exists("/runs/r1/report_assets/clipA/original-00001.jpg")
        assert len(summary_table("memory://runs/r1")) == 6
    finally:
        fs.rm("/runs/r1", recursive=True)


def test_missing_run_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run folder"):
        write_report(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="run folder"):
        summary_table(str(tmp_path))


def test_report_fits_1400px_in_chromium(full_run: Path, serve: Callable[[Path], str],
                                        measure_report: Callable[[Path, str, Path], dict[str, Any]],
                                        tmp_path: Path) -> None:
    """Issue 12 item 20: the summary table (and the rest of the page) fits a 1400 px window, also with a long
    error message and a long source path."""
    clip = "drive_2026_11_25_route_0042_camera_front_wide_120fov_chunk_0003"  # no spaces nor hyphens to break at
    long_path = f"/mnt/datasets/physical_ai_av/camera_front_wide_120fov/recordings_2026_q4/{clip}.mp4"
    df = pd.read_parquet(full_run / "results.parquet")
    extra = {"run_id": full_run.name, "clip": clip, "source": long_path, "stage": "segment", "status": "failed",
             "error": f"InputError: {long_path}: expected a video that decodes to its end, found decoding broke at "
                      "frame 212 (t = 8.48 s) of the 300 frames the container announced: InvalidDataError: "
                      "[Errno 1094995529] Invalid data found when processing input; the file is truncated or "
                      "corrupt: fetch or encode it again",
             "instruction": None}
    pd.concat([df, pd.DataFrame([extra])], ignore_index=True).to_parquet(full_run / "results.parquet", index=False)
    write_report(str(full_run))
    r = measure_report(full_run, serve(full_run), tmp_path / "profile")
    assert r["innerWidth"] == 1400 and r["scrollWidth"] <= min(1400, r["clientWidth"]), r


@pytest.mark.parametrize(("instruction", "description"), [
    ("none@right", "road with no lane markings on the right boundary; left boundary unchanged"),
    ("none", "road with no lane markings on the left boundary; right boundary unchanged"),
    ("none@both", "road with no lane markings on the ego lane's boundaries; other lines unchanged"),
    ("double yellow solid", "road with double yellow solid lane markings on the left boundary; right boundary "
                            "unchanged"),
    ("single white dashed@both", "road with single white dashed lane markings on both boundaries"),
])
def test_partial_edits_are_described_truthfully(instruction: str, description: str) -> None:
    """Issue 12 item 20: `none@right` was captioned "road with no lane markings" while the yellow line stays.
    The canonical caption (the dataset filter parses it; the painter's prompt) stays as it is."""
    spec = parse_instruction(instruction)
    assert spec.describe() == description
    if not spec.is_removal:
        assert parse_caption(spec.caption()) == {"count": "single" if spec.count == 1 else "double",
                                                 "color": spec.color, "pattern": spec.pattern}
    else:
        assert spec.caption() == "road with no lane markings"


def test_report_describes_a_partial_edit(full_run: Path) -> None:
    _edit(full_run, "clipA", "none@right", "PASS")
    text = Path(write_report(str(full_run))).read_text()
    assert "road with no lane markings on the right boundary; left boundary unchanged" in text
    assert not re.search(r"road with no lane markings(?! on the right boundary)", text)
