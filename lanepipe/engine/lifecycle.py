"""A run's lifecycle outside its stages: stopping cleanly on SIGINT/SIGTERM.

:func:`interrupt_signals` turns SIGTERM (and SIGINT, Ctrl-C) into :class:`~lanepipe.errors.InterruptError` in the
main thread while a run is in progress, so the run can record ``interrupted`` in its manifest and shut down the
local Ray instance it started (SIGTERM's default action would end the process on the spot, leaving both behind).
A driver killed with SIGKILL cannot do either: the next resume notices the stale ``running`` status instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from lanepipe.errors import InterruptError

_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


#: the signal's error, kept until the run ends: the handler raises it wherever the main thread happens to be, and
#: an ``except Exception`` there (a stage's per-item handler, Ray Data's iterator) may swallow it
_PENDING: list[InterruptError] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    err = InterruptError(signum, _NAMES.get(signal.Signals(signum), signal.Signals(signum).name))
    _PENDING[:] = [err]
    raise err


def raise_pending() -> None:
    """Raise the :class:`InterruptError` of a signal received in this run whose raise some handler swallowed (call
    between items: a Ctrl-C must stop the run, not only fail the item it landed in). A no-op without one, and
    outside the main thread."""
    if _PENDING and threading.current_thread() is threading.main_thread():
        raise _PENDING.pop()


@contextlib.contextmanager
def interrupt_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`InterruptError` inside this block (main thread only; elsewhere a no-op);
    the previous handlers come back afterwards. A handler someone else installed (not Python's defaults) is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved: dict[signal.Signals, Any] = {}
    _PENDING.clear()
    for sig in _NAMES:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            saved[sig] = current
            signal.signal(sig, _raise)
    try:
        yield
    finally:
        _PENDING.clear()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
