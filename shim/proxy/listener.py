"""The client side: one `asyncio.Protocol` per connection, parsing requests with llhttp.

From each request head it builds the `Exchange` and hands it to the one handler its route names
(`dispatch`); body bytes follow to that handler as they arrive. Requests are answered in order:
a pipelined request waits (reading paused) until the one before it is answered. The edge limits
live here: the head timeout and size, the idle time between requests and between body reads,
and the number of connections.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, Protocol, cast

import httptools

from shim.config.runtime import Runtime
from shim.http.forwarding import Forwarding
from shim.http.target import (
    HTTP2_REFUSAL,
    escape_refusal,
    escapes_prefix,
    is_http2_preface,
)
from shim.obs.logs import log_event
from shim.obs.metrics import LimitName
from shim.proxy.access import begin_exchange, finish_exchange
from shim.proxy.dispatch import dispatch
from shim.proxy.exchange import Exchange
from shim.proxy.flow import BLOCK_BODY_BUFFER, BLOCK_PIPELINE, BLOCK_UPSTREAM
from shim.proxy.forwarding import ForwardingRefused, read_exchange_forwarding
from shim.proxy.h1 import (
    CONNECTION,
    CONTENT_LENGTH,
    EXPECT,
    HOST,
    REASONS,
    TRANSFER_ENCODING,
    UPGRADE,
    Fields,
    origin_form,
    request_line_version,
    text_response,
    valid_target,
)
from shim.proxy.route import classify_memoized, is_upgrade

if TYPE_CHECKING:
    from shim.proxy.server import ProxyServer

logger: Final = logging.getLogger("msc4191_shim.proxy")

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_INTERESTING: Final = frozenset(
    {CONNECTION, UPGRADE, EXPECT, CONTENT_LENGTH, TRANSFER_ENCODING, HOST}
)

Timer = Literal["none", "idle", "head", "body"]
#: the text of the methods seen most, without decoding them each time
_METHODS: Final = {
    m.encode("ascii"): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}


class Handler(Protocol):
    """What a route does with an exchange once it is the one being answered."""

    def request_body(self, data: bytes) -> None: ...
    def request_end(self) -> None: ...
    def client_writable(self, writable: bool) -> None: ...
    def client_lost(self) -> None: ...
    def going_away(self) -> None: ...


@dataclass(eq=False)
class _Queued:
    """A pipelined request waiting for its turn, with the body bytes read so far."""

    exchange: Exchange
    body: list[bytes] = field(default_factory=list)


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.state = server.state
        self.loop = server.loop
        self.limits = server.limits
        self.scheme = server.scheme
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.parser = httptools.HttpRequestParser(self)
        #: the exchange being answered, and its handler
        self.exchange: Exchange | None = None
        self.handler: Handler | None = None
        self._queue: collections.deque[_Queued] = collections.deque()
        #: where the parser's body bytes go while that request waits in the queue
        self._parsing_queued: _Queued | None = None
        self._parsing_exchange: Exchange | None = None
        self._url = b""
        self._fields: Fields = []
        self._head_size = 0
        #: between on_message_begin and on_message_complete
        self._in_message = False
        #: the chunk received while no request was in progress: it starts with the next one's
        #: request line (read by that request's on_message_begin, then dropped)
        self._chunk: bytes | None = None
        #: the request's version if its request line said it plainly (`request_line_version`)
        self._http11: bool | None = None
        self._refused: tuple[int, str] | None = None
        self._blocks = 0
        self.writable = True
        #: answer the current exchange, then close (shutdown, or the client asked)
        self.closing = False
        self.closed = False
        self.splice: Handler | None = None
        self._timer_kind: Timer = "none"
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._last_forwarding: tuple[Runtime, bytes, Forwarding] | None = None
        self._prefix: tuple[Runtime, str] | None = None
        #: the last upstream head block (after the request line) and what it was made from
        self.upstream_block: tuple[object, bytes] | None = None
        self._served = False

    # -- connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else None
        if not self.server.admit(self):
            self._limit_hit("max_connections")
            self.closed = True
            self.transport.write(
                text_response(
                    503,
                    REASONS[503],
                    f"too many connections (limits.max_connections is "
                    f"{self.limits.max_connections}); try again\n",
                    close=True,
                    head_only=False,
                )
            )
            self.transport.close()
            return
        self._arm("idle", self.limits.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        self.server.forget(self)
        handler, self.handler = self.handler, None
        if self.splice is not None:
            self.splice.client_lost()
            self.splice = None
        elif handler is not None:
            handler.client_lost()
        self._queue.clear()

    def pause_writing(self) -> None:
        self.writable = False
        handler = self.splice or self.handler
        if handler is not None:
            handler.client_writable(False)

    def resume_writing(self) -> None:
        self.writable = True
        handler = self.splice or self.handler
        if handler is not None:
            handler.client_writable(True)

    def eof_received(self) -> bool | None:
        # the client is gone (as aiohttp and nginx read it): the exchange in flight is ended and
        # the upstream told at once, by closing its connection
        return None

    def data_received(self, data: bytes) -> None:
        if self.splice is not None:
            self.splice.request_body(data)
            return
        if self.closed:
            return
        if data[:3] == b"PRI" and self.exchange is None and is_http2_preface(data[:24]):
            self._refuse_http2()
            return
        if self._timer_kind == "body":
            self._deadline = self.loop.time() + self.limits.body_idle_timeout
        self._chunk = None if self._in_message else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._after_upgrade_head(data[upgrade.args[0] :])
        except httptools.HttpParserError as exc:
            self._refuse_request(exc)

    # -- parser callbacks

    def on_message_begin(self) -> None:
        self._in_message = True
        chunk, self._chunk = self._chunk, None
        self._http11 = None if chunk is None else request_line_version(chunk)
        self._url = b""
        self._fields = []
        self._head_size = 0
        if self.exchange is None and not self._queue:
            self._arm("head", self.limits.head_timeout)

    # on_url and on_header run for every request: the head-size check is written out in both

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_head_bytes:
            self._over_head_limit(414, "request target")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.limits.max_head_bytes:
            self._over_head_limit(431, "request head")

    def _over_head_limit(self, status: int, what: str) -> None:
        limit = self.limits.max_head_bytes
        self._refused = (status, f"{what} longer than {limit} bytes (limits.max_head_bytes)")
        raise _RefusedError

    def on_headers_complete(self) -> None:
        exchange = self._build_exchange()
        if exchange is None:
            return
        if self.exchange is None:
            self._parsing_queued = None
            self._activate(exchange, [])
        else:
            queued = _Queued(exchange)
            self._queue.append(queued)
            self._parsing_queued = queued
            self._block(BLOCK_PIPELINE)

    def on_body(self, body: bytes) -> None:
        queued = self._parsing_queued
        if queued is not None:
            queued.body.append(body)
        elif self.handler is not None and self._parsing_exchange is self.exchange:
            self.handler.request_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        queued, self._parsing_queued = self._parsing_queued, None
        exchange, self._parsing_exchange = self._parsing_exchange, None
        if exchange is None or exchange.request_complete:
            return
        exchange.request_complete = True
        if queued is not None:
            return
        if self._timer_kind == "body":
            self._disarm()
        if self.handler is not None and exchange is self.exchange:
            self.handler.request_end()

    # -- exchanges

    def _build_exchange(self) -> Exchange | None:
        parser = self.parser
        method_bytes = parser.get_method()
        method = _METHODS.get(method_bytes) or method_bytes.decode("ascii")
        raw_target = self._url
        fields = self._fields
        tokens: frozenset[bytes] = frozenset()
        upgrade = expect = None
        hosts: list[bytes] = []
        has_body = chunked = False
        for name, value in fields:
            low = name.lower()
            if low not in _INTERESTING:
                continue
            if low == HOST:
                hosts.append(value)
            elif low == CONNECTION:
                tokens = tokens | {t.strip().lower() for t in value.split(b",") if t.strip()}
            elif low == UPGRADE:
                upgrade = value
            elif low == EXPECT:
                expect = value
            elif low == TRANSFER_ENCODING:
                has_body = chunked = True
            elif low == CONTENT_LENGTH:
                has_body = has_body or value.strip() not in (b"0", b"")
        runtime = self.state.runtime  # pinned: a reload meanwhile does not change this request
        if raw_target[:1] == b"/" and valid_target(raw_target):
            target: str | None = raw_target.decode("ascii")  # origin form, the common case
        else:
            target = origin_form(raw_target.decode("ascii")) if valid_target(raw_target) else None
        http11 = self._http11
        if http11 is None:
            http11 = parser.get_http_version() == "1.1"
        # positional, in Exchange's field order: keyword arguments cost more than the rest of
        # the construction, once per request
        exchange = Exchange(
            method,
            raw_target,
            target or raw_target.decode("latin-1"),
            http11,
            fields,
            parser.should_keep_alive() and not self.closing,  # keep_alive
            "passthrough",  # route, until classified below
            runtime,
            self.peer,
            self.scheme,
            tokens,  # connection_tokens
            has_body,
            chunked,  # chunked_body
            not has_body,  # request_complete
            expect is not None and expect.lower() == b"100-continue",  # expect_continue
        )
        self._parsing_exchange = exchange
        try:
            exchange.forwarding = self._forwarding(fields, hosts, runtime)
        except ForwardingRefused as refused:
            exchange.refusal = (400, str(refused))
            return exchange
        if target is None:
            exchange.refusal = (
                400,
                f"request target {raw_target[:64].decode('latin-1')!r} is not proxied: "
                "send /path?query (this is a reverse proxy, not a forward proxy)",
            )
            return exchange
        cached = self._prefix
        if cached is None or cached[0] is not runtime:
            cached = self._prefix = (runtime, self.state.pool.target_for(runtime).prefix_text)
        prefix = cached[1]
        if prefix and escapes_prefix(prefix, target.partition("?")[0]):
            exchange.refusal = (400, escape_refusal(prefix, target.partition("?")[0]))
            return exchange
        exchange.route = classify_memoized(
            method, target, runtime.config, is_upgrade(tokens, upgrade) and not has_body
        )
        return exchange

    def _forwarding(self, fields: Fields, hosts: list[bytes], runtime: Runtime) -> Forwarding:
        """The forwarding decision; for an untrusted peer it depends only on the one Host
        field, so the connection's last one is reused while its Host stays the same."""
        cached = self._last_forwarding
        if cached is not None and len(hosts) == 1:
            key_runtime, host, forwarding = cached
            if key_runtime is runtime and host == hosts[0]:
                return forwarding
        forwarding = read_exchange_forwarding(
            fields, peer=self.peer, scheme=self.scheme, runtime=runtime
        )
        if not forwarding.trusted and len(hosts) == 1:
            self._last_forwarding = (runtime, hosts[0], forwarding)
        return forwarding

    def _activate(self, exchange: Exchange, body: list[bytes]) -> None:
        self.exchange = exchange
        begin_exchange(self.state, exchange)
        if not exchange.request_complete:
            self._arm("body", self.limits.body_idle_timeout)
        else:
            self._timer_kind = "none"
        if exchange.refusal is not None:
            status, text = exchange.refusal
            self.answer(exchange, status, text)
            return
        handler = dispatch(self, exchange)
        if handler is None:  # answered at once
            return
        self.handler = handler
        for piece in body:
            handler.request_body(piece)
        if exchange.request_complete and exchange.has_body:
            handler.request_end()

    def send_continue(self, exchange: Exchange) -> None:
        """`100 Continue` for a client that waits for it before sending its body."""
        if exchange.expect_continue and exchange.http11 and not exchange.request_complete:
            exchange.expect_continue = False
            self.write(_CONTINUE)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def answer(
        self, exchange: Exchange, status: int, text: str, *, fields: bytes | None = None
    ) -> None:
        """A short answer of the proxy's own: an error with its reason, on its own line."""
        exchange.status = status
        close = self.must_close(exchange) or status in (400, 408, 414, 431)
        data = text_response(
            status,
            REASONS.get(status, b"Error"),
            text + "\n",
            close=close,
            head_only=exchange.is_head,
        )
        exchange.bytes_sent = 0 if exchange.is_head else len(text.encode("utf-8")) + 1
        self.write(data)
        self.done(exchange, keep_alive=not close)

    def must_close(self, exchange: Exchange) -> bool:
        return not exchange.keep_alive or self.closing

    def done(self, exchange: Exchange, *, keep_alive: bool) -> None:
        """The answer to `exchange` is complete: log it, then the next request or close."""
        if exchange is not self.exchange:
            return
        self.exchange = None
        self.handler = None
        self._served = True
        finish_exchange(self.state, exchange)
        if not exchange.request_complete:
            keep_alive = False  # the rest of its body would be read as the next request
        if not keep_alive or self.closing or self.closed:
            self.close()
            return
        if self._queue:
            queued = self._queue.popleft()
            if not self._queue:
                self._unblock(BLOCK_PIPELINE)
            if self._parsing_queued is queued:
                self._parsing_queued = None
            self._activate(queued.exchange, queued.body)
        else:
            if self._blocks:
                self._unblock(BLOCK_PIPELINE)
            self._arm("idle", self.limits.keepalive_timeout)

    def close(self) -> None:
        self.closed = True
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection: a response that cannot be completed must not look complete."""
        self.closed = True
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    def go_away(self) -> None:
        """Shutdown: close when idle, after the current answer otherwise."""
        self.closing = True
        if self.splice is not None:
            self.splice.going_away()
        elif self.exchange is None and not self._queue:
            self.close()

    # -- upgrades and refusals

    def _after_upgrade_head(self, rest: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.route == "upgrade" and self.handler is not None:
            # the rest belongs to the new protocol, once the upstream agrees to switch
            self.splice = self.handler
            if rest:
                self.splice.request_body(rest)
            return
        if rest:  # an Upgrade this proxy does not relay (h2c): the connection stays HTTP/1.1
            self.data_received(rest)

    def _limit_hit(self, limit: LimitName) -> None:
        self.state.metrics.observe_limit_hit(limit)

    def _refuse_http2(self) -> None:
        """HTTP/2 with prior knowledge: say what to speak instead, in HTTP/1.1, and close."""
        log_event("http2_refused", level=logging.WARNING, client=self.peer, detail=HTTP2_REFUSAL)
        self.write(
            text_response(505, REASONS[505], HTTP2_REFUSAL + "\n", close=True, head_only=False)
        )
        self.close()

    def _refuse_request(self, exc: httptools.HttpParserError) -> None:
        refused, self._refused = self._refused, None
        if refused is not None:
            self._limit_hit("max_head_bytes")
        status, text = refused or (400, f"malformed request: {exc}")
        if self._parsing_exchange is not None and self._parsing_exchange is self.exchange:
            # the body broke: the answer may have started; nothing more can be read
            self.exchange.error = f"malformed request body: {exc}"
            self.abort()
            return
        exchange = self._unfinished_exchange()
        self._queue.clear()
        if self.exchange is not None:  # answer in turn is impossible: stop here
            self.abort()
            finish_exchange(self.state, exchange)
            return
        self.exchange = exchange
        self.answer(exchange, status, text)

    # -- flow control

    def _block(self, reason: int) -> None:
        if not self._blocks and self.transport is not None:
            self.transport.pause_reading()
        self._blocks |= reason

    def _unblock(self, reason: int) -> None:
        if not self._blocks & reason:
            return
        self._blocks &= ~reason
        if not self._blocks and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def block_reading(self, reason: int, blocked: bool) -> None:
        if blocked:
            self._block(reason)
        else:
            self._unblock(reason)

    # -- timers: one lazily re-armed handle for the head, idle and body limits

    def _arm(self, kind: Timer, seconds: float) -> None:
        self._timer_kind = kind
        self._deadline = deadline = self.loop.time() + seconds
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._expire)

    def _disarm(self) -> None:
        self._timer_kind = "none"

    def _expire(self) -> None:
        self._timer = None
        kind = self._timer_kind
        if kind == "none" or self.closed:
            return
        now = self.loop.time()
        if kind == "body" and self._blocks & (BLOCK_UPSTREAM | BLOCK_BODY_BUFFER):
            self._deadline = now + self.limits.body_idle_timeout  # we are the slow side
        if now < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._expire)
            return
        if kind == "idle":
            # a connection that never sent a request waited for a head; one that did, idled
            self._limit_hit("keepalive_timeout" if self._served else "head_timeout")
            self.close()
        elif kind == "head":
            self._head_timed_out()
        else:
            self._body_timed_out()

    def _unfinished_exchange(self) -> Exchange:
        """An exchange for a request refused before one was built (a parse error, the head
        timeout): logged and counted, never proxied."""
        return Exchange(
            method=_method_of(self.parser),
            raw_target=self._url,
            target=self._url.decode("latin-1"),
            http11=True,
            fields=self._fields,
            keep_alive=False,
            route="passthrough",
            runtime=self.state.runtime,
            peer=self.peer,
            scheme=self.scheme,
        )

    def _head_timed_out(self) -> None:
        self._limit_hit("head_timeout")
        limit = self.limits.head_timeout
        exchange = self._unfinished_exchange()
        self.exchange = exchange
        self.answer(
            exchange, 408, f"request head not received within {limit:g}s (limits.head_timeout)"
        )

    def _body_timed_out(self) -> None:
        exchange, handler = self.exchange, self.handler
        self._limit_hit("body_idle_timeout")
        limit = self.limits.body_idle_timeout
        text = f"no request body bytes for {limit:g}s (limits.body_idle_timeout)"
        if exchange is None:
            self.close()
            return
        exchange.error = text
        if handler is not None and getattr(handler, "response_started", False):
            exchange.aborted = True
            self.abort()
            return
        self.handler = None
        if handler is not None:
            handler.client_lost()
        self.answer(exchange, 408, text)


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing a request over a limit."""


def _method_of(parser: httptools.HttpRequestParser) -> str:
    try:
        return parser.get_method().decode("ascii", "replace")
    except httptools.HttpParserError:
        return "-"


def now() -> float:
    return time.monotonic()
