"""The ego vehicle's hood: found on camera B's clips, absent on the P1 clip, cut from the mask, never painted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanepipe.edit.procedural import ProceduralPainter
from lanepipe.io.layout import RunLayout
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.segment.config import GridConfig, HoodConfig
from lanepipe.segment.grid import GridSegmenter
from lanepipe.segment.hood import detect_hood, exclude_hood
from lanepipe.stages.edit import load_masks
from lanepipe.stages.segment import write_segment_outputs
from lanepipe.types import Clip, RoadMasks

NO_HOOD = GridConfig(hood=HoodConfig(enabled=False))


@pytest.fixture(scope="module")
def bridge(data_dir: Path) -> Clip:
    """Camera B on the light concrete bridge (its hood is bright and reflective), first 2 s at 8 fps."""
    return decode(str(data_dir / "udacity_advanced_lane_lines" / "project_video_subclip_bridge_6s.mp4"),
                  max_frames=16)


@pytest.fixture(scope="module")
def p1(data_dir: Path) -> Clip:
    """Camera A (Udacity P1): no hood in view; smooth asphalt that barely changes at the bottom of the frame."""
    return decode(str(data_dir / "udacity_lanelines_p1" / "solidWhiteRight.mp4"), max_frames=24)


def test_camera_b_hood_found_and_cut_from_the_mask(real_clip: Path) -> None:
    clip = decode(str(real_clip))
    hood = detect_hood(clip.frames)
    assert hood is not None
    # camera B's bonnet: its edge runs across the whole width at 88-95 % of the height (rows 635-690 of 720)
    assert hood.top.shape == (1280,) and (hood.top < 720).all()
    assert 600 <= int(np.median(hood.top)) <= 690 and hood.row >= 600
    masks = GridSegmenter().segment(clip)
    before = GridSegmenter(NO_HOOD).segment(clip)
    on_hood = hood.mask()[None]
    assert (before.masks & on_hood).sum() > 10_000  # without the cut the road covers the hood
    assert not (masks.masks & on_hood).any()
    assert masks.hood_top is not None and np.array_equal(masks.hood_top, hood.top)
    # above the hood nothing changed
    assert np.array_equal(masks.masks[:, : hood.row - 8], before.masks[:, : hood.row - 8])


def test_p1_clip_has_no_hood_and_its_bottom_rows_stay_road(p1: Clip) -> None:
    assert detect_hood(p1.frames) is None
    masks = GridSegmenter().segment(p1)
    before = GridSegmenter(NO_HOOD).segment(p1)
    assert masks.hood_top is None
    assert np.array_equal(masks.masks, before.masks)
    assert masks.masks[:, -20:, 300:660].mean() > 0.95  # the road reaches the bottom edge


def test_single_frame_and_still_scene_give_no_hood(bridge: Clip) -> None:
    assert detect_hood(bridge.frames[:1]) is None
    still = np.repeat(bridge.frames[:1], 8, axis=0)  # a car standing still: nothing tells hood from road
    assert detect_hood(still) is None
    # a backend's masks pass through unchanged when the hood is switched off
    masks = RoadMasks(np.ones(bridge.frames.shape[:3], dtype=bool), "test")
    off = exclude_hood(masks, bridge.frames, HoodConfig(enabled=False))
    assert off.hood_top is None and off.masks.all()


def test_hood_profile_travels_with_the_masks_file(bridge: Clip, tmp_path: Path) -> None:
    masks = GridSegmenter().segment(bridge)
    assert masks.hood_top is not None
    paths = RunLayout(str(tmp_path), "r").segment_paths(bridge.name)
    write_segment_outputs(paths, bridge, masks, overlay=False, videopainter=False)
    back = load_masks(paths.npz, bridge)
    assert back.hood_top is not None and np.array_equal(back.hood_top, masks.hood_top)
    assert np.array_equal(back.masks, masks.masks)


def test_procedural_edit_paints_nothing_on_the_hood(bridge: Clip) -> None:
    masks = GridSegmenter().segment(bridge)
    assert masks.hood_top is not None
    hood = np.arange(bridge.height)[:, None] >= masks.hood_top[None, :]
    out = ProceduralPainter().paint(bridge, masks, parse_instruction("single white solid"))
    changed = np.abs(out.frames.astype(np.int16) - bridge.frames.astype(np.int16)).max(axis=-1) > 0
    assert changed[:, ~hood].sum() > 1000  # the edit happened
    _hood_untouched_but_its_rim(bridge.frames, out.frames, masks.hood_top, changed)


def _hood_untouched_but_its_rim(before: np.ndarray, after: np.ndarray, hood_top: np.ndarray,
                                changed: np.ndarray) -> None:
    """No hood pixel changes, except on its blurred rim (render._SEAM of the height) where old paint was cleaned
    off: there a changed pixel gets no yellower, and brighter only where it lost its yellow."""
    import math

    import cv2

    from lanepipe.edit.procedural.render import _SEAM

    h = before.shape[1]
    rows = np.arange(h)[:, None]
    hood = rows >= hood_top[None, :]
    deep = rows >= hood_top[None, :] + math.ceil(_SEAM * h)
    assert changed[:, deep].sum() == 0
    on_rim = changed & (hood & ~deep)[None]
    for t in np.flatnonzero(on_rim.any(axis=(1, 2))):
        lo = cv2.cvtColor(before[t], cv2.COLOR_RGB2LAB).astype(np.int16)[on_rim[t]]
        le = cv2.cvtColor(after[t], cv2.COLOR_RGB2LAB).astype(np.int16)[on_rim[t]]
        assert (le[:, 2] <= lo[:, 2] + 2).all()
        assert ((le[:, 0] <= lo[:, 0] + 3) | (le[:, 2] < lo[:, 2] - 6)).all()


@pytest.mark.parametrize("frames", [4, 8])
def test_short_clips_take_no_road_for_a_hood(data_dir: Path, frames: int) -> None:
    """A handful of frames shows little motion: road that looks static must not become a hood (with 4 frames the
    P1 clip, which shows no hood, once lost everything below 52 % of its height). Too few frames or a profile that
    is not a bonnet's gentle curve: no hood."""
    for rel in ("udacity_lanelines_p1/solidWhiteRight.mp4", "udacity_advanced_lane_lines/project_video_subclip_4s.mp4"):
        clip = decode(str(data_dir / rel), target_fps=8.0, max_frames=frames)
        for cfg in (HoodConfig(), HoodConfig(min_frames=4)):
            hood = detect_hood(clip.frames, cfg)
            if hood is not None:
                inside = hood.top < clip.height
                assert np.ptp(hood.top[inside]) <= cfg.max_spread * clip.height
                assert hood.row >= 0.8 * clip.height, (rel, frames, hood.row)

def test_none_at_both_erases_the_old_paint_down_to_the_hood(real_clip: Path) -> None:
    """Camera B, ``none@both``: the mask stops at the hood, and the old yellow line's last piece in the band just
    above the hood (where the grid mask often stops a few pixels short) is erased like the rest, without tinting
    the fill; no hood pixel changes but the paint on its blurred rim."""
    import cv2

    clip = decode(str(real_clip), max_frames=12)  # the hood finder's minimum
    masks = GridSegmenter().segment(clip)
    assert masks.hood_top is not None
    out = ProceduralPainter().paint(clip, masks, parse_instruction("none@both")).frames
    rows = np.arange(clip.height)[:, None]
    hood = rows >= masks.hood_top[None, :]
    band = ~hood & (rows >= masks.hood_top[None, :] - 20) & (masks.hood_top[None, :] < clip.height)

    def yellow(f: np.ndarray) -> np.ndarray:  # paint yellow: CIE b* well above neutral pavement's
        return cv2.cvtColor(f, cv2.COLOR_RGB2LAB)[..., 2].astype(np.int16) - 128 > 25

    for t in range(clip.num_frames):
        before, after = int(yellow(clip.frames[t])[band].sum()), int(yellow(out[t])[band].sum())
        assert before > 200, (t, before)  # the clip's yellow line reaches the hood
        assert after <= 0.03 * before, (t, before, after)
    changed = np.abs(out.astype(np.int16) - clip.frames.astype(np.int16)).max(axis=-1) > 0
    _hood_untouched_but_its_rim(clip.frames, out, masks.hood_top, changed)


def test_a_solid_lines_near_end_does_not_notch_the_hood(data_dir: Path) -> None:
    """The solid yellow line's near end is as static as the hood: the refined edge used to climb it (10 rows up
    over ~15 columns on this clip), the road mask lost the line's last piece and the erase left it yellow."""
    from lanepipe.segment.hood import _fill_notches

    clip = decode(str(data_dir / "udacity_advanced_lane_lines" / "vehicle_detection_test_video.mp4"), max_frames=16)
    hood = detect_hood(clip.frames)
    assert hood is not None
    # where the line meets the hood (x ~296-311 at 1280x720) the edge stays on the bonnet's curve around it
    around = float(np.median(hood.top[250:360]))
    assert hood.top[290:320].min() >= around - 1.5, hood.top[290:320]
    # the filter itself: a narrow notch is filled, a broad rise (the bonnet's curve) and the span outside stay
    prof = np.full(200, 100, np.int32)
    prof[50:56] = 90  # a notch 6 columns wide
    prof[120:200] = 95  # a broad step
    out = _fill_notches(prof, np.arange(200) < 190, 21)
    assert (out[50:56] == 100).all() and (out[130:190] == 95).all() and out[195] == 95
