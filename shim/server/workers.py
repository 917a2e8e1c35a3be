"""`--workers N`: a small supervisor that keeps N shim processes on one port and relays signals.

It imports nothing heavy (no aiohttp, no prometheus-client), so the supervisor stays small; the
workers share their metrics through files in one directory (`obs/snapshots.py`). Without one
that the workers can write, each scrape would return one worker's counters, which look plausible
and are wrong: the supervisor refuses to start instead (`start_failed`, exit 1).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shim.obs import MULTIPROC_ENV
from shim.obs.snapshots import live_files, worker_files
from shim.server.signals import HELD_SIGNALS, take_held


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> None:
    """Create the directory if needed and delete the workers' files an earlier run left there
    (they would be added in).

    Only the shim's own files are deleted, so a mistaken path (`/tmp`) loses nothing else.
    Raises `OSError` with the path when the directory cannot be made or written.
    """
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in worker_files(directory):
            stale.unlink(missing_ok=True)
    except OSError as error:
        raise OSError(
            f"{MULTIPROC_ENV}={str(directory)!r} cannot be prepared ({error.strerror or error}); "
            "make it a directory the shim's user can write, or unset the variable"
        ) from error
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OSError(f"{MULTIPROC_ENV}={str(directory)!r} is not writable by this user")


def share_metrics_between(count: int) -> str:
    """Workers must agree on one PROMETHEUS_MULTIPROC_DIR, which they inherit: the variable's
    directory, prepared, or a new one in the temporary directory. Returns it.

    Raises `OSError` saying what to do when there is none the workers could write.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        try:
            directory = tempfile.mkdtemp(prefix="msc4191-shim-metrics-")
        except OSError as exc:
            raise OSError(
                f"--workers {count}: cannot create a directory for the workers' metrics in "
                f"{tempfile.gettempdir()!r} ({exc.strerror or exc}); set {MULTIPROC_ENV} to a "
                "directory the shim's user can write (with a read-only root filesystem, mount a "
                "tmpfs or emptyDir there), or run one worker"
            ) from exc
        os.environ[MULTIPROC_ENV] = directory
    try:
        prepare_multiprocess_dir(directory)
    except OSError as exc:
        raise OSError(
            f"--workers {count}: the workers' metrics need a shared directory: {exc}"
        ) from exc
    return directory


def forget_live_gauges(directory: str, pid: int) -> None:
    """A dead worker's live gauges (in flight, the cache's age) no longer count: its live file
    goes (its counts stay, so that counters never go backwards)."""
    for stale in live_files(Path(directory), pid):
        stale.unlink(missing_ok=True)


#: a worker that dies is started again after this long, doubling per death up to the cap (the
#: CrashLoopBackOff of Kubernetes: 10 s doubling to 5 min; shorter here, as a worker starts in
#: well under a second); a worker that served this long before dying starts from the floor again
RESTART_BACKOFF = (0.5, 30.0)
STABLE_AFTER = 60.0
POLL_INTERVAL = 0.1


@dataclass
class Worker:
    slot: int
    process: subprocess.Popen[bytes]
    started: float
    backoff: float = RESTART_BACKOFF[0]
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Keeps `count` workers running until told to stop; remembers whether one ever died."""

    count: int
    argv: Sequence[str]
    #: the workers' shared metrics directory
    metrics_dir: str
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False
    died_abnormally: bool = False
    restarts: int = 0

    def spawn(self, slot: int, backoff: float = RESTART_BACKOFF[0]) -> Worker:
        # Started with SIGHUP/SIGTERM/SIGINT blocked: they stay pending across exec until the
        # worker's first instruction holds them (server.signals), so none can end it early.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        try:
            process = subprocess.Popen([sys.executable, "-m", "shim", *self.argv, "--worker"])
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return Worker(slot, process, time.monotonic(), backoff)

    def relay(self, signum: int, _frame: object = None) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signum)

    def check(self) -> None:
        """Notice dead workers and start each again once its backoff has passed."""
        now = time.monotonic()
        for index, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None or self.stopping:
                continue
            if worker.restart_at is None:
                self._died(worker, code, now)
            elif now >= worker.restart_at:
                self.workers[index] = replacement = self.spawn(worker.slot, worker.backoff)
                self.restarts += 1
                log_supervisor(
                    "worker_restarted",
                    slot=worker.slot,
                    pid=replacement.process.pid,
                    restarts_total=self.restarts,
                )

    def _died(self, worker: Worker, code: int, now: float) -> None:
        self.died_abnormally = True  # a worker is never meant to exit while the shim runs
        forget_live_gauges(self.metrics_dir, worker.process.pid)
        if now - worker.started >= STABLE_AFTER:
            worker.backoff = RESTART_BACKOFF[0]
        worker.restart_at = now + worker.backoff
        log_supervisor(
            "worker_died",
            level=logging.ERROR,
            slot=worker.slot,
            pid=worker.process.pid,
            **exit_fields(code),
            restart_in_seconds=worker.backoff,
        )
        worker.backoff = min(worker.backoff * 2, RESTART_BACKOFF[1])

    def exit_status(self) -> int:
        """0 only when every worker stopped cleanly and none died while the shim ran."""
        codes = [worker.process.wait() for worker in self.workers]
        if self.died_abnormally or any(code != 0 for code in codes):
            return 1
        return 0


def exit_fields(code: int) -> dict[str, object]:
    """`exit_code` for an exit, `signal` (its name) for a death by signal."""
    if code < 0:
        return {"signal": signal.Signals(-code).name}
    return {"exit_code": code}


def log_supervisor(event: str, *, level: int = logging.INFO, **fields: object) -> None:
    """One JSON line on stderr, like the workers' lifecycle events (the supervisor loads no
    logging configuration of its own)."""
    record = {"event": event, "level": logging.getLevelName(level), "supervisor": os.getpid()}
    print(json.dumps({**record, **fields}), file=sys.stderr, flush=True)


def run_workers(count: int, argv: Sequence[str]) -> int:
    """Start `count` workers sharing the listeners (SO_REUSEPORT), keep them running, relay signals.

    A worker that dies is logged (`worker_died`) and started again with backoff
    (`worker_restarted`); the supervisor then exits 1 when it stops, so the death is not lost.
    """
    try:
        metrics_dir = share_metrics_between(count)
    except OSError as exc:
        log_supervisor("start_failed", level=logging.ERROR, error=str(exc))
        return 1
    supervisor = Supervisor(count, argv, metrics_dir)
    for signum in HELD_SIGNALS:
        signal.signal(signum, supervisor.relay)
    supervisor.workers = [supervisor.spawn(slot) for slot in range(count)]
    for signum in take_held():  # arrived before the relay was in place
        supervisor.relay(signum)
    while not supervisor.stopping:
        supervisor.check()
        time.sleep(POLL_INTERVAL)
    return supervisor.exit_status()
