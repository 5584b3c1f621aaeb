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


def _raise(signum: int, frame: FrameType | None) -> None:
    raise InterruptError(signum, _NAMES.get(signal.Signals(signum), signal.Signals(signum).name))


@contextlib.contextmanager
def interrupt_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`InterruptError` inside this block (main thread only; elsewhere a no-op);
    the previous handlers come back afterwards. A handler someone else installed (not Python's defaults) is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved: dict[signal.Signals, Any] = {}
    for sig in _NAMES:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            saved[sig] = current
            signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
