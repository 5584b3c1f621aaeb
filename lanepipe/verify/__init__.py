"""Lane-attribute verifiers (QA of an edit), chosen by name (``verify.backend``, see :mod:`lanepipe.registry`).

Heavy libraries of model backends are imported when a backend is built, not here.
"""

from __future__ import annotations

from lanepipe.verify.base import (
    BoundaryReport,
    CheckResult,
    FrameJudge,
    InspectingVerifier,
    Judgement,
    JudgeRemark,
    JudgingVerifier,
    LaneInspector,
    LaneReport,
    Mismatch,
    Verdict,
    Verifier,
    VerifierJudge,
    verdict,
)

__all__ = ["BoundaryReport", "CheckResult", "FrameJudge", "InspectingVerifier", "JudgeRemark", "Judgement",
           "JudgingVerifier", "LaneInspector", "LaneReport", "Mismatch", "Verdict", "Verifier", "VerifierJudge",
           "verdict"]
