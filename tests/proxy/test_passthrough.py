"""Passthrough: methods, the raw target, status lines and bodiless answers, kept as they are."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RawUpstreamFactory, ShimFactory, ShimFor
from tests.support.loopback import (
    Head,
    RunningShim,
    raw_exchange,
    read_body,
    read_head,
    shim_settings,
    split_response,
)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]


@dataclass
class Seen:
    """What a recording upstream received, one entry per request."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            body = await request.read()
            self.requests.append((request.method, request.raw_path, body))
            return web.Response(
                status=207 if request.method == "PROPFIND" else 200,
                body=b"answer:" + body,
                headers={"X-Seen-Method": request.method},
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


@pytest.mark.parametrize("method", METHODS)
async def test_every_method_is_forwarded_with_its_body(
    method: str, shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    seen = Seen()
    shim = await shim_for(seen.app())
    body = b"" if method in ("GET", "HEAD") else f"<{method} body \x00\xff>".encode("latin-1")

    async with client.request(method, f"{shim.url}/dav/item", data=body or None) as response:
        answer = await response.read()

    assert seen.requests == [(method, "/dav/item", body)]
    assert response.status == (207 if method == "PROPFIND" else 200)
    assert response.headers["X-Seen-Method"] == method
    assert answer == (b"" if method == "HEAD" else b"answer:" + body)


TargetsSeen = Callable[..., Awaitable[tuple[RunningShim, list[str]]]]


@pytest.fixture
def targets_seen(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> TargetsSeen:
    """`await targets_seen(path_prefix="")`: a shim, and the request targets its upstream gets."""

    async def start(path_prefix: str = "") -> tuple[RunningShim, list[str]]:
        targets: list[str] = []

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await read_head(reader)
            targets.append(head.target)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

        upstream = await raw_upstream_factory(answer)
        return await shim_factory(shim_settings(upstream.url + path_prefix)), targets

    return start


@pytest.mark.parametrize(
    "target",
    [
        "/a%2Fb/%7e?b=2&a=1&a=%20+x;y",
        "/%41%42%43/%2e%2E/x?q=%2F%2f&q=%252F",
        "/a/./b/../c",
        "//double//slash/",
        "/trailing/?x&&y=&=z",
        "/semi;colon/p;q=1",
        "/account/?action=org.matrix.unknown%20thing&x=%ZZ",
    ],
)
async def test_raw_path_and_query_arrive_byte_for_byte(
    target: str, targets_seen: TargetsSeen
) -> None:
    shim, targets = await targets_seen()
    request = f"GET {target} HTTP/1.1\r\nHost: portal.example\r\nConnection: close\r\n\r\n"

    head, _ = split_response(await raw_exchange(shim.port, request.encode()))

    assert head.status == 200
    assert targets == [target]


async def test_an_empty_query_is_kept(targets_seen: TargetsSeen) -> None:
    shim, targets = await targets_seen()
    request = b"GET /x? HTTP/1.1\r\nHost: portal.example\r\nConnection: close\r\n\r\n"
    await raw_exchange(shim.port, request)
    assert targets == ["/x?"]


async def test_an_upstream_path_prefix_is_prepended_verbatim(targets_seen: TargetsSeen) -> None:
    shim, targets = await targets_seen("/portal/")
    request = b"GET /a%2Fb?q=%20 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    await raw_exchange(shim.port, request)
    assert targets == ["/portal/a%2Fb?q=%20"]


HEAD_REQUEST = b"HEAD /file HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
GET_REQUEST = b"GET /file HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"

Relay = Callable[..., Awaitable[tuple[Head, bytes]]]


@pytest.fixture
def relay(shim_for: ShimFor) -> Relay:
    """`await relay(upstream_answer, request=GET_REQUEST)`: what the client gets through the shim.

    The upstream answers `request` with exactly the bytes of `upstream_answer`.
    """

    async def exchange(upstream_answer: bytes, request: bytes = GET_REQUEST) -> tuple[Head, bytes]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_body(reader, await read_head(reader))
            writer.write(upstream_answer)
            await writer.drain()
            await reader.read()  # keep the connection until the shim closes it

        shim = await shim_for(answer)
        return split_response(await raw_exchange(shim.port, request))

    return exchange


async def test_head_keeps_content_length_and_sends_no_body(relay: Relay) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: application/pdf\r\n"
        b'ETag: "v1"\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n'
    )
    head, rest = await relay(answer, HEAD_REQUEST)
    assert head.status == 200
    assert head.getall("Content-Length") == ["1234"]
    assert head.get("Content-Type") == "application/pdf"
    assert head.get("ETag") == '"v1"'
    assert head.get("Last-Modified") == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert rest == b""


async def test_204_passes_without_a_body_and_with_its_fields(relay: Relay) -> None:
    answer = b"HTTP/1.1 204 No Content\r\nX-Request-Id: abc\r\nCache-Control: no-store\r\n\r\n"
    head, rest = await relay(answer)
    assert head.start_line == "HTTP/1.1 204 No Content"
    assert head.get("X-Request-Id") == "abc"
    assert head.get("Cache-Control") == "no-store"
    assert head.get("Transfer-Encoding") is None
    assert rest == b""


async def test_304_passes_without_a_body_and_keeps_its_etag(relay: Relay) -> None:
    answer = (
        b'HTTP/1.1 304 Not Modified\r\nETag: "v2"\r\nCache-Control: max-age=60\r\n'
        b"Vary: Accept-Encoding\r\n\r\n"
    )
    request = b'GET /file HTTP/1.1\r\nHost: p\r\nIf-None-Match: "v2"\r\nConnection: close\r\n\r\n'
    head, rest = await relay(answer, request)
    assert head.start_line == "HTTP/1.1 304 Not Modified"
    assert head.get("ETag") == '"v2"'
    assert head.get("Cache-Control") == "max-age=60"
    assert head.get("Vary") == "Accept-Encoding"
    assert head.get("Transfer-Encoding") is None
    assert rest == b""


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 500 Internal Server Error",
        b"HTTP/1.1 503 Service Unavailable",
        b"HTTP/1.1 299 Custom Reason",
    ],
)
async def test_status_and_reason_pass_unchanged(status_line: bytes, relay: Relay) -> None:
    answer = status_line + b"\r\nContent-Length: 5\r\n\r\noops!"
    head, rest = await relay(answer)
    assert head.start_line == status_line.decode()
    assert rest == b"oops!"


async def test_no_server_or_content_type_is_invented(relay: Relay) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    head, rest = await relay(answer)
    assert "server" not in head.names()
    assert "content-type" not in head.names()
    assert rest == b"hi"


async def test_upstream_server_content_type_and_date_are_kept_once(relay: Relay) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nServer: legacy-portal/0.9\r\nContent-Type: text/x-odd; q=1\r\n"
        b"Date: Tue, 01 Jan 2030 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nhi"
    )
    head, _ = await relay(answer)
    assert head.getall("Server") == ["legacy-portal/0.9"]
    assert head.getall("Content-Type") == ["text/x-odd; q=1"]
    assert head.getall("Date") == ["Tue, 01 Jan 2030 00:00:00 GMT"]
