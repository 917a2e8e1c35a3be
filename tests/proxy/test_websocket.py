"""WebSocket upgrades relayed both ways: messages, close codes, subprotocols, refusals."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ShimFactory, ShimFor
from tests.support.loopback import RunningShim, free_port, shim_settings

WAIT = 5.0


@dataclass
class EchoUpstream:
    """Echoes messages; "close:<code>" makes it close with that code. Records what it saw."""

    protocols: tuple[str, ...] = ()
    close_codes: list[int | None] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.handshakes.append(dict(request.headers))
        ws = web.WebSocketResponse(protocols=self.protocols)
        await ws.prepare(request)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT and message.data.startswith("close:"):
                await ws.close(code=int(message.data[6:]), message=b"bye from upstream")
            elif message.type is aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(b"echo:" + message.data)
        self.close_codes.append(ws.close_code)
        self.closed.set()
        return ws

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.handle)
        app.router.add_get("/plain", plain)
        return app


async def plain(request: web.Request) -> web.Response:
    return web.Response(status=403, text="no websockets here")


EchoBehindShim = tuple[EchoUpstream, RunningShim]


@pytest.fixture
async def echo_shim(shim_for: ShimFor) -> EchoBehindShim:
    """An `EchoUpstream` that offers no subprotocol, with the shim in front of it."""
    echo = EchoUpstream()
    return echo, await shim_for(echo.app())


async def test_text_and_binary_messages_relay_both_ways(
    echo_shim: EchoBehindShim, client: aiohttp.ClientSession
) -> None:
    _, shim = echo_shim
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    async with client.ws_connect(f"{shim.url}/ws", max_msg_size=0) as ws:
        await ws.send_str("h\u00e9llo")
        assert await ws.receive_str(timeout=WAIT) == "echo:h\u00e9llo"
        await ws.send_bytes(payload)
        assert await ws.receive_bytes(timeout=WAIT) == b"echo:" + payload
        await ws.send_str("")
        assert await ws.receive_str(timeout=WAIT) == "echo:"


async def test_client_close_code_reaches_the_upstream(
    echo_shim: EchoBehindShim, client: aiohttp.ClientSession
) -> None:
    echo, shim = echo_shim
    async with client.ws_connect(f"{shim.url}/ws") as ws:
        await ws.send_str("ping")
        assert await ws.receive_str(timeout=WAIT) == "echo:ping"
        await ws.close(code=4001, message=b"client leaving")
    await asyncio.wait_for(echo.closed.wait(), WAIT)
    assert echo.close_codes == [4001]


async def test_upstream_close_code_reaches_the_client(
    echo_shim: EchoBehindShim, client: aiohttp.ClientSession
) -> None:
    _, shim = echo_shim
    async with client.ws_connect(f"{shim.url}/ws") as ws:
        await ws.send_str("close:4002")
        message = await ws.receive(timeout=WAIT)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 4002
        assert message.extra == "bye from upstream"
    assert ws.close_code == 4002


@pytest.mark.parametrize(
    ("offered", "upstream_supports", "chosen"),
    [
        (("a.proto", "b.proto"), ("b.proto", "c.proto"), "b.proto"),
        (("a.proto",), ("b.proto",), None),
        ((), ("b.proto",), None),
    ],
)
async def test_subprotocol_negotiated_by_the_upstream(
    offered: tuple[str, ...],
    upstream_supports: tuple[str, ...],
    chosen: str | None,
    shim_for: ShimFor,
    client: aiohttp.ClientSession,
) -> None:
    echo = EchoUpstream(protocols=upstream_supports)
    shim = await shim_for(echo.app())
    async with client.ws_connect(f"{shim.url}/ws", protocols=offered) as ws:
        assert ws.protocol == chosen
        await ws.send_str("x")
        assert await ws.receive_str(timeout=WAIT) == "echo:x"
    offered_upstream = echo.handshakes[0].get("Sec-WebSocket-Protocol", "")
    assert [p.strip() for p in offered_upstream.split(",") if p.strip()] == list(offered)


async def test_handshake_carries_client_fields_and_forwarding(
    echo_shim: EchoBehindShim, client: aiohttp.ClientSession
) -> None:
    echo, shim = echo_shim
    headers = {"Origin": "https://portal.example", "Cookie": "session=abc"}
    async with client.ws_connect(f"{shim.url}/ws?room=1", headers=headers):
        pass
    (seen,) = echo.handshakes
    assert seen["Origin"] == "https://portal.example"
    assert seen["Cookie"] == "session=abc"
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["Upgrade"].lower() == "websocket"


async def test_a_refused_upgrade_passes_the_upstream_status(
    echo_shim: EchoBehindShim, client: aiohttp.ClientSession
) -> None:
    _, shim = echo_shim
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with client.ws_connect(f"{shim.url}/plain"):
            pass
    assert refused.value.status == 403


async def test_an_unreachable_upstream_fails_the_upgrade_with_502(
    shim_factory: ShimFactory, client: aiohttp.ClientSession
) -> None:
    shim = await shim_factory(shim_settings(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with client.ws_connect(f"{shim.url}/ws"):
            pass
    assert refused.value.status == 502
