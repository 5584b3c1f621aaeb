"""Bird's-eye-view (BEV) inset: ego history, ground truth and predicted trajectories seen from above.

All inputs are in the ego frame at t0 (x forward, y left, z up, metres; z is ignored here). In the inset the
ego sits at the bottom centre (``EGO_ROW_FRACTION`` of the height down), x forward points up and y left
points left, with the same scale on both axes. Images are ``(S, S, 3) uint8`` RGB.

Colours are RGB tuples. :func:`bev_inset` is the pure entry point; :class:`BevCanvas` draws the static
layers (grid, legend, history, ground truth) once and the predictions per call, for videos.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
RGB = tuple[int, int, int]

#: Default colours (RGB).
HISTORY_COLOR: RGB = (170, 170, 170)
GT_COLOR: RGB = (235, 45, 45)
#: Prediction colours in order: the first label (the original) is cyan, the second (edited) orange.
PREDICTION_COLORS: tuple[RGB, ...] = ((0, 230, 255), (255, 150, 0), (120, 255, 90), (255, 90, 220),
                                      (255, 255, 110))
BACKGROUND: RGB = (24, 26, 30)
GRID_COLOR: RGB = (62, 66, 74)
GRID_TEXT_COLOR: RGB = (140, 144, 152)
#: Row of the ego position as a fraction of the inset height (0 = top); the rest shows the history.
EGO_ROW_FRACTION = 0.82
#: Candidate forward ranges (metres from the ego to the top edge) for the automatic range.
_NICE_RANGES = (10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0, 120.0, 160.0, 200.0, 300.0)
DT_S = 0.1  # waypoint spacing (10 Hz), DESIGN.md §5


def default_colors(labels: Sequence[str]) -> dict[str, RGB]:
    """``{label: RGB}`` from :data:`PREDICTION_COLORS`, in order (cycled past five labels)."""
    return {lab: PREDICTION_COLORS[i % len(PREDICTION_COLORS)] for i, lab in enumerate(labels)}


def _as_track(arr: Any, name: str, rows: int | None = None) -> F64:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2 or (rows is not None and a.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}, 3) float ego metres"
        raise InputError(name, want, f"shape {a.shape}")
    return a


def as_samples(arr: Any, name: str) -> F64:
    """Check and return predicted trajectories as ``(K, N, 3) float64`` (a ``(N, 3)`` array becomes K = 1)."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(name, "trajectories (K, 64, 3) float ego metres", f"shape {a.shape}")
    return a


def auto_range_m(*tracks: F64 | None) -> float:
    """A round forward range (metres) that holds the farthest forward or sideways extent of ``tracks``."""
    extent = 5.0
    for t in tracks:
        if t is None or t.size == 0:
            continue
        xy = t.reshape(-1, t.shape[-1])[:, :2]
        xy = xy[np.isfinite(xy).all(axis=1)]
        if xy.size:
            # the inset is square: lateral half-width = range / (2 * EGO_ROW_FRACTION)
            extent = max(extent, float(xy[:, 0].max()), float(np.abs(xy[:, 1]).max()) * 2 * EGO_ROW_FRACTION)
    for r in _NICE_RANGES:
        if extent * 1.08 <= r:
            return r
    return float(math.ceil(extent * 1.08 / 100.0) * 100.0)


def ego_to_bev_px(points: Any, size: int, range_m: float) -> F64:
    """Ego-frame points ``(N, >=2)`` (metres) to inset pixels ``(N, 2)`` ``(u, v)``.

    The ego is at ``u = (size - 1) / 2``, ``v = EGO_ROW_FRACTION * (size - 1)``; x forward goes up (-v) and
    y left goes left (-u); ``range_m`` is the distance from the ego to the top edge.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-1])
    scale = EGO_ROW_FRACTION * (size - 1) / range_m
    u = (size - 1) / 2.0 - p[:, 1] * scale
    v = EGO_ROW_FRACTION * (size - 1) - p[:, 0] * scale
    return np.stack([u, v], axis=1)


def _grid_step(range_m: float) -> float:
    for step in (2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0):
        if range_m / step <= 8:
            return step
    return 200.0


def _polyline(img: U8, px: F64, color: RGB, thickness: int) -> None:
    px = px[np.isfinite(px).all(axis=1)]
    if len(px) < 2:
        return
    pts = np.clip(np.round(px * 16), -(2**24), 2**24).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [pts], isClosed=False, color=color, thickness=thickness, lineType=cv2.LINE_AA, shift=4)


def truncate_track(track: F64, horizon_s: float | None, dt: float = DT_S) -> F64:
    """The part of a waypoint track ``(N, 3)`` (waypoint i at ``(i + 1) * dt`` s) up to ``horizon_s``.

    The path starts at the ego origin; the last point is interpolated so the track grows smoothly.
    ``None`` keeps the whole track (with the origin prepended).
    """
    full = np.concatenate([np.zeros((1, track.shape[1])), track], axis=0)
    if horizon_s is None:
        return full
    n_steps = track.shape[0]
    f = float(np.clip(horizon_s / dt, 0.0, n_steps))
    i = math.floor(f)
    if i >= n_steps:
        return full
    frac = f - i
    pts = full[: i + 1]
    if frac > 1e-9:
        pts = np.concatenate([pts, full[i][None] + frac * (full[i + 1] - full[i])[None]], axis=0)
    return pts


class BevCanvas:
    """A BEV inset whose static layers are drawn once; :meth:`draw` adds predictions.

    Args:
        history: ``(16, 3)`` ego history (ego metres, t0 frame) or None.
        gt: ``(64, 3)`` ground-truth future or None.
        labels: prediction labels in legend order.
        colors: ``{label: RGB}``; missing labels get :func:`default_colors`.
        size: inset side S in pixels (>= 64).
        range_m: metres from the ego to the top edge; None picks a round value from ``extent_tracks``.
        extent_tracks: arrays used for the automatic range (predictions, typically).
    """

    def __init__(self, history: Any | None, gt: Any | None, labels: Sequence[str],
                 colors: Mapping[str, RGB] | None = None, size: int = 250, range_m: float | None = None,
                 extent_tracks: Sequence[F64] = ()) -> None:
        if size < 64:
            raise InputError("bev_inset", "size >= 64 pixels", str(size))
        self.size = int(size)
        self.history = None if history is None else _as_track(history, "history")
        self.gt = None if gt is None else _as_track(gt, "ground truth")
        self.labels = list(labels)
        self.colors = default_colors(self.labels) | dict(colors or {})
        if range_m is None:
            range_m = auto_range_m(self.gt, *extent_tracks)
        if not range_m > 0:
            raise InputError("bev_inset", "range_m > 0 metres", str(range_m))
        self.range_m = float(range_m)
        self.line_px = max(1, round(self.size / 125))
        self.background = self._static()
        self.legend, self.legend_y, self.legend_x = self._legend()

    def to_px(self, points: Any) -> F64:
        return ego_to_bev_px(points, self.size, self.range_m)

    def _static(self) -> U8:
        s = self.size
        img = np.empty((s, s, 3), np.uint8)
        img[:] = BACKGROUND
        step = _grid_step(self.range_m)
        scale = EGO_ROW_FRACTION * (s - 1) / self.range_m
        font, fs = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, s / 700)
        ego_u, ego_v = (s - 1) / 2.0, EGO_ROW_FRACTION * (s - 1)
        k_min, k_max = -math.floor(ego_v / scale / step) - 1, math.ceil(self.range_m / step)
        for k in range(k_min, k_max + 1):  # rows: constant x
            v = round(ego_v - k * step * scale)
            if 0 <= v < s:
                cv2.line(img, (0, v), (s - 1, v), GRID_COLOR, 1)
                if k > 0 and v > 12:
                    cv2.putText(img, f"{k * step:g} m", (3, v - 3), font, fs, GRID_TEXT_COLOR, 1, cv2.LINE_AA)
        half = math.ceil(ego_u / scale / step) + 1
        for k in range(-half, half + 1):  # columns: constant y
            u = round(ego_u - k * step * scale)
            if 0 <= u < s:
                cv2.line(img, (u, 0), (u, s - 1), GRID_COLOR, 1)
        if self.history is not None:
            hist = self.to_px(self.history)
            _polyline(img, hist, HISTORY_COLOR, self.line_px)
            for p in hist[np.isfinite(hist).all(axis=1)]:
                cv2.circle(img, (round(p[0] * 16), round(p[1] * 16)), self.line_px, HISTORY_COLOR, -1,
                           cv2.LINE_AA, shift=4)
        cv2.rectangle(img, (0, 0), (s - 1, s - 1), (200, 200, 200), 1)
        return img

    def _ego_marker(self, img: U8) -> None:
        s = self.size
        ego_u, ego_v = (s - 1) / 2.0, EGO_ROW_FRACTION * (s - 1)
        r = max(3, s // 60)
        tri = np.array([[ego_u, ego_v - 1.6 * r], [ego_u - r, ego_v + r], [ego_u + r, ego_v + r]])
        cv2.fillPoly(img, [np.round(tri * 16).astype(np.int32)], (255, 255, 255), cv2.LINE_AA, shift=4)

    def _legend(self) -> tuple[U8, int, int]:
        """The legend as a patch on an opaque box, and its top-left corner in the inset."""
        entries: list[tuple[str, RGB]] = []
        if self.history is not None:
            entries.append(("history", HISTORY_COLOR))
        if self.gt is not None:
            entries.append(("ground truth", GT_COLOR))
        entries += [(lab, self.colors[lab]) for lab in self.labels]
        font, fs = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, self.size / 650)
        line_h = max(10, round(self.size / 17))
        (tw, _), _ = cv2.getTextSize("M", font, fs, 1)
        text_w = max((cv2.getTextSize(t, font, fs, 1)[0][0] for t, _ in entries), default=0)
        pw = min(self.size - 2, text_w + 3 * tw)
        ph = min(self.size - 2, len(entries) * line_h + line_h // 2)
        patch = np.empty((ph, pw, 3), np.uint8)
        patch[:] = BACKGROUND
        for i, (text, color) in enumerate(entries):
            y = (i + 1) * line_h
            cv2.line(patch, (tw // 2, y - line_h // 3), (tw * 2, y - line_h // 3), color, 2, cv2.LINE_AA)
            cv2.putText(patch, text, (tw * 2 + tw // 2, y), font, fs, (230, 230, 230), 1, cv2.LINE_AA)
        cv2.rectangle(patch, (0, 0), (pw - 1, ph - 1), GRID_COLOR, 1)
        return patch, 1, self.size - 1 - pw

    def draw(self, predictions: Mapping[str, Any], horizon_s: float | None = None) -> U8:
        """The inset with ``predictions`` (``{label: (K, N, 3)}``) and the ground truth up to ``horizon_s``
        seconds after t0 (None = all)."""
        img = self.background.copy()
        for label, arr in predictions.items():
            color = self.colors.get(label) or default_colors([label])[label]
            for track in as_samples(arr, f"prediction {label!r}"):
                _polyline(img, self.to_px(truncate_track(track, horizon_s)), color, self.line_px + 1)
        if self.gt is not None:  # on top of the predictions, thinner, so both stay visible where they agree
            _polyline(img, self.to_px(truncate_track(self.gt, horizon_s)), GT_COLOR, self.line_px)
        self._ego_marker(img)
        lh, lw = self.legend.shape[:2]
        img[self.legend_y: self.legend_y + lh, self.legend_x: self.legend_x + lw] = self.legend
        return img


def bev_inset(history: Any | None, gt: Any | None, predictions: Mapping[str, Any], size: int = 250,
              range_m: float | None = None, colors: Mapping[str, RGB] | None = None,
              horizon_s: float | None = None) -> U8:
    """Top-down plot of the ego's past and future paths.

    Args:
        history: ``(16, 3) float`` ego history in the t0 ego frame (metres), oldest first, or None.
        gt: ``(64, 3) float`` ground-truth future waypoints (t0 ego frame, 10 Hz), or None.
        predictions: ``{label: (K, 64, 3) float}`` predicted waypoints (t0 ego frame, 10 Hz). Colours default
            to cyan for the first label (the original) and orange for the second (the edited clip).
        size: side S of the square inset in pixels (>= 64).
        range_m: metres from the ego (bottom centre) to the top edge; None = a round value that fits the
            ground truth and the predictions.
        colors: ``{label: (r, g, b)}`` overrides for prediction colours.
        horizon_s: draw predictions and ground truth only up to this many seconds after t0 (None = all 6.4 s).

    Returns:
        ``(S, S, 3) uint8`` RGB image: dark background, a metre grid (labels on the left), history grey,
        ground truth red, predictions in their colours, a legend in the top-right corner, the ego as a
        white triangle.

    Raises:
        InputError: arrays of the wrong shape, ``size < 64`` or ``range_m <= 0``.
    """
    preds = {lab: as_samples(arr, f"prediction {lab!r}") for lab, arr in predictions.items()}
    canvas = BevCanvas(history, gt, list(preds), colors, size, range_m, extent_tracks=list(preds.values()))
    return canvas.draw(preds, horizon_s)
