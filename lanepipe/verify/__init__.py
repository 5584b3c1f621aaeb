"""Lane-attribute verifiers (QA of an edit), chosen by name (``verify.backend``, see :mod:`lanepipe.registry`).

Heavy libraries of model backends are imported when a backend is built, not here.
"""

from __future__ import annotations

from lanepipe.verify.base import (
    BoundaryReport,
    FrameJudge,
    InspectingVerifier,
    Judgement,
    JudgingVerifier,
    LaneInspector,
    LaneReport,
    Verdict,
    Verifier,
    VerifierJudge,
    verdict,
)

__all__ = ["BoundaryReport", "FrameJudge", "InspectingVerifier", "Judgement", "JudgingVerifier", "LaneInspector",
           "LaneReport", "Verdict", "Verifier", "VerifierJudge", "verdict"]
