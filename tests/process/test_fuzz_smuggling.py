"""The differential fuzzer of issue 21: request streams through a real shim, judged by h11.

hypothesis writes request streams, valid, invalid and adversarial (framing fields with odd
spelling and repeats, Connection tokens, Upgrade, CONNECT/TRACE, trailers, pipelining, absolute
and escaping targets, Host variants, bodies that are themselves requests). One to three clients
send theirs at once through ONE long-lived shim process (`upstream.url` with a path prefix,
`upstream.max_connections: 1`, so every client shares the one portal connection) to a recording
portal (`tests/support/rawhttp.py`). The oracle is h11, a strict parser independent of llhttp:

- each client stream is read by h11 as a server would read it; every request h11 reads must be
  answered in order, either by the portal (whose echo names the request's X-Marker: it must be
  this request's) or by the shim itself with a refusal (4xx, or 501 for a transfer coding it
  does not implement), after which nothing more is answered or
  forwarded from that connection;
- what the portal received parses under h11 into exactly the forwarded requests: same method,
  the target under the prefix, the same end-to-end fields (hop-by-hop, forwarding and this hop's
  own fields aside), the same decoded body, no trailers, one Host; nothing else ever arrives;
- a request written plainly (`ordinary`) is never refused.

Where h11 and llhttp legitimately differ, the oracle says what it accepts:

1. h11 ends a connection after any HTTP/1.0 request; llhttp keeps one that says keep-alive. The
   generator only writes HTTP/1.0 as the last request of a stream.
2. Bytes h11 refuses (a missing Host, an unknown or repeated Transfer-Encoding, bad chunk
   syntax, ...) leave the stream undefined from there: the shim may refuse (4xx) or read on as
   llhttp does, but every answer it gives must still be this client's (a marker of this
   client), and everything it forwards must be well-framed (h11 reads the portal's bytes). The
   requests before that point are judged in full.
3. h11 reads `Transfer-Encoding: chunked` with tabs around the value as chunked, and both
   Content-Length and Transfer-Encoding as chunked; llhttp refuses both. A 4xx is accepted for
   any request that is not `ordinary`.
4. h11 reads an Upgrade (or CONNECT) request's body and, since the portal never switches, goes
   on reading HTTP/1.1. The shim must refuse an Upgrade with a body, and CONNECT (4xx); a
   bodiless Upgrade it forwards may end the connection once answered (a declined upgrade), so
   the requests after one are not required to be answered.
5. h11 strips spaces and tabs around field values and lower-cases names; fields are compared so.

A failure that depends on timing (how the clients' bytes interleave) may be reported by
hypothesis as Flaky: the stream it prints is still the evidence.

`make test` runs a short, derandomized budget; `make fuzz` a long random one
(FUZZ_EXAMPLES=20000). A failing stream is printed whole (bytes, as Python literals).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.support.loopback import shim_settings
from tests.support.rawhttp import (
    MARKER,
    RecordingUpstream,
    UpstreamRequest,
    client,
    parse_responses,
    read_until_closed,
)
from tests.support.shimchild import ShimChild, shim_child

PREFIX = "/prefix"
HOST_NAME = "portal.example"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
#: the long run (`make fuzz`) explores; the short one in `make test` repeats the same streams
LONG_RUN = "FUZZ_EXAMPLES" in os.environ

# -- what is compared ----------------------------------------------------------------------------

#: hop-by-hop (RFC 9110 7.6.1 and the legacy ones), framing, Expect (answered by the shim) and
#: Host (checked on its own): never compared as end-to-end fields
NOT_END_TO_END = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "content-length",
        "expect",
        "host",
    }
)
#: names a Connection token may not remove (issue 21: ignored, or the request refused)
PROTECTED = frozenset({"host", "content-length", "transfer-encoding"})
#: claims about the client that an untrusted client's request never carries upstream (the shim
#: writes its own X-Forwarded-For/-Proto/-Host); compared with `_` read as `-`
FORWARDING = frozenset(
    {
        "forwarded",
        "x-real-ip",
        "x-client-ip",
        "client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
        "x-original-forwarded-for",
        "x-original-host",
        "x-original-url",
        "x-rewrite-url",
        "x-host",
        "x-proxyuser-ip",
        "x-envoy-external-address",
    }
)


def is_forwarding(name: str) -> bool:
    name = name.replace("_", "-")
    return name.startswith("x-forwarded-") or name in FORWARDING


def end_to_end(headers: list[tuple[str, str]], named: frozenset[str]) -> list[tuple[str, str]]:
    return [
        (n, v)
        for n, v in headers
        if n not in NOT_END_TO_END and not is_forwarding(n) and n not in named
    ]


def connection_tokens(headers: list[tuple[str, str]]) -> frozenset[str]:
    return frozenset(
        t.strip().lower()
        for n, v in headers
        if n == "connection"
        for t in v.split(",")
        if t.strip()
    )


def is_refusal(status: int) -> bool:
    """A refusal of the proxy's own: 4xx, or 501 for a transfer coding it does not implement
    (RFC 9112 6.1 allows it; nginx answers so), or 505 for a version it does not speak."""
    return 400 <= status < 500 or status in (501, 505)


def origin_form(target: str) -> str:
    """What the portal is sent for a proxied target (absolute form: scheme and authority
    dropped), before the prefix."""
    if target.startswith("/"):
        return target
    rest = target.split("://", 1)[1]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[cut:]
    return path if path.startswith("/") else "/" + path


# -- the streams ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One request, before a marker and lengths make it bytes (`render`)."""

    method: str
    target: str
    host: str  # "normal", "port", "none", "empty", "double", "bad"
    framing: str
    payload: str  # "none", "bytes", "request"
    raw_payload: bytes
    connection: tuple[str, ...]
    upgrade: str | None
    extra: tuple[str, ...]
    trailers: tuple[str, ...]
    version: str = "HTTP/1.1"

    @property
    def ordinary(self) -> bool:
        """Written plainly: no proxy may refuse it."""
        return (
            self.method in ORDINARY_METHODS
            and self.target in ORDINARY_TARGETS
            and self.host in ("normal", "port")
            and self.framing in ORDINARY_FRAMINGS
            and set(self.connection) <= ORDINARY_TOKENS
            and self.upgrade is None
        )


ORDINARY_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
METHODS = (*ORDINARY_METHODS, "CONNECT", "TRACE")
ORDINARY_TARGETS = ("/p/a", "/p/b/c?q=1", "/p/x?a=%20b", f"http://{HOST_NAME}/p/abs?x=1", "/p//d")
TARGETS = (*ORDINARY_TARGETS, "/../x", "//../x", "/p/..;/..;/x", "*", "/%5c..%5cx")
ORDINARY_FRAMINGS = ("none", "cl", "cl-case", "cl-spaces", "cl-short", "cl-long", "chunked")
FRAMINGS = (
    *ORDINARY_FRAMINGS,
    "cl-zero-padded",
    "cl-dup-same",
    "cl-dup-differ",
    "cl-list",
    "te-case",
    "te-tab",
    "te-tabs",
    "te-xchunked",
    "te-gzip-last",
    "te-chunked-gzip",
    "te-identity",
    "te-dup",
    "cl-te",
    "te-cl",
    "chunk-bad-size",
    "chunk-no-crlf",
)
ORDINARY_TOKENS = frozenset({"keep-alive", "x-foo", "close"})
TOKENS = (
    "keep-alive",
    "x-foo",
    "close",
    "content-length",
    "transfer-encoding",
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "upgrade",
    "forwarded",
)
EXTRAS = (
    "X-Foo: bar",
    "Accept:   */*  ",
    "X-Forwarded-For: 6.6.6.6",
    "X_Forwarded_For: 6.6.6.6",
    "X-Real-IP: 6.6.6.6",
    "Forwarded: for=6.6.6.6",
    "Expect: 100-continue",
    "Cookie: c=1",
)
#: weighted towards the plain Host; see `render` for what each writes
HOSTS = ("normal",) * 6 + ("port", "none", "empty", "double", "bad")
UPGRADES = (None,) * 6 + ("websocket", "h2c")
TRAILERS = ("Host: evil.example", "Authorization: Bearer x", "X-Forwarded-For: 6.6.6.6", "X-T: 1")


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    framing = draw(st.sampled_from(FRAMINGS))
    payload = "none" if framing == "none" else draw(st.sampled_from(("bytes", "request")))
    chunked = framing in ("chunked", "te-case", "te-tab", "te-tabs", "cl-te", "te-cl")
    return Spec(
        method=draw(st.sampled_from(METHODS)),
        target=draw(st.sampled_from(TARGETS)),
        host=draw(st.sampled_from(HOSTS)),
        framing=framing,
        payload=payload,
        raw_payload=draw(st.binary(min_size=1, max_size=24)),
        connection=tuple(draw(st.lists(st.sampled_from(TOKENS), max_size=3, unique=True))),
        upgrade=draw(st.sampled_from(UPGRADES)),
        extra=tuple(draw(st.lists(st.sampled_from(EXTRAS), max_size=3, unique=True))),
        trailers=tuple(draw(st.lists(st.sampled_from(TRAILERS), max_size=2, unique=True)))
        if chunked
        else (),
    )


def _sentinel(http10: bool) -> Spec:
    """A plain GET that ends each stream, so that the shim closes the connection at once."""
    return Spec(
        "GET",
        "/p/end",
        "normal",
        "none",
        "none",
        b"",
        () if http10 else ("close",),
        None,
        (),
        (),
        "HTTP/1.0" if http10 else "HTTP/1.1",
    )


@st.composite
def client_streams(draw: st.DrawFn) -> list[Spec]:
    body = draw(st.lists(specs(), min_size=1, max_size=3))
    return [*body, _sentinel(draw(st.booleans()))]


scenarios = st.lists(client_streams(), min_size=1, max_size=3)


def _chunks(data: bytes, trailers: tuple[str, ...], *, bad: str | None = None) -> bytes:
    half = max(1, len(data) // 2)
    pieces = [p for p in (data[:half], data[half:]) if p]
    out = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces)
    if bad == "chunk-bad-size":
        out = b"zz\r\n" + out
    elif bad == "chunk-no-crlf":
        out = out.replace(b"\r\n", b"", 2)
    tail = b"".join(t.encode() + b"\r\n" for t in trailers)
    return out + b"0\r\n" + tail + b"\r\n"


def render(spec: Spec, marker: str, smuggled_marker: str) -> bytes:
    if spec.payload == "request":
        payload = (
            f"GET /p/smuggled HTTP/1.1\r\nHost: {HOST_NAME}\r\n{MARKER}: {smuggled_marker}\r\n\r\n"
        ).encode()
    else:
        payload = spec.raw_payload if spec.payload == "bytes" else b""
    n = len(payload)
    chunked_body = _chunks(payload, spec.trailers)
    framings: dict[str, tuple[list[str], bytes]] = {
        "none": ([], b""),
        "cl": ([f"Content-Length: {n}"], payload),
        "cl-case": ([f"content-LENGTH: {n}"], payload),
        "cl-spaces": ([f"Content-Length:   {n}  "], payload),
        "cl-short": ([f"Content-Length: {n // 2}"], payload),
        "cl-long": ([f"Content-Length: {n + 7}"], payload),
        "chunked": (["Transfer-Encoding: chunked"], chunked_body),
        "cl-zero-padded": ([f"Content-Length: 00{n}"], payload),
        "cl-dup-same": ([f"Content-Length: {n}", f"Content-Length: {n}"], payload),
        "cl-dup-differ": ([f"Content-Length: {n}", f"Content-Length: {n + 1}"], payload),
        "cl-list": ([f"Content-Length: {n}, {n}"], payload),
        "te-case": (["transfer-encoding: CHUNKED"], chunked_body),
        "te-tab": (["Transfer-Encoding: chunked\t"], chunked_body),
        "te-tabs": (["Transfer-Encoding:\tchunked\t"], chunked_body),
        "te-xchunked": (["Transfer-Encoding: xchunked"], chunked_body),
        "te-gzip-last": (["Transfer-Encoding: chunked, gzip"], chunked_body),
        "te-chunked-gzip": (["Transfer-Encoding: gzip, chunked"], chunked_body),
        "te-identity": (["Transfer-Encoding: identity"], payload),
        "te-dup": (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], chunked_body),
        "cl-te": ([f"Content-Length: {n}", "Transfer-Encoding: chunked"], chunked_body),
        "te-cl": (["Transfer-Encoding: chunked", f"Content-Length: {n}"], chunked_body),
        "chunk-bad-size": (
            ["Transfer-Encoding: chunked"],
            _chunks(payload, (), bad="chunk-bad-size"),
        ),
        "chunk-no-crlf": (
            ["Transfer-Encoding: chunked"],
            _chunks(payload, (), bad="chunk-no-crlf"),
        ),
    }
    framing_lines, body = framings[spec.framing]
    hosts = {
        "normal": [f"Host: {HOST_NAME}"],
        "port": [f"Host: {HOST_NAME}:8443"],
        "none": [],
        "empty": ["Host: "],
        "double": [f"Host: {HOST_NAME}", "Host: other.example"],
        "bad": ["Host: a/b"],
    }[spec.host]
    lines = [*hosts, f"{MARKER}: {marker}"]
    tokens = list(spec.connection)
    if spec.upgrade is not None:
        lines.append(f"Upgrade: {spec.upgrade}")
        tokens.append("Upgrade")
    if tokens:
        lines.append("Connection: " + ", ".join(tokens))
    lines.extend(spec.extra)
    lines.extend(framing_lines)
    head = f"{spec.method} {spec.target} {spec.version}\r\n" + "".join(f"{x}\r\n" for x in lines)
    return head.encode() + b"\r\n" + body


# -- h11's reading of a client stream ------------------------------------------------------------


@dataclass
class Sent:
    """A request as h11 reads it from the client's stream."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    ordinary: bool
    upgrade: bool

    @property
    def marker(self) -> str | None:
        return next((v for n, v in self.headers if n == MARKER.lower()), None)


@dataclass
class Reading:
    requests: list[Sent]
    #: "clean": every byte read; "close": h11 stops reading there (Connection: close,
    #: HTTP/1.0); "incomplete": a request was not finished; "error": h11 refused the bytes
    end: str
    detail: str = ""


def h11_reading(stream: bytes, ordinary_by_marker: dict[str, bool]) -> Reading:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(stream)
    requests: list[Sent] = []
    current: Sent | None = None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return Reading(requests, "error", str(exc))
        if event is h11.NEED_DATA:
            unfinished = current is not None or bool(conn.trailing_data[0])
            return Reading(requests, "incomplete" if unfinished else "clean")
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return Reading(requests, "close")
        if isinstance(event, h11.Request):
            headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers]
            current = Sent(
                event.method.decode("latin-1"),
                event.target.decode("latin-1"),
                headers,
                b"",
                False,
                any(n == "upgrade" for n, _ in headers) and "upgrade" in connection_tokens(headers),
            )
            current.ordinary = ordinary_by_marker.get(current.marker or "", False)
        elif isinstance(event, h11.Data) and current is not None:
            current.body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage) and current is not None:
            requests.append(current)
            current = None
            # the portal declines every switch: a final answer that switches nothing
            conn.send(h11.Response(status_code=404, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return Reading(requests, "close")
            conn.start_next_cycle()


# -- the shim under test -------------------------------------------------------------------------


class FuzzEdge:
    """One shim process and its recording portal, kept for the whole module (restarted only
    after a failing example, so that a desync cannot spill into the next one)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.portal: RecordingUpstream | None = None
        self.shim: ShimChild | None = None
        self._stack = contextlib.ExitStack()
        self.nonce = itertools.count()
        self.examples = 0
        #: the example at which the first failure of this run turned up (before shrinking)
        self.first_failure: int | None = None

    def start(self) -> None:
        self.portal = RecordingUpstream()
        settings = shim_settings(
            self.portal.url + PREFIX,
            upstream={"max_connections": 1, "read_timeout": "5s"},
            limits={
                "head_timeout": "600ms",
                "keepalive_timeout": "600ms",
                "body_idle_timeout": "600ms",
            },
        )
        self.shim = self._stack.enter_context(shim_child(settings, self.directory / "fuzz.yaml"))

    def stop(self) -> None:
        self._stack.close()
        self.shim = None
        if self.portal is not None:
            self.portal.close()
            self.portal = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def fuzz_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEdge]:
    edge = FuzzEdge(tmp_path_factory.mktemp("fuzz"))
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


# -- one example ---------------------------------------------------------------------------------


@dataclass
class ClientRun:
    cid: str
    stream: bytes
    reading: Reading
    reply: bytes = b""
    closed: bool = False
    problems: list[str] = field(default_factory=list)


def _send(port: int, run: ClientRun) -> None:
    with client(port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(run.stream)
        reply = read_until_closed(sock, 8.0)
    run.reply, run.closed = reply.data, reply.closed


def _judge_client(run: ClientRun, upstream_by_marker: dict[str, list[UpstreamRequest]]) -> set[str]:
    """The problems of one client's answers; returns the markers it accounts for upstream."""
    problems = run.problems
    own = f"{run.cid}-"
    accounted: set[str] = set()
    if not run.closed:
        problems.append("the shim left the connection open (8 s)")
    parsed = parse_responses(run.reply, eof=run.closed)
    if parsed.error is not None:
        problems.append(f"the answer stream is not valid HTTP/1.1 for h11: {parsed.error}")
    expected = run.reading.requests
    refused = False  # the shim refused a request: nothing after it is answered or forwarded
    owed = len(expected)  # answers owed; fewer after a forwarded upgrade (difference 4)
    for index, response in enumerate(parsed.responses):
        echo = response.echo
        if refused:
            problems.append(f"answer {index} after a refusal: {response}")
            continue
        if index >= len(expected):
            if echo is None and is_refusal(response.status) and run.reading.end != "clean":
                refused = True  # the unfinished or unreadable request, refused
                continue
            if (
                run.reading.end == "error"
                and echo is not None
                and str(echo["marker"]).startswith(own)
            ):
                accounted.add(str(echo["marker"]))
                continue  # past what h11 could read (difference 2)
            problems.append(
                f"answer {index} ({response.status}, echo {echo}) to a request the client did "
                f"not send as h11 reads the stream (h11: {run.reading.end} {run.reading.detail})"
            )
            continue
        sent = expected[index]
        if echo is None:
            if is_refusal(response.status):
                if sent.ordinary:
                    problems.append(f"ordinary request {sent.marker} refused: {response}")
                if sent.marker in upstream_by_marker:
                    problems.append(f"refused request {sent.marker} reached the portal too")
                refused = True
                continue
            problems.append(f"request {sent.marker}: the shim answered {response.status}")
            continue
        if echo["marker"] != sent.marker:
            problems.append(
                f"answer {index} echoes {echo['marker']!r}, the request was {sent.marker!r}"
            )
            continue
        accounted.add(str(sent.marker))
        problems.extend(_compare(sent, upstream_by_marker.get(str(sent.marker), [])))
        if sent.upgrade:
            owed = min(owed, index + 1)  # difference 4
    answered = len(parsed.responses)
    if not refused and answered < owed:
        problems.append(
            f"{len(expected) - answered} request(s) h11 reads were never answered, from "
            f"{expected[answered].marker}"
        )
    return accounted


def _compare(sent: Sent, got: list[UpstreamRequest]) -> list[str]:
    if len(got) != 1:
        return [f"{sent.marker}: the portal got it {len(got)} times"]
    (upstream,) = got
    problems = []
    tag = sent.marker
    if upstream.method != sent.method:
        problems.append(f"{tag}: method {upstream.method!r}, sent {sent.method!r}")
    want_target = PREFIX + origin_form(sent.target)
    if upstream.target != want_target:
        problems.append(f"{tag}: target {upstream.target!r}, want {want_target!r}")
    named = connection_tokens(sent.headers) - PROTECTED
    want = end_to_end(sent.headers, frozenset(n for n in named if not is_forwarding(n)))
    have = end_to_end(upstream.headers, frozenset())
    if have != want:
        problems.append(f"{tag}: end-to-end fields {have}, sent {want}")
    hosts = upstream.getall("host")
    sent_hosts = [v for n, v in sent.headers if n == "host"]
    if len(hosts) != 1 or (sent_hosts and hosts[0] not in [*sent_hosts, HOST_NAME]):
        problems.append(f"{tag}: Host {hosts}, sent {sent_hosts}")
    if upstream.body != sent.body:
        problems.append(f"{tag}: body {upstream.body!r}, sent {sent.body!r}")
    if upstream.trailers:
        problems.append(f"{tag}: trailers reached the portal: {upstream.trailers}")
    return problems


def run_example(edge: FuzzEdge, scenario: list[list[Spec]]) -> None:
    assert edge.portal is not None
    assert edge.shim is not None
    nonce = next(edge.nonce)
    runs = []
    for c, specs_ in enumerate(scenario):
        cid = f"n{nonce}c{c}"
        ordinary: dict[str, bool] = {}
        parts = []
        for i, spec in enumerate(specs_):
            marker = f"{cid}-{i}"
            ordinary[marker] = spec.ordinary
            ordinary[f"{cid}-s{i}"] = False
            parts.append(render(spec, marker, f"{cid}-s{i}"))
        stream = b"".join(parts)
        runs.append(ClientRun(cid, stream, h11_reading(stream, ordinary)))
    portal = edge.portal
    before = {c.index: len(c.requests) for c in portal.connections}
    errors_before = {c.index for c in portal.connections if c.error}
    threads = [threading.Thread(target=_send, args=(edge.shim.port, run)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.05)  # a request forwarded but never answered is recorded a moment later
    new = [r for c in portal.connections for r in c.requests[before.get(c.index, 0) :]]
    by_marker: dict[str, list[UpstreamRequest]] = {}
    for forwarded in new:
        by_marker.setdefault(forwarded.marker or "", []).append(forwarded)
    mine = f"n{nonce}c"
    problems = [
        f"the portal got {m!r} only now, after that example had ended"
        for m in by_marker
        if m.startswith("n") and not m.startswith(mine)
    ]
    problems += [
        f"portal connection {c.index}: h11 refused what the shim sent: {c.error}; bytes "
        f"{bytes(c.raw[-600:])!r}"
        for c in portal.connections
        if c.error and c.index not in errors_before
    ]
    accounted: set[str] = set()
    for run in runs:
        accounted |= _judge_client(run, by_marker)
        problems.extend(f"client {run.cid}: {p}" for p in run.problems)
    for marker, forwarded_ in by_marker.items():
        if marker not in accounted:
            problems.append(
                f"the portal got request(s) no client was answered for: {marker!r} "
                f"x{len(forwarded_)} ({forwarded_[0].method} {forwarded_[0].target})"
            )
    if problems:
        for run in runs:
            note(f"client {run.cid} sent {run.stream!r}")
            note(f"  h11 reads {[r.marker for r in run.reading.requests]} then {run.reading.end}")
            note(f"  and got {run.reply!r}")
        raise AssertionError("\n".join(problems))


@pytest.mark.timeout(max(120, EXAMPLES))  # about 0.1 s an example; shrinking takes more
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=LONG_RUN,
)
@given(scenario=scenarios)
def test_the_portal_receives_exactly_what_h11_reads_from_each_client(
    fuzz_edge: FuzzEdge, scenario: list[list[Spec]]
) -> None:
    fuzz_edge.examples += 1
    try:
        run_example(fuzz_edge, scenario)
    except BaseException:
        if fuzz_edge.first_failure is None:
            fuzz_edge.first_failure = fuzz_edge.examples
        note(f"the first failure of this run was example {fuzz_edge.first_failure}")
        fuzz_edge.restart()  # a desynchronised pool must not spoil the next example
        raise
