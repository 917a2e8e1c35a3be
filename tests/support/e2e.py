"""The demo portal (or a test's own upstream) with the real shim in front, on loopback.

Built on proxy_harness. Also what the demo portal should show for each stable action name: the
portal knows only its own era's names, so landing on the right page proves the translation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType

from aiohttp import web
from aiohttp.typedefs import Handler

from demo.portal import HOME_VIEW, Era, make_portal_app
from shim.server.process import Shim
from tests.support.loopback import run_shim, serve_app, shim_settings

#: stable name -> the page (`data-view`) the legacy portals show for it; none of them has a page
#: for org.matrix.account_deactivate
EXPECTED_VIEW: Mapping[str, str] = MappingProxyType(
    {
        "org.matrix.profile": "profile",
        "org.matrix.devices_list": "sessions",
        "org.matrix.device_view": "session",
        "org.matrix.device_delete": "session-end",
        "org.matrix.cross_signing_reset": "cross-signing-reset",
    }
)
#: what each portal (with the dialect of its era) cannot serve: `unsupported: strip` lands those
#: on its home page
UNSERVED: Mapping[Era, frozenset[str]] = MappingProxyType(
    {
        "mas-0.9": frozenset({"org.matrix.account_deactivate"}),
        "msc3824": frozenset({"org.matrix.account_deactivate", "org.matrix.cross_signing_reset"}),
        "mas-1.10": frozenset({"org.matrix.account_deactivate"}),
    }
)


def expected_view(era: Era, action: str) -> str:
    """The page a deep link for the stable `action` lands on through the shim at `era`'s portal."""
    return HOME_VIEW if action in UNSERVED[era] else EXPECTED_VIEW[action]


@dataclass(frozen=True, slots=True)
class Stack:
    """An upstream on loopback (`portal_url`) with an in-process shim in front of it."""

    portal_url: str
    shim_url: str
    admin_url: str
    shim: Shim
    port: int  # the shim's public port


@asynccontextmanager
async def portal(era: Era) -> AsyncIterator[str]:
    """The demo portal of `era` on loopback: its URL."""
    async with serve_app(make_portal_app(era)) as endpoint:
        yield endpoint.url


@asynccontextmanager
async def shim_in_front(
    upstream: str, extra: Mapping[str, object] | None = None
) -> AsyncIterator[Stack]:
    """The shim in front of `upstream`: `extra` replaces top-level keys, but adds to `upstream`."""
    top = dict(extra or {})
    section = top.pop("upstream", None)
    assert section is None or isinstance(section, Mapping), section
    async with run_shim(shim_settings(upstream, upstream=section, **top)) as running:
        yield Stack(upstream, running.url, running.admin_url, running.shim, running.port)


@asynccontextmanager
async def app_stack(
    app: web.Application, extra: Mapping[str, object] | None = None
) -> AsyncIterator[Stack]:
    """`app` on loopback with the shim in front (see `shim_in_front` for `extra`)."""
    async with serve_app(app) as endpoint, shim_in_front(endpoint.url, extra) as stack:
        yield stack


def demo_stack(
    era: Era, extra: Mapping[str, object] | None = None
) -> AbstractAsyncContextManager[Stack]:
    """The demo portal of `era` with the shim in front (see `shim_in_front` for `extra`)."""
    return app_stack(make_portal_app(era), extra)


def recording(app: web.Application) -> list[str]:
    """The User-Agent of every request `app` gets from now on ("-" when there is none)."""
    agents: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        agents.append(request.headers.get("User-Agent", "-"))
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(record)
    return agents
