"""Bird's-eye-view (BEV) inset: ego history, ground truth and predicted trajectories seen from above.

All inputs are in the ego frame at t0 (x forward, y left, z up, metres; z is ignored here). In the inset the
ego sits at the bottom centre (``EGO_ROW_FRACTION`` of the height down), x forward points up and y left
points left, with the same scale on both axes. Images are ``(S, S, 3) uint8`` RGB.

Colours are RGB tuples. :func:`bev_inset` is the pure entry point (the report's plot: with axis labels);
:class:`BevCanvas` draws the static layers (grid, legend, history) once and the tracks per call, for videos.

No curve hides another where they coincide: the ground truth is drawn first and widest, the first prediction
(the original clip's) above it as a narrower solid line with round markers at whole seconds, the second (the
edited clip's) on top, thinnest and dashed, with square markers at half seconds; so each keeps a visible rim,
gap or marker. Further predictions are thin solid lines with round markers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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


def _dashed(img: U8, px: F64, color: RGB, thickness: int, dash: float, gap: float) -> None:
    """A dashed polyline: ``dash`` pixels drawn, ``gap`` pixels left out, along the path."""
    px = px[np.isfinite(px).all(axis=1)]
    if len(px) < 2:
        return
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(px, axis=0).T))])
    if arc[-1] <= 0:
        return
    s = np.unique(np.concatenate([np.arange(0.0, arc[-1], 1.0), [arc[-1]]]))
    dense = np.stack([np.interp(s, arc, px[:, 0]), np.interp(s, arc, px[:, 1])], axis=1)
    on = np.mod(s, dash + gap) < dash
    # runs of "on" samples: [start, end) index pairs, each drawn as one piece (one OpenCV call for all of them)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    pieces = [dense[a: max(b, a + 2)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    pts = [np.clip(np.round(q * 16), -(2**24), 2**24).astype(np.int32).reshape(-1, 1, 2) for q in pieces if len(q) >= 2]
    if pts:
        cv2.polylines(img, pts, isClosed=False, color=color, thickness=thickness, lineType=cv2.LINE_AA, shift=4)


#: Marker shapes; "" draws none (legend entries of plain lines).
Marker = Literal["circle", "square", ""]


def _marker(img: U8, p: F64, shape: Marker, color: RGB, r: int) -> None:
    """A filled marker with a thin dark outline (so it stands out on a line of its own colour)."""
    if not np.isfinite(p).all():
        return
    c = (round(float(p[0]) * 16), round(float(p[1]) * 16))
    if shape == "square":
        a, b = (c[0] - r * 16, c[1] - r * 16), (c[0] + r * 16, c[1] + r * 16)
        cv2.rectangle(img, a, b, BACKGROUND, -1, cv2.LINE_AA, shift=4)
        a, b = (a[0] + 16, a[1] + 16), (b[0] - 16, b[1] - 16)
        cv2.rectangle(img, a, b, color, -1, cv2.LINE_AA, shift=4)
    else:
        cv2.circle(img, c, r * 16, BACKGROUND, -1, cv2.LINE_AA, shift=4)
        cv2.circle(img, c, max(1, r - 1) * 16, color, -1, cv2.LINE_AA, shift=4)


@dataclass(frozen=True)
class TrackStyle:
    """How one prediction is drawn: line ``thickness`` (px), ``dashed`` or solid, a ``marker`` every second
    starting ``marker_offset_s`` after t0."""

    thickness: int
    dashed: bool
    marker: Marker
    marker_offset_s: float


def track_styles(n: int, line_px: int) -> list[TrackStyle]:
    """Styles of ``n`` predictions in legend order (see the module notes)."""
    out: list[TrackStyle] = []
    for i in range(n):
        if i == 0:
            out.append(TrackStyle(2 * line_px + 1, False, "circle", 1.0))
        elif i == 1:
            out.append(TrackStyle(line_px, True, "square", 0.5))
        else:
            out.append(TrackStyle(line_px, False, "circle", 1.0))
    return out


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
    """A BEV inset whose static layers are drawn once; :meth:`draw` adds the ground truth and predictions.

    Args:
        history: ``(16, 3)`` ego history (ego metres, t0 frame) or None.
        gt: ``(64, 3)`` ground-truth future or None.
        labels: prediction labels in legend order (the first is drawn lowest; see the module notes).
        colors: ``{label: RGB}``; missing labels get :func:`default_colors`.
        size: inset side S in pixels (>= 64).
        range_m: metres from the ego to the top edge; None picks a round value from ``extent_tracks``.
        extent_tracks: arrays used for the automatic range (predictions, typically).
        axes: also label the lateral grid lines and both axes (``x forward (m)``, ``y left (m)``).
    """

    def __init__(self, history: Any | None, gt: Any | None, labels: Sequence[str],
                 colors: Mapping[str, RGB] | None = None, size: int = 250, range_m: float | None = None,
                 extent_tracks: Sequence[F64] = (), axes: bool = False) -> None:
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
        self.axes = axes
        self.line_px = max(1, round(self.size / 125))
        self.gt_px = 3 * self.line_px + 2
        self.marker_px = self.line_px + 2
        self.styles = dict(zip(self.labels, track_styles(len(self.labels), self.line_px), strict=True))
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
        (_, th), _ = cv2.getTextSize("0", font, fs, 1)
        for k in range(-half, half + 1):  # columns: constant y
            u = round(ego_u - k * step * scale)
            if 0 <= u < s:
                cv2.line(img, (u, 0), (u, s - 1), GRID_COLOR, 1)
                if self.axes and k != 0 and k % 2 == 0:
                    text = f"{k * step:g}"
                    (tw, _), _ = cv2.getTextSize(text, font, fs, 1)
                    if u - tw // 2 >= 2 and u + tw // 2 < s - 2:
                        cv2.putText(img, text, (u - tw // 2, s - 4), font, fs, GRID_TEXT_COLOR, 1, cv2.LINE_AA)
        if self.axes:
            title = (200, 204, 212)
            cv2.putText(img, "x forward (m)", (3, th + 5), font, fs, title, 1, cv2.LINE_AA)
            cv2.putText(img, "y left (m)", (3, s - th - 10), font, fs, title, 1, cv2.LINE_AA)
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

    def _track(self, img: U8, px: F64, color: RGB, style: TrackStyle, marks: F64) -> None:
        if style.dashed:
            _dashed(img, px, color, style.thickness, dash=4.0 * self.marker_px, gap=2.5 * self.marker_px)
        else:
            _polyline(img, px, color, style.thickness)
        for p in marks:
            _marker(img, p, style.marker, color, self.marker_px)

    def _legend(self) -> tuple[U8, int, int]:
        """The legend (each entry drawn in its curve's style) on an opaque box, and its top-left corner."""
        font, fs = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, self.size / 650)
        line_h = max(10, round(self.size / 17), 2 * self.marker_px + 4)
        (tw, _), _ = cv2.getTextSize("M", font, fs, 1)
        sample_w = max(tw * 2, 6 * self.marker_px)
        entries: list[tuple[str, RGB, TrackStyle | None]] = []
        if self.history is not None:
            entries.append(("history", HISTORY_COLOR, TrackStyle(self.line_px, False, "", 0.0)))
        if self.gt is not None:
            entries.append(("ground truth", GT_COLOR, TrackStyle(self.gt_px, False, "", 0.0)))
        entries += [(lab, self.colors[lab], self.styles[lab]) for lab in self.labels]
        text_w = max((cv2.getTextSize(t, font, fs, 1)[0][0] for t, _, _ in entries), default=0)
        text_x = round(tw + sample_w + self.gt_px / 2)
        pw = min(self.size - 2, text_w + text_x + tw)
        ph = min(self.size - 2, len(entries) * line_h + line_h // 2)
        patch = np.empty((ph, pw, 3), np.uint8)
        patch[:] = BACKGROUND
        for i, (text, color, style) in enumerate(entries):
            y = (i + 1) * line_h
            ym = float(y - line_h // 3)
            seg = np.array([[tw / 2, ym], [tw / 2 + sample_w, ym]])
            if style is not None and style.marker:
                self._track(patch, seg, color, style, np.array([[tw / 2 + sample_w / 2, ym]]))
            elif style is not None:
                _polyline(patch, seg, color, style.thickness)
            cv2.putText(patch, text, (text_x, y), font, fs, (230, 230, 230), 1, cv2.LINE_AA)
        cv2.rectangle(patch, (0, 0), (pw - 1, ph - 1), GRID_COLOR, 1)
        return patch, 1, self.size - 1 - pw

    def _marks(self, track: F64, style: TrackStyle, horizon_s: float | None, dt: float = DT_S) -> F64:
        """Marker positions (px) every second from ``style.marker_offset_s`` up to the horizon."""
        end = track.shape[0] * dt if horizon_s is None else min(horizon_s, track.shape[0] * dt)
        times = np.arange(style.marker_offset_s, end + 1e-9, 1.0)
        idx = np.round(times / dt).astype(int) - 1
        idx = idx[(idx >= 0) & (idx < track.shape[0])]
        return self.to_px(track[idx]) if idx.size else np.zeros((0, 2))

    def draw(self, predictions: Mapping[str, Any], horizon_s: float | None = None) -> U8:
        """The inset with the ground truth and ``predictions`` (``{label: (K, N, 3)}``) up to ``horizon_s``
        seconds after t0 (None = all); ground truth lowest and widest, the first prediction next, later ones
        on top and thinner (module notes)."""
        img = self.background.copy()
        if self.gt is not None:
            _polyline(img, self.to_px(truncate_track(self.gt, horizon_s)), GT_COLOR, self.gt_px)
        order = [lab for lab in self.labels if lab in predictions]
        order += [lab for lab in predictions if lab not in self.styles]
        extra = track_styles(len(order), self.line_px)
        for k, label in enumerate(order):
            color = self.colors.get(label) or default_colors([label])[label]
            style = self.styles.get(label) or extra[k]
            for track in as_samples(predictions[label], f"prediction {label!r}"):
                self._track(img, self.to_px(truncate_track(track, horizon_s)), color, style,
                            self._marks(track, style, horizon_s))
        self._ego_marker(img)
        lh, lw = self.legend.shape[:2]
        img[self.legend_y: self.legend_y + lh, self.legend_x: self.legend_x + lw] = self.legend
        return img


#: Side of :func:`bev_inset`'s plot (pixels): big enough to read in the report.
PLOT_SIZE = 400


def bev_inset(history: Any | None, gt: Any | None, predictions: Mapping[str, Any], size: int = PLOT_SIZE,
              range_m: float | None = None, colors: Mapping[str, RGB] | None = None,
              horizon_s: float | None = None) -> U8:
    """Top-down plot of the ego's past and future paths, with axis labels in metres.

    Args:
        history: ``(16, 3) float`` ego history in the t0 ego frame (metres), oldest first, or None.
        gt: ``(64, 3) float`` ground-truth future waypoints (t0 ego frame, 10 Hz), or None.
        predictions: ``{label: (K, 64, 3) float}`` predicted waypoints (t0 ego frame, 10 Hz). Colours default
            to cyan for the first label (the original) and orange for the second (the edited clip).
        size: side S of the square plot in pixels (>= 64).
        range_m: metres from the ego (bottom centre) to the top edge; None = a round value that fits the
            ground truth and the predictions.
        colors: ``{label: (r, g, b)}`` overrides for prediction colours.
        horizon_s: draw predictions and ground truth only up to this many seconds after t0 (None = all 6.4 s).

    Returns:
        ``(S, S, 3) uint8`` RGB image: dark background, a metre grid (forward distances on the left, lateral
        offsets at the bottom, axis titles), history grey, ground truth red and widest at the bottom, the
        first prediction solid with round markers each second, the second dashed with square markers at the
        half seconds on top (no curve hides another), a legend in the top-right corner, the ego as a white
        triangle.

    Raises:
        InputError: arrays of the wrong shape, ``size < 64`` or ``range_m <= 0``.
    """
    preds = {lab: as_samples(arr, f"prediction {lab!r}") for lab, arr in predictions.items()}
    canvas = BevCanvas(history, gt, list(preds), colors, size, range_m, extent_tracks=list(preds.values()),
                       axes=True)
    return canvas.draw(preds, horizon_s)
