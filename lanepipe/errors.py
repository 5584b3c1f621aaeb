"""Error hierarchy. Every message names the input, what was expected, and what was found."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from typing import Any


class LanepipeError(Exception):
    """Base class of every error lanepipe raises on purpose. ``exit_code``: the CLI's exit status for it."""

    exit_code: int = 2


class InputError(LanepipeError):
    """A clip, mask, URL or file given by the user is not usable.

    Args:
        source: the input's name (path, URL or clip id).
        expected: what lanepipe needs.
        found: what it found instead.
        hint: optional advice on what to do.
    """

    def __init__(self, source: str, expected: str, found: str, hint: str | None = None) -> None:
        self.source = source
        self.expected = expected
        self.found = found
        self.hint = hint
        msg = f"{source}: expected {expected}, found {found}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str, str, str | None]]:
        # Keeps the structured fields when the error crosses a Ray process boundary.
        return (InputError, (self.source, self.expected, self.found, self.hint))


class ConfigError(LanepipeError):
    """A configuration value is invalid or inconsistent."""


class BackendUnavailableError(LanepipeError):
    """A backend's optional dependency or checkpoint is missing."""


class StorageError(LanepipeError):
    """The run's storage could not be read or written (unreachable object store, full disk, no permission).

    Nothing finished is lost: every output is written atomically and marked last, so the same ``--run-id``
    resumes once the storage is back."""

    exit_code = 3


class InterruptError(LanepipeError):
    """The run was stopped by a signal (Ctrl-C: SIGINT, or SIGTERM); ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, name: str) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {name}")

    def __reduce__(self) -> tuple[type[InterruptError], tuple[int, str]]:
        return (InterruptError, (self.signum, str(self).removeprefix("interrupted by ")))


@contextlib.contextmanager
def failures_recorded(row: dict[str, Any]) -> Iterator[None]:
    """Record an error of the block in ``row`` (``status`` failed, ``error``, ``error_type``; a
    :class:`LanepipeError` by its message, anything else with its traceback's tail) instead of raising it: one bad
    clip, instruction or predictor never stops the others."""
    try:
        yield
    except LanepipeError as e:
        row.update(status="failed", error=str(e), error_type=type(e).__name__)
    except Exception as e:
        row.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}",
                   error_type=type(e).__name__)
