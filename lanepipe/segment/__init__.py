"""Road segmentation backends, chosen by name (``segment.backend``, see :mod:`lanepipe.registry`)."""

from __future__ import annotations

from typing import Any

from lanepipe import registry
from lanepipe.segment.base import GRID_POINTS, Segmenter, grid_points_px


def build_segmenter(cfg: Any) -> Segmenter:
    """The segmenter ``cfg.segment`` names (a :class:`lanepipe.config.SegmentConfig`), built through the registry.

    Heavy libraries are imported here, not at module import.
    """
    seg: Segmenter = registry.create_from("segmenter", cfg)
    return seg


__all__ = ["GRID_POINTS", "Segmenter", "build_segmenter", "grid_points_px"]
