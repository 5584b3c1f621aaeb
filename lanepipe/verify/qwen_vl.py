"""Qwen2.5-VL judge: shows a VLM the original and the edited first frame plus the lane instruction, and reads
back PASS/FAIL, reasons and a revised (more specific) caption (DESIGN.md §5, "verify (QA)").

Two ways to build the model:

* ``preset="tiny-random"``: a tiny :class:`Qwen2_5_VLConfig` (1 text layer, 1 vision block, hidden size 32)
  with seeded random weights and a byte-level tokenizer built in memory. Runs on CPU in well under a second;
  its output is noise and parses as a malformed FAIL. For tests and wiring only.
* ``preset="random-init"``: Qwen2.5-VL-7B's published architecture (:data:`QWEN25_VL_7B_TEXT`,
  :data:`QWEN25_VL_7B_VISION`) with random weights built on the device, the in-memory tokenizer (GPU timing; its
  verdicts are noise);
* ``preset="none"``: ``Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.model)`` (local folder or a hub
  id already in the local cache; nothing is downloaded here).

``AutoProcessor`` for Qwen2.5-VL needs torchvision (DESIGN.md §8), so inputs are built from the PIL image
processor (:class:`Qwen2VLImageProcessorPil`), a tokenizer and the Qwen2.5-VL chat format written out here
(``<|im_start|>role ... <|im_end|>``, one ``<|vision_start|><|image_pad|>*N<|vision_end|>`` per image).

Heavy libraries (torch, transformers, tokenizers) are imported when a judge is built, not at import time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe import torchkit
from lanepipe.errors import BackendUnavailableError, InputError
from lanepipe.lanes.instructions import LaneSpec, parse_caption
from lanepipe.monitoring import model_load
from lanepipe.verify.base import MALFORMED, Judgement, JudgingVerifier
from lanepipe.verify.config import DEFAULT_MODEL, QwenJudgeConfig

#: Qwen2.5-VL special tokens the prompt uses.
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"
VIDEO_PAD, END_OF_TEXT = "<|video_pad|>", "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)

# --------------------------------------------------------------------------------------------- captions

_CAPTION_SEARCH = re.compile(
    r"road with (?:(?:single|double|unknown) (?:white|yellow|mixed|unknown) "
    r"(?:solid-dashed|solid|dashed|mixed|unknown)|no) lane markings"
)


def caption_core(caption: str | None) -> str | None:
    """The canonical part of a caption that :func:`~lanepipe.lanes.instructions.parse_caption` reads, e.g.
    ``road with double yellow solid lane markings`` out of ``road with double yellow solid lane markings,
    freshly painted, ...``; None when there is none."""
    if not caption:
        return None
    m = _CAPTION_SEARCH.search(" ".join(caption.lower().split()))
    if not m:
        return None
    core = m.group(0)
    # "road with no lane markings" is the removal caption; parse_caption reads only the attribute form.
    return core if parse_caption(core) is not None or core == "road with no lane markings" else None


def normalise_caption(text: Any) -> str | None:
    """Tidy a revised caption: lowercase, one line, single spaces, no surrounding quotes or final full stop,
    canonical part moved to the front (``"{canonical}, {detail}"``). None for empty or non-text input."""
    if not isinstance(text, str):
        return None
    t = " ".join(text.split()).strip().strip("\"'`").strip().lower()
    t = t.rstrip(".").strip()
    if not t or t.lower() in {"none", "null", "n/a", "-"}:
        return None
    m = _CAPTION_SEARCH.search(t)
    if not m:
        return t
    core = m.group(0)
    rest = (t[: m.start()] + " " + t[m.end():]).strip()
    rest = re.sub(r"^[\s,;:.\-]+|[\s,;:\-]+$", "", " ".join(rest.split()))
    return f"{core}, {rest}" if rest else core


# --------------------------------------------------------------------------------------------- parsing

_PASS_WORDS = {"pass", "passed", "yes", "true", "ok", "accept", "accepted"}
_FAIL_WORDS = {"fail", "failed", "no", "false", "reject", "rejected"}
_VERDICT_LINE = re.compile(r"^[\s*#>`_-]*verdict[\s*_`]*[:=][\s*_`\"']*(?P<v>[a-z]+)", re.IGNORECASE | re.MULTILINE)
_REASON_LINE = re.compile(r"^[\s*#>`_-]*reasons?[\s*_`]*[:=](?P<r>.*)$", re.IGNORECASE | re.MULTILINE)
_CAPTION_LINE = re.compile(r"^[\s*#>`_-]*revised[\s_]*caption[\s*_`]*[:=](?P<c>.*)$", re.IGNORECASE | re.MULTILINE)
_FIELD_LINE = re.compile(r"^[\s*#>`_-]*(verdict|reasons?|revised[\s_]*caption)[\s*_`]*[:=]", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?P<b>.+)$")
_LEADING_WORD = re.compile(r"^[\s*#>`\"'_]*(?P<v>pass|fail)\b", re.IGNORECASE)


def _verdict_of(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    w = value.strip().strip(".!\"'`*").strip().lower()
    if w in _PASS_WORDS:
        return True
    if w in _FAIL_WORDS:
        return False
    return None


def _reasons_of(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for it in items:
        s = (json.dumps(it, sort_keys=True) if isinstance(it, dict | list) else str(it)).strip()
        if s:
            out.append(" ".join(s.split()))
    return out


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that can be decoded starting at some ``{`` of ``text`` (tolerates trailing commas
    and code fences), outermost first."""
    dec = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for m in re.finditer(r"\{", text):
        chunk = text[m.start():]
        for candidate in (chunk, re.sub(r",\s*([}\]])", r"\1", chunk)):
            try:
                obj, _ = dec.raw_decode(candidate)
            except (json.JSONDecodeError, ValueError):
                continue
            if isinstance(obj, dict):
                found.append(obj)
            break
    return found


def _from_json(obj: dict[str, Any], raw: str) -> Judgement | None:
    low = {str(k).strip().lower().replace(" ", "_").replace("-", "_"): v for k, v in obj.items()}
    if "verdict" not in low:
        return None
    passed = _verdict_of(low["verdict"])
    if passed is None:
        return None
    reasons = _reasons_of(low.get("reasons", low.get("reason")))
    caption = normalise_caption(low.get("revised_caption", low.get("caption")))
    return _finish(passed, reasons, caption, raw)


def _from_lines(text: str, raw: str) -> Judgement | None:
    m = _VERDICT_LINE.search(text)
    passed = _verdict_of(m.group("v")) if m else None
    if passed is None:
        lead = _LEADING_WORD.match(text)
        if not lead:
            return None
        passed = lead.group("v").lower() == "pass"
    lines = text.splitlines()
    reasons: list[str] = []
    for i, line in enumerate(lines):
        rm = _REASON_LINE.match(line)
        if not rm:
            continue
        inline = rm.group("r").strip().strip("*_`").strip()
        if inline:
            reasons.extend(p.strip() for p in re.split(r"\s*;\s*", inline) if p.strip())
        for nxt in lines[i + 1:]:  # bullets under a "REASONS:" header
            if _FIELD_LINE.match(nxt):
                break
            b = _BULLET.match(nxt)
            if b:
                reasons.append(b.group("b").strip())
            elif nxt.strip():
                break
    cm = _CAPTION_LINE.search(text)
    caption = normalise_caption(cm.group("c")) if cm else None
    return _finish(passed, reasons, caption, raw)


def _finish(passed: bool, reasons: list[str], caption: str | None, raw: str) -> Judgement:
    if not passed and not reasons:
        reasons = ["judge said FAIL without giving a reason"]
    return Judgement(passed=passed, reasons=reasons, revised_caption=caption, raw=raw)


def parse_judgement(text: str) -> Judgement:
    """Read a judge answer.

    Accepts, in this order: a JSON object with a ``verdict`` key anywhere in the text (code fences, prose
    around it, trailing commas, any key/verdict case, ``"reasons"`` as a list or a string); ``VERDICT: PASS``
    style lines (with ``REASONS:`` inline, ``;``-separated or as bullets below, and ``REVISED_CAPTION:``);
    an answer starting with the word PASS or FAIL. Anything else is a FAIL whose single reason starts with
    ``"malformed judge output"``; ``raw`` always keeps the text unchanged.
    """
    raw = text if isinstance(text, str) else str(text)
    body = raw.replace("\r\n", "\n")
    for obj in _json_objects(body):
        j = _from_json(obj, raw)
        if j is not None:
            return j
    j = _from_lines(body, raw)
    if j is not None:
        return j
    shown = " ".join(raw.split())
    shown = (shown[:120] + "...") if len(shown) > 120 else shown
    return Judgement(passed=False, reasons=[f"{MALFORMED}: no PASS/FAIL verdict found in {shown!r}"],
                     revised_caption=None, raw=raw)


# --------------------------------------------------------------------------------------------- prompt

SYSTEM_PROMPT = "You are a strict quality inspector of edited driving videos. You answer only in the format asked."

_SIDE_TEXT = {
    "left": "the LEFT boundary of the ego lane (the line left of the camera, the centre line of a two-lane road)",
    "right": "the RIGHT boundary of the ego lane (the line right of the camera)",
    "both": "BOTH boundaries of the ego lane",
}


def build_prompt(spec: LaneSpec) -> str:
    """The user text that follows the two images."""
    want = ("no lane markings at all (they must be removed)" if spec.is_removal
            else f"{spec.to_text().split('@')[0]} lane markings")
    return (
        "Image 1 is the ORIGINAL front-camera frame. Image 2 is the EDITED frame.\n"
        f"Instruction: {_SIDE_TEXT[spec.side]} must show {want}. Other boundaries must keep their original "
        "markings.\n"
        f"Target caption: \"{spec.caption()}\".\n"
        "Check the edited frame for: 1) count of lines (single/double/none); 2) colour (white/yellow); "
        "3) pattern (solid/dashed/solid-dashed); 4) perspective: the new lines follow the real lane geometry "
        "and converge to the same vanishing point as the original lanes; 5) road texture: the asphalt around "
        "the lines looks natural, no smears, ghosts of old markings or artefacts.\n"
        "Answer with ONE JSON object and nothing else:\n"
        '{"verdict": "PASS" or "FAIL", "reasons": ["one short reason per check that failed, or why it passed"], '
        '"revised_caption": "the target caption followed by a comma and specific visual details of the '
        'edited road"}\n'
        "If you cannot write JSON, write three lines: VERDICT: PASS|FAIL / REASONS: r1; r2 / "
        "REVISED_CAPTION: ..."
    )


def chat_text(user_text: str, image_token_counts: list[int], system: str = SYSTEM_PROMPT) -> str:
    """Qwen2.5-VL chat format with each image's ``<|image_pad|>`` already expanded, ending with the
    assistant header (generation prompt)."""
    vision = "".join(f"{VISION_START}{IMAGE_PAD * n}{VISION_END}" for n in image_token_counts)
    return (f"{IM_START}system\n{system}{IM_END}\n"
            f"{IM_START}user\n{vision}{user_text}{IM_END}\n"
            f"{IM_START}assistant\n")


def check_image(image: Any, name: str) -> npt.NDArray[np.uint8]:
    """Validate one ``(H, W, 3) uint8`` RGB image.

    Raises:
        InputError: not a numpy array, wrong rank/channels/dtype, a side under 14 px, or an aspect ratio
            over 100 (Qwen2.5-VL's resize refuses those).
    """
    if not isinstance(image, np.ndarray):
        raise InputError(name, "an (H, W, 3) uint8 numpy array", type(image).__name__)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(name, "shape (H, W, 3)", f"shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise InputError(name, "dtype uint8", f"dtype {image.dtype}")
    h, w = int(image.shape[0]), int(image.shape[1])
    if min(h, w) < 14:
        raise InputError(name, "both sides >= 14 px", f"{h}x{w}")
    if max(h, w) / min(h, w) > 100:
        raise InputError(name, "an aspect ratio <= 100", f"{h}x{w}")
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------------------------- model

#: Sizes of the tiny-random preset.
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "max_position_embeddings": 4096}
TINY_VISION = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
               "fullatt_block_indexes": [0], "patch_size": 14, "spatial_merge_size": 2,
               "temporal_patch_size": 2, "window_size": 56}


def tiny_tokenizer() -> Any:
    """Byte-level tokenizer (256 byte tokens, no merges) plus Qwen2.5-VL's special tokens, in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast: Any = PreTrainedTokenizerFast
    return fast(tokenizer_object=tok, eos_token=IM_END, pad_token=END_OF_TEXT,
                                   model_max_length=4096)


def tiny_model(tokenizer: Any, seed: int = 0) -> Any:
    """A ~0.1 M-parameter Qwen2_5_VLForConditionalGeneration with seeded random weights."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    text = dict(TINY_TEXT, vocab_size=len(tokenizer), bos_token_id=ids[END_OF_TEXT], eos_token_id=ids[IM_END],
                pad_token_id=ids[END_OF_TEXT],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(TINY_VISION),
                              image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD],
                              vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = Qwen2_5_VLForConditionalGeneration(config)
    return model.eval()


# Qwen/Qwen2.5-VL-7B-Instruct config.json (text_config, vision_config; rope_theta 1e6, mrope_section [16, 24, 24]):
QWEN25_VL_7B_TEXT: dict[str, Any] = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}}
QWEN25_VL_7B_VISION: dict[str, Any] = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu"}
#: Qwen2.5-VL-7B-Instruct's parameter count as published on its model page (8.29B, safetensors).
PUBLISHED_PARAMS_7B = 8.29e9


def random_init_model(tokenizer: Any, device: str, dtype: Any = None, seed: int = 0) -> Any:
    """Qwen2.5-VL-7B's architecture with random weights built directly on ``device`` (``"meta"``: shapes only).

    The in-memory byte-level tokenizer (:func:`tiny_tokenizer`) is used with it: its special-token ids are the ones
    the config points at and all lie inside the published vocabulary; prompts tokenise longer than with Qwen's BPE
    (one token per byte), so a judge call's prefill is, if anything, longer than a real one's."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    text = dict(QWEN25_VL_7B_TEXT, bos_token_id=ids[END_OF_TEXT], eos_token_id=ids[IM_END],
                pad_token_id=ids[END_OF_TEXT])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(QWEN25_VL_7B_VISION),
                              image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD],
                              vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END])
    if device != "meta":
        torch.manual_seed(seed)
    with torchkit.build_on(device, dtype):
        model: Any = Qwen2_5_VLForConditionalGeneration(config)
    return model.eval()


def _image_processor_cls() -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil


def _looks_like_path(model: str) -> bool:
    return (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") != 1
            or Path(model).expanduser().exists())


class QwenJudge(JudgingVerifier):
    """Qwen2.5-VL judge of one edit (see module doc). Build once per worker; :meth:`judge` per edit.

    Raises:
        BackendUnavailableError: ``model`` is a path that does not exist, or loading it fails (missing
            files, not in the local cache, transformers too old).
    """

    name = "qwen_vl"

    def __init__(self, cfg: QwenJudgeConfig | None = None) -> None:
        self.cfg = cfg or QwenJudgeConfig()
        self.device = torchkit.resolve_device(self.cfg.device, key="verify.qwen_vl.device")
        dtype = torchkit.resolve_dtype(self.cfg.dtype, self.device, key="verify.qwen_vl.dtype")
        size = {"shortest_edge": self.cfg.min_pixels, "longest_edge": self.cfg.max_pixels}
        with model_load(f"qwen_vl:{self.cfg.preset if self.cfg.preset != 'none' else self.cfg.model}"):
            if self.cfg.preset in ("tiny-random", "random-init"):
                self.tokenizer = tiny_tokenizer()
                self.model = (tiny_model(self.tokenizer, seed=self.cfg.seed or 0) if self.cfg.preset == "tiny-random"
                              else random_init_model(self.tokenizer, self.device, dtype, seed=self.cfg.seed or 0))
                vc = self.model.config.vision_config
                self.image_processor = _image_processor_cls()(
                    size=size, patch_size=vc.patch_size, merge_size=vc.spatial_merge_size,
                    temporal_patch_size=vc.temporal_patch_size)
            else:
                self._load(dtype, size)
        self.model.to(device=self.device, dtype=dtype)
        self.model.eval()

    def _load(self, dtype: Any, size: dict[str, int]) -> None:
        model = self.cfg.model
        if _looks_like_path(model) and not Path(model).expanduser().is_dir():
            raise BackendUnavailableError(
                f"qwen_vl judge: model folder {model!r} does not exist (expected a local Qwen2.5-VL checkpoint "
                f"folder with config.json and *.safetensors, or a hub id such as {DEFAULT_MODEL!r} already in "
                "the local cache); use preset='tiny-random' for a test model")
        src = str(Path(model).expanduser()) if Path(model).expanduser().is_dir() else model
        try:
            from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration
        except ImportError as e:  # pragma: no cover - depends on the installed transformers
            raise BackendUnavailableError(f"qwen_vl judge needs transformers with Qwen2.5-VL: {e}") from e
        local = self.cfg.local_files_only
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=local)
            self.image_processor = _image_processor_cls().from_pretrained(
                src, local_files_only=local, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                src, dtype=dtype, use_safetensors=True, local_files_only=local)
        except (OSError, ValueError, KeyError) as e:
            raise BackendUnavailableError(
                f"qwen_vl judge: cannot load Qwen2.5-VL from {model!r} ({type(e).__name__}: {e})") from e

    # ------------------------------------------------------------------------------------------ api

    def generate(self, images: list[npt.NDArray[np.uint8]], user_text: str) -> str:
        """Run the model on images + text and return the decoded answer (special tokens removed)."""
        import torch

        inputs = self.image_processor(images=images, return_tensors="pt")
        grid = inputs["image_grid_thw"]
        merge = int(getattr(self.image_processor, "merge_size", 2))
        counts = [int(g.prod()) // (merge * merge) for g in grid]
        enc = self.tokenizer(chat_text(user_text, counts), return_tensors="pt", add_special_tokens=False)
        input_ids = enc["input_ids"].to(self.device)
        gen: dict[str, Any] = {"max_new_tokens": self.cfg.max_new_tokens}
        if self.cfg.kv_cache == "static" or (self.cfg.kv_cache == "auto" and self.device.startswith("cuda")):
            gen["cache_implementation"] = "static"
        if self.cfg.temperature > 0:
            gen.update(do_sample=True, temperature=self.cfg.temperature)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        eos = [i for i in (self.tokenizer.convert_tokens_to_ids(t) for t in (IM_END, END_OF_TEXT))
               if isinstance(i, int) and i >= 0]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[-1]
        with torch.random.fork_rng(devices=[self.device] if self.device.startswith("cuda") else []):
            if self.cfg.seed is not None:
                torch.manual_seed(self.cfg.seed)
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=enc["attention_mask"].to(self.device),
                    pixel_values=inputs["pixel_values"].to(self.device, dtype=self.model.dtype),
                    image_grid_thw=grid.to(self.device), eos_token_id=eos, pad_token_id=pad, **gen)
        return str(self.tokenizer.decode(out[0, input_ids.shape[1]:], skip_special_tokens=True))

    def judge(self, original_first_frame: npt.NDArray[np.uint8], edited_first_frame: npt.NDArray[np.uint8],
              spec: LaneSpec, road_mask: npt.NDArray[np.bool_] | None = None) -> Judgement:
        """PASS/FAIL of an edit from the original and edited first frames ``(H, W, 3) uint8`` RGB
        (:class:`~lanepipe.verify.base.FrameJudge`; the ``(H, W) bool`` road mask is not shown to the model).

        Raises:
            InputError: an image is not ``(H, W, 3) uint8`` (or is too small / too elongated).
        """
        a = check_image(original_first_frame, "original first frame")
        b = check_image(edited_first_frame, "edited first frame")
        del road_mask
        return parse_judgement(self.generate([a, b], build_prompt(spec)))


def _first_frame(frames: Any, name: str) -> npt.NDArray[np.uint8]:
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        if frames.shape[0] < 1:
            raise InputError(name, "at least one frame", "0 frames")
        return check_image(frames[0], f"{name} [0]")
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        return check_image(frames, name)
    shape = tuple(frames.shape) if isinstance(frames, np.ndarray) else type(frames).__name__
    raise InputError(name, "(T, H, W, 3) uint8 frames", f"{shape}")


class JudgeVerifier:
    """QA-loop adapter: judge an edited clip by its first frame against the original's."""

    name = "qwen_vl"

    def __init__(self, judge: QwenJudge | QwenJudgeConfig | None = None) -> None:
        self.judge = judge if isinstance(judge, QwenJudge) else QwenJudge(judge)
        self.last: Judgement | None = None

    def check(self, original_frames: npt.NDArray[np.uint8], edited_frames: npt.NDArray[np.uint8],
              spec: LaneSpec) -> tuple[bool, list[str], str | None]:
        """``(passed, reasons, revised_caption)`` for ``(T, H, W, 3) uint8`` clips (first frames used).

        The full :class:`Judgement` (with the raw text) is kept in ``self.last``.

        Raises:
            InputError: a clip is not ``(T, H, W, 3) uint8`` with T >= 1.
        """
        j = self.judge.judge(_first_frame(original_frames, "original frames"),
                             _first_frame(edited_frames, "edited frames"), spec)
        self.last = j
        return j.passed, list(j.reasons), j.revised_caption
