"""Lane-attribute verifiers (QA of an edit), chosen by name (``verify.backend``).

Heavy libraries of model backends are imported when a backend is built, not here.
"""

from __future__ import annotations

from lanepipe.verify.base import (
    BoundaryReport,
    FrameJudge,
    Judgement,
    LaneReport,
    Verifier,
    VerifierJudge,
    verdict,
)

BACKENDS: tuple[str, ...] = ("lane_detector", "qwen_vl")

__all__ = ["BACKENDS", "BoundaryReport", "FrameJudge", "Judgement", "LaneReport", "Verifier", "VerifierJudge",
           "verdict"]
