"""One pydantic model for a run: YAML file + dotted ``--set a.b=c`` overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lanepipe.errors import ConfigError

STAGES: tuple[str, ...] = ("segment", "edit", "evaluate", "render")
StageName = Literal["segment", "edit", "evaluate", "render"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Resources(_Strict):
    """Ray resources of one stage's actor pool."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    concurrency: int = Field(1, ge=1, description="number of actors in the pool")
    batch_size: int = Field(1, ge=1, description="clips per actor call")


class InputConfig(_Strict):
    """How clips are found and decoded."""

    paths: list[str] = Field(default_factory=list, description="files, globs, folders, fsspec URLs, chunks://")
    target_fps: float = Field(8.0, gt=0, le=120)
    max_frames: int = Field(150, ge=2)
    max_pixels: int = Field(3840 * 2160, ge=64, description="largest accepted frame area (W*H)")
    min_frames: int = Field(2, ge=1, description="clips with fewer decoded frames are rejected")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class GridConfig(_Strict):
    """Classical road segmentation seeded by the 9-point grid (embedded default)."""

    work_width: int = Field(320, ge=64, description="frames are segmented at this width, masks upsampled")
    color_tolerance: float = Field(3.0, gt=0, description="Mahalanobis distance accepted as road colour")
    horizon_margin: float = Field(0.02, ge=0, le=0.5, description="fraction of height kept above the horizon")
    temporal_alpha: float = Field(0.5, ge=0, le=1, description="weight of the previous frame's mask")
    close_px: int = Field(9, ge=1, description="closing kernel at work width (fills lane markings)")


class Sam2Config(_Strict):
    """SAM2 / SAM2.1 video predictor."""

    preset: Literal["none", "tiny-random"] = "none"
    model_cfg: str = Field("configs/sam2.1/sam2.1_hiera_l.yaml", description="sam2 config name")
    checkpoint: str | None = Field(None, description="local .pt checkpoint path")
    device: str = "auto"
    reprompt_every: int = Field(0, ge=0, description="re-add the 9 points every N frames (0 = first only)")
    seed: int = 0


class SegmentConfig(_Strict):
    backend: Literal["grid", "sam2"] = "grid"
    grid: GridConfig = Field(default_factory=GridConfig)
    sam2: Sam2Config = Field(default_factory=Sam2Config)
    resources: Resources = Field(default_factory=Resources)
    overlay: bool = True
    videopainter: bool = True


class RayConfig(_Strict):
    address: str = Field("local", description='"local" starts a private instance; "auto" or ray://… joins')
    num_cpus: int | None = Field(None, ge=1)
    num_gpus: int | None = Field(None, ge=0)


class RunConfig(_Strict):
    """Everything a run needs. Stored verbatim in manifest.json."""

    input: InputConfig = Field(default_factory=InputConfig)
    output: str = "runs"
    run_id: str | None = None
    stages: list[StageName] = Field(default_factory=lambda: list[StageName](["segment"]))
    from_run: str | None = None
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("stages", mode="before")
    @classmethod
    def _split_stages(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if v == ["all"]:
            return list(STAGES)
        return v

    @field_validator("stages")
    @classmethod
    def _contiguous(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"stages must name at least one of {', '.join(STAGES)}")
        idx = sorted(STAGES.index(s) for s in v)
        if idx != list(range(idx[0], idx[-1] + 1)) or len(set(idx)) != len(idx):
            raise ValueError(
                f"stages must be a contiguous selection of {' → '.join(STAGES)}, got {', '.join(v)}"
            )
        return [STAGES[i] for i in idx]


def _parse_scalar(text: str) -> Any:
    """Parse an override value as YAML (numbers, bools, lists, null), else keep the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to a nested dict (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. segment.backend=sam2")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {p!r} is a value, not a section")
            node = child
        node[parts[-1]] = _parse_scalar(raw)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> RunConfig:
    """Build a RunConfig from an optional YAML file, a base dict and dotted overrides.

    Raises:
        ConfigError: unreadable YAML, unknown keys or invalid values, with pydantic's explanation.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p}: expected a YAML file, found nothing at that path")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p}: expected valid YAML, found a parse error: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p}: expected a mapping at top level, found {type(loaded).__name__}")
        data = loaded
    if base:
        _deep_merge(data, base)
    apply_overrides(data, overrides or [])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            lines.append(f"  {loc}: {err['msg']} (got {json.dumps(err.get('input'), default=str)[:80]})")
        raise ConfigError("invalid config:\n" + "\n".join(lines)) from None


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = v


def config_hash(cfg: RunConfig) -> str:
    """Short stable hash of the settings that change outputs (run id and output root excluded)."""
    import hashlib

    payload = cfg.model_dump(mode="json", exclude={"run_id", "output", "ray"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
