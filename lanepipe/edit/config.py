"""Settings of the edit backends (light: pydantic only, no torch, no OpenCV): ``edit.procedural``,
``edit.generative`` and the accelerator switches of its diffusion transformers."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lanepipe.lanes.instructions import MarkingSizes
from lanepipe.verify.config import EditCheckConfig

#: Standard lane width (12 ft) assumed when no line is seen.
LANE_WIDTH_M = 3.66

_INSTALL_HINT = "pip install 'lanepipe[generative]'"


class AccelConfig(BaseModel):
    """Speed-up switches for one diffusion transformer (all off by default: the stock pipeline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attention: Literal["auto", "flash", "cudnn", "efficient", "math"] = Field(
        "auto", description="scaled-dot-product-attention kernel: auto | flash | cudnn | efficient | math")
    fuse_qkv: bool = Field(False, description="fuse the query/key/value projections into one GEMM")
    compile: Literal["auto", "none", "blocks"] = Field(
        "auto", description="torch.compile each repeated block ('blocks'); 'auto': blocks on CUDA, none elsewhere")
    fp8_linear: bool = Field(False, description="fp8 e4m3 GEMMs with row-wise scales in the blocks (Hopper/Ada)")
    quant_attention: Literal["none", "int8", "int8-fp8", "fp8"] = Field(
        "none", description="8-bit attention in the CogVideoX transformer's blocks only (lanepipe.edit.qattn, "
        "SageAttention-style): 'int8' Q·K with fp16 P·V, 'int8-fp8' with fp8 P·V, 'fp8' both in fp8 e4m3; a Triton "
        "kernel on CUDA, the PyTorch reference on CPU; 'none': PyTorch's attention")

    compile_cache_dir: str | None = Field(
        None, description="inductor's on-disk compile cache, shared by every worker process that points at it "
        "(a later worker loads the compiled blocks instead of compiling them): None = $TORCHINDUCTOR_CACHE_DIR when "
        "set, else ~/.cache/lanepipe/inductor; 'off' = leave torch's default (a per-user temp folder)")
    cache: Literal["none", "faster", "pab", "taylorseer"] = Field(
        "none", description="CogVideoX only (video_accel): reuse attention/block outputs across denoising steps: "
        "'faster' (FasterCache), 'pab' (pyramid attention broadcast), 'taylorseer' (TaylorSeer, whole blocks); "
        "changes the pictures: check with benchmarks/quality_check.py")
    cache_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="cache='taylorseer': dtype of the stored Taylor factors (two per block output); "
        "'bfloat16' halves them (~18 GB less for CogVideoX-5B, 49 frames 720x480 with CFG: what lets the whole "
        "stack fit an 80 GB card), at a rounding cost not measured on real weights")
    cfg_truncation: float = Field(
        1.0, gt=0.0, le=1.0, description="CogVideoX only (video_accel): fraction of the denoising steps run with "
        "classifier-free guidance; later steps drop the unconditional branch (batch 1). 1.0 = CFG on every step")


class ParallelConfig(BaseModel):
    """One clip across several processes (``edit.generative.parallel``; :mod:`lanepipe.edit.generative.parallel`):
    ``cfg`` x ``ulysses`` ranks, one Ray actor each, run CogVideoX propagation together (default 1 x 1: off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cfg: Literal[1, 2] = Field(1, description="2: the conditional and unconditional CFG branches on two rank groups")
    ulysses: int = Field(1, ge=1, le=64, description="ranks per CFG branch splitting CogVideoX's sequence "
                         "(Ulysses attention; must divide the transformer's attention heads, 48 for CogVideoX-5B)")
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="torch.distributed backend: 'auto' = nccl on CUDA, gloo on CPU")
    worker_cpus: float = Field(1.0, ge=0.0, le=64.0, description="CPUs each rank's Ray actor reserves")
    timeout_s: float = Field(600.0, gt=0.0, description="torch.distributed timeout of one collective (seconds)")

    @property
    def world(self) -> int:
        """Ranks in the group (``cfg * ulysses``); 1 = no group."""
        return self.cfg * self.ulysses


class ProceduralConfig(BaseModel):
    """Settings of the procedural painter (lengths in metres on the ground unless named ``_px``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sizes: MarkingSizes = Field(default_factory=MarkingSizes, description="line width, dash, gap, double spacing")
    fov_deg: float = Field(60.0, gt=10, lt=170, description="fallback horizontal field of view (no clip camera)")
    mount_height_m: float = Field(1.5, gt=0.3, le=5.0, description="fallback camera height above the road")
    pitch_deg: float = Field(2.0, gt=-30, lt=30, description="fallback pitch when no vanishing point is found")
    estimate_pose: bool = Field(True, description="fallback camera: pitch and yaw from the lines' vanishing point")
    calibrate_height: bool = Field(True, description="fallback camera: scale the height to the measured lane width")
    lane_width_m: float = Field(LANE_WIDTH_M, gt=2.0, le=6.0, description="ego lane width assumed / calibrated to")
    work_width: int = Field(640, ge=160, description="analysis width in pixels (frames are never upscaled)")
    max_range_m: float = Field(90.0, gt=10, description="farthest ground distance painted")
    bev_range_m: float = Field(45.0, gt=10, description="farthest ground distance used to find lines")
    line_search_m: float = Field(3.6, gt=1.0, description="a boundary is searched up to this far from the camera")
    paint_bright_thr: float = Field(14.0, gt=0, description="paint: grey levels above the local road (0-255)")
    paint_yellow_thr: float = Field(5.0, gt=0, description="paint: yellowness above the local road (~Lab b units)")
    erase_half_width_m: float = Field(0.45, gt=0, description="erase corridor half-width around a found line")
    erase_half_width_assumed_m: float = Field(0.8, gt=0, description="same around an assumed line position")
    temporal_radius: int = Field(2, ge=0, description="geometry median over ±frames")
    temporal_sigma: float = Field(1.5, ge=0, description="geometry Gaussian smoothing (frames)")
    speed_from_image: bool = Field(True, description="estimate ego speed from BEV image motion when not given")
    default_speed_mps: float = Field(25.0, ge=0, description="ego speed when neither given nor measurable")
    max_speed_mps: float = Field(50.0, gt=0, description="fastest ego speed searched for in image motion")
    wear: float = Field(0.22, ge=0, le=1, description="paint wear: largest fraction of coverage lost")
    blur_px: float = Field(0.9, ge=0, le=5, description="image blur (Gaussian sigma) at 720 rows; scales with height")
    texture_gain: float = Field(0.6, ge=0, le=1.5, description="asphalt grain kept on the paint")
    min_line_coverage: float = Field(0.25, gt=0, le=1, description="least fraction of a line's near path in the road")
    min_double_road_width_m: float = Field(
        5.0, gt=0, description="a double line needs a road (mask) at least this wide around the ego lane")
    polyline_step_px: int = Field(10, ge=1, description="row spacing of the lane polylines (TuSimple-style)")
    seed: int = Field(0, description="seed of the wear texture")
    threads: int = Field(2, ge=1, le=64, description="worker threads over frames")


#: Values the ``tiny-random`` preset uses for every field the caller did not set.
TINY_DEFAULTS: dict[str, Any] = {
    "width": 64, "height": 48, "num_frames": 9, "flux_steps": 2, "video_steps": 2, "max_sequence_length": 16,
    "video_max_sequence_length": 16, "mask_dilate_px": 2, "mask_feather_px": 1, "flux_device": "cpu",
    "video_device": "cpu", "dtype": "float32", "vae_slicing": False, "vae_tiling": False,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ============================================================================================== configuration
class GenerativeConfig(BaseModel):
    """Settings of the FLUX.1 Fill → CogVideoX-I2V painter (pixel sizes at the models' ``width x height``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["none", "tiny-random", "random-init"] = Field(
        "none", description="'tiny-random': tiny seeded random models built in memory (tests); 'random-init': the "
        "published full-size architectures with random weights built on the device (GPU timing, meaningless "
        "pictures); 'none': load models")
    flux_model: str = Field("black-forest-labs/FLUX.1-Fill-dev", description="FLUX.1 Fill: local folder or hub id")
    cogvideox_model: str = Field("THUDM/CogVideoX-5b-I2V", description="CogVideoX I2V: local folder or hub id")
    lora_path: str | None = Field(None, description="optional FLUX LoRA, a .safetensors file")
    lora_scale: float = Field(1.0, ge=0.0, le=4.0, description="LoRA adapter weight")
    mask_dilate_px: int = Field(24, ge=0, le=256, description="road mask dilation before repainting")
    mask_feather_px: int = Field(8, ge=0, le=128, description="soft edge of the compositing mask")
    keep_unmasked: bool = Field(True, description="keep the original pixels outside the road mask")
    flux_steps: int = Field(50, ge=1, le=500, description="FLUX denoising steps")
    flux_guidance: float = Field(30.0, ge=0.0, le=100.0, description="FLUX (distilled) guidance scale")
    max_sequence_length: int = Field(512, ge=1, le=512, description="FLUX T5 prompt tokens")
    video_steps: int = Field(50, ge=1, le=500, description="CogVideoX denoising steps")
    video_guidance: float = Field(6.0, ge=0.0, le=50.0, description="CogVideoX classifier-free guidance scale")
    video_max_sequence_length: int = Field(226, ge=1, le=512, description="CogVideoX T5 prompt tokens")
    width: int = Field(720, ge=16, le=4096, description="model frame width (multiple of 16)")
    height: int = Field(480, ge=16, le=4096, description="model frame height (multiple of 16)")
    num_frames: int = Field(49, ge=9, le=257, description="frames per CogVideoX window (8k + 1)")
    fps: int = Field(8, ge=1, le=120, description="the video model's native frame rate (reported)")
    flux_device: str = Field("auto", description="'auto' (cuda when present, else cpu), 'cpu', 'cuda:0', …")
    video_device: str = Field("auto", description="'auto' (cuda when present, else cpu), 'cpu', 'cuda:1', …")
    cpu_offload: bool = Field(False, description="diffusers model CPU offload (saves GPU memory, slower)")
    vae_slicing: bool = Field(True, description="decode latents one at a time")
    vae_tiling: bool = Field(True, description="decode latents in tiles")
    seed: int = Field(0, description="seed of the noise (and of the tiny-random weights)")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="'auto': bfloat16 on CUDA, float32 on CPU")
    accel: AccelConfig = Field(default_factory=AccelConfig, description="speed-ups of the FLUX transformer")
    video_accel: AccelConfig = Field(default_factory=AccelConfig,
                                     description="speed-ups of the CogVideoX transformer")
    latent_blend: bool = Field(True, description="outside the mask, latents follow the source video while "
                               "denoising (mask-aware latent blending in CogVideoX)")
    branch: str | None = Field(
        None, description="VideoPainter context-encoder branch (dual-branch propagation): a local folder in the "
        "published layout (config.json + diffusion_pytorch_model.safetensors, e.g. VideoPainter's "
        "checkpoints/branch), 'tiny-random' (sized from the video backbone, seeded random weights) or "
        "'random-init' (the published full-size layout, seeded random weights); None: latent blending only")
    branch_scale: float = Field(1.0, ge=0.0, le=4.0, description="scale of the branch's features added to the "
                                "backbone's blocks (VideoPainter's conditioning_scale)")
    id_lora: str | None = Field(
        None, description="VideoPainterID resampling LoRA, pytorch_lora_weights.safetensors (or its folder), applied "
        "to the windows after the first; needs a branch")
    id_resample_weight: float = Field(
        0.5, ge=0.0, le=4.0, description="weight of the previous window's masked-region tokens the ID LoRA windows "
        "attend to (VideoPainter's prev_clip_weight, 0.5 in its ID-resampling inference script)")
    unload_between_phases: bool = Field(
        False, description="park the pipeline of the other phase in CPU memory (FLUX before CogVideoX runs, "
        "CogVideoX before FLUX runs again) and empty the CUDA cache")
    expandable_segments: bool = Field(
        True, description="set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True before CUDA starts (when a "
        "pipeline runs on CUDA and the variable is not already set)")
    parallel: ParallelConfig = Field(
        default_factory=ParallelConfig, description="one clip's CogVideoX propagation across cfg x ulysses ranks "
        "(GPUs, or CPU processes with gloo); default 1 x 1: in the painter's own process")

    @model_validator(mode="before")
    @classmethod
    def _tiny_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") == "tiny-random":
            return {**TINY_DEFAULTS, **data}
        return data

    @field_validator("lora_path")
    @classmethod
    def _safetensors_only(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith(".safetensors"):
            raise ValueError(f"lora_path must be a .safetensors file (pickled .bin/.pt files are refused), got {v!r}")
        return v

    @field_validator("id_lora")
    @classmethod
    def _lora_safetensors(cls, v: str | None) -> str | None:
        if v is not None and v.rsplit(".", 1)[-1] in ("bin", "pt", "pth", "ckpt"):
            raise ValueError(f"id_lora must be a .safetensors file or a folder holding pytorch_lora_weights."
                             f"safetensors (pickled files are refused), got {v!r}")
        return v

    @model_validator(mode="after")
    def _id_lora_needs_branch(self) -> GenerativeConfig:
        if self.id_lora is not None and self.branch is None:
            raise ValueError("id_lora (VideoPainterID) resamples on top of the context branch: set "
                             "edit.generative.branch too (a folder, 'tiny-random' or 'random-init')")
        if self.id_lora is not None and self.video_accel.fuse_qkv:
            raise ValueError("id_lora needs separate key/value projections: turn video_accel.fuse_qkv off")
        return self

    @model_validator(mode="after")
    def _video_only_levers(self) -> GenerativeConfig:
        if self.accel.cache != "none" or self.accel.cfg_truncation != 1.0:
            raise ValueError(f"edit.generative.accel.cache / cfg_truncation apply to CogVideoX only (FLUX Fill is "
                             f"guidance-distilled): set them under video_accel; got cache={self.accel.cache!r}, "
                             f"cfg_truncation={self.accel.cfg_truncation}")
        va = self.video_accel
        if va.cfg_truncation < 1.0 and va.cache == "faster":
            raise ValueError("video_accel.cfg_truncation < 1 and cache='faster' both drop the unconditional batch "
                             "(FasterCache reuses it); use one of them")
        if va.cfg_truncation < 1.0 and self.branch is not None:
            raise ValueError("video_accel.cfg_truncation is not wired for the VideoPainter context branch (its "
                             "features are computed for the CFG batch of 2); unset branch or cfg_truncation")
        return self

    @model_validator(mode="after")
    def _parallel_fits(self) -> GenerativeConfig:
        par = self.parallel
        if par.cfg == 2 and self.video_guidance <= 1.0:
            raise ValueError(f"edit.generative.parallel.cfg=2 splits the classifier-free guidance batch, which "
                             f"CogVideoX only runs with video_guidance > 1; got video_guidance={self.video_guidance}")
        if par.ulysses > 1 and self.branch is not None:
            raise ValueError("edit.generative.parallel.ulysses > 1 splits the token sequence, which the VideoPainter "
                             "branch's per-token features do not support yet: set parallel.ulysses=1 or branch=None")
        if par.world > 1 and (self.video_accel.cache != "none" or self.video_accel.cfg_truncation < 1.0):
            raise ValueError("edit.generative.parallel splits the CFG batch / token sequence across ranks, which the "
                             "step caches and cfg_truncation (they reuse or drop batch halves) are not wired for: set "
                             "video_accel.cache=none and cfg_truncation=1.0, or parallel to 1 x 1")
        if par.ulysses > 1 and self.video_accel.quant_attention != "none":
            raise ValueError("edit.generative.parallel.ulysses > 1 installs its own attention processors, which would "
                             "replace video_accel.quant_attention: use one of them")
        return self

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"width and height must be multiples of 16 (FLUX packs 2x2 latents), got {v}")
        return v

    @field_validator("num_frames")
    @classmethod
    def _eight_k_plus_one(cls, v: int) -> int:
        if (v - 1) % 8:
            raise ValueError(f"num_frames must be 8k + 1, e.g. 49 (CogVideoX compresses time 4x and its VAE "
                             f"decodes an odd number of latent frames to 4k + 1 frames, an even one to 4k); got {v}")
        return v


class QAConfig(BaseModel):
    """Verify → refine → retry loop after each edit (``edit.qa``; driven by :func:`lanepipe.edit.base.run_qa`).

    procedural: paint the clip → verify → adjust the paint knobs → repaint. flux_cogvideox: FLUX first frame →
    judge → revised caption (qwen_vl) and/or next seed → repeat until PASS or ``max_iterations``, then propagate
    the last first frame once.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = True
    max_iterations: int = Field(10, ge=1, le=100, description="attempts per instruction before giving up")
    vary_seed: bool = Field(True, description="flux_cogvideox: attempt k uses seed + k, so a retry differs even "
                            "when the judge gives no revised caption")
    checks: EditCheckConfig = Field(
        default_factory=EditCheckConfig,
        description="checks of each attempt against the original beside the verifier (unnamed boundaries "
                    "unchanged, no remnants, plausible paint, nothing outside the road or on the hood, erase only "
                    "near paint); thresholds in lanepipe.verify.config.EditCheckConfig")
