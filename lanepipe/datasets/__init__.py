"""Clip sources: files, globs, folders, fsspec URLs and the ``chunks://`` selector."""

from lanepipe.datasets.sources import ClipRef, resolve_inputs

__all__ = ["ClipRef", "resolve_inputs"]
