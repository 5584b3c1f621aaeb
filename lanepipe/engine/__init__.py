"""The engine: one stage contract (:class:`Stage`), a picklable way to build a stage anywhere
(:class:`StageSpec`) and the in-process runner (:class:`SequentialRunner`). The Ray side (the generic actor and
the Ray Data runner) lives in :mod:`lanepipe.actors`; nothing here imports Ray."""

from lanepipe.engine.items import (
    ClipItem,
    DatasetResult,
    EditResult,
    PredictionResult,
    RenderResult,
    ResultItem,
    SegmentResult,
    StageItem,
    item_from_row,
    item_to_row,
)
from lanepipe.engine.runner import (
    BUSY_KEY,
    SETUP_KEY,
    ProgressFn,
    Runner,
    SequentialRunner,
    stage_event,
    stamp_busy,
)
from lanepipe.engine.stage import Item, Row, Stage, StageSpec, item_key

__all__ = ["BUSY_KEY", "SETUP_KEY", "ClipItem", "DatasetResult", "EditResult", "Item", "PredictionResult",
           "ProgressFn", "RenderResult", "ResultItem", "Row", "Runner", "SegmentResult", "SequentialRunner", "Stage",
           "StageItem", "StageSpec", "item_from_row", "item_key", "item_to_row", "stage_event", "stamp_busy"]
