"""Lane-paint evidence against hand-computed answers: top-hats on synthetic stripes, colour channels, and the
camera pose read back from lines drawn with a known camera."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lanepipe.geometry.camera import PinholeCamera
from lanepipe.lanes.paint import band_tophat, paint_channels, paint_evidence, pose_from_paint, tophat


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_tophat_keeps_a_thin_stripe_and_drops_a_wide_band(dtype: type) -> None:
    img = np.full((5, 60), 50, dtype)
    img[:, 10:13] = 150  # 3 px stripe
    img[:, 30:50] = 150  # 20 px band
    out = tophat(img, (7, 1))
    assert out.dtype == dtype and out.shape == img.shape
    assert np.all(out[:, 10:13] == 100)
    assert np.all(out[:, :10] == 0) and np.all(out[:, 13:] == 0)  # the wide band is not paint


def test_band_tophat_kernel_follows_the_ground_width() -> None:
    img = np.full((3, 80), 40, np.uint8)
    img[:, 20:26] = 140  # 6 px wide
    # row 0: 2 px per metre * 0.6 m -> kernel 3 (< stripe, 0 response); row 1: 20 px/m -> 13 px; row 2: none
    ppm = np.array([2.0, 20.0, 0.0], np.float32)
    out = band_tophat(img, ppm, 0.6)
    assert np.all(out[0] == 0)
    assert np.all(out[1, 20:26] == 100) and out[1].sum() == 6 * 100
    assert np.all(out[2] == 0)


def test_paint_channels_known_colours() -> None:
    rgb = np.array([[[255, 255, 255], [255, 255, 0], [0, 0, 0], [100, 100, 100]]], np.uint8)
    f = paint_channels(rgb, "float32")
    u = paint_channels(rgb)
    assert f.dtype == np.float32 and u.dtype == np.uint8 and u.shape == (1, 4, 2)
    assert np.allclose(f[0, :, 0], [255.0, 0.299 * 255 + 0.587 * 255, 0.0, 100.0], atol=1e-3)
    assert np.allclose(f[0, :, 1], [0.0, 255.0, 0.0, 0.0], atol=1e-4)
    # uint8 yellowness is 0.45 x the float one + 128, saturated
    assert list(u[0, :, 1]) == [128, 243, 128, 128]
    assert np.all(np.abs(u[0, :, 0].astype(np.float32) - f[0, :, 0]) <= 0.5 + 1e-3)


def test_paint_evidence_sees_yellow_and_white() -> None:
    img = np.full((4, 60, 3), 90, np.uint8)
    img[:, 10:13] = (235, 235, 235)
    img[:, 40:43] = (230, 190, 40)
    ev = paint_evidence(paint_channels(img), np.full(4, 10.0, np.float32), 0.6)  # 7 px kernel
    mask = ev.mask(30, 10)
    assert mask[:, 10:13].all() and mask[:, 40:43].all()
    assert mask.sum() == 4 * 6
    assert ev.yellow[:, 40:43].min() > 20 and ev.yellow[:, 10:13].max() == 0


def test_pose_from_paint_recovers_a_known_camera() -> None:
    w, h = 640, 360
    truth = PinholeCamera.from_fov(w, h, 60.0, mount_height_m=1.5, pitch_deg=4.0, yaw_deg=-2.0)
    frames = []  # lines 1.8 and 5.4 m either side; the estimate is good to about a degree at 640 px
    for phase in (0.0, 1.0, 2.0):
        img = np.full((h, w, 3), 80, np.uint8)
        for y in (-5.4, -1.8, 1.8, 5.4):
            xs = np.linspace(4.0 + phase, 120.0, 200)
            pix, ok = truth.project(np.stack([xs, np.full_like(xs, y), np.zeros_like(xs)], axis=1))
            pts = pix[ok].round().astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], False, (230, 230, 230), 3)
        frames.append(paint_channels(img))
    prior = PinholeCamera.from_fov(w, h, 60.0, mount_height_m=1.5, pitch_deg=0.0)
    found = pose_from_paint(prior, frames, 18.0, 6.0, min_points=2)
    assert found.source == "vanishing point" and found.frames == 3
    assert found.pitch_rad is not None and found.yaw_rad is not None
    assert found.pitch_rad == pytest.approx(math.radians(4.0), abs=math.radians(1.0))
    assert found.yaw_rad == pytest.approx(math.radians(-2.0), abs=math.radians(1.0))
    blank = [paint_channels(np.full((h, w, 3), 80, np.uint8))]
    assert pose_from_paint(prior, blank, 18.0, 6.0).source == "pitch prior (no vanishing point)"
