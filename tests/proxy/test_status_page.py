"""The admin listener's status page (`GET /`) after real traffic through a real shim."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser

import aiohttp
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from yarl import URL

from demo.portal import make_portal_app
from shim.obs.counters import parse_counters
from shim.vocabulary import STABLE_ACTIONS
from tests.conftest import ShimFor

SECRET = "s3cr3t-id-token"
#: the request counters are written just after the client has the whole response
SETTLE_SECONDS = 2.0


def portal_with_a_broken_route(era: str = "mas-0.9") -> tuple[web.Application, list[str]]:
    """The demo portal, plus `/drop` that closes the connection without an answer.

    Also returns the paths it was asked for, so tests can count the page's own reads.
    """
    app = make_portal_app(era)  # type: ignore[arg-type]
    seen: list[str] = []

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(record)
    app.router.add_get("/drop", drop)
    return app, seen


async def send_known_traffic(client: aiohttp.ClientSession, shim_url: str) -> None:
    """3 legacy and 2 stable deep links, 1 discovery document, 1 upstream error."""
    links = ["session_end"] * 2 + ["sessions_list"]
    links += ["org.matrix.device_delete", "org.matrix.devices_list"]
    for name in links:
        url = f"{shim_url}/account/?action={name}&device_id=ABC&id_token_hint={SECRET}"
        async with client.get(URL(url, encoded=True), allow_redirects=False) as response:
            assert response.status == 302
    async with client.get(f"{shim_url}/.well-known/openid-configuration") as response:
        assert response.status == 200
    async with client.get(f"{shim_url}/drop") as response:
        assert response.status == 502


class Rows(HTMLParser):
    """`data-incoming` / `data-key` rows of the page with the number in their `count` cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], int] = {}
        self.verdict = ""
        self._row: tuple[str, str] | None = None
        self._in_count = False
        self._table = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._table = found.get("id") or ""
        elif tag == "tr":
            name = found.get("data-incoming") or found.get("data-key")
            self._row = (self._table, name) if name else None
        elif tag == "td" and found.get("class") == "count":
            self._in_count = True
        elif tag == "div" and found.get("id") == "verdict":
            self.verdict = found.get("data-verdict") or ""

    def handle_data(self, data: str) -> None:
        if self._in_count and self._row:
            self.rows[self._row] = int(data)
            self._in_count = False


async def status(client: aiohttp.ClientSession, admin_url: str) -> tuple[str, Rows]:
    async with client.get(admin_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers[hdrs.CACHE_CONTROL] == "no-store"
        assert "default-src 'none'" in response.headers[hdrs.CONTENT_SECURITY_POLICY]
        page = await response.text()
    rows = Rows()
    rows.feed(page)
    return page, rows


EXPECTED = {
    ("deeplinks", "session_end"): 2,
    ("deeplinks", "sessions_list"): 1,
    ("deeplinks", "org.matrix.device_delete"): 1,
    ("deeplinks", "org.matrix.devices_list"): 1,
    ("discovery", "rewritten"): 1,
}


async def settled(client: aiohttp.ClientSession, admin_url: str) -> tuple[str, Rows]:
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        page, rows = await status(client, admin_url)
        errors = sum(n for (table, _), n in rows.rows.items() if table == "errors")
        done = errors == 1 and all(rows.rows.get(k) == n for k, n in EXPECTED.items())
        if done or asyncio.get_running_loop().time() > deadline:
            return page, rows
        await asyncio.sleep(0.05)


async def test_the_page_counts_the_traffic_and_says_why_the_shim_stays(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream, _seen = portal_with_a_broken_route()
    shim = await shim_for(upstream)
    await send_known_traffic(client, shim.url)
    page, rows = await settled(client, shim.admin_url)

    assert {k: n for k, n in rows.rows.items() if k[0] != "errors"} == EXPECTED
    assert sum(n for (table, _), n in rows.rows.items() if table == "errors") == 1
    assert rows.verdict == "needed"
    assert "clients still sent 3 legacy-named deep links since the shim started" in page
    assert "dialect mas-0.9 is not stable" in page
    assert "org.matrix.session_end (redirect): 2" in page


async def test_the_page_shows_what_metrics_serves(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream, _seen = portal_with_a_broken_route()
    shim = await shim_for(upstream)
    await send_known_traffic(client, shim.url)
    _page, rows = await settled(client, shim.admin_url)
    async with client.get(shim.admin_url + "/metrics") as response:
        counters = parse_counters(await response.text())
    assert counters is not None
    by_name: dict[tuple[str, str], int] = {}
    for link in counters.deeplinks:
        key = ("deeplinks", link.incoming)
        by_name[key] = by_name.get(key, 0) + link.count
    by_name |= {("discovery", k): n for k, n in counters.discovery.items()}
    by_name |= {("errors", k): n for k, n in counters.upstream_errors.items()}
    assert rows.rows == by_name


async def test_no_token_and_no_query_on_the_page(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream, _seen = portal_with_a_broken_route()
    shim = await shim_for(upstream)
    await send_known_traffic(client, shim.url)
    page, _rows = await settled(client, shim.admin_url)
    assert SECRET not in page
    assert "device_id" not in page
    assert not re.search(r"\?[^\s<]*=", page), "a query string"


async def test_ready_to_retire_in_front_of_a_stable_portal(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    document = {
        "issuer": "http://portal.example/",
        "account_management_uri": "http://portal.example/account/",
        "account_management_actions_supported": list(STABLE_ACTIONS),
    }

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    shim = await shim_for(app, account_management={"dialect": "stable"})
    _page, rows = await status(client, shim.admin_url)
    assert rows.verdict == "retire"


async def test_the_portal_is_read_at_most_once_per_interval(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream, seen = portal_with_a_broken_route()
    shim = await shim_for(upstream)
    await asyncio.gather(*(status(client, shim.admin_url) for _ in range(10)))
    assert seen.count("/.well-known/openid-configuration") == 1


async def test_a_portal_that_does_not_answer_is_a_reason_not_an_error(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    shim = await shim_for(web.Application(), account_management={"dialect": "stable"})
    page, rows = await status(client, shim.admin_url)
    assert rows.verdict == "needed"
    assert "the portal&#x27;s own discovery document could not be checked" in page
    assert "answered 404 without a usable JSON object" in page
