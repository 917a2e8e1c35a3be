"""Bodies stream both ways: bytes move before the other side finishes, and memory stays flat."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from shim.config.model import LimitsConfig
from tests.conftest import (
    RawUpstreamFactory,
    ShimFactory,
    ShimFor,
    ShimProcessFactory,
    UpstreamFactory,
)
from tests.support.loopback import (
    Head,
    ShimProcess,
    connect,
    read_body,
    read_head,
    shim_settings,
)

MiB = 1024 * 1024
BLOCK = MiB
#: the shim's peak RSS may grow by less than this while 64 MiB pass through it; buffering the
#: body whole would need at least the body's size
GROWTH_LIMIT_KIB = 24 * 1024
#: 1 GiB up and down within ~150 MB peak resident size
PEAK_LIMIT_KIB = 150 * 1000
WAIT = 10.0


def block(i: int, pattern: bytes) -> bytes:
    """The i-th 1 MiB block: its index, then random bytes (so blocks are distinct, not stored)."""
    return i.to_bytes(8, "big") + pattern[8:]


@dataclass
class Sink:
    """An upstream that hashes what it receives; `first` is set at the first body byte."""

    first: asyncio.Event = field(default_factory=asyncio.Event)
    size: int = 0
    digest: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        sha = hashlib.sha256()
        async for chunk in request.content.iter_any():
            self.first.set()
            self.size += len(chunk)
            sha.update(chunk)
        self.digest = sha.hexdigest()
        return web.Response(text="stored")


async def upload(url: str, sink: Sink, size_mib: int, client: aiohttp.ClientSession) -> str:
    """Send `size_mib` MiB; after the first MiB wait until the upstream has seen a byte."""
    pattern = os.urandom(BLOCK)
    sha = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        for i in range(size_mib):
            data = block(i, pattern)
            sha.update(data)
            yield data
            if i == 0:
                # a shim that buffered the request would deadlock here
                await asyncio.wait_for(sink.first.wait(), WAIT)

    async with client.put(url, data=body()) as response:
        assert response.status == 200
        assert await response.text() == "stored"
    return sha.hexdigest()


@dataclass
class Source:
    """An upstream that sends `size_mib` MiB, pausing after the first until `received` is set."""

    size_mib: int
    chunked: bool = False
    received: asyncio.Event = field(default_factory=asyncio.Event)
    digest: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if not self.chunked:
            response.content_length = self.size_mib * BLOCK
        await response.prepare(request)
        pattern = os.urandom(BLOCK)
        sha = hashlib.sha256()
        for i in range(self.size_mib):
            data = block(i, pattern)
            sha.update(data)
            await response.write(data)
            if i == 0:
                await asyncio.wait_for(self.received.wait(), WAIT)
        self.digest = sha.hexdigest()
        await response.write_eof()
        return response


async def download(url: str, source: Source, client: aiohttp.ClientSession) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    async with client.get(url) as response:
        assert response.status == 200
        if not source.chunked:
            assert response.headers["Content-Length"] == str(source.size_mib * BLOCK)
        async for chunk in response.content.iter_any():
            source.received.set()
            size += len(chunk)
            sha.update(chunk)
    return size, sha.hexdigest()


def _streaming_app(sink: Sink, source: Source) -> web.Application:
    app = web.Application()
    app.router.add_put("/upload", sink.handle)
    app.router.add_get("/download", source.handle)
    app.router.add_get("/", _ok)
    return app


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _warm_up(shim: ShimProcess, client: aiohttp.ClientSession) -> int:
    async with client.get(f"{shim.url}/") as response:
        await response.read()
    return shim.status_kib("VmHWM")


async def _up_and_down(
    size_mib: int,
    upstream_factory: UpstreamFactory,
    shim_process_factory: ShimProcessFactory,
    client: aiohttp.ClientSession,
) -> tuple[int, int]:
    """Move `size_mib` up, then down, through a shim process: (baseline, peak) VmHWM in KiB."""
    sink, source = Sink(), Source(size_mib)
    upstream = await upstream_factory(_streaming_app(sink, source))
    shim = await shim_process_factory(shim_settings(upstream.url))
    baseline = await _warm_up(shim, client)

    sent = await upload(f"{shim.url}/upload", sink, size_mib, client)
    assert (sink.size, sink.digest) == (size_mib * BLOCK, sent)

    size, got = await download(f"{shim.url}/download", source, client)
    assert (size, got) == (size_mib * BLOCK, source.digest)
    return baseline, shim.status_kib("VmHWM")


async def test_64_mib_up_and_down_stream_with_bounded_memory(
    upstream_factory: UpstreamFactory,
    shim_process_factory: ShimProcessFactory,
    client: aiohttp.ClientSession,
) -> None:
    baseline, peak = await _up_and_down(64, upstream_factory, shim_process_factory, client)
    assert peak - baseline < GROWTH_LIMIT_KIB, f"peak RSS grew {peak - baseline} KiB"


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_1_gib_up_and_down_within_150_mb(
    upstream_factory: UpstreamFactory,
    shim_process_factory: ShimProcessFactory,
    client: aiohttp.ClientSession,
) -> None:
    _, peak = await _up_and_down(1024, upstream_factory, shim_process_factory, client)
    assert peak < PEAK_LIMIT_KIB, f"peak RSS {peak} KiB"


async def test_a_chunked_download_streams(shim_for: ShimFor, client: aiohttp.ClientSession) -> None:
    source = Source(4, chunked=True)
    shim = await shim_for(_streaming_app(Sink(), source))
    size, got = await download(f"{shim.url}/download", source, client)
    assert (size, got) == (4 * BLOCK, source.digest)


async def test_a_chunked_request_body_streams_and_arrives_whole(shim_for: ShimFor) -> None:
    """A chunked body past limits.request_buffer streams: the portal has its first bytes before
    the client has finished."""
    sink = Sink()
    shim = await shim_for(_streaming_app(sink, Source(1)))
    first = b"h" * (LimitsConfig().request_buffer + 1)
    async with connect(shim.port) as (reader, writer):
        writer.write(
            b"PUT /upload HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%b\r\n" % (len(first), first)
        )
        await asyncio.wait_for(sink.first.wait(), WAIT)  # before the client has finished
        writer.write(b"6;note=ext\r\n world\r\n0\r\n\r\n")
        head = await read_head(reader)
        body = await read_body(reader, head)
    assert (head.status, body) == (200, b"stored")
    assert sink.size == len(first) + 6
    assert sink.digest == hashlib.sha256(first + b" world").hexdigest()


async def test_a_small_chunked_body_is_sent_whole_with_its_length(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """A chunked body within limits.request_buffer is read whole first and sent with the
    Content-Length of what arrived (framing is this hop's); the client's trailers are not."""
    seen: list[tuple[Head, bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        seen.append((head, await read_body(reader, head)))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        await reader.read()

    upstream = await raw_upstream_factory(answer)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(
            b"PUT /upload HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;note=ext\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        head = await asyncio.wait_for(read_head(reader), WAIT)
    assert head.status == 204
    [(sent, body)] = seen
    assert body == b"hello world"
    assert sent.get("Content-Length") == "11"
    assert sent.get("Transfer-Encoding") is None
    assert sent.get("X-Trailer") is None


async def test_a_chunked_response_is_reframed_not_leaked(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    """The client gets the decoded bytes in its own framing, the first chunk before the last."""
    go_on = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.wait_for(go_on.wait(), WAIT)
        writer.write(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()
        await reader.read()

    shim = await shim_for(answer)
    async with client.get(f"{shim.url}/chunked") as response:
        assert response.headers.getall("Transfer-Encoding") == ["chunked"]
        assert "Content-Length" not in response.headers
        assert await asyncio.wait_for(response.content.readexactly(5), WAIT) == b"hello"
        go_on.set()
        assert await response.read() == b" world"


async def test_expect_100_continue(shim_for: ShimFor) -> None:
    sink = Sink()
    shim = await shim_for(_streaming_app(sink, Source(1)))
    async with connect(shim.port) as (reader, writer):
        writer.write(
            b"PUT /upload HTTP/1.1\r\nHost: p\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(read_head(reader), WAIT)
        assert interim.status == 100
        writer.write(b"hello world")
        head = await asyncio.wait_for(read_head(reader), WAIT)
        body = await read_body(reader, head)
    assert (head.status, body) == (200, b"stored")
    assert sink.size == 11


async def test_expect_100_continue_with_an_upstream_that_ignores_it(shim_for: ShimFor) -> None:
    """An HTTP/1.0-minded upstream reads the body without sending 100 Continue."""
    bodies: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        bodies.append(await read_body(reader, head))
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    shim = await shim_for(answer, upstream={"read_timeout": "500ms"})
    async with connect(shim.port) as (reader, writer):
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert (await asyncio.wait_for(read_head(reader), WAIT)).status == 100
        writer.write(b"hello")
        # a 504 after read_timeout would do; silence past it is the bug
        head = await asyncio.wait_for(read_head(reader), 2.0)
    assert head.status == 201
    assert bodies == [b"hello"]


async def test_server_sent_events_flush_per_event(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    read_first = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(b"id: 1\ndata: one\n\n")
        await asyncio.wait_for(read_first.wait(), WAIT)
        await response.write(b"id: 2\ndata: two\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    shim = await shim_for(app)
    async with client.get(f"{shim.url}/events") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), WAIT)
        assert first == b"id: 1\ndata: one\n\n"
        read_first.set()
        assert await response.read() == b"id: 2\ndata: two\n\n"
