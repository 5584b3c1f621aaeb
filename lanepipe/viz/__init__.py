"""Geometry and drawing helpers: the pinhole camera model (pure numpy)."""

from __future__ import annotations

from lanepipe.viz.camera import FOV_BY_NAME, NEAR_PLANE_M, YAW_BY_NAME, PinholeCamera

__all__ = ["FOV_BY_NAME", "NEAR_PLANE_M", "YAW_BY_NAME", "PinholeCamera"]
