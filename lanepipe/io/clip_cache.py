"""A small per-process cache of decoded clips, so a worker decodes a clip once for all the stages and items that
read it (segment, edit, evaluate and render each decoded the source again, and evaluate/render the edited clip).

Keyed by the source, the decode settings and (for local files) the file's size and modification time, so a file
rewritten in place (a retried edit) is decoded again. Bounded by entries and bytes; least recently used first
out. Cached frames are read-only: a stage that wants to draw on them copies first.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from lanepipe.io import storage
from lanepipe.io.video import decode
from lanepipe.types import Clip

#: Env var: the cache's size in MiB (0 disables it).
CACHE_MB_ENV = "LANEPIPE_CLIP_CACHE_MB"
DEFAULT_MB = 1024
MAX_ENTRIES = 8


@dataclass(frozen=True)
class DecodeKey:
    source: str
    target_fps: float | None
    max_frames: int
    max_pixels: int
    min_frames: int
    stamp: tuple[int, int] | None  # (size, mtime_ns) of a local file


def _stamp(source: str) -> tuple[int, int] | None:
    if storage.is_remote(source):
        return None
    try:
        st = Path(source.removeprefix("file://")).stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class ClipCache:
    """LRU of decoded clips. ``decodes`` counts real decodes, ``hits`` answers from the cache."""

    def __init__(self, max_bytes: int | None = None, max_entries: int = MAX_ENTRIES) -> None:
        if max_bytes is None:
            max_bytes = int(float(os.environ.get(CACHE_MB_ENV, DEFAULT_MB)) * 2**20)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._clips: OrderedDict[DecodeKey, Clip] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.decodes = 0

    @property
    def nbytes(self) -> int:
        return sum(c.frames.nbytes for c in self._clips.values())

    def clear(self) -> None:
        with self._lock:
            self._clips.clear()
            self.hits = self.decodes = 0

    def decode(self, source: str, *, name: str | None = None, target_fps: float | None = 8.0,
               max_frames: int = 150, max_pixels: int = 3840 * 2160, min_frames: int = 2) -> Clip:
        """:func:`lanepipe.io.video.decode`, answered from the cache when the same file was decoded with the
        same settings; the returned clip's frames are read-only."""
        key = DecodeKey(source, target_fps, max_frames, max_pixels, min_frames, _stamp(source))
        with self._lock:
            hit = self._clips.get(key)
            if hit is not None:
                self._clips.move_to_end(key)
                self.hits += 1
        if hit is None:
            clip = decode(source, name=name, target_fps=target_fps, max_frames=max_frames, max_pixels=max_pixels,
                          min_frames=min_frames)
            clip.frames.flags.writeable = False
            with self._lock:
                self.decodes += 1
                if clip.frames.nbytes <= self.max_bytes:
                    self._clips[key] = clip
                    while len(self._clips) > self.max_entries or self.nbytes > self.max_bytes:
                        self._clips.popitem(last=False)
            return clip
        return hit if name is None or name == hit.name else replace(hit, name=name, meta=dict(hit.meta))


#: This process's cache (one per Ray worker process; shared by the stages of a sequential run).
CLIPS = ClipCache()


def decode_cached(source: str, *, name: str | None = None, target_fps: float | None = 8.0, max_frames: int = 150,
                  max_pixels: int = 3840 * 2160, min_frames: int = 2) -> Clip:
    """Decode through this process's :data:`CLIPS` cache."""
    return CLIPS.decode(source, name=name, target_fps=target_fps, max_frames=max_frames, max_pixels=max_pixels,
                        min_frames=min_frames)
