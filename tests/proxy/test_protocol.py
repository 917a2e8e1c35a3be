"""HTTP/1.1 at the protocol level, raw bytes both sides: pipelining, the retry of a request the
upstream never saw (with its body when idempotent), 1xx and 101 answers, other upgrades spliced,
HTTP/1.0 clients."""

from __future__ import annotations

import asyncio

import pytest

from shim.config.model import LimitsConfig
from tests.conftest import RawUpstreamFactory, ShimFactory
from tests.support.loopback import RawHandler, connect, read_body, read_head, shim_settings

WAIT = 5.0


async def _echo_targets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its target as the body, on one kept-alive connection."""
    while True:
        head = await read_head(reader)
        await read_body(reader, head)
        body = head.target.encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        await writer.drain()


async def test_pipelined_requests_are_answered_in_order(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    upstream = await raw_upstream_factory(_echo_targets)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(
            b"GET /a HTTP/1.1\r\nHost: p\r\n\r\nPOST /b HTTP/1.1\r\nHost: p\r\n"
            b"Content-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\nHost: p\r\n\r\n"
        )
        bodies = []
        for _ in range(3):
            head = await asyncio.wait_for(read_head(reader), WAIT)
            bodies.append(await read_body(reader, head))
    assert bodies == [b"/a", b"/b", b"/c"]


async def test_a_get_lost_with_a_kept_alive_connection_is_sent_again_once(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """The reused connection closes before any byte of the answer (an upstream dropping an
    idle connection just as the request arrives): the GET goes again on a new connection."""
    connections = 0

    async def drops_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        answered = 0
        while True:
            head = await read_head(reader)
            if connections == 1 and answered == 1:
                writer.transport.abort()
                return
            body = head.target.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()
            answered += 1

    upstream = await raw_upstream_factory(drops_the_second)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        for target in (b"/first", b"/second"):
            writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: p\r\n\r\n")
            head = await asyncio.wait_for(read_head(reader), WAIT)
            assert (head.status, await read_body(reader, head)) == (200, target)
    assert connections == 2


def _drops_at_the_second(seen: list[str]) -> RawHandler:
    """An upstream that answers the first request and drops the connection at the second."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            await read_body(reader, head)
            seen.append(head.target)
            if len(seen) == 2:
                writer.transport.abort()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    return handler


async def test_a_post_lost_the_same_way_is_not_sent_again(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen: list[str] = []
    upstream = await raw_upstream_factory(_drops_at_the_second(seen))
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET /first HTTP/1.1\r\nHost: p\r\n\r\n")
        await read_body(reader, await asyncio.wait_for(read_head(reader), WAIT))
        writer.write(b"POST /second HTTP/1.1\r\nHost: p\r\nContent-Length: 1\r\n\r\nx")
        head = await asyncio.wait_for(read_head(reader), WAIT)
    assert head.status == 502
    assert seen == ["/first", "/second"]


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        (b"Content-Length: 5\r\n\r\nhello", b"hello"),
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", b"hello"),
    ],
)
async def test_a_put_lost_the_same_way_is_sent_again_with_its_body(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    framing: bytes,
    body: bytes,
) -> None:
    """PUT is idempotent (RFC 9110 §9.2.2): its body was kept, so it goes again whole."""
    seen: list[tuple[int, str, bytes]] = []
    connections = 0

    async def drops_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        while True:
            head = await read_head(reader)
            got = await read_body(reader, head)
            seen.append((number, head.target, got))
            if number == 1 and len(seen) == 2:
                writer.transport.abort()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(got), got))
            await writer.drain()

    upstream = await raw_upstream_factory(drops_the_second)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET /first HTTP/1.1\r\nHost: p\r\n\r\n")
        await read_body(reader, await asyncio.wait_for(read_head(reader), WAIT))
        writer.write(b"PUT /second HTTP/1.1\r\nHost: p\r\n" + framing)
        head = await asyncio.wait_for(read_head(reader), WAIT)
        assert (head.status, await read_body(reader, head)) == (200, body)
    assert seen == [(1, "/first", b""), (1, "/second", body), (2, "/second", body)]


async def test_a_put_whose_body_streamed_is_not_sent_again(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen: list[str] = []
    body = b"x" * (LimitsConfig().request_buffer + 1)  # streams: nothing kept to send again
    upstream = await raw_upstream_factory(_drops_at_the_second(seen))
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET /first HTTP/1.1\r\nHost: p\r\n\r\n")
        await read_body(reader, await asyncio.wait_for(read_head(reader), WAIT))
        writer.write(b"PUT /second HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        head = await asyncio.wait_for(read_head(reader), WAIT)
    assert head.status == 502
    assert seen == ["/first", "/second"]


async def test_early_hints_pass_and_an_unsolicited_101_is_a_502(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """A 103 reaches the client; a 101 answering a request that asked for no upgrade switches
    nothing here, and what follows it is no HTTP answer to that request: 502."""

    async def hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        await writer.drain()
        await reader.read()

    upstream = await raw_upstream_factory(hints)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), WAIT)
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
    assert b" 101 " not in raw
    assert b"HTTP/1.1 502 Bad Gateway\r\n" in raw
    assert raw.endswith(b"switched protocols (101) unasked\n")


async def test_any_upgrade_is_spliced_byte_for_byte(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        assert head.get("Upgrade") == "example/1"
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: example/1\r\n"
            b"Connection: Upgrade\r\n\r\nhello"
        )
        await writer.drain()
        writer.write(b"echo:" + await reader.readexactly(5))
        await writer.drain()
        writer.close()

    upstream = await raw_upstream_factory(switch)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        # the bytes after the head belong to the new protocol, sent before the 101 arrives
        writer.write(
            b"GET /tunnel HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: example/1\r\n"
            b"\r\n\x00\x01\x02\xff\xfe"
        )
        raw = await asyncio.wait_for(reader.read(), WAIT)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest == b"helloecho:\x00\x01\x02\xff\xfe"


async def _chunked_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers every request on its connection with a chunked `abc`."""
    while True:
        try:
            await read_head(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        await writer.drain()


@pytest.mark.parametrize(
    "chunks",
    [
        # one read: the second request line is not at the start of what arrived
        [b"GET /a HTTP/1.1\r\nHost: p\r\n\r\nGET /b HTTP/1.0\r\nHost: p\r\n\r\n"],
        # the HTTP/1.0 request line split across reads
        [b"GET /a HTTP/1.1\r\nHost: p\r\n\r\n", b"GET /b HTT", b"P/1.0\r\nHost: p\r\n\r\n"],
        # a blank line before it
        [b"GET /a HTTP/1.1\r\nHost: p\r\n\r\n", b"\r\nGET /b HTTP/1.0\r\nHost: p\r\n\r\n"],
        # a read that goes on with the first request's head, whose first line ends like a
        # request line, then starts the next request
        [
            b"GET /a HTTP/1.1\r\nHost: p\r\n",
            b"X-V: a HTTP/1.1\r\n\r\nGET /b HTTP/1.0\r\nHost: p\r\n\r\n",
        ],
    ],
    ids=["pipelined", "split", "blank-line-first", "mid-head"],
)
async def test_each_request_is_answered_in_its_own_version(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory, chunks: list[bytes]
) -> None:
    upstream = await raw_upstream_factory(_chunked_answers)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.05)
        first = await asyncio.wait_for(read_head(reader), WAIT)
        assert first.start_line == "HTTP/1.1 200 OK"
        assert await asyncio.wait_for(read_body(reader, first), WAIT) == b"abc"
        rest = await asyncio.wait_for(reader.read(), WAIT)
    head, _, body = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Transfer-Encoding" not in head
    assert body == b"abc"


async def test_an_http10_client_gets_a_body_of_unknown_length_until_close(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    upstream = await raw_upstream_factory(chunked)
    shim = await shim_factory(shim_settings(upstream.url))
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.0\r\nHost: p\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), WAIT)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Transfer-Encoding" not in head
    assert body == b"abc"
