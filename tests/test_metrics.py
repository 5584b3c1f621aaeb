from __future__ import annotations

import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.metrics import farneback_flow, psnr, warping_error


def test_psnr_known_values() -> None:
    a = np.zeros((4, 8, 8, 3), np.uint8)
    b = a.copy()
    assert psnr(a, b) == float("inf")
    b[..., :] = 10  # mse 100 → 10*log10(255²/100)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    mask = np.zeros((4, 8, 8), bool)
    b2 = a.copy()
    b2[:, :4] = 50
    mask[:, 4:] = True
    assert psnr(a, b2, mask) == float("inf")
    assert np.isnan(psnr(a, b2, np.zeros_like(mask)))
    with pytest.raises(InputError):
        psnr(a, b[:2])


@pytest.mark.parametrize("shape", [(5, 30, 40, 3), (30, 40, 3), (30, 40), (4, 30, 40)])
def test_psnr_is_the_float_definition_over_the_masked_values(shape: tuple[int, ...]) -> None:
    """The integer frame-by-frame sums give the textbook float64 mean of squared differences over exactly the values
    the mask selects (every channel of a selected pixel), for clips, images and grey frames, masks of any depth."""
    rng = np.random.default_rng(len(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = rng.integers(0, 256, shape, dtype=np.uint8)
    for depth in (None, 2, min(3, len(shape))):
        mask = None if depth is None else rng.random(shape[:depth]) > 0.5
        sq = (a.astype(np.float64) - b.astype(np.float64)) ** 2
        sel = sq if mask is None else sq[np.broadcast_to(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)),
                                                         a.shape)]
        assert psnr(a, b, mask) == pytest.approx(10 * np.log10(255**2 / sel.mean()), rel=1e-12)


def test_warping_error_zero_for_pure_translation_and_higher_for_flicker() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random((72, 96)) * 255).astype(np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (0, 0), 3)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    frames = np.stack([np.repeat(np.roll(base, 2 * t, axis=1)[..., None], 3, -1) for t in range(4)])
    flows = [farneback_flow(frames[t], frames[t + 1]) for t in range(3)]
    inner = np.zeros((4, 72, 96), bool)
    inner[:, 10:-10, 10:-10] = True
    steady = warping_error(frames, flows, inner)
    flicker = frames.copy()
    flicker[1::2] = np.clip(flicker[1::2].astype(int) + 40, 0, 255).astype(np.uint8)
    assert steady < 3.0
    assert warping_error(flicker, flows, inner) > steady + 20
    with pytest.raises(InputError):
        warping_error(frames, flows[:1])


def test_ssim_known_answers_and_masking() -> None:
    from lanepipe.metrics import image_metrics, ssim

    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    b = a.copy()
    b[:, :, 32:] = 255 - b[:, :, 32:]  # invert the right half
    left = np.zeros((2, 48, 64), bool)
    left[:, :, :24] = True  # away from the window's reach into the changed half
    assert ssim(a, b, left) == pytest.approx(1.0, abs=1e-6)
    assert ssim(a, b, ~left) < 0.5
    m = image_metrics(a, b, ~left)
    assert m["psnr_out_mask"] > 60 and m["ssim_out_mask"] > 0.99 and m["ssim_in_mask"] < 0.5
    noisy = np.clip(a.astype(int) + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(a, noisy) < ssim(a, np.clip(a.astype(int) + 2, 0, 255).astype(np.uint8)) <= 1.0


def test_per_frame_work_on_threads_gives_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows, SSIM and warping errors computed frame by frame on several threads equal the one-thread values, in
    frame order."""
    from lanepipe import metrics

    rng = np.random.default_rng(3)
    base = (rng.random((6, 48, 64, 3)) * 255).astype(np.uint8)
    clip = np.stack([np.roll(base[0], k, axis=1) for k in range(6)])
    edited = np.clip(clip.astype(np.int16) + rng.integers(-20, 21, clip.shape), 0, 255).astype(np.uint8)
    mask = rng.random(clip.shape[:3]) > 0.3
    got = {}
    for threads in (1, 3):
        monkeypatch.setattr(metrics, "FRAME_THREADS", threads)
        assert metrics.map_frames(lambda i: i * i, 7) == [0, 1, 4, 9, 16, 25, 36]
        flows = metrics.original_flows(clip)
        got[threads] = (flows, metrics.edit_metrics(clip, edited, mask, flows))
    assert all(np.array_equal(a, b) for a, b in zip(got[1][0], got[3][0], strict=True))
    assert got[1][1] == got[3][1] and got[1][1]["warping_error_edited"] > got[1][1]["warping_error_original"]
