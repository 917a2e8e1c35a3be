"""The client side: one `asyncio.Protocol` per connection, parsing requests with llhttp.

From each request head it builds one description of the request (`proxy/request.py`) and the
`Exchange` around it, and hands that to the one handler its route names (`dispatch`). A body up
to `limits.request_buffer` is read whole first, so a framing error is answered 400 before the
portal sees anything and a slow small body holds no upstream connection; a larger body streams.

Requests are answered in order. A pipelined request waits in a bounded queue (reading paused)
until the ones before it are answered, and starts only while the client takes its answers. The
edge limits live here: the head timeout and size, the idle time between requests and between
body reads, how long the client may leave its answer unread, and the number of connections.

The connection has one explicit phase (`Phase`: open, last, spliced, closed) and its reading
side another (`Reading`: between requests, in a head, in a body, stopped), as h11 keeps one
state per role. What a handler may ask of the connection is `protocols.Connection`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Final, Literal, cast

import httptools

from shim.http.forwarding import Forwarding, ForwardingRefused, is_trusted, read_forwarding
from shim.http.headers import Fields
from shim.http.target import (
    HTTP2_REFUSAL,
    escape_refusal,
    escapes_prefix,
    is_http2_preface,
)
from shim.obs.labels import LimitName
from shim.obs.logs import log_event
from shim.proxy.access import begin_exchange, finish_exchange
from shim.proxy.dispatch import dispatch
from shim.proxy.exchange import Exchange
from shim.proxy.flow import (
    BLOCK_BACKLOG,
    BLOCK_BODY_BUFFER,
    BLOCK_PIPELINE,
    BLOCK_STOPPED,
    BLOCK_UPSTREAM,
    MAX_QUEUED,
)
from shim.proxy.h1 import (
    REASONS,
    origin_form,
    request_line_version,
    text_response,
    valid_target,
)
from shim.proxy.protocols import Admission, Connection, Handler
from shim.proxy.request import RequestFields, read_fields
from shim.proxy.runtime import Runtime

logger: Final = logging.getLogger("msc4191_shim.proxy")

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
#: what a 405 says is allowed: every method the proxy relays
_ALLOWED: Final = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#: methods the proxy refuses (405): CONNECT opens a tunnel (llhttp reads nothing after its
#: head), TRACE echoes a request back, credentials included (nginx answers both 405)
_REFUSED_METHODS: Final = frozenset({"CONNECT", "TRACE"})
#: the proxy's own refusals end the connection: what the client sends next was written by a
#: client that sends bad requests (HAProxy closes after its own 4xx too)
_CLOSING: Final = frozenset({400, 405, 408, 413, 414, 431})
#: " HTTP/1.1\r\n" after the target: the rest of the request line that `limits.max_head_bytes`
#: counts (llhttp accepts only this form)
_VERSION_SIZE: Final = 11
#: how much of a chunked body llhttp gets at once once its last chunk may be in sight
_CHUNKED_SLICE: Final = 4096

Timer = Literal["none", "idle", "head", "body"]
#: the reading side: between requests, in a head, in a body, or stopped (nothing more is read as
#: HTTP/1.1: after a parse error, an Upgrade's head, a half-close or at shutdown)
Reading = Literal["idle", "head", "body", "stopped"]
#: the connection: `open` reads and answers requests; `last` answers those read, then closes
#: (shutdown, or the client half-closed); `spliced` relays an Upgrade's bytes both ways;
#: `closed`. The exchange being answered is `exchange` (its handler `handler`), those waiting
#: are `_queue`
Phase = Literal["open", "last", "spliced", "closed"]
#: the text of the methods seen most, without decoding them each time
_METHODS: Final = {
    m.encode("ascii"): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}


class ClientConnection(Connection):
    def __init__(self, server: Admission) -> None:
        self.server = server
        self.state = server.state
        self.loop = server.loop
        self.limits = server.limits
        self.scheme = server.scheme
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.parser = httptools.HttpRequestParser(self)
        #: the reading side's phase (see the module's docstring)
        self.reading: Reading = "idle"
        #: the exchange being answered, and its handler
        self.exchange: Exchange | None = None
        self.handler: Handler | None = None
        #: requests read while another is answered, in order (at most MAX_QUEUED)
        self._queue: collections.deque[Exchange] = collections.deque()
        #: the exchange whose body the parser is reading
        self._parsing: Exchange | None = None
        self._method = b""
        self._url = b""
        self._fields: Fields = []
        self._head_size = 0
        self._trailer_size = 0
        #: the chunk received while no request was in progress: it starts with the next one's
        #: request line (read by that request's on_message_begin, then dropped)
        self._chunk: bytes | None = None
        #: the request's version if its request line said it plainly (`request_line_version`)
        self._http11: bool | None = None
        self._refused: tuple[int, str] | None = None
        #: the last bytes of a head still being read (its end may straddle two reads)
        self._head_tail = b""
        #: bytes read but not parsed yet, while MAX_QUEUED requests wait
        self._backlog: bytes | None = None
        self._backlog_scheduled = False
        self._blocks = 0
        self.writable = True
        #: the connection's phase (see `Phase`); `reading` is its reading side's
        self.phase: Phase = "open"
        self._timer_kind: Timer = "none"
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        #: when the client last stopped taking its answer (`pause_writing`)
        self._paused_at = 0.0
        #: the last request's field facts, and its forwarding decision (most connections
        #: repeat their fields from request to request)
        self._last_fields: RequestFields | None = None
        self._last_forwarding: tuple[Runtime, object, Forwarding] | None = None
        self._trust: tuple[Runtime, bool] | None = None
        #: the last upstream head block and what it was made from (`Passthrough.upstream_head`)
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
            self.phase = "closed"
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
        self.phase = "closed"
        self._release_timers()
        self.server.forget(self)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.client_lost()
        self._queue.clear()
        self._parsing = None

    def pause_writing(self) -> None:
        # a client that leaves its answers unread gets no more of them (the next request waits
        # in the queue, which stops reading when full), for at most limits.send_timeout
        self.writable = False
        self._paused_at = self.loop.time()
        if self._send_timer is None and self.phase != "spliced":
            # one lazily re-armed timer: a download pauses and resumes many times a second
            self._send_timer = self.loop.call_at(
                self._paused_at + self.limits.send_timeout, self._send_timed_out
            )
        if self.handler is not None:
            self.handler.client_writable(False)

    def resume_writing(self) -> None:
        self.writable = True
        if self.handler is not None:
            self.handler.client_writable(True)
        if self.exchange is None and self._queue and self.phase == "open":
            self._next()

    def eof_received(self) -> bool | None:
        if (
            self.phase == "open"
            and self.reading == "idle"
            and (self.exchange is not None or self._queue)
        ):
            # a half-close after whole requests: they are answered, then the connection closes
            # (as HAProxy does without `option abortonclose`)
            self.phase = "last"
            self._stop()
            return True
        # otherwise the client is gone: the exchange in flight is ended and the upstream told
        # at once, by closing its connection
        return None

    def data_received(self, data: bytes) -> None:
        if self.phase == "spliced":
            if self.handler is not None:  # None once the upstream refused the switch
                self.handler.request_body(data)
            return
        if self.reading == "stopped" or self.phase == "closed":
            return
        if data[:3] == b"PRI" and not self._served and is_http2_preface(data[:24]):
            self._refuse_http2()
            return
        if self._timer_kind == "body":
            self._deadline = self.loop.time() + self.limits.body_idle_timeout
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Hand `data` to llhttp, cut where a request may end (`_cut`), so that no more than
        MAX_QUEUED requests wait at once: the rest waits unparsed (`_backlog`, reading paused)
        until the client has read the answers before it."""
        pos, end = 0, len(data)
        while pos < end:
            if self.reading == "stopped" or self.phase == "closed":
                return
            if len(self._queue) >= MAX_QUEUED:
                self._backlog = data[pos:] if pos else data
                self._block(BLOCK_BACKLOG)
                return
            cut = self._cut(data, pos, end)
            piece = data if pos == 0 and cut == end else data[pos:cut]
            self._chunk = piece if self.reading == "idle" else None
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade as upgrade:
                self._after_upgrade_head(data[pos + upgrade.args[0] :])
                return
            except httptools.HttpParserError as exc:
                self._parse_failed(exc)
                return
            if self.reading == "head":
                self._head_tail = piece[-3:]
            pos = cut

    def _cut(self, data: bytes, pos: int, end: int) -> int:
        """Where the next piece for llhttp ends: after the next head (llhttp ends a head at the
        first CRLF CRLF and accepts no other end), after the current body's length, or, for a
        chunked body, within 4 KiB once its last chunk may be near. llhttp still reads every
        byte; the cut only bounds how many requests one piece can hold."""
        if self.reading == "body":
            exchange = self._parsing
            if exchange is None:
                return end
            request = exchange.request
            if request.framing == "length":
                return min(end, pos + request.length - exchange.body_received)
            # the last chunk is a line that starts with 0
            if data[pos : pos + 1] != b"0" and data.find(b"\n0", pos) < 0:
                return end
            return min(end, pos + _CHUNKED_SLICE)
        if self.reading == "head" and self._head_tail:
            joined = self._head_tail + data[pos : pos + 3]
            found = joined.find(b"\r\n\r\n")
            if found >= 0:
                return pos + found + 4 - len(self._head_tail)
        found = data.find(b"\r\n\r\n", pos)
        return end if found < 0 else found + 4

    def _feed_backlog(self) -> None:
        """The answers before it were read: parse what waited."""
        self._backlog_scheduled = False
        data, self._backlog = self._backlog, None
        self._unblock(BLOCK_BACKLOG)
        if data and self.phase != "closed":
            self._feed(data)

    # -- parser callbacks

    def on_message_begin(self) -> None:
        self.reading = "head"
        self._head_tail = b""
        chunk, self._chunk = self._chunk, None
        self._http11 = None if chunk is None else request_line_version(chunk)
        self._url = b""
        self._fields = []
        self._head_size = 0
        if self.exchange is None and not self._queue:
            self._arm("head", self.limits.head_timeout)

    # on_url and on_header run for every request: the head-size check is written out in both

    def on_url(self, url: bytes) -> None:
        if not self._url:  # the request line: method, space, target, " HTTP/1.1\r\n"
            self._method = self.parser.get_method()
            self._head_size = len(self._method) + 1 + _VERSION_SIZE
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_head_bytes:
            self._over_head_limit(414, "request line")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.reading != "head":  # a trailer field: never relayed; bounded all the same
            self._trailer_size += len(name) + len(value) + 4
            if self._trailer_size > self.limits.max_head_bytes:
                self._refused = (400, "request trailer section too long")
                raise _RefusedError
            return
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
        self.reading = "body"
        self._trailer_size = 0
        self._parsing = exchange
        if self.exchange is None and not self._queue and self.writable:
            self._start(exchange)
        else:
            self._queue.append(exchange)
            self._block(BLOCK_PIPELINE)

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is None:
            return
        exchange.body_received += len(body)
        if exchange.streaming:
            if self.handler is not None and exchange is self.exchange:
                self.handler.request_body(body)
            return
        exchange.body.append(body)
        exchange.body_size += len(body)
        if (
            exchange is self.exchange
            and not exchange.dispatched
            and exchange.body_size > self.limits.request_buffer
        ):
            self._dispatch(exchange)  # it outgrew the buffer: the rest streams

    def on_message_complete(self) -> None:
        self.reading = "idle"
        exchange, self._parsing = self._parsing, None
        if exchange is None:
            return
        exchange.request_complete = True
        if exchange is not self.exchange:
            return  # queued, or answered already
        if self._timer_kind == "body":
            self._disarm()
        if exchange.streaming:
            if self.handler is not None:
                self.handler.request_end()
        elif not exchange.dispatched and exchange.refusal is None:
            self._dispatch(exchange)  # its whole body is here

    # -- exchanges

    def _build_exchange(self) -> Exchange:
        parser = self.parser
        method_bytes = self._method or parser.get_method()
        method = _METHODS.get(method_bytes) or method_bytes.decode("ascii")
        raw_target = self._url
        received = self._fields
        runtime = self.state.runtime  # pinned: a reload meanwhile does not change this request
        http11 = self._http11
        if http11 is None:
            http11 = parser.get_http_version() == "1.1"
        upgrade_flag = parser.should_upgrade()
        trusted = self._trusted(runtime)
        facts = self._last_fields
        if facts is None or not facts.same(received, http11, upgrade_flag, trusted):
            facts = self._last_fields = read_fields(
                received, http11=http11, upgrade_flag=upgrade_flag, trusted=trusted
            )
        if raw_target[:1] == b"/" and valid_target(raw_target):
            target: str | None = raw_target.decode("ascii")  # origin form, the common case
        else:
            target = origin_form(raw_target.decode("ascii")) if valid_target(raw_target) else None
        # positional, in Exchange's field order: keyword arguments cost more than the rest of
        # the construction, once per request
        exchange = Exchange(
            method,
            raw_target,
            target or raw_target.decode("latin-1"),
            http11,
            facts,
            facts.keep_alive and self.phase == "open",
            runtime,
            self.peer,
            self.scheme,
        )
        exchange.refusal = self._refusal(exchange, facts, target, runtime)
        if exchange.refusal is None:
            exchange.route = runtime.route(method, exchange.target, facts.upgrade is not None)
        return exchange

    def _refusal(
        self, exchange: Exchange, facts: RequestFields, target: str | None, runtime: Runtime
    ) -> tuple[int, str] | None:
        """Why the request is not proxied (a 4xx before anything is sent), or None."""
        if exchange.method in _REFUSED_METHODS:
            exchange.keep_alive = exchange.keep_alive and exchange.method != "CONNECT"
            return (405, f"{exchange.method} is not relayed by this reverse proxy")
        if facts.refusal is not None:
            return facts.refusal
        if target is None:
            # never the target itself: its query may carry a credential
            return (
                400,
                "the request target is not proxied: send /path?query (this is a reverse "
                "proxy, not a forward proxy), in visible ASCII",
            )
        try:
            exchange.forwarding = self._forwarding(facts, runtime)
        except ForwardingRefused as refused:
            return (400, str(refused))
        prefix = runtime.target.prefix_text
        if prefix:
            path = target.partition("?")[0]
            if escapes_prefix(prefix, path):
                return (400, escape_refusal(prefix, path))
        return None

    def _trusted(self, runtime: Runtime) -> bool:
        """The peer is a trusted proxy under `runtime` (asked once per reload)."""
        cached = self._trust
        if cached is None or cached[0] is not runtime:
            cached = self._trust = (runtime, is_trusted(self.peer, runtime.config.trusted_proxies))
        return cached[1]

    def _forwarding(self, facts: RequestFields, runtime: Runtime) -> Forwarding:
        """The forwarding decision; for an untrusted peer it depends only on the Host, so the
        connection's last one is reused while its Host stays the same."""
        key: object = facts if facts.trusted else facts.host
        cached = self._last_forwarding
        if cached is not None and cached[0] is runtime and cached[1] == key:
            return cached[2]
        if facts.trusted:
            source = facts.end_to_end_received()
        else:
            source = [] if facts.host is None else [(b"Host", facts.host)]
        forwarding = read_forwarding(
            source, peer=self.peer, scheme=self.scheme, trusted=facts.trusted
        )
        self._last_forwarding = (runtime, key, forwarding)
        return forwarding

    def _start(self, exchange: Exchange) -> None:
        """`exchange` becomes the one being answered."""
        self.exchange = exchange
        begin_exchange(self.state, exchange)
        if exchange.refusal is not None:
            status, text = exchange.refusal
            self.answer(exchange, status, text)
            return
        request = exchange.request
        if exchange.request_complete or (
            request.framing == "length" and request.length > self.limits.request_buffer
        ):
            self._dispatch(exchange)
            return
        # read the body first (dispatched at its end, or once it outgrows the buffer)
        self._arm("body", self.limits.body_idle_timeout)
        self.send_continue(exchange)
        if exchange.body_size > self.limits.request_buffer:
            self._dispatch(exchange)

    def _dispatch(self, exchange: Exchange) -> None:
        exchange.dispatched = True
        if not exchange.request_complete:
            exchange.streaming = True
            self._arm("body", self.limits.body_idle_timeout)
        else:
            self._timer_kind = "none"
        handler = dispatch(self, exchange)
        if handler is not None and exchange is self.exchange:
            self.handler = handler

    def _next(self) -> None:
        """Answer the next queued request (the client takes its answers)."""
        exchange = self._queue.popleft()
        if not self._queue:
            self._unblock(BLOCK_PIPELINE)
        if self._backlog is not None and not self._backlog_scheduled:
            # not now: this may run inside a parser callback, and llhttp is not re-entrant
            self._backlog_scheduled = True
            self.loop.call_soon(self._feed_backlog)
        self._start(exchange)
        if exchange.after_head is not None and exchange is self.exchange and self.handler:
            # an Upgrade that waited its turn: what followed its head is the new protocol's
            self._splice(self.handler, exchange.after_head)

    def send_continue(self, exchange: Exchange) -> None:
        """`100 Continue` for a client that waits for it before sending its body."""
        if exchange.expect_continue and exchange.http11 and not exchange.request_complete:
            exchange.expect_continue = False
            self.write(_CONTINUE)

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.phase != "closed":
            self.transport.write(data)

    def answer(self, exchange: Exchange, status: int, text: str) -> None:
        """A short answer of the proxy's own: an error with its reason, on its own line."""
        exchange.status = status
        close = self.must_close(exchange) or status in _CLOSING
        data = text_response(
            status,
            REASONS.get(status, b"Error"),
            text + "\n",
            close=close,
            head_only=exchange.is_head,
            fields=((b"Allow", _ALLOWED),) if status == 405 else (),
        )
        exchange.bytes_sent = 0 if exchange.is_head else len(text.encode("utf-8")) + 1
        self.write(data)
        self.done(exchange, keep_alive=not close)

    def must_close(self, exchange: Exchange) -> bool:
        """The answer to `exchange` ends the connection (it says `Connection: close`): the client
        asked, or it is the last one to answer."""
        return not exchange.keep_alive or (self.phase == "last" and not self._queue)

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
        if not keep_alive or self.phase == "closed":
            self.close()
        elif self._queue:
            if self.writable:
                self._next()
            # else: resume_writing starts it
        elif self.reading == "stopped" or self.phase == "last":
            self.close()  # nothing more will be read
        else:
            self._unblock(BLOCK_PIPELINE)
            self._arm("idle", self.limits.keepalive_timeout)

    def close(self) -> None:
        self.phase = "closed"
        self._release_timers()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection: a response that cannot be completed must not look complete."""
        self.phase = "closed"
        self._release_timers()
        if self.transport is not None:
            self.transport.abort()

    def go_away(self) -> None:
        """Shutdown: close when idle, after the current answer otherwise."""
        if self.phase == "spliced":
            if self.handler is not None:
                self.handler.going_away()
            return
        if self.phase != "open":
            return
        self.phase = "last"
        self._stop()  # no new request; those read are answered
        if self.exchange is None and not self._queue:
            self.close()

    # -- upgrades and refusals

    def _after_upgrade_head(self, rest: bytes) -> None:
        """llhttp read an Upgrade (or CONNECT) head and nothing after it: what follows is the
        new protocol's, or, for an Upgrade this proxy does not relay (h2c), the next request."""
        exchange = self._last_exchange()
        if exchange is None or self.phase == "closed":
            return
        if exchange.refusal is not None or exchange.route != "upgrade":
            if exchange.refusal is None and rest:
                self.data_received(rest)  # h2c: the connection stays HTTP/1.1
            elif exchange.refusal is not None:
                self._stop()  # its answer closes the connection
            return
        self._stop()
        if exchange is self.exchange and self.handler is not None:
            # the rest belongs to the new protocol, once the upstream agrees to switch
            self._splice(self.handler, rest)
        else:
            exchange.after_head = rest  # spliced when its turn comes (`_next`)

    def _splice(self, handler: Handler, rest: bytes) -> None:
        """From now on the client's bytes are the new protocol's: all go to `handler`."""
        self.phase = "spliced"
        self._unblock(BLOCK_STOPPED)
        if rest:
            handler.request_body(rest)

    def _last_exchange(self) -> Exchange | None:
        """The exchange of the head llhttp read last."""
        if self._queue:
            return self._queue[-1]
        return self.exchange

    def _stop(self) -> None:
        """Read nothing more from this client (its bytes are not HTTP/1.1 any longer)."""
        self.reading = "stopped"
        self._block(BLOCK_STOPPED)

    def _limit_hit(self, limit: LimitName) -> None:
        self.state.metrics.observe_limit_hit(limit)

    def _refuse_http2(self) -> None:
        """HTTP/2 with prior knowledge: say what to speak instead, in HTTP/1.1, and close."""
        log_event("http2_refused", level=logging.WARNING, client=self.peer, detail=HTTP2_REFUSAL)
        self.write(
            text_response(505, REASONS[505], HTTP2_REFUSAL + "\n", close=True, head_only=False)
        )
        self.close()

    def _parse_failed(self, exc: httptools.HttpParserError) -> None:
        """llhttp stopped: the requests read before are answered, this one is refused (or the
        connection cut, if its answer has started), and nothing more is read."""
        self._stop()
        refused, self._refused = self._refused, None
        if refused is not None and refused[0] != 400:
            self._limit_hit("max_head_bytes")
        status, text = refused or (400, f"malformed request: {exc}")
        exchange = self._parsing
        if exchange is None:  # the head broke: no exchange was built
            exchange = self._unfinished_exchange()
            exchange.refusal = (status, text)
            if self.exchange is None and not self._queue:
                self._start(exchange)
            else:
                self._queue.append(exchange)  # answered in turn, then the connection closes
            return
        self._parsing = None
        exchange.error = f"malformed request body: {text}"
        if exchange is not self.exchange:  # queued: refused in turn
            exchange.refusal = (status, text)
            return
        handler = self.handler
        if not exchange.dispatched or (handler is not None and handler.request_broken()):
            self.handler = None
            self.answer(exchange, status, text)  # nothing was answered yet
        elif handler is not None:
            exchange.aborted = True
            self.abort()  # the answer has started: it must not look complete
        else:
            self.close()

    # -- flow control

    def _block(self, reason: int) -> None:
        if not self._blocks and self.transport is not None:
            self.transport.pause_reading()
        self._blocks |= reason

    def _unblock(self, reason: int) -> None:
        if not self._blocks & reason:
            return
        self._blocks &= ~reason
        if not self._blocks and self.transport is not None and self.phase != "closed":
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

    def _release_timers(self) -> None:
        """Closed: the timers go now, with their hold on this connection (a closed connection
        must not wait in the loop's timer heap for its keep-alive time)."""
        self._timer_kind = "none"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._cancel_send_timer()

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _expire(self) -> None:
        self._timer = None
        kind = self._timer_kind
        if kind == "none" or self.phase == "closed":
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

    def _send_timed_out(self) -> None:
        """The client left its answer unread for limits.send_timeout: cut it (nginx's
        send_timeout); its upstream connection is freed with it."""
        self._send_timer = None
        if self.phase == "closed" or self.writable:
            return  # it read meanwhile: the next pause arms the timer again
        deadline = self._paused_at + self.limits.send_timeout
        if self.loop.time() < deadline:  # paused again since: wait for that pause's end
            self._send_timer = self.loop.call_at(deadline, self._send_timed_out)
            return
        self._limit_hit("send_timeout")
        exchange = self.exchange
        if exchange is not None:
            exchange.error = f"the client read nothing for {self.limits.send_timeout:g}s"
            exchange.aborted = True
        self.abort()

    def _unfinished_exchange(self) -> Exchange:
        """An exchange for a request refused before one was built (a parse error, the head
        timeout): logged and counted, never proxied."""
        facts = RequestFields(self._fields, True, False, False)
        exchange = Exchange(
            _method_of(self.parser),
            self._url,
            self._url.decode("latin-1"),
            True,
            facts,
            False,
            self.state.runtime,
            self.peer,
            self.scheme,
        )
        exchange.request_complete = True
        return exchange

    def _head_timed_out(self) -> None:
        self._limit_hit("head_timeout")
        limit = self.limits.head_timeout
        self._stop()
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
        self._stop()
        if exchange is None:
            self.close()
            return
        exchange.error = text
        if handler is not None and not handler.request_broken():
            exchange.aborted = True  # the answer has started: it must not look complete
            self.abort()
            return
        self.handler = None
        self.answer(exchange, 408, text)


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing a request over a limit."""


def _method_of(parser: httptools.HttpRequestParser) -> str:
    try:
        return parser.get_method().decode("ascii", "replace")
    except httptools.HttpParserError:
        return "-"
