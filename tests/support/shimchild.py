"""`msc4191-shim run` as a child process for synchronous tests (the fuzzer, raw-socket tests).

`tests/support/loopback.py`'s `ShimProcess` reads the child's stderr in the test's event loop; a
synchronous test that blocks on a socket would stop that reader, the pipe would fill and the shim
would block writing its access log. Here a thread reads it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.support.loopback import child_env, shim_settings, write_config
from tests.support.paths import REPO
from tests.support.rawhttp import Answer, EarlyAnswer, RecordingUpstream, recording_upstream

#: short limits, so that a test of something that hangs on a broken build takes seconds
FAST_LIMITS: dict[str, object] = {
    "head_timeout": "2s",
    "keepalive_timeout": "2s",
    "body_idle_timeout": "2s",
}


class ShimChild:
    """The shim started with `settings`; `port` is its public listener once it is ready."""

    def __init__(self, settings: dict[str, object], config_path: Path) -> None:
        write_config(config_path, settings)
        self.settings = settings
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shim", "run", "--config", str(config_path)],
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self.port = 0

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    found.append(record)
        return found

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while not (ready := self.events("ready")):
            if self.proc.poll() is not None:
                raise AssertionError(f"shim exited {self.proc.returncode}:\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"shim not ready within {within}s:\n{self.stderr}")
            time.sleep(0.02)
        self.port = int(str(ready[0]["listen"][0]).rsplit(":", 1)[1])

    def status_kib(self, key: str = "VmRSS") -> int:
        """A memory figure from /proc/<pid>/status in KiB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")

    def close(self) -> None:
        """Kill the child (only it, by its pid) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@contextlib.contextmanager
def shim_child(settings: dict[str, object], config_path: Path) -> Iterator[ShimChild]:
    child = ShimChild(settings, config_path)
    try:
        child.wait_ready()
        yield child
    finally:
        child.close()


@contextlib.contextmanager
def edge(
    config_path: Path,
    *,
    prefix: str = "",
    answer: Answer | None = None,
    early: EarlyAnswer | None = None,
    upstream: Mapping[str, object] | None = None,
    limits: Mapping[str, object] | None = None,
    **top: object,
) -> Iterator[tuple[RecordingUpstream, ShimChild]]:
    """A recording upstream (`prefix` on its URL) and a shim process in front of it."""
    with recording_upstream(answer, early=early) as portal:
        settings = shim_settings(
            portal.url + prefix,
            upstream={"read_timeout": "5s", **(upstream or {})},
            limits={**FAST_LIMITS, **(limits or {})},
            **top,
        )
        with shim_child(settings, config_path) as shim:
            yield portal, shim
