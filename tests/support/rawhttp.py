"""Raw HTTP/1.1 on both sides of the shim, read by h11: a strict parser independent of llhttp.

`RecordingUpstream` is a loopback portal in threads of its own: it keeps the exact bytes each
connection brought, reads them with h11 and answers every request it reads (by default with an
echo that names the request's `X-Marker`, so a client can tell whose answer it got). The client
side is plain blocking sockets: `send_raw` writes bytes and reads until the shim closes, and
`parse_responses` reads the answer stream with h11 as a client would.

Threads, not the test's event loop: a test may block on a socket while the upstream answers, and
the shim runs as a child process (`tests/support/shimchild.py`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import h11

HOST = "127.0.0.1"
#: the field a test request carries so that the upstream's answer says which request it answers
MARKER = "X-Marker"
#: the field of the upstream's echo that repeats it
ECHO = "X-Echo"
#: h11's default bound on a head (16 KiB) is below the shim's max_head_bytes (32 KiB)
_MAX_EVENT = 1024 * 1024


@dataclass
class UpstreamRequest:
    """One request as h11 read it on an upstream connection."""

    method: str
    target: str
    http_version: str
    #: (lower-cased name, value) in order, as h11 gives them
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    connection: int = 0

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.getall(name)
        return values[0] if values else None

    @property
    def marker(self) -> str | None:
        return self.get(MARKER)


@dataclass
class RawAnswer:
    """An answer written byte for byte (a misbehaving portal); `close` closes after it."""

    data: bytes
    close: bool = False
    #: before closing, go on reading (and recording) this long: a shim that wrongly reuses the
    #: connection meanwhile leaves its next request in `raw`
    linger: float = 0.0


#: what the upstream answers a complete request with; None: the default echo
Answer = Callable[[UpstreamRequest], RawAnswer | None]
#: called when a request's head arrives, before its body: a RawAnswer answers it at once
EarlyAnswer = Callable[[UpstreamRequest], RawAnswer | None]


@dataclass
class UpstreamConnection:
    """Everything one connection from the shim brought, and what h11 made of it."""

    index: int
    raw: bytearray = field(default_factory=bytearray)
    requests: list[UpstreamRequest] = field(default_factory=list)
    #: h11's complaint, if the bytes were not a valid request stream
    error: str | None = None
    #: the shim closed it (EOF) rather than the upstream
    closed: bool = False
    #: h11 had read part of a request (a head without its end) when the connection ended
    partial: bool = False


def echo_body(request: UpstreamRequest) -> bytes:
    return json.dumps(
        {
            "marker": request.marker,
            "method": request.method,
            "target": request.target,
            "connection": request.connection,
            "body_length": len(request.body),
        }
    ).encode()


class RecordingUpstream:
    """A portal on a loopback port that records every byte and answers with h11."""

    def __init__(
        self,
        answer: Answer | None = None,
        *,
        early: EarlyAnswer | None = None,
        delay: float = 0.0,
    ) -> None:
        self.answer = answer
        self.early = early
        self.delay = delay
        self.connections: list[UpstreamConnection] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._closing = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def requests(self) -> list[UpstreamRequest]:
        with self._lock:
            return [r for c in self.connections for r in c.requests]

    def raw(self) -> bytes:
        with self._lock:
            return b"".join(bytes(c.raw) for c in self.connections)

    def errors(self) -> list[str]:
        with self._lock:
            return [f"connection {c.index}: {c.error}" for c in self.connections if c.error]

    def wait_for(self, count: int, within: float = 5.0) -> list[UpstreamRequest]:
        """The requests once at least `count` have arrived (or all there are after `within`)."""
        deadline = time.monotonic() + within
        while len(self.requests()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests()

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                record = UpstreamConnection(len(self.connections))
                self.connections.append(record)
                self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock, record), daemon=True).start()

    def _serve(self, sock: socket.socket, record: UpstreamConnection) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_EVENT)
        current: UpstreamRequest | None = None
        answered_early = False
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    record.error = f"{exc} (h11) after {len(record.requests)} requests"
                    with contextlib.suppress(OSError):
                        sock.sendall(_plain(400, b"h11: " + str(exc).encode()))
                    return
                if event is h11.NEED_DATA:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    with self._lock:
                        record.raw += data
                    if not data:
                        record.closed = True
                        record.partial = current is not None
                    conn.receive_data(data)
                    continue
                if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                    # PAUSED: a CONNECT this portal answered 2xx switched protocols; the rest is
                    # not HTTP any more
                    return
                if isinstance(event, h11.Request):
                    current = UpstreamRequest(
                        event.method.decode("latin-1"),
                        event.target.decode("latin-1"),
                        event.http_version.decode("latin-1"),
                        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers],
                        connection=record.index,
                    )
                    answered_early = False
                    early = self.early(current) if self.early is not None else None
                    if early is not None:
                        answered_early = True
                        if not self._write(sock, conn, early, current):
                            return
                elif isinstance(event, h11.Data) and current is not None:
                    current.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    current.trailers = [
                        (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers
                    ]
                    with self._lock:
                        record.requests.append(current)
                    request, current = current, None
                    if not answered_early:
                        if self.delay:
                            time.sleep(self.delay)
                        custom = self.answer(request) if self.answer is not None else None
                        if not self._write(sock, conn, custom, request):
                            return
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                    elif conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                        return
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _write(
        self,
        sock: socket.socket,
        conn: h11.Connection,
        custom: RawAnswer | None,
        request: UpstreamRequest,
    ) -> bool:
        """Answer `request`; False when the connection is to close now."""
        try:
            if custom is None:
                body = echo_body(request)
                headers = [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    (ECHO, request.marker or "-"),
                ]
                data = conn.send(h11.Response(status_code=200, headers=headers))
                if request.method != "HEAD":
                    data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
                data += conn.send(h11.EndOfMessage()) or b""
                sock.sendall(data)
                return conn.our_state is not h11.MUST_CLOSE
            # h11 keeps our side's state: tell it of an empty answer, write the raw one instead
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            sock.sendall(custom.data)
            if custom.close and custom.linger:
                self._linger(sock, custom.linger, request.connection)
            return not custom.close
        except (OSError, h11.LocalProtocolError):
            return False

    def _linger(self, sock: socket.socket, seconds: float, index: int) -> None:
        record = self.connections[index]
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                record.closed = True
                return
            with self._lock:
                record.raw += data


def _plain(status: int, text: bytes) -> bytes:
    return b"HTTP/1.1 %d Refused\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%b" % (
        status,
        len(text),
        text,
    )


@contextlib.contextmanager
def recording_upstream(
    answer: Answer | None = None, *, early: EarlyAnswer | None = None, delay: float = 0.0
) -> Iterator[RecordingUpstream]:
    upstream = RecordingUpstream(answer, early=early, delay=delay)
    try:
        yield upstream
    finally:
        upstream.close()


# -- the client side -----------------------------------------------------------------------------


@dataclass
class Reply:
    """What a client read: every byte, and whether the shim closed (else the wait ran out)."""

    data: bytes
    closed: bool
    reset: bool = False


def read_until_closed(sock: socket.socket, within: float) -> Reply:
    data = bytearray()
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return Reply(bytes(data), closed=False)
        sock.settimeout(left)
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            return Reply(bytes(data), closed=False)
        except ConnectionResetError:
            return Reply(bytes(data), closed=True, reset=True)
        if not piece:
            return Reply(bytes(data), closed=True)
        data += piece


def client(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_raw(port: int, data: bytes, *, within: float = 5.0, shut_wr: bool = False) -> Reply:
    """Write `data` on a new connection and read until the shim closes it (or `within` s)."""
    with client(port) as sock:
        try:
            sock.sendall(data)
            if shut_wr:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_closed(sock, within)


@dataclass
class Response:
    """One response as h11 read it, interim answers left out."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    @property
    def echo(self) -> dict[str, object] | None:
        """The upstream's echo of the request this answers; None for the shim's own answer."""
        if self.get(ECHO) is None:
            return None
        parsed: dict[str, object] = json.loads(self.body)
        return parsed


@dataclass
class ParsedReplies:
    responses: list[Response]
    #: h11's complaint about the bytes after the last response it read (None: all read cleanly)
    error: str | None
    rest: bytes


def parse_responses(data: bytes, methods: Sequence[str] = (), *, eof: bool = True) -> ParsedReplies:
    """The response stream `data` as h11 reads it; `methods[i]` is the i-th request's method
    (GET when not given: it says whether a body may follow). `eof`: the stream ended there."""
    responses: list[Response] = []
    rest = data
    while rest:
        method = methods[len(responses)] if len(responses) < len(methods) else "GET"
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_EVENT)
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(rest)
        response: Response | None = None
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if not eof or conn.they_are_waiting_for_100_continue:
                        return ParsedReplies(responses, "incomplete response", rest)
                    conn.receive_data(b"")
                    continue
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    response = Response(
                        event.status_code,
                        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers],
                        b"",
                    )
                elif isinstance(event, h11.Data) and response is not None:
                    response.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage) and response is not None:
                    response.trailers = [
                        (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers
                    ]
                    responses.append(response)
                    rest = conn.trailing_data[0]
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return ParsedReplies(responses, "closed mid-response", rest)
        except h11.RemoteProtocolError as exc:
            return ParsedReplies(responses, f"{exc} (h11)", rest)
    return ParsedReplies(responses, None, b"")


def one_response(reply: Reply, method: str = "GET") -> Response:
    """The single response `reply` must hold, read by h11 (fails the test otherwise)."""
    parsed = parse_responses(reply.data, [method], eof=reply.closed)
    assert parsed.responses, f"no response h11 can read: {parsed.error}: {reply.data[:300]!r}"
    return parsed.responses[0]


# -- writing requests ----------------------------------------------------------------------------


def request(
    method: str,
    target: str,
    *lines: str,
    body: bytes = b"",
    host: str | None = "portal.example",
    version: str = "HTTP/1.1",
) -> bytes:
    """A request head written exactly as given (`lines` are whole field lines, odd spacing kept),
    then `body` as it is (already framed: see `chunked`)."""
    head = [f"{method} {target} {version}"]
    if host is not None:
        head.append(f"Host: {host}")
    head.extend(lines)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes, trailers: Sequence[str] = ()) -> bytes:
    """`pieces` as chunks, the last-chunk, then `trailers` (whole field lines)."""
    out = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces if piece)
    return out + b"0\r\n" + b"".join(t.encode("latin-1") + b"\r\n" for t in trailers) + b"\r\n"


#: a whole request in a body: read as a request of its own if the body's framing is lost
SMUGGLED = request("GET", "/smuggled", f"{MARKER}: smuggled")
