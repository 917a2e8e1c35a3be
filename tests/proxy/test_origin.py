"""The public origin: `public_url`, else what a trusted proxy reports, else the request's own.

It is used for Location headers that point at the upstream's internal address and for the
default `account_management_uri`; a spoofed X-Forwarded-Host from anyone else must not reach
either.
"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import hdrs, web

from tests.support.e2e import app_stack

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "account.example.com"}


def _upstream() -> web.Application:
    async def login(request: web.Request) -> web.Response:
        # its own internal address, as a portal that builds URLs from its bind address does
        assert request.transport is not None
        host, port = request.transport.get_extra_info("sockname")[:2]
        own = f"http://{host}:{port}"
        return web.Response(status=302, headers={hdrs.LOCATION: f"{own}/login?next=%2F"})

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response({"issuer": "https://issuer.example/"})

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    return app


@pytest.mark.parametrize(
    ("settings", "origin"),
    [
        ({"trusted_proxies": ["127.0.0.0/8"]}, "https://account.example.com"),
        ({}, None),  # untrusted: the request's own Host, never the forwarded one
        (
            {"trusted_proxies": ["127.0.0.0/8"], "public_url": "https://portal.example.org"},
            "https://portal.example.org",
        ),
    ],
)
async def test_location_and_default_uri_follow_the_public_origin(
    settings: dict[str, object], origin: str | None
) -> None:
    async with app_stack(_upstream(), settings) as stack, aiohttp.ClientSession() as session:
        expected = origin or stack.shim_url
        async with session.get(
            f"{stack.shim_url}/login", headers=FORWARDED, allow_redirects=False
        ) as response:
            assert response.status == 302
            assert response.headers[hdrs.LOCATION] == f"{expected}/login?next=%2F"
        async with session.get(
            f"{stack.shim_url}/.well-known/openid-configuration", headers=FORWARDED
        ) as response:
            document = await response.json()
            assert document["account_management_uri"] == f"{expected}/account/"
