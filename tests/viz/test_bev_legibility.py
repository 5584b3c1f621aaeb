"""The BEV plot of the report: where the ground truth and both predictions coincide, each stays visible."""

from __future__ import annotations

import numpy as np

from lanepipe.viz.bev import GT_COLOR, PREDICTION_COLORS, bev_inset


def _pixels(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).max(axis=-1) <= tol).sum())


def test_coinciding_curves_all_show() -> None:
    x = np.arange(1, 65) * 0.8
    track = np.stack([x, 0.002 * x**2, np.zeros(64)], axis=1)
    img = bev_inset(None, track, {"original": track[None], "edited": track[None]}, size=400)
    plot = img.copy()
    plot[:120, 200:] = 0  # leave out the legend
    counts = {name: _pixels(plot, rgb) for name, rgb in
              (("ground truth", GT_COLOR), ("original", PREDICTION_COLORS[0]), ("edited", PREDICTION_COLORS[1]))}
    assert all(n >= 150 for n in counts.values()), counts


def test_plot_is_large_enough_to_read() -> None:
    x = np.arange(1, 65) * 0.8
    track = np.stack([x, np.zeros(64), np.zeros(64)], axis=1)
    assert bev_inset(None, track, {"original": track[None]}).shape == (400, 400, 3)
