"""Signals that arrive before the event loop can take them are held, not fatal.

A SIGHUP's default action ends the process (exit 129, nothing logged), and the shim needs a few
hundred milliseconds to import, read its file and bind before the loop installs its handlers.
`hold_signals()` is the first thing `main` does: from then on SIGHUP, SIGTERM and SIGINT are
recorded, and `serve` replays them once its own handlers are in place (a held SIGTERM stops the
shim as soon as it is up; a held SIGHUP reloads it). This module imports only `signal`, so it
can run before anything heavy is loaded.
"""

from __future__ import annotations

import signal
from types import FrameType

HELD_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
_held: list[signal.Signals] = []


def _hold(signum: int, _frame: FrameType | None) -> None:
    _held.append(signal.Signals(signum))


def hold_signals() -> None:
    """Record SIGHUP/SIGTERM/SIGINT from now on, and let through any the parent kept blocked.

    The `--workers` supervisor starts its workers with these signals blocked (a blocked signal
    stays pending across exec), so a worker has no moment at all in which they are fatal.
    """
    for signum in HELD_SIGNALS:
        signal.signal(signum, _hold)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)


def take_held() -> list[signal.Signals]:
    """The signals held so far, oldest first, each once (a burst of SIGHUPs is one reload)."""
    taken = list(dict.fromkeys(_held))
    _held.clear()
    return taken


def release_signals() -> None:
    """For commands that do not serve: the usual dispositions, and any held signal acted on."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in take_held():
        signal.raise_signal(signum)
