"""One lane edit in the road plane, painted into every camera of a rig (issue 18 items 1-2): the synthetic rig's
ground truth, the read-back consistency of a painted line across pinhole and f-theta cameras, ``edit.cameras=all``
through the CLI, and all four of Alpamayo's PAI-AV cameras edited and fed to the dry-run worker."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lanepipe.cli import app
from lanepipe.config import load_config
from lanepipe.datasets.rig import load_rig
from lanepipe.datasets.sources import resolve_inputs
from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.edit.rig import RoadEdit, Stripe, paint_camera, recover_lines, road_plane_check
from lanepipe.engine.items import ClipItem
from lanepipe.errors import ConfigError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.rig import EgoBody, RigCamera, pixel_ground
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import MarkingSizes, parse_instruction
from lanepipe.sample import render_sample
from lanepipe.sample.rig import FRONT, RIG_CAMERAS, RigSample, ground_truth_line, render_rig, write_rig
from lanepipe.stages.edit import EditStage
from lanepipe.stages.evaluate import EvaluateStage
from lanepipe.stages.segment import SegmentStage
from lanepipe.testing.paiav import FIXTURE_CLIP_ID, write_fixture
from lanepipe.types import RoadMasks

N, W, H = 8, 480, 270


@pytest.fixture(scope="module")
def rig() -> RigSample:
    return render_rig(num_frames=N, width=W, height=H)


def test_rig_renders_one_scene_with_exact_ground_truth(rig: RigSample) -> None:
    assert list(rig.views) == list(RIG_CAMERAS)
    # the front camera is the single-camera sample, unchanged
    single = render_sample(num_frames=N, width=W, height=H)
    assert np.array_equal(rig.views[FRONT].frames, single.frames)
    assert {v.camera.model.to_dict()["model"] for v in rig.views.values()} == {"pinhole", "ftheta"}
    for name, view in rig.views.items():
        assert view.frames.shape == (N, H, W, 3) and view.road_masks.any(axis=(1, 2)).all(), name
        for t in (0, N - 1):
            truth = {ln.offset_m: ln for ln in view.lanes[t]}
            for offset, line in truth.items():
                if len(line.points) < 5:
                    continue
                # every ground-truth pixel of a line lies on that road line when cast back onto the ground
                pts, ok = view.camera.pixel_to_ground(line.points[:, 0], line.points[:, 1])
                gt = ground_truth_line(rig.ego[t], offset, behind_m=30.0, step_m=0.05)
                d = np.min(np.hypot(pts[ok, 0, None] - gt[None, :, 0], pts[ok, 1, None] - gt[None, :, 1]), axis=1)
                near = np.hypot(pts[ok, 0], pts[ok, 1]) < 40
                assert ok.mean() > 0.9, (name, t, offset)
                if near.sum() >= 3:
                    assert np.median(d[near]) < 0.03, (name, t, offset)
    # the cross cameras see the ego lane's boundary on their own side
    assert len(rig.views["cross_left"].lanes[0][1].points) > 20  # id 1: the left boundary (double yellow)
    assert len(rig.views["cross_right"].lanes[0][2].points) > 20  # id 2: the right boundary (dashed white)


def test_rig_files_round_trip(tmp_path: Path) -> None:
    mp4 = write_rig(tmp_path, num_frames=3, width=96, height=64)
    r = load_rig(str(mp4))
    assert r is not None and r.front == FRONT and list(r.cameras) == list(RIG_CAMERAS) and r.body is None
    assert r.cameras == {n: c.rescaled(96, 64) for n, c in r.cameras.items()}
    for name, url in r.videos.items():
        assert decode(url, target_fps=None).frames.shape == (3, 64, 96, 3), name
    assert r.select("front") == [FRONT] and r.select("all") == list(RIG_CAMERAS)
    assert r.select(["cross_left", "front"]) == [FRONT, "cross_left"]
    with pytest.raises(ConfigError, match=r"\['side_cam'\] not in this clip's rig; it has"):
        r.select(["side_cam"])


def test_one_edit_reads_back_on_the_same_ground_in_every_camera(rig: RigSample) -> None:
    spec = parse_instruction("single white solid")
    front = rig.front
    res = ProceduralPainter().paint(front.to_clip(), RoadMasks(masks=front.road_masks, backend="truth"), spec)
    assert res.road is not None
    edit = RoadEdit.from_front(res.road, spec, MarkingSizes(), rig.views[FRONT].camera.offset)
    xb = np.arange(5.0, 30.0 + 1e-9, 1.0)
    truth = np.stack([np.interp(xb, *ground_truth_line(rig.ego[t], 0.0).T) for t in range(N)])
    read: dict[str, np.ndarray] = {}
    for name, view in rig.views.items():
        frames = res.frames
        if name != FRONT:
            out = paint_camera(view.frames, view.road_masks, view.camera, edit)
            assert not np.any(out.frames[~view.road_masks] != view.frames[~view.road_masks]), name
            frames = out.frames
        rec = recover_lines(frames, view.road_masks, view.camera, edit, x_bins=xb)
        read[name] = rec.y["left"]
        if name != "cross_right":  # it looks right: the left boundary is out of its view
            assert road_plane_check(rec, edit)["verdict"] == "PASS", name
    for name, y in read.items():
        err = np.abs(y - truth)[np.isfinite(y)]
        if name == "cross_right":
            assert len(err) == 0
            continue
        assert len(err) >= 10 * N and np.percentile(err, 95) < 0.10 and np.median(err) < 0.04, name
    for a, b in itertools.combinations([n for n in read if n != "cross_right"], 2):
        diff = np.abs(read[a] - read[b])
        diff = diff[np.isfinite(diff)]
        assert len(diff) >= 5 * N and diff.max() < 0.10, (a, b)
    # the erased double yellow is gone from the cross camera that saw it
    view = rig.views["cross_left"]
    look_for_yellow = dataclasses.replace(edit, spec=parse_instruction("double yellow solid"))
    out = paint_camera(view.frames, view.road_masks, view.camera, edit)
    old = recover_lines(view.frames, view.road_masks, view.camera, look_for_yellow, x_bins=xb)
    new = recover_lines(out.frames, view.road_masks, view.camera, look_for_yellow, x_bins=xb)
    assert np.nanmean(old.paint_fraction["left"]) > 0.1 and np.nanmean(new.paint_fraction["left"]) < 0.01


def test_dashes_land_on_the_same_road_in_every_camera(rig: RigSample) -> None:
    spec = parse_instruction("single white dashed")
    front = rig.front
    res = ProceduralPainter().paint(front.to_clip(), RoadMasks(masks=front.road_masks, backend="truth"), spec)
    assert res.road is not None
    edit = RoadEdit.from_front(res.road, spec, MarkingSizes(), rig.views[FRONT].camera.offset)
    xb = np.arange(6.0, 22.0, 0.5)
    painted = {}
    for name in (FRONT, "front_tele", "cross_left"):
        view = rig.views[name]
        frames = res.frames if name == FRONT else paint_camera(view.frames, view.road_masks, view.camera, edit).frames
        y = recover_lines(frames, view.road_masks, view.camera, edit, x_bins=xb, bin_m=0.5).y["left"]
        painted[name] = np.isfinite(y)
    seen = np.ones_like(painted[FRONT])
    seen[:, xb < 9.0] = False  # the tele's nearest ground
    for name in ("front_tele", "cross_left"):
        agree = (painted[name] == painted[FRONT])[seen]
        assert agree.mean() > 0.85, name
    # dashes (3.05 m) and gaps (9.14 m): about a quarter of the bins painted, moving with the road
    assert 0.15 < painted[FRONT][seen].mean() < 0.45
    assert not np.array_equal(painted[FRONT][0], painted[FRONT][-1])


def test_removal_is_checked_in_the_road_plane(rig: RigSample) -> None:
    spec = parse_instruction("none")
    front = rig.front
    res = ProceduralPainter().paint(front.to_clip(), RoadMasks(masks=front.road_masks, backend="truth"), spec)
    assert res.road is not None
    edit = RoadEdit.from_front(res.road, spec, MarkingSizes(), rig.views[FRONT].camera.offset)
    verdicts = {}
    for name in ("cross_left", "cross_right"):
        view = rig.views[name]
        out = paint_camera(view.frames, view.road_masks, view.camera, edit)
        verdicts[name] = road_plane_check(recover_lines(out.frames, view.road_masks, view.camera, edit), edit)
        assert out.lanes == [[] for _ in range(N)]  # nothing painted, nothing labelled
    assert verdicts["cross_left"]["verdict"] == "PASS"
    assert verdicts["cross_right"]["verdict"] == "SKIPPED"  # it does not see the left boundary
    view = rig.views["cross_left"]  # the same check on the unedited frames sees the double yellow
    before = road_plane_check(recover_lines(view.frames, view.road_masks, view.camera, edit), edit)
    assert before["verdict"] == "FAIL" and "still looks painted" in before["reasons"][0]


def test_ego_body_hides_the_ground_below_a_steep_camera() -> None:
    cam = RigCamera("down", PinholeCamera.from_fov(64, 48, 90.0, mount_height_m=1.0, pitch_deg=60.0), (1.0, 0.9))
    body = EgoBody.from_dimensions(length=4.0, width=1.9, rear_axle_to_centre=1.0, top_m=0.75)
    g = pixel_ground(cam, body=body)
    assert g.hidden.any() and not g.hidden.all()
    # hidden pixels look at ground inside the footprint (under the car), visible ones mostly outside it
    rows, cols = np.nonzero(g.hidden)
    pts, _ = cam.pixel_to_ground(cols.astype(float), rows.astype(float))
    assert np.all(np.abs(pts[:, 1]) < 0.95 + (0.9 * 0.25 / 0.75) + 1e-6)
    assert not np.isfinite(g.x[g.hidden]).any()
    spec = parse_instruction("single white solid")
    frames = np.full((2, 48, 64, 3), 90, np.uint8)
    # a wide stripe along y = 1.2 m, partly under the car's side as this camera sees it
    edit = RoadEdit(spec=spec, sides=("left",), xs=np.linspace(-10, 40, 201),
                    boundaries={s: np.full((2, 201), 1.2) for s in ("left", "right")},
                    stripes={"left": [Stripe(0.0, 0.6, False)], "right": []}, dash_origin=np.zeros(2))
    out = paint_camera(frames, np.ones((2, 48, 64), bool), cam, edit, body)
    changed = (out.frames != frames).any(axis=(0, 3))
    assert changed.any() and not (changed & g.hidden).any()


def test_edit_cameras_all_through_the_cli(ray_local, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["sample", "-o", str(tmp_path / "s"), "--rig", "--frames", "10", "--width", "480",
                              "--height", "270"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["run", "--stages", "segment,edit,evaluate", "-i", str(tmp_path / "s" / "sample.mp4"),
                              "-o", str(tmp_path), "--run-id", "rig", "-e", "single white dashed@both",
                              "--set", "edit.cameras=all"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "rig"
    df = pd.read_parquet(run / "results.parquet").set_index("stage")
    assert json.loads(df.loc["edit", "edited_cameras"]) == list(RIG_CAMERAS)
    checks = json.loads(df.loc["edit", "camera_checks"])
    assert set(checks) == set(RIG_CAMERAS) - {FRONT} and "FAIL" not in checks.values()
    d = run / "edit" / "sample" / "single-white-dashed-at-both"
    lanes = {FRONT: json.loads((d / "lanes.json").read_text())}
    for name in RIG_CAMERAS[1:]:
        lanes[name] = json.loads((d / "cameras" / name / "lanes.json").read_text())
        assert lanes[name]["camera"] == name and len(lanes[name]["frames"]) == 10
        assert decode(str(d / "cameras" / name / "edited.mp4"), target_fps=None).num_frames == 10
    for name, doc in lanes.items():
        seen = {ln["side"] for f in doc["frames"] for ln in f["lines"] if len(ln["points"]) >= 2}
        want = {"left"} if name == "cross_left" else {"right"} if name == "cross_right" else {"left", "right"}
        assert want <= seen, name
        assert all(ln["pattern"] == "dashed" and ln["color"] == "white" for f in doc["frames"] for ln in f["lines"])
    road = json.loads((d / "road_edit.json").read_text())
    assert road["instruction"] == "single white dashed@both" and len(road["frames"]) == 10
    ev = json.loads((run / "evaluate" / "sample" / "single-white-dashed-at-both" / "lane_keep.json").read_text())
    assert ev["edited_cameras"] == ["front", *RIG_CAMERAS[1:]]


def test_all_four_alpamayo_cameras_edited_and_fed_to_the_dry_run_worker(tmp_path: Path) -> None:
    root = tmp_path / "paiav"
    write_fixture(root, FIXTURE_CLIP_ID, seconds=3.0, egomotion_seconds=12.0)
    front = "camera_front_wide_120fov"
    src = resolve_inputs([f"paiav://{root}?camera={front}"])[0]
    cfg = load_config(None, ["run_id=r", "edit.cameras=all", "edit.instructions=single white solid@both",
                             "evaluate.predictors=[alpamayo]", "evaluate.predictor_options.alpamayo.dry_run=true"],
                      base={"output": str(tmp_path)})
    seg = SegmentStage(cfg, str(tmp_path), "r", str(tmp_path), "r").process(ClipItem(source=src.source, name=src.name))
    edits = EditStage(cfg, str(tmp_path), "r", str(tmp_path), "r").process(seg[-1])
    row = edits[-1].to_row()
    assert row["status"] == "ok", row["error"]
    others = ["camera_cross_left_120fov", "camera_cross_right_120fov", "camera_front_tele_30fov"]
    assert json.loads(row["edited_cameras"]) == [front, *others]
    videos = {front: row["edited"], **json.loads(row["camera_videos"])}
    stage = EvaluateStage(cfg, str(tmp_path), "r", str(tmp_path), "r")
    try:
        ev = stage.process(edits[-1])[-1].to_row()
    finally:
        for p in stage.predictors.values():
            p.close()  # type: ignore[attr-defined]
    assert ev["status"] == "ok", ev["error"]
    doc = json.loads(Path(ev["evaluation"]).read_text())
    assert doc["edited_cameras"] == ["front", *others]
    meta = doc["predictor_meta"]
    assert meta["edited"]["edited_cameras"] == ["front", *others] and meta["edited"]["dry_run"]
    got, orig = meta["edited"]["worker_received"], meta["original"]["worker_received"]
    # Alpamayo's order: cross_left 0, front_wide 1, cross_right 2, front_tele 6; frames t0-0.3 … t0 at 8 fps are the
    # edited clips' last four frames
    order = ["camera_cross_left_120fov", front, "camera_cross_right_120fov", "camera_front_tele_30fov"]
    assert got["camera_indices"] == [0, 1, 2, 6]
    n = decode(videos[front], target_fps=None).num_frames
    for c, name in enumerate(order):
        frames = decode(videos[name], target_fps=None).frames[n - 4: n]
        want = hashlib.sha1(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).tobytes()).hexdigest()
        assert got["frames_sha1"][c] == want, name  # the worker received this camera's edited frames
        assert got["frames_sha1"][c] != orig["frames_sha1"][c], name  # and not the original ones
    checks = json.loads(row["camera_checks"])
    assert set(checks) == set(others) and "FAIL" not in checks.values()
    assert math.isfinite(ev["shift_ade"])


def test_paiav_front_is_painted_through_its_own_ftheta_calibration(tmp_path: Path) -> None:
    """A PhysicalAI-AV clip brings its front camera's f-theta calibration: the painter works through it (not the
    fallback pinhole) and says so in its geometry; the painted line, cast back onto the ground through that f-theta
    model, lies on the edit's road-plane line. The fallback pinhole's edit read through the same model does not."""
    root = tmp_path / "paiav"
    write_fixture(root, FIXTURE_CLIP_ID, seconds=2.0, size=(640, 360), egomotion_seconds=10.0)
    front = "camera_front_wide_120fov"
    src = resolve_inputs([f"paiav://{root}?camera={front}"])[0]
    cfg = load_config(None, ["run_id=r", "edit.instructions=single white solid@both"], base={"output": str(tmp_path)})
    stage = EditStage(cfg, str(tmp_path), "r", str(tmp_path), "r")
    clip = stage.with_context(decode(src.source, target_fps=8.0))
    rig = load_rig(src.source)
    assert rig is not None
    cam = rig.cameras[front]
    assert clip.meta["camera"].to_dict()["model"] == "ftheta"
    masks = np.zeros(clip.frames.shape[:3], dtype=bool)
    masks[:, int(clip.height * 0.55):] = True  # the fixture's road: the lower half
    road = RoadMasks(masks=masks, backend="test")
    spec = parse_instruction("single white solid@both")
    res = ProceduralPainter().paint(clip, road, spec)
    assert res.diagnostics["camera_model"] == "ftheta"
    assert res.diagnostics["camera"]["name"] == front and "f-theta" in res.diagnostics["camera_source"]
    assert res.road is not None
    edit = RoadEdit.from_front(res.road, spec, MarkingSizes(), rig.front_offset)
    g = pixel_ground(cam.rescaled(clip.width, clip.height))
    xb = np.arange(5.0, 15.0 + 1e-9, 1.0)  # at 640x360 the fixture's 120 deg camera resolves the line to ~15 m
    read = recover_lines(res.frames, masks, cam, edit, x_bins=xb, ground=g)
    for side in ("left", "right"):
        drawn = np.stack([edit.boundary_y(t, side, xb) for t in range(clip.num_frames)])
        err = np.abs(read.y[side] - drawn)
        assert np.isfinite(err).mean() > 0.8, side  # the line is read back at most distances in every frame
        assert np.nanmedian(err) < 0.03 and np.nanmax(err) < 0.10, (side, np.nanmedian(err), np.nanmax(err))
    assert road_plane_check(read, edit)["verdict"] == "PASS"
    # the fallback pinhole (no calibration in the meta) paints elsewhere on the ground than its own edit says
    plain = dataclasses.replace(clip, meta={k: v for k, v in clip.meta.items() if k != "camera"})
    fb = ProceduralPainter().paint(plain, road, spec)
    assert fb.diagnostics["camera_model"] == "pinhole" and fb.road is not None
    fb_edit = RoadEdit.from_front(fb.road, spec, MarkingSizes(), rig.front_offset)
    fb_read = recover_lines(fb.frames, masks, cam, fb_edit, x_bins=xb, ground=g)
    fb_err = np.abs(fb_read.y["left"] - np.stack([fb_edit.boundary_y(t, "left", xb) for t in range(clip.num_frames)]))
    assert np.nanmax(fb_err) > 0.12  # (the calibrated edit above: < 0.10 everywhere)
