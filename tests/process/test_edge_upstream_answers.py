"""A misbehaving portal cannot desync or corrupt the client's side (issue 21): the upstream writes
exact bytes, the client reads what the shim relays with h11 (a strict parser, independent of the
shim's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.rawhttp import (
    MARKER,
    RawAnswer,
    UpstreamRequest,
    client,
    one_response,
    parse_responses,
    read_until_closed,
    request,
    send_raw,
)
from tests.support.shimchild import edge

pytestmark = pytest.mark.timeout(60)


def _always(data: bytes, *, close: bool = False) -> Callable[[UpstreamRequest], RawAnswer]:
    """The portal answers every request with `data`."""

    def answer(_: UpstreamRequest) -> RawAnswer:
        return RawAnswer(data, close=close)

    return answer


def test_a_connection_token_naming_content_length_leaves_the_answer_framed(
    tmp_path: Path,
) -> None:
    """A kept-alive client reads a second answer on the same connection."""
    answer = _always(
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
    )
    with edge(tmp_path / "shim.yaml", answer=answer) as (_, shim), client(shim.port) as sock:
        sock.sendall(request("GET", "/a", f"{MARKER}: A"))
        time.sleep(0.5)
        sock.sendall(request("GET", "/b", f"{MARKER}: B", "Connection: close"))
        reply = read_until_closed(sock, 4.0)
    parsed = parse_responses(reply.data, eof=reply.closed)
    assert [(r.status, r.body) for r in parsed.responses] == [(200, b"hello")] * 2, reply.data
    assert parsed.error is None, parsed.error


@pytest.mark.parametrize("status", [b"099", b"000", b"600", b"999"])
def test_a_status_outside_100_to_599_is_a_502(tmp_path: Path, status: bytes) -> None:
    answer = _always(
        b"HTTP/1.1 %b Odd\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi" % status, close=True
    )
    with edge(tmp_path / "shim.yaml", answer=answer) as (_, shim):
        reply = send_raw(shim.port, request("GET", "/a", f"{MARKER}: A", "Connection: close"))
    assert reply.data.startswith(b"HTTP/1.1 502 "), reply.data[:200]
    assert one_response(reply).status == 502


@pytest.mark.parametrize("bad", [b"a\rb", b"a\x00b"], ids=["cr", "nul"])
def test_response_trailers_with_control_bytes_are_not_relayed(tmp_path: Path, bad: bytes) -> None:
    answer = _always(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-T: " + bad + b"\r\n\r\n"
    )
    with edge(tmp_path / "shim.yaml", answer=answer) as (_, shim):
        reply = send_raw(
            shim.port, request("GET", "/a", f"{MARKER}: A", "TE: trailers", "Connection: close")
        )
    assert bad not in reply.data, reply.data
    parsed = parse_responses(reply.data, eof=reply.closed)
    assert parsed.error is None, (parsed.error, reply.data)
    # the answer is relayed without the trailer, or refused whole; never a malformed stream
    assert [r.status for r in parsed.responses] in ([200], [502]), reply.data
    if parsed.responses[0].status == 200:
        assert parsed.responses[0].body == b"hello"


def test_a_101_to_a_request_that_asked_for_no_upgrade_is_a_502(tmp_path: Path) -> None:
    answer = _always(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nafter",
        close=True,
    )
    with edge(tmp_path / "shim.yaml", answer=answer) as (_, shim):
        reply = send_raw(shim.port, request("GET", "/a", f"{MARKER}: A", "Connection: close"))
    assert one_response(reply).status == 502, reply.data[:300]


def test_a_chunked_gzip_answer_is_read_to_close_and_never_reused(tmp_path: Path) -> None:
    """`chunked, gzip`: chunked is not the last coding, so the body ends where the connection
    does (RFC 9112 6.3); the portal keeps it open a moment to show whether the shim reuses it."""

    def answer(req: UpstreamRequest) -> RawAnswer | None:
        if req.target != "/gz":
            return None
        return RawAnswer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw-bytes-to-close",
            close=True,
            linger=1.0,
        )

    with edge(tmp_path / "shim.yaml", answer=answer) as (portal, shim):
        first = send_raw(shim.port, request("GET", "/gz", f"{MARKER}: A", "Connection: close"))
        second = send_raw(shim.port, request("GET", "/next", f"{MARKER}: B", "Connection: close"))
        time.sleep(0.2)
    response = one_response(first)
    assert response.status == 200
    assert response.body == b"raw-bytes-to-close"
    assert one_response(second).echo == {
        "marker": "B",
        "method": "GET",
        "target": "/next",
        "connection": 1,
        "body_length": 0,
    }
    assert portal.connections[0].raw.count(b" HTTP/1.1\r\n") == 1, portal.connections[0].raw
