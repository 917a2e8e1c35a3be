"""Relay a WebSocket upgrade: connect upstream first, then accept the client with what it chose."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web

from msc4191_shim.web.forward import prepare_upstream_headers, upstream_failed
from msc4191_shim.web.state import record_of, request_target, runtime_of, shim_state

_RESERVED_CLOSE_CODES = {1005, 1006, 1015}
CLOSE_TIMEOUT = 10.0


def is_websocket_upgrade(request: web.Request) -> bool:
    connection = request.headers.get(hdrs.CONNECTION, "").lower()
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower()
    return request.method == hdrs.METH_GET and "upgrade" in connection and upgrade == "websocket"


def _protocols(request: web.Request) -> tuple[str, ...]:
    values = request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, [])
    return tuple(p.strip() for value in values for p in value.split(",") if p.strip())


async def relay_websocket(request: web.Request) -> web.StreamResponse:
    state = shim_state(request)
    runtime = runtime_of(request)
    record_of(request).kind = "websocket"
    headers = prepare_upstream_headers(request, runtime, websocket=True)
    try:
        upstream = await state.session.ws_connect(
            runtime.upstream_url(request_target(request)),
            headers=headers,
            protocols=_protocols(request),
            compress=0,
            max_msg_size=0,
            ssl=runtime.upstream_ssl,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
        )
    except aiohttp.WSServerHandshakeError as exc:
        record_of(request).upstream_status = exc.status
        return web.Response(
            status=exc.status, text=f"upstream refused the WebSocket: {exc.message}\n"
        )
    except (TimeoutError, aiohttp.ClientError) as exc:
        return upstream_failed(request, exc)
    record_of(request).upstream_status = 101
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        compress=False,
        max_msg_size=0,
    )
    async with upstream:
        await client.prepare(request)
        relay = Relay(client, upstream, asyncio.create_task(_relay_both_ways(client, upstream)))
        request.app[OPEN_RELAYS_KEY].track(relay)
        try:
            await asyncio.shield(relay.task)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client's connection drops, right after a
            # client's close frame: let the relay finish the upstream's closing handshake with
            # the client's code (or say "going away" if the client is somehow still there)
            if not client.closed:
                await relay.going_away()
            await asyncio.wait({relay.task}, timeout=CLOSE_TIMEOUT)
            relay.task.cancel()
            raise
    return client


@dataclass(frozen=True, eq=False)
class Relay:
    """One open WebSocket pair and the task copying messages between them."""

    client: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse
    task: asyncio.Task[None]

    async def going_away(self) -> None:
        """Stop relaying and close both sides with 1001 Going Away, within the close timeout."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        closing = (
            side.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"proxy shutting down")
            for side in (self.client, self.upstream)
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True), timeout=CLOSE_TIMEOUT
            )


class OpenRelays:
    """The open WebSockets, so shutdown can close them."""

    def __init__(self) -> None:
        self._relays: set[Relay] = set()

    def track(self, relay: Relay) -> None:
        self._relays.add(relay)
        relay.task.add_done_callback(lambda _: self._relays.discard(relay))

    async def going_away(self, _app: web.Application) -> None:
        await asyncio.gather(*(relay.going_away() for relay in list(self._relays)))


OPEN_RELAYS_KEY = web.AppKey("open_websocket_relays", OpenRelays)


def track_websockets(app: web.Application) -> None:
    """Say "going away" to every open WebSocket as soon as shutdown starts.

    WebSockets are long-lived: draining them would hold the shutdown for the whole grace time
    and end in a dropped connection; a close frame lets clients reconnect at once.
    """
    relays = app[OPEN_RELAYS_KEY] = OpenRelays()
    app.on_shutdown.append(relays.going_away)


async def _relay_both_ways(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    to_upstream = asyncio.create_task(_pump(client, upstream))
    to_client = asyncio.create_task(_pump(upstream, client))
    try:
        _, pending = await asyncio.wait(
            {to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED
        )
        # one side closed; the other pump is finishing the closing handshake with the same
        # code: give it the close timeout before cutting it
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
    finally:
        for task in (to_upstream, to_client):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Copy messages until `source` closes, then close `sink` with the same code."""
    while True:
        message = await source.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            # a CLOSE message carries the peer's own code; `close_code` may already be the
            # code of our automatic reply
            peer_code = message.data if message.type is aiohttp.WSMsgType.CLOSE else None
            code = peer_code or source.close_code or aiohttp.WSCloseCode.OK
            if code in _RESERVED_CLOSE_CODES:
                code = aiohttp.WSCloseCode.OK
            reason = message.extra.encode() if isinstance(message.extra, str) else b""
            await sink.close(code=code, message=reason)
            return
