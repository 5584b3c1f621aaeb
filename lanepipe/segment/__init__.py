"""Road segmentation backends, chosen by name (``segment.backend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lanepipe.errors import ConfigError
from lanepipe.segment.base import GRID_POINTS, Segmenter, grid_points_px

if TYPE_CHECKING:  # the run config sits above the backends; only its type is needed here
    from lanepipe.config import SegmentConfig

BACKENDS: tuple[str, ...] = ("grid", "sam2")


def build_segmenter(cfg: SegmentConfig) -> Segmenter:
    """Build the configured backend. Heavy libraries are imported here, not at module import."""
    if cfg.backend == "grid":
        from lanepipe.segment.grid import GridSegmenter

        seg: Segmenter = GridSegmenter(cfg.grid)
        return seg
    if cfg.backend == "sam2":
        from lanepipe.segment.sam2 import Sam2Segmenter

        sam: Segmenter = Sam2Segmenter(cfg.sam2)
        return sam
    raise ConfigError(f"segment.backend: unknown backend {cfg.backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "GRID_POINTS", "Segmenter", "build_segmenter", "grid_points_px"]
