"""``lanepipe filter``: select dataset rows by caption attribute; copy, hardlink or symlink their files."""

from __future__ import annotations

import csv
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from lanepipe.cli import app
from lanepipe.datasets.filter import Selection, filter_dataset
from lanepipe.datasets.training import validate_rows
from lanepipe.errors import ConfigError, InputError
from lanepipe.lanes.instructions import parse_caption

runner = CliRunner()

#: Known captions, one row each (lines 2..9 of train.csv).
CAPTIONS = [
    "road with single white dashed lane markings",  # 0
    "road with double yellow solid lane markings",  # 1
    "road with double yellow solid-dashed lane markings",  # 2
    "road with single white mixed lane markings",  # 3
    "road with unknown unknown unknown lane markings",  # 4
    "road with single mixed dashed lane markings",  # 5
    "a road with some lines",  # 6: does not parse
    "road with no lane markings",  # 7: the removal caption, not the attribute form
]


@pytest.fixture
def captioned(make_dataset) -> Path:
    """The CAPTIONS dataset plus one invalid row (line 10: path outside the folder)."""
    return make_dataset(CAPTIONS, extra_rows=[{"image": "../x.png", "mask": "masks/000.png",
                                               "prompt": CAPTIONS[1], "prompt_2": ""}])


def _prompts(csv_path: Path) -> list[str]:
    with csv_path.open(newline="") as f:
        return [r["prompt"] for r in csv.DictReader(f)]


def test_shared_caption_regex_reads_unknown_and_mixed() -> None:
    assert parse_caption("road with double mixed solid-dashed lane markings") == {
        "count": "double", "color": "mixed", "pattern": "solid-dashed"}
    assert parse_caption("Road  with unknown white mixed lane markings") == {
        "count": "unknown", "color": "white", "pattern": "mixed"}
    assert parse_caption("road with triple white solid lane markings") is None


@pytest.mark.parametrize(("selection", "kept", "dropped"), [
    (Selection(), [0, 1, 2, 3, 4, 5], {}),
    (Selection(count="double"), [1, 2], {"count": 4}),
    (Selection(color="yellow"), [1, 2], {"color": 4}),
    (Selection(color="mixed"), [5], {"color": 5}),
    (Selection(pattern="mixed"), [2, 3], {"pattern": 4}),
    (Selection(pattern="solid-dashed"), [2], {"pattern": 5}),
    (Selection(pattern="dashed", count="single"), [0, 5], {"count": 3, "pattern": 1}),
    (Selection(require_known=True), [0, 1, 2, 3, 5], {"unknown": 1}),
    (Selection(count="single", color="white", pattern="dashed", require_known=True), [0],
     {"count": 3, "color": 1, "pattern": 1}),
])
def test_selections_keep_known_captions(tmp_path: Path, captioned: Path, selection: Selection, kept: list[int],
                                        dropped: dict[str, int]) -> None:
    s = filter_dataset(str(captioned), str(tmp_path / "out"), selection)
    assert _prompts(tmp_path / "out" / "train.csv") == [CAPTIONS[k] for k in kept]
    assert s.kept == len(kept) and s.total == 9
    expect = {"invalid": 1, "unparseable": 2, "count": 0, "color": 0, "pattern": 0, "unknown": 0} | dropped
    assert s.dropped == expect
    assert s.unparseable == [(8, CAPTIONS[6]), (9, CAPTIONS[7])]  # listed with their lines, never kept
    assert [(b.line, b.reason.split(" (")[0]) for b in s.invalid] == [
        (10, "image path '../x.png' is outside the dataset folder")]
    good, bad = validate_rows(str(tmp_path / "out"))
    assert len(good) == len(kept) and bad == []


def test_copy_hardlink_symlink(tmp_path: Path, captioned: Path) -> None:
    sel = Selection(count="double")
    src_img = captioned / "images" / "001.png"
    for mode in ("copy", "hardlink", "symlink"):
        out = tmp_path / mode
        s = filter_dataset(str(captioned), str(out), sel, link=mode)
        assert s.files == 4 and sorted(p.name for p in (out / "images").iterdir()) == ["001.png", "002.png"]
        img = out / "images" / "001.png"
        assert img.read_bytes() == src_img.read_bytes()
        assert img.is_symlink() == (mode == "symlink")
        assert img.samefile(src_img) == (mode != "copy")  # a hard link shares the inode, a symlink resolves to it
        if mode == "hardlink":
            assert src_img.stat().st_nlink >= 2
        if mode == "symlink":
            assert img.readlink() == src_img.resolve()
        assert not list(out.rglob("*.tmp"))
    # re-running over an existing output replaces the files and rewrites train.csv
    again = filter_dataset(str(captioned), str(tmp_path / "symlink"), Selection(color="mixed"), link="symlink")
    assert again.kept == 1 and _prompts(tmp_path / "symlink" / "train.csv") == [CAPTIONS[5]]


def test_buckets_copy_only(tmp_path: Path, captioned: Path) -> None:
    url = f"memory://lanepipe-filter-{tmp_path.name}/out"
    for mode in ("hardlink", "symlink"):
        with pytest.raises(InputError, match="use --link copy") as ei:
            filter_dataset(str(captioned), url, link=mode)
        assert ei.value.source == url and "local folder" in ei.value.expected
    s = filter_dataset(str(captioned), url, Selection(pattern="solid"))
    assert s.kept == 1 and s.csv_url == f"{url}/train.csv"
    with fsspec.open(s.csv_url, "r") as f:
        assert CAPTIONS[1] in f.read()
    good, _ = validate_rows(url)
    assert [g.image for g in good] == ["images/001.png"]


def test_bad_arguments(tmp_path: Path, captioned: Path) -> None:
    with pytest.raises(ConfigError, match="single, double, any"):
        Selection(count="triple")
    with pytest.raises(ConfigError, match="white, yellow, mixed, any"):
        Selection(color="blue")
    with pytest.raises(ConfigError, match="copy, hardlink, symlink"):
        filter_dataset(str(captioned), str(tmp_path / "o"), link="move")
    with pytest.raises(ConfigError, match="is the source dataset folder"):
        filter_dataset(str(captioned), str(captioned))
    with pytest.raises(InputError, match="no file there"):
        filter_dataset(str(tmp_path / "nothing"), str(tmp_path / "o"))


def test_without_validation_paths_are_still_checked(tmp_path: Path, captioned: Path) -> None:
    (captioned / "masks" / "003.png").write_bytes(b"not a png")  # row 3's mask: caught only when files are read
    fast = filter_dataset(str(captioned), str(tmp_path / "fast"), validate=False)
    full = filter_dataset(str(captioned), str(tmp_path / "full"))
    assert fast.kept == 6 and fast.dropped["invalid"] == 1  # the '../x.png' row
    assert full.kept == 5 and full.dropped["invalid"] == 2
    assert "mask 'masks/003.png' unreadable" in full.invalid[0].reason


def test_cli_filter_reports_reasons_and_unparseable(tmp_path: Path, captioned: Path) -> None:
    out = tmp_path / "yellow"
    res = runner.invoke(app, ["filter", str(captioned), "-o", str(out), "--color", "yellow", "--link", "hardlink"])
    assert res.exit_code == 0, res.output
    assert "kept 2 of 9 rows (4 files, hardlink); dropped: invalid 1 · unparseable 2 · color 4" in res.output
    assert "unparseable caption, line 8: 'a road with some lines'" in res.output
    assert "invalid row, line 10: image path '../x.png' is outside the dataset folder" in res.output
    assert res.stdout.strip().endswith(str(out / "train.csv"))
    bad = runner.invoke(app, ["filter", str(captioned), "-o", str(out), "--pattern", "zigzag"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)
