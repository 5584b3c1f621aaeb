"""lanepipe: segment the road in driving videos, paint requested lane markings, verify and evaluate the edit."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
