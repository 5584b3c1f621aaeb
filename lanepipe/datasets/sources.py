"""Turn user inputs into a list of clip references, without decoding anything.

Accepted inputs:
- a local file, folder or glob (``clips/*.mp4``);
- any fsspec URL to a file, folder or glob (``gs://bucket/clips/*.mp4``, ``s3://…``);
- ``chunks://bucket/prefix/camera_folder?start=0&end=10&per_chunk=5``: lists ``chunk_0000/``,
  ``chunk_0001/``… under the folder, keeps chunks ``start <= i < end`` and takes up to ``per_chunk`` mp4
  files (sorted) from each. The storage behind it is ``gs`` unless written ``chunks+s3://``,
  ``chunks+file:///abs/path`` (any fsspec protocol after ``+``).

A named file that does not exist is kept as a reference: decoding it records an InputError for that clip
while the others run. A folder or glob that yields no video is an InputError at once.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import fsspec

from lanepipe.errors import InputError
from lanepipe.io import storage
from lanepipe.io.video import VIDEO_EXTENSIONS, clip_name_from_source

CHUNK_DIR = re.compile(r"chunk_(\d+)$")


@dataclass(frozen=True)
class ClipRef:
    """A clip to process: where it is and the folder-safe name its outputs use."""

    source: str
    name: str


def _is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _check_scheme(url: str) -> None:
    scheme = url.split("://", 1)[0]
    known = set(fsspec.available_protocols()) | {"chunks", "paiav"}
    base = scheme.split("+", 1)[0]
    if base not in known:
        raise InputError(url, f"a local path or a URL with a known scheme (file, gs, s3, chunks, {len(known)} in all)",
                         f"unknown scheme {scheme!r}")
    if base == "chunks" and "+" in scheme and scheme.split("+", 1)[1] not in known:
        raise InputError(url, "chunks+<fsspec protocol>://", f"unknown storage {scheme.split('+', 1)[1]!r}")


def _expand_chunks(url: str) -> list[str]:
    parts = urlsplit(url)
    scheme = parts.scheme
    proto = scheme.split("+", 1)[1] if "+" in scheme else "gs"
    query = parse_qs(parts.query)

    def _int(key: str, default: int | None) -> int | None:
        if key not in query:
            return default
        raw = query[key][0]
        try:
            v = int(raw)
        except ValueError:
            raise InputError(url, f"an integer for {key}=", repr(raw)) from None
        if v < 0:
            raise InputError(url, f"a non-negative {key}=", str(v))
        return v

    start = _int("start", 0) or 0
    end = _int("end", None)
    per_chunk = _int("per_chunk", None)
    unknown = set(query) - {"start", "end", "per_chunk"}
    if unknown:
        raise InputError(url, "query keys start, end, per_chunk", f"{', '.join(sorted(unknown))}")
    base = f"{proto}://{parts.netloc}{parts.path}" if proto != "file" else f"{parts.netloc}{parts.path}"
    fs, root = storage.filesystem(base)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        raise InputError(url, f"a folder of chunk_NNNN/ folders at {base}", "no such folder") from None
    chunks: list[tuple[int, str]] = []
    for e in entries:
        m = CHUNK_DIR.search(str(e).rstrip("/"))
        if m and fs.isdir(e):
            chunks.append((int(m.group(1)), str(e).rstrip("/")))
    chunks.sort()
    selected = [c for c in chunks if c[0] >= start and (end is None or c[0] < end)]
    if not selected:
        raise InputError(url, f"chunk_NNNN/ folders with start <= N < end under {base}",
                         f"{len(chunks)} chunk folders, none in range")
    out: list[str] = []
    for _, path in selected:
        vids = sorted(str(p) for p in fs.ls(path, detail=False) if _is_video(str(p)))
        if per_chunk is not None:
            vids = vids[:per_chunk]
        out.extend(vids if proto == "file" else [f"{proto}://{v}" for v in vids])
    return out


def _expand_paiav(url: str) -> list[str]:
    """``paiav:///abs/root?camera=NAME&clips=ID,ID`` → ``zip://<clip>.<camera>.mp4::<camera zip>`` URLs."""
    from lanepipe.datasets.physical_ai_av import list_clips, open_clip

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    root = f"{parts.netloc}{parts.path}"
    camera = query.get("camera", ["camera_front_wide_120fov"])[0]
    clips = query["clips"][0].split(",") if "clips" in query else list_clips(root)
    out = []
    for clip_id in clips:
        clip = open_clip(root, clip_id)
        out.append(clip.video_url(camera))
    return out


def _expand_one(item: str) -> list[str]:
    if "://" in item and not item.startswith("file://"):
        _check_scheme(item)
        if item.startswith("chunks"):
            return _expand_chunks(item)
        if item.startswith("paiav://"):
            return _expand_paiav(item)
        fs, path = storage.filesystem(item)
        proto = item.split("://", 1)[0]
        if any(ch in path for ch in "*?["):
            return [f"{proto}://{p}" for p in sorted(fs.glob(path)) if _is_video(p)]
        if fs.isdir(path):
            found = [f"{proto}://{p}" for p in sorted(fs.find(path)) if _is_video(p)]
            if not found:
                raise InputError(item, f"a folder holding video files ({', '.join(VIDEO_EXTENSIONS)})",
                                 "no video files")
            return found
        return [item]
    local = storage.absolute(item)
    if any(ch in local for ch in "*?["):
        return sorted(p for p in globlib.glob(local, recursive=True) if Path(p).is_file())  # noqa: PTH207
    p = Path(local)
    if p.is_dir():
        found = sorted(str(f) for f in p.rglob("*") if f.is_file() and _is_video(f.name))
        if not found:
            raise InputError(item, f"a folder holding video files ({', '.join(VIDEO_EXTENSIONS)})",
                             "no video files")
        return found
    return [local]


def resolve_inputs(items: list[str]) -> list[ClipRef]:
    """Expand inputs into clip references with unique folder-safe names, in a stable order.

    Raises:
        InputError: no inputs, an unknown URL scheme, or a folder/glob/chunk selector with no videos.
    """
    if not items:
        raise InputError("--input", "at least one clip, folder, glob or URL", "nothing")
    sources: list[str] = []
    for item in items:
        found = _expand_one(item)
        if not found:
            raise InputError(item, "a pattern matching at least one video file", "no matches")
        sources.extend(found)
    refs: list[ClipRef] = []
    used: set[str] = set()
    for src in dict.fromkeys(sources):  # de-duplicate, keep order
        name = clip_name_from_source(src)
        if name in used:
            name = f"{name}-{hashlib.sha1(src.encode()).hexdigest()[:6]}"
        used.add(name)
        refs.append(ClipRef(source=src, name=name))
    return refs
