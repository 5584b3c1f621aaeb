"""Video probing, decoding (PyAV) with resampling by timestamp, and encoding.

Decoded frames are ``(T, H, W, 3) uint8`` RGB. Timestamps are seconds from the first decoded frame.
"""

from __future__ import annotations

import contextlib
import fractions
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
import fsspec
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError
from lanepipe.io import storage
from lanepipe.types import Clip

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".hevc", ".h264", ".ts")


@dataclass(frozen=True)
class VideoInfo:
    """What a probe found. ``fps_source`` says which fallback gave ``fps``."""

    source: str
    width: int
    height: int
    fps: float
    fps_source: str
    num_frames: int | None
    duration: float | None
    codec: str


@contextlib.contextmanager
def _open_container(source: str) -> Iterator[tuple[Any, IO[bytes]]]:
    """Open ``source`` (path or fsspec URL) with PyAV, mapping every failure to an InputError."""
    if not storage.is_remote(source):
        p = Path(source.removeprefix("file://"))
        if not p.exists():
            raise InputError(source, "a video file", "no file at that path")
        if p.is_dir():
            raise InputError(source, "a video file", "a folder (give a glob or the folder as --input)")
        if p.stat().st_size == 0:
            raise InputError(source, "a video file", "a zero-byte file")
    try:
        opened = fsspec.open(source, "rb")  # keep a reference: chained URLs (zip://…::…) close with it
        fh: IO[bytes] = opened.open()
    except FileNotFoundError:
        raise InputError(source, "a video file", "no object at that URL") from None
    except OSError as e:
        raise InputError(source, "a readable video file", f"an error opening it: {e}") from e
    try:
        try:
            container = av.open(fh, mode="r")
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise InputError(source, "a video container PyAV can read",
                             f"an unreadable file ({type(e).__name__}: {e})",
                             "it may be truncated, empty or not a video") from None
        try:
            yield container, fh
        finally:
            container.close()
    finally:
        fh.close()
        del opened


def _video_stream(container: Any, source: str) -> Any:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise InputError(source, "a video stream", f"only {', '.join(kinds)}")
    return container.streams.video[0]


def _pick_fps(stream: Any, container: Any) -> tuple[float, str, float | None]:
    """FPS with fallbacks: stream rate → average rate → container guess → frames ÷ duration."""
    duration: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    candidates = [
        ("stream_rate", getattr(stream, "base_rate", None)),
        ("average_rate", stream.average_rate),
        ("container_guess", getattr(stream, "guessed_rate", None)),
    ]
    for label, rate in candidates:
        if rate is not None and 0 < float(rate) <= 1000:
            return float(rate), label, duration
    if stream.frames and duration:
        return stream.frames / duration, "frames_over_duration", duration
    raise InputError("video", "a frame rate from the stream, container or frames/duration", "none of them")


def probe(source: str) -> VideoInfo:
    """Read a video's header without decoding it.

    Raises:
        InputError: missing, empty, unreadable, or no video stream.
    """
    with _open_container(source) as (container, _):
        stream = _video_stream(container, source)
        try:
            fps, label, duration = _pick_fps(stream, container)
        except InputError:
            raise InputError(source, "a frame rate (stream, average, container or frames/duration)",
                             "none of them set") from None
        ctx = stream.codec_context
        return VideoInfo(source=source, width=int(ctx.width), height=int(ctx.height), fps=fps,
                         fps_source=label, num_frames=int(stream.frames) or None, duration=duration,
                         codec=str(ctx.name))


def decode(source: str, *, name: str | None = None, target_fps: float | None = 8.0, max_frames: int = 150,
           max_pixels: int = 3840 * 2160, min_frames: int = 2) -> Clip:
    """Decode ``source`` into a Clip, resampled to ``target_fps`` by timestamp.

    A source slower than ``target_fps`` keeps its own rate (frames are never duplicated). Frame k of the
    output is the first source frame whose timestamp reaches ``k / target_fps`` (within half a source
    frame). At most ``max_frames`` frames are kept; decoding stops there.

    Raises:
        InputError: missing/empty/truncated file, no video stream, frames larger than ``max_pixels``,
            fewer than ``min_frames`` decoded frames.
    """
    with _open_container(source) as (container, _):
        stream = _video_stream(container, source)
        try:
            src_fps, _, _ = _pick_fps(stream, container)
        except InputError:
            src_fps = 0.0
        w, h = int(stream.codec_context.width), int(stream.codec_context.height)
        if w * h > max_pixels:
            raise InputError(source, f"frames of at most {max_pixels} pixels (input.max_pixels)",
                             f"{w}x{h} = {w * h} pixels", "downscale it first or raise input.max_pixels")
        if w < 2 or h < 2:
            raise InputError(source, "frames at least 2x2 pixels", f"{w}x{h}")
        stream.thread_type = "AUTO"
        resample = target_fps is not None and src_fps > 0 and target_fps < src_fps - 1e-6
        step = 1.0 / target_fps if resample and target_fps else 0.0
        tol = 0.5 / src_fps if src_fps > 0 else 0.0
        frames: list[npt.NDArray[np.uint8]] = []
        stamps: list[float] = []
        indices: list[int] = []
        t0: float | None = None
        next_t = 0.0
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else (i / src_fps if src_fps else float(i))
                if t0 is None:
                    t0 = t
                rel = t - t0
                if resample:
                    if rel + tol < next_t:
                        continue
                    while next_t <= rel + tol:
                        next_t += step
                frames.append(frame.to_ndarray(format="rgb24"))
                stamps.append(rel)
                indices.append(i)
                if len(frames) >= max_frames:
                    break
        except (av.error.FFmpegError, ValueError, OSError) as e:
            if len(frames) < min_frames:
                raise InputError(source, "a decodable video stream",
                                 f"a decoding error after {len(frames)} frames ({type(e).__name__}: {e})",
                                 "the file may be truncated or corrupt") from None
        if len(frames) < min_frames:
            raise InputError(source, f"at least {min_frames} decodable frames (input.min_frames)",
                             f"{len(frames)}")
        fps = target_fps if resample and target_fps else (src_fps or 1.0)
        arr = np.stack(frames)
        clip_name = name or clip_name_from_source(source)
        return Clip(name=clip_name, source=source, frames=arr, fps=float(fps),
                    timestamps=np.asarray(stamps, dtype=np.float64), source_fps=float(src_fps),
                    source_indices=np.asarray(indices, dtype=np.int64))


def clip_name_from_source(source: str) -> str:
    """A folder-safe clip name from a path or URL: the file stem with unsafe characters replaced."""
    if source.startswith("zip://"):  # zip://member::archive — name after the member (PhysicalAI-AV videos)
        source = source[len("zip://"):].split("::", 1)[0]
    stem = source.rstrip("/").rsplit("/", 1)[-1]
    for ext in VIDEO_EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    # No dots: VideoPainter's readers split file names on the first '.'.
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem).strip("_")
    return safe or "clip"


def encode(frames: npt.NDArray[np.uint8], url: str, fps: float, *, crf: int = 18,
           codec: str = "libx264", preset: str = "ultrafast") -> None:
    """Encode ``(T, H, W, 3) uint8`` RGB frames to an mp4 at ``url``, atomically.

    Odd sizes use yuv444p (yuv420p needs even width and height); even sizes use yuv420p for players.
    x264 ``ultrafast`` at CRF 18 gives the same PSNR as ``veryfast`` (40.7 vs 40.4 dB on a 1280x720 clip) at
    3x the speed and ~40 % larger files: the right trade for pipeline artefacts.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(url, "frames (T, H, W, 3) uint8 to encode", f"{frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) else "yuv444p"
    rate = fractions.Fraction(fps).limit_denominator(1001)
    with storage.atomic_local_file(url, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as out:
        s: Any = out.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = {"crf": str(crf), "preset": preset}
        s.thread_type = "AUTO"  # frame + slice threads: ~4x faster than single-threaded here
        for i in range(t):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            for pkt in s.encode(vf):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
