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
               "edit.instructions=[single white dashed, preset:no-ego-lane-markings]", "edit.resources.concurrency=1")
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
        assert all({"attempt", "verdict", "reasons", "params", "checks"} <= set(it) for it in qa["iterations"])
        assert {c["check"] for c in qa["iterations"][-1]["checks"]} >= {"target", "remnants", "erase_band"}
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


# ------------------------------------------------------------------------------------------- generative backend

GEN = ["edit.backend=flux_cogvideox", "edit.preset=tiny-random"]


def _road(run: Path, clip: str) -> np.ndarray:
    with np.load(run / "segment" / clip / "all_masks.npz") as z:
        return z["arr_0"] == 1


def test_generative_edit_cli_through_ray_with_qwen_judge_stops_at_the_cap(ray_local, tmp_path: Path,
                                                                         sample_file: Path) -> None:
    """``lanepipe run`` → Ray edit actor → FLUX (tiny) → Qwen judge (tiny: a malformed FAIL) twice → CogVideoX."""
    import cv2
    from typer.testing import CliRunner

    from lanepipe.cli import app
    from lanepipe.verify.base import MALFORMED

    sets = [*GEN, "verify.backend=qwen_vl", "edit.qa.max_iterations=2", "input.max_frames=8",
            "edit.instructions=[double yellow solid]"]
    res = CliRunner().invoke(app, ["run", "--stages", "segment,edit", "-i", str(sample_file), "-o", str(tmp_path),
                                   "--run-id", "gen", *[a for s in sets for a in ("--set", s)]])
    assert res.exit_code == 0, res.output
    run = tmp_path / "gen"
    df = pd.read_parquet(run / "results.parquet")
    row = df[df.stage == "edit"].iloc[0]
    assert row.status == "ok", row.error
    assert (row.backend, row.qa_verdict, row.qa_iterations) == ("flux_cogvideox", "FAIL", 2)
    diag = json.loads(row.geometry)
    assert diag["backend"] == "flux_cogvideox" and diag["preset"] == "tiny-random" and diag["model_size"] == [64, 48]
    assert diag["qa_attempts"] == 2 and diag["judge"] == "qwen_vl" and diag["windows"] == 1
    assert set(diag["timing_s"]) >= {"flux", "judge", "propagate", "composite"}

    d = run / "edit" / "sample" / "double-yellow-solid"
    src = decode(str(sample_file), target_fps=8.0, max_frames=8)
    road = _road(run, "sample")
    out = decode(str(d / "edited.mp4"), target_fps=None)
    assert out.frames.shape == src.frames.shape == (8, 360, 640, 3)
    first = cv2.cvtColor(cv2.imread(str(d / "first_frame.png")), cv2.COLOR_BGR2RGB)  # lossless
    np.testing.assert_array_equal(first[~road[0]], src.frames[0][~road[0]])
    assert (first[road[0]] != src.frames[0][road[0]]).any()
    diff = np.abs(out.frames.astype(np.int16) - src.frames.astype(np.int16)).mean(axis=-1)  # mp4: lossy
    assert diff[~road].mean() < 2.0 < 10.0 < diff[road].mean()

    qa = json.loads((d / "qa.json").read_text())
    assert (qa["backend"], qa["verifier"], qa["final_verdict"], qa["max_iterations"]) == (
        "flux_cogvideox", "qwen_vl", "FAIL", 2)
    its = qa["iterations"]
    assert [it["attempt"] for it in its] == [0, 1] and [it["seed"] for it in its] == [0, 1]
    for it in its:
        assert it["verdict"] == "FAIL" and it["reasons"][0].startswith(MALFORMED) and isinstance(it["raw"], str)
        assert it["prompt"].startswith("road with double yellow solid lane markings")
        failed = {c["check"] for c in it["checks"] if c["status"] == "fail"}  # noise is no plausible edit
        assert "target" in failed and failed & {"unnamed_unchanged", "erase_band", "yellow_hue", "yellow_chroma"}
    assert qa["prompt"] == its[-1]["prompt"] == diag["prompt"]
    lanes = json.loads((d / "lanes.json").read_text())
    assert [f["lines"] for f in lanes["frames"]] == [[]] * 8


def test_generative_edit_with_lane_detector_judge_stops_on_pass(tmp_path: Path, sample_file: Path) -> None:
    """The classical verifier judges each generated first frame; the loop stops at the first PASS (a removal of
    the left boundary: the tiny model's noise shows no line there for seed 0) and propagates that frame. The checks
    against the original are off here: the tiny model's noise changes every boundary, which they FAIL (see the
    Qwen test above); this test is about the loop stopping on the verifier's PASS."""
    cfg = _cfg([str(sample_file)], tmp_path, "stages=segment,edit", "run_id=pass", *GEN, "input.max_frames=4",
               "edit.instructions=[none]", "edit.qa.max_iterations=4", "edit.qa.checks.enabled=false")
    summary = pipeline.run(cfg, executor="sequential")
    row = next(r for r in summary.rows if r["stage"] == "edit")
    assert row["status"] == "ok", row["error"]
    d = Path(summary.url) / "edit/sample/none"
    qa = json.loads((d / "qa.json").read_text())
    its = qa["iterations"]
    assert row["qa_verdict"] == qa["final_verdict"] == "PASS" and row["qa_iterations"] == len(its) < 4
    assert [it["verdict"] for it in its] == ["FAIL"] * (len(its) - 1) + ["PASS"]
    assert qa["verifier"] == "lane_detector" and its[-1]["reasons"] == [] and its[-1]["revised_caption"] is None
    assert all(it["prompt"] == "road with no lane markings" for it in its)  # no caption: only the seed moves
    assert [it["seed"] for it in its] == list(range(len(its)))
    seen = json.loads(its[-1]["raw"])
    assert seen["verifier"] == "lane_detector" and "left" in seen
    assert json.loads(row["geometry"])["seed"] == its[-1]["seed"]  # the passing frame was propagated
    out = decode(str(d / "edited.mp4"), target_fps=None)
    assert out.num_frames == 4


def test_procedural_painter_with_qwen_judge() -> None:
    """qwen_vl with the procedural painter: the judge sees frame 0, its reasons steer the paint knobs."""
    from lanepipe.edit.procedural import ProceduralPainter
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.sample import render_sample
    from lanepipe.stages.edit import qa_edit
    from lanepipe.types import RoadMasks
    from lanepipe.verify.config import QwenJudgeConfig
    from lanepipe.verify.qwen_vl import QwenJudge

    s = render_sample(num_frames=2, width=160, height=96)
    clip, masks = s.to_clip(), RoadMasks(s.road_masks, "gt")
    out = qa_edit(ProceduralPainter(), QwenJudge(QwenJudgeConfig(preset="tiny-random")), clip, masks,
                  parse_instruction("single white dashed"), max_iterations=2)
    assert [it["verdict"] for it in out.iterations] == ["FAIL", "FAIL"] and not out.passed
    assert out.iterations[0]["params"] != out.iterations[1]["params"]  # the knobs moved
    assert all(it["raw"] is not None and "seen" not in it for it in out.iterations)
    assert out.result.frames.shape == clip.frames.shape


def test_next_prompt_keeps_the_instruction_and_takes_the_details() -> None:
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.stages.edit import next_prompt

    spec = parse_instruction("double yellow solid")
    canon = spec.caption()
    assert next_prompt(spec, None, canon) == canon
    assert next_prompt(spec, "  ", "x") == "x"
    assert next_prompt(spec, f"{canon}, crisp fresh paint", canon) == f"{canon}, crisp fresh paint"
    assert next_prompt(spec, "worn asphalt at dusk", canon) == f"{canon}, worn asphalt at dusk"
    # a judge caption naming other markings does not change the instruction
    assert next_prompt(spec, "road with single white dashed lane markings, wet", canon) == f"{canon}, wet"
    assert next_prompt(spec, "road with double yellow solid lane markings", "old") == canon


def test_generative_config_keys_and_errors() -> None:
    from lanepipe.errors import ConfigError
    from lanepipe.stages.edit import judge_config

    cfg = load_config(None, [*GEN, "verify.backend=qwen_vl", "verify.qwen_vl.max_new_tokens=8",
                             "edit.generative.latent_blend=false", "edit.generative.video_accel.attention=math"])
    g = cfg.edit.generative
    assert (g.preset, g.width, g.num_frames, g.flux_device, g.latent_blend, g.video_accel.attention) == (
        "tiny-random", 64, 9, "cpu", False, "math")
    j = judge_config(cfg)
    assert (j.preset, j.device, j.max_new_tokens, j.max_pixels) == ("tiny-random", "cpu", 8, 112 * 112)
    assert cfg.verify.qwen_vl == j  # the manifest records the judge that runs
    again = type(cfg).model_validate_json(cfg.model_dump_json())  # as the Ray actor rebuilds it
    assert again == cfg and judge_config(again) == j
    real = load_config(None, ["edit.backend=flux_cogvideox", "verify.backend=qwen_vl"])
    assert real.edit.generative.width == 720 and judge_config(real).preset == "none"
    assert real.edit.generative.unload_between_phases is False and real.edit.generative.expandable_segments
    with pytest.raises(ConfigError, match="drop one of the two"):
        load_config(None, [*GEN, "edit.generative.preset=none"])
    with pytest.raises(ConfigError, match="flux_cogvideox"):
        load_config(None, ["edit.backend=flux"])
    with pytest.raises(ConfigError, match="qwen_vl"):
        load_config(None, ["verify.backend=qwen"])
    with pytest.raises(ConfigError, match="8k"):
        load_config(None, ["edit.generative.num_frames=13"])


def test_parked_generative_edits_run_phase_by_phase_with_the_same_outputs(tmp_path: Path, sample_file: Path) -> None:
    """With ``unload_between_phases`` (weights moved between host and GPU at each change of phase) the edit stage
    runs every instruction's first frames, then every propagation: two switches for the clip, not two per
    instruction, and the same videos, QA records and row fields as with both pipelines resident."""
    runs = {}
    for name, park in (("resident", "false"), ("parked", "true")):
        cfg = _cfg([str(sample_file)], tmp_path, "stages=segment,edit", f"run_id={name}", *GEN, "input.max_frames=4",
                   "edit.instructions=[double yellow solid,none@left,single white dashed]",
                   "edit.qa.max_iterations=2", f"edit.generative.unload_between_phases={park}")
        summary = pipeline.run(cfg, executor="sequential")
        rows = [r for r in summary.rows if r["stage"] == "edit"]
        assert [r["status"] for r in rows] == ["ok"] * 3, [r["error"] for r in rows]
        runs[name] = (Path(summary.url), rows)
    placements = [json.loads(r["geometry"])["placement"] for r in runs["parked"][1]]
    # the painter's placement log so far, as each propagation finished: FLUX parked once, CogVideoX placed once
    assert placements == [["flux -> cpu", "flux parked on cpu", "video -> cpu"]] * 3
    for (url_a, rows_a), (url_b, rows_b) in [(runs["resident"], runs["parked"])]:
        for a, b in zip(rows_a, rows_b, strict=True):
            assert (a["instruction"], a["qa_verdict"], a["qa_iterations"]) == (b["instruction"], b["qa_verdict"],
                                                                             b["qa_iterations"])
            d = f"edit/sample/{a['slug']}"
            qa_a, qa_b = (json.loads((u / d / "qa.json").read_text()) for u in (url_a, url_b))
            assert [(i["verdict"], i["seed"], i["prompt"]) for i in qa_a["iterations"]] == \
                [(i["verdict"], i["seed"], i["prompt"]) for i in qa_b["iterations"]]
            np.testing.assert_array_equal(decode(str(url_a / d / "edited.mp4"), target_fps=None).frames,
                                          decode(str(url_b / d / "edited.mp4"), target_fps=None).frames)
            assert json.loads(b["spans"]) and any(s["name"] == "qa_loop" for s in json.loads(b["spans"]))
