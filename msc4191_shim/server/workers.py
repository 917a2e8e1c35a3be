"""`--workers N`: a small supervisor that starts N shim processes on one port and relays signals.

It imports nothing heavy (no aiohttp, no prometheus-client), so the supervisor stays small; the
workers share their metrics through prometheus-client's multiprocess directory.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from msc4191_shim.obs import MULTIPROC_ENV

logger = logging.getLogger("msc4191_shim.workers")


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> None:
    """Create the directory if needed and delete the `*.db` files an earlier run left there.

    Only prometheus-client's own files are deleted, so a mistaken path (`/tmp`) loses nothing
    else. Raises `OSError` with the path when the directory cannot be made or written.
    """
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    except OSError as error:
        raise OSError(
            f"{MULTIPROC_ENV}={str(directory)!r} cannot be prepared ({error.strerror or error}); "
            "make it a directory the shim's user can write, or unset the variable"
        ) from error
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OSError(f"{MULTIPROC_ENV}={str(directory)!r} is not writable by this user")


def share_metrics_between(count: int) -> None:
    """Workers must agree on one PROMETHEUS_MULTIPROC_DIR before prometheus-client loads."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        try:
            directory = tempfile.mkdtemp(prefix="msc4191-shim-metrics-")
        except OSError as exc:
            logger.warning(
                "cannot create a metrics directory (%s); set %s to a writable directory, or "
                "each of the %d workers reports only its own",
                exc.strerror,
                MULTIPROC_ENV,
                count,
            )
            return
        os.environ[MULTIPROC_ENV] = directory
    prepare_multiprocess_dir(directory)


def run_workers(count: int, argv: Sequence[str]) -> int:
    """Start `count` worker processes sharing the listeners (SO_REUSEPORT); relay signals."""
    share_metrics_between(count)
    workers = [
        subprocess.Popen([sys.executable, "-m", "msc4191_shim", *argv, "--worker"])
        for _ in range(count)
    ]

    def relay(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, relay)
    codes = [worker.wait() for worker in workers]
    return max(codes, default=0)
