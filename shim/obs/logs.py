"""Logs: one line per request and per lifecycle event, as JSON lines or as text for people.

This module builds the lines; `obs/log_setup.py` installs the one stderr handler that writes
them (this module is compiled with mypyc by setup.py, that one's logging subclasses are not).
Secrets never reach the output: paths go through `redact_path_qs`, a field named after a
secret header or query parameter is replaced, and every message, string field and traceback is
scrubbed by `redact_text` as a last line of defence. So do not name an ordinary field `code` or
`state` (its value would be redacted): say `status`, `phase`, `exit_status`.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from math import isfinite
from typing import Any, Final, Literal

from shim.obs.redact import (
    REDACTED,
    SECRET_HEADERS,
    SECRET_QUERY_PARAMS,
    redact_path_qs,
    redact_text,
)

LOGGER_NAME: Final = "msc4191_shim"
ACCESS_LOGGER_NAME: Final = "msc4191_shim.access"
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")

# Module state is Final (or inside a Final object) where it can be: compiled, a Final name is
# a C static, any other module name a lookup in the module's dict.
_logger: Final = logging.getLogger(LOGGER_NAME)
_access_logger: Final = logging.getLogger(ACCESS_LOGGER_NAME)
_SECRET_FIELDS: Final = frozenset(
    name.casefold().replace("-", "_") for name in (*SECRET_HEADERS, *SECRET_QUERY_PARAMS)
)
_FIELDS_ATTR: Final = "shim_fields"
_RESERVED: Final = frozenset({"time", "level", "event", "logger", "exception", "stack"})


#: the last second formatted (one entry, as `h1.http_date` keeps its date): a busy shim writes
#: many lines a second, and strftime is the slow part
_seconds: Final[dict[int, str]] = {}
# field names are few (they come from the code), so whether one names a secret is worked out once
_secret_field_cache: Final[dict[str, bool]] = {}
_SECRET_FIELD_CACHE_SIZE: Final = 512
# one encoder for every line: json.dumps would build a new one per call for these options;
# ensure_ascii: a control character or a lone surrogate in a path stays one line
_encode_json: Final = json.JSONEncoder(ensure_ascii=True, default=str).encode


def rfc3339_utc(created: float) -> str:
    """`2026-11-26T19:00:00.123Z` for a `time.time()` value."""
    seconds = int(created)
    prefix = _seconds.get(seconds)
    if prefix is None:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _seconds.clear()
        _seconds[seconds] = prefix
    return prefix + _MILLIS[min(999, int((created - seconds) * 1000))]


#: `.000Z` to `.999Z`, formatted once
_MILLIS: Final = tuple(f".{millis:03d}Z" for millis in range(1000))


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


def json_record_line(record: logging.LogRecord) -> str:
    """One JSON object on one line: `time`, `level`, `event`, then the fields
    (`log_setup.JsonFormatter`)."""
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


def text_record_line(record: logging.LogRecord) -> str:
    """`2026-11-26T19:00:00.123Z INFO request GET /account/?action=x 302 1.2ms kind=deeplink`
    (`log_setup.TextFormatter`)."""
    fields = _record_fields(record)
    event = fields.pop("event")
    parts = [rfc3339_utc(record.created), record.levelname, _text_value(event, spaces=True)]
    if event == "request" and record.name == ACCESS_LOGGER_NAME:
        parts.append(_text_request(fields))
    exception = fields.pop("exception", None)
    parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
    line = " ".join(parts)
    return f"{line}\n{exception}" if exception else line


def direct_to(handler: logging.Handler, format: Literal["json", "text"]) -> None:
    """Access lines go straight to `handler`'s stream (stderr) in `format` while it is the only
    handler they would reach (`log_setup.configure_logging` installs it)."""
    flush_access_lines()
    _out.direct = (handler, format)
    _out.direct_checked = False


# -- the access line: the hot path, written without a LogRecord
#
# When `log_setup.configure_logging` installed the stderr handler (and it is still the root's),
# an access line is encoded here directly, to the same text its formatter would write. Once the
# listener has called `batch_access_lines` with a way to run the flush later (its loop's
# `call_soon`, or `call_later` with `log.flush_interval`), lines are buffered and written with one
# `write` when that runs (and before any other record, at `configure_logging`, past `_FLUSH_AT`
# characters and at exit); otherwise each line is written at once. Without a handler of ours the
# line takes the ordinary logging path.


class _AccessOutput:
    """Where access lines go, and what is buffered for it (one per process: `_out`)."""

    def __init__(self) -> None:
        #: (the handler `log_setup.configure_logging` installed, its format)
        self.direct: tuple[logging.Handler, Literal["json", "text"]] | None = None
        self.pending: list[str] = []
        self.pending_size = 0
        #: how a flush is run later: the listener's `loop.call_soon` (at the end of this loop
        #: pass) or `loop.call_later` bound to `log.flush_interval`
        self.schedule: Callable[[Callable[[], None]], object] | None = None
        #: a scheduled flush is pending: the lines buffered meanwhile go out with it
        self.flush_scheduled = False
        #: the access logger is enabled and reaches only `direct`'s handler, as found for a line
        #: buffered since the last flush
        self.direct_checked = False


_out: Final = _AccessOutput()
_root: Final = logging.getLogger()
#: written at once past this many characters, so the buffer stays bounded
_FLUSH_AT: Final = 64 * 1024
# the scrubbed path of recent targets: clients repeat them, and the scrub is a regex or two
_path_cache: Final[dict[str, str]] = {}
_text_cache: Final[dict[str, str]] = {}
_PATH_CACHE_SIZE: Final = 1024
_PATH_CACHE_MAX_LEN: Final = 512
_quote: Final = encode_basestring_ascii  # the C encoder json uses with ensure_ascii
_ACCESS_KEYS: Final = (
    "method",
    "path",
    "status",
    "duration_ms",
    "bytes",
    "upstream_status",
    "kind",
    "outcome",
    "client",
    "request_id",
    "user_agent",
)


def batch_access_lines(schedule: Callable[[Callable[[], None]], object] | None) -> None:
    """Buffer access lines and flush them with `schedule(flush)`: `loop.call_soon` gives one
    `write` per loop pass, `functools.partial(loop.call_later, interval)` one per `interval` at
    most. None: write each line at once. Flushes what is buffered first."""
    flush_access_lines()
    _out.schedule = schedule
    _out.flush_scheduled = False  # a flush pending on another loop (a test's) may never run


def _reaches_only(handler: logging.Handler) -> bool:
    """True when an access record would go to `handler` and to no other: the logger is enabled
    and unfiltered, and it and its parents up to the root pass it on without handlers of their
    own (what `Logger.handle` and `callHandlers` check)."""
    logger: logging.Logger | None = _access_logger
    if _access_logger.disabled or _access_logger.filters:
        return False
    while logger is not None and logger is not _root:
        if logger.handlers or not logger.propagate:
            return False
        logger = logger.parent
    return logger is _root and handler in _root.handlers


def _scheduled_flush() -> None:
    _out.flush_scheduled = False
    flush_access_lines()


def flush_access_lines() -> None:
    """Write the buffered access lines now (one `write`). A scheduled flush stays scheduled:
    the lines buffered after this one wait for it, so no line waits longer than it would have."""
    out = _out
    out.direct_checked = False
    if not out.pending:
        return
    text = "".join(out.pending)
    out.pending.clear()
    out.pending_size = 0
    stream = sys.stderr
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # stderr closed or gone: as logging does, never crash for it
        pass


atexit.register(flush_access_lines)


def _scrubbed_path(raw_path_qs: str) -> str:
    path = _path_cache.get(raw_path_qs)
    if path is None:
        path = redact_text(redact_path_qs(raw_path_qs))
        if len(raw_path_qs) <= _PATH_CACHE_MAX_LEN:
            if len(_path_cache) >= _PATH_CACHE_SIZE:
                _path_cache.clear()
            _path_cache[raw_path_qs] = path
    return path


def _json_text(value: str | None) -> str:
    """A string field scrubbed and JSON-quoted; methods, kinds, outcomes and clients repeat."""
    encoded = _text_cache.get(value)  # type: ignore[arg-type]
    if encoded is None:
        if value is None:
            return "null"
        if type(value) is not str:
            return _encode_json(_clean("", value))
        encoded = _quote(redact_text(value))
        if len(value) <= _PATH_CACHE_MAX_LEN:
            if len(_text_cache) >= _PATH_CACHE_SIZE:
                _text_cache.clear()
            _text_cache[value] = encoded
    return encoded


def _json_float(value: float) -> str:
    # what the encoder writes for a finite float, without its per-call set-up
    if type(value) is float and isfinite(value):
        return repr(value)
    return _encode_json(value)


def _json_int(value: int | None) -> str:
    if value is None:
        return "null"
    return str(value) if type(value) is int else _encode_json(value)


_texts_cache: Final[dict[tuple[str | None, ...], tuple[str, ...]]] = {}
#: a duration's microseconds past the millisecond as JSON writes `us / 1000`: `.0`, `.001`, `.5`
_MICROS: Final = tuple(f".{micros:03d}".rstrip("0").ljust(2, "0") for micros in range(1000))
#: below this many microseconds, `ms + _MICROS[us]` is the float's repr (no exponent)
_MICROS_PLAIN: Final = 10**15


def access_line(
    created: float,
    format: Literal["json", "text"],
    method: str,
    path: str,
    status: int | None,
    duration_us: int,
    bytes_sent: int,
    upstream_status: int | None,
    kind: str,
    outcome: str | None,
    client: str | None,
    request_id: str | None,
    user_agent: str | None = None,
) -> str:
    """The access line (no newline) the handler's formatter writes for a request record with
    these fields and `duration_ms` `duration_us / 1000`; `path` is scrubbed already
    (`_scrubbed_path`), the other strings are not. `user_agent` (deep links only) is left out
    when None.

    The shim calls it once a request, with positional arguments (keywords cost more than the
    JSON line's own assembly); the names are there for readers and tests."""
    if format == "json" and type(method) is str and type(path) is str and type(kind) is str:
        # the five strings that repeat from request to request, encoded once per combination
        key = (method, kind, outcome, client, request_id)
        texts = _texts_cache.get(key)
        if texts is None:
            texts = tuple(map(_json_text, key))
            if len(_texts_cache) >= _PATH_CACHE_SIZE:
                _texts_cache.clear()
            _texts_cache[key] = texts
        status_text = str(status) if type(status) is int else _json_int(status)
        bytes_text = str(bytes_sent) if type(bytes_sent) is int else _json_int(bytes_sent)
        if 0 <= duration_us < _MICROS_PLAIN:  # no float formatting: a table
            duration_text = f"{duration_us // 1000}{_MICROS[duration_us % 1000]}"
        else:
            duration_text = _json_float(duration_us / 1000)
        agent = "" if user_agent is None else f', "user_agent": {_json_text(user_agent)}'
        # one f-string: compiled (setup.py), it is built in one step
        return (
            f'{{"time": "{rfc3339_utc(created)}", "level": "INFO", "event": "request", '
            f'"method": {texts[0]}, "path": {_quote(path)}, "status": {status_text}, '
            f'"duration_ms": {duration_text}, "bytes": {bytes_text}, '
            f'"upstream_status": {_json_int(upstream_status)}, "kind": {texts[1]}, '
            f'"outcome": {texts[2]}, "client": {texts[3]}, "request_id": {texts[4]}{agent}}}'
        )
    values = (
        method,
        path,
        status,
        duration_us / 1000,
        bytes_sent,
        upstream_status,
        kind,
        outcome,
        client,
        request_id,
        user_agent,
    )
    fields = {
        key: value if key == "path" else _clean(key, value)
        for key, value in zip(_ACCESS_KEYS, values, strict=True)
        if key != "user_agent" or value is not None
    }
    if format == "json":
        line: dict[str, object] = {"time": rfc3339_utc(created), "level": "INFO"}
        line["event"] = "request"
        line.update(fields)
        return _encode_json(line)
    parts = [rfc3339_utc(created), "INFO", "request", _text_request(fields)]
    parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
    return " ".join(parts)


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
    user_agent: str | None = None,
) -> None:
    """One line for a finished request; `status=None` when the response was aborted.

    `user_agent`: the client's, on deep-link lines (whom to chase, docs/retirement.md)."""
    out = _out
    direct = out.direct
    # to the microsecond, as an integer: formatting a float costs more than the rest of the line
    duration_us = int(duration_s * 1_000_000 + 0.5)
    if direct is None or not out.direct_checked:
        if not _access_logger.isEnabledFor(logging.INFO):
            return
        if direct is None or not _reaches_only(direct[0]):
            fields: dict[str, object] = {
                "method": method,
                "path": redact_path_qs(raw_path_qs),
                "status": status,
                "duration_ms": duration_us / 1000,
                "bytes": bytes_sent,
                "upstream_status": upstream_status,
                "kind": kind,
                "outcome": outcome,
                "client": client,
                "request_id": request_id,
            }
            if user_agent is not None:
                fields["user_agent"] = user_agent
            _log_request_record(fields)
            return
        # lines are buffered until the next flush: until then they go the way this one goes
        # (a level or handler changed meanwhile applies from that flush, `direct_to` at once)
        out.direct_checked = out.schedule is not None
    assert direct is not None  # checked above, or when `direct_checked` was set
    line = access_line(
        time.time(),
        direct[1],
        method,
        _scrubbed_path(raw_path_qs),
        status,
        duration_us,
        bytes_sent,
        upstream_status,
        kind,
        outcome,
        client,
        request_id,
        user_agent,
    )
    out.pending.append(line + "\n")
    out.pending_size += len(line) + 1
    schedule = out.schedule
    if schedule is None or out.pending_size > _FLUSH_AT:
        flush_access_lines()
    elif not out.flush_scheduled:
        try:
            schedule(_scheduled_flush)
        except RuntimeError:  # the loop is closed: no more batching
            out.schedule = None
            flush_access_lines()
        else:
            out.flush_scheduled = True


def _log_request_record(fields: dict[str, object]) -> None:
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
