"""Turn user inputs into a list of clip references, without decoding anything.

Accepted inputs:
- a local file, folder or glob (``clips/*.mp4``);
- any fsspec URL to a file, folder or glob (``gs://bucket/clips/*.mp4``, ``s3://…``);
- ``chunks://bucket/prefix/camera_folder?start=0&end=10&per_chunk=5``: lists ``chunk_0000/``,
  ``chunk_0001/``… under the folder, keeps chunks ``start <= i < end`` and takes up to ``per_chunk`` mp4
  files (sorted) from each. The storage behind it is ``gs`` unless written ``chunks+s3://``,
  ``chunks+file:///abs/path`` (any fsspec protocol after ``+``).

A named file that does not exist is kept as a reference: decoding it records an InputError for that clip
while the others run. An input that yields no clip (a folder or glob with no video, an unknown scheme, an object
store that cannot be listed) is an InputError: at once from :func:`resolve_inputs`, for that input only from
:func:`resolve_each` (a run records it as a failed row and processes the rest).

Local folders and recursive globs (``**``) never descend into a symlink to a folder, so a link back up the tree
(``dir/sub/link -> dir``) cannot loop; a symlink to a file, or a folder link named by a non-recursive part of a
pattern, is followed. Inputs are de-duplicated by real path: the first name a file is reached by is kept.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import fsspec

from lanepipe.errors import ConfigError, InputError
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


def _has_magic(part: str) -> bool:
    return any(ch in part for ch in "*?[")


def _walk_files(root: Path) -> Iterator[str]:
    """Every file under ``root`` (symlinks to files included); symlinks to folders are not descended."""
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for f in files:
            path = os.path.join(dirpath, f)  # noqa: PTH118
            if os.path.isfile(path):  # noqa: PTH113 - follows a file link; drops dangling links
                yield path


def _glob_local(pattern: str) -> Iterator[str]:
    """Paths matching an absolute local glob, like ``glob.glob(pattern, recursive=True)`` (hidden names need a
    pattern starting with '.'), except that ``**`` never descends into a symlink to a folder: a link back up
    the tree would otherwise be walked again and again (one loop link gave 41 copies, two never ended)."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if _has_magic(part))
    base = Path(*parts[:first])
    if base.is_dir():
        yield from _match(str(base), parts[first:])


def _scan(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:  # unreadable or vanished folder: nothing matches there
        return []


def _match(folder: str, parts: tuple[str, ...]) -> Iterator[str]:
    part, rest = parts[0], parts[1:]
    if part == "**":
        if rest:
            yield from _match(folder, rest)  # '**' matches zero folders too
        for e in _scan(folder):
            if e.name.startswith("."):
                continue
            if not rest:
                yield e.path
            if e.is_dir(follow_symlinks=False):  # a real folder only: never a link (no loops)
                yield from _match(e.path, parts)
        return
    if not _has_magic(part):
        path = os.path.join(folder, part)  # noqa: PTH118
        if not rest:
            if os.path.lexists(path):
                yield path
        elif os.path.isdir(path):  # noqa: PTH112 - a fixed-depth part may follow a link: it cannot loop
            yield from _match(path, rest)
        return
    for e in _scan(folder):
        if e.name.startswith(".") and not part.startswith("."):
            continue
        if not fnmatch.fnmatchcase(e.name, part):
            continue
        if not rest:
            yield e.path
        elif e.is_dir():
            yield from _match(e.path, rest)


def _dedupe_key(source: str) -> str:
    """Local files by real path (a symlink and its target are one clip); URLs as written."""
    if storage.is_remote(source):
        return source
    return os.path.realpath(source.removeprefix("file://"))


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
    if _has_magic(local):
        return sorted(p for p in _glob_local(local) if Path(p).is_file())
    p = Path(local)
    if p.is_dir():
        found = sorted(f for f in _walk_files(p) if _is_video(f))
        if not found:
            raise InputError(item, f"a folder holding video files ({', '.join(VIDEO_EXTENSIONS)})",
                             "no video files")
        return found
    return [local]


@dataclass(frozen=True)
class InputFailure:
    """An input (as given) that resolved to no clip: its folder-safe ``name`` for a results row, and why."""

    source: str
    name: str
    error: InputError


def _expand_checked(item: str) -> list[str]:
    """:func:`_expand_one`, with a pattern that matches nothing and a store that cannot be listed as InputError."""
    try:
        found = _expand_one(item)
    except (InputError, ConfigError):
        raise
    except Exception as e:  # unreachable object store, refused credentials …: this input only
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "no details"
        raise InputError(item, "a reachable file, folder or glob", f"{type(e).__name__}: {reason}") from e
    if not found:
        raise InputError(item, "a pattern matching at least one video file", "no matches")
    return found


def _unique_name(src: str, used: set[str]) -> str:
    name = clip_name_from_source(src)
    if name in used:
        name = f"{name}-{hashlib.sha1(src.encode()).hexdigest()[:6]}"
    used.add(name)
    return name


def resolve_each(items: list[str]) -> tuple[list[ClipRef], list[InputFailure]]:
    """Like :func:`resolve_inputs`, but an input that resolves to nothing (unknown scheme, empty folder, a glob
    with no match, an object store that cannot be reached) is returned as an :class:`InputFailure` instead of
    stopping the others. Names are unique across both lists.

    Raises:
        InputError: no inputs at all.
        ConfigError: a usage error.
    """
    if not items:
        raise InputError("--input", "at least one clip, folder, glob or URL", "nothing")
    sources: list[str] = []
    failed: list[tuple[str, InputError]] = []
    for item in items:
        try:
            sources.extend(_expand_checked(item))
        except InputError as e:
            failed.append((item, e))
    firsts: dict[str, str] = {}
    for src in sources:  # de-duplicate by real path, keep the first name and the order
        firsts.setdefault(_dedupe_key(src), src)
    used: set[str] = set()
    refs = [ClipRef(source=src, name=_unique_name(src, used)) for src in firsts.values()]
    return refs, [InputFailure(source=item, name=_unique_name(item, used), error=e) for item, e in failed]


def resolve_inputs(items: list[str]) -> list[ClipRef]:
    """Expand inputs into clip references with unique folder-safe names, in a stable order.

    Raises:
        InputError: no inputs, an unknown URL scheme, or a folder/glob/chunk selector with no videos.
    """
    refs, failed = resolve_each(items)
    if failed:  # the first input that resolves to nothing stops it all
        raise failed[0].error
    return refs
