"""Installing the logs: the stderr handler on the root logger, in JSON lines, ECS JSON lines or
text for people.

Everything goes to stderr through one handler on the root logger, so aiohttp's and asyncio's own
warnings come out in the same format; aiohttp's access log is silenced (`obs/logs.log_request`
writes ours). The lines themselves are built in `obs/logs.py`. These classes extend logging's
own and stay plain Python: `obs/logs.py` is compiled with mypyc (setup.py), and a compiled
subclass of `logging.Handler` crashed the process after many reloads (a weak reference to a
freed handler, caught by tests/process/test_edge_process.py's SIGHUP storm).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from shim.obs.logs import (
    LEVELS,
    direct_to,
    ecs_record_line,
    flush_access_lines,
    json_record_line,
    text_record_line,
)

if TYPE_CHECKING:
    from shim.config.model import LogFormat


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time`, `level`, `event`, `message`, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        return json_record_line(record)


class EcsFormatter(logging.Formatter):
    """One Elastic Common Schema object per line: `@timestamp`, `log.level`, `message`, ..."""

    def format(self, record: logging.LogRecord) -> str:
        return ecs_record_line(record)


class TextFormatter(logging.Formatter):
    """`2026-11-26T19:00:00.123Z INFO request GET /account/?action=x 302 1.2ms kind=deeplink`."""

    def format(self, record: logging.LogRecord) -> str:
        return text_record_line(record)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time, as logging's last-resort handler does."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        flush_access_lines()  # access lines written before this record come out before it
        super().emit(record)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_FORMATTERS: dict[str, type[logging.Formatter]] = {
    "json": JsonFormatter,
    "ecs": EcsFormatter,
    "text": TextFormatter,
}


def configure_logging(format: LogFormat, level: str) -> None:
    """Install (or replace, at reload) the stderr handler; silence aiohttp's access log."""
    if level.upper() not in LEVELS:
        raise ValueError(f"log level: expected one of {', '.join(LEVELS)}, got {level!r}")
    handler = _StderrHandler()
    handler.setFormatter(_FORMATTERS[format]())
    direct_to(handler, format)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.CRITICAL + 1)
    access.propagate = False
