from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lanepipe.datasets.sources import resolve_inputs
from lanepipe.errors import InputError


def _touch_videos(root: Path, names: list[str]) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_file_glob_folder_and_unique_names(tmp_path: Path) -> None:
    _touch_videos(tmp_path, ["a/clip.mp4", "b/clip.mp4", "b/other.MOV", "b/notes.txt"])
    refs = resolve_inputs([str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b")])
    assert [r.source for r in refs] == [str(tmp_path / p) for p in ("a/clip.mp4", "b/clip.mp4", "b/other.MOV")]
    names = [r.name for r in refs]
    assert len(set(names)) == 3 and names[0] == "clip" and names[1].startswith("clip-")
    globbed = resolve_inputs([str(tmp_path / "*" / "*.mp4")])
    assert len(globbed) == 2


def test_missing_file_is_kept_for_a_per_clip_error(tmp_path: Path) -> None:
    refs = resolve_inputs([str(tmp_path / "nope.mp4")])
    assert refs[0].name == "nope"


@pytest.mark.parametrize("bad", ["ftpx://host/a.mp4", "weird+s3://x"])
def test_unknown_scheme(bad: str) -> None:
    with pytest.raises(InputError, match="scheme"):
        resolve_inputs([bad])


def test_empty_folder_and_empty_glob(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no video files"):
        resolve_inputs([str(tmp_path / "empty")])
    with pytest.raises(InputError, match="no matches"):
        resolve_inputs([str(tmp_path / "*.mp4")])
    with pytest.raises(InputError, match="nothing"):
        resolve_inputs([])


def test_chunks_selector_local(tmp_path: Path) -> None:
    cam = tmp_path / "bucket" / "prefix" / "camera_front"
    for c in range(4):
        _touch_videos(cam, [f"chunk_{c:04d}/v{i}.mp4" for i in range(3)])
    url = f"chunks+file://{cam}?start=1&end=3&per_chunk=2"
    refs = resolve_inputs([url])
    assert [Path(r.source).relative_to(cam).as_posix() for r in refs] == [
        "chunk_0001/v0.mp4", "chunk_0001/v1.mp4", "chunk_0002/v0.mp4", "chunk_0002/v1.mp4"]
    with pytest.raises(InputError, match="none in range"):
        resolve_inputs([f"chunks+file://{cam}?start=7"])
    with pytest.raises(InputError, match="integer"):
        resolve_inputs([f"chunks+file://{cam}?start=x"])


def test_chunks_selector_on_memory_fs(real_clip: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for c in range(2):
        fs.pipe(f"/lp-bucket/cams/front/chunk_{c:04d}/clip{c}.mp4", real_clip.read_bytes()[:100])
    refs = resolve_inputs(["chunks+memory://lp-bucket/cams/front?per_chunk=1"])
    assert [r.source for r in refs] == ["memory:///lp-bucket/cams/front/chunk_0000/clip0.mp4",
                                        "memory:///lp-bucket/cams/front/chunk_0001/clip1.mp4"]
    fs.rm("/lp-bucket", recursive=True)


class _Hung(BaseException):
    """Not an OSError: glob swallows OSError (and TimeoutError is one)."""


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail (not hang) when the block runs longer than ``seconds`` (a symlink loop used to never end)."""
    def _boom(signum: int, frame: object) -> None:
        raise _Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _loop_tree(root: Path, links: int) -> Path:
    """``root/clips/a.mp4``, ``root/clips/sub/b.mp4`` and ``links`` folder links pointing back at clips/."""
    clips = root / "clips"
    _touch_videos(clips, ["a.mp4", "sub/b.mp4"])
    for i in range(links):
        (clips / "sub" / f"loop{i}").symlink_to(clips, target_is_directory=True)
    return clips


def test_recursive_glob_does_not_follow_a_symlink_loop(tmp_path: Path) -> None:
    clips = _loop_tree(tmp_path, links=1)
    with _deadline(30):
        refs = resolve_inputs([f"{clips}/**/*.mp4"])
    assert [r.source for r in refs] == [str(clips / "a.mp4"), str(clips / "sub" / "b.mp4")]
    assert [r.name for r in refs] == ["a", "b"]


def test_recursive_glob_with_two_loop_links_ends(tmp_path: Path) -> None:
    clips = _loop_tree(tmp_path, links=2)
    with _deadline(30):
        refs = resolve_inputs([f"{clips}/**/*.mp4", str(clips)])
    assert [r.source for r in refs] == [str(clips / "a.mp4"), str(clips / "sub" / "b.mp4")]


def test_inputs_are_deduplicated_by_real_path(tmp_path: Path) -> None:
    clips = _loop_tree(tmp_path, links=1)
    (clips / "alias.mp4").symlink_to(clips / "a.mp4")  # a link to a FILE is followed, and is the same clip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "linked.mp4").symlink_to(clips / "sub" / "b.mp4")
    with _deadline(30):
        refs = resolve_inputs([str(clips), f"{elsewhere}/*.mp4", str(clips / "sub" / "b.mp4")])
    # folder listing order: a.mp4, alias.mp4 (same file as a.mp4: dropped), sub/b.mp4; the glob's link and the
    # explicit path are b.mp4 again. The first name wins and names stay unique.
    assert [r.source for r in refs] == [str(clips / "a.mp4"), str(clips / "sub" / "b.mp4")]
    assert [r.name for r in refs] == ["a", "b"]
    only_link = resolve_inputs([str(elsewhere / "linked.mp4")])
    assert len(only_link) == 1 and Path(only_link[0].source).resolve() == (clips / "sub" / "b.mp4").resolve()


def test_glob_semantics_and_folder_links(tmp_path: Path) -> None:
    _touch_videos(tmp_path, ["r/x.mp4", "r/.hidden.mp4", "r/d1/y.MP4", "r/d1/d2/z.mp4", "r/.git/w.mp4",
                             "r/d1/notes.txt"])
    real = tmp_path / "real"
    _touch_videos(real, ["v.mp4"])
    (tmp_path / "r" / "d1" / "linkdir").symlink_to(real, target_is_directory=True)
    r = tmp_path / "r"
    srcs = [x.source for x in resolve_inputs([f"{r}/**/*.mp4"])]
    assert srcs == [str(r / p) for p in ("d1/d2/z.mp4", "x.mp4")]  # case-sensitive; hidden names skipped
    srcs = [x.source for x in resolve_inputs([f"{r}/*/*.MP4"])]
    assert srcs == [str(r / "d1" / "y.MP4")]
    srcs = [x.source for x in resolve_inputs([f"{r}/d1/*/v.mp4"])]  # '*' matches the folder link: followed
    assert srcs == [str(r / "d1" / "linkdir" / "v.mp4")]
