"""Painter contract (``edit.backend``) and the one QA loop that drives every painter with every verifier.

A painter is stepwise (after sam2's ``init_state → add_points → propagate``): :meth:`Painter.prepare` starts a
:class:`PaintJob` for one clip and one instruction; the QA loop (:func:`run_qa`) then repeats

    ``job.attempt()`` → ``verifier.check(...)`` + checks → ``job.record(verdict)`` → ``job.adjust(verdict)``

until the verifier passes the attempt and every check of it against the original passes
(:mod:`lanepipe.verify.edit_checks`, ``edit.qa.checks``), or ``edit.qa.max_iterations`` is reached, and
``job.finish(verifier_name)`` returns the final edit. What an attempt paints (the whole clip, or only its first
frame, propagated in ``finish``) and which knobs a FAIL turns (paint parameters, prompt and seed) is the painter's
business; the loop knows neither.

Adding a painter: one class with ``name`` and ``prepare`` (and its job), plus one line in
:data:`lanepipe.registry.BUILTINS` — or none: ``edit.backend=package.module:ClassName`` (README, "Adding a backend").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lanepipe.edit.config import QAConfig
from lanepipe.lanes.instructions import LaneSpec
from lanepipe.monitoring import lend_device, span
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import Verdict, Verifier
from lanepipe.verify.edit_checks import EditChecker

#: Checks whose failure no retry fixes: a painter only repaints the road mask, which excludes the hood, so paint
#: outside the road or on the hood comes from the mask (or a painter bug), not from knobs a FAIL can turn.
UNRETRYABLE: frozenset[str] = frozenset({"outside_road", "on_hood"})


@runtime_checkable
class EditOutput(Protocol):
    """The final edit of one instruction (e.g. :class:`lanepipe.edit.procedural.PaintResult`).

    Attributes:
        frames: ``(T, H, W, 3) uint8`` RGB, the edited clip (same shape as the input clip).
        lanes: per frame, the painted lines (objects with ``id, side, count, color, pattern, points``; points
            ``(N, 2)`` image pixels), for ``lanes.json``.
        diagnostics: JSON-ready extras (camera, timing, prompt…), kept in the edit row's ``geometry``.
    """

    # read-only members, so that frozen dataclasses (PaintResult) satisfy the protocol
    @property
    def frames(self) -> npt.NDArray[np.uint8]: ...

    @property
    def lanes(self) -> list[list[Any]]: ...

    @property
    def diagnostics(self) -> dict[str, Any]: ...


class PaintJob(Protocol):
    """One instruction on one clip, painted attempt by attempt. All state of the QA loop lives here."""

    def attempt(self) -> npt.NDArray[np.uint8]:
        """Paint with the current knobs.

        Returns:
            ``(T', H, W, 3) uint8``: what the verifier checks, the first T' frames of the clip edited (T' = T:
            the whole clip; T' = 1: a first frame the painter propagates in :meth:`finish`).
        """
        ...

    def record(self, verdict: Verdict | None, check_s: float) -> dict[str, Any]:
        """The ``qa.json`` record of the last attempt, without its ``attempt`` index.

        Args:
            verdict: the verifier's verdict; None when QA is off (``edit.qa.enabled=false``: verdict ``SKIPPED``).
            check_s: seconds the verifier took.
        """
        ...

    def adjust(self, verdict: Verdict) -> None:
        """Turn a FAIL into the next attempt's knobs (``verdict.failures``: the typed reasons)."""
        ...

    def finish(self, verifier: str) -> EditOutput:
        """The final edit, from the last attempt (the passing one, if any); ``verifier`` names the verifier that
        checked the attempts (for diagnostics)."""
        ...

    def qa_fields(self) -> dict[str, Any]:
        """Extra top-level ``qa.json`` fields (e.g. the generative painter's final ``prompt``); may be empty."""
        ...


@runtime_checkable
class Painter(Protocol):
    """The edit backend contract (``edit.backend``). Built once per worker; ``prepare`` per (clip, instruction)."""

    name: str

    def prepare(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, qa: QAConfig) -> PaintJob:
        """Start painting ``spec`` on ``clip``.

        Args:
            clip: the decoded clip, frames ``(T, H, W, 3) uint8``.
            masks: its road masks, ``(T, H, W) bool``, True = road (repaint only there).
            spec: the lane instruction.
            qa: the QA loop settings (``edit.qa``), e.g. ``vary_seed``.
        """
        ...


@dataclass
class QAOutcome:
    """What the QA loop produced: the final edit, one record per attempt, extra ``qa.json`` fields."""

    result: Any
    iterations: list[dict[str, Any]]
    passed: bool
    qa_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return str(self.iterations[-1]["verdict"])


@dataclass
class QAAttempts:
    """The QA loop's attempts before the final edit (:func:`run_attempts`): the job (holding the last attempt),
    one record per attempt, whether the last passed, and ``stopped`` (attempt, checks, reason) when an
    :data:`UNRETRYABLE` check ended the loop early, else None."""

    job: PaintJob
    iterations: list[dict[str, Any]]
    passed: bool
    stopped: dict[str, Any] | None = None


def run_qa(painter: Painter, verifier: Verifier, clip: Clip, masks: RoadMasks, spec: LaneSpec,
           qa: QAConfig | None = None) -> QAOutcome:
    """Paint → verify and check → adjust → retry until an attempt passes, or ``qa.max_iterations``
    (:func:`run_attempts`), then the final edit from the last attempt (``job.finish``).

    ``qa_fields`` gets the job's own fields and, when an :data:`UNRETRYABLE` check stopped the loop,
    ``stopped_early`` (the attempt, the checks and the reason), for ``qa.json``.
    """
    return finish_attempts(run_attempts(painter, verifier, clip, masks, spec, qa), verifier.name)


def finish_attempts(tried: QAAttempts, verifier: str) -> QAOutcome:
    """The final edit from the QA loop's attempts (``job.finish``) and the outcome :func:`run_qa` returns;
    ``verifier`` names the verifier that checked them."""
    result = tried.job.finish(verifier)  # before qa_fields: finishing may settle them (the generative prompt)
    fields = tried.job.qa_fields()
    if tried.stopped is not None:
        fields = {**fields, "stopped_early": tried.stopped}
    return QAOutcome(result=result, iterations=tried.iterations, passed=tried.passed, qa_fields=fields)


def run_attempts(painter: Painter, verifier: Verifier, clip: Clip, masks: RoadMasks, spec: LaneSpec,
                 qa: QAConfig | None = None) -> QAAttempts:
    """The attempts of the QA loop, without the final ``job.finish`` (:func:`run_qa` does both; the split edit
    placement finishes on another actor, :mod:`lanepipe.stages.edit_split`).

    The verifier sees the attempt's frames next to the same original frames and road masks
    (``clip.frames[:T']``, ``masks.masks[:T']``); with ``qa.checks.enabled`` the
    :class:`~lanepipe.verify.edit_checks.EditChecker` compares them with the original too, and the attempt passes
    only when the verifier passed and no check failed (:meth:`Verdict.with_checks`). Each record gets
    ``checks``: every check with its status (pass, fail, not applicable), figure, limit and frames. With
    ``qa.enabled`` false the first attempt is kept unchecked.

    When a check of :data:`UNRETRYABLE` fails the loop stops after that attempt (retrying would repaint the same
    pixels ``max_iterations`` times): the attempt's record gets ``stopped`` (why, in words), and so does the result.
    """
    qa = qa or QAConfig()
    job = painter.prepare(clip, masks, spec, qa)
    with span("cpu", "checks"):
        checker = (EditChecker(clip.frames, masks.masks, spec, qa.checks, hood_top=masks.hood_top)
                   if qa.enabled and qa.checks.enabled else None)
    iterations: list[dict[str, Any]] = []
    passed = False
    verify_kind = "device" if getattr(verifier, "device", None) is not None else "cpu"  # a model judge (Qwen) has one
    stopped: dict[str, Any] | None = None
    for k in range(qa.max_iterations):
        edited = job.attempt()
        if not qa.enabled:
            iterations.append({"attempt": k, **job.record(None, 0.0)})
            break
        n = len(edited)
        t0 = time.perf_counter()
        with span(verify_kind, "verify"):
            v = verifier.check(clip.frames[:n], edited, masks.masks[:n], spec)
        with span("cpu", "checks"), lend_device():  # CPU only: another clip may use the device meanwhile
            v = v.with_checks(checker.check(edited) if checker is not None else [], boundary=str(spec.side))
        record = job.record(v, time.perf_counter() - t0)
        iterations.append({"attempt": k, **record, "checks": [c.to_dict() for c in v.checks]})
        passed = v.passed
        if passed:
            break
        final = sorted({c.check for c in v.checks if c.failed and c.check in UNRETRYABLE})
        if final:
            why = (f"{', '.join(final)} failed: the painter only repaints the road mask, so a retry cannot move "
                   "these changes; stopped after this attempt")
            iterations[-1]["stopped"] = why
            stopped = {"attempt": k, "checks": final, "reason": why}
            break
        job.adjust(v)
    return QAAttempts(job=job, iterations=iterations, passed=passed, stopped=stopped)
