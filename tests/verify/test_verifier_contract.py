"""One verifier contract (check -> Verdict) for lane inspectors and frame judges; typed mismatches."""

from __future__ import annotations

import numpy as np
import pytest

from lanepipe.lanes.instructions import parse_instruction
from lanepipe.verify.base import (
    BoundaryReport,
    Judgement,
    JudgingVerifier,
    LaneReport,
    Mismatch,
    Verdict,
    Verifier,
    verdict,
)


def _report() -> LaneReport:
    return LaneReport(left=BoundaryReport(1, "white", "dashed", 0.9), right=BoundaryReport(0, None, None, 0.3))


def test_verdict_from_a_report_keeps_the_reasons_and_types_them() -> None:
    spec = parse_instruction("double yellow solid")
    v = Verdict.from_report(_report(), spec, "lane_detector")
    assert (v.passed, v.reasons) == verdict(_report(), spec)
    assert v.mismatches == [Mismatch("left", "count", 2, 1, 0.9), Mismatch("left", "color", "yellow", "white", 0.9),
                            Mismatch("left", "pattern", "solid", "dashed", 0.9)]
    assert v.reasons[0] == "left boundary count: expected double (2), seen single (1) (confidence 0.90)"
    assert v.report is not None and '"verifier"' in v.raw
    assert Verdict.from_report(_report(), parse_instruction("none@right"), "x").passed  # weak leftover = none


def test_builtins_and_judges_share_the_contract() -> None:
    from lanepipe.verify.lane_detector import LaneDetector

    class Judge(JudgingVerifier):
        name = "judge"

        def judge(self, original_first_frame, edited_first_frame, spec, road_mask=None) -> Judgement:
            assert original_first_frame.ndim == 3 and road_mask is not None and road_mask.ndim == 2
            return Judgement(False, ["too faint"], "road with double yellow solid lane markings, fresh", "FAIL")

    frames = np.zeros((2, 24, 32, 3), np.uint8)
    v = Judge().check(frames, frames, np.ones((2, 24, 32), bool), parse_instruction("double yellow solid"))
    assert (v.passed, v.reasons, v.verifier, v.raw, v.mismatches) == (False, ["too faint"], "judge", "FAIL", [])
    assert isinstance(Judge(), Verifier) and isinstance(LaneDetector(), Verifier)


def test_a_line_far_beyond_a_removed_boundary_is_the_next_line_out() -> None:
    """For a removal, a line seen at least 1.6x farther from the vanishing point's column than the original boundary
    is the line the removal uncovered (the edge line a lane width out), not a left-over boundary; one near the old
    boundary's place still counts."""
    from lanepipe.verify.base import BoundaryReport, LaneReport, lines_beyond_removed

    def report(left: float | None, right: float | None) -> LaneReport:
        def side(x: float | None) -> BoundaryReport:
            if x is None:
                return BoundaryReport(0, None, None, 1.0)
            return BoundaryReport(1, "white", "solid", 0.9, x_bottom=x)
        return LaneReport(side(left), side(right), "lane_detector",
                          {"vanishing_point": [320.0, 180.0], "work_size": [640, 360]})

    original = report(80.0, 878.0)  # 960 px wide frames: the vanishing point's column is 480
    spec = parse_instruction("none@both")
    out = lines_beyond_removed(report(None, 1599.0), original, spec, 960)
    assert out.right.count == 0 and out.diagnostics["beyond_removed"]["right"]["ratio"] == pytest.approx(2.81, 0.01)
    assert verdict(out, spec)[0]
    kept = lines_beyond_removed(report(None, 900.0), original, spec, 960)  # where the old boundary was: a remnant
    assert kept.right.count == 1 and "beyond_removed" not in kept.diagnostics and not verdict(kept, spec)[0]
    other_side = lines_beyond_removed(report(None, 300.0), original, spec, 960)  # left of the vanishing point
    assert other_side.right.count == 1
    painted = parse_instruction("single white solid")  # not a removal: nothing changes
    assert lines_beyond_removed(report(None, 1599.0), original, painted, 960).right.count == 1
