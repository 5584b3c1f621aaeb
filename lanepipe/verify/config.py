"""Settings of the verify backends (light: pydantic only): ``verify.lane_detector`` and ``verify.qwen_vl``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


class LaneDetectorConfig(BaseModel):
    """Settings of the classical lane-attribute detector (``verify.lane_detector``).

    Pixel sizes are at ``work_width``; colours are OpenCV 8-bit Lab units (L, a, b in [0, 255]).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    work_width: int = Field(640, ge=160, le=1920, description="frames are analysed at this width")
    max_frames: int = Field(16, ge=1, description="at most this many frames per clip, evenly spread")
    camera_height_m: float = Field(1.4, gt=0.3, le=5.0, description="assumed camera height above the road")
    tophat_width: float = Field(0.035, gt=0.0, le=0.3, description="top-hat square, fraction of work_width")
    min_contrast: float = Field(9.0, gt=0.0, description="least paint lightness above the local pavement")
    noise_factor: float = Field(4.0, gt=0.0, description="paint threshold in multiples of the top-hat median")
    yellow_b: float = Field(12.0, gt=0.0, description="paint b* above pavement b* that makes a line yellow")
    dim_paint_l: float = Field(
        128.0, gt=0.0, le=255.0,
        description="paint lightness (8-bit L) below which a line is dimly lit (night, deep shade): its chroma is weak",
    )
    dim_double_yellow_b: float = Field(
        3.0, gt=0.0, description="a dimly lit double line whose paint b* is this far above the pavement's is yellow "
                                 "(MUTCD 2009 3A.05, 3B.01: double lines are yellow centre lines, but for the rarer "
                                 "double white lane line)",
    )
    solid_coverage: float = Field(0.62, gt=0.0, lt=1.0, description="painted share of length above = solid")
    min_coverage: float = Field(0.2, ge=0.0, lt=1.0, description="painted share below which no line is seen")
    max_width_m: float = Field(0.45, gt=0.0, description="widest accepted line (half-maximum width, metres)")
    min_lateral_m: float = Field(0.35, ge=0.0, description="ego boundaries lie at least this far from the camera")
    max_lateral_m: float = Field(3.8, gt=0.0, description="... and at most this far (metres on the ground)")
    double_min_gap_m: float = Field(0.12, gt=0.0, description="least centre spacing of a double line")
    double_max_gap_m: float = Field(0.6, gt=0.0, description="largest centre spacing of a double line")
    far_limit: float = Field(0.14, gt=0.02, lt=0.8, description="farthest row used, fraction of the road height")
    pattern_far_limit: float = Field(
        0.25, gt=0.02, lt=0.8, description="farthest row used for coverage (dash gaps must stay resolved)"
    )
    min_frame_share: float = Field(0.34, ge=0.0, le=1.0, description="share of frames that must see a line")
    double_resolve_px: float = Field(
        4.0, gt=0.0, description="a double's lines count as resolved in rows where their spacing spans this many px"
    )
    passing_max_gap_m: float = Field(
        0.4, gt=0.0, description="largest centre spacing of a passing zone's dashed line from the solid one"
    )
    passing_min_presence: float = Field(
        0.12, gt=0.0, lt=1.0, description="least share of resolved rows with paint at a passing zone's dashed line"
    )
    stroke_resolve_px: float = Field(
        2.5, gt=0.0, description="input rows where a double's 0.10 m space spans this many px are read stroke by "
                                 "stroke (MUTCD 3A.06: the space is about one 4 in line width)",
    )
    stroke_min_rows: int = Field(12, ge=4, description="fewer such rows: the work-resolution reading stands")
    stroke_min_presence: float = Field(
        0.08, gt=0.0, lt=1.0, description="least share of those rows painted at a stroke's centre (a dashed stroke "
                                          "is painted over about a quarter of its length, MUTCD 3A.06 10/30 ft)",
    )
    stroke_together: float = Field(
        0.6, gt=0.0, lt=1.0, description="a double's line painted in fewer of the other line's rows is broken "
                                         "(a passing zone's 10 ft dashes with 30 ft gaps: about a quarter)",
    )
    stroke_yellow_share: float = Field(
        0.5, gt=0.0, lt=1.0, description="a yellow double's weaker line is at least this share as yellow (b* above "
                                         "the pavement) as the other"
    )
    stroke_valley: float = Field(
        0.65, gt=0.0, lt=1.0, description="the profile between two strokes dips to at most this share of the weaker"
    )
    passing_min_frame_share: float = Field(
        0.25, gt=0.0, le=1.0,
        description="share of frames showing a passing zone's pair that makes a solid yellow line one (dashes "
                    "come and go in the near range where the pair is resolved)",
    )


#: Values the ``tiny-random`` preset uses for every field the caller did not set (small images, short answers).
TINY_JUDGE_DEFAULTS: dict[str, Any] = {"device": "cpu", "dtype": "float32", "max_new_tokens": 24,
                                       "min_pixels": 56 * 56, "max_pixels": 112 * 112}


class QwenJudgeConfig(BaseModel):
    """Settings of the Qwen2.5-VL judge.

    Attributes:
        preset: ``"tiny-random"`` builds a tiny random model in memory (``model`` is ignored; unset fields take
            :data:`TINY_JUDGE_DEFAULTS`); ``"random-init"`` builds Qwen2.5-VL-7B's published architecture with
            random weights on the device (GPU timing, meaningless verdicts); ``"none"`` loads ``model``.
        model: local folder or hub id (must already be in the local cache) of a Qwen2.5-VL checkpoint.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: weights dtype; ``"auto"`` = bfloat16 on CUDA, float32 on CPU.
        temperature: sampling temperature; 0 = greedy decoding.
        max_new_tokens: cap on the generated answer.
        seed: seeds sampling per call (and the tiny model's weights); None = not seeded.
        min_pixels / max_pixels: bounds on the pixel count each image is resized to (multiples of 28 px
            sides); they set how many visual tokens each image costs.
        local_files_only: never reach the hub when loading ``model``.
        kv_cache: ``"static"`` pre-allocates the KV cache so transformers compiles the decoding step (the first
            call pays the compile; measured on an H200 at full size: 7.0 vs 22.7 ms per token, BENCHMARKS.md);
            ``"auto"`` = static on CUDA, dynamic on CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["none", "tiny-random", "random-init"] = "none"
    model: str = DEFAULT_MODEL
    device: str = Field("auto", description="'auto' (cuda when present, else cpu), 'cpu', 'cuda:1', ... "
                        "(e.g. the judge on a second GPU beside the edit models)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    max_new_tokens: int = Field(256, ge=1, le=4096)
    seed: int | None = 0
    min_pixels: int = Field(56 * 56, ge=28 * 28)
    max_pixels: int = Field(1280 * 28 * 28, ge=28 * 28)
    local_files_only: bool = True
    kv_cache: Literal["auto", "dynamic", "static"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _tiny_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") == "tiny-random":
            return {**TINY_JUDGE_DEFAULTS, **data}
        return data

    @model_validator(mode="after")
    def _pixels_ordered(self) -> QwenJudgeConfig:
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) must be <= max_pixels ({self.max_pixels})")
        return self


class EditCheckConfig(BaseModel):
    """Thresholds of the QA checks of an edit against its original (``edit.qa.checks``;
    :mod:`lanepipe.verify.edit_checks`).

    The checks work in a rectified near-range view of the road: image rows from the bottom of the road up to
    ``far_limit`` of the way to the vanishing point, resampled at fixed lateral steps on the ground (metres at the
    assumed ``camera_height_m``), so that a straight boundary is a column band whatever its distance. Lightness
    and b* are OpenCV 8-bit Lab units; shares are in [0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="run the checks after the verifier (false: the verifier alone decides)")
    camera_height_m: float = Field(1.4, gt=0.3, le=5.0, description="assumed camera height above the road")
    far_limit: float = Field(
        0.4, gt=0.05, lt=0.95,
        description="farthest row checked: this fraction of the road height (vanishing point to bottom) below the "
                    "vanishing point, i.e. up to 1 / far_limit times the nearest visible distance (0.4: 2.5x)")
    lateral_range_m: float = Field(6.0, gt=1.0, le=20.0, description="checked ground half-width about the camera")
    lateral_step_m: float = Field(0.04, gt=0.005, le=0.2, description="lateral ground sampling step")
    paint_width_m: float = Field(0.5, gt=0.1, le=2.0,
                                 description="top-hat width: structures narrower than this can be paint (a double "
                                             "line is 2 x 6 in lines 4 in apart, MUTCD 2009 §3A.06: 0.41 m)")
    paint_min_contrast: float = Field(9.0, gt=0.0, description="least lightness (or 2 x b*) top-hat of paint")
    dark_contrast_share: float = Field(0.5, gt=0.0, le=1.0, description="in a dark frame the least top-hat of paint "
                                       "is at most this share of the road's median lightness (night, tunnels: paint "
                                       "twice as light as the pavement is paint); no effect on a road lighter than "
                                       "paint_min_contrast / this share")
    noise_factor: float = Field(4.0, gt=0.0, description="paint threshold in multiples of the road's median top-hat")
    # a car is 1.6-2.0 m wide: with the camera on its centre line, a boundary nearer than 0.6 m lies under the
    # car (mid lane change, no ego lane to speak of); a band that near is a seam or a crack in the lane
    min_lateral_m: float = Field(0.6, ge=0.0, description="ego boundaries lie at least this far from the camera")
    max_lateral_m: float = Field(3.8, gt=0.0, description="... and at most this far")
    min_occupancy: float = Field(0.1, gt=0.0, lt=1.0,
                                 description="a boundary is located where the share of a ground column's road "
                                             "samples that are paint peaks at least this far above the median "
                                             "column's (dashes cover 0.25 of the ground)")
    max_band_m: float = Field(1.0, gt=0.1, le=3.0, description="a wider paint band is no line (shoulder, barrier)")
    merge_gap_m: float = Field(0.3, ge=0.0, le=1.0,
                               description="paint columns this close form one boundary (the lines of a double)")
    corridor_margin_m: float = Field(0.3, ge=0.0, le=1.5, description="a boundary's corridor: its paint +- this")
    double_gap_m: float = Field(0.15, gt=0.0, le=0.6,
                                description="largest gap between the two lines of a double in one frame (a 4 in "
                                            "space, MUTCD 2009 §3A.06, plus blur)")
    remnant_strength: float = Field(
        0.5, gt=0.0, le=1.0,
        description="after a removal, old paint still standing out from the pavement by this share of its old "
                    "strength is a remnant (a texture fill's faint lit strips are not)")
    remnant_margin_m: float = Field(0.1, ge=0.0, le=1.0,
                                    description="old paint of a boundary: its original paint band +- this")
    change_tol: float = Field(8.0, gt=0.0, description="a sample changed: lightness (or 2 x b*) moved more than this")
    untouched_tol: float = Field(1.5, ge=0.0,
                                 description="a sample untouched: lightness and b* moved at most this much")
    min_px: int = Field(25, ge=1, description="least samples in a frame for a per-frame measure to count")
    unnamed_max_changed: float = Field(
        0.1, ge=0.0, le=1.0, description="largest share of an unnamed boundary's paint samples changed in a frame")
    remnant_max: float = Field(
        0.15, ge=0.0, le=1.0,
        description="largest share, in any frame, of the named boundary's old paint left untouched (a removal: "
                    "still paint; a colour change: still of the old colour)")
    remnant_near_share: float = Field(
        0.02, ge=0.0, le=1.0,
        description="the remnant share is also measured on its own over the rows of the road view nearest the hood "
                    "(or the frame's bottom), this share of the frame height")
    remnant_near_min_px: int = Field(8, ge=1, description="least old paint samples in those near rows to count")
    yellow_b: float = Field(12.0, gt=0.0, description="paint b* above the pavement's that makes a sample yellow")
    stripe_tol: float = Field(6.0, gt=0.0,
                              description="a changed sample is new paint when it differs from the pavement by more")
    white_min_contrast: float = Field(10.0, gt=0.0,
                                      description="least median lightness of new white paint above the pavement")
    yellow_min_b: float = Field(12.0, gt=0.0, description="least median b* of new yellow paint above the pavement")
    yellow_hue_deg: tuple[float, float] = Field(
        (60.0, 110.0),
        description="accepted Lab hue angle atan2(b*, a*) of new yellow paint, degrees (yellow road paint: "
                    "about 75-95; orange below 60, lime above 110)")
    pave_window_m: float = Field(1.0, gt=0.1, le=3.0, description="pavement reference: the corridor +- this")
    outside_tol: int = Field(12, ge=0, le=255, description="a full-resolution pixel changed: an RGB channel moved more")
    outside_max_share: float = Field(
        0.0005, ge=0.0, le=1.0, description="largest share of a frame's pixels outside the road mask changed")
    mask_grow_px: int = Field(2, ge=0, description="the road mask is grown by this many pixels before that test")
    paint_kernel: float = Field(
        0.06, gt=0.0, le=0.3,
        description="off the mask, paint stands out of a horizontal opening this share of the width wide (a near "
                    "line of 0.15-0.3 m is under 0.04 of a dashcam frame's width)")
    paint_border_px: int = Field(3, ge=0, description="erased paint's blurred border: paint grown by this many pixels")
    hood_max_share: float = Field(0.002, ge=0.0, le=1.0,
                                  description="largest share of the hood's pixels changed in a frame")
    seam_share: float = Field(
        0.006, ge=0.0, le=0.05,
        description="the hood's blurred rim: rows below its first row, a share of the height (>= 3 rows); an old "
                    "line's last piece straddles it. There a change that leaves a pixel less paint-like is no "
                    "change of the hood, and old paint left is a remnant")
    seam_b: float = Field(12.0, gt=0.0,
                          description="a rim pixel is yellow paint: Lab b* above the hood below it by more")
    rim_remnant_max: float = Field(
        0.5, ge=0.0, le=1.0,
        description="largest share, in any frame, of the old paint on the hood's rim still paint: the rim is a few "
                    "rows of blurred pixels, a faint tint left on part of it is no fleck; most of it left is")
    hood_static_ratio: float = Field(
        0.3, gt=0.0, lt=1.0,
        description="bottom rows whose change over time is below this share of the road's are the hood")
    hood_static_ratio_loose: float = Field(
        0.6, gt=0.0, lt=1.0,
        description="the same, where the lane detector saw a hood edge but the strict test found no hood "
                    "(reflections of the sky move on the hood); the hood then starts no higher than that edge")
    erase_band_m: float = Field(0.25, gt=0.0, le=2.0,
                                description="changes must lie within this distance of old or new paint")
    erase_max_outside: float = Field(
        0.1, ge=0.0, le=1.0, description="largest share of a frame's changed samples outside that band")
