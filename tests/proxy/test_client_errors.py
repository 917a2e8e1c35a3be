"""`server.client_errors`: why a request got no answer, in an operator's words, from real errors
on loopback (a closed port, a peer that hangs up, one that never answers, a name that cannot
resolve), never aiohttp's `ssl:default [Connect call failed ...]`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest

from shim.server.client_errors import no_answer_reason
from tests.support.loopback import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _error_of(url: str, seconds: float = 5.0) -> BaseException:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=seconds)):
                pass
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return exc
    raise AssertionError(f"{url} answered")


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()


async def test_a_closed_port_is_connection_refused_without_ssl_default() -> None:
    port = free_port()
    reason = no_answer_reason(await _error_of(f"http://127.0.0.1:{port}/"))
    assert reason == f"cannot connect to 127.0.0.1:{port}: connection refused"


async def test_a_peer_that_hangs_up_before_answering() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with _server(hang_up) as port:
        reason = no_answer_reason(await _error_of(f"http://127.0.0.1:{port}/"))
    assert reason == "the connection was closed before an answer"


async def test_a_peer_that_never_answers_is_a_timeout_in_seconds() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with _server(never) as port:
        error = await _error_of(f"http://127.0.0.1:{port}/", seconds=0.2)
    assert no_answer_reason(error, 0.2) == "no answer within 0.2 s"
    assert no_answer_reason(error) == "timed out"


async def test_a_name_that_does_not_resolve() -> None:
    # .invalid never resolves (RFC 6761); the resolver says so without asking the network
    error = await _error_of("http://shim-test.invalid/", seconds=10)
    assert no_answer_reason(error) == "cannot resolve the host name shim-test.invalid"


async def test_an_answer_that_is_not_http() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async with _server(garbage) as port:
        reason = no_answer_reason(await _error_of(f"http://127.0.0.1:{port}/"))
    assert reason.startswith("not an HTTP answer (")


@pytest.mark.parametrize("url", ["http://127.0.0.1:0/", "ftp://x/"])
async def test_anything_else_still_says_something(url: str) -> None:
    assert no_answer_reason(await _error_of(url))
