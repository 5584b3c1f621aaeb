"""Training data for the generative painter: frames of clips → road masks → canonical captions → ``train.csv``.

A dataset is a folder (local path or any fsspec URL)::

    <dataset>/
      train.csv                      columns image, mask, prompt, prompt_2 (paths relative to <dataset>)
      images/<clip>_f<index>.png     (H, W, 3) uint8 RGB frame, as decoded (no resizing)
      masks/<clip>_f<index>.png      (H, W) uint8, 255 = road = region to inpaint, 0 = keep
      records/<clip>_f<index>.json   one record per frame, written last: the frame is finished
      clips/<clip>.json              one record per clip, written when all its selected frames are done
      summary.json                   counts per caption attribute, failed clips, the config

``prompt`` is the canonical caption ``road with {count} {color} {pattern} lane markings`` (DESIGN.md §3), with
count ∈ single|double|unknown, color ∈ white|yellow|mixed|unknown, pattern ∈ solid|dashed|solid-dashed|mixed|
unknown; it parses with :func:`lanepipe.lanes.instructions.parse_caption`, the regex the filter uses too.
``prompt_2`` starts with the same caption and adds details after a comma (what each boundary looks like, or the
VLM's description), for a second, longer text encoder (FLUX's T5).

``index`` is the frame's index in the source video (decode order, 0-based; 6 digits). A re-run skips the frames
that have a record (and clips whose record says the same frames were asked for); ``train.csv`` is rewritten at
the end, atomically, from all records in the folder. Every file is written with :mod:`lanepipe.io.storage`
atomic writes. :func:`validate_rows` checks a dataset's rows (the LoRA trainer reads through it).
"""

from __future__ import annotations

import csv
import glob as globlib
import hashlib
import io
import json
import logging
import posixpath
import re
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from lanepipe.config import DatasetConfig, apply_overrides, read_yaml_mapping
from lanepipe.datasets.sources import ClipRef, resolve_inputs
from lanepipe.errors import ConfigError, InputError, LanepipeError
from lanepipe.io import storage
from lanepipe.io.video import VIDEO_EXTENSIONS, clip_name_from_source
from lanepipe.lanes.instructions import parse_caption
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import BoundaryName, BoundaryReport, LaneReport

log = logging.getLogger(__name__)

TRAIN_CSV = "train.csv"
SUMMARY_JSON = "summary.json"
IMAGES_DIR, MASKS_DIR, RECORDS_DIR, CLIPS_DIR = "images", "masks", "records", "clips"
#: Columns of ``train.csv``, in order. image/mask: paths relative to the dataset folder.
CSV_COLUMNS: tuple[str, ...] = ("image", "mask", "prompt", "prompt_2")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
ATTRIBUTES: tuple[str, ...] = ("count", "color", "pattern")
UNKNOWN = "unknown"
#: Values each caption attribute may take (``unknown`` too); ``solid-dashed`` is a double line with one of each
#: (DESIGN.md §3), ``mixed`` lines of different colours / patterns (``boundary="both"``, or a VLM's reading).
VOCABULARY: dict[str, tuple[str, ...]] = {
    "count": ("single", "double", UNKNOWN),
    "color": ("white", "yellow", "mixed", UNKNOWN),
    "pattern": ("solid", "dashed", "solid-dashed", "mixed", UNKNOWN),
}
_FRAME_KEY = re.compile(r"^(?P<clip>.+)_f(?P<index>\d{6,})$")

U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
ProgressFn = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------------------------------ captions


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


# ------------------------------------------------------------------------------------------------ inputs


def is_still(source: str) -> bool:
    """Whether ``source`` names a still image (by extension), which is read as a one-frame clip."""
    return source.split("?", 1)[0].lower().endswith(IMAGE_EXTENSIONS)


def _is_media(path: str) -> bool:
    return is_still(path) or path.lower().endswith(VIDEO_EXTENSIONS)


def _expand_media(item: str) -> list[str] | None:
    """Stills and videos of a folder, glob or image file; None for what :func:`resolve_inputs` reads alone."""
    if item.startswith(("chunks", "paiav://")):
        return None
    globbed = any(ch in item for ch in "*?[")
    if storage.is_remote(item):
        fs, path = storage.filesystem(item)
        proto = item.split("://", 1)[0]
        if globbed:
            found = [f"{proto}://{p}" for p in sorted(fs.glob(path))]
        elif is_still(item):
            return [item]
        elif fs.isdir(path):
            found = [f"{proto}://{p}" for p in sorted(fs.find(path))]
        else:
            return None
    else:
        local = storage.absolute(item)
        if globbed:
            found = sorted(p for p in globlib.glob(local, recursive=True) if Path(p).is_file())  # noqa: PTH207
        elif is_still(local):
            return [local]
        elif Path(local).is_dir():
            found = sorted(str(f) for f in Path(local).rglob("*") if f.is_file())
        else:
            return None
    media = [f for f in found if _is_media(f)]
    if not media:
        raise InputError(item, f"video files ({', '.join(VIDEO_EXTENSIONS)}) or images "
                         f"({', '.join(IMAGE_EXTENSIONS)})", f"{len(found)} file(s), none a video or an image")
    return media


def _media_name(source: str) -> str:
    if not is_still(source):
        return clip_name_from_source(source)
    stem = source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem).strip("_") or "image"


def resolve_dataset_inputs(items: list[str]) -> list[ClipRef]:
    """Like :func:`~lanepipe.datasets.sources.resolve_inputs`, plus still images (files, folders, globs).

    Raises:
        InputError: no inputs, an unknown URL scheme, or a folder/glob with neither videos nor images.
    """
    if not items:
        raise InputError("--input", "at least one clip, image, folder, glob or URL", "nothing")
    sources: list[str] = []
    for item in items:
        media = _expand_media(item)
        sources.extend(media if media is not None else [r.source for r in resolve_inputs([item])])
    refs: list[ClipRef] = []
    used: set[str] = set()
    for src in dict.fromkeys(sources):
        name = _media_name(src)
        if name in used:
            name = f"{name}-{hashlib.sha1(src.encode()).hexdigest()[:6]}"
        used.add(name)
        refs.append(ClipRef(source=src, name=name))
    return refs


def _read_still(source: str, name: str, max_pixels: int) -> Clip:
    try:
        data = storage.read_bytes(source)
    except FileNotFoundError:
        raise InputError(source, "an image file", "no file at that path") from None
    except OSError as e:
        raise InputError(source, "a readable image file", f"an error reading it: {e}") from e
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise InputError(source, "an image OpenCV can decode (PNG, JPEG, ...)",
                         f"{len(data)} bytes it cannot decode", "the file may be truncated or not an image")
    h, w = bgr.shape[:2]
    if w * h > max_pixels:
        raise InputError(source, f"images of at most {max_pixels} pixels (max_pixels)", f"{w}x{h}")
    rgb: U8 = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8)[None]
    return Clip(name=name, source=source, frames=rgb, fps=1.0, timestamps=np.zeros(1), source_fps=1.0,
                source_indices=np.zeros(1, np.int64), meta={"still": True})


def read_frames(source: str, *, name: str, frames: list[int] | None = None, stride: int | None = 10,
                max_frames: int = 50, max_pixels: int = 3840 * 2160) -> Clip:
    """Decode only the selected frames of a video (or read a still as a one-frame clip).

    Args:
        frames: source frame indices (decode order, 0-based) to keep; else every ``stride``-th from 0.
        max_frames: at most this many frames are kept (decoding stops there).

    Returns:
        A :class:`Clip` of ``(T, H, W, 3) uint8`` frames whose ``source_indices`` are the selected indices;
        ``meta["missing_indices"]`` lists asked-for indices past the end of the video.

    Raises:
        InputError: missing, unreadable or undecodable file, no video stream, frames over ``max_pixels``, or
            none of the selected frames exists.
    """
    if is_still(source):
        return _read_still(source, name, max_pixels)
    import av

    from lanepipe.io.video import _open_container, _pick_fps, _video_stream

    wanted = set(frames) if frames is not None else None
    last = max(wanted) if wanted else None
    step = stride or 1
    kept: list[U8] = []
    stamps: list[float] = []
    indices: list[int] = []
    decoded = 0
    with _open_container(source) as (container, _):
        stream = _video_stream(container, source)
        try:
            src_fps = _pick_fps(stream, container)[0]
        except InputError:
            src_fps = 0.0
        w, h = int(stream.codec_context.width), int(stream.codec_context.height)
        if w * h > max_pixels:
            raise InputError(source, f"frames of at most {max_pixels} pixels (max_pixels)", f"{w}x{h}",
                             "downscale it first or raise max_pixels")
        stream.thread_type = "AUTO"
        t0: float | None = None
        try:
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                t = float(frame.time) if frame.time is not None else (i / src_fps if src_fps else float(i))
                t0 = t if t0 is None else t0
                if (i in wanted) if wanted is not None else (i % step == 0):
                    kept.append(frame.to_ndarray(format="rgb24"))
                    stamps.append(t - t0)
                    indices.append(i)
                if len(kept) >= max_frames or (last is not None and i >= last):
                    break
        except (av.error.FFmpegError, ValueError, OSError) as e:
            if not kept:
                raise InputError(source, "a decodable video stream",
                                 f"a decoding error after {decoded} frames ({type(e).__name__}: {e})",
                                 "the file may be truncated or corrupt") from None
            log.warning("%s: decoding stopped after %d frames (%s); keeping %d selected", source, decoded, e,
                        len(kept))
    if not kept:
        asked = f"frames {sorted(wanted)[:8]}" if wanted is not None else f"every {step}th frame"
        raise InputError(source, f"a video with {asked}", f"{decoded} decodable frames",
                         "pick indices below the frame count")
    missing = sorted(set(wanted) - set(indices)) if wanted is not None and len(kept) < max_frames else []
    return Clip(name=name, source=source, frames=np.stack(kept).astype(np.uint8, copy=False), fps=float(src_fps or 1.0),
                timestamps=np.asarray(stamps, np.float64), source_fps=float(src_fps),
                source_indices=np.asarray(indices, np.int64), meta={"missing_indices": missing})


# ------------------------------------------------------------------------------------------------ generation


def frame_key(clip: str, index: int) -> str:
    """``<clip>_f<index:06d>``: the stem of a frame's image, mask and record."""
    return f"{clip}_f{index:06d}"


def _png(image: npt.NDArray[np.uint8], what: str) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {what}")
    return bytes(buf.tobytes())


def _selection(cfg: DatasetConfig) -> dict[str, Any]:
    return {"frames": cfg.frames, "stride": cfg.effective_stride, "max_frames": cfg.max_frames,
            "segment": cfg.segment.backend, "captioner": cfg.captioner, "boundary": cfg.boundary}


class DatasetStage:
    """One clip → its selected frames' images, masks, captions and records (plain class; no Ray).

    ``__init__`` builds the segmentation backend (``segment.backend``, as the segment stage does) and the
    captioner once; :meth:`process` is the actor's entry point, :meth:`__call__` does one clip.
    """

    def __init__(self, cfg: DatasetConfig, root: str) -> None:
        from lanepipe.segment import build_segmenter

        self.cfg = cfg
        self.root = storage.absolute(root)
        self.segmenter = build_segmenter(cfg.segment)
        self.captioner = build_captioner(cfg)

    def url(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def _done_indices(self, clip: str) -> set[int]:
        fs, path = storage.filesystem(self.url(RECORDS_DIR))
        pattern = posixpath.join(path, f"{clip}_f*.json")
        found = storage.retry(lambda: fs.glob(pattern), what=f"list records of {clip}")
        out: set[int] = set()
        for p in found:
            m = _FRAME_KEY.match(posixpath.basename(str(p)).removesuffix(".json"))
            if m and m.group("clip") == clip:
                out.add(int(m.group("index")))
        return out

    def process(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """Pipeline entry: ``{"source", "name"}`` → ``[clip row]``."""
        return [self(ClipRef(source=str(item["source"]), name=str(item["name"])))]

    def __call__(self, ref: ClipRef) -> dict[str, Any]:
        """Do one clip. Never raises: a failure becomes a row with the reason (the other clips go on)."""
        t_start = time.perf_counter()
        selection = _selection(self.cfg)
        row: dict[str, Any] = {"clip": ref.name, "source": ref.source, "stage": "dataset", "status": "ok",
                               "error": None, "error_type": None, "backend": self.segmenter.name,
                               "captioner": self.captioner.name, "selection": selection, "frames": [],
                               "num_frames": 0, "frames_resumed": 0, "frames_dropped": [], "missing_indices": [],
                               "skipped": False, "seconds": None}
        marker = self.url(CLIPS_DIR, f"{ref.name}.json")
        try:
            if storage.exists(marker):
                done: dict[str, Any] = json.loads(storage.read_text(marker))
                if done.get("selection") == selection and done.get("source") == ref.source:
                    return done | {"skipped": True, "num_frames": 0, "frames_resumed": len(done.get("frames", []))}
            self._run(ref, row)
            row["seconds"] = round(time.perf_counter() - t_start, 3)
            storage.write_text_atomic(marker, json.dumps(row, indent=2, default=str))
        except LanepipeError as e:
            row.update(status="failed", error=str(e), error_type=type(e).__name__)
        except Exception as e:  # one bad clip never stops the others: record it with its traceback tail
            row.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}",
                       error_type=type(e).__name__)
        row["seconds"] = round(time.perf_counter() - t_start, 3)
        return row

    def _run(self, ref: ClipRef, row: dict[str, Any]) -> None:
        cfg = self.cfg
        done = self._done_indices(ref.name)
        if cfg.frames is not None and set(cfg.frames) <= done:  # nothing to decode
            row.update(frames=list(cfg.frames), frames_resumed=len(cfg.frames))
            return
        clip = read_frames(ref.source, name=ref.name, frames=cfg.frames, stride=cfg.effective_stride,
                           max_frames=cfg.max_frames, max_pixels=cfg.max_pixels)
        indices = [int(i) for i in clip.source_indices]
        row.update(missing_indices=clip.meta.get("missing_indices", []), frames_resumed=len(set(indices) & done))
        todo = [k for k, i in enumerate(indices) if i not in done]
        kept = [i for i in indices if i in done]
        if todo:
            sub = Clip(name=clip.name, source=clip.source, frames=np.ascontiguousarray(clip.frames[todo]),
                       fps=clip.fps, timestamps=clip.timestamps[todo], source_fps=clip.source_fps,
                       source_indices=clip.source_indices[todo], meta=clip.meta)
            masks: RoadMasks = self.segmenter.segment(sub)
            masks.check_matches(sub)
            captions = self.captioner.caption(sub.frames, masks.masks)
            if len(captions) != sub.num_frames:
                raise RuntimeError(f"captioner {self.captioner.name} returned {len(captions)} captions for "
                                   f"{sub.num_frames} frames")
            for k in range(sub.num_frames):
                index = int(sub.source_indices[k])
                if not masks.masks[k].any():
                    row["frames_dropped"].append({"frame": index, "reason": "empty road mask"})
                    continue
                self._write_frame(ref, index, sub.frames[k], masks.masks[k], captions[k])
                kept.append(index)
        row.update(frames=sorted(kept), num_frames=len(todo) - len(row["frames_dropped"]))

    def _write_frame(self, ref: ClipRef, index: int, frame: U8, mask: Bool, cap: Caption) -> None:
        key = frame_key(ref.name, index)
        image_rel, mask_rel = f"{IMAGES_DIR}/{key}.png", f"{MASKS_DIR}/{key}.png"
        storage.write_bytes_atomic(self.url(image_rel), _png(np.ascontiguousarray(frame[:, :, ::-1]), key))
        storage.write_bytes_atomic(self.url(mask_rel), _png(mask.astype(np.uint8) * 255, f"mask {key}"))
        attrs = parse_caption(cap.prompt) or dict.fromkeys(ATTRIBUTES, UNKNOWN)
        record = {"image": image_rel, "mask": mask_rel, "prompt": cap.prompt, "prompt_2": cap.prompt_2,
                  "clip": ref.name, "source": ref.source, "frame": index, "width": int(frame.shape[1]),
                  "height": int(frame.shape[0]), "road_fraction": round(float(mask.mean()), 4), **attrs,
                  "segmenter": self.segmenter.name, "captioner": self.captioner.name, "caption_details": cap.details}
        storage.write_text_atomic(self.url(RECORDS_DIR, f"{key}.json"), json.dumps(record, default=str))


# ------------------------------------------------------------------------------------------------ train.csv


def read_records(root: str, max_workers: int = 8) -> list[dict[str, Any]]:
    """Every per-frame record of a dataset folder, sorted by (clip, frame); unreadable ones are logged, skipped."""
    url = storage.join(storage.absolute(root), RECORDS_DIR)
    if not storage.exists(url):
        return []
    urls = [u for u in storage.list_files(url) if u.endswith(".json")]

    def _one(u: str) -> dict[str, Any] | None:
        try:
            rec = json.loads(storage.read_text(u))
        except (OSError, ValueError) as e:
            log.warning("skipping unreadable record %s: %s", u, e)
            return None
        return rec if isinstance(rec, dict) and all(c in rec for c in CSV_COLUMNS) else None

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        records = [r for r in pool.map(_one, urls) if r is not None]
    records.sort(key=lambda r: (str(r.get("clip")), int(r.get("frame") or 0), str(r["image"])))
    return records


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    """``train.csv`` text: header :data:`CSV_COLUMNS`, one line per row (RFC 4180 quoting)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in CSV_COLUMNS})
    return buf.getvalue()


def attribute_counts(prompts: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per caption attribute, how many prompts have each value (every value of :data:`VOCABULARY` listed);
    prompts that do not parse are counted under ``"unparseable"``."""
    counts: dict[str, dict[str, int]] = {a: dict.fromkeys(VOCABULARY[a], 0) for a in ATTRIBUTES}
    counts["unparseable"] = {"rows": 0}
    for p in prompts:
        parsed = parse_caption(p)
        if parsed is None:
            counts["unparseable"]["rows"] += 1
            continue
        for a in ATTRIBUTES:
            counts[a][parsed[a]] = counts[a].get(parsed[a], 0) + 1
    return counts


def write_train_csv(root: str) -> tuple[str, list[dict[str, Any]]]:
    """Rewrite ``train.csv`` atomically from all records of ``root``; returns its URL and the records."""
    records = read_records(root)
    url = storage.join(storage.absolute(root), TRAIN_CSV)
    storage.write_text_atomic(url, csv_text(records))
    return url, records


@dataclass
class DatasetSummary:
    """What ``generate_dataset`` did.

    Attributes:
        url: the dataset folder. csv_url: its ``train.csv``.
        clips: one row per input clip (status ok/failed, error, frames written/resumed/dropped).
        rows: rows in ``train.csv`` (all records of the folder, earlier runs included).
        counts: per attribute, rows per value (see :func:`attribute_counts`).
        frames_written / frames_resumed: frames done now / found finished.
    """

    url: str
    csv_url: str
    clips: list[dict[str, Any]]
    rows: int
    counts: dict[str, dict[str, int]]
    frames_written: int
    frames_resumed: int
    seconds: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.clips if c.get("status") != "ok"]


def _run_ray(cfg: DatasetConfig, root: str, items: list[dict[str, Any]],
             progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Clips through a Ray Data pool of :class:`~lanepipe.actors.dataset.DatasetActor` (one backend load per
    actor), with the restart/retry settings of the run pipeline (:func:`lanepipe.pipeline.through_actor_pool`)."""
    from lanepipe.actors.base import MAX_TASK_RETRIES
    from lanepipe.actors.dataset import DatasetActor
    from lanepipe.pipeline import drain, item_stream, start_ray, through_actor_pool

    start_ray(cfg.ray)
    ds = through_actor_pool(item_stream(items), DatasetActor, {"cfg_json": cfg.model_dump_json(), "root": root},
                            cfg.resources, cfg.resources.custom_resources or None, batch_size=1)
    rows = drain(ds, progress)
    seen = {r.get("clip") for r in rows}
    for item in items:
        if item["name"] not in seen:
            row = {"clip": item["name"], "source": item["source"], "stage": "dataset", "status": "failed",
                   "error_type": "WorkerDied", "skipped": False, "frames": [], "num_frames": 0,
                   "error": f"the Ray worker running this clip died {MAX_TASK_RETRIES + 1} times (a crash or an "
                            "out-of-memory kill); see the Ray worker logs"}
            rows.append(row)
            if progress:
                progress(row)
    return rows


def generate_dataset(cfg: DatasetConfig, *, executor: str = "ray",
                     progress: ProgressFn | None = None) -> DatasetSummary:
    """Build (or resume) the dataset of ``cfg.paths`` in ``cfg.output``; rewrite ``train.csv`` at the end.

    Args:
        executor: ``"ray"`` (Ray Data actor pool, ``cfg.resources``) or ``"sequential"`` (this process).
        progress: called with each clip's row as it finishes.

    Raises:
        InputError: no inputs, or an input that names nothing usable (empty folder, unknown scheme). A clip
            that cannot be decoded is not raised: its row says why (``status="failed"``).
        ConfigError: an unknown executor.
    """
    if executor not in ("ray", "sequential"):
        raise ConfigError(f"executor: expected 'ray' or 'sequential', got {executor!r}")
    t0 = time.perf_counter()
    root = storage.absolute(cfg.output)
    refs = resolve_dataset_inputs(cfg.paths)
    items = [{"source": r.source, "name": r.name} for r in refs]
    if executor == "ray":
        rows = _run_ray(cfg, root, items, progress)
    else:
        stage = DatasetStage(cfg, root)
        rows = []
        for item in items:
            rows.extend(stage.process(item))
            if progress:
                progress(rows[-1])
    order = {i["name"]: k for k, i in enumerate(items)}
    rows.sort(key=lambda r: order.get(str(r.get("clip")), len(order)))
    csv_url, records = write_train_csv(root)
    counts = attribute_counts(str(r["prompt"]) for r in records)
    summary = DatasetSummary(url=root, csv_url=csv_url, clips=rows, rows=len(records), counts=counts,
                             frames_written=sum(int(r.get("num_frames") or 0) for r in rows),
                             frames_resumed=sum(int(r.get("frames_resumed") or 0) for r in rows),
                             seconds=time.perf_counter() - t0)
    failed = [{"clip": r.get("clip"), "source": r.get("source"), "error_type": r.get("error_type"),
               "error": r.get("error")} for r in summary.failed]
    storage.write_text_atomic(storage.join(root, SUMMARY_JSON), json.dumps({
        "rows": summary.rows, "counts": counts, "clips": len(rows), "failed": failed,
        "frames_written": summary.frames_written, "frames_resumed": summary.frames_resumed,
        "seconds": round(summary.seconds, 3), "config": cfg.model_dump(mode="json")}, indent=2, default=str))
    return summary


def load_dataset_config(path: str | Path | None = None, overrides: list[str] | None = None,
                        base: dict[str, Any] | None = None) -> DatasetConfig:
    """A :class:`DatasetConfig` from an optional YAML file, then ``base`` (CLI flags), then ``a.b=c`` overrides.

    Raises:
        ConfigError: unreadable YAML, unknown keys or invalid values, with pydantic's explanation.
    """
    data: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    data.update(base or {})
    apply_overrides(data, overrides or [])
    try:
        return DatasetConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(str(x) for x in err['loc'])}: {err['msg']} "
                 f"(got {json.dumps(err.get('input'), default=str)[:80]})" for err in e.errors()]
        raise ConfigError("invalid dataset config:\n" + "\n".join(lines)) from None


# ------------------------------------------------------------------------------------------------ validation


@dataclass(frozen=True)
class TrainRow:
    """A usable row of ``train.csv``.

    Attributes:
        line: the row's line in ``train.csv`` (the header is line 1).
        image / mask: paths as written in the CSV, relative to the dataset folder.
        prompt / prompt_2: the captions, as written.
        image_url / mask_url: the files' full paths or URLs.
        width / height: the image's (and mask's) size in pixels.
    """

    line: int
    image: str
    mask: str
    prompt: str
    prompt_2: str
    image_url: str
    mask_url: str
    width: int
    height: int


@dataclass(frozen=True)
class BadRow:
    """A row of ``train.csv`` that cannot be used: its line, its values as read, and why."""

    line: int
    values: dict[str, str]
    reason: str


def dataset_root(dataset_url: str) -> tuple[str, str]:
    """``(folder, csv_url)`` of a dataset given as its folder or its ``train.csv`` (path or URL)."""
    url = storage.absolute(dataset_url)
    if url.rstrip("/").lower().endswith(".csv"):
        return url.rstrip("/").rsplit("/", 1)[0], url.rstrip("/")
    return url.rstrip("/"), storage.join(url, TRAIN_CSV)


def read_train_csv(dataset_url: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line, values)`` rows of a dataset's ``train.csv``.

    Raises:
        InputError: no ``train.csv`` there, unreadable, not UTF-8 or with no header line.
    """
    _, csv_url = dataset_root(dataset_url)
    try:
        text = storage.read_text(csv_url)
    except FileNotFoundError:
        raise InputError(csv_url, "a train.csv (columns " + ", ".join(CSV_COLUMNS) + ")", "no file there",
                         "run `lanepipe dataset` first or point at the dataset folder") from None
    except UnicodeDecodeError as e:
        raise InputError(csv_url, "a UTF-8 CSV file", f"undecodable bytes ({e})") from None
    except OSError as e:
        raise InputError(csv_url, "a readable train.csv", f"an error reading it: {e}") from e
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(csv_url, "a header line " + ",".join(CSV_COLUMNS), "an empty file") from None
    rows: list[tuple[int, dict[str, str]]] = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue  # blank line
        rows.append((reader.line_num, {h: (values[k] if k < len(values) else "") for k, h in enumerate(header)}))
    return header, rows


def safe_relative(path: str) -> str | None:
    """The normalised form of a path relative to the dataset folder, or None if it leaves the folder (absolute,
    a URL, a drive, or ``..`` above the top). Checked on the text only: a symlink inside is followed."""
    p = path.strip().replace("\\", "/")
    if not p or "://" in p or p.startswith("/") or re.match(r"^[A-Za-z]:", p):
        return None
    norm = posixpath.normpath(p)
    if norm in (".", "..") or norm.startswith("../"):
        return None
    return norm


def _decode(url: str, flags: int) -> tuple[npt.NDArray[np.uint8] | None, str | None]:
    try:
        data = storage.read_bytes(url)
    except FileNotFoundError:
        return None, "no file there"
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if img is None:
        return None, f"{len(data)} bytes that do not decode as an image"
    return np.asarray(img, dtype=np.uint8), None


def check_row(root: str, line: int, values: dict[str, str], *, check_files: bool = True) -> TrainRow | BadRow:
    """Check one row: columns present and non-empty, paths inside the dataset folder, and (``check_files``)
    image and mask readable, of one size, mask not empty (no pixel above 127)."""
    def bad(reason: str) -> BadRow:
        return BadRow(line=line, values=dict(values), reason=reason)

    missing = [c for c in CSV_COLUMNS if c not in values]
    if missing:
        return bad(f"missing column(s) {', '.join(missing)} (the CSV has {', '.join(values) or 'none'})")
    empty = [c for c in CSV_COLUMNS if not values[c].strip() and c != "prompt_2"]
    if empty:
        return bad(f"empty {', '.join(empty)}")
    rel: dict[str, str] = {}
    for c in ("image", "mask"):
        norm = safe_relative(values[c])
        if norm is None:
            return bad(f"{c} path {values[c]!r} is outside the dataset folder (give a path relative to it, "
                       "without '..')")
        rel[c] = norm
    image_url, mask_url = storage.join(root, rel["image"]), storage.join(root, rel["mask"])
    w = h = 0
    if check_files:
        img, err = _decode(image_url, cv2.IMREAD_COLOR)
        if img is None:
            return bad(f"image {values['image']!r} unreadable: {err}")
        mask, err = _decode(mask_url, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            return bad(f"mask {values['mask']!r} unreadable: {err}")
        h, w = img.shape[:2]
        if mask.shape[:2] != (h, w):
            return bad(f"image is {w}x{h} but mask is {mask.shape[1]}x{mask.shape[0]} (W x H); they must match")
        if not (mask > 127).any():
            return bad("mask is empty (no white pixel: nothing to inpaint)")
    return TrainRow(line=line, image=values["image"], mask=values["mask"], prompt=values["prompt"],
                    prompt_2=values["prompt_2"], image_url=image_url, mask_url=mask_url, width=int(w), height=int(h))


def validate_rows(dataset_url: str, *, check_files: bool = True,
                  max_workers: int = 8) -> tuple[list[TrainRow], list[BadRow]]:
    """Split a dataset's ``train.csv`` rows into usable rows and bad rows with their reasons.

    A row is bad when the CSV lacks one of :data:`CSV_COLUMNS`, image/mask/prompt is empty, a path leaves the
    dataset folder (absolute, URL, ``..``), the image or mask cannot be read or decoded, their sizes differ, or
    the mask is empty. ``prompt_2`` may be empty. The caption is not parsed here (see ``datasets.filter``).

    Args:
        dataset_url: the dataset folder or its ``train.csv`` (local path or fsspec URL).
        check_files: also read and decode every image and mask (False: columns and paths only).
        max_workers: files read in parallel.

    Returns:
        ``(good_rows, bad_rows)`` in CSV order; image sizes are 0 when ``check_files`` is False.

    Raises:
        InputError: no readable ``train.csv`` (a missing file or no header is not a row problem).
    """
    root, _ = dataset_root(dataset_url)
    _, rows = read_train_csv(dataset_url)
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        results = list(pool.map(lambda r: check_row(root, r[0], r[1], check_files=check_files), rows))
    good = [r for r in results if isinstance(r, TrainRow)]
    bad = [r for r in results if isinstance(r, BadRow)]
    return good, bad
