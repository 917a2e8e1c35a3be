"""The admin listener's /metrics after real traffic through the shim (issues 3 and 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import pytest
from aiohttp import hdrs, web
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from shim.obs.clients import DOCTOR_USER_AGENT
from tests.support.e2e import Stack, app_stack, demo_stack, shim_in_front
from tests.support.loopback import free_port, raw_exchange, reset, split_response

DEEPLINKS = "msc4191_shim_deeplink_translations_total"
REQUESTS = "msc4191_shim_requests_total"
DISCOVERY = "msc4191_shim_discovery_documents_total"
DEVICE_DELETE = "org.matrix.device_delete"
LEGACY = "org.matrix.session_end"  # what the mas-0.9 portal speaks for DEVICE_DELETE
CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
ELEMENT_X = "Element X/25.01.2 (iPhone; iOS 18.2; Scale/3.00)"
#: the request counters are written when aiohttp logs the request, just after the client
#: has the whole response; a scrape may come a moment earlier
SETTLE_SECONDS = 2.0


async def samples(client: aiohttp.ClientSession, stack: Stack) -> dict[tuple[str, str], float]:
    """Every sample, keyed by (name, labels rendered as sorted k=v pairs)."""
    async with client.get(stack.admin_url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, _labels(sample.labels)] = sample.value
    return found


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


async def expect(
    client: aiohttp.ClientSession, stack: Stack, wanted: Mapping[tuple[str, str], float]
) -> None:
    """Wait (briefly) until every wanted sample has its value; fail showing the differences."""
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        found = await samples(client, stack)
        wrong = {
            key: (found.get(key), value) for key, value in wanted.items() if found.get(key) != value
        }
        if not wrong or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert not wrong, f"(found, wanted): {wrong}"


def deeplink(
    incoming: str, kind: str, sent: str, outcome: str, client: str = "other"
) -> tuple[str, str]:
    labels = {"incoming": incoming, "incoming_kind": kind, "sent": sent, "outcome": outcome}
    return DEEPLINKS, _labels({**labels, "client": client})


def requests(kind: str, status_class: str) -> tuple[str, str]:
    return REQUESTS, _labels({"kind": kind, "status_class": status_class})


def discovery(outcome: str, client: str = "other") -> tuple[str, str]:
    return DISCOVERY, _labels({"outcome": outcome, "client": client})


async def get(client: aiohttp.ClientSession, url: str, **headers: str) -> int:
    async with client.get(URL(url, encoded=True), allow_redirects=False, headers=headers) as r:
        await r.read()
        return r.status


async def test_deep_links_are_counted_by_names_and_outcome(client: aiohttp.ClientSession) -> None:
    async with demo_stack("mas-0.9") as stack:
        account = stack.shim_url + "/account/"
        statuses = [
            # first: the strip below redirects to this very URL, whose next request from this
            # address is then counted as the redirect's follow-up
            await get(client, account),
            await get(client, account + "?action=org.matrix.device_delete&device_id=A"),
            await get(client, account + "?action=org.matrix.device_delete&device_id=B"),
            await get(client, account + "?action=sessions_list"),
            await get(client, account + "?action=org.matrix.account_deactivate"),
            await get(client, account + "?action=org.matrix.session_end"),
            await get(client, account + "?action=org.example.unknown"),
            await get(client, account + "?action=org.matrix.plan_management"),
        ]
        assert statuses == [200, 302, 302, 302, 302, 200, 200, 200]
        await expect(
            client,
            stack,
            {
                deeplink(DEVICE_DELETE, "stable", "org.matrix.session_end", "redirect"): 2,
                deeplink("sessions_list", "legacy", "org.matrix.sessions_list", "redirect"): 1,
                deeplink("org.matrix.account_deactivate", "stable", "none", "strip"): 1,
                deeplink("org.matrix.session_end", "legacy", "none", "passthrough"): 1,
                # not MSC4191 names: nothing to migrate, never counted as legacy
                deeplink("unknown", "unknown", "none", "passthrough"): 2,
                deeplink("none", "none", "none", "passthrough"): 1,
                requests("deeplink", "3xx"): 4,
                requests("deeplink", "2xx"): 4,
            },
        )


async def test_rewrite_and_operator_redirects_are_counted(client: aiohttp.ClientSession) -> None:
    extra = {
        "account_management": {
            "strategy": "rewrite",
            "unsupported": {"redirect": "https://help.example.org/deactivate"},
        }
    }
    async with demo_stack("mas-0.9", extra) as stack:
        account = stack.shim_url + "/account/"
        assert await get(client, account + "?action=org.matrix.device_view&device_id=A") == 200
        assert await get(client, account + "?action=org.matrix.account_deactivate") == 302
        await expect(
            client,
            stack,
            {
                deeplink(
                    "org.matrix.device_view", "stable", "org.matrix.session_view", "rewrite"
                ): 1,
                deeplink(
                    "org.matrix.account_deactivate", "stable", "none", "redirect-unsupported"
                ): 1,
                requests("deeplink", "2xx"): 1,
                requests("deeplink", "3xx"): 1,
            },
        )


async def test_requests_are_counted_by_kind(client: aiohttp.ClientSession) -> None:
    async with demo_stack("prototype-unstable-keys") as stack:
        assert await get(client, stack.shim_url + "/.well-known/openid-configuration") == 200
        assert await get(client, stack.shim_url + "/.well-known/openid-configuration") == 200
        assert await get(client, stack.shim_url + "/oauth2/keys.json") == 200
        assert await get(client, stack.shim_url + "/nowhere") == 404
        await expect(
            client,
            stack,
            {
                requests("discovery", "2xx"): 2,
                requests("passthrough", "2xx"): 1,
                requests("passthrough", "4xx"): 1,
                requests("deeplink", "2xx"): 0,
                discovery("rewritten"): 1,
                discovery("cached"): 1,
            },
        )


async def test_an_unreachable_upstream_is_counted(client: aiohttp.ClientSession) -> None:
    async with shim_in_front(f"http://127.0.0.1:{free_port()}") as stack:
        assert await get(client, stack.shim_url + "/anything") == 502
        await expect(
            client,
            stack,
            {
                ("msc4191_shim_upstream_errors_total", _labels({"reason": "refused"})): 1,
                requests("passthrough", "5xx"): 1,
            },
        )


async def test_a_request_the_parser_refuses_is_counted(
    client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with demo_stack("mas-0.9") as stack:
        request = b"GET /account/?action=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        head, _ = split_response(await raw_exchange(stack.port, request))
        assert head.status == 400
        unhandled = [r for r in caplog.records if r.getMessage() == "Unhandled exception"]
        assert unhandled == []
        await expect(client, stack, {requests("passthrough", "4xx"): 1})


async def test_metrics_are_plain_prometheus_text(client: aiohttp.ClientSession) -> None:
    async with demo_stack("mas-0.9") as stack:
        async with client.get(stack.admin_url + "/metrics") as response:
            assert response.status == 200
            assert response.headers[hdrs.CONTENT_TYPE].startswith("text/plain")
        assert await get(client, stack.shim_url + "/metrics") == 404, "never on the public port"


# --- the shim's own traffic, and who sends what --------------------------------------------


async def test_a_redirects_follow_up_is_counted_apart(client: aiohttp.ClientSession) -> None:
    async with demo_stack("mas-0.9") as stack:
        account = stack.shim_url + "/account/"
        # a client that follows the 302, as a browser does: the second request names LEGACY
        async with client.get(account + f"?action={DEVICE_DELETE}&device_id=A") as response:
            assert response.status == 200
            assert response.headers["X-Portal-Action"] == LEGACY
            assert len(response.history) == 1
        # the same Location again, later: a client asking for a legacy name by itself
        assert await get(client, account + f"?action={LEGACY}&device_id=A") == 200
        # strip redirects too: to the portal's page without the action
        async with client.get(account + "?action=org.matrix.account_deactivate") as response:
            assert response.status == 200
            assert "X-Portal-Action" not in response.headers
        await expect(
            client,
            stack,
            {
                deeplink(DEVICE_DELETE, "stable", LEGACY, "redirect"): 1,
                deeplink(LEGACY, "legacy", "none", "followup"): 1,
                deeplink(LEGACY, "legacy", "none", "passthrough"): 1,
                deeplink("org.matrix.account_deactivate", "stable", "none", "strip"): 1,
                deeplink("none", "none", "none", "followup"): 1,
            },
        )


async def test_only_the_client_that_got_the_redirect_can_follow_it(
    client: aiohttp.ClientSession,
) -> None:
    # behind a trusted proxy, the client is the address it reports
    async with demo_stack("mas-0.9", {"trusted_proxies": ["127.0.0.1/32"]}) as stack:
        account = stack.shim_url + "/account/"
        location = f"/account/?action={LEGACY}&device_id=A"
        first = {"X-Forwarded-For": "192.0.2.1"}
        async with client.get(
            account + f"?action={DEVICE_DELETE}&device_id=A", headers=first, allow_redirects=False
        ) as response:
            assert response.headers["Location"] == location
        assert (
            await get(client, stack.shim_url + location, **{"X-Forwarded-For": "192.0.2.2"}) == 200
        )
        assert await get(client, stack.shim_url + location, **first) == 200
        await expect(
            client,
            stack,
            {
                deeplink(LEGACY, "legacy", "none", "passthrough"): 1,  # 192.0.2.2's own
                deeplink(LEGACY, "legacy", "none", "followup"): 1,  # 192.0.2.1's follow-up
            },
        )


async def test_deep_links_and_documents_are_counted_by_client_family(
    client: aiohttp.ClientSession,
) -> None:
    async with demo_stack("mas-0.9") as stack:
        account = stack.shim_url + "/account/"
        for agent in (CHROME_LINUX, ELEMENT_X, ELEMENT_X, DOCTOR_USER_AGENT):
            link = account + f"?action={LEGACY}"
            assert await get(client, link, **{"User-Agent": agent}) == 200
        openid = stack.shim_url + "/.well-known/openid-configuration"
        assert await get(client, openid, **{"User-Agent": DOCTOR_USER_AGENT}) == 200
        assert await get(client, stack.shim_url + "/_matrix/client/v1/auth_metadata",
                         **{"User-Agent": DOCTOR_USER_AGENT}) == 404  # fmt: skip
        assert await get(client, openid, **{"User-Agent": ELEMENT_X}) == 200
        await expect(
            client,
            stack,
            {
                deeplink(LEGACY, "legacy", "none", "passthrough", "element-web"): 1,
                deeplink(LEGACY, "legacy", "none", "passthrough", "element-x"): 2,
                deeplink(LEGACY, "legacy", "none", "passthrough", "doctor"): 1,
                discovery("rewritten", "doctor"): 1,
                discovery("passthrough_status", "doctor"): 1,
                discovery("cached", "element-x"): 1,
                discovery("passthrough_status"): 0,
            },
        )


async def test_a_mas_110_portal_gets_both_name_sets_untouched(
    client: aiohttp.ClientSession,
) -> None:
    extra = {"account_management": {"dialect": "mas-1.10"}}
    async with demo_stack("mas-1.10", extra) as stack:
        account = stack.shim_url + "/account/"
        for name in (DEVICE_DELETE, LEGACY):
            async with client.get(
                account + f"?action={name}&device_id=A", allow_redirects=False
            ) as response:
                assert response.status == 200
                assert response.headers["X-Portal-Action"] == name
        # the demo portal writes its URLs under the Host it is asked with: the shim's, as relayed
        host = {"Host": URL(stack.shim_url).raw_authority}
        async with client.get(
            stack.portal_url + "/.well-known/openid-configuration", headers=host
        ) as direct:
            own = await direct.read()
        async with client.get(stack.shim_url + "/.well-known/openid-configuration") as relayed:
            assert await relayed.read() == own
        await expect(
            client,
            stack,
            {
                deeplink(DEVICE_DELETE, "stable", "none", "passthrough"): 1,
                deeplink(LEGACY, "legacy", "none", "passthrough"): 1,
                discovery("unchanged"): 1,
                discovery("rewritten"): 0,
            },
        )


def duration_count(kind: str) -> tuple[str, str]:
    return "msc4191_shim_request_duration_seconds_count", _labels({"kind": kind})


IN_FLIGHT = ("msc4191_shim_requests_in_flight", "")


async def test_every_answer_has_its_duration_by_kind(client: aiohttp.ClientSession) -> None:
    """Redirects and cached documents (answered by the shim alone) are timed as passthrough is,
    and so are the shim's own errors."""
    async with demo_stack("mas-0.9") as stack:
        link = stack.shim_url + "/account/?action=org.matrix.device_delete&device_id=A"
        assert await get(client, link) == 302
        document = stack.shim_url + "/.well-known/openid-configuration"
        assert await get(client, document) == 200
        assert await get(client, document) == 200  # from the cache
        assert await get(client, stack.shim_url + "/nowhere") == 404
        star = b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert split_response(await raw_exchange(stack.port, star))[0].status == 400
        await expect(
            client,
            stack,
            {
                duration_count("deeplink"): 1,
                duration_count("discovery"): 2,
                duration_count("passthrough"): 2,
                duration_count("websocket"): 0,
                discovery("cached"): 1,
            },
        )
        found = await samples(client, stack)
        fast = _labels({"kind": "deeplink", "le": "0.25"})
        assert found["msc4191_shim_request_duration_seconds_bucket", fast] == 1


async def test_in_flight_counts_requests_being_answered(client: aiohttp.ClientSession) -> None:
    release = asyncio.Event()
    arrived = asyncio.Queue[str]()

    async def slow(request: web.Request) -> web.Response:
        await arrived.put(request.path)
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    async with app_stack(app) as stack:
        first = asyncio.create_task(get(client, stack.shim_url + "/one"))
        second = asyncio.create_task(get(client, stack.shim_url + "/two"))
        assert {await arrived.get(), await arrived.get()} == {"/one", "/two"}
        await expect(client, stack, {IN_FLIGHT: 2})

        # a client that leaves mid-request (a reset: a FIN alone may be a half-close, which is
        # still answered) ends its exchange
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
        writer.write(b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await arrived.get() == "/three"
        await expect(client, stack, {IN_FLIGHT: 3})
        reset(writer)
        await expect(client, stack, {IN_FLIGHT: 2})

        # a head refused before it was complete was never in flight
        bad = b"GET /x HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n"
        assert split_response(await raw_exchange(stack.port, bad))[0].status == 400
        await expect(client, stack, {IN_FLIGHT: 2})

        release.set()
        assert await first == await second == 200
        await expect(client, stack, {IN_FLIGHT: 0, requests("passthrough", "aborted"): 1})
        del reader
