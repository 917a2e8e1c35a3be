"""Discovery documents over HTTP: rewrite, encodings, validators, passthrough, cache.

Each test runs a scripted upstream written here (it counts its hits and answers with exact bytes
and headers) or the emulated legacy portal, with the real shim in front, all on loopback.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import brotli
import pytest
import zstandard
from aiohttp import hdrs, web
from multidict import CIMultiDict, istr
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from tests.support.e2e import Stack, demo_stack, shim_in_front
from tests.support.loopback import read_head, serve_raw, start_app

OPENID = "/.well-known/openid-configuration"
AUTH_METADATA = "/_matrix/client/v1/auth_metadata"
WELL_KNOWN = "/.well-known/matrix/client"
AMU = "account_management_uri"
AMAS = "account_management_actions_supported"
UNSTABLE_AMU = "org.matrix.msc4191." + AMU
UNSTABLE_AMAS = "org.matrix.msc4191." + AMAS
JSON_TYPE = "application/json"
#: fixed so that a relayed answer can be compared with the upstream's own, field for field
FIXED: dict[str, str] = {
    hdrs.DATE: "Tue, 01 Sep 2026 10:00:00 GMT",
    hdrs.SERVER: "legacy-portal/1.0",
}
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding"}
STRONG_ETAG = re.compile(r'^"[!#-~]+"$')

#: a prototype portal: only the unstable keys, legacy names, and a number written its own way
PROTOTYPE = (
    b'{"issuer":"https://auth.example.org/","authorization_endpoint":'
    b'"https://auth.example.org/authorize","n":1.10,"ui":"caf\xc3\xa9",'
    b'"org.matrix.msc4191.account_management_uri":"https://auth.example.org/account/",'
    b'"org.matrix.msc4191.account_management_actions_supported":["org.matrix.profile",'
    b'"org.matrix.sessions_list","org.matrix.session_view","org.matrix.session_end",'
    b'"org.example.custom"],"z":null}'
)
PROTOTYPE_STABLE = [
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.example.custom",
]

Fields = Mapping[str, str] | Mapping[istr, str]
Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upstream:
    """A scripted upstream: `respond` answers every request; `hits` records what it received."""

    respond: Responder
    url: str = ""
    hits: list[tuple[str, str, Mapping[str, str]]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _upstream_app(upstream: Upstream) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        upstream.hits.append((request.method, request.raw_path, dict(request.headers)))
        return await upstream.respond(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@asynccontextmanager
async def scripted(
    respond: Responder, extra: Mapping[str, object] | None = None
) -> AsyncIterator[tuple[Upstream, Stack]]:
    upstream = Upstream(respond)
    # started by hand, not with `app_stack`: a test may stop the upstream before the shim
    upstream.runner, endpoint = await start_app(_upstream_app(upstream))
    upstream.url = endpoint.url
    try:
        async with shim_in_front(upstream.url, extra) as stack:
            yield upstream, stack
    finally:
        await upstream.stop()


def answer_with(body: bytes, status: int = 200, headers: Fields | None = None) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        fields = CIMultiDict[str]({hdrs.CONTENT_TYPE: JSON_TYPE, **FIXED})
        fields.update(headers or {})
        return web.Response(status=status, body=body, headers=fields)

    return respond


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str | None
    headers: Mapping[str, str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def fields(self) -> list[tuple[bytes, bytes]]:
        """The end-to-end fields, in order (hop-by-hop ones belong to one connection)."""
        return [(n, v) for n, v in self.raw_headers if n.lower() not in HOP_BY_HOP]


async def fetch(
    client: aiohttp.ClientSession,
    url: str,
    method: str = hdrs.METH_GET,
    headers: Fields | None = None,
) -> Answer:
    async with client.request(
        method, URL(url, encoded=True), headers=headers, allow_redirects=False
    ) as response:
        body = await response.read()
        return Answer(
            response.status, response.reason, response.headers, response.raw_headers, body
        )


async def relayed_as_is(
    client: aiohttp.ClientSession, upstream: Upstream, stack: Stack, path: str
) -> Answer:
    """The shim's answer for `path`, after checking it is the upstream's own, byte for byte."""
    direct = await fetch(client, upstream.url + path)
    shim = await fetch(client, stack.shim_url + path)
    assert (shim.status, shim.reason) == (direct.status, direct.reason)
    assert shim.fields() == direct.fields()
    assert shim.body == direct.body
    return shim


def ordered(body: bytes) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = json.loads(body, object_pairs_hook=list)
    return pairs


async def discovery_count(client: aiohttp.ClientSession, stack: Stack, outcome: str) -> float:
    """Documents served with `outcome`, whichever client family asked."""
    async with client.get(stack.admin_url + "/metrics") as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "msc4191_shim_discovery_documents_total"
        and sample.labels.get("outcome") == outcome
    )


# --- rewriting ------------------------------------------------------------------------------


async def test_prototype_portal_gets_the_stable_keys(client: aiohttp.ClientSession) -> None:
    async with demo_stack(
        "prototype-unstable-keys", {"account_management": {"dialect": "mas-0.7"}}
    ) as stack:
        # the portal builds its URLs from the Host it receives, which the shim keeps
        same_host = {hdrs.HOST: URL(stack.shim_url).raw_authority}
        direct = await fetch(client, stack.portal_url + OPENID, headers=same_host)
        shim = await fetch(client, stack.shim_url + OPENID)
        assert shim.status == 200
        upstream_pairs, shim_pairs = ordered(direct.body), ordered(shim.body)
        assert shim_pairs[: len(upstream_pairs)] == upstream_pairs
        assert [k for k, _ in shim_pairs[len(upstream_pairs) :]] == [AMU, AMAS]
        doc = dict(shim_pairs)
        assert doc[AMU] == doc[UNSTABLE_AMU] == stack.shim_url + "/account/"
        assert doc[AMAS] == PROTOTYPE_STABLE[:4]


async def test_key_order_values_and_number_text_are_the_upstream_s(
    client: aiohttp.ClientSession,
) -> None:
    async with scripted(answer_with(PROTOTYPE)) as (_, stack):
        for path in (OPENID, AUTH_METADATA):
            answer = await fetch(client, stack.shim_url + path)
            assert answer.status == 200
            pairs = ordered(answer.body)
            assert pairs[:-2] == ordered(PROTOTYPE)
            assert pairs[-2:] == [
                (AMU, "https://auth.example.org/account/"),
                (AMAS, PROTOTYPE_STABLE),
            ]
            assert b'"n":1.10,' in answer.body
            assert "café".encode() in answer.body


async def test_stable_keys_are_replaced_where_they_stand(client: aiohttp.ClientSession) -> None:
    body = b'{"a":1,"account_management_uri":"https://old/","account_management_actions_supported":["org.matrix.session_end"],"z":2}'
    extra = {"discovery": {"account_management_uri": "https://id.example.org/account/"}}
    async with scripted(answer_with(body), extra) as (_, stack):
        answer = await fetch(client, stack.shim_url + OPENID)
        assert ordered(answer.body) == [
            ("a", 1),
            (AMU, "https://id.example.org/account/"),
            (AMAS, ["org.matrix.device_delete"]),
            ("z", 2),
        ]


ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "raw-deflate": ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", zstandard.ZstdCompressor().compress),
    "identity": ("identity", lambda b: b),
}


@pytest.mark.parametrize("name", list(ENCODERS))
async def test_encoded_bodies_are_decoded_rewritten_and_sent_identity(
    client: aiohttp.ClientSession, name: str
) -> None:
    coding, encode = ENCODERS[name]
    headers = {
        hdrs.CONTENT_ENCODING: coding,
        hdrs.ETAG: '"upstream-1"',
        hdrs.LAST_MODIFIED: "Mon, 31 Aug 2026 10:00:00 GMT",
        hdrs.CACHE_CONTROL: "max-age=60",
        hdrs.VARY: "Accept-Encoding",
    }
    async with scripted(answer_with(encode(PROTOTYPE), headers=headers)) as (upstream, stack):
        answer = await fetch(
            client, stack.shim_url + OPENID, headers={hdrs.ACCEPT_ENCODING: "gzip, br, zstd"}
        )
        assert answer.status == 200
        assert hdrs.CONTENT_ENCODING not in answer.headers
        assert int(answer.headers[hdrs.CONTENT_LENGTH]) == len(answer.body)
        assert dict(ordered(answer.body))[AMAS] == PROTOTYPE_STABLE
        assert hdrs.LAST_MODIFIED not in answer.headers
        etag = answer.headers[hdrs.ETAG]
        assert STRONG_ETAG.match(etag), etag
        assert etag != '"upstream-1"'
        assert answer.headers[hdrs.CONTENT_TYPE] == JSON_TYPE
        assert answer.headers[hdrs.CACHE_CONTROL] == "max-age=60"

        # the same variant (the upstream varies on Accept-Encoding, so the cache keys on it)
        not_modified = await fetch(
            client,
            stack.shim_url + OPENID,
            headers={hdrs.IF_NONE_MATCH: etag, hdrs.ACCEPT_ENCODING: "gzip, br, zstd"},
        )
        assert not_modified.status == 304
        assert not_modified.body == b""
        assert not_modified.headers[hdrs.ETAG] == etag
        assert len(upstream.hits) == 1


async def test_if_none_match_is_answered_by_the_shim_not_the_upstream(
    client: aiohttp.ClientSession,
) -> None:
    headers = {hdrs.ETAG: '"upstream-1"', hdrs.CACHE_CONTROL: "no-store"}
    async with scripted(answer_with(PROTOTYPE, headers=headers)) as (upstream, stack):
        etag = (await fetch(client, stack.shim_url + OPENID)).headers[hdrs.ETAG]
        conditional = {
            hdrs.IF_NONE_MATCH: f'"other", W/{etag}',
            hdrs.IF_MODIFIED_SINCE: FIXED[hdrs.DATE],
        }
        answer = await fetch(client, stack.shim_url + OPENID, headers=conditional)
        assert answer.status == 304
        assert len(upstream.hits) == 2, "no-store: the upstream is asked every time"
        sent = upstream.hits[1][2]
        assert hdrs.IF_NONE_MATCH not in sent
        assert hdrs.IF_MODIFIED_SINCE not in sent
        stale_tag = await fetch(
            client, stack.shim_url + OPENID, headers={hdrs.IF_NONE_MATCH: '"upstream-1"'}
        )
        assert stale_tag.status == 200


async def test_head_has_the_headers_of_get_and_no_body(client: aiohttp.ClientSession) -> None:
    encoded = gzip.compress(PROTOTYPE)
    headers = {hdrs.CONTENT_ENCODING: "gzip", hdrs.ETAG: '"u"'}
    async with scripted(answer_with(encoded, headers=headers), {"discovery": {"cache": False}}) as (
        _,
        stack,
    ):
        get = await fetch(client, stack.shim_url + OPENID)
        head = await fetch(client, stack.shim_url + OPENID, hdrs.METH_HEAD)
        assert head.status == get.status == 200
        assert head.body == b""
        assert head.fields() == get.fields()


async def test_a_cached_document_keeps_its_fields_byte_for_byte(
    client: aiohttp.ClientSession,
) -> None:
    """Fields are held as the portal sent them (bytes), so a UTF-8 value, or one no single-byte
    charset holds, comes back from the cache exactly as it came."""
    note = "caf\u00e9 \u2615".encode()
    async with scripted(answer_with(PROTOTYPE, headers={"X-Note": note.decode()})) as (_, stack):
        first = await fetch(client, stack.shim_url + OPENID)
        cached = await fetch(client, stack.shim_url + OPENID)
    for answer in (first, cached):
        assert answer.status == 200
        assert [v for n, v in answer.raw_headers if n == b"X-Note"] == [note]


async def test_well_known_account_is_set(client: aiohttp.ClientSession) -> None:
    body = (
        b'{"m.homeserver":{"base_url":"https://matrix.example.org"},'
        b'"org.matrix.msc2965.authentication":{"issuer":"https://auth.example.org/",'
        b'"account":"http://10.0.0.5:8080/account/"},"x":1}'
    )
    extra = {"discovery": {"account_management_uri": "https://id.example.org/account/"}}
    async with scripted(answer_with(body), extra) as (_, stack):
        answer = await fetch(client, stack.shim_url + WELL_KNOWN)
        assert answer.status == 200
        assert ordered(answer.body) == [
            ("m.homeserver", [("base_url", "https://matrix.example.org")]),
            (
                "org.matrix.msc2965.authentication",
                [
                    ("issuer", "https://auth.example.org/"),
                    ("account", "https://id.example.org/account/"),
                ],
            ),
            ("x", 1),
        ]


async def test_well_known_without_account_gets_the_public_entry_path(
    client: aiohttp.ClientSession,
) -> None:
    body = b'{"org.matrix.msc2965.authentication":{"issuer":"https://auth.example.org/"}}'
    extra = {"public_url": "https://id.example.org", "account_management": {"paths": ["/manage"]}}
    async with scripted(answer_with(body), extra) as (_, stack):
        answer = await fetch(client, stack.shim_url + WELL_KNOWN)
        auth = json.loads(answer.body)["org.matrix.msc2965.authentication"]
        assert auth == {
            "issuer": "https://auth.example.org/",
            "account": "https://id.example.org/manage",
        }


async def test_well_known_without_authentication_passes_through(
    client: aiohttp.ClientSession,
) -> None:
    body = b'{ "m.homeserver": { "base_url": "https://matrix.example.org" } }\n'
    async with scripted(answer_with(body, headers={hdrs.ETAG: '"hs"'})) as (upstream, stack):
        await relayed_as_is(client, upstream, stack, WELL_KNOWN)


async def test_the_cache_is_keyed_by_host(client: aiohttp.ClientSession) -> None:
    body = b'{"issuer":"https://auth.example.org/"}'
    async with scripted(answer_with(body)) as (_, stack):
        for host in ("a.example", "b.example", "a.example"):
            answer = await fetch(client, stack.shim_url + OPENID, headers={hdrs.HOST: host})
            assert json.loads(answer.body)[AMU] == f"http://{host}/account/"


# --- passthrough ----------------------------------------------------------------------------

BOMB = gzip.compress(bytes(10 * 1024 * 1024), compresslevel=9)


@dataclass(frozen=True)
class Passthrough:
    body: bytes
    status: int = 200
    headers: Fields = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)


PASSTHROUGH: dict[str, tuple[Passthrough, str]] = {
    "404": (Passthrough(b'{"error":"not here"}', 404), "passthrough_status"),
    "301": (
        Passthrough(b"", 301, {hdrs.LOCATION: "https://elsewhere.example/openid"}),
        "passthrough_status",
    ),
    "html": (
        Passthrough(b"<!doctype html><p>portal</p>", headers={hdrs.CONTENT_TYPE: "text/html"}),
        "passthrough_not_json",
    ),
    "not-utf8": (Passthrough(b'{"a":"\xff"}'), "passthrough_not_json"),
    "compress": (
        Passthrough(b"\x1f\x9d\x90{\x00", headers={hdrs.CONTENT_ENCODING: "compress"}),
        "passthrough_encoding",
    ),
    "corrupt-gzip": (
        Passthrough(gzip.compress(PROTOTYPE)[:-9], headers={hdrs.CONTENT_ENCODING: "gzip"}),
        "passthrough_encoding",
    ),
    "too-large": (
        Passthrough(PROTOTYPE + b" " * 2048, extra={"discovery": {"max_body_bytes": 1024}}),
        "passthrough_too_large",
    ),
    "gzip-bomb": (
        Passthrough(
            BOMB,
            headers={hdrs.CONTENT_ENCODING: "gzip", hdrs.ETAG: '"bomb"'},
            extra={"discovery": {"max_body_bytes": "64KiB"}},
        ),
        "passthrough_too_large",
    ),
}


@pytest.mark.parametrize("name", list(PASSTHROUGH))
async def test_anything_else_passes_through_byte_identical(
    client: aiohttp.ClientSession, name: str
) -> None:
    case, outcome = PASSTHROUGH[name]
    respond = answer_with(case.body, case.status, case.headers)
    async with scripted(respond, case.extra) as (upstream, stack):
        shim = await relayed_as_is(client, upstream, stack, OPENID)
        assert shim.body == case.body
        assert await discovery_count(client, stack, outcome) == 1


async def test_a_json_array_passes_through_counted_as_not_an_object(
    client: aiohttp.ClientSession,
) -> None:
    async with scripted(answer_with(b'["org.matrix.profile"]')) as (upstream, stack):
        await relayed_as_is(client, upstream, stack, OPENID)
        assert await discovery_count(client, stack, "passthrough_not_object") == 1


async def test_a_json_array_passes_through_byte_identical(client: aiohttp.ClientSession) -> None:
    async with scripted(answer_with(b'["org.matrix.profile"]')) as (upstream, stack):
        await relayed_as_is(client, upstream, stack, OPENID)


async def test_a_large_body_is_streamed_not_held(client: aiohttp.ClientSession) -> None:
    limit = 1024
    release = asyncio.Event()

    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: JSON_TYPE, **FIXED})
        await response.prepare(request)
        await response.write(b"[" + b"0," * limit)
        await release.wait()
        await response.write(b"0]")
        await response.write_eof()
        return response

    extra = {"discovery": {"max_body_bytes": limit}}
    async with scripted(respond, extra) as (_, stack):
        try:
            # the upstream holds the end back: a shim that buffered would never answer
            async with asyncio.timeout(5), client.get(stack.shim_url + OPENID) as response:
                assert response.status == 200
                head = await response.content.readexactly(limit + 1)
                release.set()
                rest = await response.read()
        finally:
            release.set()
        assert head + rest == b"[" + b"0," * limit + b"0]"
        assert await discovery_count(client, stack, "passthrough_too_large") == 1


# --- cache ----------------------------------------------------------------------------------


async def test_a_fresh_document_is_served_from_the_cache(client: aiohttp.ClientSession) -> None:
    respond = answer_with(PROTOTYPE, headers={hdrs.CACHE_CONTROL: "max-age=60"})
    async with scripted(respond) as (upstream, stack):
        first = await fetch(client, stack.shim_url + OPENID)
        second = await fetch(client, stack.shim_url + OPENID)
        head = await fetch(client, stack.shim_url + OPENID, hdrs.METH_HEAD)
        assert len(upstream.hits) == 1
        assert second.body == first.body
        assert second.headers[hdrs.ETAG] == head.headers[hdrs.ETAG] == first.headers[hdrs.ETAG]
        assert hdrs.AGE in second.headers
        assert await discovery_count(client, stack, "cached") == 2


async def test_a_document_without_cache_headers_is_reused(client: aiohttp.ClientSession) -> None:
    async with scripted(answer_with(PROTOTYPE)) as (upstream, stack):
        for _ in range(3):
            await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 1


async def test_max_age_expires(client: aiohttp.ClientSession) -> None:
    respond = answer_with(PROTOTYPE, headers={hdrs.CACHE_CONTROL: "max-age=1"})
    async with scripted(respond) as (upstream, stack):
        await fetch(client, stack.shim_url + OPENID)
        await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 1
        await asyncio.sleep(1.1)
        await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 2


async def test_the_last_good_document_outlives_the_upstream(client: aiohttp.ClientSession) -> None:
    # max-age=0: stale at once, but usable stale (no-cache would forbid that: RFC 9111 4.2.4)
    respond = answer_with(PROTOTYPE, headers={hdrs.CACHE_CONTROL: "max-age=0"})
    async with scripted(respond) as (upstream, stack):
        good = await fetch(client, stack.shim_url + OPENID)
        await upstream.stop()
        stale = await fetch(client, stack.shim_url + OPENID)
        assert stale.status == 200
        assert stale.body == good.body
        assert stale.headers[hdrs.ETAG] == good.headers[hdrs.ETAG]
        assert stale.headers[hdrs.AGE].isdigit()
        assert await discovery_count(client, stack, "stale") == 1


@dataclass
class FailingLater:
    """Answers PROTOTYPE with `cache_control` until `failing` is set, then 503."""

    cache_control: str
    failing: bool = False

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if self.failing:
            return web.Response(status=503, text="restarting")
        return web.Response(body=PROTOTYPE, headers={hdrs.CACHE_CONTROL: self.cache_control})


async def test_the_last_good_document_covers_a_5xx(client: aiohttp.ClientSession) -> None:
    respond = FailingLater("max-age=0")
    async with scripted(respond) as (upstream, stack):
        good = await fetch(client, stack.shim_url + OPENID)
        respond.failing = True
        stale = await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 2
        assert (stale.status, stale.body) == (200, good.body)
        assert hdrs.AGE in stale.headers


async def test_no_store_is_never_cached(client: aiohttp.ClientSession) -> None:
    respond = FailingLater("no-store")
    async with scripted(respond) as (upstream, stack):
        await fetch(client, stack.shim_url + OPENID)
        await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 2
        respond.failing = True
        answer = await fetch(client, stack.shim_url + OPENID)
        assert (answer.status, answer.body) == (503, b"restarting")


async def test_cache_off_always_asks_the_upstream(client: aiohttp.ClientSession) -> None:
    async with scripted(answer_with(PROTOTYPE), {"discovery": {"cache": False}}) as (
        upstream,
        stack,
    ):
        await fetch(client, stack.shim_url + OPENID)
        await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 2
        await upstream.stop()
        answer = await fetch(client, stack.shim_url + OPENID)
        assert answer.status == 502


async def test_a_credentialed_request_is_never_answered_from_the_cache(
    client: aiohttp.ClientSession,
) -> None:
    respond = answer_with(PROTOTYPE, headers={hdrs.CACHE_CONTROL: "max-age=60"})
    async with scripted(respond) as (upstream, stack):
        await fetch(client, stack.shim_url + OPENID)
        with_token = {hdrs.AUTHORIZATION: "Bearer secret"}
        answer = await fetch(client, stack.shim_url + OPENID, headers=with_token)
        assert answer.status == 200
        assert len(upstream.hits) == 2
        assert upstream.hits[1][2][hdrs.AUTHORIZATION] == "Bearer secret"
        await fetch(client, stack.shim_url + OPENID)
        assert len(upstream.hits) == 2, "the anonymous entry is still there"


async def test_a_portal_that_already_serves_the_stable_keys_is_counted_unchanged(
    client: aiohttp.ClientSession,
) -> None:
    body = (
        b'{"issuer":"https://auth.example.org/",'
        b'"account_management_uri":"https://auth.example.org/account/",'
        b'"account_management_actions_supported":["org.matrix.profile","org.matrix.devices_list"]}'
    )
    async with scripted(answer_with(body), {"account_management": {"dialect": "stable"}}) as (
        _,
        stack,
    ):
        answer = await fetch(client, stack.shim_url + OPENID)
        assert answer.body == body
        assert await discovery_count(client, stack, "unchanged") == 1
        assert await discovery_count(client, stack, "rewritten") == 0


async def test_the_last_good_document_covers_an_upstream_that_never_answers(
    client: aiohttp.ClientSession,
) -> None:
    hang = False
    release = asyncio.Event()

    async def respond(request: web.Request) -> web.StreamResponse:
        if hang:
            await release.wait()
        return web.Response(body=PROTOTYPE, headers={hdrs.CACHE_CONTROL: "max-age=0"})

    extra = {"upstream": {"read_timeout": "300ms"}}
    async with scripted(respond, extra) as (_, stack):
        try:
            good = await fetch(client, stack.shim_url + OPENID)
            hang = True
            stale = await asyncio.wait_for(fetch(client, stack.shim_url + OPENID), 5)
            assert (stale.status, stale.body) == (200, good.body)
            assert hdrs.AGE in stale.headers
            uncached = await fetch(client, stack.shim_url + AUTH_METADATA)
            assert uncached.status == 504, "nothing cached for this path: the timeout shows"
        finally:
            release.set()


async def test_a_redirect_to_the_upstream_s_own_origin_is_rewritten(
    client: aiohttp.ClientSession,
) -> None:
    moved = ""

    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(status=301, headers={hdrs.LOCATION: moved + "/issuer/" + OPENID})

    extra = {"public_url": "https://id.example.org"}
    async with scripted(respond, extra) as (upstream, stack):
        moved = upstream.url
        answer = await fetch(client, stack.shim_url + OPENID)
        assert answer.status == 301
        assert answer.headers[hdrs.LOCATION] == "https://id.example.org/issuer/" + OPENID
        assert await discovery_count(client, stack, "passthrough_status") == 1


async def test_a_rewritten_document_invents_no_server_field() -> None:
    """Like every passthrough, a rewritten document carries only the upstream's own fields."""
    body = json.dumps({"issuer": "https://i/"}).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            if not await read_head(reader):
                return
            writer.write(head + body)
            await writer.drain()

    async with (
        serve_raw(answer) as endpoint,
        shim_in_front(endpoint.url) as stack,
        aiohttp.ClientSession() as client,
        client.get(f"{stack.shim_url}/.well-known/openid-configuration") as response,
    ):
        document = await response.json()
        assert "account_management_uri" in document
        assert hdrs.SERVER not in response.headers
        assert response.headers[hdrs.CONTENT_TYPE] == "application/json"
