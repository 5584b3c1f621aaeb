"""The noise floor of every shift (issue 18): null edits, the re-encoded baseline, p-values in results and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lanepipe import pipeline
from lanepipe.cli import app
from lanepipe.config import load_config
from lanepipe.lanes.instructions import LaneSpec, parse_instruction
from lanepipe.stages.edit import null_edit_specs
from lanepipe.stages.evaluate import reseeded
from lanepipe.verify.base import BoundaryReport, LaneReport

SAMPLING = "sampling_predictor:Sampling"


@pytest.fixture(scope="module")
def two_clip_run(tmp_path_factory: pytest.TempPathFactory, real_clips: list[Path]) -> Path:
    """``lanepipe run`` (all stages, sequential) on the two shortest real clips: none@both, lane_keep + a sampler."""
    out = tmp_path_factory.mktemp("floor")
    clips = [p for p in real_clips if p.stem in ("vehicle_detection_test_video", "project_video_subclip_4s")]
    args = ["run", "--executor", "sequential", "--stages", "all", "-o", str(out), "--run-id", "floor",
            "-e", "none@both", "--set", "input.max_frames=8", "--set", "edit.qa.max_iterations=1",
            "--set", "render.overlay=false", "--set", "render.comparison=false",
            "--set", f"evaluate.predictors=[lane_keep, {SAMPLING}]"]
    for c in clips:
        args += ["-i", str(c)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return out / "floor"


def _evaluate_rows(run: Path) -> pd.DataFrame:
    df = pd.read_parquet(run / "results.parquet")
    return df[df.stage == "evaluate"].set_index(["clip", "predictor"])


def test_null_edit_of_lane_keep_is_below_5cm_and_results_carry_floor_and_p(two_clip_run: Path) -> None:
    ev = _evaluate_rows(two_clip_run)
    assert {"floor_ade_m", "p_value", "significant"} <= set(ev.columns)
    assert (ev.status == "ok").all(), ev.error.tolist()
    keep = ev.xs("lane_keep", level="predictor")
    assert len(keep) == 2 and (keep.floor_ade_m <= 0.05).all(), keep.floor_ade_m
    # both clips lose their markings: each shift exceeds its floor, so only the all-plus sign assignment of the 4
    # reaches the observed mean: p = 1/4, and two clips can never be significant at 0.05
    assert (keep.shift_ade > keep.floor_ade_m).all()
    assert keep.p_value.tolist() == pytest.approx([0.25, 0.25]) and not keep.significant.any()
    # the sampler ignores the frames (shift 0 at the same seed) but its null edit runs with the next seed: the
    # floor is its spread between runs, larger than every shift -> p = 1
    samp = ev.xs(SAMPLING, level="predictor")
    assert (samp.shift_ade == 0).all() and (samp.floor_ade_m > 0.01).all()
    assert samp.p_value.tolist() == pytest.approx([1.0, 1.0])
    for clip in keep.index:
        d = two_clip_run / "evaluate" / clip / "null-edit"
        doc = json.loads((d / f"{SAMPLING}.json").read_text())
        assert doc["seed"] == 8 and doc["null_edit"] == "reencode" and doc["baseline"] == "reencoded"
        assert json.loads((d / "lane_keep.json").read_text())["seed"] is None
        # the null edit and the baseline went through the same (deterministic) encoder
        assert (d / "edited.mp4").read_bytes() == (d / "original.mp4").read_bytes()


def test_report_shows_floor_and_p_value_per_preset(two_clip_run: Path) -> None:
    html = (two_clip_run / "report.html").read_text()
    table = html.split('<table class="significance">', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]
    keep = next(r for r in rows if "<td>lane_keep</td>" in r)
    assert "<td>none@both</td>" in keep and '<td class="num">0.250</td>' in keep and "<td>no</td>" in keep
    ev = _evaluate_rows(two_clip_run).xs("lane_keep", level="predictor")
    assert f'<td class="num">{ev.floor_ade_m.mean():.3f}</td>' in keep
    assert html.count('class="num pvalue">0.250<') >= 2  # every evaluation of lane_keep carries its p-value
    assert "null edit (noise floor)" in html and "not significant at p &lt; 0.05" in html


def test_source_baseline_shows_the_coding_noise_the_reencoded_one_removes(two_clip_run: Path) -> None:
    """With the decoded source as the baseline, the re-encode alone moves lane_keep (what the default fixes)."""
    cfg = load_config(None, ["stages=evaluate", f"from_run={two_clip_run}", "run_id=src", "input.max_frames=8",
                             "evaluate.baseline=source", "render.overlay=false", "render.comparison=false"],
                      base={"output": str(two_clip_run.parent)})
    rows = [r for r in pipeline.run(cfg, executor="sequential").rows if r["stage"] == "evaluate"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert max(r["floor_ade_m"] for r in rows) > 0.05


def test_repaint_null_edit_repaints_what_the_verifier_reads(two_clip_run: Path) -> None:
    cfg = load_config(None, ["stages=evaluate", f"from_run={two_clip_run}", "run_id=repaint", "input.max_frames=8",
                             "evaluate.noise_floor.null_edit=repaint", "render.overlay=false",
                             "render.comparison=false"], base={"output": str(two_clip_run.parent)})
    rows = [r for r in pipeline.run(cfg, executor="sequential").rows if r["stage"] == "evaluate"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    for r in rows:
        doc = json.loads((Path(r["evaluation"]).parent.parent / "null-edit" / "lane_keep.json").read_text())
        assert doc["null_edit"] == "repaint" and doc["instructions"]
        seen = doc["seen"]
        for text in doc["instructions"]:  # each instruction is what the inspector saw on that boundary
            spec = parse_instruction(text)
            for side in (("left", "right") if spec.side == "both" else (spec.side,)):
                assert spec.count == seen[side]["count"] and spec.color == seen[side]["color"]
        assert np.isfinite(r["floor_ade_m"]) and r["floor_ade_m"] > 0  # the painter's rendering moves lane_keep


def _boundary(count: int, color: str | None = None, pattern: str | None = None) -> BoundaryReport:
    return BoundaryReport(count=count, color=color, pattern=pattern, confidence=0.9)  # type: ignore[arg-type]


def test_null_edit_specs_repaint_each_marked_boundary() -> None:
    both = LaneReport(left=_boundary(1, "white", "dashed"), right=_boundary(1, "white", "dashed"))
    assert null_edit_specs(both) == [LaneSpec(1, "white", "dashed", "both")]
    mixed = LaneReport(left=_boundary(2, "yellow", "solid"), right=_boundary(1, "white", "dashed"))
    assert [s.to_text() for s in null_edit_specs(mixed)] == ["double yellow solid", "single white dashed@right"]
    bare = LaneReport(left=_boundary(0), right=_boundary(1, "white", "solid"))
    assert [s.to_text() for s in null_edit_specs(bare)] == ["single white solid@right"]
    assert null_edit_specs(LaneReport(left=_boundary(0), right=_boundary(0))) == []


def test_reseeded_moves_a_seed_and_restores_it() -> None:
    from sampling_predictor import Sampling

    p = Sampling()
    with reseeded(p, 1) as seed:  # type: ignore[arg-type]
        assert seed == 8 and p.cfg.seed == 8
    assert p.cfg.seed == 7

    class Deterministic:
        name = "det"

    with reseeded(Deterministic(), 1) as seed:  # type: ignore[arg-type]
        assert seed is None
