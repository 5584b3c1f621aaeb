"""Qwen2.5-VL judge: answer parsing, tiny random model end to end, config and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from lanepipe.errors import BackendUnavailableError, InputError
from lanepipe.lanes.instructions import parse_caption, parse_instruction
from lanepipe.verify.config import QwenJudgeConfig
from lanepipe.verify.qwen_vl import (
    IMAGE_PAD,
    MALFORMED,
    Judgement,
    JudgeVerifier,
    QwenJudge,
    build_prompt,
    caption_core,
    chat_text,
    normalise_caption,
    parse_judgement,
)

SPEC = parse_instruction("double yellow solid")

# ------------------------------------------------------------------------------------------- parsing


def test_parse_plain_json():
    j = parse_judgement('{"verdict": "PASS", "reasons": ["count ok", "colour ok"], '
                        '"revised_caption": "road with double yellow solid lane markings"}')
    assert j.passed and j.reasons == ["count ok", "colour ok"]
    assert j.revised_caption == "road with double yellow solid lane markings"
    assert parse_caption(j.revised_caption) is not None


def test_parse_code_fence_with_prose_and_trailing_junk():
    text = ('Sure! Here is my answer:\n```json\n{"verdict": "FAIL", "reasons": ["left line is white, '
            'expected yellow"], "revised_caption": null}\n```\nHope this helps. }}}')
    j = parse_judgement(text)
    assert not j.passed and j.reasons == ["left line is white, expected yellow"]
    assert j.revised_caption is None and j.raw == text


def test_parse_lowercase_verdict_and_keys():
    j = parse_judgement('{"Verdict": "pass", "Reasons": "all good", "Revised Caption": "x"}')
    assert j.passed and j.reasons == ["all good"] and j.revised_caption == "x"


def test_parse_trailing_comma_json():
    j = parse_judgement('{"verdict": "FAIL", "reasons": ["dashes misaligned",],}')
    assert not j.passed and j.reasons == ["dashes misaligned"]


def test_parse_skips_json_without_verdict():
    j = parse_judgement('{"note": 1} then {"verdict": "PASS", "reasons": []}')
    assert j.passed and j.reasons == []


def test_parse_nested_object_is_read_from_outer():
    j = parse_judgement('{"verdict": "FAIL", "reasons": [{"check": "texture", "ok": false}]}')
    assert not j.passed and "texture" in j.reasons[0]


def test_parse_verdict_line_format():
    text = ("VERDICT: FAIL\nREASONS: count is single, expected double; colour wrong\n"
            "REVISED_CAPTION: Road with double yellow solid lane markings, worn asphalt.")
    j = parse_judgement(text)
    assert not j.passed
    assert j.reasons == ["count is single, expected double", "colour wrong"]
    assert j.revised_caption == "road with double yellow solid lane markings, worn asphalt"
    assert caption_core(j.revised_caption) == "road with double yellow solid lane markings"


def test_parse_markdown_verdict_lines_and_bullets():
    text = ("**Verdict:** pass\n**Reasons:**\n- lines converge to the vanishing point\n"
            "- asphalt texture intact\n\nRevised caption: road with double yellow solid lane markings")
    j = parse_judgement(text)
    assert j.passed
    assert j.reasons == ["lines converge to the vanishing point", "asphalt texture intact"]
    assert parse_caption(j.revised_caption or "") is not None


def test_parse_leading_word():
    assert parse_judgement("PASS. The edit looks right.").passed
    j = parse_judgement("fail - lines are dashed")
    assert not j.passed and j.reasons == ["judge said FAIL without giving a reason"]


def test_parse_boolean_verdict():
    assert parse_judgement('{"verdict": true}').passed
    assert not parse_judgement('{"verdict": false, "reasons": ["x"]}').passed


@pytest.mark.parametrize("text", [
    "", "   ", "I think it looks fine overall.", "{not json", '{"verdict": "MAYBE", "reasons": []}',
    "\x00\x01 random bytes ÿþ", "VERDICT: unsure", '["PASS"]', "passing lanes everywhere",
])
def test_parse_malformed_is_fail(text):
    j = parse_judgement(text)
    assert not j.passed and j.raw == text and j.malformed
    assert len(j.reasons) == 1 and j.reasons[0].startswith(MALFORMED)


def test_parse_fail_without_reasons_gets_one():
    j = parse_judgement('{"verdict": "FAIL"}')
    assert not j.passed and j.reasons and not j.malformed


def test_normalise_caption():
    assert normalise_caption('  "Vivid, freshly painted road with double yellow solid lane markings."  ') == \
        "road with double yellow solid lane markings, vivid, freshly painted"
    assert normalise_caption("wet asphalt at dusk") == "wet asphalt at dusk"
    assert normalise_caption("") is None and normalise_caption(None) is None and normalise_caption("null") is None
    assert caption_core("road with no lane markings, clean asphalt") == "road with no lane markings"
    assert caption_core("nothing canonical") is None


def test_prompt_and_chat_text():
    p = build_prompt(SPEC)
    assert "double yellow solid" in p and "LEFT" in p and '"verdict"' in p
    assert "removed" in build_prompt(parse_instruction("none@both"))
    t = chat_text("hi", [4, 6])
    assert t.count(IMAGE_PAD) == 10 and t.endswith("<|im_start|>assistant\n")


# ------------------------------------------------------------------------------------------- config


def test_config_forbids_extra_and_checks_pixels():
    with pytest.raises(ValidationError):
        QwenJudgeConfig(preset="tiny-random", nonsense=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        QwenJudgeConfig(min_pixels=100_000, max_pixels=10_000)
    with pytest.raises(ValidationError):
        QwenJudgeConfig(preset="big")  # type: ignore[arg-type]


def test_missing_model_path_raises(tmp_path):
    with pytest.raises(BackendUnavailableError, match="does not exist"):
        QwenJudge(QwenJudgeConfig(model=str(tmp_path / "nope")))


def test_empty_model_folder_raises(tmp_path):
    with pytest.raises(BackendUnavailableError, match="cannot load"):
        QwenJudge(QwenJudgeConfig(model=str(tmp_path)))


# ------------------------------------------------------------------------------------------- tiny model

TINY = QwenJudgeConfig(preset="tiny-random", device="cpu", max_new_tokens=24, seed=0,
                       min_pixels=56 * 56, max_pixels=112 * 112)


@pytest.fixture(scope="module")
def judge() -> QwenJudge:
    return QwenJudge(TINY)


def _img(seed: int, h: int = 56, w: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_tiny_end_to_end(judge):
    j = judge.judge(_img(1), _img(2), SPEC)
    assert isinstance(j, Judgement)
    assert isinstance(j.raw, str) and j.raw
    assert not j.passed and j.malformed  # random weights produce noise


def test_tiny_deterministic(judge):
    a = judge.judge(_img(1), _img(2), SPEC).raw
    assert judge.judge(_img(1), _img(2), SPEC).raw == a
    assert QwenJudge(TINY).judge(_img(1), _img(2), SPEC).raw == a


def test_tiny_other_sizes_and_greedy():
    j = QwenJudge(TINY.model_copy(update={"temperature": 0.0})).judge(_img(3, 90, 160), _img(4, 60, 80), SPEC)
    assert j.raw and not j.passed


def test_static_kv_cache_gives_the_same_greedy_answer():
    greedy = TINY.model_copy(update={"temperature": 0.0, "max_new_tokens": 8})
    dynamic = QwenJudge(greedy.model_copy(update={"kv_cache": "dynamic"})).generate([_img(5)], "describe")
    static = QwenJudge(greedy.model_copy(update={"kv_cache": "static"})).generate([_img(5)], "describe")
    assert static == dynamic and dynamic


def test_tiny_saved_and_reloaded_through_real_path(tmp_path, judge):
    judge.model.save_pretrained(tmp_path, safe_serialization=True)
    judge.tokenizer.save_pretrained(tmp_path)
    judge.image_processor.save_pretrained(tmp_path)
    real = QwenJudge(QwenJudgeConfig(model=str(tmp_path), device="cpu", max_new_tokens=24, seed=0,
                                     min_pixels=56 * 56, max_pixels=112 * 112))
    assert real.judge(_img(1), _img(2), SPEC).raw == judge.judge(_img(1), _img(2), SPEC).raw


@pytest.mark.parametrize("bad", [
    np.zeros((56, 56), np.uint8), np.zeros((56, 56, 4), np.uint8), np.zeros((56, 56, 3), np.float32),
    np.zeros((8, 56, 3), np.uint8), np.zeros((14, 2000, 3), np.uint8), [[0, 0, 0]],
])
def test_bad_image_raises(judge, bad):
    with pytest.raises(InputError):
        judge.judge(bad, _img(2), SPEC)
    with pytest.raises(InputError):
        judge.judge(_img(1), bad, SPEC)


def test_verifier_adapter(judge):
    v = JudgeVerifier(judge)
    orig = np.stack([_img(1), _img(5)])
    edited = np.stack([_img(2), _img(6)])
    passed, reasons, caption = v.check(orig, edited, SPEC)
    assert passed is False and reasons and reasons[0].startswith(MALFORMED)
    assert caption is None or isinstance(caption, str)
    assert v.last is not None and v.last.raw == judge.judge(_img(1), _img(2), SPEC).raw
    with pytest.raises(InputError):
        v.check(np.zeros((0, 56, 56, 3), np.uint8), edited, SPEC)
    with pytest.raises(InputError):
        v.check(orig.astype(np.float32), edited, SPEC)


# ------------------------------------------------------------------------------------------- judge protocol


def test_tiny_preset_defaults_and_overrides():
    c = QwenJudgeConfig(preset="tiny-random")
    assert (c.device, c.dtype, c.max_new_tokens, c.max_pixels, c.temperature) == ("cpu", "float32", 24, 112 * 112, 0.1)
    assert QwenJudgeConfig(preset="tiny-random", max_new_tokens=5).max_new_tokens == 5
    real = QwenJudgeConfig()
    assert (real.device, real.max_new_tokens) == ("auto", 256)


def test_judges_share_one_protocol(judge):
    from lanepipe.verify import base
    from lanepipe.verify.lane_detector import LaneDetector

    assert Judgement is base.Judgement and MALFORMED == base.MALFORMED
    assert isinstance(judge, base.FrameJudge) and isinstance(base.VerifierJudge(LaneDetector()), base.FrameJudge)
    assert not isinstance(LaneDetector(), base.FrameJudge)  # a verifier inspects clips; wrap it to judge frames
    j = judge.judge(_img(1), _img(2), SPEC, road_mask=np.ones((56, 56), bool))  # the mask is not shown to Qwen
    assert j.raw == judge.judge(_img(1), _img(2), SPEC).raw


def test_lane_detector_as_a_frame_judge_known_answer():
    """The synthetic frame shows a double yellow solid left boundary and a single white dashed right one."""
    import json

    from lanepipe.sample import render_sample
    from lanepipe.verify.base import VerifierJudge
    from lanepipe.verify.lane_detector import LaneDetector

    s = render_sample(num_frames=1, width=480, height=270)
    frame, road = s.frames[0], s.road_masks[0]
    judge = VerifierJudge(LaneDetector())
    ok = judge.judge(frame, frame, SPEC, road_mask=road)
    assert ok.passed and ok.reasons == [] and ok.revised_caption is None
    assert json.loads(ok.raw)["left"]["count"] == 2
    bad = judge.judge(frame, frame, parse_instruction("single white solid"), road_mask=road)
    assert not bad.passed and not bad.malformed
    assert any("count" in r for r in bad.reasons) and any("color" in r for r in bad.reasons)
