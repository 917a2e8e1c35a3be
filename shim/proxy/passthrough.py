"""Passthrough: the request to a pooled upstream connection, the answer back as it arrives.

Bodies move both ways as they come, with back-pressure both ways: a client that does not read
pauses the upstream, an upstream that does not read pauses the client. An upstream failure
before the answer starts becomes a 502/504 with its reason; after, the client connection is cut,
so a truncated body never looks complete.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from shim.core.location import rewrite_location
from shim.http.forwarding import forwarding_lines
from shim.http.headers import Fields, decode_raw
from shim.proxy.access import note_failure
from shim.proxy.errors import UpstreamClosedError, UpstreamError
from shim.proxy.exchange import Exchange
from shim.proxy.flow import BLOCK_BODY_BUFFER, BLOCK_UPSTREAM, MAX_PENDING_BODY
from shim.proxy.framing import (
    LAST_CHUNK,
    BodyKind,
    ClientFraming,
    ResponseHead,
    chunk,
    client_framing,
    last_chunk,
)
from shim.proxy.h1 import (
    HOP_BY_HOP_NAMES,
    client_response_head,
    interim_head,
    request_line,
    upstream_field_block,
)
from shim.proxy.protocols import Connection
from shim.proxy.upstream import UpstreamConnection

#: RFC 9110 §9.2.2: a request that may be sent again when the connection died before any answer
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_CHUNKED: Final = b"Transfer-Encoding: chunked\r\n"
#: the longest upstream field block a connection remembers for its next request
_BLOCK_MEMO_MAX: Final = 8192
#: trailer fields never relayed: hop-by-hop ones, and those a trailer may not carry (framing and
#: routing, RFC 9110 §6.5.1)
_TRAILER_DROPPED: Final = HOP_BY_HOP_NAMES | {b"content-length", b"host"}


class Passthrough:
    """One exchange relayed to the upstream (also a `ResponseSink` for its answer).

    The request's body goes as the connection read it: whole (read before dispatch, up to
    `limits.request_buffer`), sent with the head under a `Content-Length` of its size; or
    streaming, under the client's length (which llhttp holds it to) or chunked anew. Either
    way the upstream's framing is this hop's, written for the bytes that really follow.
    """

    #: the request asks the upstream to switch protocols (`extra_framing` says to which)
    UPGRADE = False

    def __init__(
        self,
        conn: Connection,
        exchange: Exchange,
        target: bytes,
        *,
        method: bytes | None = None,
        drop: frozenset[bytes] = frozenset(),
    ) -> None:
        self.conn = conn
        self.exchange = exchange
        self.pool = conn.state.pool
        self.target = target
        self.method = method or exchange.method.encode("ascii")
        self.drop = drop
        self.upstream: UpstreamConnection | None = None
        self.finished = False
        self.response_started = False
        self.retried = False
        self._reused = False
        #: streamed body pieces (framed) waiting for the upstream connection
        self._pending: list[bytes] = []
        self._pending_size = 0
        #: the whole body, sent with the head (None: there is none, or it streams)
        self._whole: bytes | None = None
        #: the framing field this hop writes for the body
        self._framing_line = b""
        self._chunked = False
        self._request_sent = False
        self._framing: ClientFraming = "none"
        self._close_after = False
        self._head_out = b""
        #: a HEAD sent upstream as GET (discovery): the client gets the head only
        self._discard_body = exchange.method == "HEAD" and self.method != b"HEAD"
        self._sent_at = 0.0
        self._connecting: asyncio.Task[None] | None = None
        self._take_body()

    def _take_body(self) -> None:
        """The body as the connection has it, and the framing the upstream gets for it."""
        exchange = self.exchange
        request = exchange.request
        if request.framing == "none" or self.UPGRADE:
            return
        pieces = exchange.take_body()
        if exchange.request_complete:
            self._whole = b"".join(pieces)
            self._framing_line = b"Content-Length: %d\r\n" % len(self._whole)
        elif request.framing == "length":
            self._framing_line = b"Content-Length: %d\r\n" % request.length
            self._pending = pieces
        else:
            self._framing_line = _CHUNKED
            self._chunked = True
            self._pending = [chunk(piece) for piece in pieces if piece]
        self._pending_size = sum(len(piece) for piece in self._pending)

    # -- the request

    def start(self) -> None:
        conn, exchange = self.conn, self.exchange
        if exchange.expect_continue:
            conn.send_continue(exchange)
        target = exchange.runtime.target
        upstream = None if self.retried else self.pool.take_idle(target)
        if upstream is not None:
            self._reused = True
            self._send_head(upstream)
        else:
            self._reused = False
            self._connecting = conn.loop.create_task(self._connect())

    async def _connect(self) -> None:
        runtime = self.exchange.runtime
        target = runtime.target
        try:
            upstream = await self.pool.connect(target, runtime.config.upstream.connect_timeout)
        except asyncio.CancelledError:
            raise
        except (OSError, UpstreamError) as exc:
            self._connecting = None
            if not self.finished:
                self._failed_before_answer(exc)
            return
        self._connecting = None
        if self.finished:
            self.pool.release(upstream)
            return
        self._send_head(upstream)

    def upstream_head(self) -> bytes:
        """The request line and fields the upstream gets: the request's end-to-end fields (the
        one parsed request, `RequestFields`), the forwarding fields, then this hop's framing."""
        exchange = self.exchange
        runtime = exchange.runtime
        target = runtime.target
        forwarding = exchange.forwarding
        assert forwarding is not None  # refused at the edge otherwise
        # the client's Host where it stood, or the portal's own (an HTTP/1.0 request may come
        # without one; this hop speaks HTTP/1.1, which needs one)
        preserved = runtime.config.upstream.preserve_host and exchange.request.host is not None
        host = None if preserved else target.authority
        # the block after the request line is the same for every request of a connection that
        # repeats its fields (most do): worked out once per change, not once per request
        key = (exchange.request, host, forwarding, self.drop)
        memo = self.conn.upstream_block
        if memo is not None and memo[0] == key:
            block = memo[1]
        else:
            block = upstream_field_block(
                exchange.fields, host=host, forwarding=forwarding_lines(forwarding), drop=self.drop
            )
            # an idle connection keeps it: only an ordinary head's, not one near the head limit
            self.conn.upstream_block = (key, block) if len(block) <= _BLOCK_MEMO_MAX else None
        framing = self.extra_framing() if self.UPGRADE else self._framing_line
        return b"".join(
            (request_line(self.method, target.prefix + self.target), block, framing, b"\r\n")
        )

    def extra_framing(self) -> bytes:
        return b""

    def _send_head(self, upstream: UpstreamConnection) -> None:
        self.upstream = upstream
        exchange = self.exchange
        data = self.upstream_head()
        if self._whole:
            data += self._whole
        elif self._pending:
            data = b"".join([data, *self._pending])
            self._pending = []
            self._pending_size = 0
            self.conn.block_reading(BLOCK_BODY_BUFFER, False)
        if exchange.request_complete and self._chunked:
            data += LAST_CHUNK
        self._sent_at = time.monotonic()
        upstream.start(
            data,
            self,
            method=self.method,
            read_timeout=exchange.runtime.config.upstream.read_timeout,
            upgrade=self.UPGRADE,
        )
        self._request_sent = exchange.request_complete

    def request_body(self, data: bytes) -> None:
        if self.finished or not data:
            return
        if self._chunked:
            data = chunk(data)
        if self.upstream is not None:
            self.upstream.send(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > MAX_PENDING_BODY:
            self.conn.block_reading(BLOCK_BODY_BUFFER, True)

    def request_end(self) -> None:
        if self.finished or self.upstream is None:
            return  # sent with the head once connected
        if self._chunked:
            self.upstream.send(LAST_CHUNK)  # once: the client's trailers are not relayed
        self._request_sent = True

    def request_broken(self) -> bool:
        """The request's body broke off (a framing error, a timeout). Before the answer has
        started, the upstream is dropped and True returned: the connection answers why. After,
        False: the connection is cut, and `client_lost` ends this exchange."""
        if self.response_started and not self.finished:
            return False
        self.finished = True
        if self._connecting is not None:
            self._connecting.cancel()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()  # it has half a request: never reused
        return True

    # -- flow control

    def client_writable(self, writable: bool) -> None:
        if self.upstream is not None:
            if writable:
                self.upstream.resume_reading()
            else:
                self.upstream.pause_reading()

    def upstream_writable(self, writable: bool) -> None:
        self.conn.block_reading(BLOCK_UPSTREAM, not writable)

    # -- the answer (ResponseSink)

    def response_interim(self, head: ResponseHead) -> None:
        # 100 was answered by the proxy itself; a 101 nobody asked for switches nothing here;
        # other 1xx (103) go to HTTP/1.1 clients
        if head.status not in (100, 101) and self.exchange.http11:
            self.conn.write(interim_head(head))

    def response_head(self, head: ResponseHead, kind: BodyKind) -> None:
        exchange = self.exchange
        exchange.upstream_status = head.status
        exchange.upstream_seconds = time.monotonic() - self._sent_at
        exchange.status = head.status
        self.response_started = True
        self._framing = client_framing(kind, http11=exchange.http11)
        self._close_after = self.conn.must_close(exchange) or self._framing == "close"
        self._head_out = client_response_head(
            head,
            framing=self._framing,
            http11=exchange.http11,
            close=self._close_after,
            rewrite_location=self._location_rewriter() if head.has_location else None,
        )

    def response_whole(self, head: ResponseHead, kind: BodyKind, body: bytes) -> None:
        """An answer whose whole body came with its head (or that has none): head, body and
        end in one write."""
        self.response_head(head, kind)
        data, self._head_out = self._head_out, b""
        if body and not self._discard_body:
            self.exchange.bytes_sent += len(body)
            data += body
        self.conn.write(data)
        self._finish()

    def response_in_steps(self, head: ResponseHead, kind: BodyKind, body: bytes) -> None:
        """`response_whole` as its three steps, for handlers that take the answer apart (and
        may have answered from elsewhere after the head)."""
        self.response_head(head, kind)
        if body and not self.finished:
            self.response_body(body)
        if not self.finished:
            self.response_end([])

    def response_body(self, data: bytes) -> None:
        if not data or self._discard_body:
            return
        self.exchange.bytes_sent += len(data)
        if self._framing == "chunked":
            data = chunk(data)
        if self._head_out:
            data, self._head_out = self._head_out + data, b""
        self.conn.write(data)

    def response_end(self, trailers: Fields) -> None:
        tail = self._head_out
        self._head_out = b""
        if self._framing == "chunked" and not self._discard_body:
            kept = [(n, v) for n, v in trailers if n.lower() not in _TRAILER_DROPPED]
            tail += last_chunk(kept)
        if tail:
            self.conn.write(tail)
        self._finish()

    def _finish(self) -> None:
        """The answer is complete: the upstream connection back to the pool (or closed), the
        exchange done."""
        self._release_upstream()
        self.finished = True
        self.conn.done(self.exchange, keep_alive=not self._close_after)

    def upstream_failed(self, exc: UpstreamError) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        if self.finished:
            return
        if not self.response_started:
            if self._may_retry(exc):
                self.retried = True  # the whole body, if any, goes again with the head
                self.start()
                return
            self._failed_before_answer(exc)
            return
        self.finished = True
        exchange = self.exchange
        failure = note_failure(
            self.conn.state, exchange, exc, "upstream failed mid-body; aborting the client response"
        )
        exchange.error, exchange.aborted = f"aborted mid-body: {failure.text}", True
        self.conn.abort()
        self.conn.done(exchange, keep_alive=False)

    def _may_retry(self, exc: UpstreamError) -> bool:
        """Once, for an idempotent request without a body or with one read whole (up to
        `limits.request_buffer`), when a reused connection died before any byte of the answer:
        the upstream closed it while idle, it never saw it."""
        return (
            isinstance(exc, UpstreamClosedError)
            and exc.before_any_byte
            and self._reused
            and not self.retried
            and self.exchange.method in IDEMPOTENT
            and (self.exchange.request.framing == "none" or self._whole is not None)
        )

    def _failed_before_answer(self, exc: BaseException) -> None:
        self.finished = True
        exchange = self.exchange
        failure = note_failure(self.conn.state, exchange, exc, "upstream error")
        exchange.error = failure.text
        self.conn.answer(exchange, failure.status, failure.text)

    def upstream_switched(self, head: ResponseHead, rest: bytes) -> None:
        raise AssertionError("only an Upgrade switches protocols")

    def splice_data(self, data: bytes) -> None:
        raise AssertionError("only an Upgrade switches protocols")

    # -- the client side

    def client_lost(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._connecting is not None:
            self._connecting.cancel()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()  # the upstream learns at once; its handler is cancelled
        exchange = self.exchange
        exchange.error, exchange.aborted = "client disconnected", True
        self.conn.done(exchange, keep_alive=False)

    def going_away(self) -> None:
        pass

    def _release_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return
        if self._request_sent and upstream.reusable:
            self.pool.release(upstream)
        else:
            upstream.close()

    def _location_rewriter(self) -> LocationRewrite:
        return LocationRewrite(self.exchange)


class LocationRewrite:
    """Rewrite a Location that points at the upstream's own origin, as nginx's default does."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def __call__(self, value: bytes) -> bytes:
        exchange = self.exchange
        runtime = exchange.runtime
        account = runtime.config.account_management
        ((_, text),) = decode_raw([(b"Location", value)])
        rewritten = rewrite_location(
            text,
            upstream_origin=runtime.upstream_origin,
            public_origin=exchange.public_origin(),
            back_translate=account.table if account.strategy == "rewrite" else None,
            entry_paths=account.paths,
        )
        return value if rewritten == text else rewritten.encode("utf-8")
