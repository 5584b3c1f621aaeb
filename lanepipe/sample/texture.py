"""Procedural ground textures of the sample (fractal noise, mip pyramids) and their filtered lookup by road
coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.sample.road import LANE_WIDTH_M, PAVED_D

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Floats = npt.NDArray[np.floating[Any]]  # float32 or float64
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------------------------------------
# Textures: (s, d) road-space detail maps with mip pyramids, sampled with cv2.remap
# --------------------------------------------------------------------------------------------------------
def octaves(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, ...],
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
class Texture:
    """A 3-channel detail map over road space: channel 0 asphalt, 1 gravel, 2 grass (zero-mean-ish)."""

    levels: list[F32]
    texel_m: float
    s0: float  # road coordinates of texel (0, 0) of level 0
    d0: float
    border: int  # cv2.BORDER_REFLECT, or BORDER_WRAP for a tile whose levels are padded by one texel
    tile: int = 0  # tile size in level-0 texels (wrap textures)


def coarse_texture(rng: np.random.Generator) -> Texture:
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
    return Texture(_pyramid(tex), texel, s0, d0, cv2.BORDER_REFLECT)


def fine_texture(rng: np.random.Generator) -> Texture:
    """A 5.12 m tiling grain map at 1 cm: asphalt aggregate, gravel stones, grass blades."""
    texel, n = 0.01, 512
    shape = (n, n)
    asph = octaves(rng, shape, (1, 2, 4), (0.04, 0.04, 0.025), wrap=True)
    stones = octaves(rng, shape, (2, 4), (0.10, 0.08), wrap=True)
    blades = octaves(rng, shape, (1, 3, 8), (0.06, 0.06, 0.05), wrap=True)
    tex = np.ascontiguousarray(np.stack([asph, stones, blades], axis=-1))
    # Only the five finest levels: coarser ones average the grain out to ~0. Each level is padded by one
    # texel copied from the opposite side so that bilinear lookups of wrapped coordinates are seamless.
    levels = [np.pad(lv, ((1, 1), (1, 1), (0, 0)), mode="wrap") for lv in _pyramid(tex)[:5]]
    return Texture(levels, texel, 0.0, 0.0, cv2.BORDER_WRAP, tile=n)


@dataclass(frozen=True)
class MipPlan:
    """Trilinear weights for pixels sorted by footprint: level k blends the contiguous slice ``start:stop``."""

    groups: list[tuple[int, int, int, F32]]  # (level, start, stop, weights of the slice)


def mip_plan(footprint_m: FloatArray, texel_m: float, num_levels: int) -> MipPlan:
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
    return MipPlan(groups)


def sample_texture(tex: Texture, plan: MipPlan, s: Floats, d: Floats) -> F32:
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
