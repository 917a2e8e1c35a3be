"""What the upstream and the client see of each other's header fields, over real sockets."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RawUpstreamFactory, ShimFactory, UpstreamFactory
from tests.support.loopback import (
    Endpoint,
    Head,
    exchange_one,
    raw_exchange,
    read_body,
    read_head,
    shim_settings,
)


@dataclass
class Capture:
    """A raw upstream that records each request head and body, then sends `answer`."""

    answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    heads: list[Head] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            self.heads.append(head)
            self.bodies.append(await read_body(reader, head))
            writer.write(self.answer)
            await writer.drain()


async def _through_shim(
    capture: Capture,
    request: bytes,
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    **top: Any,
) -> tuple[Head, bytes]:
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url, **top))
    return await exchange_one(shim.port, request)


def _forwarded_names(head: Head) -> set[str]:
    return head.names() - {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}


HOP_BY_HOP_REQUEST = (
    b"GET /hop HTTP/1.1\r\n"
    b"Host: portal.example\r\n"
    b"Connection: Upgrade, X-Conn-Named, Keep-Alive\r\n"
    b"X-Conn-Named: dropped\r\n"
    b"Keep-Alive: timeout=5\r\n"
    b"Proxy-Connection: keep-alive\r\n"
    b"TE: trailers\r\n"
    b"Trailer: X-Checksum\r\n"
    b"Upgrade: h2c\r\n"
    b"Proxy-Authorization: Basic cHJveHk6c2VjcmV0\r\n"
    b'Proxy-Authenticate: Basic realm="odd but hop-by-hop"\r\n'
    b"Authorization: Bearer end-to-end\r\n"
    b"Cookie: a=1\r\n"
    b"Cookie: b=2\r\n"
    b"X-Repeated: one\r\n"
    b"X-Repeated: two\r\n"
    b"Accept-Language: fr\r\n"
    b"\r\n"
)


async def test_request_hop_by_hop_fields_dropped_others_kept(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture()
    head, _ = await _through_shim(capture, HOP_BY_HOP_REQUEST, raw_upstream_factory, shim_factory)
    assert head.status == 200
    (seen,) = capture.heads
    assert _forwarded_names(seen) == {
        "host",
        "authorization",
        "cookie",
        "x-repeated",
        "accept-language",
    }
    assert seen.get("Host") == "portal.example"
    assert seen.getall("Cookie") == ["a=1", "b=2"]
    assert seen.getall("X-Repeated") == ["one", "two"]
    assert seen.get("Authorization") == "Bearer end-to-end"


async def test_request_with_only_host_gains_nothing_but_forwarding_fields(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """No Accept, Accept-Encoding, User-Agent, Content-Type or Content-Length is added."""
    capture = Capture()
    request = b"GET /bare HTTP/1.1\r\nHost: portal.example\r\n\r\n"
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url))
    head, _ = await exchange_one(shim.port, request)
    assert head.status == 200
    assert capture.heads[0].names() == {
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }


async def test_a_body_without_content_type_gets_none(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture()
    request = b"POST /form HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    await _through_shim(capture, request, raw_upstream_factory, shim_factory)
    seen = capture.heads[0]
    assert _forwarded_names(seen) == {"host", "content-length"}
    assert seen.get("Content-Length") == "3"
    assert capture.bodies == [b"abc"]


async def test_client_accept_fields_pass_as_sent(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture()
    request = (
        b"GET / HTTP/1.1\r\nHost: p\r\nAccept-Encoding: br;q=1, identity;q=0.5\r\n"
        b"User-Agent: Element/1.11\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    await _through_shim(capture, request, raw_upstream_factory, shim_factory)
    seen = capture.heads[0]
    assert seen.getall("Accept-Encoding") == ["br;q=1, identity;q=0.5"]
    assert seen.getall("User-Agent") == ["Element/1.11"]
    assert seen.getall("Accept") == ["text/html"]


async def test_lowercase_hop_by_hop_request_fields_are_dropped(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture()
    request = (
        b"GET / HTTP/1.1\r\nHost: p\r\nconnection: x-named\r\nx-named: 1\r\n"
        b"keep-alive: timeout=5\r\nproxy-authorization: Basic eDp5\r\nupgrade: h2c\r\n\r\n"
    )
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url))
    await exchange_one(shim.port, request)
    assert _forwarded_names(capture.heads[0]) == {"host"}


HOP_BY_HOP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Connection: X-Conn-Named, keep-alive\r\n"
    b"X-Conn-Named: dropped\r\n"
    b"Keep-Alive: timeout=5, max=100\r\n"
    b"Proxy-Connection: keep-alive\r\n"
    b"TE: trailers\r\n"
    b"Trailer: X-Checksum\r\n"
    b"Upgrade: h2c\r\n"
    b'Proxy-Authenticate: Basic realm="proxy"\r\n'
    b"Proxy-Authorization: Basic eDp5\r\n"
    b"Set-Cookie: a=1; Path=/; HttpOnly\r\n"
    b"X-Kept: yes\r\n"
    b"Set-Cookie: b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT\r\n"
    b"Set-Cookie: c=3; SameSite=Lax\r\n"
    b"WWW-Authenticate: Bearer realm=portal\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"body"
)


async def test_response_hop_by_hop_fields_dropped_others_kept(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture(answer=HOP_BY_HOP_RESPONSE)
    request = b"GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    head, body = await _through_shim(capture, request, raw_upstream_factory, shim_factory)
    assert body == b"body"
    for name in (
        "X-Conn-Named",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Transfer-Encoding",
    ):
        assert head.get(name) is None, name
    # the shim's own answer to "Connection: close" is allowed; the upstream's field is not
    assert head.getall("Connection") in ([], ["close"])
    assert head.getall("Set-Cookie") == [
        "a=1; Path=/; HttpOnly",
        "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        "c=3; SameSite=Lax",
    ]
    assert head.get("X-Kept") == "yes"
    assert head.get("WWW-Authenticate") == "Bearer realm=portal"
    assert head.getall("Content-Length") == ["4"]


async def test_lowercase_hop_by_hop_response_fields_are_dropped(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """h11/uvicorn upstreams send lowercase field names."""
    answer = (
        b"HTTP/1.1 200 OK\r\nconnection: x-named\r\nx-named: 1\r\nkeep-alive: timeout=5\r\n"
        b"proxy-authenticate: Basic\r\ncontent-length: 2\r\n\r\nok"
    )
    request = b"GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    head, _ = await _through_shim(
        Capture(answer=answer), request, raw_upstream_factory, shim_factory
    )
    assert head.names() <= {"connection", "content-length", "date"}


async def test_three_set_cookie_fields_stay_separate_and_ordered(
    upstream_factory: UpstreamFactory, shim_factory: ShimFactory, client: aiohttp.ClientSession
) -> None:
    cookies = ["z=1; Path=/", "a=2; Expires=Thu, 01 Jan 2037 00:00:00 GMT", "m=3; Secure"]

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="hi")
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie)
        return response

    app = web.Application()
    app.router.add_get("/login", login)
    upstream = await upstream_factory(app)
    shim = await shim_factory(shim_settings(upstream.url))
    async with client.get(f"{shim.url}/login") as response:
        assert response.headers.getall("Set-Cookie") == cookies


async def test_gzip_passes_compressed_both_ways(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    client: aiohttp.ClientSession,
) -> None:
    down = gzip.compress(b"<html>" + b"portal " * 1000 + b"</html>")
    up = gzip.compress(b'{"a": "' + b"x" * 5000 + b'"}')
    capture = Capture(
        answer=b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
        b"Vary: Accept-Encoding\r\nContent-Length: %d\r\n\r\n" % len(down) + down
    )
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url))
    async with client.post(
        f"{shim.url}/page",
        data=up,
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
    ) as response:
        body = await response.read()
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Length"] == str(len(down))
    assert body == down
    assert capture.bodies == [up]
    assert capture.heads[0].get("Content-Encoding") == "gzip"
    assert capture.heads[0].get("Accept-Encoding") == "gzip"


async def test_no_cookie_jar_is_shared_between_users(
    upstream_factory: UpstreamFactory, shim_factory: ShimFactory
) -> None:
    cookies_seen: list[str | None] = []

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="welcome A")
        response.set_cookie("session", "user-a-secret", path="/")
        return response

    async def whoami(request: web.Request) -> web.Response:
        cookies_seen.append(request.headers.get("Cookie"))
        return web.Response(text="?")

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/whoami", whoami)
    upstream = await upstream_factory(app)
    shim = await shim_factory(shim_settings(upstream.url))
    jar = aiohttp.DummyCookieJar
    async with aiohttp.ClientSession(cookie_jar=jar()) as user_a:
        async with user_a.get(f"{shim.url}/login") as response:
            assert "user-a-secret" in response.headers["Set-Cookie"]
        async with user_a.get(f"{shim.url}/whoami"):
            pass
    async with (
        aiohttp.ClientSession(cookie_jar=jar()) as user_b,
        user_b.get(f"{shim.url}/whoami"),
    ):
        pass
    assert cookies_seen == [None, None]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_reach_the_client_unfollowed(
    status: int,
    upstream_factory: UpstreamFactory,
    shim_factory: ShimFactory,
    client: aiohttp.ClientSession,
) -> None:
    target_hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "/target?from=moved"})

    async def target(request: web.Request) -> web.Response:
        target_hits.append(request.path)
        return web.Response(text="target")

    app = web.Application()
    app.router.add_get("/moved", moved)
    app.router.add_get("/target", target)
    upstream = await upstream_factory(app)
    shim = await shim_factory(shim_settings(upstream.url))
    async with client.get(f"{shim.url}/moved", allow_redirects=False) as response:
        assert response.status == status
        assert response.headers["Location"] == "/target?from=moved"
    assert target_hits == []


# -- X-Forwarded-* ---------------------------------------------------------------------------


async def _forwarded_view(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    client_fields: bytes,
    **top: Any,
) -> tuple[Head, Endpoint]:
    capture = Capture()
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url, **top))
    request = b"GET / HTTP/1.1\r\nHost: portal.example:8443\r\n%sConnection: close\r\n\r\n" % (
        client_fields
    )
    await raw_exchange(shim.port, request)
    return capture.heads[0], upstream


SPOOFED = (
    b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n"
    b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"
)


async def test_forwarding_fields_set_for_a_direct_client(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen, _ = await _forwarded_view(raw_upstream_factory, shim_factory, b"")
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert seen.getall("X-Forwarded-Host") == ["portal.example:8443"]


async def test_spoofed_forwarding_fields_from_an_untrusted_peer_are_replaced(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen, _ = await _forwarded_view(raw_upstream_factory, shim_factory, SPOOFED)
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert seen.getall("X-Forwarded-Host") == ["portal.example:8443"]


async def test_forwarding_fields_from_a_trusted_proxy_are_extended(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen, _ = await _forwarded_view(
        raw_upstream_factory, shim_factory, SPOOFED, trusted_proxies=["127.0.0.0/8"]
    )
    assert seen.getall("X-Forwarded-For") == ["6.6.6.6, 7.7.7.7, 127.0.0.1"]
    assert seen.getall("X-Forwarded-Proto") == ["https"]
    assert seen.getall("X-Forwarded-Host") == ["evil.example"]


async def test_a_trusted_list_that_excludes_the_peer_is_not_believed(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen, _ = await _forwarded_view(
        raw_upstream_factory, shim_factory, SPOOFED, trusted_proxies=["10.0.0.0/8"]
    )
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.getall("X-Forwarded-Host") == ["portal.example:8443"]


@pytest.mark.parametrize("preserve_host", [True, False])
async def test_host_is_preserved_or_replaced(
    preserve_host: bool, raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    seen, upstream = await _forwarded_view(
        raw_upstream_factory,
        shim_factory,
        b"",
        upstream={"preserve_host": preserve_host},
    )
    expected = "portal.example:8443" if preserve_host else f"127.0.0.1:{upstream.port}"
    assert seen.getall("Host") == [expected]
    assert seen.getall("X-Forwarded-Host") == ["portal.example:8443"]
