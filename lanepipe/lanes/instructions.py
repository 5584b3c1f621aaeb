"""Lane instructions: grammar, canonical captions, presets and physical marking sizes.

Grammar (DESIGN.md §3): ``{count} {color} {pattern}`` with count ∈ single|double, color ∈ white|yellow,
pattern ∈ solid|dashed, plus ``double yellow solid-dashed`` (a passing zone) and ``none`` (remove the
markings). An optional suffix says which boundary of the ego lane it sets: ``@left`` (default: the left
boundary, the centre line of a two-lane road), ``@right`` or ``@both``. Boundaries it does not name keep
their original markings: ``none@both`` (preset ``no-ego-lane-markings``) removes the ego lane's two
boundaries, and every other line on the road (edge lines, the far lanes' lines) stays as it was.

Physical sizes follow the US MUTCD, 2009 edition, §3A.06 "Functions, Widths, and Patterns of Longitudinal
Pavement Markings": a normal line is 4 to 6 in wide; a broken line consists of 10 ft segments and 30 ft
gaps; a double line is two parallel lines separated by a discernible space (4 in is the common state
practice, e.g. Caltrans Standard Plan A20A). §3A.05: yellow separates opposing traffic, white same-direction.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lanepipe.errors import InputError

Count = Literal["single", "double"]
Color = Literal["white", "yellow"]
Pattern = Literal["solid", "dashed", "solid-dashed"]
Side = Literal["left", "right", "both"]

FT = 0.3048
IN = 0.0254

ACCEPTED_FORMS = (
    "'{single|double} {white|yellow} {solid|dashed}', 'double yellow solid-dashed', 'none', "
    "each optionally followed by '@left' (default), '@right' or '@both'; or 'preset:NAME' with NAME in "
)


class MarkingSizes(BaseModel):
    """Physical sizes of painted lines in metres (defaults: US MUTCD 2009 §3A.06)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line_width: float = Field(6 * IN, gt=0, le=0.5, description="normal line width, 4-6 in")
    dash_length: float = Field(10 * FT, gt=0, description="broken line segment, 10 ft")
    gap_length: float = Field(30 * FT, gt=0, description="broken line gap, 30 ft")
    double_spacing: float = Field(4 * IN, gt=0, le=1.0, description="space between the two lines of a double line")


@dataclass(frozen=True)
class LaneSpec:
    """A parsed instruction: what to paint on which boundary of the ego lane.

    ``count`` is 0 for ``none`` (remove markings). For ``solid-dashed`` the solid line is on the ego side
    (no passing from the ego lane).
    """

    count: int
    color: Color | None
    pattern: Pattern | None
    side: Side = "left"

    @property
    def is_removal(self) -> bool:
        return self.count == 0

    def to_text(self) -> str:
        """Canonical instruction text; ``parse_instruction(spec.to_text()) == spec``."""
        base = "none" if self.is_removal else f"{'single' if self.count == 1 else 'double'} {self.color} {self.pattern}"
        return base if self.side == "left" else f"{base}@{self.side}"

    @property
    def slug(self) -> str:
        """Folder-safe name, e.g. ``double-yellow-solid`` or ``none-at-right``."""
        return re.sub(r"[^a-z0-9]+", "-", self.to_text().replace("@", " at ")).strip("-")

    def caption(self) -> str:
        """Canonical caption: ``road with {count} {color} {pattern} lane markings``."""
        if self.is_removal:
            return "road with no lane markings"
        return f"road with {'single' if self.count == 1 else 'double'} {self.color} {self.pattern} lane markings"

    def describe(self) -> str:
        """What the edit does, for people (the report): the :meth:`caption` plus, for an edit of one boundary,
        which boundary it sets and that the other keeps its markings.

        ``none@right`` → ``road with no lane markings on the right boundary; left boundary unchanged``;
        ``none@both`` → ``road with no lane markings on the ego lane's boundaries; other lines unchanged``. The
        caption itself stays the canonical dataset/prompt text (the dataset filter parses it).
        """
        if self.side == "both":
            if self.is_removal:
                return f"{self.caption()} on the ego lane's boundaries; other lines unchanged"
            return f"{self.caption()} on both boundaries"
        other = "right" if self.side == "left" else "left"
        return f"{self.caption()} on the {self.side} boundary; {other} boundary unchanged"


#: Five named presets (``preset:NAME``). ``no-ego-lane-markings`` removes the ego lane's two boundaries only;
#: the other lines of the road keep their paint (see the module docstring).
PRESETS: dict[str, str] = {
    "double-yellow-solid": "double yellow solid",
    "single-white-dashed": "single white dashed",
    "single-white-solid": "single white solid",
    "passing-zone": "double yellow solid-dashed",
    "no-ego-lane-markings": "none@both",
}
#: Presets that were renamed: old name → (new name, why). The old name still works, with a DeprecationWarning.
RENAMED_PRESETS: dict[str, tuple[str, str]] = {
    "no-markings": ("no-ego-lane-markings", "it removes the ego lane's two boundaries only; other lines stay"),
}

_FORM = re.compile(
    r"^(?:(?P<none>none)|(?P<count>single|double)\s+(?P<color>white|yellow)\s+(?P<pattern>solid-dashed|solid|dashed))"
    r"(?:\s*@\s*(?P<side>left|right|both))?$"
)


def parse_instruction(text: str) -> LaneSpec:
    """Parse an instruction or ``preset:NAME``.

    Raises:
        InputError: the text matches none of the accepted forms (the message lists them).
    """
    raw = text
    t = " ".join(str(text).strip().lower().split())
    if t.startswith("preset:"):
        name = t.removeprefix("preset:").strip()
        if name in RENAMED_PRESETS:
            new, why = RENAMED_PRESETS[name]
            warnings.warn(f"instruction {raw!r}: preset {name!r} is renamed {new!r} ({why}); "
                          f"use 'preset:{new}'", DeprecationWarning, stacklevel=2)
            return parse_instruction(PRESETS[new])
        if name not in PRESETS:
            raise InputError(f"instruction {raw!r}", f"a preset among {', '.join(PRESETS)}", f"preset {name!r}")
        return parse_instruction(PRESETS[name])
    m = _FORM.match(t)
    if not m:
        raise InputError(f"instruction {raw!r}", ACCEPTED_FORMS + ", ".join(PRESETS), "no match")
    side: Side = m.group("side") or "left"  # type: ignore[assignment]
    if m.group("none"):
        return LaneSpec(count=0, color=None, pattern=None, side=side)
    count = 1 if m.group("count") == "single" else 2
    pattern: Pattern = m.group("pattern")  # type: ignore[assignment]
    if pattern == "solid-dashed" and (count != 2 or m.group("color") != "yellow"):
        raise InputError(f"instruction {raw!r}", "solid-dashed only as 'double yellow solid-dashed'",
                         f"{m.group('count')} {m.group('color')} solid-dashed")
    return LaneSpec(count=count, color=m.group("color"), pattern=pattern, side=side)  # type: ignore[arg-type]


_CAPTION = re.compile(
    r"road with (?P<count>single|double|unknown) (?P<color>white|yellow|mixed|unknown) "
    r"(?P<pattern>solid-dashed|solid|dashed|mixed|unknown) lane markings"
)


def parse_caption(caption: str) -> dict[str, str] | None:
    """The one caption regex shared by the dataset generator and the filter; None if it does not parse."""
    m = _CAPTION.fullmatch(" ".join(caption.strip().lower().split()))
    return m.groupdict() if m else None
