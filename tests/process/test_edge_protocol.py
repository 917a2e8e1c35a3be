"""Protocol edges: bad upstream heads, HTTP/2 prior knowledge, path-prefix
escapes, and no invented `Server` field; against the real process where the log matters."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import RawUpstreamFactory, ShimFactory, ShimProcessFactory
from tests.support.loopback import (
    Head,
    RawHandler,
    exchange_one,
    raw_exchange,
    read_head,
    shim_settings,
    split_response,
)

OPENID = "/.well-known/openid-configuration"


def answering(head: bytes, body: bytes = b"{}") -> tuple[list[Head], RawHandler]:
    seen: list[Head] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()

    return seen, handler


def get(target: str, host: str = "a.example") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    "bad",
    [b"X-Bad: a\x01b\r\n", b"X-Bad: a\nb\r\n", b"X-Bad: a\x00b\r\n", b"X-Bad: a\x7fb\r\n"],
    ids=["soh", "bare-lf", "nul", "del"],
)
@pytest.mark.parametrize("target", ["/login", OPENID])
async def test_an_upstream_header_with_a_control_byte_is_a_502(
    raw_upstream_factory: RawUpstreamFactory,
    shim_process_factory: ShimProcessFactory,
    bad: bytes,
    target: str,
) -> None:
    _, handler = answering(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + bad)
    upstream = await raw_upstream_factory(handler)
    shim = await shim_process_factory(shim_settings(upstream.url))
    head, body = await exchange_one(shim.port, get(target))
    assert head.status == 502, (head, body)
    assert b"\x01" not in body
    assert head.get("X-Bad") is None
    await asyncio.sleep(0.1)
    assert "Traceback" not in shim.stderr


async def test_an_http2_prior_knowledge_client_gets_a_clear_refusal(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    seen, handler = answering(b"HTTP/1.1 200 OK\r\n")
    upstream = await raw_upstream_factory(handler)
    shim = await shim_process_factory(shim_settings(upstream.url))
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
    reply = await raw_exchange(shim.port, preface)
    await asyncio.sleep(0.1)
    if reply:
        head, body = split_response(reply)
        assert head.start_line.startswith(("HTTP/1.1 505", "HTTP/1.1 400")), reply
        assert b"HTTP/1.1" in body  # says what to speak instead
    else:
        assert shim.events("http2_refused"), shim.stderr
    assert "Traceback" not in shim.stderr
    assert seen == []


@pytest.mark.parametrize(
    "target",
    ["/../admin", "/%2e%2e/admin", "/.%2E/admin", "/..%2fadmin", "/x/../../admin", "/..%5cadmin"],
)
async def test_a_target_that_leaves_the_upstream_prefix_is_refused(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory, target: str
) -> None:
    seen, handler = answering(b"HTTP/1.1 200 OK\r\n")
    upstream = await raw_upstream_factory(handler)
    shim = await shim_factory(shim_settings(upstream.url + "/auth"))
    head, body = await exchange_one(shim.port, get(target))
    assert head.status == 400, body
    assert b"/auth" in body
    assert seen == []


async def test_a_target_that_stays_inside_the_prefix_passes_byte_for_byte(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen, handler = answering(b"HTTP/1.1 200 OK\r\n")
    upstream = await raw_upstream_factory(handler)
    shim = await shim_factory(shim_settings(upstream.url + "/auth"))
    head, _ = await exchange_one(shim.port, get("/x/../y?a=%2e%2e"))
    assert head.status == 200
    assert seen[0].target == "/auth/x/../y?a=%2e%2e"


async def test_the_shim_s_own_answers_invent_no_server_field(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    _, handler = answering(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    upstream = await raw_upstream_factory(handler)
    shim = await shim_factory(shim_settings(upstream.url))
    down = await shim_factory(shim_settings("http://127.0.0.1:9"))
    answers = [
        await exchange_one(shim.port, get("/account/?action=org.matrix.device_delete&device_id=D")),
        await exchange_one(shim.port, get(OPENID)),
        await exchange_one(shim.port, get("/login", host="a/b")),  # 400: invalid Host
        await exchange_one(down.port, get("/login")),  # 502
    ]
    assert [head.status for head, _ in answers] == [302, 200, 400, 502]
    for head, _ in answers:
        assert head.get("Server") is None, head
