"""Lane boundary fits in a bird's-eye view against known curves."""

from __future__ import annotations

import numpy as np

from lanepipe.geometry.road import BevGrid, poly_eval
from lanepipe.lanes.polyline import column_peaks, fit_boundary, track_line


def test_fit_boundary_recovers_an_exact_cubic() -> None:
    c = np.array([1.7, 0.02, 0.002, -1e-5])
    xs = np.linspace(5.0, 60.0, 30)
    got = fit_boundary(xs, poly_eval(c, xs), np.ones_like(xs), 3, (0.0, 0.0, 0.0, 0.0))
    assert np.allclose(got, c, rtol=1e-6, atol=1e-9)
    line = fit_boundary(xs, 2.0 - 0.01 * xs, np.ones_like(xs), 1, (0.0, 0.0))
    assert np.allclose(line, [2.0, -0.01, 0.0, 0.0], atol=1e-9)


def test_track_line_follows_a_painted_straight_line() -> None:
    grid = BevGrid(x_min=4.0, x_max=40.0, dx=0.2, y_min=-6.0, y_max=6.0, dy=0.05)
    ev = np.zeros(grid.shape, np.float32)
    y_true = 1.8 + 0.01 * grid.xs  # a line drifting left ahead
    cols = np.round((grid.y_max - y_true) / grid.dy).astype(int)
    ev[np.arange(grid.shape[0]), cols] = 1.0
    peaks = column_peaks(ev, grid, 20, 0.5, 4.0)
    assert abs(peaks[0][0] - (1.8 + 0.01 * 6.0)) < 0.1
    fit = track_line(ev, grid, peaks[0][0], 0.45, 9, min_weight=0.5)
    assert fit is not None and fit.points >= 5
    assert np.allclose(poly_eval(fit.coefs, np.array([10.0, 30.0])), [1.9, 2.1], atol=0.05)


def test_a_dashed_line_on_a_curve_is_tracked_along_the_other_boundary() -> None:
    """A dashed right boundary (3 m dashes, 5 m gaps) on a 125 m left curve: searching along its own last heading
    across the gaps, the windows fall behind the curve (the far dashes are missed or cut); guided by the solid left
    boundary's course they follow the dashes."""
    grid = BevGrid(x_min=4.0, x_max=40.0, dx=0.2, y_min=-6.0, y_max=6.0, dy=0.05)
    curve = 0.004  # y = c x^2: radius 1 / (2 c) = 125 m

    def right(x: np.ndarray) -> np.ndarray:
        return -1.8 + curve * x**2

    ev = np.zeros(grid.shape, np.float32)
    on = ((grid.xs - 4.0) % 8.0) < 3.0
    rows = np.flatnonzero(on)
    ev[rows, np.round((grid.y_max - right(grid.xs[rows])) / grid.dy).astype(int)] = 1.0
    start = float(right(np.array([5.0]))[0])
    alone = track_line(ev, grid, start, 0.45, 9, min_weight=0.5)
    assert alone is None or abs(float(poly_eval(alone.coefs, 30.0)) - float(right(np.array([30.0]))[0])) > 0.15
    left = np.array([1.8, 0.0, curve, 0.0])  # the solid boundary, 3.6 m to the left, as tracked
    fit = track_line(ev, grid, start, 0.45, 9, min_weight=0.5, guide=left)
    assert fit is not None and fit.points >= 5
    xs = np.array([10.0, 20.0, 30.0])
    assert np.abs(poly_eval(fit.coefs, xs) - right(xs)).max() < 0.05
