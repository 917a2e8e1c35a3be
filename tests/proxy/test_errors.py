"""Upstream failures become short 502/504 texts; broken bodies abort; a client leaving cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import (
    RawUpstreamFactory,
    ShimFactory,
    ShimFor,
    ShimProcessFactory,
    UpstreamFactory,
)
from tests.support.loopback import (
    RawHandler,
    RunningShim,
    ShimProcess,
    connect,
    free_port,
    read_head,
    reset,
    shim_settings,
)

WAIT = 5.0


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Traceback" not in record.getMessage()


async def _failure(client: aiohttp.ClientSession, shim: RunningShim) -> tuple[int, str, str]:
    async with client.get(f"{shim.url}/some/page?x=1") as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def _check_failure_text(text: str, *expected: str) -> None:
    assert text.endswith("\n")
    assert len(text) < 300
    assert "Traceback" not in text
    for part in expected:
        assert part in text


async def test_refused_connection_is_502_naming_it(
    shim_factory: ShimFactory, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    shim = await shim_factory(shim_settings(f"http://127.0.0.1:{port}"))
    status, content_type, text = await _failure(client, shim)
    assert status == 502
    assert content_type.startswith("text/plain")
    _check_failure_text(text, f"cannot connect to upstream http://127.0.0.1:{port}")
    assert_no_traceback(caplog)


async def test_unresolvable_host_is_502_naming_it(
    shim_factory: ShimFactory, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    shim = await shim_factory(shim_settings("http://nonexistent.invalid"))
    status, _, text = await _failure(client, shim)
    assert status == 502
    _check_failure_text(text, "cannot resolve upstream host nonexistent.invalid")
    assert_no_traceback(caplog)


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    await reader.read()


async def test_read_timeout_is_504_naming_it(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = await raw_upstream_factory(_never_answer)
    shim = await shim_factory(shim_settings(upstream.url, upstream={"read_timeout": "300ms"}))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, text = await _failure(client, shim)
    elapsed = loop.time() - started
    assert status == 504
    _check_failure_text(text, f"upstream {upstream.url}", "sent nothing for 0.3s")
    assert 0.25 < elapsed < 3.0
    assert_no_traceback(caplog)


@contextlib.contextmanager
def _unanswered_listener() -> Iterator[int]:
    """A port whose accept queue is full: a new connection's SYN is dropped and connect hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        queued = [socket.socket() for _ in range(4)]
        try:
            for sock in queued:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
            yield port
        finally:
            for sock in queued:
                sock.close()


async def test_connect_timeout_is_502_naming_it(
    shim_factory: ShimFactory, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with _unanswered_listener() as port:
        url = f"http://127.0.0.1:{port}"
        shim = await shim_factory(shim_settings(url, upstream={"connect_timeout": "300ms"}))
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, _, text = await _failure(client, shim)
        elapsed = loop.time() - started
    assert status == 502
    _check_failure_text(text, f"cannot connect to upstream {url} within 0.3s")
    assert 0.25 < elapsed < 3.0
    assert_no_traceback(caplog)


def _answers(data: bytes, *, then_close: bool) -> RawHandler:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(data)
        await writer.drain()
        if then_close:
            writer.transport.abort()
        else:
            await reader.read()

    return answer


async def test_upstream_closing_before_answering_is_502(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = await raw_upstream_factory(_answers(b"", then_close=True))
    shim = await shim_factory(shim_settings(upstream.url))
    status, _, text = await _failure(client, shim)
    assert status == 502
    _check_failure_text(text, f"upstream {upstream.url}")
    assert_no_traceback(caplog)


async def test_a_malformed_upstream_answer_is_502(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = _answers(b"NOT HTTP AT ALL\r\n\r\n", then_close=False)
    upstream = await raw_upstream_factory(answer)
    shim = await shim_factory(shim_settings(upstream.url))
    status, _, text = await _failure(client, shim)
    assert status == 502
    _check_failure_text(text, f"upstream {upstream.url}")
    assert_no_traceback(caplog)


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", id="length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
            id="chunked",
        ),
    ],
)
async def test_upstream_dying_mid_body_aborts_the_client_response(
    partial: bytes,
    shim_for: ShimFor,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shim = await shim_for(_answers(partial, then_close=True))
    async with client.get(f"{shim.url}/big") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            # a clean end short of the length would leave the client waiting, not failing
            await asyncio.wait_for(response.read(), WAIT)
    assert_no_traceback(caplog)
    assert any("mid-body" in r.getMessage() for r in caplog.records)


async def test_upstream_stalling_mid_body_aborts_after_read_timeout(
    shim_for: ShimFor, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    stall = _answers(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", then_close=False)
    shim = await shim_for(stall, upstream={"read_timeout": "300ms"})
    async with client.get(f"{shim.url}/big") as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.read(), WAIT)
    assert_no_traceback(caplog)


# -- the client going away ---------------------------------------------------------------------


ShimProcessFor = Callable[..., Awaitable[ShimProcess]]


@pytest.fixture
def shim_process_for(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> ShimProcessFor:
    """`await shim_process_for(route, **runner_args)`: `msc4191-shim run` in front of `route`.

    The upstream serves nothing but `route`; `runner_args` go to its `web.AppRunner`.
    """

    async def start(route: web.RouteDef, **runner_args: Any) -> ShimProcess:
        app = web.Application()
        app.add_routes([route])
        upstream = await upstream_factory(app, **runner_args)
        return await shim_process_factory(shim_settings(upstream.url))

    return start


async def test_a_client_reset_cancels_the_upstream_request_quietly(
    shim_process_for: ShimProcessFor,
) -> None:
    """A reset client is gone: its upstream request is cancelled at once. (A FIN alone may be a
    half-close after the request, which is answered: tests/process/test_edge_halfclose.py.)"""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response(text="too late")

    shim = await shim_process_for(web.get("/slow", slow), handler_cancellation=True)
    async with connect(shim.port) as (_, writer):
        writer.write(b"GET /slow HTTP/1.1\r\nHost: p\r\n\r\n")
        await asyncio.wait_for(started.wait(), WAIT)
        reset(writer)
    await asyncio.wait_for(cancelled.wait(), WAIT)
    await asyncio.sleep(0.3)  # let the shim write whatever it would log
    assert "Traceback" not in shim.stderr
    assert shim.proc.returncode is None


async def test_client_disconnect_mid_upload_ends_the_upstream_request(
    shim_process_for: ShimProcessFor,
) -> None:
    first_bytes, ended = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def sink(request: web.Request) -> web.Response:
        size = 0
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                first_bytes.set()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        except (ConnectionError, aiohttp.ClientError) as exc:
            outcome.append(type(exc).__name__)
            raise
        else:
            outcome.append(f"completed with {size} bytes")
        finally:
            ended.set()
        return web.Response(text="stored")

    shim = await shim_process_for(web.put("/upload", sink), handler_cancellation=True)
    async with connect(shim.port) as (_, writer):
        writer.write(b"PUT /upload HTTP/1.1\r\nHost: p\r\nContent-Length: 10485760\r\n\r\n")
        writer.write(b"x" * 65536)
        await asyncio.wait_for(first_bytes.wait(), WAIT)
    await asyncio.wait_for(ended.wait(), WAIT)
    assert len(outcome) == 1
    assert not outcome[0].startswith("completed"), outcome
    await asyncio.sleep(0.3)
    assert "Traceback" not in shim.stderr


async def test_logs_go_through_logging_not_tracebacks(
    shim_factory: ShimFactory, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator learns what failed from one warning line."""
    caplog.set_level(logging.WARNING)
    shim = await shim_factory(shim_settings(f"http://127.0.0.1:{free_port()}"))
    await _failure(client, shim)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cannot connect to upstream" in r.getMessage() for r in warnings)
    assert_no_traceback(caplog)


async def test_client_disconnect_mid_download_blames_nobody(
    shim_process_for: ShimProcessFor,
) -> None:
    """A client leaving mid-download is expected: no traceback, and the upstream is not blamed."""
    sent_enough = asyncio.Event()

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(64 << 20)})
        await response.prepare(request)
        for _ in range(1024):
            await response.write(b"x" * 65536)
            sent_enough.set()
        return response

    shim = await shim_process_for(web.get("/big", big))
    for _ in range(3):
        sent_enough.clear()
        async with connect(shim.port) as (reader, writer):
            writer.write(b"GET /big HTTP/1.1\r\nHost: p\r\n\r\n")
            await read_head(reader)
            await reader.read(65536)
            await asyncio.wait_for(sent_enough.wait(), WAIT)
    await asyncio.sleep(0.5)  # let the shim write whatever it would log
    assert "Traceback" not in shim.stderr
    assert "upstream failed" not in shim.stderr
    requests = [line for line in shim.events("request") if line.get("path") == "/big"]
    assert [line["status"] for line in requests] == [None, None, None]
    assert {line["outcome"] for line in requests} == {"client disconnected"}
