"""Pipelining, half-closed clients and closed connections (issue 21): a real shim process, raw
sockets, and what /proc says about its memory."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from pathlib import Path

import pytest

from tests.support.rawhttp import (
    HOST,
    MARKER,
    client,
    parse_responses,
    read_until_closed,
    request,
)
from tests.support.shimchild import edge

#: long enough that no timer ends an attack before it is measured
SLOW_LIMITS = {"head_timeout": "60s", "keepalive_timeout": "60s", "body_idle_timeout": "60s"}
MIB = 1024


@pytest.mark.timeout(60)
def test_a_client_that_pipelines_without_reading_keeps_memory_bounded(tmp_path: Path) -> None:
    """It writes requests as fast as the shim takes them for 20 s and reads none of the
    answers: the shim must stop reading (the next request starts only while the client reads)
    rather than queue requests or answers without bound."""
    one = request("GET", "/p", f"{MARKER}: P")
    with edge(tmp_path / "shim.yaml", limits=SLOW_LIMITS) as (_, shim), client(shim.port) as sock:
        time.sleep(0.3)
        before = shim.status_kib("VmRSS")
        sock.setblocking(False)
        pending = memoryview(one * 512)
        written = 0
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            _, ready, _ = select.select([], [sock], [], 0.2)
            if not ready:
                continue
            try:
                sent = sock.send(pending)
            except BlockingIOError:
                continue
            written += sent
            pending = pending[sent:] or memoryview(one * 512)
        grown = shim.status_kib("VmHWM") - before
    assert grown < 30 * MIB, f"RSS grew {grown} KiB while {written} bytes of requests were taken"


@pytest.mark.timeout(30)
def test_a_client_that_half_closes_after_pipelining_gets_every_answer_in_order(
    tmp_path: Path,
) -> None:
    count = 50
    stream = b"".join(request("GET", f"/p{n}", f"{MARKER}: {n}") for n in range(count))
    with edge(tmp_path / "shim.yaml") as (portal, shim), client(shim.port) as sock:
        sock.sendall(stream)
        sock.shutdown(socket.SHUT_WR)
        reply = read_until_closed(sock, 10.0)
    parsed = parse_responses(reply.data, eof=reply.closed)
    markers = [r.echo["marker"] if r.echo else r.status for r in parsed.responses]
    assert markers == [str(n) for n in range(count)], (markers, parsed.error)
    assert [r.marker for r in portal.requests()] == [str(n) for n in range(count)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("body", [b"", b"payload"], ids=["get", "post"])
def test_a_half_closed_client_gets_its_answer(tmp_path: Path, body: bytes) -> None:
    lines = (f"Content-Length: {len(body)}",) if body else ()
    data = request("POST" if body else "GET", "/h", f"{MARKER}: H", *lines, body=body)
    with edge(tmp_path / "shim.yaml") as (portal, shim), client(shim.port) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = read_until_closed(sock, 5.0)
    parsed = parse_responses(reply.data, eof=reply.closed)
    assert [r.echo["marker"] if r.echo else r.status for r in parsed.responses] == ["H"], (
        reply.data[:300]
    )
    assert [r.body for r in portal.requests()] == [body]


#: a deep link the shim answers itself (302 from the head alone): no portal in the loop, so the
#: test measures the listener's own cost per connection
DEEP_LINK = b"GET /account/?action=org.matrix.device_delete&device_id=D HTTP/1.1\r\n"
SHORT = DEEP_LINK + b"Host: portal.example\r\nConnection: close\r\n\r\n"


async def _short_connections(port: int, count: int, parallel: int = 16) -> int:
    """`count` connections of one `Connection: close` request each; how many got a 302."""
    done = 0
    left = count

    async def worker() -> None:
        nonlocal done, left
        while left > 0:
            left -= 1
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(SHORT)
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            done += data.startswith(b"HTTP/1.1 302 ")

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return done


@pytest.mark.timeout(90)
def test_closed_connections_are_released_at_once(tmp_path: Path) -> None:
    """Short connections, each closed after one answer, leave nothing behind: after a warm-up,
    30,000 more do not grow the shim's memory by more than a few MiB (each used to stay until
    its timer ran out: ~80 MB for 30,000)."""
    with edge(tmp_path / "shim.yaml", limits=SLOW_LIMITS) as (_, shim):
        assert asyncio.run(_short_connections(shim.port, 3_000)) == 3_000
        time.sleep(0.5)
        baseline = shim.status_kib("VmRSS")
        started = time.monotonic()
        answered = asyncio.run(_short_connections(shim.port, 30_000))
        took = time.monotonic() - started
        grown = shim.status_kib("VmRSS") - baseline
    assert answered == 30_000
    assert grown < 8 * MIB, f"RSS grew {grown} KiB over 30,000 closed connections ({took:.1f}s)"
