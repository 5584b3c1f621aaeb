"""Settings of the ``lane_keep`` predictor."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


LANE_WIDTH_M = 3.66


class LaneKeepConfig(BaseModel):
    """Settings of the ``lane_keep`` predictor (lengths in metres on the ground, angles in radians)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames_used: int = Field(4, ge=1, le=16, description="frames at or before t0 pooled into the BEV")
    max_frame_age_s: float = Field(0.6, gt=0, le=1.5, description="oldest frame used (s before t0)")
    motion_compensation: bool = Field(True, description="align older frames with the ego history")
    work_width: int = Field(960, ge=160, description="frames wider than this are shrunk first")
    bev_far_m: float = Field(45.0, gt=10, le=120, description="farthest ground distance analysed")
    bev_half_width_m: float = Field(6.0, gt=2, le=15, description="BEV extent either side of the ego")
    bev_dx_m: float = Field(0.25, gt=0.02, le=2.0, description="BEV row spacing (forward)")
    bev_dy_m: float = Field(0.05, gt=0.01, le=0.5, description="BEV column spacing (lateral)")
    tophat_width_m: float = Field(0.6, gt=0.1, le=2.0, description="stripes narrower than this count as paint")
    min_contrast: float = Field(8.0, gt=0, description="least lightness top-hat (grey levels) of paint")
    min_yellow: float = Field(6.0, gt=0, description="least yellowness top-hat ((R+G)/2-B units) of paint")
    noise_factor: float = Field(3.0, gt=0, description="paint threshold in multiples of the median top-hat")
    search_min_m: float = Field(0.5, ge=0, description="an ego boundary lies at least this far from the ego")
    search_max_m: float = Field(3.8, gt=0.5, le=8, description="... and at most this far (near range)")
    seed_range_m: float = Field(25.0, gt=5, description="seeds: paint summed over this far from the nearest ground")
    seed_heading_rad: float = Field(0.04, ge=0, le=0.3, description="seeds: headings searched, ± this")
    seed_heading_step: float = Field(0.01, gt=0, description="seeds: heading spacing")
    seed_curvature: float = Field(0.012, ge=0, description="seeds: curvatures searched, ± this (1/m)")
    seed_curvature_step: float = Field(0.0006, gt=0, description="seeds: curvature spacing (1/m)")
    min_seed_m: float = Field(0.8, gt=0, description="least painted length (m) along a seed curve")
    max_start_m: float = Field(12.0, gt=0, description="a boundary must start within this of the nearest ground")
    seed_rel: float = Field(0.3, gt=0, le=1, description="seed: least strength relative to the side's strongest")
    window_m: float = Field(0.45, gt=0.05, le=2, description="half-width of the tracking window")
    position_sigma_m: float = Field(0.1, gt=0.01, le=1, description="line position: mean-shift kernel sigma")
    band_m: float = Field(3.0, gt=0.25, le=20, description="length of one tracking window along x")
    min_band_m: float = Field(0.5, gt=0, description="least painted length (m) for a window to count")
    min_fit_span_m: float = Field(6.0, gt=0, description="a boundary must be followed at least this far")
    lane_width_m: float = Field(LANE_WIDTH_M, gt=2.0, le=6.0, description="nominal lane width")
    min_lane_width_m: float = Field(2.4, gt=1.0, description="narrowest plausible measured lane")
    max_lane_width_m: float = Field(5.2, gt=2.0, description="widest plausible measured lane")
    max_curvature: float = Field(0.02, gt=0, le=0.5, description="bound on lane and path curvature (1/m)")
    max_heading_rad: float = Field(0.35, gt=0, lt=1.5, description="bound on the lane heading at the ego")
    curvature_shrink: float = Field(1.0, ge=0, description="shrink curvature towards 0 by this many std. errors")
    curvature_ridge: float = Field(1e-4, ge=0, description="ridge on the curvature term (per total weight)")
    lookahead_s: float = Field(1.2, gt=0, le=10, description="pure-pursuit lookahead time")
    min_lookahead_m: float = Field(8.0, gt=0.5, description="shortest pure-pursuit lookahead")
    speed_mps: float | None = Field(None, ge=0, le=80, description="speed to drive; None: EgoState.speed")
    fallback_fov_deg: float = Field(60.0, gt=10, lt=170, description="FOV of the fallback pinhole (no camera)")
    fallback_mount_height_m: float = Field(1.5, gt=0.3, le=5, description="its height above the road")
    fallback_pitch_deg: float = Field(2.0, gt=-30, lt=30, description="its pitch without a vanishing point")
    estimate_pose: bool = Field(True, description="fallback camera: pitch and yaw from the vanishing point")
    calibrate_height: bool = Field(True, description="fallback camera: scale height to the measured lane width")

    @model_validator(mode="after")
    def _check(self) -> LaneKeepConfig:
        if not self.search_min_m < self.search_max_m <= self.bev_half_width_m:
            raise ValueError(f"expected search_min_m < search_max_m <= bev_half_width_m, found "
                             f"{self.search_min_m}, {self.search_max_m}, {self.bev_half_width_m}")
        if not self.min_lane_width_m < self.lane_width_m < self.max_lane_width_m:
            raise ValueError(f"expected min_lane_width_m < lane_width_m < max_lane_width_m, found "
                             f"{self.min_lane_width_m}, {self.lane_width_m}, {self.max_lane_width_m}")
        return self
