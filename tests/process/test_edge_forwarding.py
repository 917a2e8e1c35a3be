"""Forwarding fields at the edge: what the portal sees, by raw bytes.

From an untrusted peer no forwarding claim of the client's reaches the portal; from a trusted one
`Forwarded` (RFC 7239) is understood as well as `X-Forwarded-*`.
"""

from __future__ import annotations

import asyncio
import json

from tests.conftest import RawUpstreamFactory, ShimFactory
from tests.support.loopback import Head, exchange_one, read_head, shim_settings

OPENID = "/.well-known/openid-configuration"
CLIENT_CLAIMS = [
    ("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Forwarded-Server", "evil"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Client-IP", "6.6.6.6"),
    ("True-Client-IP", "6.6.6.6"),
    ("CF-Connecting-IP", "6.6.6.6"),
    ("Fastly-Client-IP", "6.6.6.6"),
    ("X-Original-URL", "/admin"),
]


class Capture:
    """An upstream that records each request head and answers a small JSON document."""

    def __init__(self) -> None:
        self.heads: list[Head] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await read_head(reader))
        body = b'{"issuer":"https://auth.example.org/"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()


async def send(port: int, target: str, fields: list[tuple[str, str]]) -> tuple[Head, bytes]:
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields)
    request = (
        f"GET {target} HTTP/1.1\r\nHost: account.example.com\r\n{lines}Connection: close\r\n\r\n"
    )
    return await exchange_one(port, request.encode())


async def test_no_forwarding_claim_of_an_untrusted_client_reaches_the_portal(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture()
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url))
    head, _ = await send(shim.port, "/login", CLIENT_CLAIMS)
    assert head.status == 200
    (seen,) = capture.heads
    forwarding = {
        name.lower(): value
        for name, value in seen.fields
        if name.lower().startswith("x-forwarded-")
        or name.lower() in {n.lower() for n, _ in CLIENT_CLAIMS}
    }
    # only what the shim itself knows: the peer, the scheme it was reached by, the Host
    assert forwarding == {
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "account.example.com",
    }
    assert "6.6.6.6" not in str(seen.fields)


async def test_a_trusted_proxy_s_forwarded_is_understood_and_extended(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    capture = Capture()
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url, trusted_proxies=["127.0.0.0/8"]))
    fields = [
        ("Forwarded", 'for=203.0.113.7;proto=https;host="account.example.org:8443"'),
        ("X-Forwarded-Port", "8443"),
    ]
    head, body = await send(shim.port, OPENID, fields)
    assert head.status == 200
    assert json.loads(body)["account_management_uri"] == "https://account.example.org:8443/account/"
    (seen,) = capture.heads
    assert seen.getall("Forwarded") == [
        'for=203.0.113.7;proto=https;host="account.example.org:8443", '
        "for=127.0.0.1;host=account.example.com;proto=http"
    ]
    assert seen.getall("X-Forwarded-Proto") == ["https"]
    assert seen.getall("X-Forwarded-Host") == ["account.example.org:8443"]
    assert seen.getall("X-Forwarded-Port") == ["8443"]  # the trusted front's own field passes


async def test_the_portal_sees_the_origin_the_shim_believed(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """An appended list reaches the portal as the one value the shim used (the right-most)."""
    capture = Capture()
    upstream = await raw_upstream_factory(capture)
    shim = await shim_factory(shim_settings(upstream.url, trusted_proxies=["127.0.0.0/8"]))
    fields = [
        ("X-Forwarded-Host", "evil.example, account.example.com"),
        ("X-Forwarded-Proto", "http, https"),
        ("X-Forwarded-For", "6.6.6.6, 10.0.0.9"),
    ]
    await send(shim.port, "/login", fields)
    (seen,) = capture.heads
    assert seen.getall("X-Forwarded-Host") == ["account.example.com"]
    assert seen.getall("X-Forwarded-Proto") == ["https"]
    assert seen.getall("X-Forwarded-For") == ["6.6.6.6, 10.0.0.9, 127.0.0.1"]
