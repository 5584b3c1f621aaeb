"""A user painter from outside lanepipe, plugged in with ``edit.backend=user_backends:StripePainter``.

The README's "Adding a backend" shows this class; tests/test_cli.py runs it through ``lanepipe run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel


class StripeConfig(BaseModel):
    """Settings, from ``--set edit.options.<key>=...``."""

    width_px: int = 4


@dataclass
class StripeResult:
    frames: np.ndarray
    lanes: list[list[Any]]
    diagnostics: dict[str, Any] = field(default_factory=dict)


class StripeJob:
    """One instruction on one clip: paint a white stripe down the middle of the road, wider after each FAIL."""

    def __init__(self, cfg: StripeConfig, clip, masks, spec) -> None:
        self.cfg, self.clip, self.masks, self.spec = cfg, clip, masks, spec
        self.width = cfg.width_px
        self.frames: np.ndarray | None = None

    def attempt(self) -> np.ndarray:  # (T, H, W, 3) uint8: what the verifier checks
        frames = self.clip.frames.copy()
        mid = frames.shape[2] // 2
        band = np.zeros(self.masks.masks.shape, dtype=bool)
        band[:, :, mid - self.width // 2: mid + (self.width + 1) // 2] = True
        frames[band & self.masks.masks] = 255
        self.frames = frames
        return frames

    def record(self, verdict, check_s: float) -> dict[str, Any]:  # one qa.json iteration
        if verdict is None:
            return {"verdict": "SKIPPED", "reasons": [], "width_px": self.width}
        return {"width_px": self.width, "verdict": "PASS" if verdict.passed else "FAIL",
                "reasons": verdict.reasons}

    def adjust(self, verdict) -> None:  # a FAIL turns the knob
        self.width += 2

    def finish(self, verifier: str) -> StripeResult:
        assert self.frames is not None
        return StripeResult(self.frames, [[] for _ in self.frames], {"stripe_px": self.width})

    def qa_fields(self) -> dict[str, Any]:
        return {}


class StripePainter:
    name = "stripe"

    def __init__(self, cfg: StripeConfig) -> None:
        self.cfg = cfg

    def prepare(self, clip, masks, spec, qa) -> StripeJob:
        return StripeJob(self.cfg, clip, masks, spec)


class NotAPainter:
    name = "nope"


class PassOnSecond:
    """A user verifier (``verify.backend=user_backends:PassOnSecond``): FAIL once, then PASS."""

    name = "pass_on_second"

    def __init__(self) -> None:
        self.calls = 0

    def check(self, original, edited, road_masks, spec):
        from lanepipe.verify.base import Verdict

        assert original.shape == edited.shape and road_masks.shape == edited.shape[:3]
        self.calls += 1
        return Verdict(self.calls > 1, [] if self.calls > 1 else ["left boundary count: expected single"], self.name)
