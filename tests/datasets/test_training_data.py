"""``lanepipe dataset``: frames of real clips and stills → road masks → canonical captions → train.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lanepipe.cli import app
from lanepipe.config import DatasetConfig
from lanepipe.datasets.training import (
    CSV_COLUMNS,
    DatasetStage,
    build_captioner,
    caption_from_answer,
    caption_from_report,
    format_caption,
    generate_dataset,
    load_dataset_config,
    read_frames,
    resolve_dataset_inputs,
    validate_rows,
)
from lanepipe.engine import ClipItem
from lanepipe.errors import ConfigError, InputError
from lanepipe.lanes.instructions import parse_caption
from lanepipe.verify.base import BoundaryReport, LaneReport

runner = CliRunner()


@pytest.fixture(scope="module")
def stills(data_dir: Path) -> list[Path]:
    """Two real stills: camera A solid yellow left line, BDD100K city street."""
    return [data_dir / "udacity_lanelines_p1" / "test_images" / "solidYellowLeft.jpg",
            data_dir / "bdd100k_yolop_images" / "3c0e7240-96e390d2.jpg"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


# ------------------------------------------------------------------------------------------- generation


def test_dataset_from_real_clip_and_stills(tmp_path: Path, real_clip: Path, stills: list[Path]) -> None:
    out = tmp_path / "ds"
    cfg = DatasetConfig(paths=[str(real_clip), *map(str, stills)], output=str(out), frames=[0, 20, 37, 500])
    s = generate_dataset(cfg, executor="sequential")
    assert [c["status"] for c in s.clips] == ["ok", "ok", "ok"]
    clip_row = s.clips[0]
    assert clip_row["frames"] == [0, 20, 37] and clip_row["missing_indices"] == [500]
    rows = _read_csv(out / "train.csv")
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == s.rows == 5  # 3 clip frames + 2 stills
    for r in rows:
        assert not Path(r["image"]).is_absolute() and (out / r["image"]).is_file() and (out / r["mask"]).is_file()
        image = cv2.imread(str(out / r["image"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(out / r["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 255}
        assert 0.05 < (mask == 255).mean() < 0.7  # road, not the whole frame
        assert mask[-mask.shape[0] // 8 :, mask.shape[1] // 2].max() == 255  # road just ahead of the camera
        assert parse_caption(r["prompt"]) is not None and r["prompt_2"].startswith(r["prompt"] + ", ")
    by_image = {r["image"]: r["prompt"] for r in rows}
    # known answers: both show a single solid yellow line left of the ego lane
    assert by_image["images/solidYellowLeft_f000000.png"] == "road with single yellow solid lane markings"
    assert by_image["images/vehicle_detection_test_video_f000020.png"] == "road with single yellow solid lane markings"
    # the stored frame is the decoded source frame, pixel for pixel (PNG is lossless)
    decoded = read_frames(str(real_clip), name="c", frames=[20]).frames[0]
    stored = cv2.cvtColor(cv2.imread(str(out / "images/vehicle_detection_test_video_f000020.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decoded, stored)
    assert sum(s.counts["count"].values()) == 5 and s.counts["color"]["yellow"] >= 4
    good, bad = validate_rows(str(out))
    assert len(good) == 5 and bad == []
    assert {g.image: (g.width, g.height) for g in good}["images/solidYellowLeft_f000000.png"] == (960, 540)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 5 and summary["failed"] == []


def test_cli_prints_counts_and_resume_skips_finished_frames(tmp_path: Path, real_clip: Path,
                                                           stills: list[Path]) -> None:
    out = tmp_path / "ds"
    args = ["dataset", "-i", str(real_clip), "-i", str(stills[0]), "-o", str(out), "--stride", "15",
            "--max-frames", "3", "--executor", "sequential"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 rows in train.csv (4 frames written, 0 resumed" in first.output
    assert "count    single 4 · double 0 · unknown 0" in first.output
    assert "pattern  solid" in first.output and "color    white" in first.output
    assert first.stdout.strip().endswith(str(out / "train.csv"))
    # a finished clip is not decoded again
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 frames written, 4 resumed" in again.output
    # a clip interrupted after two of its frames: only the third frame is redone
    (out / "clips" / "vehicle_detection_test_video.json").unlink()
    (out / "records" / "vehicle_detection_test_video_f000030.json").unlink()
    (out / "train.csv").unlink()
    third = runner.invoke(app, args)
    assert third.exit_code == 0 and "1 frames written, 3 resumed" in third.output, third.output
    after = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    changed = sorted(k for k in stamp if after[k] != stamp[k])
    assert changed == ["vehicle_detection_test_video_f000030.png"]
    assert len(_read_csv(out / "train.csv")) == 4


def test_dataset_into_s3_bucket(s3_bucket: str, real_clip: Path, stills: list[Path]) -> None:
    url = f"{s3_bucket}/datasets/lanes"
    cfg = DatasetConfig(paths=[str(real_clip), str(stills[1])], output=url, frames=[5])
    s = generate_dataset(cfg, executor="sequential")
    assert s.csv_url == f"{url}/train.csv" and s.rows == 2 and not s.failed
    good, bad = validate_rows(url)
    assert bad == [] and [g.image for g in good] == ["images/3c0e7240-96e390d2_f000000.png",
                                                      "images/vehicle_detection_test_video_f000005.png"]
    assert good[0].mask_url == f"{url}/masks/3c0e7240-96e390d2_f000000.png" and good[0].width == 1280
    again = generate_dataset(cfg, executor="sequential")
    assert again.frames_written == 0 and again.frames_resumed == 2 and again.rows == 2


def test_ray_data_run_records_a_bad_clip_and_finishes_the_others(ray_local, tmp_path: Path, real_clip: Path,
                                                                 stills: list[Path]) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video\n" * 20)
    cfg = DatasetConfig(paths=[str(real_clip), str(bad), str(stills[0])], output=str(tmp_path / "ds"),
                        frames=[3], resources={"concurrency": 2})
    s = generate_dataset(cfg, executor="ray")
    status = {c["clip"]: c["status"] for c in s.clips}
    assert status == {"vehicle_detection_test_video": "ok", "broken": "failed", "solidYellowLeft": "ok"}
    failed = s.failed[0]
    assert failed["error_type"] == "InputError" and str(bad) in failed["error"] and "expected" in failed["error"]
    assert s.rows == 2 and len(_read_csv(tmp_path / "ds" / "train.csv")) == 2
    assert json.loads((tmp_path / "ds" / "summary.json").read_text())["failed"][0]["clip"] == "broken"


# ------------------------------------------------------------------------------------------- bad clips


def test_bad_clips_get_input_errors_naming_the_input(tmp_path: Path, real_clip: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty_png = tmp_path / "blank.png"
    empty_png.write_bytes(b"")
    garbage_png = tmp_path / "garbage.jpg"
    garbage_png.write_bytes(b"\x89PNG not really" * 10)
    for src in (text, empty_png, garbage_png, tmp_path / "missing.png", tmp_path / "missing.mp4"):
        with pytest.raises(InputError) as ei:
            read_frames(str(src), name="x")
        assert ei.value.source == str(src) and ei.value.expected and ei.value.found
    with pytest.raises(InputError, match="pick indices below the frame count"):
        read_frames(str(real_clip), name="x", frames=[1000])
    stage = DatasetStage(DatasetConfig(output=str(tmp_path / "ds")), str(tmp_path / "ds"))
    row = stage.process(ClipItem(source=str(text), name="notes"))[0].to_row()
    assert row["status"] == "failed" and row["error"].startswith(f"{text}: expected")
    assert not (tmp_path / "ds" / "clips" / "notes.json").exists()  # a failed clip is retried on a re-run


class _HalfBlindSegmenter:
    """Road everywhere below the middle, except in the second frame (an empty mask)."""

    name = "half-blind"

    def segment(self, clip):
        from lanepipe.types import RoadMasks

        masks = np.zeros(clip.frames.shape[:3], bool)
        masks[:, clip.height // 2 :] = True
        masks[1:2] = False
        return RoadMasks(masks, self.name)


def test_frames_with_an_empty_road_mask_are_dropped_and_reported(tmp_path: Path, real_clip: Path) -> None:
    stage = DatasetStage(DatasetConfig(frames=[0, 1, 2]), str(tmp_path / "ds"))
    stage.segmenter = _HalfBlindSegmenter()
    row = stage.process(ClipItem(source=str(real_clip), name="clip"))[0].to_row()
    assert row["status"] == "ok" and row["frames"] == [0, 2] and row["num_frames"] == 2
    assert row["frames_dropped"] == [{"frame": 1, "reason": "empty road mask"}]
    assert sorted(p.name for p in (tmp_path / "ds" / "masks").iterdir()) == ["clip_f000000.png", "clip_f000002.png"]


def test_inputs_config_and_selection(tmp_path: Path, data_dir: Path, real_clip: Path) -> None:
    refs = resolve_dataset_inputs([str(data_dir / "bdd100k_yolop_images"), str(real_clip)])
    assert len(refs) == 7 and refs[-1].name == "vehicle_detection_test_video"
    assert {r.name for r in refs[:6]} >= {"3c0e7240-96e390d2", "7dd9ef45-f197db95"}
    assert len(resolve_dataset_inputs([str(data_dir / "udacity_lanelines_p1" / "test_images" / "*.jpg")])) == 6
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="none a video or an image"):
        resolve_dataset_inputs([str(tmp_path / "empty")])
    with pytest.raises(ConfigError, match=r"frames .* or stride, not both"):
        load_dataset_config(overrides=["frames=[1, 2]", "stride=3"])
    with pytest.raises(ConfigError, match="captioner"):
        load_dataset_config(overrides=["captioner=nope"])
    clip = read_frames(str(real_clip), name="c", stride=10, max_frames=3)
    assert clip.source_indices.tolist() == [0, 10, 20] and clip.frames.shape == (3, 720, 1280, 3)


# ------------------------------------------------------------------------------------------- captions


def _b(count: int, color: str | None = None, pattern: str | None = None, conf: float = 0.9,
       votes: dict[str, float] | None = None) -> BoundaryReport:
    return BoundaryReport(count=count, color=color, pattern=pattern, confidence=conf,  # type: ignore[arg-type]
                          votes=votes or {})


def test_caption_from_report_known_answers() -> None:
    r = LaneReport(left=_b(2, "yellow", "solid-dashed"), right=_b(1, "white", "dashed"))
    assert caption_from_report(r)[0] == "road with double yellow solid-dashed lane markings"
    assert caption_from_report(r, "right")[0] == "road with single white dashed lane markings"
    both, detail = caption_from_report(r, "both")
    assert both == "road with unknown mixed mixed lane markings"
    assert detail == (f"{both}, left boundary double yellow solid-dashed, right boundary single white dashed")
    same = LaneReport(left=_b(1, "white", "dashed"), right=_b(1, "white", "solid"))
    assert caption_from_report(same, "both")[0] == "road with single white mixed lane markings"
    weak = LaneReport(left=_b(1, "white", "solid", conf=0.3), right=_b(0))
    assert caption_from_report(weak)[0] == "road with unknown unknown unknown lane markings"
    assert caption_from_report(weak, min_confidence=0.2)[0] == "road with single white solid lane markings"
    split = LaneReport(left=_b(1, "yellow", "dashed", votes={"count": 1.0, "color": 0.9, "pattern": 0.4}),
                       right=_b(0))
    assert caption_from_report(split)[0] == "road with single yellow unknown lane markings"
    for attrs in (("single", "mixed", "dashed"), ("unknown", "unknown", "unknown"), ("double", "white", "mixed")):
        assert parse_caption(format_caption(*attrs)) == dict(zip(("count", "color", "pattern"), attrs, strict=True))
    with pytest.raises(InputError):
        format_caption("triple", "white", "solid")


def test_caption_from_vlm_answers() -> None:
    js = caption_from_answer('Sure. {"count": "Double", "color": "yellow", "pattern": "solid", "caption": '
                             '"Road with double yellow solid lane markings, worn paint on dark asphalt."}')
    assert js.prompt == "road with double yellow solid lane markings"
    assert js.prompt_2 == "road with double yellow solid lane markings, worn paint on dark asphalt"
    text = caption_from_answer("I see a road with single white dashed lane markings near a bridge.")
    assert text.prompt == "road with single white dashed lane markings"
    assert text.prompt_2 == "road with single white dashed lane markings, i see a near a bridge"
    odd = caption_from_answer('{"count": "three", "color": "blue", "pattern": "zigzag"}')
    assert odd.prompt == odd.prompt_2 == "road with unknown unknown unknown lane markings"
    noise = caption_from_answer("\x01\x02 k bԭ")
    assert noise.prompt == noise.prompt_2 == "road with unknown unknown unknown lane markings"


def test_qwen_captioner_through_the_stage(tmp_path: Path, stills: list[Path]) -> None:
    """The dataset stage with the real Qwen2.5-VL captioner (tiny random weights): its noise reads all unknown."""
    cfg = DatasetConfig(captioner="qwen_vl", output=str(tmp_path / "ds"),
                        qwen_vl={"preset": "tiny-random", "max_new_tokens": 8, "max_pixels": 112 * 112})
    stage = DatasetStage(cfg, cfg.output)
    row = stage.process(ClipItem(source=str(stills[0]), name="still"))[0].to_row()
    assert row["status"] == "ok" and row["captioner"] == "qwen_vl"
    rec = json.loads((tmp_path / "ds" / "records" / "still_f000000.json").read_text())
    assert rec["prompt"] == "road with unknown unknown unknown lane markings"


def test_qwen_captioner_tiny_random_model(stills: list[Path]) -> None:
    """The real QwenJudge (tiny random weights, CPU): its noise reads as an all-unknown caption."""
    image = cv2.cvtColor(cv2.imread(str(stills[0])), cv2.COLOR_BGR2RGB)[None]
    cfg = DatasetConfig(captioner="qwen_vl", qwen_vl={"preset": "tiny-random", "max_new_tokens": 8,
                                                       "max_pixels": 112 * 112})
    caps = build_captioner(cfg).caption(image, np.ones(image.shape[:3], bool))
    assert [c.prompt for c in caps] == ["road with unknown unknown unknown lane markings"]
    assert isinstance(caps[0].details["raw"], str)


# ------------------------------------------------------------------------------------------- validation


def test_validate_rows_reports_each_bad_row(tmp_path: Path, make_dataset) -> None:
    cap = "road with single white solid lane markings"
    root = make_dataset([cap, cap])
    img = np.full((24, 32, 3), 90, np.uint8)
    _png(root / "images" / "small.png", np.zeros((12, 16, 3), np.uint8))
    _png(root / "masks" / "empty.png", np.zeros((24, 32), np.uint8))
    _png(root / "images" / "ok.png", img)
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "outside.png").write_bytes((root / "images" / "ok.png").read_bytes())
    rows = [
        ("images/small.png", "masks/000.png", cap),  # sizes differ
        ("images/ok.png", "masks/empty.png", cap),  # empty mask
        ("../outside.png", "masks/000.png", cap),  # escapes the folder
        (str(tmp_path / "outside.png"), "masks/000.png", cap),  # absolute path
        ("images/../../outside.png", "masks/000.png", cap),  # escapes after normalisation
        ("images/broken.png", "masks/000.png", cap),  # unreadable image
        ("images/gone.png", "masks/000.png", cap),  # missing file
        ("images/ok.png", "masks/000.png", ""),  # empty prompt
        ("images/./ok.png", "masks/000.png", cap),  # fine: stays inside
    ]
    with (root / "train.csv").open("a", newline="") as f:
        csv.writer(f).writerows([(i, m, p, p) for i, m, p in rows])
    good, bad = validate_rows(str(root))
    assert [g.line for g in good] == [2, 3, 12] and good[-1].image_url == str(root / "images" / "ok.png")
    reasons = {b.line: b.reason for b in bad}
    assert sorted(reasons) == list(range(4, 12))
    assert "16x12" in reasons[4] and "32x24" in reasons[4]
    assert "mask is empty" in reasons[5]
    assert all("outside the dataset folder" in reasons[k] for k in (6, 7, 8))
    assert "image 'images/broken.png' unreadable" in reasons[9] and "do not decode" in reasons[9]
    assert "no file there" in reasons[10] and reasons[11] == "empty prompt"
    assert bad[0].values["image"] == "images/small.png"
    # paths only: no file is read
    fast_good, fast_bad = validate_rows(str(root / "train.csv"), check_files=False)
    assert len(fast_good) == 7 and len(fast_bad) == 4


def test_validate_rows_missing_column_and_missing_csv(tmp_path: Path, make_dataset) -> None:
    root = make_dataset(["road with single white solid lane markings"] * 2, columns=("image", "prompt", "prompt_2"))
    good, bad = validate_rows(str(root))
    assert good == [] and [b.line for b in bad] == [2, 3]
    assert bad[0].reason.startswith("missing column(s) mask (the CSV has image, prompt, prompt_2)")
    with pytest.raises(InputError, match=r"train\.csv") as ei:
        validate_rows(str(tmp_path / "nowhere"))
    assert "lanepipe dataset" in str(ei.value)
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "train.csv").write_text("")
    with pytest.raises(InputError, match="an empty file"):
        validate_rows(str(tmp_path / "blank"))
