"""One pydantic model for a run: YAML file + dotted ``--set a.b=c`` overrides."""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lanepipe import registry
from lanepipe.edit.config import GenerativeConfig, ProceduralConfig, QAConfig
from lanepipe.errors import ConfigError, InputError
from lanepipe.lanes.instructions import parse_instruction
from lanepipe.segment.config import GridConfig, Sam2Config
from lanepipe.verify.config import LaneDetectorConfig, QwenJudgeConfig

STAGES: tuple[str, ...] = ("segment", "edit", "evaluate", "render")
StageName = Literal["segment", "edit", "evaluate", "render"]
#: A run id is one folder name under ``output``: no slashes, no ``..``, starts with a letter or digit.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(value: str, what: str = "run_id") -> str:
    """``value`` if it is a valid run id (:data:`RUN_ID_PATTERN`, no ``..``), else :class:`ConfigError`."""
    if not RUN_ID_PATTERN.fullmatch(value) or ".." in value:
        raise ConfigError(f"{what}: expected a run id of letters, digits, '.', '_' or '-' (starting with a letter "
                          f"or digit, at most 128 characters, no '..' and no '/'), got {value!r}")
    return value


def looks_like_path(value: str) -> bool:
    """True for a ``--from-run`` that names a folder or URL (not a bare run id)."""
    return "/" in value or "\\" in value or "://" in value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Resources(_Strict):
    """Ray resources of one stage's actor pool."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    concurrency: int = Field(1, ge=1, description="number of actors in the pool (its maximum when "
                             "min_concurrency is set)")
    min_concurrency: int | None = Field(None, ge=1, description="smallest pool size: the pool grows from it to "
                                        "concurrency and shrinks back when idle (unset: a fixed pool)")
    batch_size: int = Field(1, ge=1, description="clips per actor call")
    in_flight: int = Field(1, ge=1, le=8, description="clips one actor works on at once: > 1 overlaps one clip's "
                           "CPU work (decode, compositing, encoding, writing) with another's model calls, which "
                           "the stage runs one clip at a time (the generative edit stage defaults to 2)")
    custom_resources: dict[str, float] = Field(default_factory=dict, description="Ray custom resources, e.g. "
                                               "{alpamayo: 1} to land on the Alpamayo worker group")
    runtime_env: dict[str, Any] | None = Field(None, description="Ray runtime_env of this stage's actors (pip "
                                               "pins, env vars, py_executable)")

    @model_validator(mode="after")
    def _pool_bounds(self) -> Resources:
        if self.min_concurrency is not None and self.min_concurrency > self.concurrency:
            raise ValueError(f"min_concurrency ({self.min_concurrency}) must be <= concurrency "
                             f"({self.concurrency}, the pool's maximum)")
        return self


#: Presets ``edit.preset`` passes on to ``edit.generative`` and ``verify.qwen_vl`` (models with random weights).
RANDOM_PRESETS: tuple[str, ...] = ("tiny-random", "random-init")


def tiny_preset_section(section: Any, where: str, preset: str = "tiny-random") -> Any:
    """The one ``edit.preset`` rule: the section ``where`` (``edit.generative`` or ``verify.qwen_vl``) gets
    ``preset`` (``tiny-random`` or ``random-init``); a different preset given there as well is an error (which one
    should run?).

    ``section`` is the section's raw data (a dict, a model or None); anything else is returned for pydantic to
    report.
    """
    if isinstance(section, BaseModel):
        section = section.model_dump(exclude_unset=True)
    if section is not None and not isinstance(section, dict):
        return section
    section = dict(section or {})
    if section.get("preset", preset) != preset:
        raise ValueError(f"edit.preset={preset} switches {where} to its {preset} preset, but "
                         f"{where}.preset={section['preset']!r} was also given; drop one of the two")
    return {**section, "preset": preset}


def random_weight_models(cfg: RunConfig) -> list[str]:
    """The models of this run's selected stages that have random weights (a ``tiny-random`` or ``random-init``
    preset), as ``section (preset)``: their outputs mean nothing, and the manifest and report say so."""
    out: list[str] = []
    stages = set(cfg.stages)
    if "segment" in stages and cfg.segment.backend == "sam2" and cfg.segment.sam2.preset != "none":
        out.append(f"segment.sam2 ({cfg.segment.sam2.preset})")
    if "edit" in stages:
        if cfg.edit.backend == "flux_cogvideox" and cfg.edit.generative.preset != "none":
            out.append(f"edit.generative ({cfg.edit.generative.preset})")
        if cfg.edit.qa.enabled and cfg.verify.backend == "qwen_vl" and cfg.verify.qwen_vl.preset != "none":
            out.append(f"verify.qwen_vl ({cfg.verify.qwen_vl.preset})")
    return out


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


def _options() -> Any:
    return Field(default_factory=dict, description="settings of a user backend (module:Class or entry point), "
                 "given to its config model or as keyword arguments")


class SegmentConfig(_Strict):
    """Segment stage: which segmenter (``backend``: grid, sam2, module:Class or an entry point) and its settings."""

    backend: str = "grid"
    grid: GridConfig = Field(default_factory=GridConfig)
    sam2: Sam2Config = Field(default_factory=Sam2Config)
    options: dict[str, Any] = _options()
    resources: Resources = Field(default_factory=Resources)
    overlay: bool = True
    videopainter: bool = True

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        return registry.validate_name("segmenter", v)


class EditConfig(_Strict):
    """Edit stage: which painter, which instructions, the QA loop.

    ``backend``: ``procedural`` (embedded, CPU, no weights) or ``flux_cogvideox`` (FLUX.1 Fill first frame →
    CogVideoX-I2V propagation, settings in ``generative``). ``preset=tiny-random`` switches the generative painter
    and the qwen_vl judge to their tiny seeded random models (CPU, no weights; wiring tests). A user painter:
    ``backend=package.module:ClassName`` or an entry point in ``lanepipe.painters``, its settings in ``options``
    (``lanepipe backends`` lists them all).
    """

    backend: str = "procedural"
    preset: Literal["none", "tiny-random", "random-init"] = Field(
        "none", description="tiny-random | random-init: edit.generative and verify.qwen_vl use that preset "
        "(random weights: tiny for CPU tests, full size for GPU timing)")
    instructions: list[str] = Field(default_factory=lambda: ["double yellow solid"],
                                    description="lane instructions or preset:NAME, one edit each")
    procedural: ProceduralConfig = Field(default_factory=ProceduralConfig)
    generative: GenerativeConfig = Field(default_factory=GenerativeConfig)
    options: dict[str, Any] = _options()
    qa: QAConfig = Field(default_factory=QAConfig)
    resources: Resources = Field(default_factory=Resources)
    cameras: Literal["front", "all"] | list[str] = Field(
        "front", description="cameras of the clip's rig to edit: front (the clip's own), all, or a list of names; "
        "the one road-plane edit is painted into each (procedural painter)")
    placement: Literal["whole", "split"] = Field(
        "whole", description="flux_cogvideox on several actors: whole (each edit actor holds FLUX + judge + "
        "CogVideoX) or split (a first-frame pool, FLUX Fill + the judge's QA loop, feeding a propagation pool, "
        "CogVideoX + composite: a pipeline across clips; lanepipe.stages.edit_split)")
    split_first_frame_actors: int | None = Field(
        None, ge=1, description="placement=split: actors (GPUs, one each) of the first-frame pool out of "
        "edit.resources.concurrency; the rest propagate. None: from the measured per-clip stage times "
        "(lanepipe.stages.edit_split.first_frame_share)")

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        return registry.validate_name("painter", v)

    @field_validator("cameras", mode="before")
    @classmethod
    def _camera_names(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ("front", "all"):
            v = [c.strip() for c in v.split(",")]
        if isinstance(v, list | tuple):
            names = [str(c).strip() for c in v]
            if not names or any(not c for c in names):
                raise ValueError(f"expected 'front', 'all' or camera names, found {v!r}")
            return names
        return v

    @model_validator(mode="after")
    def _rig_needs_geometry(self) -> EditConfig:
        if self.cameras not in ("front", ["front"]) and self.backend != "procedural":
            raise ValueError(f"edit.cameras={self.cameras!r} paints the edit into other cameras through the road "
                             f"plane, which only the procedural painter provides; edit.backend is {self.backend!r}")
        return self

    @model_validator(mode="after")
    def _split_needs_two_phases(self) -> EditConfig:
        if self.placement != "split":
            return self
        if self.backend != "flux_cogvideox":
            raise ValueError(f"edit.placement=split runs the first frame and its propagation on different actors, "
                             f"which only the flux_cogvideox painter has; edit.backend is {self.backend!r}")
        n, k = self.resources.concurrency, self.split_first_frame_actors
        if n < 2:
            raise ValueError(f"edit.placement=split needs edit.resources.concurrency >= 2 (one first-frame and one "
                             f"propagation actor at least), found {n}")
        if k is not None and k >= n:
            raise ValueError(f"edit.split_first_frame_actors must leave propagation actors: expected < "
                             f"edit.resources.concurrency ({n}), found {k}")
        if self.resources.min_concurrency is not None:
            raise ValueError("edit.placement=split sizes two fixed pools from edit.resources.concurrency: leave "
                             f"edit.resources.min_concurrency unset (found {self.resources.min_concurrency})")
        return self

    @model_validator(mode="before")
    @classmethod
    def _preset_into_generative(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") not in RANDOM_PRESETS:
            return data
        return {**data, "generative": tiny_preset_section(data.get("generative"), "edit.generative",
                                                          data["preset"])}

    @field_validator("instructions", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("instructions")
    @classmethod
    def _parse(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one instruction, e.g. 'double yellow solid' or 'preset:passing-zone'")
        for text in v:
            try:
                parse_instruction(text)
            except InputError as e:
                raise ValueError(str(e)) from None
        return v


class VerifyConfig(_Strict):
    """The QA loop's verifier (``backend``).

    ``lane_detector``: classical lane-attribute detector; with the procedural painter it inspects the whole edited
    clip, with flux_cogvideox it judges each generated first frame (with its road mask). ``qwen_vl``: Qwen2.5-VL
    judge of [original first frame, edited first frame, instruction] → PASS/FAIL, reasons, revised caption; with
    flux_cogvideox the revised caption is the next FLUX prompt, with procedural it judges frame 0 and its reasons
    steer the paint knobs. ``edit.preset=tiny-random`` switches ``qwen_vl`` to its tiny-random preset. A user
    verifier: ``backend=package.module:ClassName`` or an entry point in ``lanepipe.verifiers``, settings in
    ``options``.
    """

    backend: str = "lane_detector"
    lane_detector: LaneDetectorConfig = Field(default_factory=LaneDetectorConfig)
    qwen_vl: QwenJudgeConfig = Field(default_factory=QwenJudgeConfig)
    options: dict[str, Any] = _options()

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        return registry.validate_name("verifier", v)


class NoiseFloorConfig(_Strict):
    """The noise floor of every shift (``evaluate.noise_floor``): per clip and predictor, the shift a *null edit*
    causes, and a paired sign-flip permutation test per preset of the edits' shifts against it
    (:mod:`lanepipe.stats`).

    ``null_edit``: ``reencode`` (default; one predictor call per clip and predictor, nothing painted) — the clip
    decoded again, encoded with the edit stage's encoder and decoded, i.e. everything the pipeline does to an
    edited clip except changing its markings; ``repaint`` — also repaints the markings the verifier reads on the
    original (count, colour, pattern per boundary) with the configured painter and QA loop, so the floor includes
    the painter's own rendering (for ``flux_cogvideox`` a whole generative edit per clip: costly). A predictor whose
    settings have an integer ``seed`` (a sampling predictor, e.g. ``alpamayo``) predicts the null edit with
    ``seed + 1``, so the floor also holds its spread between runs.
    """

    enabled: bool = Field(True, description="measure the null-edit floor and the permutation test")
    null_edit: Literal["reencode", "repaint"] = Field("reencode", description="what the null edit does")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level: significant = p < alpha")
    permutations: int = Field(20_000, ge=100, description="Monte Carlo sign flips beyond 16 clips (exact below)")
    seed: int = Field(0, description="seed of the Monte Carlo sign flips")


class EvaluateConfig(_Strict):
    """Trajectory predictors on the original and the edited clip.

    ``baseline``: the original clip the predictor compares with; ``reencoded`` (default) is the decoded original
    passed through the edit stage's encoder, as the edited clip is, so a shift never holds coding noise (on the
    shared real clips the encoder alone moved ``lane_keep`` by 0.35-1.16 m ADE, BENCHMARKS.md "Issue 18 — noise
    floor"); ``source`` is the decoded source as it is.
    """

    predictors: list[str] = Field(default_factory=lambda: ["lane_keep"],
                                  description="lane_keep, alpamayo, or a user predictor 'module:Class' / entry point")
    predictor_options: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                                         description="per-predictor config, by predictor name")
    t0_s: float | None = Field(None, description="prediction time in clip seconds; None = the last frame "
                               "((frames - 1) x 0.125 s at 8 fps)")
    assumed_speed_mps: float = Field(25.0, gt=0, description="speed when a clip has no ego-motion and none "
                                     "was estimated from the image")
    fallback_fov_deg: float = Field(60.0, gt=0, lt=180)
    fallback_mount_height_m: float = Field(1.5, gt=0)
    fallback_pitch_deg: float = Field(2.0, gt=-45, lt=45)
    baseline: Literal["reencoded", "source"] = Field("reencoded", description="the original the shift is "
                                                     "measured from: re-encoded like the edit, or the source")
    noise_floor: NoiseFloorConfig = Field(default_factory=NoiseFloorConfig)
    resources: Resources = Field(default_factory=Resources)

    @field_validator("predictors")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one predictor, e.g. lane_keep")
        return [registry.validate_name("predictor", name) for name in v]


class RenderConfig(_Strict):
    """Overlay and comparison videos, BEV plots and report.html."""

    overlay: bool = True
    comparison: bool = True
    report: bool = True
    resources: Resources = Field(default_factory=Resources)


class RayConfig(_Strict):
    address: str = Field("local", description='"local" starts a private instance; "auto" or ray://… joins')
    num_cpus: int | None = Field(None, ge=1)
    num_gpus: int | None = Field(None, ge=0)
    bind_host: str = Field("127.0.0.1", min_length=1, description="address a local instance started by "
                           "lanepipe listens on (every Ray server, agent and metrics endpoint); 127.0.0.1 keeps it "
                           "on this machine, an interface address or 0.0.0.0 opens it (ignored when joining)")
    fit_pools: bool | None = Field(None, description="when the stages' actor pools (their fewest actors) ask for "
                                   "more CPUs or GPUs than the Ray cluster has at the start of a run, scale each "
                                   "stage's num_cpus/num_gpus down so all pools are up at once (a pool whose actor "
                                   "cannot start stalls the stream while the others hold the resources); unset: on "
                                   "for a local instance, off when joining a cluster (which may add nodes on demand)")

    def fits_pools(self) -> bool:
        """Whether the stages' CPU/GPU asks are scaled to fit the cluster at start (``fit_pools``, or by default
        on a local instance only: a joined cluster may grow to meet them)."""
        return self.fit_pools if self.fit_pools is not None else self.address == "local"


class RunConfig(_Strict):
    """Everything a run needs. Stored verbatim in manifest.json."""

    input: InputConfig = Field(default_factory=InputConfig)
    output: str = "runs"
    run_id: str | None = None
    stages: list[StageName] = Field(default_factory=lambda: list[StageName](["segment"]))
    from_run: str | None = None
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    edit: EditConfig = Field(default_factory=EditConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    resume_changed_config: bool = Field(False, description="resume a run (same run_id) whose recorded config "
                                        "differs from this one; without it such a resume is refused")

    @model_validator(mode="before")
    @classmethod
    def _edit_preset_reaches_the_judge(cls, data: Any) -> Any:
        """``edit.preset=tiny-random`` (or ``random-init``) also switches the Qwen judge to that preset
        (:func:`tiny_preset_section`), so that manifest.json records the judge that runs."""
        if not isinstance(data, dict):
            return data
        edit = data.get("edit")
        if isinstance(edit, EditConfig):
            edit = {"preset": edit.preset}
        if not (isinstance(edit, dict) and edit.get("preset") in RANDOM_PRESETS):
            return data
        verify: Any = data.get("verify") if data.get("verify") is not None else {}
        model = isinstance(verify, VerifyConfig)  # also every assignment to a built config (validate_assignment)
        if isinstance(verify, VerifyConfig):
            verify = verify.model_dump(exclude_unset=True)
        if not isinstance(verify, dict):
            return data  # pydantic reports the bad section
        judge = {**verify, "qwen_vl": tiny_preset_section(verify.get("qwen_vl"), "verify.qwen_vl", edit["preset"])}
        # a model stays a model: an assignment keeps the section as the validator returns it
        return {**data, "verify": VerifyConfig.model_validate(judge) if model else judge}

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, v: str | None) -> str | None:
        return None if v is None else _valid_id(v, "run_id")

    @field_validator("from_run")
    @classmethod
    def _from_run(cls, v: str | None) -> str | None:
        return v if v is None or looks_like_path(v) else _valid_id(v, "from_run")

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
        idx = [STAGES.index(s) for s in v]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ValueError(f"stages must be consecutive stages in pipeline order ({','.join(STAGES)}), e.g. "
                             f"segment,edit or edit,evaluate,render; got {','.join(v)}")
        return list(v)


def _valid_id(v: str, what: str) -> str:
    try:
        return check_run_id(v, what)
    except ConfigError as e:  # pydantic reports ValueError with the field's dotted path
        raise ValueError(str(e).split(": ", 1)[1]) from None


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


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file (an empty file reads as ``{}``).

    Raises:
        ConfigError: no file there, a YAML parse error, or a top level that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p}: expected a YAML file, found nothing at that path")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p}: expected valid YAML, found a parse error: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {p}: expected a mapping at top level, found {type(loaded).__name__}")
    return loaded


M = TypeVar("M", bound=BaseModel)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> RunConfig:
    """Build a RunConfig from an optional YAML file, a base dict and dotted overrides.

    Raises:
        ConfigError: unreadable YAML, unknown keys or invalid values, with pydantic's explanation.
    """
    return load_model(RunConfig, path, overrides, base)


def load_model(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None,
               base: dict[str, Any] | None = None, what: str = "config") -> M:
    """A config ``model`` from an optional YAML file, then ``base`` (CLI flags, merged deeply), then ``a.b=c``
    overrides: the one loader of ``lanepipe run`` (:class:`RunConfig`) and ``lanepipe dataset``.

    Raises:
        ConfigError: unreadable YAML, unknown keys or invalid values, with pydantic's explanation.
    """
    data: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    if base:
        _deep_merge(data, base)
    apply_overrides(data, overrides or [])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            lines.append(f"  {loc}: {err['msg']} (got {json.dumps(err.get('input'), default=str)[:80]})")
        raise ConfigError(f"invalid {what}:\n" + "\n".join(lines)) from None


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = v


def config_hash(cfg: RunConfig) -> str:
    """Short stable hash of the settings that change outputs (run id and output root excluded)."""
    import hashlib

    payload = cfg.model_dump(mode="json", exclude={"run_id", "output", "ray", "resume_changed_config"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]


def new_run_id(cfg: RunConfig, now: _dt.datetime | None = None) -> str:
    """``<UTC timestamp>-<config hash>``, e.g. ``20261125T203000Z-1a2b3c4d``."""
    t = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{t}-{config_hash(cfg)}"


class DatasetConfig(_Strict):
    """``lanepipe dataset``: frames of clips → road masks → canonical captions → ``train.csv``.

    Frames are picked by source frame index (decode order, 0-based): ``frames`` when given, else every
    ``stride``-th frame from frame 0; at most ``max_frames`` per clip either way. A still image is a one-frame
    clip whose frame 0 is always taken.
    """

    paths: list[str] = Field(default_factory=list, description="clips, stills, folders, globs, fsspec URLs, "
                             "chunks://")
    output: str = Field("dataset", description="dataset folder: local path or bucket URL (s3://, gs://)")
    frames: list[int] | None = Field(None, description="source frame indices to take (instead of stride)")
    stride: int | None = Field(None, ge=1, description="take every N-th source frame, starting at frame 0 "
                               "(10 when neither frames nor stride is given)")
    max_frames: int = Field(50, ge=1, description="most frames taken from one clip")
    max_pixels: int = Field(3840 * 2160, ge=64, description="largest accepted frame area (W*H)")
    segment: SegmentConfig = Field(default_factory=SegmentConfig, description="road mask backend (grid, sam2)")
    captioner: Literal["lane_detector", "qwen_vl"] = Field("lane_detector", description="verify backend that "
                                                           "reads the lane markings of each frame")
    lane_detector: LaneDetectorConfig = Field(default_factory=LaneDetectorConfig)
    qwen_vl: QwenJudgeConfig = Field(default_factory=QwenJudgeConfig)
    boundary: Literal["left", "right", "both"] = Field(
        "left", description="ego-lane boundary the caption describes; left = the one an instruction sets by "
        "default (DESIGN.md §3), both = the two combined (differing colours or patterns read 'mixed')")
    min_confidence: float = Field(0.5, ge=0, le=1, description="a boundary read with less confidence is "
                                  "captioned unknown")
    min_vote: float = Field(0.5, ge=0, le=1, description="an attribute fewer analysed frames agree on is unknown")
    resources: Resources = Field(default_factory=Resources)
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("frames")
    @classmethod
    def _indices(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("frames: give at least one source frame index, or leave it unset to use stride")
        if min(v) < 0:
            raise ValueError(f"frames: source frame indices start at 0, got {min(v)}")
        return sorted(set(v))

    @field_validator("stride")
    @classmethod
    def _frames_or_stride(cls, v: int | None, info: Any) -> int | None:
        if v is not None and info.data.get("frames") is not None:  # frames is declared (validated) first
            raise ValueError("give frames (source frame indices) or stride, not both")
        return v

    @property
    def effective_stride(self) -> int | None:
        """The stride in use: None when ``frames`` picks the frames, else ``stride`` or 10."""
        return None if self.frames is not None else (self.stride or 10)
