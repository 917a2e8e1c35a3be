"""The admin listener: /healthz, /readyz (rate-limited upstream probe), never on the public port."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from shim.server.admin import READY_CHECK_INTERVAL
from tests.conftest import ShimFactory, ShimFor
from tests.support.loopback import free_port, shim_settings


class CountingUpstream:
    """Counts every request; answers with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.paths: list[str] = []
        self.release = asyncio.Event()
        self.slow_started = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.path == "/slow":
            self.slow_started.set()
            await self.release.wait()
        return web.Response(status=self.status, text="portal")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def _get(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url) as response:
        return response.status, await response.text()


async def test_healthz_answers_200_even_without_an_upstream(
    shim_factory: ShimFactory, client: aiohttp.ClientSession
) -> None:
    shim = await shim_factory(shim_settings(f"http://127.0.0.1:{free_port()}"))
    async with client.get(f"{shim.admin_url}/healthz") as response:
        assert response.status == 200
        assert await response.text() == "ok\n"
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("answer", [500, 404])
async def test_readyz_200_when_the_upstream_answers_even_with_an_error(
    shim_for: ShimFor, client: aiohttp.ClientSession, answer: int
) -> None:
    upstream = CountingUpstream(status=answer)
    shim = await shim_for(upstream.app())
    status, text = await _get(client, f"{shim.admin_url}/readyz")
    assert status == 200
    # the 200 says why in words that agree with it: a portal's root is often a 404
    upstream_origin = shim.shim.state.runtime.upstream_origin
    assert text.startswith(f"ready: upstream {upstream_origin} is reachable")
    assert text.endswith(f"(GET / answered {answer}; any HTTP answer counts)\n")
    assert upstream.paths == ["/"]


async def test_readyz_503_when_the_upstream_is_down(
    shim_factory: ShimFactory, client: aiohttp.ClientSession
) -> None:
    port = free_port()
    shim = await shim_factory(shim_settings(f"http://127.0.0.1:{port}"))
    status, text = await _get(client, f"{shim.admin_url}/readyz")
    assert status == 503
    assert text == (
        f"not ready: upstream http://127.0.0.1:{port} did not answer: "
        f"cannot connect to 127.0.0.1:{port}: connection refused\n"
    )


async def test_readyz_probes_the_upstream_at_most_once_per_interval(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream = CountingUpstream()
    shim = await shim_for(upstream.app())
    url = f"{shim.admin_url}/readyz"
    concurrent = await asyncio.gather(*(_get(client, url) for _ in range(20)))
    sequential = [await _get(client, url) for _ in range(20)]
    assert {status for status, _ in concurrent + sequential} == {200}
    assert upstream.paths == ["/"]

    await asyncio.sleep(READY_CHECK_INTERVAL + 0.1)
    for _ in range(5):
        await _get(client, url)
    assert upstream.paths == ["/", "/"]


async def test_admin_paths_on_the_public_port_go_to_the_upstream(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream = CountingUpstream()
    shim = await shim_for(upstream.app())
    for path in ("/healthz", "/readyz", "/metrics"):
        status, text = await _get(client, f"{shim.url}{path}")
        assert (status, text) == (200, "portal")
    assert upstream.paths == ["/healthz", "/readyz", "/metrics"]


async def test_the_admin_port_proxies_nothing(
    shim_for: ShimFor, client: aiohttp.ClientSession
) -> None:
    upstream = CountingUpstream()
    shim = await shim_for(upstream.app())
    status, _ = await _get(client, f"{shim.admin_url}/account/")
    assert status == 404
    assert upstream.paths == []


async def test_readyz_503_while_draining(shim_for: ShimFor, client: aiohttp.ClientSession) -> None:
    upstream = CountingUpstream()
    shim = await shim_for(upstream.app())
    assert (await _get(client, f"{shim.admin_url}/readyz"))[0] == 200
    in_flight = asyncio.create_task(_get(client, f"{shim.url}/slow"))
    await asyncio.wait_for(upstream.slow_started.wait(), 5.0)
    stopping = asyncio.create_task(shim.stop())
    await asyncio.sleep(0.1)
    status, text = await _get(client, f"{shim.admin_url}/readyz")
    assert (status, text) == (503, "draining: shutting down\n")
    upstream.release.set()
    assert await in_flight == (200, "portal")
    await stopping
