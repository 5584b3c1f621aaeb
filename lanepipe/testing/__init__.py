"""Builders for tests and wiring checks: small, seeded, written from scratch (no downloads, no weights).

- :mod:`~lanepipe.testing.paiav`: a tiny PhysicalAI-AV copy (:func:`~lanepipe.testing.paiav.write_fixture`).
- :mod:`~lanepipe.testing.recolour`: a colour-only lane edit (paint recoloured in place,
  :func:`~lanepipe.testing.recolour.recolour_paint`) for measuring colour invariance.
- :func:`load_script`: a repository script (``benchmarks/*.py``, ``jobs/*.py``, a test's ``conftest.py``) imported
  as a module, for tests of its functions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: The repository root (the folder holding ``benchmarks/`` and ``jobs/``) of a source checkout.
REPO = Path(__file__).resolve().parents[2]


def load_script(path: str | Path, name: str | None = None, *, register: bool = False) -> ModuleType:
    """The script at ``path`` (relative to the repository root, or absolute) imported as module ``name`` (default:
    ``<stem>_script``). ``register``: keep it in ``sys.modules`` and reuse it there (scripts whose dataclasses look
    their module up)."""
    file = path if Path(path).is_absolute() else REPO / path
    spec = importlib.util.spec_from_file_location(name or f"{Path(path).stem}_script", file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file}: not a loadable Python file")
    if register and spec.name in sys.modules:
        return sys.modules[spec.name]
    mod = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
