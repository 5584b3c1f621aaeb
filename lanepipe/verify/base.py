"""The verifier contract, what verifiers report, and the PASS/FAIL verdict against a lane instruction.

The QA loop drives every verify backend (``verify.backend``) through one contract, :class:`Verifier`:
``check(original, edited, road_masks, spec) -> Verdict``. The built-ins get ``check`` from a base class:

* a lane inspector (:class:`LaneInspector`, base :class:`InspectingVerifier`; e.g. the lane detector) looks at
  frames and says what the ego lane's two boundaries look like: ``left`` is the boundary left of the camera
  centre, ``right`` the one to its right. It knows nothing of the instruction; :func:`verdict` compares its report
  with a :class:`~lanepipe.lanes.instructions.LaneSpec`;
* a judge (:class:`FrameJudge`, base :class:`JudgingVerifier`; e.g. the Qwen2.5-VL judge,
  :mod:`lanepipe.verify.qwen_vl`) looks at one original and one edited frame and the instruction and returns a
  :class:`Judgement` (PASS/FAIL, reasons, optionally a revised caption). :class:`VerifierJudge` makes any
  inspector a judge.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lanepipe.lanes.instructions import LaneSpec

ColorSeen = Literal["white", "yellow"]
PatternSeen = Literal["solid", "dashed", "solid-dashed"]
BoundaryName = Literal["left", "right"]

_COUNT_WORD = {0: "none (0)", 1: "single (1)", 2: "double (2)"}


@dataclass(frozen=True)
class BoundaryReport:
    """What one boundary of the ego lane looks like.

    Attributes:
        count: 0 = no marking, 1 = single line, 2 = double line.
        color: ``"white"``, ``"yellow"``, or None when ``count == 0``.
        pattern: ``"solid"``, ``"dashed"``, ``"solid-dashed"`` (double line, one of each), or None when
            ``count == 0``.
        confidence: in [0, 1]; how sure the verifier is of all three attributes together.
        x_bottom: image x (pixels of the input frames, x to the right) where the boundary meets the lowest
            road row (the bottom image row, or the row above the ego vehicle's hood), None when ``count == 0``.
        lateral_m: signed lateral offset from the camera centre in metres on the ground (+ = left), assuming
            the configured camera height; None when ``count == 0``.
        coverage: fraction of the boundary's visible length (measured on the ground, not in pixels) that
            is painted, in [0, 1]; about 1 for solid, 0.25-0.5 for dashed lines.
        yellowness: median Lab b* of the paint minus that of the pavement beside it (OpenCV 8-bit units);
            yellow paint is well above 0.
        frames_seen: number of analysed frames in which a line was found on this side.
        frames_used: number of analysed frames.
        votes: per attribute, the share of frames that agreed with the reported value, in [0, 1].
        strokes: the pattern of each line, from the one next to the ego lane outwards (``("solid",
            "dashed")`` for a passing zone whose solid line faces the ego lane); one entry for a single line,
            empty when ``count == 0`` or when the verifier does not read strokes.
        inner_pattern: the pattern of the line next to the ego lane (``strokes[0]``), None when unknown.
    """

    count: int
    color: ColorSeen | None
    pattern: PatternSeen | None
    confidence: float
    x_bottom: float | None = None
    lateral_m: float | None = None
    coverage: float | None = None
    yellowness: float | None = None
    frames_seen: int = 0
    frames_used: int = 0
    votes: dict[str, float] = field(default_factory=dict)
    strokes: tuple[Literal["solid", "dashed"], ...] = ()

    @property
    def inner_pattern(self) -> Literal["solid", "dashed"] | None:
        return self.strokes[0] if self.strokes else None

    def describe(self) -> str:
        """Instruction-like text, e.g. ``double yellow solid`` or ``none``."""
        if self.count == 0:
            return "none"
        return f"{'single' if self.count == 1 else 'double'} {self.color} {self.pattern}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats rounded to 3 decimals)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 3)
        d["votes"] = {k: round(v, 3) for k, v in self.votes.items()}
        d["strokes"] = list(self.strokes)
        d["inner_pattern"] = self.inner_pattern
        return d


@dataclass(frozen=True)
class LaneReport:
    """The ego lane's two boundaries as seen by a verifier.

    Attributes:
        left: boundary left of the camera centre.
        right: boundary right of the camera centre.
        verifier: name of the verifier that made it.
        diagnostics: free-form extras (vanishing point, frames analysed, timing...).
    """

    left: BoundaryReport
    right: BoundaryReport
    verifier: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def boundary(self, side: BoundaryName) -> BoundaryReport:
        return self.left if side == "left" else self.right

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"verifier": self.verifier, "left": self.left.to_dict(), "right": self.right.to_dict(),
                "diagnostics": self.diagnostics}


@runtime_checkable
class LaneInspector(Protocol):
    """What a lane-attribute detector does: report the ego lane's boundaries seen in frames (no instruction).

    Built once per worker; ``inspect`` is called per clip (or edited clip). :class:`InspectingVerifier` makes one a
    :class:`Verifier`.
    """

    name: str

    def inspect(self, frames: npt.NDArray[np.uint8],
                road_masks: npt.NDArray[np.bool_] | None = None) -> LaneReport:
        """What the ego lane's boundaries look like in ``frames``.

        Args:
            frames: ``(T, H, W, 3) uint8`` RGB frames of a front camera, T >= 1.
            road_masks: optional ``(T, H, W) bool``, True = road; restricts the search when given.
        """
        ...


#: For a removal, a boundary seen with less confidence than this counts as no line: what an erase leaves
#: (kerbs, a barrier's base, the mask's edge) reads as a weak line (0.2-0.45 on the shared clips), real
#: markings read at 0.75 or more.
REMOVAL_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Mismatch:
    """One attribute of one boundary that differs from the instruction (a typed FAIL reason).

    Attributes:
        boundary: ``"left"`` or ``"right"``.
        attribute: ``"count"``, ``"color"`` or ``"pattern"``.
        want: what the instruction asks (count as int, colour / pattern as text).
        seen: what the verifier saw.
        confidence: the verifier's confidence in that boundary, in [0, 1].
    """

    boundary: BoundaryName
    attribute: Literal["count", "color", "pattern"]
    want: int | str | None
    seen: int | str | None
    confidence: float

    def reason(self) -> str:
        """The human-readable reason, e.g. ``left boundary color: expected yellow, seen white (confidence 0.90)``."""
        conf = f"(confidence {self.confidence:.2f})"
        if self.attribute == "count":
            return (f"{self.boundary} boundary count: expected {_count_word(self.want)}, "
                    f"seen {_count_word(self.seen)} {conf}")
        return f"{self.boundary} boundary {self.attribute}: expected {self.want}, seen {self.seen} {conf}"


CheckName = Literal["target", "unnamed_unchanged", "remnants", "white_brightness", "yellow_chroma", "yellow_hue",
                    "outside_road", "on_hood", "erase_band"]
CheckStatus = Literal["pass", "fail", "not applicable"]


@dataclass(frozen=True)
class CheckResult:
    """One QA check of an edit against its original (:mod:`lanepipe.verify.edit_checks`); a failed one is a typed
    FAIL reason.

    Attributes:
        check: which check (``target`` is the verifier's own count/colour/pattern comparison).
        boundary: what it looked at: ``"left"``, ``"right"``, ``"both"``, ``"outer"`` (markings outside the ego
            lane) or ``"frame"`` (the whole picture).
        status: ``"pass"``, ``"fail"`` or ``"not applicable"`` (nothing to measure, e.g. no old paint).
        value: the measured figure (see ``unit``), None when not applicable.
        threshold: the limit it is held to (a maximum or a minimum, as the check says), None if none.
        frames: indices of the frames (of the checked frames) that broke the limit.
        unit: what ``value`` measures, in words.
        note: why not applicable, or extra figures.
    """

    check: CheckName
    boundary: str
    status: CheckStatus
    value: float | None = None
    threshold: float | None = None
    frames: tuple[int, ...] = ()
    unit: str = ""
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def reason(self) -> str:
        """Human-readable, e.g. ``remnants on left: 0.42 of old paint untouched (limit 0.15) in frames 3, 4``."""
        head = f"{self.check} on {self.boundary}"
        if self.status == "not applicable":
            return f"{head}: not applicable ({self.note})" if self.note else f"{head}: not applicable"
        fig = "" if self.value is None else f": {self.value:.3g} {self.unit}".rstrip()
        lim = "" if self.threshold is None else f" (limit {self.threshold:.3g})"
        frames = ""
        if self.frames:
            shown = ", ".join(str(f) for f in self.frames[:8]) + (" ..." if len(self.frames) > 8 else "")
            frames = f" in frame{'s' if len(self.frames) > 1 else ''} {shown}"
        note = f"; {self.note}" if self.note else ""
        return f"{head}{fig}{lim}{frames}{note}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for ``qa.json`` (floats rounded to 4 significant digits)."""
        d = asdict(self)
        for k in ("value", "threshold"):
            if isinstance(d[k], float):
                d[k] = float(f"{d[k]:.4g}")
        d["frames"] = list(self.frames)
        d["reason"] = self.reason()
        return d


@dataclass(frozen=True)
class JudgeRemark:
    """A judge's free-text FAIL reason (a judge gives no typed mismatches)."""

    text: str

    def reason(self) -> str:
        return self.text


#: Everything a painter's ``adjust`` may get as a FAIL reason.
FailReason = Mismatch | CheckResult | JudgeRemark


def _count_word(v: int | str | None) -> str:
    return _COUNT_WORD.get(v, str(v)) if isinstance(v, int) else str(v)


def mismatches(report: LaneReport, spec: LaneSpec,
               removal_min_confidence: float = REMOVAL_MIN_CONFIDENCE) -> list[Mismatch]:
    """What differs between a report and an instruction, attribute by attribute (see :func:`verdict`)."""
    sides: tuple[BoundaryName, ...] = ("left", "right") if spec.side == "both" else (spec.side,)
    out: list[Mismatch] = []
    for side in sides:
        b = report.boundary(side)
        weak_leftover = spec.count == 0 and b.confidence < removal_min_confidence
        if b.count != spec.count and not weak_leftover:
            out.append(Mismatch(side, "count", spec.count, b.count, b.confidence))
        if spec.count == 0 or b.count == 0:
            continue
        if b.color != spec.color:
            out.append(Mismatch(side, "color", spec.color, b.color, b.confidence))
        if b.pattern != spec.pattern:
            out.append(Mismatch(side, "pattern", spec.pattern, b.pattern, b.confidence))
        elif spec.pattern == "solid-dashed" and b.inner_pattern == "dashed":
            # a passing zone's solid line faces the lane it forbids to pass from (the ego lane)
            out.append(Mismatch(side, "pattern", "solid-dashed (solid next to the ego lane)",
                                "solid-dashed (dashed next to the ego lane)", b.confidence))
    return out


def verdict(report: LaneReport, spec: LaneSpec,
            removal_min_confidence: float = REMOVAL_MIN_CONFIDENCE) -> tuple[bool, list[str]]:
    """Compare a report with an instruction.

    Checks count, colour and pattern of each boundary the spec names (``side="both"`` checks both); for a
    removal (``count == 0``) only the count, where a boundary seen with confidence below
    ``removal_min_confidence`` counts as none. Boundaries the spec does not name are not checked.

    Returns:
        ``(passed, reasons)``: one human-readable reason per mismatching attribute (:meth:`Mismatch.reason`), each
        naming the boundary and the attribute (``count``, ``color`` or ``pattern``), what was expected and what
        was seen; empty when ``passed``.
    """
    reasons = [m.reason() for m in mismatches(report, spec, removal_min_confidence)]
    return (not reasons, reasons)


# --------------------------------------------------------------------------------------------- judges

#: Reason prefix of a judge answer that could not be read.
MALFORMED = "malformed judge output"


@dataclass(frozen=True)
class Judgement:
    """What a judge said about one edit.

    Attributes:
        passed: True only for an explicit, parseable PASS.
        reasons: why (count, colour, pattern, perspective alignment, road texture...); for an unparseable
            answer one reason starting with ``"malformed judge output"``.
        revised_caption: a more specific caption (for the Qwen judge normalised by
            :func:`lanepipe.verify.qwen_vl.normalise_caption`); None if not given.
        raw: the judge's text, unchanged (a verifier's report as JSON for :class:`VerifierJudge`).
    """

    passed: bool
    reasons: list[str] = field(default_factory=list)
    revised_caption: str | None = None
    raw: str = ""

    @property
    def malformed(self) -> bool:
        return any(r.startswith(MALFORMED) for r in self.reasons)


@runtime_checkable
class FrameJudge(Protocol):
    """Judges one edited frame against the original and the instruction. Built once per worker."""

    name: str

    def judge(self, original_first_frame: npt.NDArray[np.uint8], edited_first_frame: npt.NDArray[np.uint8],
              spec: LaneSpec, road_mask: npt.NDArray[np.bool_] | None = None) -> Judgement:
        """PASS/FAIL of ``edited_first_frame`` against ``spec``.

        Args:
            original_first_frame: ``(H, W, 3) uint8`` RGB before the edit.
            edited_first_frame: ``(H, W, 3) uint8`` RGB after the edit.
            spec: the instruction.
            road_mask: optional ``(H, W) bool`` road mask of the frame, True = road (a judge may ignore it).
        """
        ...


# ---------------------------------------------------------------------------------- the verifier contract


@dataclass(frozen=True)
class Verdict:
    """What a verifier said about one QA attempt.

    Attributes:
        passed: the edit shows what the instruction asks.
        reasons: one per mismatch (empty when ``passed``), e.g. ``left boundary color: expected yellow, ...``.
        verifier: the verifier's name.
        report: the boundaries a lane inspector saw (None for a judge).
        revised_caption: a judge's more specific caption, or None.
        raw: a judge's text, unchanged; for an inspector its report as JSON.
        mismatches: the reasons as data, where the verifier knows them (an inspector); empty for a judge.
        remarks: a judge's reasons as :class:`JudgeRemark` (empty for an inspector).
        checks: every QA check of the edit against the original (:meth:`with_checks`), passed or not; empty
            until the QA loop adds them.
    """

    passed: bool
    reasons: list[str]
    verifier: str
    report: LaneReport | None = None
    revised_caption: str | None = None
    raw: str = ""
    mismatches: list[Mismatch] = field(default_factory=list)
    remarks: list[JudgeRemark] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def failures(self) -> list[FailReason]:
        """Every FAIL reason as data: the verifier's mismatches, a judge's remarks, then the failed checks."""
        out: list[FailReason] = [*self.mismatches, *self.remarks]
        out.extend(c for c in self.checks if c.failed and c.check != "target")
        return out

    def with_checks(self, checks: list[CheckResult], boundary: str = "") -> Verdict:
        """This verdict combined with the QA checks: it passes only when the verifier passed and no check failed.

        A ``target`` check (the verifier's own verdict, on ``boundary``) is put first, so the record lists every
        check; the failed checks' :meth:`CheckResult.reason` follow the verifier's reasons.
        """
        target = CheckResult("target", boundary or "named", "pass" if self.passed else "fail",
                             value=float(len(self.mismatches)) if self.report is not None else None,
                             threshold=0.0 if self.report is not None else None,
                             unit="mismatching attributes" if self.report is not None else "",
                             note="; ".join(self.reasons))
        failed = [c for c in checks if c.failed]
        return replace(self, passed=self.passed and not failed, reasons=[*self.reasons, *(c.reason() for c in failed)],
                       checks=[target, *checks])

    @classmethod
    def from_report(cls, report: LaneReport, spec: LaneSpec, verifier: str) -> Verdict:
        """:func:`verdict` of an inspector's report."""
        found = mismatches(report, spec)
        return cls(not found, [m.reason() for m in found], verifier, report=report,
                   raw=json.dumps(report.to_dict(), default=str), mismatches=found)

    @classmethod
    def from_judgement(cls, j: Judgement, verifier: str) -> Verdict:
        return cls(j.passed, list(j.reasons), verifier, revised_caption=j.revised_caption, raw=j.raw,
                   remarks=[JudgeRemark(r) for r in j.reasons])


@runtime_checkable
class Verifier(Protocol):
    """The verify backend contract (``verify.backend``): PASS/FAIL of an edit against its instruction.

    Built once per worker (models load in ``__init__`` or lazily); ``check`` is called once per QA attempt.
    """

    name: str

    def check(self, original: npt.NDArray[np.uint8], edited: npt.NDArray[np.uint8],
              road_masks: npt.NDArray[np.bool_], spec: LaneSpec) -> Verdict:
        """Does ``edited`` show what ``spec`` asks?

        Args:
            original: ``(T, H, W, 3) uint8`` RGB, the first T frames of the clip before the edit.
            edited: ``(T, H, W, 3) uint8`` RGB, the same frames after the edit (T = 1: a painter's first frame).
            road_masks: ``(T, H, W) bool``, True = road.
            spec: the instruction.
        """
        ...


#: A line seen where a removed boundary was is that boundary unless it lies at least this many times farther from
#: the vanishing point's column (at the lowest road row) than the original boundary did: then it is the next line
#: out, which the removal uncovered. Lane edges are a lane width apart (2.7-3.6 m, AASHTO "Green Book" 2018
#: §4.3; 12 ft = 3.66 m is the US norm) and an ego boundary lies at most ~2.7 m from the camera, so the next line
#: out is at least ~2x farther; a double line's two strokes (0.1-0.3 m apart) stay near 1x.
BEYOND_REMOVED_RATIO = 1.6


def lines_beyond_removed(report: LaneReport, original: LaneReport, spec: LaneSpec, width: int,
                         ratio: float = BEYOND_REMOVED_RATIO) -> LaneReport:
    """``report`` with each boundary the spec removes set to none where what was seen there is the next line out
    (see :data:`BEYOND_REMOVED_RATIO`), judged against ``original`` (the same inspector on the frames before the
    edit; ``width``: their width in pixels). Each such line is listed in ``diagnostics["beyond_removed"]``."""
    if spec.count != 0:
        return report
    vp = original.diagnostics.get("vanishing_point")
    work = original.diagnostics.get("work_size")
    if not vp or not work:
        return report
    vpx = float(vp[0]) * width / float(work[0])  # the vanishing point is in the inspector's working size
    sides: tuple[BoundaryName, ...] = ("left", "right") if spec.side == "both" else (spec.side,)
    out, beyond = report, {}
    for side in sides:
        o, e = original.boundary(side), report.boundary(side)
        if o.count == 0 or e.count == 0 or o.x_bottom is None or e.x_bottom is None:
            continue
        d_o, d_e = o.x_bottom - vpx, e.x_bottom - vpx
        if d_o * d_e > 0 and abs(d_e) >= ratio * abs(d_o):
            beyond[side] = {"seen": e.describe(), "x_bottom": round(e.x_bottom, 1),
                            "original_x_bottom": round(o.x_bottom, 1), "ratio": round(abs(d_e / d_o), 2)}
            none = BoundaryReport(0, None, None, e.confidence, frames_seen=0, frames_used=e.frames_used)
            out = replace(out, left=none) if side == "left" else replace(out, right=none)
    if beyond:
        out = replace(out, diagnostics={**out.diagnostics, "beyond_removed": beyond})
    return out


class InspectingVerifier:
    """Base of a :class:`LaneInspector` backend: ``check`` inspects all edited frames (with their road masks) and
    compares the report with the instruction (:meth:`Verdict.from_report`). For a removal it also inspects the
    original frames (once per clip) so that the next line out, which the removal uncovers, is not taken for the
    removed boundary (:func:`lines_beyond_removed`)."""

    name: str
    _original: tuple[str, LaneReport] | None = None

    def inspect(self, frames: npt.NDArray[np.uint8],
                road_masks: npt.NDArray[np.bool_] | None = None) -> LaneReport:
        raise NotImplementedError

    def check(self, original: npt.NDArray[np.uint8], edited: npt.NDArray[np.uint8],
              road_masks: npt.NDArray[np.bool_], spec: LaneSpec) -> Verdict:
        report = self.inspect(edited, road_masks)
        sides: tuple[BoundaryName, ...] = ("left", "right") if spec.side == "both" else (spec.side,)
        if spec.count == 0 and any(report.boundary(side).count for side in sides):
            report = lines_beyond_removed(report, self._inspect_original(original, road_masks), spec,
                                          int(original.shape[2]))
        return Verdict.from_report(report, spec, self.name)

    def _inspect_original(self, original: npt.NDArray[np.uint8], road_masks: npt.NDArray[np.bool_]) -> LaneReport:
        """The report on the original frames; kept for the next QA attempt on the same clip."""
        h = hashlib.blake2b(np.ascontiguousarray(original[:, ::8, ::8]).tobytes(), digest_size=16)
        h.update(repr(original.shape).encode())
        key = h.hexdigest()
        cached = self._original  # one local read: two clips in flight on one actor may share this verifier
        if cached is None or cached[0] != key:
            cached = (key, self.inspect(original, road_masks))
            self._original = cached
        return cached[1]


class JudgingVerifier:
    """Base of a :class:`FrameJudge` backend: ``check`` judges frame 0 (original vs edited, with its road mask)."""

    name: str

    def judge(self, original_first_frame: npt.NDArray[np.uint8], edited_first_frame: npt.NDArray[np.uint8],
              spec: LaneSpec, road_mask: npt.NDArray[np.bool_] | None = None) -> Judgement:
        raise NotImplementedError

    def check(self, original: npt.NDArray[np.uint8], edited: npt.NDArray[np.uint8],
              road_masks: npt.NDArray[np.bool_], spec: LaneSpec) -> Verdict:
        j = self.judge(original[0], edited[0], spec, road_mask=road_masks[0])
        return Verdict.from_judgement(j, self.name)


class VerifierJudge(JudgingVerifier):
    """A :class:`LaneInspector` used as a :class:`FrameJudge`: it inspects the single edited frame (with its road mask)
    and :func:`verdict` compares the report with the instruction. It has no revised caption; ``raw`` is the
    report as JSON."""

    def __init__(self, verifier: LaneInspector) -> None:
        self.verifier = verifier
        self.name = verifier.name

    def judge(self, original_first_frame: npt.NDArray[np.uint8], edited_first_frame: npt.NDArray[np.uint8],
              spec: LaneSpec, road_mask: npt.NDArray[np.bool_] | None = None) -> Judgement:
        del original_first_frame
        report = self.verifier.inspect(edited_first_frame[None], None if road_mask is None else road_mask[None])
        passed, reasons = verdict(report, spec)
        return Judgement(passed=passed, reasons=reasons, revised_caption=None,
                         raw=json.dumps(report.to_dict(), default=str))
