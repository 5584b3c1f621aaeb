"""The edit stage through the pipeline: outputs, QA records, resume, lineage and per-item failures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.io.video import decode

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lanepipe.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), num_frames=10, width=640, height=360)


def _cfg(inputs: list[str], out: Path, *sets: str):
    return load_config(None, ["input.max_frames=8", *sets], base={"input": {"paths": inputs}, "output": str(out)})


def test_segment_and_edit_through_ray(ray_local, tmp_path: Path, sample_file: Path) -> None:
    cfg = _cfg([str(sample_file)], tmp_path, "stages=segment,edit", "run_id=r1",
               "edit.instructions=[single white dashed, preset:no-markings]", "edit.resources.concurrency=1")
    summary = pipeline.run(cfg)
    df = pd.read_parquet(Path(summary.url) / "results.parquet")
    assert list(df.stage) == ["segment", "edit", "edit"]
    edits = df[df.stage == "edit"]
    assert (edits.status == "ok").all(), edits.error.tolist()
    assert set(edits.instruction) == {"single white dashed", "none@both"}
    assert set(edits.qa_verdict) <= {"PASS", "FAIL"} and (edits.qa_iterations >= 1).all()
    src = decode(str(sample_file), max_frames=8)
    for slug in ("single-white-dashed", "none-at-both"):
        d = Path(summary.url) / "edit" / "sample" / slug
        out = decode(str(d / "edited.mp4"), target_fps=None)
        assert out.frames.shape == src.frames.shape
        import cv2

        first = cv2.imread(str(d / "first_frame.png"))
        assert first.shape == src.frames.shape[1:]
        qa = json.loads((d / "qa.json").read_text())
        assert qa["final_verdict"] == qa["iterations"][-1]["verdict"]
        assert all({"attempt", "verdict", "reasons", "params"} <= set(it) for it in qa["iterations"])
        lanes = json.loads((d / "lanes.json").read_text())
        assert len(lanes["frames"]) == 8 and lanes["caption"].startswith("road with")
    dashed = json.loads((Path(summary.url) / "edit/sample/single-white-dashed/lanes.json").read_text())
    lines = dashed["frames"][0]["lines"]
    assert lines and {ln["pattern"] for ln in lines} == {"dashed"} and {ln["color"] for ln in lines} == {"white"}

    again = pipeline.run(cfg)
    assert again.skipped == 3  # the segment row and both edits


def test_edit_from_run_records_bad_masks_and_completes_others(tmp_path: Path, sample_file: Path,
                                                              real_clip: Path) -> None:
    up = pipeline.run(_cfg([str(sample_file), str(real_clip)], tmp_path, "run_id=up", "input.max_frames=4"),
                      executor="sequential")
    assert [r["status"] for r in up.rows] == ["ok", "ok"]
    npz = Path(up.url) / "segment" / real_clip.stem / "all_masks.npz"
    with np.load(npz) as z:
        zeros = np.zeros_like(z["arr_0"])
    buf = io.BytesIO()
    np.savez_compressed(buf, zeros)
    npz.write_bytes(buf.getvalue())
    cfg = _cfg([], tmp_path, "stages=edit", "from_run=up", "run_id=down", "input.max_frames=4",
               "edit.instructions=[double yellow solid, single white solid@right]", "edit.qa.max_iterations=2")
    down = pipeline.run(cfg, executor="sequential")
    by = {(r["clip"], r["instruction"]): r for r in down.rows}
    assert all(r["stage"] == "edit" for r in down.rows) and len(by) == 4
    bad = by[(real_clip.stem, "double yellow solid")]
    assert bad["status"] == "failed" and "all-zero" in bad["error"]
    assert by[("sample", "double yellow solid")]["status"] == "ok"
    assert by[("sample", "single white solid@right")]["status"] == "ok"
    manifest = json.loads((Path(down.url) / "manifest.json").read_text())
    assert manifest["upstream_run_ids"] == ["up"] and manifest["stages"]["edit"]["failed"] == 2


def test_mask_shape_mismatch_is_a_recorded_failure(tmp_path: Path, sample_file: Path) -> None:
    up = pipeline.run(_cfg([str(sample_file)], tmp_path, "run_id=up2", "input.max_frames=4"), executor="sequential")
    npz = Path(up.url) / "segment" / "sample" / "all_masks.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, np.ones((3, 10, 10), np.uint8))
    npz.write_bytes(buf.getvalue())
    down = pipeline.run(_cfg([], tmp_path, "stages=edit", "from_run=up2", "input.max_frames=4"), executor="sequential")
    assert down.rows[0]["status"] == "failed" and "(T, H, W)" in down.rows[0]["error"]


def test_invalid_instruction_is_refused_before_running() -> None:
    from lanepipe.errors import ConfigError

    with pytest.raises(ConfigError, match="single\\|double"):
        load_config(None, ["edit.instructions=[triple red solid]"])
