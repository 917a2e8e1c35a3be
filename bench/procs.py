"""Starting, waiting for and stopping the benchmark's processes, each pinned with `taskset`.

Every process runs in its own session, so stopping one can kill its whole group (nginx's master
and workers, the shim's supervisor and workers) and never anything the benchmark did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class BenchError(Exception):
    """Something that stops the benchmark; the message says what and what to do."""


@dataclass(frozen=True, slots=True)
class Server:
    """A started process that serves HTTP on `address`, and the log that says why it failed."""

    process: subprocess.Popen[bytes]
    address: str
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpus: str, command: Sequence[str]) -> list[str]:
    """`command` run on the CPUs `cpus` (a taskset list such as `0` or `0,1`)."""
    return ["taskset", "-c", cpus, *command]


def spawn(
    command: Sequence[str], cpus: str, log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` on `cpus` in a session of its own, its stdout and stderr into `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            pinned(cpus, command), cwd=cwd, stdout=out, stderr=out, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (both nginx and the shim drain and exit); SIGKILL the group if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what we started
        process.wait()


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    timeout: float,
    not_ready: Callable[[], str],
) -> None:
    """Return once `ready()`; fail at once if `process` exits first.

    `not_ready()` says what was still missing, for the error after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise BenchError(
                f"{process.args!r} exited with {process.returncode} before ready: {not_ready()}"
            )
        if time.monotonic() > deadline:
            raise BenchError(f"{not_ready()} within {timeout:.0f} s")
        time.sleep(0.05)


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:`port` (one per SO_REUSEPORT worker)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == wanted and line.split()[3] == "0A")


def wait_listeners(port: int, count: int, process: subprocess.Popen[bytes]) -> None:
    """Every worker has bound the port, so SO_REUSEPORT spreads the load from the start."""
    wait_until(
        lambda: listeners(port) >= count,
        process,
        20.0,
        lambda: f"only {listeners(port)} of {count} workers listen on {port}",
    )
