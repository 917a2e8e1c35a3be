"""Edge limits, black-box: a real shim process, raw sockets, and what the kernel says about it.

Nothing a client sends may make the shim's memory grow without bound, or hold a connection
(to the shim or to the portal) for longer than a configured limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import aiohttp
from aiohttp import web

from tests.conftest import RawUpstreamFactory, ShimProcessFactory, UpstreamFactory
from tests.support.loopback import HOST, ShimProcess, connect, read_response, shim_settings

WAIT = 10.0
#: short limits so each test takes seconds; the defaults are checked in tests/unit/config
LIMITS = {
    "head_timeout": "1s",
    "keepalive_timeout": "1s",
    "body_idle_timeout": "1s",
    "max_head_bytes": "32KiB",
}


def _hello_app() -> web.Application:
    async def root(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="A")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", root)
    return app


async def _closed_within(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the shim sends until it closes the connection (fails if it stays open).

    A reset (our writes hit a closed socket) counts as closed, with nothing read.
    """
    async with asyncio.timeout(within):
        try:
            return await reader.read()
        except ConnectionError:
            return b""


async def _metric(shim: ShimProcess, limit: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{shim.admin_url}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(f'msc4191_shim_limit_hits_total{{limit="{limit}"}}'):
            return float(line.split()[-1])
    return 0.0


async def _shim(
    upstream_factory: UpstreamFactory,
    shim_process_factory: ShimProcessFactory,
    **limits: object,
) -> ShimProcess:
    endpoint = await upstream_factory(_hello_app())
    return await shim_process_factory(shim_settings(endpoint.url, limits={**LIMITS, **limits}))


async def test_a_half_sent_head_is_closed_within_head_timeout(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    shim = await _shim(upstream_factory, shim_process_factory)
    async with connect(shim.port) as (reader, writer):
        started = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: portal\r\nX-Slow: 1")  # never finished
        await writer.drain()
        answer = await _closed_within(reader, within=WAIT)
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4.0, elapsed
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:80]


async def test_a_head_trickled_byte_by_byte_is_closed_too(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    """The timer runs from the first byte of the head, not from the last byte read."""
    shim = await _shim(upstream_factory, shim_process_factory)
    async with connect(shim.port) as (reader, writer):
        started = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(40):
                if reader.at_eof():
                    break
                writer.write(b"X-A: b\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
        answer = await _closed_within(reader, within=WAIT)
        elapsed = time.monotonic() - started
    assert elapsed < 4.0, elapsed
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:80]


async def test_64_huge_unfinished_heads_keep_memory_bounded(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    """The reported attack: 64 connections x 127 fields of 16,000 bytes, no head ever ended."""
    shim = await _shim(upstream_factory, shim_process_factory, head_timeout="30s")
    before = shim.status_kib("VmRSS")
    field = b"X-Big: " + b"a" * 16_000 + b"\r\n"

    async def attack() -> bytes:
        async with connect(shim.port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: portal\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(127):
                    writer.write(field)
                    await writer.drain()
            with contextlib.suppress(ConnectionError):
                return await _closed_within(reader, within=WAIT)
            return b""

    answers = await asyncio.gather(*(attack() for _ in range(64)))
    peak = shim.status_kib("VmHWM")
    # 64 x 2 MB were sent; the shim refuses each past max_head_bytes (32 KiB)
    assert all(a == b"" or a.startswith(b"HTTP/1.1 431 ") for a in answers), answers[0][:80]
    assert peak - before < 48 * 1024, f"RSS grew {before} -> {peak} KiB"


async def test_limit_hits_are_counted(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    shim = await _shim(upstream_factory, shim_process_factory)
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        await _closed_within(reader, within=WAIT)
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\n")
        await _closed_within(reader, within=WAIT)
    assert await _metric(shim, "max_head_bytes") == 1
    assert await _metric(shim, "head_timeout") == 1


async def test_a_client_that_stops_reading_is_cut_after_send_timeout(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    """A download the client stops reading holds the shim's buffers and a portal connection:
    after limits.send_timeout without a read, both go (nginx's send_timeout)."""
    upstream_closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        upstream_closed.set()

    endpoint = await raw_upstream_factory(endless)
    shim = await shim_process_factory(
        shim_settings(endpoint.url, limits={**LIMITS, "send_timeout": "1s"})
    )
    _reader, writer = await asyncio.open_connection(HOST, shim.port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stop reading: fill up soon
    writer.write(b"GET /big HTTP/1.1\r\nHost: portal\r\n\r\n")
    await writer.drain()
    started = time.monotonic()
    async with asyncio.timeout(WAIT):
        await upstream_closed.wait()  # the portal's connection went with the client's
    assert 0.9 <= time.monotonic() - started < 6.0
    assert await _metric(shim, "send_timeout") == 1
    writer.close()


async def test_an_idle_keepalive_connection_is_closed(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    shim = await _shim(upstream_factory, shim_process_factory)
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: portal\r\n\r\n")
        head, body = await read_response(reader)
        assert head.start_line.startswith("HTTP/1.1 200")
        assert body == b"A"
        started = time.monotonic()
        assert await _closed_within(reader, within=WAIT) == b""
        assert 0.9 <= time.monotonic() - started < 4.0


async def test_a_trickling_small_body_is_cut_before_the_portal_sees_it(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    """A body within limits.request_buffer is read whole before any upstream connection is
    taken: trickled, it gets 408 and the portal never hears of it."""
    connected = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()

    endpoint = await raw_upstream_factory(upstream)
    shim = await shim_process_factory(shim_settings(endpoint.url, limits=LIMITS))
    async with connect(shim.port) as (reader, writer):
        writer.write(b"POST /upload HTTP/1.1\r\nHost: portal\r\nContent-Length: 1000\r\n\r\n")
        writer.write(b"0123456789")
        await writer.drain()
        started = time.monotonic()
        answer = await _closed_within(reader, within=WAIT)
        assert time.monotonic() - started < 4.0
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert b"limits.body_idle_timeout" in answer
    assert not connected.is_set()


async def test_a_trickling_large_body_is_cut_and_the_upstream_connection_freed(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    """A body past limits.request_buffer streams; when it stops, the portal's connection goes
    too (and the client gets 408, as nothing was answered)."""
    upstream_closed = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        upstream_closed.set()

    endpoint = await raw_upstream_factory(upstream)
    shim = await shim_process_factory(
        shim_settings(endpoint.url, limits={**LIMITS, "request_buffer": "1KiB"})
    )
    async with connect(shim.port) as (reader, writer):
        writer.write(b"POST /upload HTTP/1.1\r\nHost: portal\r\nContent-Length: 100000\r\n\r\n")
        writer.write(b"x" * 2000)
        await writer.drain()
        started = time.monotonic()
        answer = await _closed_within(reader, within=WAIT)
        assert time.monotonic() - started < 4.0
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    async with asyncio.timeout(WAIT):
        await upstream_closed.wait()


async def test_connections_over_max_connections_wait_or_are_refused(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    shim = await _shim(
        upstream_factory, shim_process_factory, max_connections=4, head_timeout="30s"
    )
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(connect(shim.port)) for _ in range(4)]
        for _, writer in held:
            writer.write(b"GET / HTTP/1.1\r\n")  # open, unfinished
        await asyncio.sleep(0.3)
        async with connect(shim.port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: portal\r\n\r\n")
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    answer = await reader.read(100)
                    # refused at once, with a 503 or a close; never served past the limit
                    assert answer == b"" or answer.startswith(b"HTTP/1.1 503 "), answer
        held[0][1].close()
    # once connections are free, new clients are served again
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n")
        head, _ = await read_response(reader)
        assert head.start_line.startswith("HTTP/1.1 200")


async def test_the_upstream_pool_never_exceeds_its_bound(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    open_now = 0
    most = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.2)  # a slow portal
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1

    endpoint = await raw_upstream_factory(upstream)
    shim = await shim_process_factory(
        shim_settings(endpoint.url, upstream={"max_connections": 2, "connect_timeout": "10s"})
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            async with session.get(f"{shim.url}/") as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(12)))
    assert statuses == [200] * 12
    assert most <= 2, f"{most} upstream connections at once"


async def test_a_websocket_message_cannot_grow_memory(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    """A 64 MiB message: the byte splice relays frames as they come, so memory stays bounded
    without any message limit (a core that reassembled messages would close with 1009). The
    bound is what this test holds."""

    async def sink(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for _ in ws:
            await ws.send_str("got it")
        return ws

    app = web.Application()
    app.router.add_get("/ws", sink)
    endpoint = await upstream_factory(app)
    shim = await shim_process_factory(shim_settings(endpoint.url, limits=LIMITS))
    before = shim.status_kib("VmRSS")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://{HOST}:{shim.port}/ws", max_msg_size=0) as ws,
    ):
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(b"x" * (64 * 1024 * 1024))
        message = await ws.receive(timeout=WAIT)
    peak = shim.status_kib("VmHWM")
    if message.type == aiohttp.WSMsgType.CLOSE:
        assert message.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    else:
        assert message.data == "got it"
    assert peak - before < 48 * 1024, f"RSS grew {before} -> {peak} KiB for one message"
