"""One keep-alive connection to the upstream: writes request bytes, parses the answer's framing.

The answer goes to a `ResponseSink` (the exchange's handler) as it arrives: interim 1xx heads,
the final head with how its body ends, body pieces (chunked bodies decoded), the end with any
trailers, or a failure. `read_timeout` bounds every wait for the upstream's next byte, except
while reading is paused because the client is not taking the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Literal, Protocol, cast

from shim.http.headers import Fields, invalid_response_head
from shim.proxy.errors import (
    BadResponseError,
    ReadTimeoutError,
    UpstreamClosedError,
    UpstreamError,
)
from shim.proxy.framing import (
    BodyKind,
    ChunkedDecoder,
    FramingError,
    ResponseHead,
    body_kind,
    parse_response_head,
)

#: the longest response head accepted from the upstream (the client side's own limit, doubled)
MAX_RESPONSE_HEAD: Final = 65536

State = Literal["idle", "head", "length", "chunked", "close", "spliced", "closed"]


class ResponseSink(Protocol):
    def response_interim(self, head: ResponseHead) -> None: ...
    def response_head(self, head: ResponseHead, kind: BodyKind) -> None: ...
    def response_whole(self, head: ResponseHead, kind: BodyKind, body: bytes) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_end(self, trailers: Fields) -> None: ...
    def upstream_failed(self, exc: UpstreamError) -> None: ...
    def upstream_writable(self, writable: bool) -> None: ...
    def upstream_switched(self, head: ResponseHead, rest: bytes) -> None: ...
    def splice_data(self, data: bytes) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, on_closed: Callable[[UpstreamConnection], None], key: object) -> None:
        #: told when the connection closes (the pool forgets it)
        self.on_closed = on_closed
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.state: State = "idle"
        #: the upstream may take another request on this connection after the current one
        self.reusable = True
        self.uses = 0
        self.idle_since = 0.0
        self._method = b"GET"
        self._upgrade = False
        self._buf = b""
        self._got_bytes = False
        self._remaining = 0
        self._decoder: ChunkedDecoder | None = None
        self._read_timeout = 60.0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        state, self.state = self.state, "closed"
        self._stop_timer()
        self.on_closed(self)
        sink, self.sink = self.sink, None
        if sink is None or state == "idle":
            return
        if state == "close" or state == "spliced":
            sink.response_end([])
        else:
            sink.upstream_failed(UpstreamClosedError(before_any_byte=not self._got_bytes))

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_writable(False)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_writable(True)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == "length":  # the common case first
            self._last = self.loop.time()
            self._length_body(data)
        elif state == "head":
            self._last = self.loop.time()
            self._got_bytes = True
            self._head(data)
        elif state == "chunked":
            self._last = self.loop.time()
            self._chunked_body(data)
        elif state == "close" or state == "spliced":
            self._last = self.loop.time()
            assert self.sink is not None
            if state == "close":
                self.sink.response_body(data)
            else:
                self.sink.splice_data(data)
        else:  # bytes nobody asked for: this connection is out of step, never reuse it
            self.reusable = False
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost tells the sink

    # -- the exchange

    def start(
        self,
        data: bytes,
        sink: ResponseSink,
        *,
        method: bytes,
        read_timeout: float,
        upgrade: bool = False,
    ) -> None:
        """Send a request head (and any body bytes already in hand) and await the answer."""
        assert self.transport is not None
        self.sink = sink
        self.state = "head"
        self.uses += 1
        self._method = method
        self._upgrade = upgrade
        self._got_bytes = False
        self._buf = b""
        self._read_timeout = read_timeout
        self._last = self.loop.time()
        if self._timer is None:
            self._timer = self.loop.call_at(self._last + read_timeout, self._check_timeout)
        self.transport.write(data)

    def send(self, data: bytes) -> None:
        """More request body; the upstream's silence meanwhile is not its fault."""
        self._last = self.loop.time()
        if self.transport is not None:
            self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self._last = self.loop.time()
            self.transport.resume_reading()

    def is_usable(self) -> bool:
        return (
            self.state == "idle"
            and self.reusable
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def detach(self) -> None:
        """The exchange is over: no more callbacks to its sink (the timer lapses by itself)."""
        self.sink = None
        if self.state != "closed":
            self.state = "idle"
        if self._paused:
            self.resume_reading()

    def close(self) -> None:
        self.sink = None
        self.reusable = False
        self.state = "closed"
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.sink = None
        self.reusable = False
        self.state = "closed"
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    def write_raw(self, data: bytes) -> None:
        """Bytes of an upgraded connection, passed as they are."""
        if self.transport is not None:
            self.transport.write(data)

    # -- parsing

    def _head(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while True:
            try:
                parsed = parse_response_head(buf, MAX_RESPONSE_HEAD)
            except FramingError as exc:
                self._fail(BadResponseError(str(exc)))
                return
            if parsed is None:
                self._buf = buf
                return
            head, size = parsed
            if head.has_control_bytes:
                problem = invalid_response_head(head.reason, head.fields)
                if problem is not None:
                    self._fail(BadResponseError(problem))
                    return
            rest, self._buf = buf[size:], b""
            sink = self.sink
            assert sink is not None
            if head.status == 101:
                if not self._upgrade:
                    # a switch nobody asked for: what follows is no HTTP answer to this request
                    self._fail(BadResponseError("it switched protocols (101) unasked"))
                    return
                self.state = "spliced"
                self._stop_timer()
                sink.upstream_switched(head, rest)
                return
            if head.status < 200:
                sink.response_interim(head)
                buf = rest
                if not buf or self.sink is None:
                    return
                continue
            break
        kind = body_kind(head, self._method)
        if not head.reusable:
            self.reusable = False
        sink = self.sink
        if sink is None:
            return
        # the whole answer is here (the common case for small ones): one step, not three
        body_size = 0 if kind == "none" else head.length if kind == "length" else None
        if body_size is not None and len(rest) >= body_size:
            body = rest
            if len(rest) > body_size:
                self.reusable = False  # bytes after the answer: out of step
                body = rest[:body_size]
            self.state = "idle"
            sink.response_whole(head, kind, body)
            return
        self._start_body(sink, head, kind, rest)

    def _start_body(
        self, sink: ResponseSink, head: ResponseHead, kind: BodyKind, rest: bytes
    ) -> None:
        if kind == "length":
            assert head.length is not None
            self.state, self._remaining = "length", head.length
            sink.response_head(head, kind)
            if rest and self.state == "length" and self.sink is not None:
                self._length_body(rest)
        elif kind == "chunked":
            self.state, self._decoder = "chunked", ChunkedDecoder()
            sink.response_head(head, kind)
            if rest and self.state == "chunked" and self.sink is not None:
                self._chunked_body(rest)
        else:  # "close" ("none" and a length already in hand went by `response_whole`)
            self.state, self.reusable = "close", False
            sink.response_head(head, kind)
            if rest and self.state == "close" and self.sink is not None:
                self.sink.response_body(rest)

    def _length_body(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            return
        remaining = self._remaining
        size = len(data)
        if size < remaining:
            self._remaining = remaining - size
            sink.response_body(data)
            return
        if size > remaining:
            self.reusable = False
            data = data[:remaining]
        self._remaining = 0
        self.state = "idle"
        sink.response_body(data)
        self._end([])

    def _chunked_body(self, data: bytes) -> None:
        decoder = self._decoder
        assert decoder is not None
        try:
            pieces = decoder.feed(data)
        except FramingError as exc:
            self._fail(BadResponseError(str(exc)))
            return
        for piece in pieces:
            if self.sink is None:
                return
            self.sink.response_body(piece)
        if decoder.done:
            if decoder.rest:
                self.reusable = False
            self.state = "idle"
            self._end(decoder.trailers)

    def _end(self, trailers: Fields) -> None:
        sink = self.sink
        if sink is not None:
            sink.response_end(trailers)

    def _fail(self, exc: UpstreamError) -> None:
        sink = self.sink
        self.abort()
        if sink is not None:
            sink.upstream_failed(exc)

    # -- read timeout: one timer per period, re-armed lazily, not one per read

    def _check_timeout(self) -> None:
        # armed once and left running across exchanges: re-arming per request would cost a
        # timer handle each time; an idle connection lets it lapse
        self._timer = None
        if self.state not in ("head", "length", "chunked", "close"):
            return
        now = self.loop.time()
        if self._paused:
            self._last = now
        deadline = self._last + self._read_timeout
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._check_timeout)
            return
        self._fail(ReadTimeoutError(f"sent nothing for {self._read_timeout:g}s"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
