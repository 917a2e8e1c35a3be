"""Upgrades (WebSocket and any other protocol): after the upstream's 101, bytes both ways.

No frame is assembled: what one side sends the other gets, as it comes, so close codes, masks
and extensions pass as they are; memory stays bounded by the transports' buffers, with
back-pressure both ways. At shutdown a WebSocket is told 1001 "going away" on both sides,
between two frames; any other upgraded connection is closed.
"""

from __future__ import annotations

from typing import Final

from shim.http.headers import Fields
from shim.proxy.exchange import Exchange
from shim.proxy.flow import BLOCK_BODY_BUFFER, MAX_PENDING_BODY
from shim.proxy.framing import BodyKind, ResponseHead
from shim.proxy.h1 import switching_head
from shim.proxy.passthrough import Passthrough
from shim.proxy.protocols import Connection
from shim.proxy.websocket import GOING_AWAY, FrameTracker, close_frame

#: how long both sides get to answer a "going away" before they are cut
CLOSE_TIMEOUT: Final = 2.0
_GOING_AWAY_REASON: Final = b"proxy shutting down"


class Upgrade(Passthrough):
    UPGRADE = True

    def __init__(self, conn: Connection, exchange: Exchange) -> None:
        super().__init__(conn, exchange, exchange.target.encode("latin-1"))
        exchange.keep_alive = False  # after an Upgrade request this is no HTTP connection
        self.protocol = exchange.request.upgrade or b""
        self.websocket = self.protocol.strip().lower() == b"websocket"
        exchange.kind = "websocket" if self.websocket else "passthrough"
        self.switched = False
        self.leaving = False
        self._early: list[bytes] = []
        self._early_size = 0
        self._to_upstream = FrameTracker()
        self._to_client = FrameTracker()

    def extra_framing(self) -> bytes:
        return b"Connection: Upgrade\r\nUpgrade: " + self.protocol + b"\r\n"

    def request_body(self, data: bytes) -> None:
        """Bytes after the head: the new protocol's, once the upstream agreed to switch."""
        if self.finished or self.leaving:
            return
        if not self.switched:
            self._early.append(data)
            self._early_size += len(data)
            if self._early_size > MAX_PENDING_BODY:
                self.conn.block_reading(BLOCK_BODY_BUFFER, True)
            return
        if self.websocket:
            self._to_upstream.feed(data)
        assert self.upstream is not None
        self.upstream.write_raw(data)

    def upstream_switched(self, head: ResponseHead, rest: bytes) -> None:
        exchange = self.exchange
        exchange.upstream_status = exchange.status = 101
        self.switched = self.response_started = True
        self.conn.write(switching_head(head))
        if rest:
            self.splice_data(rest)
        early, self._early = self._early, []
        self.conn.block_reading(BLOCK_BODY_BUFFER, False)
        for data in early:
            self.request_body(data)

    def splice_data(self, data: bytes) -> None:
        if self.leaving:
            return
        if self.websocket:
            self._to_client.feed(data)
        self.exchange.bytes_sent += len(data)
        self.conn.write(data)

    def response_whole(self, head: ResponseHead, kind: BodyKind, body: bytes) -> None:
        self.response_in_steps(head, kind, body)

    def response_end(self, trailers: Fields) -> None:
        if not self.switched:  # the upstream refused the upgrade: its answer, then close
            super().response_end(trailers)
            return
        self._end()

    def client_lost(self) -> None:
        if not self.switched:
            super().client_lost()
            return
        self._end()

    def _end(self) -> None:
        if self.finished:
            return
        self.finished = True
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close()
        self.conn.close()
        self.conn.done(self.exchange, keep_alive=False)

    def going_away(self) -> None:
        """Shutdown: 1001 to both sides between frames, then close; cut if mid-frame."""
        if not self.switched or self.finished or self.upstream is None:
            return
        if not (self.websocket and self._to_client.at_boundary and self._to_upstream.at_boundary):
            self.exchange.error = "closed at shutdown"
            self._end()
            return
        self.leaving = True
        self.exchange.outcome = "going away"
        self.conn.write(close_frame(GOING_AWAY, _GOING_AWAY_REASON, masked=False))
        self.upstream.write_raw(close_frame(GOING_AWAY, _GOING_AWAY_REASON, masked=True))
        self.conn.loop.call_later(CLOSE_TIMEOUT, self._end)
