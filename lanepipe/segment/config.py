"""Settings of the segment backends (light: pydantic only): ``segment.grid`` and ``segment.sam2``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HoodConfig(_Strict):
    """Detection of the ego vehicle's hood at the bottom of a clip (:mod:`lanepipe.segment.hood`), cut from the mask.

    Pixel sizes are at ``work_width``.
    """

    enabled: bool = Field(True, description="detect the hood and cut it from the road mask")
    work_width: int = Field(320, ge=64, description="frames are analysed at this width")
    max_frames: int = Field(24, ge=2, description="at most this many frames, spread over the clip, are compared")
    min_frames: int = Field(
        12, ge=2, description="fewer frames (1.5 s at 8 fps) show too little motion to tell hood from road: no hood "
        "is reported (with 4-8 frames static-looking road was taken for hood up to 45 % of the frame high)")
    patch: int = Field(5, ge=3, description="side of the patches compared across frames")
    min_correlation: float = Field(
        0.55, gt=0, lt=1, description="mean patch correlation across frames of a static (hood) pixel")
    flat_std: float = Field(
        2.0, ge=0, description="a patch flatter than this (grey levels) in every frame, steady, is static")
    min_contrast: float = Field(
        0.2, gt=0, le=1, description="staticness below the hood's edge minus above it (correlation units)")
    min_static_below: float = Field(
        0.6, gt=0, le=1, description="fraction of static pixels between the hood's edge and the bottom row")
    max_height: float = Field(0.35, gt=0, lt=1, description="largest hood height, as a fraction of the frame")
    edge_rows: int = Field(4, ge=1, description="rows above and below the edge compared for staticness")
    min_edge: float = Field(
        24.0, gt=0, description="clip-mean vertical Sobel response of the hood's edge (grey levels x 4)")
    min_consistency: float = Field(
        0.5, gt=0, le=1, description="|mean Gy| / mean |G| at the hood's edge (1 = the same edge in every frame)")
    min_coverage: float = Field(0.5, gt=0, le=1, description="fraction of the width the hood's edge must span")
    max_spread: float = Field(
        0.12, gt=0, le=1, description="a hood's top row varies across its width by at most this fraction of the "
        "frame height (a bonnet curves gently; on the camera-B clips it spans 0.04-0.07); more: no hood")
    margin: float = Field(
        1.0, ge=0, description="frame pixels above the edge cut with the hood (its blurred rim), at full size")


class GridConfig(_Strict):
    """Classical road segmentation seeded by the 9-point grid (embedded default).

    Pixel sizes are at the work width; colours are OpenCV 8-bit Lab units (L, a, b in [0, 255]).
    """

    work_width: int = Field(320, ge=64, description="frames are segmented at this width, masks upsampled")
    color_tolerance: float = Field(3.0, gt=0, description="Mahalanobis distance accepted as road colour")
    shadow_ratio: float = Field(
        0.4, gt=0, lt=1, description="darkest accepted lightness (shadows), as a fraction of the road's"
    )
    loose_chroma: float = Field(
        6.0, ge=0, description="other paving: chroma distance to a road model (0 = off)"
    )
    loose_dark: float = Field(0.75, gt=0, le=1, description="other paving: darkest lightness, times the road's")
    loose_bright: float = Field(1.5, ge=1, description="other paving: brightest lightness, times the road's")
    loose_texture: float = Field(5.0, gt=0, description="other paving: largest local std of lightness (3x3)")
    model_min_frames: int = Field(
        3, ge=1, description="a colour model seen in this many frames is used in every frame of the clip"
    )
    horizon_margin: float = Field(
        0.0, ge=-0.2, le=0.5, description="fraction of height kept above the estimated horizon"
    )
    fallback_horizon: float = Field(
        0.5, ge=0, le=1, description="horizon row (fraction of height) when no vanishing point is found"
    )
    wedge_slope: float = Field(
        6.0, gt=0, description="road half-width allowed per row below the vanishing point (px per px)"
    )
    vp_radius: int = Field(4, ge=0, description="vanishing point median-filtered over ±this many frames")
    temporal_radius: int = Field(2, ge=0, description="masks voted over ±this many frames (0 = off)")
    close_px: int = Field(9, ge=1, description="closing kernel (fills lane markings into the road)")
    grow_px: int = Field(2, ge=0, description="final dilation (edge lines on the road's border)")
    hole_fill: float = Field(
        0.004, ge=0, le=1, description="holes smaller than this fraction of the frame are filled"
    )
    hood: HoodConfig = Field(default_factory=HoodConfig)


class Sam2Config(_Strict):
    """SAM2 / SAM2.1 video predictor."""

    hood: HoodConfig = Field(default_factory=HoodConfig)

    preset: Literal["none", "tiny-random", "random-init"] = Field(
        "none", description="'none': load checkpoint; 'tiny-random': Hiera-T at 256 px, random weights (CPU tests); "
        "'random-init': model_cfg (Hiera-L) at full size with random weights built on the device (GPU timing; "
        "meaningless masks)")
    model_cfg: str = Field("configs/sam2.1/sam2.1_hiera_l.yaml", description="sam2 config name")
    checkpoint: str | None = Field(None, description="local .pt checkpoint path")
    device: str = "auto"
    reprompt_every: int = Field(0, ge=0, description="re-add the 9 points every N frames (0 = first only)")
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="compute dtype: 'auto' = bfloat16 autocast on CUDA (as upstream runs it), float32 on CPU")
    vos_optimized: bool | Literal["auto"] = Field(
        False,
        description="sam2's SAM2VideoPredictorVOS: torch.compile of its modules; the first clip compiles "
        "for minutes (about 2.5 min on 2 CPU cores for the tiny preset; on an H200 the Hiera-L predictor was "
        "still autotuning after 170 s, never timed to the end), later ones may run faster on GPU; 'auto': on "
        "for CUDA, off elsewhere. Off by default until its speed-up is measured",
    )
    encode_batch: int = Field(
        8, ge=1, le=256, description="frames whose image features (Hiera backbone + FPN) are computed in one batch "
        "ahead of tracking (sam2 encodes one frame per step); 1 = sam2's own per-frame path. Ignored with "
        "vos_optimized (its compiled encoder has a fixed batch of 1). Same masks as 1 up to float rounding")
    compile_cache_dir: str | None = Field(
        None, description="on-disk torch.compile cache for vos_optimized, shared by worker processes: None = "
        "$TORCHINDUCTOR_CACHE_DIR when set, else ~/.cache/lanepipe/inductor; 'off' = torch's default")
