"""Logs: one line per request and per lifecycle event, as JSON lines or as text for people.

Everything goes to stderr through one handler on the root logger, so aiohttp's and asyncio's own
warnings come out in the same format. aiohttp's access log is silenced: `log_request` writes
ours. Secrets never reach the output: paths go through `redact_path_qs`, a field named after a
secret header or query parameter is replaced, and every message, string field and traceback is
scrubbed by `redact_text` as a last line of defence. So do not name an ordinary field `code` or
`state` (its value would be redacted): say `status`, `phase`, `exit_status`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from msc4191_shim.obs.redact import (
    REDACTED,
    SECRET_HEADERS,
    SECRET_QUERY_PARAMS,
    redact_path_qs,
    redact_text,
)

LOGGER_NAME = "msc4191_shim"
ACCESS_LOGGER_NAME = "msc4191_shim.access"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_logger = logging.getLogger(LOGGER_NAME)
_access_logger = logging.getLogger(ACCESS_LOGGER_NAME)
_SECRET_FIELDS = frozenset(
    name.casefold().replace("-", "_") for name in (*SECRET_HEADERS, *SECRET_QUERY_PARAMS)
)
_FIELDS_ATTR = "shim_fields"
_RESERVED = frozenset({"time", "level", "event", "logger", "exception", "stack"})


# the last second formatted: a busy shim writes many lines a second, and strftime is the slow part
_last_second: tuple[int, str] = (-1, "")
# field names are few (they come from the code), so whether one names a secret is worked out once
_secret_field_cache: dict[str, bool] = {}
_SECRET_FIELD_CACHE_SIZE = 512
# one encoder for every line: json.dumps would build a new one per call for these options;
# ensure_ascii: a control character or a lone surrogate in a path stays one line
_encode_json = json.JSONEncoder(ensure_ascii=True, default=str).encode


def rfc3339_utc(created: float) -> str:
    """`2026-11-26T19:00:00.123Z` for a `time.time()` value."""
    global _last_second
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    cached_seconds, prefix = _last_second
    if cached_seconds != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, prefix)
    return f"{prefix}.{millis:03d}Z"


def _is_secret_field(key: str) -> bool:
    secret = _secret_field_cache.get(key)
    if secret is None:
        secret = key.casefold().replace("-", "_") in _SECRET_FIELDS
        if len(_secret_field_cache) < _SECRET_FIELD_CACHE_SIZE:
            _secret_field_cache[key] = secret
    return secret


def _clean(key: str, value: object) -> object:
    """The value as it may be written: secrets replaced, lists and mappings kept as JSON."""
    if _is_secret_field(key):
        return REDACTED
    if value is None or type(value) is int:  # the common cases first
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean("", item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    return redact_text(str(value))


def _record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The event name and the fields of one record, scrubbed."""
    fields: Mapping[str, object] | None = getattr(record, _FIELDS_ATTR, None)
    out: dict[str, object] = {}
    if fields is None:  # a record from aiohttp, asyncio, ...: its message is the event
        out["logger"] = record.name
    out["event"] = redact_text(record.getMessage())
    for key, value in (fields or {}).items():
        out[f"{key}_" if key in _RESERVED else key] = _clean(key, value)
    if record.exc_info:
        out["exception"] = redact_text(logging.Formatter().formatException(record.exc_info))
    elif record.stack_info:
        out["stack"] = redact_text(record.stack_info)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time`, `level`, `event`, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"time": rfc3339_utc(record.created), "level": record.levelname}
        line.update(_record_fields(record))
        return _encode_json(line)


def _text_value(value: object, *, spaces: bool = False) -> str:
    """The value as is when that is unambiguous, else JSON-quoted (never a raw newline)."""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=True)
    text = "-" if value is None else str(value)
    if text and text.isprintable() and (spaces or not any(c in text for c in ' "')):
        return text
    return json.dumps(text, ensure_ascii=True)


def _text_request(fields: dict[str, object]) -> str:
    duration = fields.pop("duration_ms", None)
    head = [fields.pop(k, None) for k in ("method", "path", "status")]
    parts = [_text_value(v) for v in head]
    parts.append(f"{duration:.1f}ms" if isinstance(duration, float | int) else "-")
    return " ".join(parts)


class TextFormatter(logging.Formatter):
    """`2026-11-26T19:00:00.123Z INFO request GET /account/?action=x 302 1.2ms kind=deeplink`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _record_fields(record)
        event = fields.pop("event")
        parts = [rfc3339_utc(record.created), record.levelname, _text_value(event, spaces=True)]
        if event == "request" and record.name == ACCESS_LOGGER_NAME:
            parts.append(_text_request(fields))
        exception = fields.pop("exception", None)
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
        line = " ".join(parts)
        return f"{line}\n{exception}" if exception else line


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time, as logging's last-resort handler does."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(format: Literal["json", "text"], level: str) -> None:
    """Install (or replace, at reload) the stderr handler; silence aiohttp's access log."""
    if level.upper() not in LEVELS:
        raise ValueError(f"log level: expected one of {', '.join(LEVELS)}, got {level!r}")
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.CRITICAL + 1)
    access.propagate = False


def log_request(
    *,
    method: str,
    raw_path_qs: str,
    status: int | None,
    duration_s: float,
    bytes_sent: int,
    upstream_status: int | None,
    kind: str,
    outcome: str | None,
    client: str | None,
    request_id: str | None = None,
) -> None:
    """One line for a finished request; `status=None` when the response was aborted."""
    if not _access_logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "method": method,
        "path": redact_path_qs(raw_path_qs),
        "status": status,
        "duration_ms": round(duration_s * 1000, 3),
        "bytes": bytes_sent,
        "upstream_status": upstream_status,
        "kind": kind,
        "outcome": outcome,
        "client": client,
        "request_id": request_id,
    }
    # makeRecord and handle are what `.info()` does, less the search of the stack for the
    # caller's file and line, which no formatter here writes
    record = _access_logger.makeRecord(
        ACCESS_LOGGER_NAME,
        logging.INFO,
        __file__,
        0,
        "request",
        (),
        None,
        "log_request",
        {_FIELDS_ATTR: fields},
    )
    _access_logger.handle(record)


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """A lifecycle event (`start`, `ready`, `reload`, `draining`, `stopped`, `upstream_error`)."""
    _logger.log(level, event, extra={_FIELDS_ATTR: fields})
