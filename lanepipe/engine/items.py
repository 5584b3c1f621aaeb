"""Typed items that flow between stages, and the one place they become rows (JSON / Arrow / parquet) and back.

A stage receives and emits these dataclasses; the runners convert at their edges only: the generic Ray actor
turns each JSON row of a batch into an item (:func:`item_from_row`) and each emitted item back into a row
(:meth:`StageItem.to_row`), and the sequential runner converts the input rows once and the output items once.

Rows are the results table's rows (``results.parquet``, ``meta.json`` markers): :meth:`StageItem.to_row` gives back
exactly the keys a row was read with (same order), plus fields set since; keys no typed field names travel in
``extra`` unchanged (timings, image metrics, …). Typed values that rows hold as text are parsed once, here: the
edit stage's ``geometry`` (JSON text in a row) is a ``dict`` on :class:`EditResult`, with its estimated camera as
a :class:`~lanepipe.geometry.camera.PinholeCamera` (:attr:`EditResult.camera`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar, Self

from lanepipe.geometry.camera import PinholeCamera

Row = dict[str, Any]
_META = ("extra", "keys")


@dataclass(kw_only=True)
class StageItem:
    """Base of every item. ``extra``: row keys with no typed field; ``keys``: the row's key order when read."""

    STAGE: ClassVar[str | None] = None

    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def typed_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in _META)

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        return value

    def _dump(self, key: str, value: Any) -> Any:
        return value

    @classmethod
    def from_row(cls, row: Row) -> Self:
        names = set(cls.typed_fields())
        typed = {k: cls._load(k, v) for k, v in row.items() if k in names}
        return cls(**typed, extra={k: v for k, v in row.items() if k not in names}, keys=tuple(row))

    def to_row(self) -> Row:
        names = self.typed_fields()
        out: Row = {}
        for k in self.keys:
            if k in names:
                out[k] = self._dump(k, getattr(self, k))
            elif k in self.extra:
                out[k] = self.extra[k]
        defaults = {f.name: f.default for f in fields(self)}
        for k in names:  # fields set since the row was read (all of them for an item built in code)
            if k not in out and (not self.keys or getattr(self, k) not in (None, defaults[k])):
                out[k] = self._dump(k, getattr(self, k))
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """A row value by key (typed field or extra), for code that reads rows generically (e.g. metrics)."""
        if key in self.typed_fields():
            value = getattr(self, key)
            return default if value is None and key not in self.keys else value
        return self.extra.get(key, default)


@dataclass(kw_only=True)
class ClipItem(StageItem):
    """A clip to process (the first stage's input): where it is and the folder-safe name its outputs use."""

    source: str
    name: str

    @property
    def clip(self) -> str:
        return self.name


@dataclass(kw_only=True)
class ResultItem(StageItem):
    """A stage's results row: which clip, which stage, and whether it worked."""

    run_id: str | None = None
    clip: str
    source: str | None = None
    stage: str | None = None
    status: str = "ok"
    error: str | None = None
    error_type: str | None = None
    skipped: bool = False

    def __post_init__(self) -> None:
        if self.stage is None and self.STAGE is not None:
            self.stage = self.STAGE

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def first_error_line(self) -> str:
        return str(self.error).splitlines()[0] if self.error else "None"


@dataclass(kw_only=True)
class SegmentResult(ResultItem):
    """A segmented clip: its size and timing, and where its road masks are (``masks_npz``)."""

    STAGE: ClassVar[str | None] = "segment"

    backend: str | None = None
    num_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    masks_npz: str | None = None


@dataclass(kw_only=True)
class EditResult(ResultItem):
    """An edited clip for one instruction (``slug`` names its folder): the edited video, its QA verdict, and the
    painter's ``geometry`` facts, among them the camera it estimated."""

    STAGE: ClassVar[str | None] = "edit"

    instruction: str | None = None
    slug: str | None = None
    caption: str | None = None
    backend: str | None = None
    qa_verdict: str | None = None
    edited: str | None = None
    masks_npz: str | None = None
    geometry: dict[str, Any] | None = None

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        if key == "geometry" and isinstance(value, str):
            return json.loads(value) if value else {}
        return value

    def _dump(self, key: str, value: Any) -> Any:
        if key == "geometry" and value is not None:
            return json.dumps(value, default=str)  # text in the results table (one column type for any painter)
        return value

    @cached_property
    def camera(self) -> PinholeCamera | None:
        """The pinhole camera the painter estimated (vanishing point + lane width), if it did."""
        raw = (self.geometry or {}).get("camera")
        if isinstance(raw, dict) and raw.get("model", "pinhole") == "pinhole":
            return PinholeCamera.from_dict(raw)
        return None

    @property
    def speed_mps(self) -> float | None:
        """The median ego speed the painter used (from the clip's context), if known."""
        v = (self.geometry or {}).get("speed_mps_median")
        return float(v) if v else None


@dataclass(kw_only=True)
class FirstFrameItem(ResultItem):
    """An edit half done (``edit.placement=split``): the first frame the QA loop settled on, on its way from the
    first-frame pool to the propagation pool. Small and JSON-ready: the frame travels by reference (``first_frame``,
    a lossless PNG), the clip and its masks are read again from their sources; the rest is the loop's state
    (``prompt``, ``seed``, the ``iterations`` records, ``qa_fields``) and its seconds (``flux_s``, ``judge_s``,
    ``qa_s``). Once propagated it travels on without ``iterations`` (the edit row has the verdict)."""

    STAGE: ClassVar[str | None] = "edit_first_frame"

    instruction: str | None = None
    slug: str | None = None
    caption: str | None = None
    backend: str | None = None
    first_frame: str | None = None
    prompt: str | None = None
    seed: int | None = None
    attempts: int = 0
    passed: bool = False
    iterations: list[dict[str, Any]] = field(default_factory=list)
    qa_fields: dict[str, Any] = field(default_factory=dict)
    flux_s: float = 0.0
    judge_s: float = 0.0
    qa_s: float = 0.0


@dataclass(kw_only=True)
class PredictionResult(ResultItem):
    """One predictor on one edit (original vs edited clip): where its evaluation document is."""

    STAGE: ClassVar[str | None] = "evaluate"

    instruction: str | None = None
    slug: str | None = None
    predictor: str | None = None
    qa_verdict: str | None = None
    edited: str | None = None
    evaluation: str | None = None


@dataclass(kw_only=True)
class RenderResult(ResultItem):
    """The videos and plot rendered for one prediction."""

    STAGE: ClassVar[str | None] = "render"

    instruction: str | None = None
    slug: str | None = None
    predictor: str | None = None


@dataclass(kw_only=True)
class DatasetResult(ResultItem):
    """One clip of ``lanepipe dataset``: the frames written for it."""

    STAGE: ClassVar[str | None] = "dataset"


ITEM_TYPES: dict[str | None, type[StageItem]] = {
    t.STAGE: t for t in (SegmentResult, EditResult, FirstFrameItem, PredictionResult, RenderResult,
                         DatasetResult)}


def item_from_row(row: Row | StageItem) -> StageItem:
    """The typed item of a row: by its ``stage`` (a results row), else a :class:`ClipItem` (``source``, ``name``)."""
    if isinstance(row, StageItem):
        return row
    stage = row.get("stage")
    if stage is None and "name" in row:
        return ClipItem.from_row(row)
    return ITEM_TYPES.get(stage, ResultItem).from_row(row)


def item_to_row(item: StageItem | Row) -> Row:
    return item.to_row() if isinstance(item, StageItem) else item
