"""Paint appearance: the colour of new paint relative to the pavement under it, measured from the clip's paint.

Paint and pavement under the same light differ by their reflectance, so the ratio of their (gamma-encoded)
brightness is about the same in sun, in shadow, at night under street lights and on any paving: a white line on
light concrete is brighter than the concrete, a white line in shadow is darker than sunlit asphalt but brighter
than the shaded asphalt beside it. New paint therefore takes the pavement brightness (BT.601 luma) around it (the
push-pull fill under the old paint, :mod:`lanepipe.edit.erase`) times a per-channel gain, the paint's colour
over that luma (the pavement's own tint, e.g. yellowish concrete, is not passed on to white paint):

* **measured** from the clip's own markings where it has them: for each strong paint pixel of the near road
  (white: bright and not yellow; yellow: yellow), its colour over the filled pavement luma at that pixel, the
  upper quartile over pixels and frames (pixels whose pavement is darker than ``_GAIN_PAVE_MAX`` first: on lighter
  paving the camera saturates and the ratio says less about the paint);
* **standard** otherwise: white 2.3 times the pavement (fresh paint about 0.7 reflectance against 0.1 asphalt in
  linear light, ~ 2.3 gamma-encoded), yellow the white gain times a paint hue (Lab hue about 86 deg at the
  pavement's brightness, b* well above 0, HSV hue about 44 deg).

Limits keep the result paint-like whatever the clip shows: white gains near neutral and at least
``_MIN_WHITE_GAIN`` (worn, faint paint is not copied), yellow gains with a real paint hue; the colour is
lifted to at least a fifth of the way from the pavement to full white and compressed softly below 250
(a camera's highlight shoulder), so paint is never darker than the pavement around it.

Shapes: ``(N, 3) float32`` RGB 0-255 colour lists; frames ``(h, w, 3) uint8`` at work resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.edit.erase import push_pull_fill
from lanepipe.lanes.paint import PaintEvidence

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as lanepipe.lanes.paint
#: Standard white gain over the pavement (gamma-encoded): reflectance ~0.7 vs ~0.1 → 7 ** (1 / 2.2) ≈ 2.4.
_WHITE_GAIN = 2.3
#: Worn paint is not copied: a white line at least this many times the pavement (gamma-encoded luma).
_MIN_WHITE_GAIN = 1.6
_MAX_GAIN = 4.5
#: Standard yellow relative to white per channel (US highway yellow, e.g. FHWA yellow chromaticity box, reads
#: (230, 180, 50)-ish on a sunlit camera frame): R a bit above white's luma, G near it, B low.
_YELLOW_OF_WHITE = np.array([1.25, 1.0, 0.30], dtype=np.float32)
#: Pavement darker than this (luma) gives the gains first: paint about _WHITE_GAIN times brighter than it stays
#: below the camera's 255 (255 / 2.3 ≈ 110); on lighter paving the paint clips and its ratio reads low (a clip
#: driving onto concrete measured a white only 1.8 times the asphalt with 150, a grey line on asphalt)
_GAIN_PAVE_MAX = 110.0
#: Paint is lifted at least this fraction of the way from the pavement to white (visible, never darker).
_MIN_LIFT = 0.2
_KNEE, _CAP = 225.0, 250.0


def luma(rgb: F32) -> F32:
    """``(..., 3)`` RGB → ``(...)`` BT.601 luma (float32)."""
    out: F32 = np.asarray(rgb, dtype=np.float32) @ _LUMA
    return out


def srgb_to_lab(rgb: F32) -> F32:
    """``(N, 3)`` sRGB 0-255 → ``(N, 3)`` CIE L*a*b* (D65), float32 (OpenCV's float conversion)."""
    x = np.clip(np.asarray(rgb, dtype=np.float32) / 255.0, 0.0, 1.0).reshape(-1, 1, 3)
    out: F32 = np.asarray(cv2.cvtColor(x, cv2.COLOR_RGB2Lab), dtype=np.float32).reshape(-1, 3)
    return out


def lab_hue_deg(lab: F32) -> F32:
    """``(N, 3)`` Lab → ``(N,)`` hue angle ``atan2(b*, a*)`` in degrees [0, 360)."""
    out: F32 = np.mod(np.degrees(np.arctan2(lab[:, 2], lab[:, 1])), 360.0).astype(np.float32)
    return out


@dataclass(frozen=True)
class PaintLook:
    """How one paint colour looks in this clip, relative to the pavement under it.

    Attributes:
        gain: ``(3,) float32`` paint RGB over the pavement's luma (gamma-encoded values).
        source: ``"clip paint"`` or ``"standard"`` (see the module docstring).
        pixels: paint pixels the gain was measured on (0 for the standard).
    """

    gain: F32
    source: str
    pixels: int = 0

    def colour(self, pavement: F32) -> F32:
        """Paint colour over ``(N, 3)`` pavement colours (RGB 0-255) → ``(N, 3) float32`` RGB 0-255."""
        pave = np.asarray(pavement, dtype=np.float32).reshape(-1, 3)
        lp = luma(pave)
        col = lp[:, None] * self.gain[None, :]
        lc = np.maximum(luma(col), 1e-3)
        want = lp + _MIN_LIFT * (255.0 - lp)
        col = col * np.maximum(want / lc, 1.0)[:, None]
        # soft highlight shoulder: the brightest channel compressed above the knee to at most the cap; hue kept
        top = np.maximum(col.max(axis=1), 1e-3)
        soft = np.where(top > _KNEE, _KNEE + (_CAP - _KNEE) * np.tanh((top - _KNEE) / (_CAP - _KNEE)), top)
        out: F32 = np.clip(col * (soft / top)[:, None], 0.0, 255.0).astype(np.float32)
        return out

    def to_dict(self, pavement_rgb: F32) -> dict[str, Any]:
        """JSON-ready: gain, source, pixels and the colour on ``pavement_rgb`` ``(3,)`` (the clip's typical road)."""
        c = self.colour(pavement_rgb[None, :])
        lab = srgb_to_lab(c)
        return {"gain_rgb": _r(self.gain, 3), "source": self.source, "pixels": self.pixels,
                "rgb_on_typical_road": _r(c[0], 1), "lab_on_typical_road": _r(lab[0], 1),
                "hsv_hue_deg_on_typical_road": round(float(hsv_hue_deg(c)[0]), 1)}


def _r(a: F32, nd: int) -> list[float]:
    """``a`` as a JSON list of floats rounded to ``nd`` decimals."""
    return [round(float(v), nd) for v in np.asarray(a, dtype=np.float64).ravel()]


def _white_limits(gain: F32) -> F32:
    """Near-neutral white gains (±8 % around their mean) whose luma gain lies in [_MIN_WHITE_GAIN, _MAX_GAIN]."""
    g = np.asarray(gain, dtype=np.float32)
    m = float(g.mean())
    g = np.clip(g, 0.92 * m, 1.08 * m)
    lg = float(luma(g))
    out: F32 = (g * (np.clip(lg, _MIN_WHITE_GAIN, _MAX_GAIN) / max(lg, 1e-3))).astype(np.float32)
    return out


def hsv_hue_deg(rgb: F32) -> F32:
    """``(N, 3)`` RGB 0-255 → ``(N,)`` HSV hue in degrees [0, 360) (red 0, yellow 60)."""
    x = np.clip(np.asarray(rgb, dtype=np.float32) / 255.0, 0.0, 1.0).reshape(-1, 1, 3)
    out: F32 = np.asarray(cv2.cvtColor(x, cv2.COLOR_RGB2HSV), dtype=np.float32).reshape(-1, 3)[:, 0]
    return out


def is_paint_yellow(rgb: F32) -> bool:
    """True when ``(3,)`` RGB looks like yellow road paint: Lab b* ≥ 20 and HSV hue 35-65 deg (highway yellow
    reads about (230, 180, 50) on a sunlit frame: b* ≈ 67, HSV hue ≈ 44 deg)."""
    c = np.asarray(rgb, dtype=np.float32)[None, :]
    hue = float(hsv_hue_deg(c)[0])
    return bool(srgb_to_lab(c)[0, 2] >= 20.0 and 35.0 <= hue <= 65.0)


def measure_looks(frames_w: U8, masks_w: Bool, evidence: list[PaintEvidence], bright_thr: float,
                  yellow_thr: float, max_frames: int = 10) -> tuple[PaintLook, PaintLook, F32, dict[str, Any]]:
    """White and yellow :class:`PaintLook` of a clip and its typical road colour.

    Args:
        frames_w: ``(T, h, w, 3) uint8`` frames at work resolution; masks_w ``(T, h, w) bool`` road.
        evidence: per frame, the paint top-hats (:func:`lanepipe.lanes.paint.paint_evidence`).
        bright_thr, yellow_thr: paint thresholds (grey levels / yellowness above the local road).
        max_frames: frames sampled evenly.

    Returns:
        ``(white, yellow, road_rgb (3,) float32, diagnostics)``.
    """
    t_n, h = frames_w.shape[:2]
    lo = int(h * 0.5)  # the near road: paint there is large and sharp
    kernel = np.ones((3, 3), np.uint8)
    gains: dict[str, list[F32]] = {"white": [], "yellow": []}
    paves: dict[str, list[F32]] = {"white": [], "yellow": []}
    roads: list[F32] = []
    for t in np.unique(np.linspace(0, t_n - 1, min(max_frames, t_n)).round().astype(int)):
        f = frames_w[t, lo:].astype(np.float32)
        m = masks_w[t, lo:]
        ev = evidence[t]
        br, ye = ev.bright[lo:], ev.yellow[lo:]
        paint = m & ((br > bright_thr) | (ye > yellow_thr))
        known = m & ~(cv2.dilate(paint.astype(np.uint8), kernel) > 0)
        if known.sum() < 50:
            continue
        pave = push_pull_fill(f, known)
        roads.append(np.median(f[known], axis=0).astype(np.float32))
        sel = {"white": m & (br > 2.5 * bright_thr) & (ye < yellow_thr),
               "yellow": m & (ye > 3.0 * yellow_thr)}
        for k, s in sel.items():
            if s.sum() >= 10:
                p = np.maximum(luma(pave[s]), 4.0)
                gains[k].append(f[s] / p[:, None])
                paves[k].append(p)
    road_rgb = np.median(np.asarray(roads), axis=0).astype(np.float32) if roads else np.full(3, 100.0, np.float32)
    diag: dict[str, Any] = {}

    def measured(k: str) -> tuple[F32, int] | None:
        if not gains[k]:
            return None
        g = np.concatenate(gains[k])
        pl = np.concatenate(paves[k])
        dark = pl < _GAIN_PAVE_MAX
        if dark.sum() >= 30:
            g = g[dark]
        if len(g) < 30:
            return None
        # the upper quartile: anti-aliased stroke borders and worn spots pull the plain median down
        return np.percentile(g, 75, axis=0).astype(np.float32), len(g)

    mw = measured("white")
    if mw is not None:
        white = PaintLook(_white_limits(mw[0]), "clip paint", mw[1])
    else:
        white = PaintLook(_white_limits(np.full(3, _WHITE_GAIN, np.float32)), "standard")
    std_yellow = (float(luma(white.gain)) * _YELLOW_OF_WHITE).astype(np.float32)
    my = measured("yellow")
    yellow = PaintLook(std_yellow, "standard")
    if my is not None:
        g = my[0]
        # not fainter than the standard, and only a real paint hue on the typical road is copied
        g = (g * max(1.0, float(luma(std_yellow)) * 0.8 / max(float(luma(g)), 1e-3))).astype(np.float32)
        if is_paint_yellow(PaintLook(g, "").colour(road_rgb[None, :])[0]):
            yellow = PaintLook(g, "clip paint", my[1])
        else:
            diag["yellow_note"] = "the clip's yellow paint has no paint hue on this road; standard yellow used"
    return white, yellow, road_rgb, diag
