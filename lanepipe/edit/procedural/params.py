"""What the procedural painter takes and gives: the QA loop's knobs and the painted result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from lanepipe.verify.base import CheckResult, FailReason, Mismatch

F64 = npt.NDArray[np.float64]


# ============================================================================================== configuration
_STEP_UP = 1.25


class PaintParams(BaseModel):
    """Knobs the QA loop may turn between attempts (1.0 / 0 = the painter's own estimate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contrast: float = Field(1.0, ge=0.3, le=3.0, description="paint brightness gain over the asphalt")
    saturation: float = Field(1.0, ge=0.0, le=3.0, description="yellow saturation gain")
    width_scale: float = Field(1.0, ge=0.5, le=2.5, description="line width multiplier")
    spacing_scale: float = Field(1.0, ge=0.5, le=4.0, description="double-line spacing multiplier")
    lateral_offset_m: float = Field(0.0, ge=-1.0, le=1.0, description="shift of the painted lines (+ = left)")
    opacity: float = Field(0.95, ge=0.1, le=1.0, description="paint opacity")
    erase_strength: float = Field(1.0, ge=0.5, le=3.0, description="erase corridor width and sensitivity")
    sharpness: float = Field(1.0, ge=0.3, le=3.0, description="edge sharpness (divides the matched blur)")
    wear_scale: float = Field(1.0, ge=0.0, le=2.0, description="wear multiplier")

    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "contrast": (0.3, 3.0), "saturation": (0.0, 3.0), "width_scale": (0.5, 2.5), "spacing_scale": (0.5, 4.0),
        "opacity": (0.1, 1.0), "erase_strength": (0.5, 3.0), "sharpness": (0.3, 3.0), "wear_scale": (0.0, 2.0),
    }

    def adjusted(self, reasons: Sequence[FailReason], attempt: int) -> PaintParams:
        """New knobs after a failed QA attempt, from its typed reasons (:attr:`Verdict.failures`).

        Each reason moves the knobs that fix it, by a step that grows with ``attempt``:

        * a colour mismatch: expected yellow → more saturation and contrast; expected white → less saturation,
          stronger erase (old yellow showing through), more contrast;
        * a pattern mismatch: crisper edges, more contrast, less wear;
        * a count mismatch: expected none → stronger erase; nothing seen → more contrast, opacity and width, less
          wear; otherwise wider double spacing and lines;
        * check ``remnants``: stronger erase; ``white_brightness``: more contrast and opacity;
          ``yellow_chroma`` / ``yellow_hue``: more saturation; ``unnamed_unchanged`` / ``erase_band``: a
          narrower, gentler erase; ``outside_road`` / ``on_hood``: a gentler erase (the painter never paints
          outside the mask: a mask that covers the hood needs a better mask, not other knobs);
        * anything else (a judge's free-text remark): a little more contrast and width.
        """
        step = _STEP_UP ** (1.0 + 0.5 * max(attempt, 0))
        v = self.model_dump()
        matched = False

        def mul(key: str, f: float) -> None:
            lo, hi = self._BOUNDS[key]
            v[key] = float(min(max(v[key] * f, lo), hi))

        for r in reasons:
            if isinstance(r, Mismatch):
                matched = True
                if r.attribute == "color":
                    if r.want == "yellow":
                        mul("saturation", step)
                    else:
                        mul("saturation", 1.0 / step)
                        mul("erase_strength", step)
                    mul("contrast", math.sqrt(step))
                elif r.attribute == "pattern":
                    mul("sharpness", step)
                    mul("contrast", math.sqrt(step))
                    mul("wear_scale", 1.0 / step)
                elif r.want == 0:
                    mul("erase_strength", step)
                elif r.seen == 0:
                    mul("contrast", step)
                    mul("width_scale", math.sqrt(step))
                    mul("wear_scale", 1.0 / step)
                    v["opacity"] = float(min(1.0, v["opacity"] + 0.05))
                else:
                    mul("spacing_scale", step)
                    mul("width_scale", math.sqrt(step))
            elif isinstance(r, CheckResult) and r.failed:
                matched = True
                if r.check == "remnants":
                    mul("erase_strength", step)
                elif r.check == "white_brightness":
                    mul("contrast", step)
                    v["opacity"] = float(min(1.0, v["opacity"] + 0.05))
                elif r.check in ("yellow_chroma", "yellow_hue"):
                    mul("saturation", step)
                else:  # unnamed_unchanged, erase_band, outside_road, on_hood
                    mul("erase_strength", 1.0 / step)
        if not matched:
            mul("contrast", math.sqrt(step))
            mul("width_scale", step ** 0.25)
        return PaintParams(**v)


# ============================================================================================== results
@dataclass(frozen=True)
class PaintedLine:
    """One painted boundary line in one frame.

    Attributes:
        id: 0 = the ego lane's left boundary, 1 = its right boundary (stable across frames).
        side: ``"left"`` or ``"right"``.
        color: ``"white"`` or ``"yellow"``.
        pattern: ``"solid"``, ``"dashed"`` or ``"solid-dashed"``.
        count: 1 single, 2 double (``points`` then follow the middle of the pair).
        points: ``(N, 2) float64`` ``(u, v)`` image pixels of the line centre, one per ``polyline_step_px`` rows,
            near to far, only where the centre lies in the road mask.
        visible: True when at least two points are visible.
    """

    id: int
    side: str
    color: str
    pattern: str
    count: int
    points: F64
    visible: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; points rounded to 0.01 px."""
        return {"id": self.id, "side": self.side, "color": self.color, "pattern": self.pattern,
                "count": self.count, "visible": self.visible, "points": np.round(self.points, 2).tolist()}


@dataclass(frozen=True)
class RoadGeometry:
    """The edit as painted, in the road plane: what :mod:`lanepipe.edit.rig` needs to paint the same lines into the
    other cameras of a rig.

    Attributes:
        camera: the front camera the boundaries are measured in (its ego frame: origin on the ground under it).
        coefs: side -> ``(T, 4)`` boundary cubics ``y(x)`` in that frame, per frame (the QA loop's lateral offset
            included).
        fit_range_m: the cubics were fitted up to this distance; straight beyond.
        travelled: ``(T,)`` metres driven since frame 0 (the dash phase).
        params: the knobs of the painted attempt.
    """

    camera: Any
    coefs: dict[str, F64]
    fit_range_m: float
    travelled: F64
    params: PaintParams


@dataclass(frozen=True)
class PaintResult:
    """What :meth:`ProceduralPainter.paint` returns.

    Attributes:
        frames: ``(T, H, W, 3) uint8`` edited RGB frames (pixels outside the road mask unchanged,
            except old paint of a named boundary that the mask misses, which is erased).
        lanes: per frame, the painted lines (empty for ``none``).
        diagnostics: JSON-ready facts: camera and its source, vanishing point, lane width, line detection
            rates, speed and its source, timings.
        road: the painted edit in the road plane (procedural painter), for the other cameras of a rig.
    """

    frames: npt.NDArray[np.uint8]
    lanes: list[list[PaintedLine]]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    road: RoadGeometry | None = None


