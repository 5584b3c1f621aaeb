from __future__ import annotations

import pytest

from lanepipe.errors import InputError
from lanepipe.lanes.instructions import PRESETS, LaneSpec, MarkingSizes, parse_caption, parse_instruction


@pytest.mark.parametrize(("text", "spec"), [
    ("double yellow solid", LaneSpec(2, "yellow", "solid", "left")),
    ("  Single  WHITE dashed @right", LaneSpec(1, "white", "dashed", "right")),
    ("double yellow solid-dashed", LaneSpec(2, "yellow", "solid-dashed", "left")),
    ("none", LaneSpec(0, None, None, "left")),
    ("none@both", LaneSpec(0, None, None, "both")),
    ("preset:passing-zone", LaneSpec(2, "yellow", "solid-dashed", "left")),
])
def test_parse(text: str, spec: LaneSpec) -> None:
    assert parse_instruction(text) == spec
    assert parse_instruction(spec.to_text()) == spec


@pytest.mark.parametrize("bad", ["triple white solid", "double red solid", "white solid", "single white solid-dashed",
                                 "double yellow solid @top", "preset:nope", ""])
def test_bad_instruction_lists_accepted_forms(bad: str) -> None:
    with pytest.raises(InputError) as ei:
        parse_instruction(bad)
    assert "expected" in str(ei.value) and any(w in str(ei.value) for w in ("single|double", "preset", "solid-dashed"))


def test_presets_and_captions_roundtrip() -> None:
    assert len(PRESETS) == 5
    for name in PRESETS:
        spec = parse_instruction(f"preset:{name}")
        cap = spec.caption()
        if not spec.is_removal:
            parsed = parse_caption(cap)
            assert parsed == {"count": "single" if spec.count == 1 else "double", "color": spec.color,
                              "pattern": spec.pattern}
    assert parse_caption("road with double unknown dashed lane markings") == {
        "count": "double", "color": "unknown", "pattern": "dashed"}
    assert parse_caption("a road with lines") is None
    assert LaneSpec(2, "yellow", "solid", "right").slug == "double-yellow-solid-at-right"


def test_mutcd_sizes() -> None:
    s = MarkingSizes()
    assert s.dash_length == pytest.approx(3.048) and s.gap_length == pytest.approx(9.144)
    assert 0.10 <= s.line_width <= 0.155
    with pytest.raises(ValueError):
        MarkingSizes(line_width=-1)


def test_removal_preset_says_what_it_removes() -> None:
    """Issue 13 item 5: the removal preset names what it does (the ego lane's two boundaries; other lines stay),
    its description says so, and the old name still parses to it, with a warning naming the new one."""
    spec = parse_instruction("preset:no-ego-lane-markings")
    assert spec == LaneSpec(0, None, None, "both")
    assert spec.describe() == "road with no lane markings on the ego lane's boundaries; other lines unchanged"
    with pytest.warns(DeprecationWarning, match="renamed 'no-ego-lane-markings'"):
        assert parse_instruction("preset:no-markings") == spec
