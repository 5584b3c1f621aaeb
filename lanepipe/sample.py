"""A synthetic driving clip with exact ground truth: road masks, lane polylines, ego poses, camera.

The clip is rendered physically, not drawn: every pixel below the horizon is ray-cast through a
:class:`~lanepipe.geometry.camera.PinholeCamera` to the ground plane, the ground point is moved to the world frame
with the ego pose, and then to road coordinates ``(s, d)`` (arc length along the road's reference line and
lateral offset, positive to the left). Colours come from those coordinates, so markings, dashes and texture
stay consistent with the ground truth at any distance.

Road (all lengths in metres; pavement-marking rules from the US MUTCD, 2009 edition):

* Reference line: straight for ``STRAIGHT_M`` then a left-hand arc of radius ``RADIUS_M``.
* Three 12 ft (3.66 m) lanes on a two-way road: one opposing lane (d in [0, 3.66]), the ego lane
  (d in [-3.66, 0]) and a second same-direction lane on the right (d in [-7.32, -3.66]).
* Lines, left to right in the image (``LAYOUT``):

  - id 0 ``edge``: solid white edge line of the opposing lane at d = +3.66 (MUTCD §3B.06),
  - id 1 ``left``: double solid yellow centre line at d = 0, the ego lane's left boundary (§3B.01,
    two-direction no-passing marking); two 0.12 m lines with a 0.10 m (about 4 in) space,
  - id 2 ``right``: broken (dashed) white lane line at d = -3.66 (§3B.04), 3.05 m (10 ft) segments with
    9.14 m (30 ft) gaps (§3A.06), the ego lane's right boundary,
  - id 3 ``edge``: solid white edge line at d = -7.32 (§3B.06).

  Line widths follow §3A.06 ("normal line 4 to 6 in wide"): 0.15 m for single lines. The dash phase is
  measured along the reference line ``s``.
* Pavement extends ``PAVED_MARGIN_M`` beyond each edge line; then an unpaved gravel shoulder, then grass.

The ego drives 15 m/s along the centre of its lane; the camera (70 deg FOV, 1.5 m high, pitched 5 deg down)
is fixed to it. A car drives in the right lane, 27 m ahead at first and 1 m/s slower (never closer than 12 m).
The road mask is the visible paved area, markings included, excluding the car, the shoulder, grass, trees
and sky. Lane polylines are *not* cut where the car hides them.

Frames are ``(T, H, W, 3) uint8`` RGB. Rendering is deterministic for a given seed.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.errors import ConfigError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.io import video
from lanepipe.types import Clip

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Floats = npt.NDArray[np.floating[Any]]  # float32 or float64
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

# --- Road geometry and markings (metres) ---------------------------------------------------------------
LANE_WIDTH_M = 3.66  # 12 ft
LINE_WIDTH_M = 0.15  # 6 in, MUTCD 2009 §3A.06: normal line 4-6 in (0.10-0.15 m)
DOUBLE_LINE_WIDTH_M = 0.12  # each line of the double yellow
DOUBLE_LINE_SPACE_M = 0.10  # about 4 in between the two lines of a double line
DASH_M = 3.05  # broken line: 10 ft segments ...
GAP_M = 9.14  # ... and 30 ft gaps (MUTCD 2009 §3A.06)
STRAIGHT_M = 40.0
RADIUS_M = 250.0  # left-hand curve after the straight
PAVED_MARGIN_M = 0.45  # pavement beyond the centre of each edge line
GRAVEL_M = 1.6  # unpaved shoulder beyond the pavement

# --- Scene -----------------------------------------------------------------------------------------
EGO_SPEED_MPS = 15.0
EGO_OFFSET_M = -LANE_WIDTH_M / 2  # centre of the ego lane
CAR_OFFSET_M = -1.5 * LANE_WIDTH_M  # centre of the right lane
CAR_GAP_M = 27.0  # initial distance ahead (rear axle to ego origin, along the road)
CAR_SPEED_MPS = 14.0
CAR_MIN_GAP_M = 12.0
CAR_SIZE_M = (4.6, 1.86, 1.46)  # length, width, height
MAX_DURATION_S = 30.0  # the ego then is 450 m down the road; the arc turns 180 deg at 825 m
HAZE_M = 380.0  # distance at which 63 % of the colour is haze
CAMERA_FOV_DEG = 70.0
CAMERA_PITCH_DEG = 5.0
CAMERA_HEIGHT_M = 1.5
SUN_DIR_WORLD = np.array([-0.35, -0.55, 0.76])  # towards the sun, world frame (normalised below)

Side = Literal["left", "right", "edge"]
Color = Literal["white", "yellow"]
Pattern = Literal["solid", "dashed"]


@dataclass(frozen=True)
class LaneLine:
    """One painted longitudinal line (or double line) in one frame.

    Attributes:
        id: stable id across frames (see ``LAYOUT``).
        side: ``"left"`` / ``"right"`` boundary of the ego lane, or ``"edge"`` (an edge line of the road).
        color: ``"white"`` or ``"yellow"``.
        pattern: ``"solid"`` or ``"dashed"``.
        count: 1 for a single line, 2 for a double line (``points`` then follow the middle of the pair).
        points: ``(N, 2) float64`` ``(u, v)`` image pixels of the line's centre curve, ordered near to far,
            only points that project inside the image; not cut where the car occludes the line.
        offset_m: lateral offset of the line centre from the road reference line (metres, + = left).
    """

    id: int
    side: Side
    color: Color
    pattern: Pattern
    count: int
    points: FloatArray
    offset_m: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; points rounded to 0.01 px."""
        return {"id": self.id, "side": self.side, "color": self.color, "pattern": self.pattern,
                "count": self.count, "offset_m": self.offset_m,
                "points": np.round(self.points, 2).tolist()}


@dataclass(frozen=True)
class SampleClip:
    """The rendered sample and its ground truth.

    Attributes:
        frames: ``(T, H, W, 3) uint8`` RGB frames.
        road_masks: ``(T, H, W) bool``, True = visible paved road (markings included; car and shoulder not).
        vehicle_masks: ``(T, H, W) bool``, True = pixels of the car ahead.
        lanes: per frame, the visible lane lines (``LaneLine``, ordered by ``id``).
        ego: ``(T, 4) float64`` ego pose per frame in the world frame: ``x, y`` (m), ``yaw`` (rad), ``speed``
            (m/s). The ego origin is on the ground under the camera.
        camera: the camera, fixed to the ego vehicle.
        fps: frame rate.
        vehicle: ``(T, 3) float64`` pose of the car ahead in the world frame: centre ``x, y`` (m), ``yaw``.
    """

    frames: npt.NDArray[np.uint8]
    road_masks: BoolArray
    vehicle_masks: BoolArray
    lanes: list[list[LaneLine]]
    ego: FloatArray
    camera: PinholeCamera
    fps: float
    vehicle: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def to_clip(self, name: str = "sample") -> Clip:
        """The frames as a :class:`~lanepipe.types.Clip` (camera dict in ``meta["camera"]``)."""
        t = self.num_frames
        return Clip(name=name, source=f"synthetic:{name}", frames=self.frames, fps=self.fps,
                    timestamps=np.arange(t, dtype=np.float64) / self.fps, source_fps=self.fps,
                    source_indices=np.arange(t, dtype=np.int64), meta={"camera": self.camera.to_dict()})


@dataclass(frozen=True)
class _LineSpec:
    id: int
    side: Side
    color: Color
    pattern: Pattern
    count: int
    offset_m: float

    def stripes(self) -> list[tuple[float, float]]:
        """``(centre d, width)`` of each painted stripe."""
        if self.count == 2:
            h = (DOUBLE_LINE_SPACE_M + DOUBLE_LINE_WIDTH_M) / 2
            return [(self.offset_m + h, DOUBLE_LINE_WIDTH_M), (self.offset_m - h, DOUBLE_LINE_WIDTH_M)]
        return [(self.offset_m, LINE_WIDTH_M)]


LAYOUT: tuple[_LineSpec, ...] = (
    _LineSpec(0, "edge", "white", "solid", 1, LANE_WIDTH_M),
    _LineSpec(1, "left", "yellow", "solid", 2, 0.0),
    _LineSpec(2, "right", "white", "dashed", 1, -LANE_WIDTH_M),
    _LineSpec(3, "edge", "white", "solid", 1, -2 * LANE_WIDTH_M),
)
PAVED_D = (-2 * LANE_WIDTH_M - PAVED_MARGIN_M, LANE_WIDTH_M + PAVED_MARGIN_M)  # (right, left) limits

_WHITE = np.array([0.86, 0.86, 0.84], dtype=np.float32)
_YELLOW = np.array([0.86, 0.66, 0.16], dtype=np.float32)
_ASPHALT = np.array([0.33, 0.33, 0.345], dtype=np.float32)
_GRAVEL = np.array([0.52, 0.48, 0.42], dtype=np.float32)
_GRASS_A = np.array([0.25, 0.36, 0.14], dtype=np.float32)
_GRASS_B = np.array([0.42, 0.42, 0.20], dtype=np.float32)
_HAZE = np.array([0.78, 0.82, 0.87], dtype=np.float32)
_SKY_ZENITH = np.array([0.36, 0.52, 0.80], dtype=np.float32)
_TREES = np.array([0.13, 0.19, 0.11], dtype=np.float32)


# --------------------------------------------------------------------------------------------------------
# Road geometry
# --------------------------------------------------------------------------------------------------------
def road_pose(s: Any, d: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """World position and heading of road coordinates.

    Args:
        s: ``(N,)`` arc length along the reference line (m); d: ``(N,)`` lateral offset (m, + = left).

    Returns:
        ``x, y`` (``(N,) float64`` world metres) and ``heading`` (``(N,) float64`` rad, road direction).
    """
    s = np.asarray(s, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    phi = np.maximum(s - STRAIGHT_M, 0.0) / RADIUS_M
    arc = s > STRAIGHT_M
    rr = RADIUS_M - d
    x = np.where(arc, STRAIGHT_M + rr * np.sin(phi), s)
    y = np.where(arc, RADIUS_M - rr * np.cos(phi), d)
    return x, y, phi


def _floats(a: Any) -> Any:
    """``a`` as a float array, keeping float32 (fast path) and turning anything else into float64."""
    arr = np.asarray(a)
    return arr if arr.dtype == np.float32 else arr.astype(np.float64)


def world_to_road(x: Any, y: Any) -> tuple[Floats, Floats, Floats]:
    """Road coordinates of world points (inverse of :func:`road_pose`).

    Args:
        x, y: ``(N,)`` world metres.

    Returns:
        ``s, d`` (``(N,)`` metres) and the road heading at ``s`` (``(N,)`` rad); float32 for float32 input,
        float64 otherwise.
    """
    x, y = _floats(x), _floats(y)
    dx = x - STRAIGHT_M
    dy = y - RADIUS_M
    arc = dx > 0
    phi = np.where(arc, np.arctan2(np.maximum(dx, 0.0), -dy), 0.0)
    s = np.where(arc, STRAIGHT_M + RADIUS_M * phi, x)
    d = np.where(arc, RADIUS_M - np.hypot(dx, dy), y)
    return s, d, phi


def _world_to_ego(px: FloatArray, py: FloatArray, pose: FloatArray) -> tuple[FloatArray, FloatArray]:
    c, s_ = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = px - pose[0], py - pose[1]
    return c * dx + s_ * dy, -s_ * dx + c * dy


# --------------------------------------------------------------------------------------------------------
# Textures: (s, d) road-space detail maps with mip pyramids, sampled with cv2.remap
# --------------------------------------------------------------------------------------------------------
def _octaves(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, ...],
             amps: tuple[float, ...], wrap: bool = False) -> F32:
    """Sum of bicubic-upsampled Gaussian lattices; ``cells`` in texels. ``wrap`` makes it tile."""
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    for cell, amp in zip(cells, amps, strict=True):
        gh, gw = -(-h // cell), -(-w // cell)
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        g = np.pad(g, 2, mode="wrap" if wrap else "reflect")
        up = cv2.resize(g, ((gw + 4) * cell, (gh + 4) * cell), interpolation=cv2.INTER_CUBIC)
        out += amp * up[2 * cell: 2 * cell + h, 2 * cell: 2 * cell + w]
    return out


def _fractal(rng: np.random.Generator, shape: tuple[int, int], amps: F32, base_cell: int = 4) -> F32:
    """Multi-channel fractal noise, synthesised coarse to fine (each octave 4x finer than the last).

    Args:
        shape: ``(H, W)`` output size in texels.
        amps: ``(K, C)`` amplitude of octave k (cell ``base_cell * 4**(K-1-k)`` texels) in channel c.

    Returns:
        ``(H, W, C) float32`` noise.
    """
    h, w = shape
    n_oct, ch = amps.shape
    cell = base_cell * 4 ** (n_oct - 1)
    gh, gw = -(-h // cell) + 3, -(-w // cell) + 3
    acc = rng.standard_normal((gh, gw, ch)).astype(np.float32) * amps[0]
    for k in range(1, n_oct):
        gh, gw = gh * 4, gw * 4
        acc = cv2.resize(acc, (gw, gh), interpolation=cv2.INTER_CUBIC).reshape(gh, gw, ch)
        acc += rng.standard_normal((gh, gw, ch)).astype(np.float32) * amps[k]
    full = cv2.resize(acc, (gw * base_cell, gh * base_cell), interpolation=cv2.INTER_CUBIC)
    off = base_cell * 4
    return np.ascontiguousarray(full.reshape(gh * base_cell, gw * base_cell, ch)[off: off + h, off: off + w])


def _pyramid(tex: F32, min_size: int = 4) -> list[F32]:
    levels = [tex]
    while min(levels[-1].shape[:2]) >= 2 * min_size:
        levels.append(np.asarray(cv2.pyrDown(levels[-1]), dtype=np.float32))
    return levels


@dataclass(frozen=True)
class _Texture:
    """A 3-channel detail map over road space: channel 0 asphalt, 1 gravel, 2 grass (zero-mean-ish)."""

    levels: list[F32]
    texel_m: float
    s0: float  # road coordinates of texel (0, 0) of level 0
    d0: float
    border: int  # cv2.BORDER_REFLECT, or BORDER_WRAP for a tile whose levels are padded by one texel
    tile: int = 0  # tile size in level-0 texels (wrap textures)


def _coarse_texture(rng: np.random.Generator) -> _Texture:
    texel = 0.05
    s0, s1, d0, d1 = -20.0, 330.0, -16.0, 13.0
    w, h = int((s1 - s0) / texel), int((d1 - d0) / texel)
    shape = (h, w)
    d_axis = d0 + (np.arange(h, dtype=np.float32) + 0.5) * texel
    # octaves of 12.8, 3.2, 0.8, 0.2 m; channels asphalt, gravel, grass
    amps = np.array([[0.04, 0.04, 0.35], [0.035, 0.04, 0.25], [0.025, 0.05, 0.12], [0.015, 0.06, 0.10]],
                    dtype=np.float32)
    noise = _fractal(rng, shape, amps)
    asph = noise[:, :, 0]
    # wheel-path polish and oil drip darkening in the middle of each lane
    prof = np.zeros(h, dtype=np.float32)
    for c in (LANE_WIDTH_M / 2, -LANE_WIDTH_M / 2, -1.5 * LANE_WIDTH_M):
        prof -= 0.07 * np.exp(-(((d_axis - c) / 0.35) ** 2))
        for off in (-0.9, 0.9):
            prof += 0.035 * np.exp(-(((d_axis - c - off) / 0.3) ** 2))
    asph += prof[:, None]
    # repair patches (crisp edges) and cracks
    patches = np.zeros(shape, dtype=np.float32)
    for _ in range(24):
        sc = rng.uniform(s0 + 10, s1 - 10)
        dc = rng.uniform(PAVED_D[0] + 1.0, PAVED_D[1] - 1.0)
        ls, ld = rng.uniform(1.0, 5.0), rng.uniform(0.7, 2.2)
        val = float(rng.choice([-0.10, -0.07, 0.06]))
        p0 = (int((sc - s0) / texel), int((dc - d0) / texel))
        p1 = (int((sc + ls - s0) / texel), int((dc + ld - d0) / texel))
        cv2.rectangle(patches, p0, p1, color=val, thickness=-1)
    cracks = np.zeros(shape, dtype=np.uint8)
    for _ in range(90):
        sc = rng.uniform(s0 + 5, s1 - 5)
        dc = rng.uniform(PAVED_D[0] + 0.3, PAVED_D[1] - 0.3)
        transverse = rng.random() < 0.35
        n = int(rng.integers(6, 18))
        heading = math.pi / 2 if transverse else 0.0
        pts = [(sc, dc)]
        for _k in range(n):
            heading += rng.normal(0.0, 0.45)
            step = rng.uniform(0.12, 0.3)
            pts.append((pts[-1][0] + step * math.cos(heading), pts[-1][1] + step * math.sin(heading)))
        arr = np.array([[(ps - s0) / texel, (pd - d0) / texel] for ps, pd in pts])
        cv2.polylines(cracks, [np.round(arr * 16).astype(np.int32)], isClosed=False, color=255,
                      thickness=1, lineType=cv2.LINE_AA, shift=4)
    asph += cv2.GaussianBlur(patches, (3, 3), 0.6) - 0.30 * cracks.astype(np.float32) / 255.0
    tex = noise
    return _Texture(_pyramid(tex), texel, s0, d0, cv2.BORDER_REFLECT)


def _fine_texture(rng: np.random.Generator) -> _Texture:
    """A 5.12 m tiling grain map at 1 cm: asphalt aggregate, gravel stones, grass blades."""
    texel, n = 0.01, 512
    shape = (n, n)
    asph = _octaves(rng, shape, (1, 2, 4), (0.04, 0.04, 0.025), wrap=True)
    stones = _octaves(rng, shape, (2, 4), (0.10, 0.08), wrap=True)
    blades = _octaves(rng, shape, (1, 3, 8), (0.06, 0.06, 0.05), wrap=True)
    tex = np.ascontiguousarray(np.stack([asph, stones, blades], axis=-1))
    # Only the five finest levels: coarser ones average the grain out to ~0. Each level is padded by one
    # texel copied from the opposite side so that bilinear lookups of wrapped coordinates are seamless.
    levels = [np.pad(lv, ((1, 1), (1, 1), (0, 0)), mode="wrap") for lv in _pyramid(tex)[:5]]
    return _Texture(levels, texel, 0.0, 0.0, cv2.BORDER_WRAP, tile=n)


@dataclass(frozen=True)
class _MipPlan:
    """Trilinear weights for pixels sorted by footprint: level k blends the contiguous slice ``start:stop``."""

    groups: list[tuple[int, int, int, F32]]  # (level, start, stop, weights of the slice)


def _mip_plan(footprint_m: FloatArray, texel_m: float, num_levels: int) -> _MipPlan:
    """Plan for ``footprint_m`` sorted ascending (so each level's pixels form one slice)."""
    lam = np.clip(np.log2(np.maximum(footprint_m, 1e-9) / texel_m), 0.0, num_levels - 1.0)
    lo = np.floor(lam).astype(np.intp)
    frac = (lam - lo).astype(np.float32)
    bounds = np.searchsorted(lo, np.arange(num_levels + 1), side="left")
    groups: list[tuple[int, int, int, F32]] = []
    for k in range(num_levels):
        start = bounds[k - 1] if k > 0 else bounds[0]
        stop = bounds[k + 1]
        if stop <= start:
            continue
        w = np.where(lo[start:stop] == k, 1.0 - frac[start:stop], frac[start:stop]).astype(np.float32)
        groups.append((k, int(start), int(stop), w))
    return _MipPlan(groups)


def _sample(tex: _Texture, plan: _MipPlan, s: Floats, d: Floats) -> F32:
    """Trilinear lookup of ``tex`` at road coordinates ``(N,)`` (pixels sorted by footprint); ``(N, 3)``."""
    n = s.shape[0]
    out = np.zeros((n, 3), dtype=np.float32)
    xs = (s - np.float32(tex.s0)) * np.float32(1.0 / tex.texel_m)
    ys = (d - np.float32(tex.d0)) * np.float32(1.0 / tex.texel_m)
    wrap = tex.border == cv2.BORDER_WRAP
    if wrap:  # coordinates within the tile; the one-texel padding makes the lookups seamless
        size, inv = np.float32(tex.tile), np.float32(1.0 / tex.tile)
        xs = xs - np.floor(xs * inv) * size  # np.mod is several times slower on float32
        ys = ys - np.floor(ys * inv) * size
    shift = np.float32(0.5 if wrap else -0.5)  # texel-centre convention of pyrDown, plus the padding
    block = 1024
    for level, start, stop, w in plan.groups:
        if level >= len(tex.levels):
            break
        sc = np.float32(0.5**level)
        m = stop - start
        pad = (-m) % block
        mx = np.pad(((xs[start:stop] + 0.5) * sc + shift).astype(np.float32), (0, pad)).reshape(-1, block)
        my = np.pad(((ys[start:stop] + 0.5) * sc + shift).astype(np.float32), (0, pad)).reshape(-1, block)
        border = cv2.BORDER_REPLICATE if wrap else tex.border
        res = cv2.remap(tex.levels[level], mx, my, cv2.INTER_LINEAR, borderMode=border)
        out[start:stop] += w[:, None] * res.reshape(-1, 3)[:m]
    return out


# --------------------------------------------------------------------------------------------------------
# Anti-aliasing helpers: box-filter coverage of intervals
# --------------------------------------------------------------------------------------------------------
def _cover(x: Floats, half: Floats, lo: float, hi: float) -> F32:
    """Fraction of the pixel footprint ``[x - half, x + half]`` inside ``[lo, hi]``; ``(N,) float32``."""
    inter = np.minimum(x + half, hi) - np.maximum(x - half, lo)
    return np.clip(inter / (2 * half), 0.0, 1.0).astype(np.float32)


def _dash_integral(s: FloatArray) -> FloatArray:
    """Painted length of the broken line in ``[0, s]`` (dashes start at multiples of the period)."""
    period = DASH_M + GAP_M
    out: FloatArray = np.floor(s / period) * DASH_M + np.clip(np.mod(s, period), 0.0, DASH_M)
    return out


# --------------------------------------------------------------------------------------------------------
# Per-pixel geometry, fixed for the whole clip (the camera is fixed to the ego vehicle)
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    """Per-pixel quantities that stay fixed for the whole clip (the camera is fixed to the ego vehicle).

    Ground pixels (G of them) are sorted by footprint so that mip levels form slices.
    """

    ground_idx: IntArray  # (G,) flat indices of pixels whose ray meets the ground within MAX_GROUND_M
    gx: F32  # (G,) ego-frame ground point x (m)
    gy: F32  # (G,) ego-frame ground point y (m)
    gu: tuple[F32, F32]  # ego-frame ground displacement (x, y) for one pixel step in u, each (G,)
    gv: tuple[F32, F32]  # ... for one pixel step in v
    haze: F32  # (G,) transmittance of the air between camera and ground point
    plan_coarse: _MipPlan
    plan_fine: _MipPlan
    ray_az: FloatArray  # (H*W,) ego-frame azimuth of each pixel ray (rad)
    ray_tan_el: FloatArray  # (H*W,) tangent of the elevation of each ray
    band_idx: IntArray  # flat indices of pixels that may show the tree line
    sky_base: F32  # (H*W, 3) sky gradient
    vignette: F32  # (H, W, 1)


MAX_GROUND_M = 700.0
GRAIN_PAD = 64
TREE_DIST_M = (300.0, 650.0)
TREE_HEIGHT_MAX_M = 22.0


def _geometry(cam: PinholeCamera, coarse: _Texture, fine: _Texture) -> _Geometry:
    h, w = cam.height, cam.width
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = cam.pixel_rays_ego(uu, vv)
    horiz = np.hypot(rays[:, 0], rays[:, 1])
    tan_el = rays[:, 2] / horiz
    az = np.arctan2(rays[:, 1], rays[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(tan_el < 0, cam.mount_height_m / -tan_el, np.inf)
    ground_idx = np.flatnonzero(dist < MAX_GROUND_M)
    gu_f, gv_f = uu.ravel()[ground_idx], vv.ravel()[ground_idx]
    p, _ = cam.pixel_to_ground(gu_f, gv_f)

    def ground_at(du: float, dv: float) -> FloatArray:
        q, ok = cam.pixel_to_ground(gu_f + du, gv_f + dv)
        q = q[:, :2]
        q[~ok] = p[~ok, :2] + 1e4  # above the horizon: an effectively infinite footprint
        return q

    gu = ground_at(0.5, 0.0) - ground_at(-0.5, 0.0)
    gv = ground_at(0.0, 0.5) - ground_at(0.0, -0.5)
    nu, nv = np.linalg.norm(gu, axis=1), np.linalg.norm(gv, axis=1)
    major, minor = np.maximum(nu, nv), np.minimum(nu, nv)
    fp = np.maximum(minor, major / 3.0)  # mild anisotropy: a little aliasing rather than a blur
    order = np.argsort(fp, kind="stable")  # so that each mip level's pixels form one slice
    ground_idx, p, gu, gv, fp = ground_idx[order], p[order], gu[order], gv[order], fp[order]
    haze = np.exp(-dist[ground_idx] / HAZE_M).astype(np.float32)

    max_tan = (TREE_HEIGHT_MAX_M - cam.mount_height_m) / TREE_DIST_M[0]
    min_tan = -cam.mount_height_m / TREE_DIST_M[0]
    band_idx = np.flatnonzero((tan_el >= min_tan) & (tan_el <= max_tan))

    el = np.arctan(tan_el)
    tsky = np.clip(el / math.radians(35.0), 0.0, 1.0) ** 0.7
    sky = (_HAZE[None, :] * (1 - tsky[:, None]) + _SKY_ZENITH[None, :] * tsky[:, None]).astype(np.float32)

    yy, xx = (vv - cam.cy) / h, (uu - cam.cx) / w
    vignette = (1.0 - 0.35 * (xx**2 + yy**2)).astype(np.float32)[:, :, None]
    f32 = np.float32
    return _Geometry(ground_idx=ground_idx, gx=p[:, 0].astype(f32), gy=p[:, 1].astype(f32),
                     gu=(gu[:, 0].astype(f32), gu[:, 1].astype(f32)),
                     gv=(gv[:, 0].astype(f32), gv[:, 1].astype(f32)), haze=haze,
                     plan_coarse=_mip_plan(fp, coarse.texel_m, len(coarse.levels)),
                     plan_fine=_mip_plan(fp, fine.texel_m, len(fine.levels) + 1), ray_az=az, ray_tan_el=tan_el,
                     band_idx=band_idx, sky_base=sky, vignette=vignette)


# --------------------------------------------------------------------------------------------------------
# The car ahead: a few axis-aligned boxes in its own frame, ray-cast
# --------------------------------------------------------------------------------------------------------
_CAR_PARTS: tuple[tuple[str, tuple[float, float, float, float, float, float]], ...] = (
    # name, (x0, x1, y0, y1, z0, z1) in the car frame: x forward from the car centre, y left, z up
    ("body", (-2.30, 2.30, -0.93, 0.93, 0.30, 0.98)),
    ("cabin", (-1.45, 0.85, -0.80, 0.80, 0.98, 1.46)),
    ("wheel", (-1.72, -1.02, -0.94, -0.70, 0.0, 0.64)),
    ("wheel", (-1.72, -1.02, 0.70, 0.94, 0.0, 0.64)),
    ("wheel", (1.02, 1.72, -0.94, -0.70, 0.0, 0.64)),
    ("wheel", (1.02, 1.72, 0.70, 0.94, 0.0, 0.64)),
)


def _car_corners() -> FloatArray:
    x0, x1, y0, y1, z0, z1 = -2.3, 2.3, -0.94, 0.94, 0.0, 1.46
    return np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])


def _render_car(cam: PinholeCamera, car_pose_ego: tuple[float, float, float], paint: F32, sun_car: FloatArray,
                ) -> tuple[IntArray, F32]:
    """Ray-cast the car (2x2 supersampled) in its own frame.

    Args:
        cam: the camera.
        car_pose_ego: car centre ``x, y`` (m) and yaw (rad) in the ego frame.
        paint: ``(3,) float32`` body colour in [0, 1].
        sun_car: ``(3,)`` unit vector towards the sun in the car frame.

    Returns:
        ``(M,) intp`` flat pixel indices (row * W + column) the car touches, and ``(M, 4) float32``
        RGBA: the car's colour (not hazed) and its coverage of the pixel in [0, 1].
    """
    empty = (np.zeros(0, dtype=np.intp), np.zeros((0, 4), dtype=np.float32))
    cxe, cye, cyaw = car_pose_ego
    c, s_ = math.cos(cyaw), math.sin(cyaw)
    rot = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]])  # car -> ego
    corners = _car_corners() @ rot.T + np.array([cxe, cye, 0.0])
    pix, ok = cam.project(corners)
    if not ok.all():
        return empty
    u0 = max(int(np.floor(pix[:, 0].min())) - 1, 0)
    u1 = min(int(np.ceil(pix[:, 0].max())) + 2, cam.width)
    v0 = max(int(np.floor(pix[:, 1].min())) - 1, 0)
    v1 = min(int(np.ceil(pix[:, 1].max())) + 2, cam.height)
    if u0 >= u1 or v0 >= v1:
        return empty
    vv, uu = np.mgrid[v0:v1, u0:u1]
    flat = (vv * cam.width + uu).ravel()
    n_sub = 4
    offs = np.array([(-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25)])
    su = (uu.ravel()[None, :] + offs[:, 0:1]).ravel()
    sv = (vv.ravel()[None, :] + offs[:, 1:2]).ravel()
    d = cam.pixel_rays_ego(su, sv) @ rot  # ego -> car: R^T d, one ray per sub-sample
    origin = rot.T @ (cam.centre_ego - np.array([cxe, cye, 0.0]))
    n = d.shape[0]
    best_t = np.full(n, np.inf)
    col = np.zeros((n, 3), dtype=np.float32)
    dt = np.ascontiguousarray(d.T)  # (3, n): per-axis rows keep the slab test elementwise (fast)
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.where(dt == 0.0, 1e-300, dt)
    for name, box in _CAR_PARTS:
        t1 = (np.array(box[0::2])[:, None] - origin[:, None]) * inv
        t2 = (np.array(box[1::2])[:, None] - origin[:, None]) * inv
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        tn = np.maximum(np.maximum(tmin[0], tmin[1]), tmin[2])
        tf = np.minimum(np.minimum(tmax[0], tmax[1]), tmax[2])
        hit = np.flatnonzero((tn <= tf) & (tn > 0) & (tn < best_t))
        if hit.size == 0:
            continue
        axis = tmin[:, hit].argmax(axis=0)
        normal = np.zeros((hit.size, 3))
        normal[np.arange(hit.size), axis] = -np.sign(d[hit, axis])
        pt = origin + tn[hit, None] * d[hit]
        lam = (0.42 + 0.58 * np.clip(normal @ sun_car, 0.0, 1.0)).astype(np.float32)
        if name == "wheel":
            base = np.tile(np.array([0.05, 0.05, 0.055], dtype=np.float32), (hit.size, 1))
        elif name == "cabin":
            y, z, x = pt[:, 1], pt[:, 2], pt[:, 0]
            glass = (normal[:, 2] < 0.5) & (z > 1.04) & (z < 1.41)  # windows; roof and pillars painted
            glass &= np.where(np.abs(normal[:, 0]) > 0.5, np.abs(y) < 0.66, (x > -1.3) & (x < 0.7))
            base = np.where(glass[:, None], np.array([0.07, 0.08, 0.10], dtype=np.float32), paint)
            refl = np.clip((pt[:, 2] - 0.98) / 0.48, 0, 1).astype(np.float32)[:, None]
            base = base + glass[:, None] * refl * np.array([0.14, 0.16, 0.19], dtype=np.float32)
        else:
            base = np.tile(paint, (hit.size, 1))
            rear = normal[:, 0] < -0.5
            y, z = pt[:, 1], pt[:, 2]
            lamp = rear & (np.abs(y) > 0.52) & (np.abs(y) < 0.86) & (z > 0.74) & (z < 0.88)
            plate = rear & (np.abs(y) < 0.26) & (z > 0.44) & (z < 0.57)
            base[z < 0.44] = np.array([0.08, 0.08, 0.09], dtype=np.float32)  # bumper and sills
            base[lamp] = np.array([0.75, 0.06, 0.05], dtype=np.float32)
            base[plate] = np.array([0.85, 0.85, 0.80], dtype=np.float32)
        col[hit] = base * lam[:, None]
        best_t[hit] = tn[hit]
    got = np.isfinite(best_t).reshape(n_sub, -1)
    cov = got.sum(axis=0)
    keep = cov > 0
    if not keep.any():
        return empty
    acc = (col.reshape(n_sub, -1, 3) * got[:, :, None]).sum(axis=0)
    colours = acc[keep] / cov[keep, None]
    alpha = (cov[keep] / n_sub).astype(np.float32)
    return flat[keep], np.concatenate([colours, alpha[:, None]], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------
def _tree_profile(rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Tree-line distance and height as functions of world azimuth (4096 samples over 2 pi)."""
    n = 4096
    az = np.linspace(-math.pi, math.pi, n, endpoint=False)
    k = np.arange(1, 7)
    ph = rng.uniform(0, 2 * math.pi, size=(2, k.size))
    amp = 1.0 / k
    base_d = (np.sin(np.outer(az, k) + ph[0]) * amp).sum(axis=1)
    dist = np.interp(base_d, (base_d.min(), base_d.max()), TREE_DIST_M)
    crowns = _octaves(rng, (1, n), (3, 9, 40, 200), (1.2, 1.6, 2.5, 4.0), wrap=True)[0]
    height = np.clip(9.0 + crowns, 0.0, TREE_HEIGHT_MAX_M - 0.5)
    return dist, height.astype(np.float64)


def _check_args(num_frames: int, fps: float, width: int, height: int) -> None:
    if not (isinstance(num_frames, int) and num_frames >= 1):
        raise ConfigError(f"render_sample: num_frames should be an int >= 1 but is {num_frames!r}")
    if not fps > 0:
        raise ConfigError(f"render_sample: fps should be > 0 but is {fps!r}")
    if num_frames / fps > MAX_DURATION_S:
        raise ConfigError(f"render_sample: the clip should last at most {MAX_DURATION_S} s (the road's curve "
                          f"turns back after that) but num_frames / fps = {num_frames / fps:.1f} s")
    if not (isinstance(width, int) and isinstance(height, int) and width >= 32 and height >= 32):
        raise ConfigError(f"render_sample: width and height should be ints >= 32 but are {width!r}, {height!r}")


def _ego_poses(num_frames: int, fps: float) -> FloatArray:
    t = np.arange(num_frames) / fps
    s = EGO_SPEED_MPS * t
    x, y, yaw = road_pose(s, np.full_like(s, EGO_OFFSET_M))
    return np.stack([x, y, yaw, np.full_like(s, EGO_SPEED_MPS)], axis=1)


def _car_poses(num_frames: int, fps: float) -> FloatArray:
    t = np.arange(num_frames) / fps
    # it drives a little slower than the ego, closing the gap down to CAR_MIN_GAP_M, then keeps pace
    s = EGO_SPEED_MPS * t + np.maximum(CAR_GAP_M - (EGO_SPEED_MPS - CAR_SPEED_MPS) * t, CAR_MIN_GAP_M)
    x, y, yaw = road_pose(s, np.full_like(s, CAR_OFFSET_M))
    return np.stack([x, y, yaw], axis=1)


def _segment_box_t(p: FloatArray, q: FloatArray, w: int, h: int) -> tuple[float, float]:
    """Liang-Barsky: the parameter range ``[t0, t1]`` of segment ``p -> q`` inside ``[0, w-1] x [0, h-1]``."""
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for den, num in ((-dx, p[0]), (dx, w - 1 - p[0]), (-dy, p[1]), (dy, h - 1 - p[1])):
        if den == 0:
            if num < 0:
                return 1.0, 0.0
            continue
        t = num / den
        if den < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    return t0, t1


def _clip_to_image(pix: FloatArray, valid: BoolArray, w: int, h: int) -> FloatArray:
    """Keep the polyline's points inside the image and add the points where it crosses the border.

    Args:
        pix: ``(N, 2) float64`` projected points in order; valid: ``(N,) bool`` (in front of the near plane).

    Returns:
        ``(M, 2) float64`` points inside ``[0, w-1] x [0, h-1]``.
    """
    inside = valid & (pix[:, 0] >= 0) & (pix[:, 0] <= w - 1) & (pix[:, 1] >= 0) & (pix[:, 1] <= h - 1)
    pieces: list[FloatArray] = []
    change = np.flatnonzero((inside[1:] != inside[:-1]) & valid[1:] & valid[:-1])
    start = 0
    for i in change.tolist():  # the segment i -> i + 1 crosses the border
        pieces.append(pix[start: i + 1][inside[start: i + 1]])
        t0, t1 = _segment_box_t(pix[i], pix[i + 1], w, h)
        if t0 <= t1:
            t = t1 if inside[i] else t0
            pieces.append((pix[i] + t * (pix[i + 1] - pix[i]))[None, :])
        start = i + 1
    pieces.append(pix[start:][inside[start:]])
    out = np.concatenate(pieces, axis=0)
    return np.clip(out, 0.0, [w - 1.0, h - 1.0])  # crossings may overshoot by rounding


#: Distances ahead (m, along the road) at which lane lines are sampled: dense near the camera.
_LANE_STEPS_M = np.concatenate([np.arange(0.0, 10.0, 0.1), np.arange(10.0, 40.0, 0.5), np.arange(40.0, 80.0, 1.0),
                                np.arange(80.0, 150.0, 2.0)])


def _lane_lines(cam: PinholeCamera, ego_pose: FloatArray) -> list[LaneLine]:
    """Lane lines of ``LAYOUT`` projected from the ego pose ``(4,)``, from the ego to 150 m ahead."""
    s_ego, _, _ = world_to_road(ego_pose[:1], ego_pose[1:2])
    s = s_ego[0] + _LANE_STEPS_M
    out = []
    for spec in LAYOUT:
        wx, wy, _ = road_pose(s, np.full_like(s, spec.offset_m))
        ex, ey = _world_to_ego(wx, wy, ego_pose)
        pix, ok = cam.project(np.stack([ex, ey, np.zeros_like(ex)], axis=1))
        out.append(LaneLine(id=spec.id, side=spec.side, color=spec.color, pattern=spec.pattern,
                            count=spec.count, points=_clip_to_image(pix, ok, cam.width, cam.height),
                            offset_m=spec.offset_m))
    return out


@dataclass(frozen=True)
class _Scene:
    """Everything a frame needs, built once per clip."""

    cam: PinholeCamera
    geo: _Geometry
    coarse: _Texture
    fine: _Texture
    tree_dist: FloatArray  # (A,) tree-line distance (m) by world azimuth bin
    tree_height: FloatArray  # (A,) tree-line height (m)
    paint: F32  # (3,) car body colour
    sun: FloatArray  # (3,) unit vector towards the sun, world frame
    grain: F32  # (H + GRAIN_PAD, W + GRAIN_PAD, 1) sensor noise; each frame uses a window of it


def _render_ground(sc: _Scene, pose: FloatArray, car: FloatArray) -> tuple[F32, BoolArray]:
    """Colour ``(G, 3) float32`` (hazed) and paved flag ``(G,) bool`` of the ground pixels."""
    geo = sc.geo
    c, s_ = np.float32(math.cos(pose[2])), np.float32(math.sin(pose[2]))
    wx = np.float32(pose[0]) + c * geo.gx - s_ * geo.gy
    wy = np.float32(pose[1]) + s_ * geo.gx + c * geo.gy
    s, d, heading = world_to_road(wx, wy)
    rel = heading - np.float32(pose[2])
    nx, ny = -np.sin(rel), np.cos(rel)  # road normal (towards +d) in the ego frame; tangent is (ny, -nx)
    (gux, guy), (gvx, gvy) = geo.gu, geo.gv
    half_d = np.maximum(0.5 * (np.abs(gux * nx + guy * ny) + np.abs(gvx * nx + gvy * ny)), 1e-4)
    half_s = np.maximum(0.5 * (np.abs(gux * ny - guy * nx) + np.abs(gvx * ny - gvy * nx)), 1e-4)
    detail = _sample(sc.coarse, geo.plan_coarse, s, d)
    detail += _sample(sc.fine, geo.plan_fine, s, d)
    w_paved = _cover(d, half_d, *PAVED_D)
    w_gravel = (_cover(d, half_d, PAVED_D[0] - GRAVEL_M, PAVED_D[0])
                + _cover(d, half_d, PAVED_D[1], PAVED_D[1] + GRAVEL_M))
    w_grass = 1.0 - w_paved - w_gravel
    grass_mix = np.clip(0.5 + detail[:, 2:3], 0.0, 1.0)
    grass = (_GRASS_A + (_GRASS_B - _GRASS_A) * grass_mix) * (1.0 + 0.5 * detail[:, 2:3])
    col = w_paved[:, None] * (_ASPHALT * (1.0 + detail[:, 0:1]))
    col += w_gravel[:, None] * (_GRAVEL * (1.0 + detail[:, 1:2]))
    col += w_grass[:, None] * grass
    # markings: only the pixels whose footprint reaches a stripe
    for spec in LAYOUT:
        paint_col = _WHITE if spec.color == "white" else _YELLOW
        for centre, width_m in spec.stripes():
            near = np.flatnonzero(np.abs(d - np.float32(centre)) < half_d + np.float32(width_m / 2))
            if near.size == 0:
                continue
            cov = _cover(d[near], half_d[near], centre - width_m / 2, centre + width_m / 2)
            if spec.pattern == "dashed":
                hs, sn = half_s[near].astype(np.float64), s[near].astype(np.float64)
                painted = (_dash_integral(sn + hs) - _dash_integral(sn - hs)) / (2 * hs)
                cov *= np.clip(painted, 0.0, 1.0).astype(np.float32)
            wear = detail[near, 0:1]
            cov2 = cov[:, None] * np.clip(0.9 + 1.5 * wear, 0.6, 1.0)  # worn paint
            col[near] = col[near] * (1.0 - cov2) + paint_col * (1.0 + wear) * cov2
    # the car's soft shadow, directly under it and shifted away from the sun
    cex, cey = _world_to_ego(car[0:1], car[1:2], pose)
    near_car = np.flatnonzero((np.abs(geo.gx - np.float32(cex[0])) < 7) & (np.abs(geo.gy - np.float32(cey[0])) < 5))
    if near_car.size:
        yaw = float(car[2])
        shx, shy = -sc.sun[0] / sc.sun[2] * 0.35, -sc.sun[1] / sc.sun[2] * 0.35  # world shift
        shx, shy = math.cos(yaw) * shx + math.sin(yaw) * shy, -math.sin(yaw) * shx + math.cos(yaw) * shy
        ryaw = yaw - float(pose[2])
        dxe, dye = geo.gx[near_car] - np.float32(cex[0]), geo.gy[near_car] - np.float32(cey[0])
        lx = math.cos(ryaw) * dxe + math.sin(ryaw) * dye
        ly = -math.sin(ryaw) * dxe + math.cos(ryaw) * dye
        shadow = (np.clip((2.45 - np.abs(lx - shx)) / 0.35, 0, 1) * np.clip((1.05 - np.abs(ly - shy)) / 0.35, 0, 1))
        under = np.clip((2.3 - np.abs(lx)) / 0.5, 0, 1) * np.clip((0.9 - np.abs(ly)) / 0.3, 0, 1)
        col[near_car] *= (1.0 - 0.5 * np.maximum(shadow, under) ** 1.5)[:, None]
    col = col * geo.haze[:, None] + _HAZE * (1.0 - geo.haze[:, None])
    paved = (d >= PAVED_D[0]) & (d <= PAVED_D[1])
    return col, paved


def _render_frame(sc: _Scene, pose: FloatArray, car: FloatArray, grain_seed: int,
                  ) -> tuple[npt.NDArray[np.uint8], BoolArray, BoolArray]:
    """One frame: ``(H, W, 3) uint8`` image, ``(H, W) bool`` road mask and car mask."""
    cam, geo = sc.cam, sc.geo
    h, w = cam.height, cam.width
    img = geo.sky_base.copy()
    road = np.zeros(h * w, dtype=bool)
    col, paved = _render_ground(sc, pose, car)
    img[geo.ground_idx] = col
    road[geo.ground_idx] = paved
    # tree line: a ragged wall 300-650 m away, indexed by world azimuth
    b = geo.band_idx
    azw = np.mod(geo.ray_az[b] + pose[2] + math.pi, 2 * math.pi)
    ia = (azw / (2 * math.pi) * sc.tree_dist.size).astype(np.intp) % sc.tree_dist.size
    td, th = sc.tree_dist[ia], sc.tree_height[ia]
    z_hit = cam.mount_height_m + td * geo.ray_tan_el[b]
    tree = (z_hit >= 0.0) & (z_hit <= th)
    trans = np.exp(-td[tree] / HAZE_M).astype(np.float32)[:, None]
    shade = (0.8 + 0.35 * (z_hit[tree] / np.maximum(th[tree], 1e-3))).astype(np.float32)[:, None]
    img[b[tree]] = _TREES * shade * trans + _HAZE * (1 - trans)
    road[b[tree]] = False
    # the car ahead
    vehicle = np.zeros(h * w, dtype=bool)
    cex, cey = _world_to_ego(car[0:1], car[1:2], pose)
    yaw = float(car[2])
    sun_car = np.array([math.cos(yaw) * sc.sun[0] + math.sin(yaw) * sc.sun[1],
                        -math.sin(yaw) * sc.sun[0] + math.cos(yaw) * sc.sun[1], sc.sun[2]])
    idx, rgba = _render_car(cam, (float(cex[0]), float(cey[0]), yaw - float(pose[2])), sc.paint, sun_car)
    if idx.size:
        tr = np.float32(math.exp(-math.hypot(float(cex[0]), float(cey[0])) / HAZE_M))
        a = rgba[:, 3:4]
        img[idx] = img[idx] * (1 - a) + (rgba[:, :3] * tr + _HAZE * (1 - tr)) * a
        on_car = idx[rgba[:, 3] >= 0.5]
        vehicle[on_car] = True
        road[on_car] = False
    # sensor: vignette and grain
    out = img.reshape(h, w, 3) * geo.vignette
    gy0, gx0 = divmod(grain_seed, GRAIN_PAD)
    out += sc.grain[gy0: gy0 + h, gx0: gx0 + w]
    frame = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return frame, road.reshape(h, w), vehicle.reshape(h, w)


def render_sample(num_frames: int = 48, fps: float = 8.0, width: int = 960, height: int = 540,
                  seed: int = 0) -> SampleClip:
    """Render the synthetic sample clip and its ground truth.

    Args:
        num_frames: number of frames T (>= 1). The ego drives 15 m/s, so 48 frames at 8 fps cover 90 m.
        fps: frame rate; sets how far the ego moves between frames. ``num_frames / fps`` is at most 30 s.
        width, height: image size W, H in pixels (>= 32). The camera keeps a 70 deg horizontal FOV.
        seed: seeds the asphalt texture, cracks, patches, tree line, car colour and sensor grain.

    Returns:
        A :class:`SampleClip`: ``(T, H, W, 3) uint8`` frames, ``(T, H, W) bool`` road and car masks, lane
        polylines in pixels, ``(T, 4)`` world ego poses and the camera.

    Raises:
        ConfigError: a non-positive frame count or fps, a size under 32 pixels, a clip over 30 s.
    """
    _check_args(num_frames, fps, width, height)
    rng = np.random.default_rng(seed)
    cam = PinholeCamera.from_fov(width, height, CAMERA_FOV_DEG, mount_height_m=CAMERA_HEIGHT_M,
                                 pitch_deg=CAMERA_PITCH_DEG)
    coarse = _coarse_texture(rng)
    fine = _fine_texture(rng)
    tree_dist, tree_height = _tree_profile(rng)
    paints = np.array([[0.55, 0.06, 0.06], [0.62, 0.63, 0.65], [0.08, 0.18, 0.42], [0.85, 0.85, 0.83]],
                      dtype=np.float32)
    paint = paints[int(rng.integers(len(paints)))]
    grain_seeds = rng.integers(GRAIN_PAD * GRAIN_PAD, size=num_frames)
    grain = 0.006 * rng.standard_normal((height + GRAIN_PAD, width + GRAIN_PAD, 1), dtype=np.float32)
    scene = _Scene(cam=cam, geo=_geometry(cam, coarse, fine), coarse=coarse, fine=fine, tree_dist=tree_dist,
                   tree_height=tree_height, paint=paint, sun=SUN_DIR_WORLD / np.linalg.norm(SUN_DIR_WORLD),
                   grain=grain)
    ego = _ego_poses(num_frames, fps)
    cars = _car_poses(num_frames, fps)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    road = np.empty((num_frames, height, width), dtype=bool)
    vehicle = np.empty((num_frames, height, width), dtype=bool)

    def one(t: int) -> None:
        frames[t], road[t], vehicle[t] = _render_frame(scene, ego[t], cars[t], int(grain_seeds[t]))

    # numpy and OpenCV release the GIL on large arrays, so two threads use two cores; frames are independent
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(num_frames)))
    lanes = [_lane_lines(cam, ego[t]) for t in range(num_frames)]
    return SampleClip(frames=frames, road_masks=road, vehicle_masks=vehicle, lanes=lanes, ego=ego, camera=cam,
                      fps=float(fps), vehicle=cars)


def sample_metadata(sample: SampleClip) -> dict[str, Any]:
    """The JSON ground truth of a sample (what :func:`write_sample` stores in ``sample_gt.json``)."""
    frames = []
    for t in range(sample.num_frames):
        x, y, yaw, speed = (float(v) for v in sample.ego[t])
        entry: dict[str, Any] = {"index": t, "time_s": t / sample.fps,
                                 "ego": {"x": x, "y": y, "yaw": yaw, "speed": speed},
                                 "lanes": [ln.to_dict() for ln in sample.lanes[t]]}
        if sample.vehicle.shape[0] == sample.num_frames:
            vx, vy, vyaw = (float(v) for v in sample.vehicle[t])
            entry["vehicle"] = {"x": vx, "y": vy, "yaw": vyaw, "length_m": CAR_SIZE_M[0],
                                "width_m": CAR_SIZE_M[1], "height_m": CAR_SIZE_M[2]}
        frames.append(entry)
    return {
        "format": "lanepipe.sample/1",
        "fps": sample.fps,
        "num_frames": sample.num_frames,
        "width": sample.camera.width,
        "height": sample.camera.height,
        "camera": sample.camera.to_dict(),
        "frames_note": ("ego pose is world x, y (m), yaw (rad), speed (m/s) of the ground point under the "
                        "camera; lane points are (u, v) pixels, near to far, not cut by the car's occlusion"),
        "layout": {
            "lane_width_m": LANE_WIDTH_M, "line_width_m": LINE_WIDTH_M,
            "double_line_width_m": DOUBLE_LINE_WIDTH_M, "double_line_space_m": DOUBLE_LINE_SPACE_M,
            "dash_m": DASH_M, "gap_m": GAP_M, "straight_m": STRAIGHT_M, "radius_m": RADIUS_M,
            "curve": "left", "paved_d_m": list(PAVED_D), "ego_offset_m": EGO_OFFSET_M,
            "lines": [{"id": sp.id, "side": sp.side, "color": sp.color, "pattern": sp.pattern,
                       "count": sp.count, "offset_m": sp.offset_m} for sp in LAYOUT],
            "standard": "US MUTCD 2009: §3A.06 widths and patterns, §3B.01 centre, §3B.04 lane, §3B.06 edge",
        },
        "frames": frames,
    }


def write_sample(out_dir: str | Path, **kwargs: Any) -> Path:
    """Render the sample and write it to ``out_dir``.

    Writes ``sample.mp4`` (H.264, ``fps``), ``sample_gt.npz`` (``road_masks`` and ``vehicle_masks``,
    ``(T, H, W) bool``, ``ego`` ``(T, 4) float64``; compressed) and ``sample_gt.json``
    (see :func:`sample_metadata`).

    Args:
        out_dir: local folder; created if missing.
        **kwargs: passed to :func:`render_sample` (``num_frames``, ``fps``, ``width``, ``height``, ``seed``).

    Returns:
        The path of ``sample.mp4``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = render_sample(**kwargs)
    mp4 = out / "sample.mp4"
    video.encode(sample.frames, str(mp4), sample.fps)
    np.savez_compressed(out / "sample_gt.npz", road_masks=sample.road_masks, vehicle_masks=sample.vehicle_masks,
                        ego=sample.ego)
    (out / "sample_gt.json").write_text(json.dumps(sample_metadata(sample), separators=(",", ":")))
    return mp4
