"""Canonical captions of lane markings (DESIGN.md §3) and the captioners that read them off frames."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from lanepipe.config import DatasetConfig
from lanepipe.errors import ConfigError, InputError
from lanepipe.lanes.instructions import parse_caption
from lanepipe.verify.base import BoundaryName, BoundaryReport, LaneReport

ATTRIBUTES: tuple[str, ...] = ("count", "color", "pattern")
UNKNOWN = "unknown"
#: Values each caption attribute may take (``unknown`` too); ``solid-dashed`` is a double line with one of each
#: (DESIGN.md §3), ``mixed`` lines of different colours / patterns (``boundary="both"``, or a VLM's reading).
VOCABULARY: dict[str, tuple[str, ...]] = {
    "count": ("single", "double", UNKNOWN),
    "color": ("white", "yellow", "mixed", UNKNOWN),
    "pattern": ("solid", "dashed", "solid-dashed", "mixed", UNKNOWN),
}
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


def format_caption(count: str, color: str, pattern: str) -> str:
    """The canonical caption ``road with {count} {color} {pattern} lane markings``.

    Raises:
        InputError: a value outside :data:`VOCABULARY`.
    """
    for attr, value in zip(ATTRIBUTES, (count, color, pattern), strict=True):
        if value not in VOCABULARY[attr]:
            raise InputError(f"caption {attr}", f"one of {', '.join(VOCABULARY[attr])}", repr(value))
    return f"road with {count} {color} {pattern} lane markings"


def _boundary_attributes(b: BoundaryReport, min_confidence: float, min_vote: float) -> dict[str, str] | None:
    """Attributes of one boundary, None when no line was read (none seen, or below ``min_confidence``)."""
    if b.count == 0 or b.confidence < min_confidence:
        return None
    attrs = {"count": "single" if b.count == 1 else "double", "color": str(b.color), "pattern": str(b.pattern)}
    for attr in ATTRIBUTES:
        if b.votes.get(attr, 1.0) < min_vote:
            attrs[attr] = UNKNOWN
    return attrs


def _combine(values: list[str], attr: str) -> str:
    known = {v for v in values if v != UNKNOWN}
    if not known:
        return UNKNOWN
    if len(known) == 1:
        return known.pop()
    return UNKNOWN if attr == "count" else "mixed"  # a count has no "mixed": one single and one double line


def _boundary_text(name: str, b: BoundaryReport) -> str:
    return f"{name} boundary {b.describe() if b.count else 'none seen'}"


def caption_from_report(report: LaneReport, boundary: Literal["left", "right", "both"] = "left",
                        min_confidence: float = 0.5, min_vote: float = 0.5) -> tuple[str, str]:
    """``(prompt, prompt_2)`` from a verifier's report of one frame (or clip).

    Args:
        boundary: ``left`` / ``right``: that boundary's count, colour and pattern; ``both``: the boundaries read
            combined (equal values kept, differing colours or patterns become ``mixed``, differing counts
            ``unknown``).
        min_confidence: a boundary read with less confidence counts as not read.
        min_vote: an attribute fewer than this share of the analysed frames agree on is ``unknown``.

    Returns:
        The canonical caption (``unknown`` for whatever was not read), and the same caption followed by what
        each boundary looks like.
    """
    sides: tuple[BoundaryName, ...] = ("left", "right") if boundary == "both" else (boundary,)
    read = [a for a in (_boundary_attributes(report.boundary(s), min_confidence, min_vote) for s in sides)
            if a is not None]
    values = {attr: _combine([a[attr] for a in read], attr) for attr in ATTRIBUTES}
    prompt = format_caption(values["count"], values["color"], values["pattern"])
    detail = ", ".join(_boundary_text(s, report.boundary(s)) for s in ("left", "right"))
    return prompt, f"{prompt}, {detail}"


@dataclass(frozen=True)
class Caption:
    """What a captioner says about one frame: the canonical ``prompt``, the longer ``prompt_2`` and extras."""

    prompt: str
    prompt_2: str
    details: dict[str, Any] = field(default_factory=dict)


class Captioner(Protocol):
    """Reads the lane markings of frames. Built once per worker; ``caption`` is called per clip."""

    name: str

    def caption(self, frames: U8, masks: Bool) -> list[Caption]:
        """One caption per frame of ``(T, H, W, 3) uint8`` frames with ``(T, H, W) bool`` road masks."""
        ...


class DetectorCaptioner:
    """Captions from the classical lane-attribute detector (``verify.lane_detector``), one frame at a time."""

    name = "lane_detector"

    def __init__(self, cfg: DatasetConfig) -> None:
        from lanepipe.verify.lane_detector import LaneDetector

        self.detector = LaneDetector(cfg.lane_detector)
        self.boundary = cfg.boundary
        self.min_confidence = cfg.min_confidence
        self.min_vote = cfg.min_vote

    def caption(self, frames: U8, masks: Bool) -> list[Caption]:
        out: list[Caption] = []
        for t in range(frames.shape[0]):
            report = self.detector.inspect(frames[t : t + 1], masks[t : t + 1])
            prompt, prompt_2 = caption_from_report(report, self.boundary, self.min_confidence, self.min_vote)
            out.append(Caption(prompt, prompt_2, {"left": report.left.to_dict(), "right": report.right.to_dict()}))
        return out


_SIDE_TEXT = {
    "left": "the LEFT boundary of the ego lane (the line left of the camera, the centre line of a two-lane road)",
    "right": "the RIGHT boundary of the ego lane (the line right of the camera)",
    "both": "the lane markings on BOTH boundaries of the ego lane",
}


def describe_prompt(boundary: str = "left") -> str:
    """The user text that asks a VLM to describe one frame's lane markings as the canonical caption."""
    return (
        "The image is a front-camera frame of a road.\n"
        f"Describe {_SIDE_TEXT[boundary]}.\n"
        "Answer with ONE JSON object and nothing else:\n"
        '{"count": "single" or "double" or "unknown", "color": "white" or "yellow" or "mixed" or "unknown", '
        '"pattern": "solid" or "dashed" or "solid-dashed" or "mixed" or "unknown", '
        '"caption": "road with {count} {color} {pattern} lane markings, followed by a comma and specific visual '
        'details of the road"}\n'
        'Use "unknown" for what you cannot see (no markings, occluded, too dark), "mixed" for lines of different '
        'colours or patterns, "solid-dashed" for a double line with one solid and one dashed line.'
    )


def _json_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start != -1:
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                try:
                    obj = json.loads(text[start : end + 1])
                except ValueError:
                    break
                return obj if isinstance(obj, dict) else None
        start = text.find("{", start + 1)
    return None


def caption_from_answer(text: str) -> Caption:
    """A VLM's answer to :func:`describe_prompt` → canonical caption.

    Attributes come from the JSON fields when present (each outside :data:`VOCABULARY` reads ``unknown``), else
    from a canonical caption anywhere in the text (:func:`~lanepipe.verify.qwen_vl.caption_core`); details
    (``prompt_2``) only from a caption the model wrote in the canonical form. An answer that gives neither is
    captioned all ``unknown``.
    """
    from lanepipe.verify.qwen_vl import caption_core, normalise_caption

    obj = _json_object(text) or {}
    written = obj.get("caption") if isinstance(obj.get("caption"), str) else text
    core = caption_core(written) or caption_core(text)
    from_core = parse_caption(core) if core else None
    values: dict[str, str] = {}
    for attr in ATTRIBUTES:
        raw = obj.get(attr)
        v = " ".join(str(raw).lower().split()) if raw is not None else None
        if v is None and from_core is not None:
            v = from_core[attr]
        values[attr] = v if v in VOCABULARY[attr] else UNKNOWN
    prompt = format_caption(values["count"], values["color"], values["pattern"])
    prompt_2 = prompt
    tidy = normalise_caption(written) if core else None
    if tidy and core and tidy.startswith(core):
        rest = tidy[len(core) :].lstrip(" ,;")
        prompt_2 = f"{prompt}, {rest}" if rest else prompt
    return Caption(prompt, prompt_2, {"raw": text[:2000]})


class QwenCaptioner:
    """Captions from Qwen2.5-VL (``verify.qwen_vl``): :meth:`QwenJudge.generate` with :func:`describe_prompt`.

    Args:
        judge: a built judge (anything with ``generate(images, user_text) -> str``) or its config.
    """

    name = "qwen_vl"

    def __init__(self, cfg: DatasetConfig, judge: Any = None) -> None:
        if judge is None or not hasattr(judge, "generate"):
            from lanepipe.verify.qwen_vl import QwenJudge

            judge = QwenJudge(judge or cfg.qwen_vl)
        self.judge = judge
        self.prompt = describe_prompt(cfg.boundary)

    def caption(self, frames: U8, masks: Bool) -> list[Caption]:
        from lanepipe.verify.qwen_vl import check_image

        return [caption_from_answer(self.judge.generate([check_image(frames[t], f"frame {t}")], self.prompt))
                for t in range(frames.shape[0])]


def build_captioner(cfg: DatasetConfig) -> Captioner:
    """The configured captioner; its model loads here (once per worker)."""
    if cfg.captioner == "lane_detector":
        return DetectorCaptioner(cfg)
    if cfg.captioner == "qwen_vl":
        return QwenCaptioner(cfg)
    raise ConfigError(f"captioner: unknown backend {cfg.captioner!r}; choose lane_detector or qwen_vl")
