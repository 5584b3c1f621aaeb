from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lanepipe.datasets.physical_ai_av import (
    DEFAULT_CAMERAS,
    EGOMOTION_COLUMNS,
    EditedVideo,
    PaiavClip,
    edited_t0_us,
    list_clips,
    load_edited_video,
    open_clip,
    parse_edited_name,
)
from lanepipe.errors import ConfigError, InputError
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.io.video import encode
from lanepipe.testing.paiav import FIXTURE_CLIP_ID, fixture_frame_index, write_fixture

FRONT = "camera_front_wide_120fov"
def make_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    encode(frames, str(path), fps)
    return path


SHORT_ID = "11111111-2222-4333-8444-555555555555"
NAN_ID = "22222222-2222-4333-8444-555555555555"


def _nan_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[150:152, "qz"] = np.nan
    return df


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("paiav")
    write_fixture(r, egomotion_seconds=9.0)
    # a second clip in another chunk: three cameras only and a short, late-starting video
    write_fixture(r, SHORT_ID, cameras=DEFAULT_CAMERAS[:3], seconds=2.0, chunk=1)
    write_fixture(r, NAN_ID, cameras=(FRONT,), seconds=2.0, chunk=1, egomotion_edit=_nan_rows)
    return r


@pytest.fixture(scope="module")
def clip(root: Path) -> PaiavClip:
    return open_clip(root, FIXTURE_CLIP_ID)


def test_fixture_layout_matches_the_dataset(root: Path) -> None:
    cam = FRONT
    with zipfile.ZipFile(root / "camera" / cam / f"{cam}.chunk_0000.zip") as zf:
        names = set(zf.namelist())
        assert names == {f"{FIXTURE_CLIP_ID}.{cam}.mp4", f"{FIXTURE_CLIP_ID}.{cam}.timestamps.parquet"}
        ts = pd.read_parquet(io.BytesIO(zf.read(f"{FIXTURE_CLIP_ID}.{cam}.timestamps.parquet")))
    assert list(ts.columns) == ["timestamp"] and ts["timestamp"].dtype == np.int64
    with zipfile.ZipFile(root / "labels" / "egomotion" / "egomotion.chunk_0000.zip") as zf:
        ego = pd.read_parquet(io.BytesIO(zf.read(f"{FIXTURE_CLIP_ID}.egomotion.parquet")))
    assert tuple(ego.columns) == EGOMOTION_COLUMNS
    assert np.all(np.diff(ego["timestamp"]) == 10_000)  # 100 Hz in µs
    intr = pd.read_parquet(root / "calibration" / "camera_intrinsics" / "camera_intrinsics.chunk_0000.parquet")
    extr = pd.read_parquet(root / "calibration" / "sensor_extrinsics" / "sensor_extrinsics.chunk_0000.parquet")
    assert intr.index.names == ["clip_id", "camera_name"] and extr.index.names == ["clip_id", "sensor_name"]
    assert {f"fw_poly_{i}" for i in range(5)} <= set(intr.columns)
    assert list(extr.columns) == ["qx", "qy", "qz", "qw", "x", "y", "z"]
    assert len(intr.loc[FIXTURE_CLIP_ID]) == 4  # devkit reads .loc[clip_id] -> one row per camera
    index = pd.read_parquet(root / "clip_index.parquet")
    assert index.loc[SHORT_ID, "chunk"] == 1
    feats = pd.read_csv(root / "features.csv", index_col="feature")
    assert json.loads(feats.loc[cam, "clip_files_in_zip"])["frame_timestamps"] == "{clip_id}." + cam + \
        ".timestamps.parquet"
    assert feats.loc[cam, "chunk_path"].format(chunk_id=3) == f"camera/{cam}/{cam}.chunk_0003.zip"
    assert set(list_clips(root)) == {FIXTURE_CLIP_ID, SHORT_ID, NAN_ID}
    with pytest.raises(ConfigError, match="already holds"):
        write_fixture(root, SHORT_ID, cameras=DEFAULT_CAMERAS[:1], seconds=1.0, chunk=1)


def test_open_clip_finds_chunk_and_cameras(root: Path, clip: PaiavClip) -> None:
    assert clip.chunk == 0
    assert set(clip.cameras) == set(DEFAULT_CAMERAS)
    short = open_clip(root, SHORT_ID)
    assert short.chunk == 1 and set(short.cameras) == set(DEFAULT_CAMERAS[:3])
    with pytest.raises(InputError, match="none by that id"):
        open_clip(root, "no-such-clip")
    with pytest.raises(InputError, match=r"clip_index\.parquet"):
        open_clip(root / "camera", FIXTURE_CLIP_ID)


def test_frames_pick_last_frame_at_or_before(clip: PaiavClip) -> None:
    ts = clip.frame_timestamps(FRONT)
    assert len(ts) == 120 and ts[0] == 1000 + 137 * 1  # front wide is camera 1 of the fixture
    req = np.array([ts[10], ts[10] + 1, ts[11] - 1, ts[11], ts[-1], ts[0]])
    idx, picked = clip.select_frames(FRONT, req)
    assert idx.tolist() == [10, 10, 10, 11, 119, 0]
    assert picked.tolist() == ts[idx].tolist()
    frames = clip.frames(FRONT, req)
    assert frames.shape == (6, 108, 192, 3) and frames.dtype == np.uint8
    assert [fixture_frame_index(f) for f in frames] == [10, 10, 10, 11, 119, 0]
    with pytest.raises(InputError, match="frames covering"):
        clip.frames(FRONT, [ts[0] - 1])
    with pytest.raises(InputError, match="frames covering"):
        clip.frames(FRONT, [ts[-1] + 1])


def test_egomotion_and_history(clip: PaiavClip) -> None:
    ego = clip.egomotion()
    assert ego.timestamps[0] == 0.0 and ego.timestamps[-1] == pytest.approx(9.0)
    state = clip.ego_state(2_000_000)
    assert state.xyz.shape == (16, 3) and state.rot.shape == (16, 3, 3)
    assert np.allclose(state.xyz[-1], 0) and np.allclose(state.rot[-1], np.eye(3), atol=1e-6)
    assert state.speed == pytest.approx(10.0, rel=1e-3)
    # 1.5 s back on a left curve of radius 200 m: behind, slightly to the left
    ang = 0.05 * 1.5
    assert np.allclose(state.xyz[0], [-200 * np.sin(ang), 200 * (1 - np.cos(ang)), 0], atol=1e-3)
    fut = clip.future(2_000_000)
    assert fut.shape == (64, 3) and fut[-1, 0] == pytest.approx(200 * np.sin(0.05 * 6.4), abs=1e-2)
    assert fut[-1, 1] > 0


def test_camera_model(clip: PaiavClip) -> None:
    cam = clip.camera_model(FRONT)
    assert isinstance(cam, FThetaCamera) and (cam.width, cam.height) == (192, 108)
    px, valid = cam.project(np.array([[40.0, 0.0, 1.45], [-5.0, 0.0, 1.0]]))
    assert valid.tolist() == [True, False]
    # at camera height straight ahead: above the principal point, since the camera is pitched down 0.05 rad
    assert abs(px[0, 0] - cam.cx) < 0.5 and px[0, 1] == pytest.approx(cam.cy - cam.fw_poly[1] * 0.05, abs=0.5)
    left = clip.camera_model("camera_cross_left_120fov")
    px, valid = left.project(np.array([[1.9, 20.0, 1.0]]))
    assert valid[0] and abs(px[0, 0] - left.cx) < 0.5


def test_parse_edited_name() -> None:
    cid = FIXTURE_CLIP_ID
    assert parse_edited_name(f"/x/{cid}.{FRONT}.mp4") == (cid, FRONT)
    assert parse_edited_name(f"{cid}.camera_front_tele_30fov.edited.0.mp4") == (cid, "camera_front_tele_30fov")
    assert parse_edited_name(f"{cid}_{FRONT}_0.mp4") == (cid, FRONT)
    assert parse_edited_name(f"runs/r1/edit/{cid}_{FRONT}/double-yellow-solid/edited.mp4") == (cid, FRONT)
    assert parse_edited_name(f"clipA.{FRONT}.mp4") == ("clipA", FRONT)
    with pytest.raises(InputError, match="<clip_id>"):
        parse_edited_name("/videos/edited.mp4")


def test_edited_t0() -> None:
    # 33 frames at 8 fps: t0 = 32 * 0.125 s = 4 s after the first frame
    assert edited_t0_us(33, first_timestamp_us=1137) == 1137 + 4_000_000
    assert edited_t0_us(33, 1137, fps=10.0, t0_frame=10) == 1137 + 1_000_000
    with pytest.raises(ConfigError):
        edited_t0_us(33, 0, t0_frame=33)


def test_predictor_input_with_edited_front(clip: PaiavClip, tmp_path: Path) -> None:
    ts0 = int(clip.frame_timestamps(FRONT)[0])
    n = 17  # 2 s at 8 fps
    frames = np.full((n, 64, 96, 3), 30, np.uint8)
    for k in range(n):
        frames[k, :, : 4 * (k + 1) % 96] = 200
    path = make_video(tmp_path / f"{FIXTURE_CLIP_ID}_{FRONT}.mp4", frames, fps=8.0)
    ed = load_edited_video(path, clip)
    assert ed.camera == FRONT and ed.frames.shape == (n, 64, 96, 3)
    assert ed.t0_us == edited_t0_us(n, ts0) == ts0 + 2_000_000
    inp = clip.predictor_input(ed.t0_us, replace={FRONT: ed})
    view = inp.cameras[FRONT]
    assert view.frames.shape == (4, 64, 96, 3)  # edited size; the predictor resizes
    # picks at t0 - 0.3, -0.2, -0.1, 0 from 8 fps frames: -0.375, -0.25, -0.125, 0
    assert np.allclose(view.timestamps, [-0.375, -0.25, -0.125, 0.0])
    assert isinstance(view.camera, FThetaCamera) and view.camera.width == 192
    other = inp.cameras["camera_front_tele_30fov"]
    assert other.frames.shape == (4, 108, 192, 3) and np.all(other.timestamps <= 0)
    assert np.all(other.timestamps > -0.34)
    assert inp.meta["replaced_cameras"] == [FRONT] and inp.meta["t0_us"] == ed.t0_us
    assert inp.front == FRONT and inp.t0 == pytest.approx(ed.t0_us / 1e6)
    assert "future_xyz" in inp.meta and inp.meta["future_xyz"].shape == (64, 3)
    with pytest.raises(InputError, match="one named for clip"):
        load_edited_video(make_video(tmp_path / f"{SHORT_ID}.{FRONT}.mp4", frames[:3], fps=8.0), clip)
    wrong = EditedVideo.from_frames(FIXTURE_CLIP_ID, "camera_front_tele_30fov", frames, ts0)
    with pytest.raises(InputError, match="an edited camera_front_wide_120fov"):
        clip.predictor_input(ed.t0_us, replace={FRONT: wrong})


def test_missing_camera_names_clip_and_camera(root: Path) -> None:
    short = open_clip(root, SHORT_ID)
    with pytest.raises(InputError) as e:
        short.predictor_input(1_800_000)
    msg = str(e.value)
    assert SHORT_ID in msg and "camera_front_tele_30fov" in msg and "cameras here" in msg
    with pytest.raises(InputError, match=SHORT_ID):
        short.frames("camera_front_tele_30fov", [1_000_000])


def test_history_not_covered(clip: PaiavClip, root: Path) -> None:
    with pytest.raises(InputError) as e:
        clip.predictor_input(1_000_000)  # needs ego-motion from -0.5 s
    assert FIXTURE_CLIP_ID in str(e.value) and "t0 - 1.5 s" in str(e.value)
    short = open_clip(root, SHORT_ID)
    with pytest.raises(InputError, match=f"{SHORT_ID} camera_cross_left_120fov: expected frames covering"):
        short.predictor_input(1_990_000, cameras=DEFAULT_CAMERAS[:3])  # ego-motion reaches 2 s, video 1.97 s


def test_nan_in_egomotion_names_clip_and_column(root: Path) -> None:
    bad = open_clip(root, NAN_ID)
    with pytest.raises(InputError) as e:
        bad.egomotion()
    msg = str(e.value)
    assert NAN_ID in msg and "['qz']" in msg and "row 150" in msg
    with pytest.raises(InputError, match=NAN_ID):
        bad.predictor_input(1_800_000, cameras=(FRONT,))
