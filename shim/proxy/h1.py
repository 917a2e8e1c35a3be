"""HTTP/1.1 heads written by the proxy, pure: the upstream request head and the client's response.

Fields stay bytes from parser to socket: names keep their case, repeats their order, and values
are never re-encoded. What the upstream sees is prepared in one fixed order: hop-by-hop fields
(and those a Connection field names) are dropped, the Host is kept or replaced, the forwarding
fields are appended, then the framing this hop needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Final

from shim.http.headers import HOP_BY_HOP, Fields
from shim.memo import Memo
from shim.proxy.framing import ClientFraming, ResponseHead

HOST: Final = b"host"
CONNECTION: Final = b"connection"
UPGRADE: Final = b"upgrade"
EXPECT: Final = b"expect"
LOCATION: Final = b"location"
DATE: Final = b"date"
CONTENT_LENGTH: Final = b"content-length"
TRANSFER_ENCODING: Final = b"transfer-encoding"

#: hop-by-hop names, lower-cased bytes
HOP_BY_HOP_NAMES: Final = HOP_BY_HOP

_TARGET_BYTES: Final = bytes(range(0x21, 0x7F))


def valid_target(target: bytes) -> bool:
    """Visible ASCII only (RFC 9112 §3.2): raw bytes a client should have percent-encoded are
    refused with a 400 rather than passed on to be read differently upstream."""
    return bool(target) and not target.translate(None, _TARGET_BYTES)


def origin_form(target: str) -> str | None:
    """`/path?query` for an origin-form or absolute-form request target; None for any other.

    A client may send the absolute form (`http://host/path?q`, RFC 9112 §3.2.2) to any server;
    its scheme and authority are dropped and the rest is kept byte for byte. The asterisk form
    (`OPTIONS *`) and the authority form (CONNECT) are not proxied.
    """
    if target.startswith("/"):
        return target
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        return None
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path_qs = rest[cut:]
    return path_qs if path_qs.startswith("/") else "/" + path_qs


def request_line_version(chunk: bytes) -> bool | None:
    """True if the request line at the start of `chunk` says HTTP/1.1, False for HTTP/1.0;
    None when it cannot tell (no whole line yet, a blank line first, any other form).

    The parser would say the same (`get_http_version`), at the cost of building a string for
    every request; this reads the bytes it has just parsed: its request line ends at the first
    LF and, once it has been accepted, ends with the version.
    """
    end = chunk.find(b"\n")
    if end < 10:
        return None
    version = chunk[end - 10 : end]
    if version == b" HTTP/1.1\r":
        return True
    return False if version == b" HTTP/1.0\r" else None


def request_line(method: bytes, target: bytes) -> bytes:
    """The upstream request's first line (always HTTP/1.1: this hop's version)."""
    return b"%b %b HTTP/1.1\r\n" % (method, target)


def upstream_field_block(
    fields: Fields, *, host: bytes | None, forwarding: bytes, drop: frozenset[bytes] = frozenset()
) -> bytes:
    """The upstream head's field lines after its request line (`request_line`) and before this
    hop's framing: the request's end-to-end fields (`RequestFields.fields`: names, case, order
    and repeats as received) less `drop`, then the forwarding lines.

    `host`: None keeps the client's Host where it stood; else it replaces it, first.
    """
    parts = []
    if host is not None:
        parts.append(b"Host: " + host + b"\r\n")
        drop = drop | {HOST}
    if drop:
        for name, value in fields:
            if name.lower() not in drop:
                parts.append(name + b": " + value + b"\r\n")
    else:
        for name, value in fields:
            parts.append(name + b": " + value + b"\r\n")
    parts.append(forwarding)
    return b"".join(parts)


#: the current second's HTTP date (one entry)
_dates: Final[Memo[int, bytes]] = Memo(1)


def http_date() -> bytes:
    """The current time as an HTTP date, formatted once a second."""
    now = int(time.time())
    date = _dates.get(now)
    if date is None:
        date = _dates.put(now, formatdate(now, usegmt=True).encode("ascii"))
    return date


def response_head(
    status_line: bytes,
    lines: bytes = b"",
    *,
    date: bool = False,
    length: int | None = None,
    chunked: bool = False,
    connection: bytes = b"",
) -> bytes:
    """The one place a response head is written: the status line (with its CRLF), the field lines
    given (each with its CRLF), then this hop's own fields in a fixed order: a Date (when asked),
    the framing (`Content-Length: length`, or chunked), the Connection field; then the blank
    line. Relayed answers, interim ones and the proxy's own all come through here."""
    parts = [status_line, lines]
    if date:
        parts.append(b"Date: " + http_date() + b"\r\n")
    if length is not None:
        parts.append(b"Content-Length: " + str(length).encode("ascii") + b"\r\n")
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if connection:
        parts.append(b"Connection: " + connection + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def status_line(status: int, reason: bytes, *, http11: bool = True) -> bytes:
    """`HTTP/1.1 302 Found` and its CRLF; the common ones are written once, at import."""
    if http11:
        known = _STATUS_LINES.get(status)
        if known is not None and known[0] == reason:
            return known[1]
        return b"HTTP/1.1 %d %b\r\n" % (status, reason)
    return b"HTTP/1.0 %d %b\r\n" % (status, reason)


def simple_response(
    status: int,
    reason: bytes,
    fields: Iterable[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    close: bool,
    head_only: bool = False,
    framed: bool = True,
) -> bytes:
    """A whole response the proxy writes itself: its fields, then Date, Content-Length (unless
    not `framed`: a 304's would describe a body that is not sent) and Connection."""
    head = response_head(
        status_line(status, reason),
        b"".join([name + b": " + value + b"\r\n" for name, value in fields]),
        date=True,
        length=len(body) if framed else None,
        connection=b"close" if close else b"",
    )
    return head if head_only else head + body


def text_response(
    status: int,
    reason: bytes,
    text: str,
    *,
    close: bool,
    head_only: bool,
    fields: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A short text/plain answer (an error's reason), never cached."""
    return simple_response(
        status,
        reason,
        (
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Cache-Control", b"no-store"),
            *fields,
        ),
        text.encode("utf-8"),
        close=close,
        head_only=head_only,
    )


REASONS: Final = {
    302: b"Found",
    405: b"Method Not Allowed",
    304: b"Not Modified",
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    505: b"HTTP Version Not Supported",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    200: b"OK",
}
#: the status lines of the statuses the proxy answers itself, and the commonest relayed ones
_STATUS_LINES: Final = {
    status: (reason, b"HTTP/1.1 %d %b\r\n" % (status, reason))
    for status, reason in {
        **REASONS,
        201: b"Created",
        204: b"No Content",
        301: b"Moved Permanently",
        303: b"See Other",
        307: b"Temporary Redirect",
        401: b"Unauthorized",
        403: b"Forbidden",
        404: b"Not Found",
    }.items()
}


def client_response_head(
    head: ResponseHead,
    *,
    framing: ClientFraming,
    http11: bool,
    close: bool,
    rewrite_location: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """The upstream's status line and fields as the client gets them.

    Hop-by-hop fields and those the upstream's Connection names are dropped; a Date is added
    when missing (RFC 9110 §6.6.1). Framing is this hop's: the upstream's Content-Length is
    never copied, it is written from the length the head was read with (for a body framed by it,
    or an answer to HEAD and a 304, where it describes the representation); the connection's
    own fields come last.
    """
    kept = head.kept
    if kept is None or (rewrite_location is not None and head.has_location):
        kept = _kept_lines(head, rewrite_location)  # else: the fast path cut them out already
    length = head.length
    if framing != "length" and not (framing == "none" and head.status != 204):
        length = None
    return response_head(
        status_line(head.status, head.reason, http11=http11),
        kept,
        date=not head.has_date,
        length=length,
        chunked=framing == "chunked",
        connection=b"close" if close else b"" if http11 else b"keep-alive",
    )


#: never copied to the client: hop-by-hop fields, and the upstream's Content-Length (this hop
#: writes its own from the parsed length)
_RESPONSE_DROPPED: Final = HOP_BY_HOP_NAMES | {CONTENT_LENGTH}


def _kept_lines(head: ResponseHead, rewrite_location: Callable[[bytes], bytes] | None) -> bytes:
    """The field lines the client gets, worked out field by field."""
    dropped = _RESPONSE_DROPPED
    if head.connection_tokens:
        dropped = dropped | head.connection_tokens
    lowered = head.lowered
    # kept lines go out as received (their own spacing too); only a Location may be rewritten
    if rewrite_location is None or not head.has_location:
        kept = [line for line, low in zip(head.lines, lowered, strict=True) if low not in dropped]
    else:
        kept = [
            b"Location: " + rewrite_location(value) if low == LOCATION else line
            for line, low, (_, value) in zip(head.lines, lowered, head.fields, strict=True)
            if low not in dropped
        ]
    if not kept:
        return b""
    kept.append(b"")
    return b"\r\n".join(kept)


def interim_head(head: ResponseHead) -> bytes:
    """A 1xx answer relayed as received, less its hop-by-hop fields."""
    return response_head(
        status_line(head.status, head.reason),
        b"".join(
            [
                name + b": " + value + b"\r\n"
                for name, value in head.fields
                if name.lower() not in HOP_BY_HOP_NAMES
            ]
        ),
    )


def switching_head(head: ResponseHead) -> bytes:
    """A 101 answer: every field as received, Connection and Upgrade included (they switch
    this very connection)."""
    return response_head(
        status_line(101, head.reason),
        b"".join([name + b": " + value + b"\r\n" for name, value in head.fields]),
    )
