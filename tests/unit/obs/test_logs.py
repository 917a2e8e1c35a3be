from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from shim.http.secrets import redact_path_qs
from shim.obs import logs
from shim.obs.log_setup import EcsFormatter, JsonFormatter, TextFormatter, configure_logging
from shim.obs.logs import access_line, log_event, log_request, rfc3339_utc
from shim.obs.redact import redact_text

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRETS = (
    "s3cr3t-code",
    "s3cr3t-state",
    "s3cr3t-jwt",
    "s3cr3t-hint",
    "s3cr3t-bearer",
    "s3cr3t-sid",
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    access = logging.getLogger("aiohttp.access")
    saved = (list(root.handlers), root.level, access.level, access.propagate)
    direct = logs._out.direct
    yield
    logs.batch_access_lines(None)
    logs._out.direct = direct
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    access.setLevel(saved[2])
    access.propagate = saved[3]


def _request(**overrides: Any) -> None:
    fields: dict[str, Any] = {
        "method": "GET",
        "raw_path_qs": "/account/?action=org.matrix.device_view&device_id=ABC",
        "status": 302,
        "duration_s": 0.0012,
        "bytes_sent": 0,
        "upstream_status": None,
        "kind": "deeplink",
        "outcome": "redirect",
        "client": "192.0.2.1",
    }
    fields.update(overrides)
    log_request(**fields)


def _json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines()]


def test_rfc3339_utc() -> None:
    assert rfc3339_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_utc(1_795_719_600.1239) == "2026-11-26T19:00:00.123Z"


def test_request_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    _request(request_id="r-1", upstream_status=200, bytes_sent=1234)
    [line] = _json_lines(capsys.readouterr().err)
    assert TIME.match(line.pop("time"))
    assert line == {
        "level": "INFO",
        "event": "request",
        "message": "GET /account/?action=org.matrix.device_view&device_id=ABC 302",
        "method": "GET",
        "path": "/account/?action=org.matrix.device_view&device_id=ABC",
        "status": 302,
        "duration_ms": 1.2,
        "bytes": 1234,
        "upstream_status": 200,
        "kind": "deeplink",
        "outcome": "redirect",
        "client": "192.0.2.1",
        "request_id": "r-1",
    }


def test_aborted_request_has_no_status(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    _request(status=None, outcome="aborted mid-body")
    [line] = _json_lines(capsys.readouterr().err)
    assert line["status"] is None
    assert line["outcome"] == "aborted mid-body"
    assert line["message"].endswith(" -")


def test_request_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "INFO")
    _request()
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"\S+Z INFO request GET /account/\?action=org\.matrix\.device_view&device_id=ABC 302 1\.2ms"
        r" bytes=0 kind=deeplink outcome=redirect client=192\.0\.2\.1\n",
        err,
    ), err


def test_event_as_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    log_event("start", listen="0.0.0.0:8080", workers=2, tls=False)
    configure_logging("text", "INFO")
    log_event("reload", level=logging.ERROR, result="error", errors="upstream.url: expected...")
    json_line, text_line = capsys.readouterr().err.splitlines()
    parsed = json.loads(json_line)
    assert parsed["event"] == parsed["message"] == "start"
    assert (parsed["listen"], parsed["workers"], parsed["tls"]) == ("0.0.0.0:8080", 2, False)
    assert text_line.split(" ", 1)[1] == (
        'ERROR reload result=error errors="upstream.url: expected..."'
    )


def test_lists_and_mappings_stay_structured(capsys: pytest.CaptureFixture[str]) -> None:
    errors = ["upstream.url: expected an http(s) URL, got 'foo'", "listen: bad"]
    configure_logging("json", "INFO")
    log_event("reload_refused", errors=errors, headers={"Cookie": "sid=s3cr3t", "Accept": "*/*"})
    configure_logging("text", "INFO")
    log_event("reload_refused", errors=errors)
    json_line, text_line = capsys.readouterr().err.splitlines()
    parsed = json.loads(json_line)
    assert parsed["errors"] == errors
    assert parsed["headers"] == {"Cookie": "[redacted]", "Accept": "*/*"}
    assert text_line.endswith(f"errors={json.dumps(errors)}")


def test_fields_never_replace_the_line_keys(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    log_event("stopped", time="later", logger="mine")
    [line] = _json_lines(capsys.readouterr().err)
    assert TIME.match(line["time"])
    assert (line["event"], line["time_"], line["logger_"]) == ("stopped", "later", "mine")
    assert "logger" not in line


def test_configure_twice_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "INFO")
    configure_logging("json", "INFO")
    log_event("ready")
    [line] = _json_lines(capsys.readouterr().err)
    assert line["event"] == "ready"


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "warning")
    _request()
    log_event("draining")
    log_event("upstream_error", level=logging.WARNING, reason="refused")
    [line] = _json_lines(capsys.readouterr().err)
    assert (line["level"], line["event"]) == ("WARNING", "upstream_error")


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"):
        configure_logging("json", "LOUD")


def test_control_characters_stay_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/a\r\nb?x=\x00\udcff"
    configure_logging("json", "INFO")
    _request(raw_path_qs=path)
    configure_logging("text", "INFO")
    _request(raw_path_qs=path)
    log_event("note", text="two\nlines")
    json_line, text_line, event_line = capsys.readouterr().err.splitlines()
    assert json.loads(json_line)["path"] == path
    assert r'"/a\r\nb?x=\u0000\udcff"' in text_line
    assert event_line.endswith(r'text="two\nlines"')


def test_foreign_records_keep_their_logger_and_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    [line] = _json_lines(capsys.readouterr().err)
    assert (line["logger"], line["event"], line["level"]) == (
        "aiohttp.server",
        "Error handling request",
        "ERROR",
    )
    assert "ConnectionResetError: peer went away" in line["exception"]


async def test_aiohttp_access_log_is_silenced(
    aiohttp_client: AiohttpClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "DEBUG")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    client = await aiohttp_client(app)  # aiohttp's default access logger is on
    async with client.get("/?code=s3cr3t-code") as response:
        assert response.status == 200
    err = capsys.readouterr().err
    assert "aiohttp.access" not in err
    assert "s3cr3t" not in err


@pytest.mark.parametrize("fmt", ["json", "ecs", "text"])
def test_no_secret_is_ever_written(capfd: pytest.CaptureFixture[str], fmt: str) -> None:
    configure_logging(fmt, "DEBUG")  # type: ignore[arg-type]
    _request(
        raw_path_qs=(
            "/account/?id_token_hint=s3cr3t-jwt&action=org.matrix.session_view"
            "&org.matrix.msc4198.login_hint=s3cr3t-hint&%63ode=s3cr3t-code"
            "#state=s3cr3t-state"
        )
    )
    _request(raw_path_qs="/callback?Code=s3cr3t-code&STATE=s3cr3t-state")
    log_event(
        "debug_headers",
        level=logging.DEBUG,
        authorization="Bearer s3cr3t-bearer",
        Cookie="sid=s3cr3t-sid",
        set_cookie="sid=s3cr3t-sid",
        code="s3cr3t-code",
        location="https://client.example/cb?code=s3cr3t-code&state=s3cr3t-state",
        headers="{'Authorization': 'Bearer s3cr3t-bearer', 'Cookie': 'sid=s3cr3t-sid'}",
    )
    try:
        raise ValueError("bad response for /account/?id_token_hint=s3cr3t-jwt&action=x")
    except ValueError:
        logging.getLogger("aiohttp.client").exception("GET /cb?state=s3cr3t-state failed")
    err = capfd.readouterr().err
    assert err.count("[redacted]") >= 14
    assert "s3cr3t" not in err
    assert "action=org.matrix.session_view" in err  # the rest stays readable


# -- ECS (log.format: ecs)

#: every ECS field the `ecs` format writes outside `msc4191_shim` (our own namespace), as the ECS
#: field reference (8.11) names them: a name not here is one Elastic would map as it guesses
ECS_FIELDS = {
    "@timestamp",
    "log.level",
    "log.logger",
    "message",
    "ecs.version",
    "event.dataset",
    "event.action",
    "event.duration",
    "http.request.method",
    "http.request.id",
    "http.response.status_code",
    "http.response.body.bytes",
    "url.path",
    "url.query",
    "client.ip",
    "user_agent.original",
    "error.stack_trace",
}


def _leaves(line: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in line.items():
        name = prefix + key
        if isinstance(value, dict) and name != "msc4191_shim":
            found |= _leaves(value, name + ".")
        else:
            found.add(name)
    return found


def test_request_as_ecs(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ecs", "INFO")
    ua = (b"User-Agent", b"Element X/25.11 (Android)")
    _request(request_id="r-1", upstream_status=200, request_fields=[(b"Host", b"x"), ua])
    [line] = _json_lines(capsys.readouterr().err)
    assert list(line)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert TIME.match(line.pop("@timestamp"))
    assert line == {
        "log.level": "info",
        "message": "GET /account/?action=org.matrix.device_view&device_id=ABC 302",
        "ecs.version": logs.ECS_VERSION,
        "log": {"logger": "msc4191_shim.access"},
        "event": {"dataset": "msc4191_shim.access", "duration": 1_200_000},
        "http": {
            "request": {"method": "GET", "id": "r-1"},
            "response": {"status_code": 302, "body": {"bytes": 0}},
        },
        "url": {"path": "/account/", "query": "action=org.matrix.device_view&device_id=ABC"},
        "client": {"ip": "192.0.2.1"},
        "user_agent": {"original": "Element X/25.11 (Android)"},
        "msc4191_shim": {"kind": "deeplink", "outcome": "redirect", "upstream_status": 200},
    }


def test_ecs_request_leaves_out_what_it_does_not_know(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ecs", "INFO")
    _request(raw_path_qs="/plain", status=None, outcome=None, client=None)
    [line] = _json_lines(capsys.readouterr().err)
    assert line["message"] == "GET /plain -"
    assert line["url"] == {"path": "/plain"}
    assert line["http"]["response"] == {"body": {"bytes": 0}}
    assert "client" not in line
    assert "user_agent" not in line
    assert line["msc4191_shim"] == {"kind": "deeplink"}


def test_every_ecs_line_uses_ecs_names_and_objects(capsys: pytest.CaptureFixture[str]) -> None:
    """A field of ours never lands on an ECS name: `client` (a string in our events) and
    `event` (our event's name) are objects in ECS, and an index mapping them as ECS expects
    would refuse a line with strings there."""
    configure_logging("ecs", "DEBUG")
    _request(request_fields=[(b"user-agent", b"curl/8")], request_id="r-2")
    log_event("http2_refused", level=logging.WARNING, client="192.0.2.7", detail="speak h1")
    log_event("reload_refused", errors=["a", "b"], logger="mine", message="mine too")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    lines = _json_lines(capsys.readouterr().err)
    assert len(lines) == 4
    for line in lines:
        assert list(line)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
        assert _leaves(line) - {"msc4191_shim"} <= ECS_FIELDS, line
        assert isinstance(line["event"], dict)
    refused = lines[1]
    assert (refused["log.level"], refused["message"]) == ("warning", "http2_refused")
    assert refused["event"] == {"dataset": "msc4191_shim.log", "action": "http2_refused"}
    assert refused["msc4191_shim"] == {"client": "192.0.2.7", "detail": "speak h1"}
    assert lines[2]["msc4191_shim"] == {
        "errors": ["a", "b"],
        "logger_": "mine",
        "message_": "mine too",
    }
    foreign = lines[3]
    assert foreign["log"] == {"logger": "aiohttp.server"}
    assert foreign["message"] == "Error handling request"
    assert "action" not in foreign["event"]
    assert "ValueError: boom" in foreign["error"]["stack_trace"]


# -- the access line: one writer (`access_line`) for the hot path and the formatters alike,
# its lines read back as JSON says they should, written once per loop pass

_texts = st.text(max_size=40) | st.sampled_from(["GET", "a=b", "x:y", "code=1", "Cookie: a"])
_maybe_text = st.none() | _texts
_maybe_int = st.none() | st.integers(min_value=-1, max_value=10**12)


@given(
    created=st.floats(min_value=0, max_value=4e9),
    fmt=st.sampled_from(["json", "ecs", "text"]),
    method=_texts,
    raw_path_qs=_texts.map(lambda t: "/a?" + t) | _texts,
    status=_maybe_int,
    duration_s=st.floats(min_value=0, max_value=1e10),  # past 10**15 us: the float path
    bytes_sent=st.integers(min_value=0, max_value=10**12),
    upstream_status=_maybe_int,
    kind=_texts,
    outcome=_maybe_text,
    client=_maybe_text,
    request_id=_maybe_text,
    user_agent=_maybe_text,
)
def test_direct_access_line_is_the_formatters_line(
    created: float,
    fmt: str,
    method: str,
    raw_path_qs: str,
    status: int | None,
    duration_s: float,
    bytes_sent: int,
    upstream_status: int | None,
    kind: str,
    outcome: str | None,
    client: str | None,
    request_id: str | None,
    user_agent: str | None,
) -> None:
    fields: dict[str, object] = {
        "method": method,
        "path": redact_path_qs(raw_path_qs),
        "status": status,
        "duration_ms": int(duration_s * 1_000_000 + 0.5) / 1000,
        "bytes": bytes_sent,
        "upstream_status": upstream_status,
        "kind": kind,
        "outcome": outcome,
        "client": client,
        "request_id": request_id,
    }
    if user_agent is not None:  # deep links only: the field is left out otherwise
        fields["user_agent"] = user_agent
    record = logging.LogRecord(
        "msc4191_shim.access", logging.INFO, __file__, 0, "request", (), None
    )
    record.created = created
    record.shim_fields = fields
    record.shim_user_agent = user_agent
    formatter = {"json": JsonFormatter, "ecs": EcsFormatter, "text": TextFormatter}[fmt]()
    for _ in range(2):  # the second time from the caches
        direct = access_line(
            created,
            fmt,  # type: ignore[arg-type]
            method=method,
            path=logs._scrubbed_path(raw_path_qs),
            status=status,
            duration_us=int(duration_s * 1_000_000 + 0.5),
            bytes_sent=bytes_sent,
            upstream_status=upstream_status,
            kind=kind,
            outcome=outcome,
            client=client,
            request_id=request_id,
            user_agent=user_agent,
        )
        assert direct == formatter.format(record)
    if fmt != "text":  # the JSON lines are written by hand: they read back as JSON encodes them
        expected = _expected_line(fmt, created, fields, user_agent)
        assert list(json.loads(direct).items()) == list(expected.items())


def _expected_line(
    fmt: str, created: float, fields: dict[str, object], user_agent: str | None
) -> dict[str, object]:
    """What an access line must read back as, from its record's fields (strings scrubbed)."""
    clean = {k: redact_text(v) if isinstance(v, str) else v for k, v in fields.items()}
    status, path = clean["status"], str(clean["path"])
    message = f"{clean['method']} {path} {'-' if status is None else status}"
    if fmt == "json":
        return {"time": rfc3339_utc(created), "level": "INFO", "event": "request",
                "message": message, **clean}  # fmt: skip
    url_path, _, query = path.partition("?")
    duration_ms = fields["duration_ms"]
    assert isinstance(duration_ms, float)
    line: dict[str, object] = {
        "@timestamp": rfc3339_utc(created),
        "log.level": "info",
        "message": message,
        "ecs.version": logs.ECS_VERSION,
        "log": {"logger": "msc4191_shim.access"},
        "event": {"dataset": "msc4191_shim.access", "duration": round(duration_ms * 1000) * 1000},
        "http": {
            "request": {"method": clean["method"]}
            | ({} if clean["request_id"] is None else {"id": clean["request_id"]}),
            "response": ({} if status is None else {"status_code": status})
            | {"body": {"bytes": clean["bytes"]}},
        },
        "url": {"path": url_path} | ({"query": query} if query else {}),
    }
    if clean["client"] is not None:
        line["client"] = {"ip": clean["client"]}
    if user_agent is not None:
        line["user_agent"] = {"original": redact_text(user_agent)}
    ours = {"kind": clean["kind"], "outcome": clean["outcome"]}
    ours["upstream_status"] = clean["upstream_status"]
    line["msc4191_shim"] = {k: v for k, v in ours.items() if v is not None}
    return line


def test_a_record_that_only_looks_like_a_request_is_an_ordinary_event() -> None:
    """The access logger's `request` records are `log_request`'s; one someone else made without
    its fields is written as any other event, not refused by the access-line writer."""
    record = logging.LogRecord(
        "msc4191_shim.access", logging.INFO, __file__, 0, "request", (), None
    )
    record.shim_fields = {"method": b"GET", "path": "/x"}
    line = json.loads(JsonFormatter().format(record))
    assert (line["event"], line["message"], line["method"], line["path"]) == (
        "request",
        "request",
        "b'GET'",
        "/x",
    )
    text = TextFormatter().format(record)
    assert text.endswith(" INFO request method=b'GET' path=/x"), text


async def test_access_lines_are_written_once_per_loop_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    logs.batch_access_lines(asyncio.get_running_loop().call_soon)
    _request()
    _request(status=200)
    assert capsys.readouterr().err == ""  # buffered until the end of this pass
    await asyncio.sleep(0)
    lines = _json_lines(capsys.readouterr().err)
    assert [line["status"] for line in lines] == [302, 200]


async def test_other_records_come_after_the_buffered_access_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    logs.batch_access_lines(asyncio.get_running_loop().call_soon)
    _request()
    log_event("draining")
    assert [line["event"] for line in _json_lines(capsys.readouterr().err)] == [
        "request",
        "draining",
    ]


async def test_with_a_flush_interval_access_lines_wait_for_it_not_longer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    loop = asyncio.get_running_loop()
    logs.batch_access_lines(functools.partial(loop.call_later, 0.3))
    _request()
    await asyncio.sleep(0.1)
    _request(status=200)  # buffered with the first, for the flush already scheduled
    await asyncio.sleep(0.1)
    assert capsys.readouterr().err == ""  # 0.2 s after the first line
    await asyncio.sleep(0.3)
    assert [line["status"] for line in _json_lines(capsys.readouterr().err)] == [302, 200]


async def test_a_record_between_timed_flushes_comes_after_the_lines_before_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    loop = asyncio.get_running_loop()
    logs.batch_access_lines(functools.partial(loop.call_later, 0.1))
    _request()
    log_event("reloaded")  # writes the buffered line first
    _request(status=200)  # waits for the flush scheduled by the first line
    assert [line["event"] for line in _json_lines(capsys.readouterr().err)] == [
        "request",
        "reloaded",
    ]
    await asyncio.sleep(0.3)
    assert [line["status"] for line in _json_lines(capsys.readouterr().err)] == [200]


async def test_a_handler_added_between_flushes_gets_the_lines_after_the_next_flush(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    loop = asyncio.get_running_loop()
    logs.batch_access_lines(functools.partial(loop.call_later, 10))
    _request()
    records: list[logging.LogRecord] = []
    added = logging.Handler()
    added.emit = records.append  # type: ignore[method-assign,assignment]
    access = logging.getLogger(logs.ACCESS_LOGGER_NAME)
    access.addHandler(added)
    try:
        _request(status=201)  # decided with the first line: buffered for stderr
        logs.flush_access_lines()
        _request(status=202)  # decided afresh: the ordinary logging path, to both handlers
    finally:
        access.removeHandler(added)
    assert [line["status"] for line in _json_lines(capsys.readouterr().err)] == [302, 201, 202]
    assert [r.shim_fields["status"] for r in records] == [202]  # type: ignore[attr-defined]


async def test_the_access_buffer_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    logs.batch_access_lines(asyncio.get_running_loop().call_soon)
    path = "/x?" + "a" * 1000
    for _ in range(100):  # about 200 KiB (the path is in the message too)
        _request(raw_path_qs=path)
    written = capsys.readouterr().err
    assert written.endswith("\n")
    line = len(written.partition("\n")[0]) + 1
    # written at once past 64 KiB, and what came after it waits for the flush
    assert 64 * 1024 < len(written) < 100 * line
    logs.flush_access_lines()
    assert len(_json_lines(written + capsys.readouterr().err)) == 100


def test_access_lines_take_the_logging_path_without_our_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "msc4191_shim.access")
    logs._out.direct = None
    _request()
    [record] = caplog.records
    assert record.name == "msc4191_shim.access"
    assert record.getMessage() == "request"


@pytest.mark.parametrize("change", ["disabled", "no_propagation", "handler_of_its_own"])
def test_access_lines_follow_the_logger_chain(
    capsys: pytest.CaptureFixture[str], change: str
) -> None:
    """What logging would do with the record is done: a disabled access logger writes nothing
    (as after `logging.config.dictConfig`), a handler on the way gets the record."""
    configure_logging("json", "INFO")
    access = logging.getLogger("msc4191_shim.access")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    saved = (access.disabled, access.propagate)
    try:
        if change == "disabled":
            access.disabled = True
        elif change == "no_propagation":
            access.propagate = False
        else:
            access.addHandler(handler)
        _request()
    finally:
        access.disabled, access.propagate = saved
        access.removeHandler(handler)
    err = capsys.readouterr().err
    if change == "handler_of_its_own":
        assert [r.getMessage() for r in records] == ["request"]
        assert _json_lines(err)[0]["event"] == "request"
    else:
        assert err == ""
