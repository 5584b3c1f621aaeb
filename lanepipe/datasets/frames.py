"""Inputs of a training dataset: clips, folders, globs and still images; only the selected frames decoded."""

from __future__ import annotations

import glob as globlib
import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.datasets.schema import IMAGE_EXTENSIONS
from lanepipe.datasets.sources import ClipRef, resolve_inputs
from lanepipe.errors import InputError
from lanepipe.io import storage
from lanepipe.io.video import VIDEO_EXTENSIONS, clip_name_from_source
from lanepipe.types import Clip

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


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
