from __future__ import annotations

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
