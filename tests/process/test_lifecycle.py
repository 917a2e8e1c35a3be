"""The process: SIGTERM drains and exits 0, SIGHUP reloads (or refuses), check-config, workers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ShimProcessFactory, UpstreamFactory
from tests.support.loopback import (
    HOST,
    ShimProcess,
    child_pids,
    connect,
    free_port,
    read_response,
    run_cli,
    shim_settings,
    tcp_sockets,
)

WAIT = 10.0


class SlowUpstream:
    """`/slow` waits `delay` seconds (or for ever) before answering; `/` answers `name`."""

    def __init__(self, name: str = "A", delay: float | None = None) -> None:
        self.name = name
        self.delay = delay
        self.started = asyncio.Event()

    async def slow(self, request: web.Request) -> web.Response:
        self.started.set()
        if self.delay is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(self.delay)
        return web.Response(text="finished " + self.name)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text=self.name)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/", self.root)
        return app


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def _until_refused(port: int, within: float = 3.0) -> None:
    async with asyncio.timeout(within):
        while True:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except (ConnectionRefusedError, ConnectionResetError):
                # refused: the listener is closed; reset: our connection was still in its
                # backlog when it closed. Either way, no new connection is accepted.
                return
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            await asyncio.sleep(0.02)


class Draining(NamedTuple):
    """A shim process sent SIGTERM while a request to `/slow` was in flight."""

    shim: ShimProcess
    in_flight: asyncio.Task[tuple[int, str]]
    signalled: float  # the event loop's time when SIGTERM was sent


SigtermInFlight = Callable[..., Awaitable[Draining]]


@pytest.fixture
def sigterm_in_flight(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> SigtermInFlight:
    """`await sigterm_in_flight(upstream, grace=...)`: SIGTERM once `upstream` got `/slow`."""

    async def start(upstream: SlowUpstream, *, grace: str) -> Draining:
        endpoint = await upstream_factory(upstream.app())
        shim = await shim_process_factory(shim_settings(endpoint.url, shutdown_grace=grace))
        in_flight = asyncio.create_task(_get(f"{shim.url}/slow"))
        await asyncio.wait_for(upstream.started.wait(), WAIT)
        signalled = asyncio.get_running_loop().time()
        shim.send_signal(signal.SIGTERM)
        return Draining(shim, in_flight, signalled)

    return start


async def test_sigterm_lets_in_flight_requests_finish_and_exits_0(
    sigterm_in_flight: SigtermInFlight,
) -> None:
    shim, in_flight, signalled = await sigterm_in_flight(SlowUpstream(delay=1.0), grace="5s")
    await _until_refused(shim.port)
    assert not in_flight.done()
    assert await in_flight == (200, "finished A")
    assert await shim.wait(WAIT) == 0
    assert asyncio.get_running_loop().time() - signalled < 5.0
    assert shim.events("draining")
    assert shim.events("stopped")
    assert "Traceback" not in shim.stderr


async def test_a_request_past_the_grace_is_cut_and_the_exit_is_still_0(
    sigterm_in_flight: SigtermInFlight,
) -> None:
    shim, in_flight, signalled = await sigterm_in_flight(SlowUpstream(delay=None), grace="500ms")
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(in_flight, WAIT)
    assert await shim.wait(WAIT) == 0
    assert asyncio.get_running_loop().time() - signalled < 3.0
    assert "Traceback" not in shim.stderr


async def test_sighup_reloads_a_valid_configuration(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    slow_a = SlowUpstream("A", delay=1.0)
    first = await upstream_factory(slow_a.app())
    second = await upstream_factory(SlowUpstream("B").app())
    settings = shim_settings(first.url)
    shim = await shim_process_factory(settings)
    async with connect(shim.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n")
        assert (await read_response(reader))[1] == b"A"
        in_flight = asyncio.create_task(_get(f"{shim.url}/slow"))
        await asyncio.wait_for(slow_a.started.wait(), 5)

        shim.rewrite_config({**settings, "upstream": {"url": second.url}})
        shim.send_signal(signal.SIGHUP)
        await shim.wait_for_event("reloaded")
        # no connection dropped: the request in flight finishes under the old configuration,
        # and the connection kept alive from before the reload serves the new one
        assert await in_flight == (200, "finished A")
        writer.write(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n")
        assert (await read_response(reader))[1] == b"B"
    assert not shim.events("reload_partial")


async def test_sighup_refuses_a_broken_configuration_and_keeps_serving(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    first = await upstream_factory(SlowUpstream("A").app())
    settings = shim_settings(first.url)
    shim = await shim_process_factory(settings)

    shim.rewrite_config({**settings, "upstream": {"url": "foo"}, "lisen": "x"})
    shim.send_signal(signal.SIGHUP)
    await shim.wait_for_event("reload_refused")
    (refused,) = shim.events("reload_refused")
    assert refused["level"] == "ERROR"
    assert refused["errors"] == [
        "upstream.url: expected an http(s) URL such as https://account.example.com, got 'foo'",
        "lisen: unknown key; did you mean 'listen'?",
    ]
    assert await _get(f"{shim.url}/") == (200, "A")
    assert shim.proc.returncode is None


BROKEN = """\
lisen: "127.0.0.1:1"
upstream:
  url: foo
  read_timeout: 3x
shutdown_grace: -1
"""

GOLDEN = """\
4 configuration problems in {path}:
  - upstream.url: expected an http(s) URL such as https://account.example.com, got 'foo'
  - upstream.read_timeout: expected a duration such as 5s, 250ms or 10, got '3x'
  - shutdown_grace: expected a duration of zero or more, got -1
  - lisen: unknown key; did you mean 'listen'?
"""


async def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text('upstream:\n  url: "http://127.0.0.1:8081"\n', encoding="utf-8")
    assert await run_cli("check-config", "--config", str(path)) == (
        0,
        f"configuration OK: {path}\n",
        "",
    )


@pytest.mark.parametrize("command", ["check-config", "run"])
async def test_a_broken_file_exits_2_listing_every_problem(command: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    assert await run_cli(command, "--config", str(path)) == (2, "", GOLDEN.format(path=path))


async def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    expected = (
        f"1 configuration problem in {path}:\n"
        "  - cannot read the configuration file: No such file or directory\n"
    )
    assert await run_cli("check-config", "--config", str(path)) == (2, "", expected)


async def test_two_workers_serve_one_port(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    endpoint = await upstream_factory(SlowUpstream("A").app())
    # workers share one port by SO_REUSEPORT, so it must be chosen beforehand (port 0 would
    # give each worker its own)
    settings = shim_settings(
        endpoint.url,
        listen=f"127.0.0.1:{free_port()}",
        admin={"listen": f"127.0.0.1:{free_port()}"},
    )
    shim = await shim_process_factory(settings, "--workers", "2", ready=2)
    workers = child_pids(shim.proc.pid)
    assert len(workers) == 2
    for pid in workers:
        listening = {port for state, port, _, _ in tcp_sockets(pid) if state == "0A"}
        assert shim.port in listening

    # fresh connections are spread by the kernel; each worker keeps its upstream connection open
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(32):
            async with session.get(f"{shim.url}/") as response:
                assert await response.text() == "A"
    for pid in workers:
        upstream_links = [s for s in tcp_sockets(pid) if s[0] == "01" and s[2] == endpoint.port]
        assert upstream_links, f"worker {pid} served nothing"

    assert await shim.terminate(WAIT) == 0
    await _until_refused(shim.port)


async def test_a_reload_says_which_changes_wait_for_a_restart(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    first = await upstream_factory(SlowUpstream("A").app())
    second = await upstream_factory(SlowUpstream("B").app())
    settings = shim_settings(first.url)
    shim = await shim_process_factory(settings)
    shim.rewrite_config({**settings, "upstream": {"url": second.url}, "shutdown_grace": "7s"})
    shim.send_signal(signal.SIGHUP)
    await shim.wait_for_event("reloaded")
    (partial,) = shim.events("reload_partial")
    assert "shutdown_grace take effect on restart" in partial["detail"]
    assert await _get(f"{shim.url}/") == (200, "B")  # the rest applied at once


async def test_sigterm_says_going_away_to_open_websockets_at_once(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    upstream_codes: list[int | None] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        upstream_codes.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    endpoint = await upstream_factory(app)
    # a long grace: a WebSocket is told at once, it does not wait for the drain to time out
    shim = await shim_process_factory(shim_settings(endpoint.url, shutdown_grace="10s"))
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{shim.url}/ws") as ws:
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=WAIT) == "hello"
        signalled = asyncio.get_running_loop().time()
        shim.send_signal(signal.SIGTERM)
        message = await ws.receive(timeout=WAIT)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == aiohttp.WSCloseCode.GOING_AWAY
        assert asyncio.get_running_loop().time() - signalled < 2.0
    assert await shim.wait(WAIT) == 0
    assert asyncio.get_running_loop().time() - signalled < 3.0
    assert upstream_codes == [aiohttp.WSCloseCode.GOING_AWAY]
    assert "Traceback" not in shim.stderr
