"""The discovery cache at the edge (poisoning, storage, availability): raw bytes on loopback.

A scripted upstream answers with exact bytes and counts its hits; the shim runs in this process
(or as a real process for SIGHUP). Whatever core serves the public listener, these must hold.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import RawUpstreamFactory, ShimFactory, ShimProcessFactory
from tests.support.loopback import Head, exchange_one, read_head, shim_settings

OPENID = "/.well-known/openid-configuration"
DOC = b'{"issuer":"https://auth.example.org/"}'
TRUSTED = {"trusted_proxies": ["127.0.0.0/8"]}


@dataclass
class Portal:
    """Answers every request with `status`, `fields` and a body; records each request head."""

    status: int = 200
    fields: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Callable[[Head], bytes] = DOC
    heads: list[Head] = field(default_factory=list)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        self.heads.append(head)
        body = self.body(head) if callable(self.body) else self.body
        lines = [f"HTTP/1.1 {self.status} X", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in self.fields]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode() + body)
        await writer.drain()


async def get(port: int, target: str = OPENID, *fields: tuple[str, str]) -> tuple[Head, bytes]:
    extra = "".join(f"{name}: {value}\r\n" for name, value in fields)
    if not any(name.lower() == "host" for name, _ in fields):
        extra = "Host: account.example.com\r\n" + extra
    request = f"GET {target} HTTP/1.1\r\n{extra}Connection: close\r\n\r\n"
    return await exchange_one(port, request.encode())


def account_uri(body: bytes) -> str:
    value = json.loads(body)["account_management_uri"]
    assert isinstance(value, str)
    return value


async def start(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    portal: Portal,
    **top: Any,
) -> int:
    upstream = await raw_upstream_factory(portal)
    shim = await shim_factory(shim_settings(upstream.url, **top))
    return shim.port


# -- item 1: the key is the public origin as computed ------------------------------------------


async def test_a_forwarded_host_cannot_poison_other_clients(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    port = await start(raw_upstream_factory, shim_factory, Portal(), **TRUSTED)
    _, evil = await get(port, OPENID, ("X-Forwarded-Host", "evil.example"))
    assert account_uri(evil) == "http://evil.example/account/"  # the sender's own view
    _, victim = await get(port)
    assert account_uri(victim) == "http://account.example.com/account/"


async def test_the_right_most_value_of_an_appended_list_wins(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    """An appending front (`evil.example, account.example.com`): the last hop's value counts."""
    port = await start(raw_upstream_factory, shim_factory, Portal(), **TRUSTED)
    _, body = await get(
        port,
        OPENID,
        ("X-Forwarded-Host", "evil.example, account.example.com"),
        ("X-Forwarded-Proto", "http, https"),
    )
    assert account_uri(body) == "https://account.example.com/account/"


async def test_a_forwarded_downgrade_reaches_only_its_sender(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    port = await start(raw_upstream_factory, shim_factory, Portal(), **TRUSTED)
    https = ("X-Forwarded-Proto", "https")
    _, first = await get(port, OPENID, https)
    _, downgraded = await get(port, OPENID, ("X-Forwarded-Proto", "http"))
    _, after = await get(port, OPENID, https)
    assert account_uri(first) == account_uri(after) == "https://account.example.com/account/"
    assert account_uri(downgraded) == "http://account.example.com/account/"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Forwarded-Proto", "javascript"),
        ("X-Forwarded-Proto", "https, javascript"),
        ("X-Forwarded-Host", "evil.example/%0Aalert(1)//"),
        ("X-Forwarded-Host", "user@evil.example"),
        ("Forwarded", 'proto=javascript;host="a.example"'),
    ],
)
async def test_a_forwarded_value_that_cannot_form_an_origin_is_refused(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory, name: str, value: str
) -> None:
    portal = Portal()
    port = await start(raw_upstream_factory, shim_factory, portal, **TRUSTED)
    head, body = await get(port, OPENID, (name, value))
    assert head.status == 400, body
    assert name.encode() in body  # the reason names the field
    assert b"javascript:" not in body
    assert portal.heads == []
    _, good = await get(port)  # and nothing was stored for anyone
    assert account_uri(good) == "http://account.example.com/account/"


# -- item 3: what must never be stored or replayed ----------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        [("Set-Cookie", "sid=VICTIM; HttpOnly")],
        [("Cache-Control", "max-age=600"), ("Set-Cookie", "sid=VICTIM")],
        [("Cache-Control", "private, max-age=600")],
        [("Cache-Control", "no-store")],
        [("Vary", "*")],
    ],
    ids=["set-cookie", "set-cookie-max-age", "private", "no-store", "vary-star"],
)
async def test_an_answer_a_shared_cache_must_not_store_is_asked_for_every_time(
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
    fields: list[tuple[str, str]],
) -> None:
    portal = Portal(fields=fields)
    port = await start(raw_upstream_factory, shim_factory, portal)
    await get(port)
    portal.fields = []  # the next answer carries no cookie: a replay would show the old one
    head, _ = await get(port)
    assert len(portal.heads) == 2
    assert head.get("Set-Cookie") is None


async def test_the_fields_vary_names_are_part_of_the_key(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    portal = Portal(fields=[("Vary", "Accept-Language")])
    answers = {"de": b'{"issuer":"https://de.example/"}', "en": b'{"issuer":"https://en.example/"}'}

    def body(head: Head) -> bytes:
        return answers[head.get("Accept-Language") or "en"]

    portal.body = body
    port = await start(raw_upstream_factory, shim_factory, portal)
    issuers = []
    for language in ("de", "en", "de", "en"):
        _, got = await get(port, OPENID, ("Accept-Language", language))
        issuers.append(json.loads(got)["issuer"])
    assert issuers == ["https://de.example/", "https://en.example/"] * 2
    assert len(portal.heads) == 2  # one per variant; the repeats came from the cache


@pytest.mark.parametrize(
    "cache_control",
    ["no-cache", "max-age=0, must-revalidate", "max-age=0, proxy-revalidate", "s-maxage=0"],
)
async def test_a_copy_that_must_be_revalidated_is_never_served_stale(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory, cache_control: str
) -> None:
    portal = Portal(fields=[("Cache-Control", cache_control)])
    port = await start(raw_upstream_factory, shim_factory, portal)
    head, _ = await get(port)
    assert head.status == 200
    portal.status, portal.body, portal.fields = 503, b"down", []
    head, body = await get(port)
    assert (head.status, body) == (503, b"down")  # the portal's own answer, not the old copy


# -- item 5: availability --------------------------------------------------------------------


async def test_query_variants_cannot_evict_the_last_good_document(
    raw_upstream_factory: RawUpstreamFactory, shim_factory: ShimFactory
) -> None:
    portal = Portal(fields=[("Cache-Control", "max-age=0")])  # stale at once, usable stale
    port = await start(raw_upstream_factory, shim_factory, portal)
    _, good = await get(port)
    for n in range(80):
        await get(port, f"{OPENID}?x={n}")
    portal.status, portal.body = 503, b"down"
    head, stale = await get(port)
    assert (head.status, stale) == (200, good)
    assert head.get("Age") is not None


async def test_a_reload_drops_documents_built_under_the_old_configuration(
    raw_upstream_factory: RawUpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    portal = Portal(fields=[("Cache-Control", "max-age=600")])
    upstream = await raw_upstream_factory(portal)
    settings = shim_settings(upstream.url, public_url="https://old.example")
    shim = await shim_process_factory(settings)
    _, before = await get(shim.port)
    assert account_uri(before) == "https://old.example/account/"
    shim.rewrite_config({**settings, "public_url": "https://new.example"})
    shim.send_signal(signal.SIGHUP)
    await shim.wait_for_event("reloaded")
    _, fresh = await get(shim.port)  # the old copy was still fresh: it must not be served
    assert account_uri(fresh) == "https://new.example/account/"
    shim.rewrite_config({**settings, "public_url": "https://newer.example"})
    shim.send_signal(signal.SIGHUP)
    await shim.wait_for_event("reloaded", count=2)
    portal.status, portal.body, portal.fields = 503, b"down", []
    head, body = await get(shim.port)  # nor be the stale copy under the next configuration
    assert (head.status, body) == (503, b"down")
