"""Logs: one line per request and per lifecycle event, as JSON lines, as Elastic Common Schema
(ECS) JSON lines, or as text for people.

JSON (`log.format: json`): `time`, `level`, `event` (the event's name), `message` (for a request
`GET /path 302`, else the event's name), then the event's own fields. ECS (`log.format: ecs`):
`@timestamp`, `log.level`, `message`, `ecs.version` first (ecs-logging's spec), then ECS's own
objects (`log`, `event`, `http`, `url`, `client`, `user_agent`, `error`) and everything else of
ours under `msc4191_shim`, so no field of ours lands where ECS expects something else (ECS's
`event` and `client` are objects).

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
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from math import isfinite
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from shim.config.model import LogFormat

from shim.http.secrets import REDACTED, SECRET_QUERY_PARAMS, redact_path_qs
from shim.memo import Memo
from shim.obs.redact import SECRET_HEADERS, redact_text

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
#: an access record's User-Agent, for the ECS line only (the JSON and text lines have none)
_USER_AGENT_ATTR: Final = "shim_user_agent"
_RESERVED: Final = frozenset({"time", "level", "event", "message", "logger", "exception", "stack"})
#: the ECS version whose field names the `ecs` format writes
ECS_VERSION: Final = "8.11.0"
#: ECS `event.dataset` of access lines and of the other lines
_ECS_ACCESS_DATASET: Final = "msc4191_shim.access"
_ECS_LOG_DATASET: Final = "msc4191_shim.log"


#: the last second formatted (one entry, as `h1.http_date` keeps its date): a busy shim writes
#: many lines a second, and strftime is the slow part
_seconds: Final[Memo[int, str]] = Memo(1)
# field names are few (they come from the code), so whether one names a secret is worked out once
_secret_fields: Final[Memo[str, bool]] = Memo(512)
# one encoder for every line: json.dumps would build a new one per call for these options;
# ensure_ascii: a control character or a lone surrogate in a path stays one line
_encode_json: Final = json.JSONEncoder(ensure_ascii=True, default=str).encode


def rfc3339_utc(created: float) -> str:
    """`2026-11-26T19:00:00.123Z` for a `time.time()` value."""
    seconds = int(created)
    prefix = _seconds.get(seconds)
    if prefix is None:
        prefix = _seconds.put(seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return prefix + _MILLIS[min(999, int((created - seconds) * 1000))]


#: `.000Z` to `.999Z`, formatted once
_MILLIS: Final = tuple(f".{millis:03d}Z" for millis in range(1000))


def _is_secret_field(key: str) -> bool:
    secret = _secret_fields.get(key)
    if secret is None:
        secret = _secret_fields.put(key, key.casefold().replace("-", "_") in _SECRET_FIELDS)
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


def _access_record_line(record: logging.LogRecord, format: LogFormat) -> str | None:
    """A `log_request` record's line, written by `access_line` from the record's values (its
    scrubbed path scrubbed once more, as every string field is); None for any other record."""
    fields = getattr(record, _FIELDS_ATTR, None)
    if (
        record.name != ACCESS_LOGGER_NAME
        or record.msg != "request"
        or record.levelno != logging.INFO
        or not isinstance(fields, dict)
    ):
        return None
    method, path, kind = fields.get("method"), fields.get("path"), fields.get("kind")
    status, duration_ms = fields.get("status"), fields.get("duration_ms")
    bytes_sent, upstream_status = fields.get("bytes"), fields.get("upstream_status")
    outcome, client = fields.get("outcome"), fields.get("client")
    request_id = fields.get("request_id")
    # the ECS line carries the request's User-Agent, the others the deep link's field
    user_agent = (
        getattr(record, _USER_AGENT_ATTR, None) if format == "ecs" else fields.get("user_agent")
    )
    # the types `log_request` gives them (compiled, `access_line` would refuse others): a record
    # someone else made that only looks like ours is written as an ordinary event
    if not (
        type(method) is str
        and type(path) is str
        and type(kind) is str
        and type(bytes_sent) is int
        and type(duration_ms) is float
        and isfinite(duration_ms)
        and (status is None or type(status) is int)
        and (upstream_status is None or type(upstream_status) is int)
        and (outcome is None or type(outcome) is str)
        and (client is None or type(client) is str)
        and (request_id is None or type(request_id) is str)
        and (user_agent is None or type(user_agent) is str)
    ):
        return None
    return access_line(
        record.created, format, method, redact_text(path), status, _microseconds(duration_ms),
        bytes_sent, upstream_status, kind, outcome, client, request_id, user_agent,
    )  # fmt: skip


def _microseconds(duration_ms: float) -> int:
    """The whole microseconds `log_request` wrote as `duration_ms` (`us / 1000`). Past 2**51 us
    the product is off by a unit or two: the neighbour whose `/ 1000` is that float is taken."""
    micros = round(duration_ms * 1000)
    for near in (micros, micros - 1, micros + 1, micros - 2, micros + 2):
        if near / 1000 == duration_ms:
            return near
    return micros


def json_record_line(record: logging.LogRecord) -> str:
    """One JSON object on one line: `time`, `level`, `event`, `message`, then the fields
    (`log_setup.JsonFormatter`)."""
    access = _access_record_line(record, "json")
    if access is not None:
        return access
    fields = _record_fields(record)
    line: dict[str, object] = {"time": rfc3339_utc(record.created), "level": record.levelname}
    if "logger" in fields:
        line["logger"] = fields.pop("logger")
    line["event"] = line["message"] = fields["event"]
    line.update(fields)
    return _encode_json(line)


def ecs_record_line(record: logging.LogRecord) -> str:
    """One ECS JSON object on one line (`log_setup.EcsFormatter`): see the module's docstring."""
    access = _access_record_line(record, "ecs")
    if access is not None:
        return access
    fields = _record_fields(record)
    message = fields.pop("event")
    fields.pop("logger", None)
    exception = fields.pop("exception", None)
    stack = fields.pop("stack", None)
    line: dict[str, object] = {
        "@timestamp": rfc3339_utc(record.created),
        "log.level": record.levelname.lower(),
        "message": message,
        "ecs.version": ECS_VERSION,
        "log": {"logger": record.name},
    }
    event: dict[str, object] = {"dataset": _ECS_LOG_DATASET}
    if getattr(record, _FIELDS_ATTR, None) is not None:
        event["action"] = message  # the shim's own events are named
    line["event"] = event
    if exception is not None or stack is not None:
        line["error"] = {"stack_trace": exception if exception is not None else stack}
    if fields:
        line["msc4191_shim"] = fields
    return _encode_json(line)


def _ecs_duration(duration_ms: object) -> object:
    """ECS's `event.duration` is in nanoseconds; `duration_ms` is microseconds / 1000."""
    if isinstance(duration_ms, float | int) and isfinite(duration_ms):
        return round(duration_ms * 1000) * 1000
    return None


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
    access = _access_record_line(record, "text")
    if access is not None:
        return access
    fields = _record_fields(record)
    event = fields.pop("event")
    parts = [rfc3339_utc(record.created), record.levelname, _text_value(event, spaces=True)]
    exception = fields.pop("exception", None)
    parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
    line = " ".join(parts)
    return f"{line}\n{exception}" if exception else line


def direct_to(handler: logging.Handler, format: LogFormat) -> None:
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
        self.direct: tuple[logging.Handler, LogFormat] | None = None
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
_PATH_CACHE_SIZE: Final = 1024
_path_cache: Final[Memo[str, str]] = Memo(_PATH_CACHE_SIZE)
_text_cache: Final[Memo[str, str]] = Memo(_PATH_CACHE_SIZE)
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
            _path_cache.put(raw_path_qs, path)
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
            _text_cache.put(value, encoded)
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


_texts_cache: Final[Memo[tuple[str | None, ...], tuple[str, ...]]] = Memo(_PATH_CACHE_SIZE)
#: a duration's microseconds past the millisecond as JSON writes `us / 1000`: `.0`, `.001`, `.5`
_MICROS: Final = tuple(f".{micros:03d}".rstrip("0").ljust(2, "0") for micros in range(1000))
#: below this many microseconds, `ms + _MICROS[us]` is the float's repr (no exponent)
_MICROS_PLAIN: Final = 10**15


def access_line(
    created: float,
    format: LogFormat,
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
    """The access line (no newline) of one request in `format`, `duration_ms` written as
    `duration_us / 1000`; `path` is scrubbed already (`_scrubbed_path`), the other strings are
    not. `user_agent`, when given, is written too.

    The one writer of an access line: `log_request` calls it once a request, with positional
    arguments (keywords cost more than the JSON line's own assembly; the names are there for
    readers and tests), and the formatters call it for a request record (`_access_record_line`).
    """
    if format == "json":
        return _json_access_line(
            created, method, path, status, duration_us, bytes_sent, upstream_status, kind,
            outcome, client, request_id, user_agent,
        )  # fmt: skip
    if format == "ecs":
        return _ecs_access_line(
            created, method, path, status, duration_us, bytes_sent, upstream_status, kind,
            outcome, client, request_id, user_agent,
        )  # fmt: skip
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
    parts = [rfc3339_utc(created), "INFO", "request", _text_request(fields)]
    parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
    return " ".join(parts)


def _json_access_line(
    created: float,
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
    # the five strings that repeat from request to request, encoded once per combination
    key = (method, kind, outcome, client, request_id)
    texts = _texts_cache.get(key)
    if texts is None:
        texts = _texts_cache.put(key, tuple(map(_json_text, key)))
    if status is None:
        status_text, status_word = "null", "-"
    else:
        status_text = status_word = str(status)
    if 0 <= duration_us < _MICROS_PLAIN:  # no float formatting: a table
        duration_text = f"{duration_us // 1000}{_MICROS[duration_us % 1000]}"
    else:
        duration_text = _json_float(duration_us / 1000)
    quoted_path = _quote(path)
    agent = "" if user_agent is None else f', "user_agent": {_json_text(user_agent)}'
    # one f-string: compiled (setup.py), it is built in one step. The message is the quoted
    # method and path joined inside one pair of quotes: JSON escapes character by character
    return (
        f'{{"time": "{rfc3339_utc(created)}", "level": "INFO", "event": "request", '
        f'"message": {texts[0][:-1]} {quoted_path[1:-1]} {status_word}", '
        f'"method": {texts[0]}, "path": {quoted_path}, "status": {status_text}, '
        f'"duration_ms": {duration_text}, "bytes": {bytes_sent}, '
        f'"upstream_status": {_json_int(upstream_status)}, "kind": {texts[1]}, '
        f'"outcome": {texts[2]}, "client": {texts[3]}, "request_id": {texts[4]}{agent}}}'
    )


_ecs_cache: Final[Memo[tuple[str | None, ...], tuple[str, str, str, str]]] = Memo(_PATH_CACHE_SIZE)


def _ecs_parts(
    method: str,
    kind: str,
    outcome: str | None,
    client: str | None,
    request_id: str | None,
    user_agent: str | None,
) -> tuple[str, str, str, str]:
    """The pieces of an ECS access line made of strings that repeat from request to request:
    (quoted method, `http.request`, the `client` and `user_agent` members, `msc4191_shim`'s
    start), built once per combination."""
    key = (method, kind, outcome, client, request_id, user_agent)
    parts = _ecs_cache.get(key)
    if parts is None:
        quoted_method = _json_text(method)
        request = f'{{"method": {quoted_method}'
        if request_id is not None:
            request += f', "id": {_json_text(request_id)}'
        middle = ""
        if client is not None:
            middle += f', "client": {{"ip": {_json_text(client)}}}'
        if user_agent is not None:
            middle += f', "user_agent": {{"original": {_json_text(user_agent)}}}'
        ours = f'"msc4191_shim": {{"kind": {_json_text(kind)}'
        if outcome is not None:
            ours += f', "outcome": {_json_text(outcome)}'
        parts = (quoted_method, request + "}", middle, ours)
        _ecs_cache.put(key, parts)
    return parts


def _ecs_access_line(
    created: float,
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
    user_agent: str | None,
) -> str:
    quoted_method, request, middle, ours = _ecs_parts(
        method, kind, outcome, client, request_id, user_agent
    )
    url_path, mark, query = path.partition("?")
    quoted_path = _quote(url_path)
    if query:
        url = f'{{"path": {quoted_path}, "query": {_quote(query)}}}'
        query_text = "?" + _quote(query)[1:-1]
    else:
        url = f'{{"path": {quoted_path}}}'
        query_text = mark
    body = f'"body": {{"bytes": {bytes_sent}}}'
    if status is None:
        response, status_word = f"{{{body}}}", "-"
    else:
        status_word = str(status)
        response = f'{{"status_code": {status_word}, {body}}}'
    if upstream_status is not None:
        ours = f'{ours}, "upstream_status": {upstream_status}}}'
    else:
        ours += "}"
    return (
        f'{{"@timestamp": "{rfc3339_utc(created)}", "log.level": "info", '
        f'"message": {quoted_method[:-1]} {quoted_path[1:-1]}{query_text} {status_word}", '
        f'"ecs.version": "{ECS_VERSION}", "log": {{"logger": "{ACCESS_LOGGER_NAME}"}}, '
        f'"event": {{"dataset": "{_ECS_ACCESS_DATASET}", '
        f'"duration": {_ecs_duration(duration_us / 1000)}}}, '
        f'"http": {{"request": {request}, "response": {response}}}, "url": {url}{middle}, '
        f"{ours}}}"
    )


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
    request_fields: Sequence[tuple[bytes, bytes]] = (),
    user_agent: str | None = None,
) -> None:
    """One line for a finished request; `status=None` when the response was aborted.

    `user_agent`: the client's, on deep-link lines (whom to chase, docs/retirement.md);
    `request_fields`: the request's header fields, read for the User-Agent every ECS line
    carries (only when that line is written)."""
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
            _log_request_record(fields, user_agent or _user_agent(request_fields))
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
        user_agent or _user_agent(request_fields) if direct[1] == "ecs" else user_agent,
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


def _user_agent(fields: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The first User-Agent field's value, as text (Latin-1: a field's bytes as received)."""
    for name, value in fields:
        if len(name) == 10 and name.lower() == b"user-agent":
            return value.decode("latin-1")
    return None


def _log_request_record(fields: dict[str, object], user_agent: str | None) -> None:
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
        {_FIELDS_ATTR: fields, _USER_AGENT_ATTR: user_agent},
    )
    _access_logger.handle(record)


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """A lifecycle event (`start`, `ready`, `reload`, `draining`, `stopped`, `upstream_error`)."""
    _logger.log(level, event, extra={_FIELDS_ATTR: fields})
