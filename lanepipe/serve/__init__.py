"""HTTP service: submit lane edits, poll them, download the results (Ray Serve + FastAPI).

``lanepipe serve`` starts it; :func:`lanepipe.serve.app.build_app` builds the Serve application for
``serve.run``. Imports Ray Serve and FastAPI only when :mod:`lanepipe.serve.app` is imported.
"""

from __future__ import annotations

__all__ = ["ServeSettings", "build_app"]

from typing import Any


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lanepipe.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'lanepipe.serve' has no attribute {name!r}")
