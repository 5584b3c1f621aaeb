"""Ray-cast rendering of one sample frame: per-pixel ground geometry, the car ahead (boxes), the tree line,
ground colours, lane polylines, sensor grain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.errors import ConfigError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.sample.road import (
    CAR_GAP_M,
    CAR_MIN_GAP_M,
    CAR_OFFSET_M,
    CAR_SPEED_MPS,
    EGO_OFFSET_M,
    EGO_SPEED_MPS,
    GRAVEL_M,
    HAZE_M,
    LAYOUT,
    MAX_DURATION_S,
    PAVED_D,
    _LineSpec,
    cover,
    dash_integral,
    road_pose,
    world_to_ego,
    world_to_road,
)
from lanepipe.sample.texture import MipPlan, Texture, mip_plan, octaves, sample_texture
from lanepipe.sample.truth import LaneLine

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Floats = npt.NDArray[np.floating[Any]]  # float32 or float64
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


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
    plan_coarse: MipPlan
    plan_fine: MipPlan
    ray_az: FloatArray  # (H*W,) ego-frame azimuth of each pixel ray (rad)
    ray_tan_el: FloatArray  # (H*W,) tangent of the elevation of each ray
    band_idx: IntArray  # flat indices of pixels that may show the tree line
    sky_base: F32  # (H*W, 3) sky gradient
    vignette: F32  # (H, W, 1)


MAX_GROUND_M = 700.0

#: A camera the sample can render: a pinhole (ego frame under the camera) or an f-theta posed in the ego frame.
SceneCamera = PinholeCamera | FThetaCamera


def _height(cam: SceneCamera) -> float:
    """Height of the camera centre above the ground (a pinhole's ``mount_height_m``)."""
    return float(cam.centre_ego[2])
GRAIN_PAD = 64
TREE_DIST_M = (300.0, 650.0)
TREE_HEIGHT_MAX_M = 22.0


def geometry(cam: SceneCamera, coarse: Texture, fine: Texture) -> _Geometry:
    h, w = cam.height, cam.width
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = cam.pixel_rays_ego(uu, vv)
    horiz = np.hypot(rays[:, 0], rays[:, 1])
    tan_el = rays[:, 2] / horiz
    az = np.arctan2(rays[:, 1], rays[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(tan_el < 0, _height(cam) / -tan_el, np.inf)
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

    max_tan = (TREE_HEIGHT_MAX_M - _height(cam)) / TREE_DIST_M[0]
    min_tan = -_height(cam) / TREE_DIST_M[0]
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
                     plan_coarse=mip_plan(fp, coarse.texel_m, len(coarse.levels)),
                     plan_fine=mip_plan(fp, fine.texel_m, len(fine.levels) + 1), ray_az=az, ray_tan_el=tan_el,
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


def _render_car(cam: SceneCamera, car_pose_ego: tuple[float, float, float], paint: F32, sun_car: FloatArray,
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
def tree_profile(rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Tree-line distance and height as functions of world azimuth (4096 samples over 2 pi)."""
    n = 4096
    az = np.linspace(-math.pi, math.pi, n, endpoint=False)
    k = np.arange(1, 7)
    ph = rng.uniform(0, 2 * math.pi, size=(2, k.size))
    amp = 1.0 / k
    base_d = (np.sin(np.outer(az, k) + ph[0]) * amp).sum(axis=1)
    dist = np.interp(base_d, (base_d.min(), base_d.max()), TREE_DIST_M)
    crowns = octaves(rng, (1, n), (3, 9, 40, 200), (1.2, 1.6, 2.5, 4.0), wrap=True)[0]
    height = np.clip(9.0 + crowns, 0.0, TREE_HEIGHT_MAX_M - 0.5)
    return dist, height.astype(np.float64)


def check_args(num_frames: int, fps: float, width: int, height: int) -> None:
    if not (isinstance(num_frames, int) and num_frames >= 1):
        raise ConfigError(f"render_sample: num_frames should be an int >= 1 but is {num_frames!r}")
    if not fps > 0:
        raise ConfigError(f"render_sample: fps should be > 0 but is {fps!r}")
    if num_frames / fps > MAX_DURATION_S:
        raise ConfigError(f"render_sample: the clip should last at most {MAX_DURATION_S} s (the road's curve "
                          f"turns back after that) but num_frames / fps = {num_frames / fps:.1f} s")
    if not (isinstance(width, int) and isinstance(height, int) and width >= 32 and height >= 32):
        raise ConfigError(f"render_sample: width and height should be ints >= 32 but are {width!r}, {height!r}")


def ego_poses(num_frames: int, fps: float) -> FloatArray:
    t = np.arange(num_frames) / fps
    s = EGO_SPEED_MPS * t
    x, y, yaw = road_pose(s, np.full_like(s, EGO_OFFSET_M))
    return np.stack([x, y, yaw, np.full_like(s, EGO_SPEED_MPS)], axis=1)


def car_poses(num_frames: int, fps: float) -> FloatArray:
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


def lane_lines(cam: SceneCamera, ego_pose: FloatArray,
               layout: tuple[_LineSpec, ...] = LAYOUT) -> list[LaneLine]:
    """Lane lines of ``layout`` projected from the ego pose ``(4,)``, from the ego to 150 m ahead."""
    s_ego, _, _ = world_to_road(ego_pose[:1], ego_pose[1:2])
    s = s_ego[0] + _LANE_STEPS_M
    out = []
    for spec in layout:
        wx, wy, _ = road_pose(s, np.full_like(s, spec.offset_m))
        ex, ey = world_to_ego(wx, wy, ego_pose)
        pix, ok = cam.project(np.stack([ex, ey, np.zeros_like(ex)], axis=1))
        out.append(LaneLine(id=spec.id, side=spec.side, color=spec.color, pattern=spec.pattern,
                            count=spec.count, points=_clip_to_image(pix, ok, cam.width, cam.height),
                            offset_m=spec.offset_m))
    return out


@dataclass(frozen=True)
class Scene:
    """Everything a frame needs, built once per clip."""

    cam: SceneCamera
    geo: _Geometry
    coarse: Texture
    fine: Texture
    tree_dist: FloatArray  # (A,) tree-line distance (m) by world azimuth bin
    tree_height: FloatArray  # (A,) tree-line height (m)
    paint: F32  # (3,) car body colour
    sun: FloatArray  # (3,) unit vector towards the sun, world frame
    grain: F32  # (H + GRAIN_PAD, W + GRAIN_PAD, 1) sensor noise; each frame uses a window of it
    layout: tuple[_LineSpec, ...] = LAYOUT  # the painted lines


def _render_ground(sc: Scene, pose: FloatArray, car: FloatArray) -> tuple[F32, BoolArray]:
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
    detail = sample_texture(sc.coarse, geo.plan_coarse, s, d)
    detail += sample_texture(sc.fine, geo.plan_fine, s, d)
    w_paved = cover(d, half_d, *PAVED_D)
    w_gravel = (cover(d, half_d, PAVED_D[0] - GRAVEL_M, PAVED_D[0])
                + cover(d, half_d, PAVED_D[1], PAVED_D[1] + GRAVEL_M))
    w_grass = 1.0 - w_paved - w_gravel
    grass_mix = np.clip(0.5 + detail[:, 2:3], 0.0, 1.0)
    grass = (_GRASS_A + (_GRASS_B - _GRASS_A) * grass_mix) * (1.0 + 0.5 * detail[:, 2:3])
    col = w_paved[:, None] * (_ASPHALT * (1.0 + detail[:, 0:1]))
    col += w_gravel[:, None] * (_GRAVEL * (1.0 + detail[:, 1:2]))
    col += w_grass[:, None] * grass
    # markings: only the pixels whose footprint reaches a stripe
    for spec in sc.layout:
        paint_col = _WHITE if spec.color == "white" else _YELLOW
        for k, (centre, width_m) in enumerate(spec.stripes()):
            near = np.flatnonzero(np.abs(d - np.float32(centre)) < half_d + np.float32(width_m / 2))
            if near.size == 0:
                continue
            cov = cover(d[near], half_d[near], centre - width_m / 2, centre + width_m / 2)
            if spec.stripe_pattern(k) == "dashed":
                hs, sn = half_s[near].astype(np.float64), s[near].astype(np.float64)
                painted = (dash_integral(sn + hs) - dash_integral(sn - hs)) / (2 * hs)
                cov *= np.clip(painted, 0.0, 1.0).astype(np.float32)
            wear = detail[near, 0:1]
            cov2 = cov[:, None] * np.clip(0.9 + 1.5 * wear, 0.6, 1.0)  # worn paint
            col[near] = col[near] * (1.0 - cov2) + paint_col * (1.0 + wear) * cov2
    # the car's soft shadow, directly under it and shifted away from the sun
    cex, cey = world_to_ego(car[0:1], car[1:2], pose)
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


def render_frame(sc: Scene, pose: FloatArray, car: FloatArray, grain_seed: int,
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
    z_hit = _height(cam) + td * geo.ray_tan_el[b]
    tree = (z_hit >= 0.0) & (z_hit <= th)
    trans = np.exp(-td[tree] / HAZE_M).astype(np.float32)[:, None]
    shade = (0.8 + 0.35 * (z_hit[tree] / np.maximum(th[tree], 1e-3))).astype(np.float32)[:, None]
    img[b[tree]] = _TREES * shade * trans + _HAZE * (1 - trans)
    road[b[tree]] = False
    # the car ahead
    vehicle = np.zeros(h * w, dtype=bool)
    cex, cey = world_to_ego(car[0:1], car[1:2], pose)
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
