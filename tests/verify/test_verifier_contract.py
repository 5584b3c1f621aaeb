"""One verifier contract (check -> Verdict) for lane inspectors and frame judges; typed mismatches."""

from __future__ import annotations

import numpy as np

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
