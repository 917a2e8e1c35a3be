"""The demo portal in a real headless browser, without the shim: its script reads the URL.

The control for the end-to-end tests through the shim: a legacy portal lands a legacy name on the
right page, and shows its "unknown action" page for a stable name it does not speak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from demo.portal import Era, make_portal_app
from tests.support.browser import open_portal_page, require_chromium

pytestmark = pytest.mark.browser

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


async def _portal_url(aiohttp_server: ServerFactory, era: Era, query: str) -> str:
    server = await aiohttp_server(make_portal_app(era))
    return str(server.make_url("/account/").with_query(query))


@pytest.mark.parametrize(
    ("era", "action", "view"),
    [
        ("mas-0.9", "org.matrix.session_end", "session-end"),
        ("mas-0.9", "org.matrix.cross_signing_reset", "cross-signing-reset"),
        ("mas-0.7", "org.matrix.sessions_list", "sessions"),
        ("prototype-unstable-keys", "org.matrix.session_view", "session"),
        ("msc3824", "session_end", "session-end"),
    ],
)
async def test_a_legacy_name_lands_on_its_page(
    aiohttp_server: ServerFactory, era: Era, action: str, view: str
) -> None:
    url = await _portal_url(aiohttp_server, era, f"action={action}&device_id=ABCDEFGH")

    page = await open_portal_page(url)

    assert (page.view, page.action, page.device_id) == (view, action, "ABCDEFGH")
    assert page.href == url
    assert "ABCDEFGH" in page.dom


async def test_a_stable_name_is_an_unknown_action_on_a_legacy_portal(
    aiohttp_server: ServerFactory,
) -> None:
    # The failure the shim exists to fix.
    url = await _portal_url(
        aiohttp_server, "mas-0.9", "action=org.matrix.device_delete&device_id=X"
    )

    page = await open_portal_page(url)

    assert page.view == "unknown-action"
    assert page.action == "org.matrix.device_delete"
    assert "does not understand the action" in page.dom


async def test_no_action_is_the_home_page(aiohttp_server: ServerFactory) -> None:
    server = await aiohttp_server(make_portal_app("mas-0.9"))

    page = await open_portal_page(str(server.make_url("/account")))

    assert (page.view, page.action, page.device_id) == ("home", "", "")


async def test_the_page_reads_the_url_the_browser_ended_on(aiohttp_server: ServerFactory) -> None:
    # As after the shim's 302: the server-side query does not matter, the browser's URL does.
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/account/?action=org.matrix.profile")

    app = make_portal_app("mas-0.9")
    app.router.add_get("/go", redirect)
    server = await aiohttp_server(app)

    page = await open_portal_page(str(server.make_url("/go")))

    assert page.view == "profile"
    assert URL(page.href).path_qs == "/account/?action=org.matrix.profile"
