"""Training data for the generative painter: frames of clips → road masks → canonical captions → ``train.csv``.

This module only gathers the public names of the modules that do the work:

* :mod:`lanepipe.datasets.schema` — the dataset folder and ``train.csv`` schema, records, attribute counts;
* :mod:`lanepipe.datasets.captions` — canonical captions and the captioners (lane detector, Qwen2.5-VL);
* :mod:`lanepipe.datasets.frames` — dataset inputs (videos, stills, folders, globs) and frame selection;
* :mod:`lanepipe.stages.dataset` — the dataset stage (one clip → frames, masks, captions, records);
* :mod:`lanepipe.datasets.building` — ``generate_dataset`` through the engine's runners, the config loader;
* :mod:`lanepipe.datasets.validation` — checks of ``train.csv`` rows (the LoRA trainer reads through them).
"""

from lanepipe.datasets.building import DatasetSummary, generate_dataset, load_dataset_config
from lanepipe.datasets.captions import (
    ATTRIBUTES,
    UNKNOWN,
    VOCABULARY,
    Caption,
    Captioner,
    DetectorCaptioner,
    QwenCaptioner,
    build_captioner,
    caption_from_answer,
    caption_from_report,
    describe_prompt,
    format_caption,
)
from lanepipe.datasets.frames import is_still, read_frames, resolve_dataset_inputs
from lanepipe.datasets.schema import (
    CLIPS_DIR,
    CSV_COLUMNS,
    IMAGE_EXTENSIONS,
    IMAGES_DIR,
    MASKS_DIR,
    RECORDS_DIR,
    SUMMARY_JSON,
    TRAIN_CSV,
    attribute_counts,
    csv_text,
    frame_key,
    read_records,
    write_train_csv,
)
from lanepipe.datasets.validation import (
    BadRow,
    TrainRow,
    check_row,
    dataset_root,
    read_train_csv,
    safe_relative,
    validate_rows,
)
from lanepipe.stages.dataset import DatasetStage

__all__ = [
    "ATTRIBUTES", "CLIPS_DIR", "CSV_COLUMNS", "IMAGES_DIR", "IMAGE_EXTENSIONS", "MASKS_DIR", "RECORDS_DIR",
    "SUMMARY_JSON", "TRAIN_CSV", "UNKNOWN", "VOCABULARY", "BadRow", "Caption", "Captioner", "DatasetStage",
    "DatasetSummary", "DetectorCaptioner", "QwenCaptioner", "TrainRow", "attribute_counts", "build_captioner",
    "caption_from_answer", "caption_from_report", "check_row", "csv_text", "dataset_root", "describe_prompt",
    "format_caption", "frame_key", "generate_dataset", "is_still", "load_dataset_config", "read_frames",
    "read_records", "read_train_csv", "resolve_dataset_inputs", "safe_relative", "validate_rows",
    "write_train_csv",
]
