"""Deep links over HTTP: the shim and its upstreams on real loopback servers.

The emulated legacy portal (`demo.portal`) proves that a link lands where the user meant; a
small echo upstream written here records the exact bytes of every request target it receives, so
"only the action's value changes" is checked byte for byte, and answers with any `Location` a test
asks for (request header `X-Test-Location`), so the response-side rewrite is checked too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import hdrs, web
from yarl import URL

from demo.portal import PORTAL_ACTION_HEADER, PORTAL_QUERY_HEADER, Era, view_for
from shim.vocabulary import STABLE_ACTIONS
from tests.support.e2e import Stack, app_stack, demo_stack, expected_view
from tests.support.loopback import raw_exchange

TEST_LOCATION = "X-Test-Location"
#: enough for a 16 KiB query in a request line or a Location field
BIG = 64 * 1024
NO_STORE = "no-store"


@dataclass
class Echo:
    """What the echo upstream saw: (method, raw request target, body) per request."""

    url: str = ""
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return [target for _, target, _ in self.seen]


def _echo_app(echo: Echo) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        echo.seen.append((request.method, request.raw_path, await request.read()))
        location = request.headers.get(TEST_LOCATION)
        if location is not None:
            return web.Response(status=302, headers={hdrs.LOCATION: location})
        return web.Response(text="echo\n")

    app = web.Application(handler_args={"max_line_size": BIG, "max_field_size": BIG})
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@asynccontextmanager
async def echo_stack(
    extra: Mapping[str, object] | None = None,
) -> AsyncIterator[tuple[Echo, Stack]]:
    echo = Echo()
    async with app_stack(_echo_app(echo), extra) as stack:
        echo.url = stack.portal_url
        yield echo, stack


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        auto_decompress=False, max_line_size=BIG, max_field_size=BIG
    ) as session:
        yield session


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


async def fetch(
    client: aiohttp.ClientSession,
    url: str,
    method: str = hdrs.METH_GET,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Answer:
    async with client.request(
        method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
    ) as response:
        body = await response.read()
        return Answer(response.status, response.headers, response.raw_headers, body)


def assert_clean_headers(answer: Answer) -> None:
    """No field carries a raw CR, LF or NUL, and no field was smuggled in through a value."""
    for name, value in answer.raw_headers:
        assert not set(b"\r\n\0") & set(name + value), (name, value)
    assert hdrs.SET_COOKIE not in answer.headers


def query_of(location: str) -> str:
    return location.partition("?")[2]


# --- strategy: redirect ---------------------------------------------------------------------


async def test_redirect_replaces_only_the_action_value(client: aiohttp.ClientSession) -> None:
    query = (
        "id_token_hint=eyJhbGciOi.J9%2Fx&device_id=AB%2FCD+EF&action=org.matrix.device_delete"
        "&org.matrix.msc4198.login_hint=mxid%3A%40alice%3Aexample.org&unknown=%E2%9C%93&flag"
    )
    async with echo_stack() as (echo, stack):
        answer = await fetch(client, f"{stack.shim_url}/account/?{query}")
        assert answer.status == 302
        assert answer.headers[hdrs.LOCATION] == "/account/?" + query.replace(
            "action=org.matrix.device_delete", "action=org.matrix.session_end"
        )
        assert answer.headers[hdrs.CACHE_CONTROL] == NO_STORE
        assert echo.seen == [], "a redirect is answered by the shim alone"


async def test_redirect_location_is_relative_to_the_request_origin(
    client: aiohttp.ClientSession,
) -> None:
    async with echo_stack({"public_url": "https://account.example.com"}) as (_, stack):
        for path in ("/account/", "/account", "/%61ccount/"):
            answer = await fetch(
                client,
                f"{stack.shim_url}{path}?action=org.matrix.devices_list",
                headers={hdrs.HOST: "evil.example"},
            )
            assert answer.status == 302, path
            location = answer.headers[hdrs.LOCATION]
            assert location == f"{path}?action=org.matrix.sessions_list"
            assert not URL(location).is_absolute()
            assert not location.startswith(("//", "/\\"))


async def test_following_the_redirect_reaches_the_portal_once(
    client: aiohttp.ClientSession,
) -> None:
    async with demo_stack("mas-0.9") as stack:
        first = await fetch(
            client, f"{stack.shim_url}/account/?action=org.matrix.device_delete&device_id=ABC"
        )
        assert first.status == 302
        location = first.headers[hdrs.LOCATION]
        second = await fetch(client, stack.shim_url + location)
        assert second.status == 200, "a translated URL is never translated again"
        assert second.headers[PORTAL_ACTION_HEADER] == "org.matrix.session_end"
        assert second.headers[PORTAL_QUERY_HEADER] == "action=org.matrix.session_end&device_id=ABC"


@pytest.mark.parametrize(("era", "dialect"), [("mas-0.9", "mas-0.9"), ("msc3824", "msc3824")])
async def test_every_stable_name_lands_on_its_page(
    client: aiohttp.ClientSession, era: Era, dialect: str
) -> None:
    async with demo_stack(era, {"account_management": {"dialect": dialect}}) as stack:
        for action in STABLE_ACTIONS:
            url = f"{stack.shim_url}/account/?action={action}&device_id=D1"
            hops = 0
            answer = await fetch(client, url)
            while answer.status == 302:
                hops += 1
                assert hops == 1, f"{action}: more than one redirect"
                answer = await fetch(client, stack.shim_url + answer.headers[hdrs.LOCATION])
            assert answer.status == 200, action
            landed = view_for(era, answer.headers.get(PORTAL_ACTION_HEADER))
            assert landed == expected_view(era, action), action
            assert "device_id=D1" in answer.headers[PORTAL_QUERY_HEADER]


async def test_head_is_redirected_like_get(client: aiohttp.ClientSession) -> None:
    async with echo_stack() as (echo, stack):
        url = f"{stack.shim_url}/account/?action=org.matrix.devices_list"
        head = await fetch(client, url, hdrs.METH_HEAD)
        get = await fetch(client, url)
        assert head.status == get.status == 302
        assert head.headers[hdrs.LOCATION] == get.headers[hdrs.LOCATION]
        assert head.headers[hdrs.CACHE_CONTROL] == NO_STORE
        assert head.body == b""
        assert echo.seen == []


@pytest.mark.parametrize("method", [hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_DELETE])
async def test_other_methods_on_the_entry_path_pass_through(
    client: aiohttp.ClientSession, method: str
) -> None:
    target = "/account/?action=org.matrix.device_delete&device_id=X"
    async with echo_stack() as (echo, stack):
        answer = await fetch(client, stack.shim_url + target, method, data=b"form=1")
        assert answer.status == 200
        assert echo.seen == [(method, target, b"form=1")]


async def test_names_the_portal_speaks_and_unknown_names_pass_through(
    client: aiohttp.ClientSession,
) -> None:
    targets = [
        "/account/?action=org.matrix.session_end&device_id=X",
        "/account/?action=org.matrix.profile",
        "/account/?action=org.example.unknown",
        "/account/?device_id=X",
        "/account/",
        "/elsewhere/?action=org.matrix.device_delete",
    ]
    async with echo_stack() as (echo, stack):
        for target in targets:
            answer = await fetch(client, stack.shim_url + target)
            assert answer.status == 200, target
        assert echo.targets == targets


# --- strategy: rewrite ----------------------------------------------------------------------


async def test_rewrite_forwards_the_translated_query(client: aiohttp.ClientSession) -> None:
    async with demo_stack("mas-0.9", {"account_management": {"strategy": "rewrite"}}) as stack:
        answer = await fetch(
            client, f"{stack.shim_url}/account/?action=org.matrix.device_view&device_id=ABC"
        )
        assert answer.status == 200
        assert hdrs.LOCATION not in answer.headers
        assert answer.headers[PORTAL_ACTION_HEADER] == "org.matrix.session_view"
        assert answer.headers[PORTAL_QUERY_HEADER] == "action=org.matrix.session_view&device_id=ABC"


async def test_rewrite_keeps_every_other_byte(client: aiohttp.ClientSession) -> None:
    rest = "&device_id=%FF%0D%0A&x=a+b&&z"
    async with echo_stack({"account_management": {"strategy": "rewrite"}}) as (echo, stack):
        get = await fetch(
            client, f"{stack.shim_url}/account/?id_token_hint=t&action=session_end{rest}"
        )
        head = await fetch(client, f"{stack.shim_url}/account?action=sessions_list", "HEAD")
        assert (get.status, head.status) == (200, 200)
        assert echo.seen == [
            ("GET", f"/account/?id_token_hint=t&action=org.matrix.session_end{rest}", b""),
            ("HEAD", "/account?action=org.matrix.sessions_list", b""),
        ]


async def test_rewrite_with_strip_forwards_without_the_action(
    client: aiohttp.ClientSession,
) -> None:
    async with echo_stack({"account_management": {"strategy": "rewrite"}}) as (echo, stack):
        await fetch(client, f"{stack.shim_url}/account/?action=org.matrix.account_deactivate")
        await fetch(
            client, f"{stack.shim_url}/account/?action=org.matrix.account_deactivate&device_id=D"
        )
        assert echo.targets == ["/account/", "/account/?device_id=D"]


# --- unsupported actions --------------------------------------------------------------------


async def test_unsupported_strip_redirects_to_the_portal_home(
    client: aiohttp.ClientSession,
) -> None:
    async with demo_stack("mas-0.9") as stack:
        bare = await fetch(
            client, f"{stack.shim_url}/account/?action=org.matrix.account_deactivate"
        )
        assert (bare.status, bare.headers[hdrs.LOCATION]) == (302, "/account/")
        assert bare.headers[hdrs.CACHE_CONTROL] == NO_STORE
        kept = await fetch(
            client, f"{stack.shim_url}/account/?device_id=D&action=org.matrix.account_deactivate"
        )
        assert kept.headers[hdrs.LOCATION] == "/account/?device_id=D"
        landed = await fetch(client, stack.shim_url + bare.headers[hdrs.LOCATION])
        assert landed.status == 200
        assert PORTAL_ACTION_HEADER not in landed.headers


async def test_unsupported_pass_forwards_the_stable_name(client: aiohttp.ClientSession) -> None:
    extra = {"account_management": {"unsupported": "pass"}}
    async with demo_stack("mas-0.9", extra) as stack:
        answer = await fetch(
            client, f"{stack.shim_url}/account/?action=org.matrix.account_deactivate"
        )
        assert answer.status == 200
        assert answer.headers[PORTAL_ACTION_HEADER] == "org.matrix.account_deactivate"


async def test_unsupported_redirect_sends_the_user_to_the_operator_page(
    client: aiohttp.ClientSession,
) -> None:
    target = "https://help.example.org/deactivate?from=matrix"
    extra = {"account_management": {"unsupported": {"redirect": target}}}
    async with echo_stack(extra) as (echo, stack):
        answer = await fetch(
            client, f"{stack.shim_url}/account/?action=org.matrix.account_deactivate&device_id=D"
        )
        assert answer.status == 302
        assert answer.headers[hdrs.LOCATION] == target
        assert answer.headers[hdrs.CACHE_CONTROL] == NO_STORE
        assert echo.seen == []


# --- bad input ------------------------------------------------------------------------------

DL = "org.matrix.device_delete"
SE = "org.matrix.session_end"

#: query -> the Location's query (a redirect) or None (passed through untouched)
BAD_INPUT: list[tuple[str, str | None]] = [
    (f"action={DL}&action=org.matrix.device_view", f"action={SE}&action=org.matrix.session_view"),
    (f"action={DL}&action=org.matrix.account_deactivate", f"action={SE}"),
    (f"action=bogus&action={DL}", None),
    (f"action={SE}&action={DL}", None),
    ("action=org%2Ematrix.session_end&device_id=X", None),
    ("action=org%2Ematrix.device_delete&device_id=X", f"action={SE}&device_id=X"),
    (f"action={DL}&device_id=A+B%2BC", f"action={SE}&device_id=A+B%2BC"),
    (f"action={DL}+", None),
    (f"action=+{DL}", None),
    ("action=", None),
    ("action", None),
    (f"=&action={DL}&&device_id=&", f"=&action={SE}&&device_id=&"),
    ("action=%FF", None),
    ("action=%", None),
    (f"action={DL}&device_id=%FF%FE%", f"action={SE}&device_id=%FF%FE%"),
    (f"action={DL}%0D%0A", None),
    (f"action={DL}%00", None),
    (
        f"action={DL}&device_id=%0D%0ASet-Cookie:%20evil=1",
        f"action={SE}&device_id=%0D%0ASet-Cookie:%20evil=1",
    ),
    (f"ACTION={DL}", None),
    (f"action={DL};device_id=X", None),
    (f"action%3D{DL}", None),
    (f"act%69on={DL}&device_id=X", f"act%69on={SE}&device_id=X"),
    (f"action={DL}&pad=" + "p" * (16 * 1024 - 100), f"action={SE}&pad=" + "p" * (16 * 1024 - 100)),
]


@pytest.mark.parametrize(("query", "expected"), BAD_INPUT, ids=lambda v: str(v)[:40])
async def test_bad_input_never_fails_and_never_loops(
    client: aiohttp.ClientSession, query: str, expected: str | None
) -> None:
    async with echo_stack() as (echo, stack):
        answer = await fetch(client, f"{stack.shim_url}/account/?{query}")
        assert_clean_headers(answer)
        if expected is None:
            assert answer.status == 200
            assert echo.targets == [f"/account/?{query}"]
            return
        assert answer.status == 302
        location = answer.headers[hdrs.LOCATION]
        assert location == f"/account/?{expected}"
        followed = await fetch(client, stack.shim_url + location)
        assert followed.status == 200, "the translated URL is passed through, not redirected"
        assert echo.targets == [location]


async def test_a_query_at_the_line_limit_is_never_a_server_error(
    client: aiohttp.ClientSession,
) -> None:
    async with echo_stack() as (_, stack):
        for size in (16 * 1024 - 64, 16 * 1024, 32 * 1024):
            query = f"action={DL}&pad=" + "p" * (size - len(DL) - 12)
            answer = await fetch(client, f"{stack.shim_url}/account/?{query}")
            assert answer.status < 500, size
            assert_clean_headers(answer)


@pytest.mark.parametrize(
    "target",
    [
        b"/account/?action=org.matrix.device_delete&device_id=\xff\xfe",
        b"/account/?action=org.matrix.device_delete&device_id=caf\xc3\xa9",
        b"/account/?action=org.matrix.device_delete&device_id=a\x01b",
    ],
)
async def test_raw_bytes_in_the_target_are_refused_not_failed(target: bytes) -> None:
    async with echo_stack() as (_, stack):
        raw = await raw_exchange(
            stack.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert int(raw.split(b" ", 2)[1]) < 500, raw[:200]


async def test_an_absolute_form_target_is_never_a_server_error() -> None:
    async with echo_stack() as (_, stack):
        raw = await raw_exchange(
            stack.port,
            b"GET http://evil.example/account/?action=org.matrix.device_delete HTTP/1.1\r\n"
            b"Host: evil.example\r\nConnection: close\r\n\r\n",
        )
        # the scheme and authority are dropped; the rest is a deep link like any other
        assert raw.startswith(b"HTTP/1.1 302 "), raw[:200]
        assert b"\r\nLocation: /account/?action=org.matrix.session_end\r\n" in raw, raw[:300]


async def test_the_asterisk_target_gets_a_reason_not_a_failure() -> None:
    async with echo_stack() as (echo, stack):
        raw = await raw_exchange(
            stack.port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 400 "), raw[:200]
        assert b"not proxied" in raw
        assert echo.seen == []


# --- Location on upstream responses ---------------------------------------------------------


async def _location_via_shim(
    client: aiohttp.ClientSession, stack: Stack, location: str, *, host: str | None = None
) -> str:
    headers = {TEST_LOCATION: location}
    if host is not None:
        headers[hdrs.HOST] = host
    answer = await fetch(client, f"{stack.shim_url}/login", headers=headers)
    assert answer.status == 302
    return answer.headers[hdrs.LOCATION]


async def test_upstream_origin_becomes_the_request_origin(client: aiohttp.ClientSession) -> None:
    async with echo_stack() as (echo, stack):
        got = await _location_via_shim(client, stack, f"{echo.url}/x?y=%2F1#frag")
        assert got == f"{stack.shim_url}/x?y=%2F1#frag"
        behind = await _location_via_shim(client, stack, f"{echo.url}/x", host="id.example.org")
        assert behind == "http://id.example.org/x"


async def test_upstream_origin_becomes_the_public_url(client: aiohttp.ClientSession) -> None:
    async with echo_stack({"public_url": "https://account.example.com"}) as (echo, stack):
        got = await _location_via_shim(client, stack, f"{echo.url}/oauth2/authorize?a=b")
        assert got == "https://account.example.com/oauth2/authorize?a=b"


async def test_other_locations_are_left_alone(client: aiohttp.ClientSession) -> None:
    async with echo_stack({"public_url": "https://account.example.com"}) as (echo, stack):
        port = URL(echo.url).port
        for location in (
            "https://elsewhere.example/x",
            f"http://127.0.0.1:{stack.shim.bound[-1].rpartition(':')[2]}/x",
            f"https://127.0.0.1:{port}/x",
            f"http://localhost:{port}/x",
            "/relative?action=org.matrix.session_end",
            "relative/path",
        ):
            assert await _location_via_shim(client, stack, location) == location


async def test_rewrite_strategy_turns_locations_back_into_stable_names(
    client: aiohttp.ClientSession,
) -> None:
    extra = {"account_management": {"strategy": "rewrite"}}
    async with echo_stack(extra) as (echo, stack):
        absolute = await _location_via_shim(
            client, stack, f"{echo.url}/account/?action=org.matrix.session_end&device_id=D"
        )
        assert absolute == f"{stack.shim_url}/account/?action=org.matrix.device_delete&device_id=D"
        relative = await _location_via_shim(
            client, stack, "/account?action=org.matrix.sessions_list"
        )
        assert relative == "/account?action=org.matrix.devices_list"
        elsewhere = await _location_via_shim(client, stack, "/other/?action=org.matrix.session_end")
        assert elsewhere == "/other/?action=org.matrix.session_end"


async def test_redirect_strategy_keeps_the_portal_names_in_locations(
    client: aiohttp.ClientSession,
) -> None:
    async with echo_stack() as (echo, stack):
        got = await _location_via_shim(
            client, stack, f"{echo.url}/account/?action=org.matrix.session_end"
        )
        assert got == f"{stack.shim_url}/account/?action=org.matrix.session_end"


async def test_locations_on_passed_through_deep_links_are_rewritten(
    client: aiohttp.ClientSession,
) -> None:
    async with echo_stack() as (echo, stack):
        answer = await fetch(
            client,
            f"{stack.shim_url}/account/?action=org.matrix.profile",
            headers={TEST_LOCATION: f"{echo.url}/login?next=%2Faccount%2F"},
        )
        assert answer.status == 302
        assert answer.headers[hdrs.LOCATION] == f"{stack.shim_url}/login?next=%2Faccount%2F"
