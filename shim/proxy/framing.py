"""HTTP/1.1 response framing, pure: the upstream's head parsed, how its body ends, chunk coding.

The upstream side is parsed here rather than by llhttp because llhttp (through httptools) cannot
be told that a response answers a HEAD request; and a proxy must decide, from the head alone,
how a body ends (RFC 9112 §6.3): none (HEAD, 1xx, 204, 304), by Content-Length, chunked, or at
the close of the connection. Every function works on bytes and holds no socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from shim.http.headers import tokens as listed_tokens
from shim.memo import Memo

BodyKind = Literal["none", "length", "chunked", "close"]

CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"
#: the longest chunk-size line (size, extensions) a chunked body may carry
MAX_CHUNK_LINE: Final = 4096
#: trailer fields of a chunked body, all together
MAX_TRAILER_BYTES: Final = 16384
#: the bytes of an RFC 9110 token
TOKEN_BYTES: Final = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_FRAMING_NAMES: Final = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_BODILESS_STATUS: Final = frozenset({204, 304})
_NOT_CONTROL: Final = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b < 0x7F or b >= 0x80)
LAST_CHUNK: Final = b"0\r\n\r\n"
DATE: Final = b"date"
LOCATION: Final = b"location"


class FramingError(ValueError):
    """The upstream's bytes are not an HTTP/1.1 message this proxy can relay faithfully."""


class ResponseHead:
    """A status line and fields as received (names keep their case, repeats their order).

    A well-formed head (the common case) is read in a few C-speed passes over its bytes: its
    framing fields found with one regex, the fields the client gets (`kept`) cut out of the
    received bytes, and `fields` split out only if somebody asks for them.
    """

    __slots__ = (
        "_block",
        "_fields",
        "_lines",
        "_lowered",
        "chunked",
        "close_delimited",
        "connection_tokens",
        "has_control_bytes",
        "has_date",
        "has_location",
        "kept",
        "length",
        "reason",
        "reusable",
        "status",
        "version",
    )

    def __init__(self, version: bytes, status: int, reason: bytes, block: bytes = b"") -> None:
        self.version = version
        self.status = status
        self.reason = reason
        #: Content-Length when the body is framed by it
        self.length: int | None = None
        self.chunked = False
        #: Transfer-Encoding other than chunked: the body ends at close (RFC 9112 §6.3 item 4)
        self.close_delimited = False
        #: the upstream lets the connection be reused after this response
        self.reusable = True
        self.connection_tokens: frozenset[bytes] = frozenset()
        self.has_control_bytes = False
        self.has_date = False
        self.has_location = False
        #: the field lines the client gets as received (each with its CRLF): hop-by-hop fields
        #: and a Content-Length the framing made meaningless cut out; None when the general
        #: path (`h1.client_response_head`) must work them out field by field
        self.kept: bytes | None = None
        #: the field lines as received, each after a CRLF (split into `fields` on demand)
        self._block = block
        self._fields: list[tuple[bytes, bytes]] | None = None
        self._lowered: list[bytes] = []
        self._lines: list[bytes] = []

    @property
    def fields(self) -> list[tuple[bytes, bytes]]:
        if self._fields is None:
            self._split()
        assert self._fields is not None
        return self._fields

    @property
    def lowered(self) -> list[bytes]:
        """The field names lower-cased, in step with `fields`."""
        if self._fields is None:
            self._split()
        return self._lowered

    @property
    def lines(self) -> list[bytes]:
        """The field lines as received, in step with `fields`."""
        if self._fields is None:
            self._split()
        return self._lines

    def _split(self) -> None:
        # only heads the fast path accepted get here: every line is `token:value`
        lines = self._block.split(CRLF)[1:] if self._block else []
        fields = []
        lowered = []
        for line in lines:
            name, _, value = line.partition(b":")
            fields.append((name, value.strip(b" \t")))
            lowered.append(name.lower())
        self._fields, self._lowered, self._lines = fields, lowered, lines

    def __repr__(self) -> str:
        return f"ResponseHead({self.version!r}, {self.status}, {self.reason!r})"


#: a line of a head's field block that is not `token:value` (a field block starts with CRLF)
_UNUSUAL_LINE: Final = re.compile(rb"\r\n(?![-!#$%&'*+.^_`|~0-9A-Za-z]+:)")
_VERSIONS: Final = (b"HTTP/1.1", b"HTTP/1.0")
#: the fields (lower-cased) that decide how the body ends and what the client gets
_SPECIAL_FIELD: Final = re.compile(
    rb"\r\n(?=[cklptu])(content-length|transfer-encoding|connection|keep-alive|"
    rb"proxy-connection|te|trailer|upgrade|proxy-authorization|proxy-authenticate):[ \t]*([^\r]*)"
)
#: a line the client never gets as received, in any case, with the CRLF before it: a hop-by-hop
#: field, or the upstream's Content-Length (this hop writes its own, `h1.client_response_head`)
_HOP_BY_HOP_LINE: Final = re.compile(
    rb"\r\n(?=[cklptu])(?:connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|"
    rb"upgrade|proxy-authorization|proxy-authenticate|content-length):[^\r]*",
    re.IGNORECASE,
)
_PLAIN_TOKENS: Final = frozenset({b"keep-alive", b"close"})
_FRAMING_FIELDS: Final = frozenset({b"content-length", b"transfer-encoding"})


def parse_response_head(buf: bytes | bytearray, limit: int) -> tuple[ResponseHead, int] | None:
    """The head at the start of `buf` and its size with the blank line; None if incomplete.

    Raises FramingError for anything that is not a well-formed response head, or a head longer
    than `limit` bytes.
    """
    end = buf.find(_HEAD_END)
    if end < 0:
        if len(buf) > limit:
            raise FramingError(f"response head longer than {limit} bytes")
        return None
    if end > limit:
        raise FramingError(f"response head longer than {limit} bytes")
    block = buf[:end] if type(buf) is bytes else bytes(buf[:end])
    # an upstream answers the same resource with the same head but for its Date: such a head
    # is analysed once (static assets, the bulk of a portal's requests by count)
    date = block.find(_DATE_LINE)
    key = b""
    if date >= 0 and len(block) <= _REPEAT_MAX_BYTES:
        date_end = block.find(CRLF, date + 2)
        if date_end < 0:
            date_end = len(block)
        key = block[: date + len(_DATE_LINE)] + block[date_end:]  # the Date value left out
        repeat = _repeats.get(key)
        if repeat is not None:
            date_line = block[date + 2 : date_end]
            if _plain_date_line(date_line):
                return repeat.again(block, date_line), end + 4
    has_control_bytes = block.translate(None, _NOT_CONTROL) != CRLF * block.count(CRLF)
    head = None if has_control_bytes else _simple_head(block)
    if head is None:
        head = _general_head(block)
        head.has_control_bytes = has_control_bytes
    elif key and _SET_COOKIE not in key.lower():  # a per-user head repeats for nobody else
        remembered = _Repeat.of(head, block, block[date + 2 : date_end])
        if remembered is not None:
            _repeats.put(key, remembered)
    return head, end + 4


_DATE_LINE: Final = b"\r\nDate: "
_SET_COOKIE: Final = b"\r\nset-cookie:"
#: how many heads are remembered, and the longest one that is
_REPEATS: Final = 256
_REPEAT_MAX_BYTES: Final = 2048


class _Repeat:
    """A head read by the fast path, less its Date value: what a repeat of it says."""

    __slots__ = ("after", "before", "head", "status_line_size")

    def __init__(
        self, head: ResponseHead, before: bytes, after: bytes, status_line_size: int
    ) -> None:
        self.head = head
        self.before = before
        self.after = after
        self.status_line_size = status_line_size

    @classmethod
    def of(cls, head: ResponseHead, block: bytes, date_line: bytes) -> _Repeat | None:
        """`head` (read from `block`), its kept lines split around `date_line` (`Date: ...`),
        if it is among them."""
        kept = head.kept
        if kept is None:
            return None
        at = (CRLF + kept).find(CRLF + date_line + CRLF)
        if at < 0:
            return None
        return cls(head, kept[:at], kept[at + len(date_line) + 2 :], block.find(CRLF))

    def again(self, block: bytes, date_line: bytes) -> ResponseHead:
        """The head for `block`, which differs from the remembered one only in its Date line
        (`date_line`, `Date: ...`): the status line is the same, so is where it ends."""
        template = self.head
        eol = self.status_line_size
        head = ResponseHead(template.version, template.status, template.reason, block[eol:])
        head.length = template.length
        head.chunked = template.chunked
        head.close_delimited = template.close_delimited
        head.reusable = template.reusable
        head.connection_tokens = template.connection_tokens
        head.has_date = True
        head.has_location = template.has_location
        head.kept = self.before + date_line + CRLF + self.after
        return head


_repeats: Final[Memo[bytes, _Repeat]] = Memo(_REPEATS)
#: the last Date line found free of control bytes: it changes once a second, so the check runs
#: once a second, not once a response
_plain_dates: Final[Memo[bytes, bool]] = Memo(1)


def _plain_date_line(date_line: bytes) -> bool:
    """`date_line` has no control byte, so a repeat may take it as it is."""
    if _plain_dates.get(date_line):
        return True
    if date_line.translate(None, _NOT_CONTROL):
        return False
    return _plain_dates.put(date_line, True)


@dataclass(frozen=True, slots=True)
class _Framing:
    """What a head's framing and hop-by-hop fields say (see `_read_framing`)."""

    length: int | None
    chunked: bool
    close_delimited: bool
    reusable: bool
    connection_tokens: frozenset[bytes]
    #: a hop-by-hop field is there, to be cut out for the client
    hop_by_hop: bool


#: the framing of the (version, framing fields) combinations seen lately: an upstream answers
#: with a handful of them, and working one out costs more than looking it up
#: (a framing the fast path cannot take is remembered as False)
_framings: Final[Memo[tuple[bytes, tuple[tuple[bytes, bytes], ...]], _Framing | bool]] = Memo(256)


def _simple_head(block: bytes) -> ResponseHead | None:
    """The head read in C-speed passes; None when it needs the general path (a malformed line,
    a Connection field naming other fields, a Content-Length beside a Transfer-Encoding)."""
    # no control bytes but CRLFs (the caller checked): the status line, then `token:value`s
    eol = block.find(CRLF)
    status_line, lines = (block, b"") if eol < 0 else (block[:eol], block[eol:])
    version, code, sep = status_line[:8], status_line[9:12], status_line[12:13]
    if (
        version not in _VERSIONS
        or status_line[8:9] != b" "
        or not code.isdigit()
        or len(code) != 3
        or not b"100" <= code <= b"599"
        or (sep and sep != b" ")
        or (lines and _UNUSUAL_LINE.search(lines) is not None)
    ):
        return None
    low = lines.lower()
    key = (version, tuple(_SPECIAL_FIELD.findall(low)))
    framing = _framings.get(key)
    if framing is None:
        framing = _framings.put(key, _framing_of(version, key[1]) or False)
    if not isinstance(framing, _Framing):
        return None
    head = ResponseHead(version, int(code), status_line[13:], lines)
    head.length = framing.length
    head.chunked = framing.chunked
    head.close_delimited = framing.close_delimited
    head.reusable = framing.reusable
    head.connection_tokens = framing.connection_tokens
    head.has_date = b"\r\ndate:" in low
    head.has_location = b"\r\nlocation:" in low
    if framing.hop_by_hop:
        lines = _HOP_BY_HOP_LINE.sub(b"", lines)
    head.kept = lines[2:] + CRLF if lines else b""
    return head


def _framing_of(version: bytes, specials: tuple[tuple[bytes, bytes], ...]) -> _Framing | None:
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    connection: list[bytes] = []
    hop_by_hop = False
    for name, value in specials:
        hop_by_hop = True
        if name == b"content-length":
            lengths.update(v.strip(b" \t") for v in value.split(b","))
        elif name == b"connection":
            connection.append(value)
        elif name == b"transfer-encoding":
            codings.extend(c.strip(b" \t") for c in value.split(b","))
    tokens = listed_tokens(connection)
    if len(lengths) > 1 or (lengths and codings) or not tokens <= _PLAIN_TOKENS:
        return None  # the general path says what is wrong, drops the length or the fields
    head = ResponseHead(version, 200, b"")
    try:
        _read_framing(head, lengths, [c for c in codings if c], tokens)
    except FramingError:
        return None  # the general path raises it with the same words
    return _Framing(
        head.length,
        head.chunked,
        head.close_delimited,
        head.reusable,
        head.connection_tokens,
        hop_by_hop,
    )


def _general_head(block: bytes) -> ResponseHead:
    lines = block.split(CRLF)
    version, status, reason = _status_line(lines[0])
    head = ResponseHead(version, status, reason)
    _read_fields(head, lines)
    head._lines = lines[1:]
    head.has_date = DATE in head._lowered
    head.has_location = LOCATION in head._lowered
    return head


def _status_line(line: bytes) -> tuple[bytes, int, bytes]:
    version, _, rest = line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise FramingError("its status line is not HTTP/1.x")
    if not 100 <= int(code) <= 599:
        raise FramingError(f"its status code {code.decode()} is outside 100-599")
    return version, int(code), reason


def is_token(name: bytes) -> bool:
    """A non-empty RFC 9110 token (a field name), checked at C speed."""
    return bool(name) and not name.translate(None, TOKEN_BYTES)


def _read_fields(head: ResponseHead, lines: list[bytes]) -> None:
    """The fields, in one pass that also reads the framing (RFC 9112 §6.3) and Connection."""
    fields: list[tuple[bytes, bytes]] = []
    lowered: list[bytes] = []
    head._fields, head._lowered = fields, lowered
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    connection: list[bytes] = []
    for number, line in enumerate(lines[1:], start=1):
        name, sep, value = line.partition(b":")
        if not sep or not name:
            # never quote the line: the upstream's bytes may hold a session cookie
            raise FramingError(f"header field #{number} is malformed")
        value = value.strip(b" \t")
        low = name.lower()
        fields.append((name, value))
        lowered.append(low)
        if low in _FRAMING_NAMES:
            if low == b"content-length":
                lengths.update(v.strip() for v in value.split(b","))
            elif low == b"transfer-encoding":
                codings.extend(c.strip().lower() for c in value.split(b",") if c.strip())
            else:
                connection.append(value)
    # no obs-fold, no space before the colon, token names only: anything else could be read
    # differently by the client than by us (RFC 9112 §5.1, §5.2); checked for all names at once
    if b"".join(lowered).translate(None, TOKEN_BYTES):
        number = next(n for n, name in enumerate(lowered, start=1) if not is_token(name))
        raise FramingError(f"header field #{number} has an invalid name")
    _read_framing(head, lengths, codings, listed_tokens(connection))


def _read_framing(
    head: ResponseHead, lengths: set[bytes], codings: list[bytes], tokens: frozenset[bytes]
) -> None:
    """How the body ends (RFC 9112 §6.3) and whether the connection may be reused.

    A Connection token naming the framing fields is ignored (as on the request side): the body
    is framed by what the head says, and the client's framing is written by this hop."""
    head.connection_tokens = frozenset(tokens - _FRAMING_FIELDS)
    head.reusable = b"close" not in tokens and (
        head.version == b"HTTP/1.1" or b"keep-alive" in tokens
    )
    if codings:
        head.chunked = codings[-1] == b"chunked"
        head.close_delimited = not head.chunked
        if head.close_delimited:
            head.reusable = False
        return
    if lengths:
        (length,) = lengths if len(lengths) == 1 else (b"",)
        if not length.isdigit():
            raise FramingError("its Content-Length is invalid")
        head.length = int(length)


def body_kind(head: ResponseHead, request_method: bytes) -> BodyKind:
    """How the body of `head` ends, given the method of the request it answers."""
    if request_method == b"HEAD" or head.status < 200 or head.status in _BODILESS_STATUS:
        return "none"
    if head.chunked:
        return "chunked"
    if head.close_delimited:
        return "close"
    if head.length is not None:
        return "length" if head.length else "none"
    return "close"


ClientFraming = Literal["none", "length", "chunked", "close"]


def client_framing(kind: BodyKind, *, http11: bool) -> ClientFraming:
    """How the client gets a body that ends as `kind` upstream.

    A length stays a length. A body of unknown length is chunked for an HTTP/1.1 client and
    ends at close for an HTTP/1.0 one (which knows no chunked coding).
    """
    if kind in ("chunked", "close"):
        return "chunked" if http11 else "close"
    return kind


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body (never call with empty data: that ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def last_chunk(trailers: list[tuple[bytes, bytes]]) -> bytes:
    if not trailers:
        return LAST_CHUNK
    return b"0\r\n" + b"".join(n + b": " + v + CRLF for n, v in trailers) + CRLF


class ChunkedDecoder:
    """Turns a chunked body into its payload, piece by piece, with bounded state.

    `feed` returns the payload pieces found in `data`; once the last chunk and the trailer
    section have been read, `done` is True and `rest` holds any bytes after the body.
    """

    __slots__ = ("_line", "_remaining", "_state", "_trailer_size", "done", "rest", "trailers")

    def __init__(self) -> None:
        self._state: Literal["size", "data", "crlf", "trailer"] = "size"
        self._line = bytearray()
        self._remaining = 0
        self._trailer_size = 0
        self.done = False
        self.rest = b""
        self.trailers: list[tuple[bytes, bytes]] = []

    def feed(self, data: bytes) -> list[bytes]:
        pieces: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._state == "data":
                take = min(self._remaining, end - pos)
                pieces.append(data[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = "crlf"
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._grow(data[pos:])
                break
            self._grow(data[pos : newline + 1])
            pos = newline + 1
            line = bytes(self._line).rstrip(b"\r\n")
            self._line.clear()
            self._line_done(line)
        if self.done:
            self.rest = data[pos:]
        return pieces

    def _grow(self, piece: bytes) -> None:
        self._line += piece
        limit = MAX_TRAILER_BYTES if self._state == "trailer" else MAX_CHUNK_LINE
        if len(self._line) > limit:
            raise FramingError("chunk size line or trailer section too long")

    def _line_done(self, line: bytes) -> None:
        if self._state == "crlf":
            if line:
                raise FramingError("chunk data not followed by CRLF")
            self._state = "size"
        elif self._state == "size":
            size = line.split(b";", 1)[0].strip()
            if not size or not all(c in b"0123456789abcdefABCDEF" for c in size):
                raise FramingError("a chunk size is invalid")
            self._remaining = int(size, 16)
            self._state = "data" if self._remaining else "trailer"
        elif not line:
            self.done = True
        else:
            self._trailer_size += len(line)
            if self._trailer_size > MAX_TRAILER_BYTES:
                raise FramingError("trailer section too long")
            name, sep, value = line.partition(b":")
            if not sep or not is_token(name):
                raise FramingError("a trailer field is malformed")
            value = value.strip(b" \t")
            # relayed only what could stand in a head: a control byte (a bare CR, a NUL) could
            # be read as a line break by the client; such a trailer is left out
            if not value.translate(None, _NOT_CONTROL):
                self.trailers.append((name, value))
