"""Header fields as the proxy holds them, pure: bytes pairs from parser to policy to socket.

Names keep their case and repeats their order, values are never re-encoded; a name is compared
lower-cased. Text is made of a field only where a rule must read it (a Host, a Cache-Control
directive), and latin-1 round-trips every byte a parser gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

#: header fields as received or sent: (name, value), in order, repeats kept
Fields = list[tuple[bytes, bytes]]
RawHeaders = Sequence[tuple[bytes, bytes]]

#: RFC 9110 §7.6.1 hop-by-hop fields (lower-cased), plus the legacy ones proxies have always
#: dropped
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)


def tokens(values: Iterable[bytes]) -> frozenset[bytes]:
    """The comma-separated tokens of a list field's lines (`Connection`), lower-cased: the one
    scan for a request's and a response's Connection alike."""
    found = {t.strip(b" \t").lower() for value in values for t in value.split(b",")}
    found.discard(b"")
    return frozenset(found)


def values(fields: RawHeaders, name: bytes) -> list[bytes]:
    """Every line of the field `name` (lower-cased), in order."""
    return [value for field, value in fields if field.lower() == name]


def first_value(fields: RawHeaders, name: bytes) -> bytes | None:
    """The first `name` field's value (`name` lower-cased)."""
    for field, value in fields:
        if field.lower() == name:
            return value
    return None


def text(value: bytes) -> str:
    """A field value as text: latin-1, so every byte round-trips."""
    return value.decode("latin-1")


def _utf8_or_latin1(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_raw(raw: RawHeaders) -> list[tuple[str, str]]:
    """Header bytes as text, in order, repeats kept (UTF-8 where it is, else latin-1): for what
    is rendered as text, never for what is sent on."""
    try:  # almost always plain UTF-8 (ASCII): decode in one go, field by field only if not
        return [(name.decode(), value.decode()) for name, value in raw]
    except UnicodeDecodeError:
        return [(_utf8_or_latin1(name), _utf8_or_latin1(value)) for name, value in raw]


# obs-text (0x80-0xFF) and HTAB are allowed in a value (RFC 9110 5.5); any other control byte
# (NUL, CR, LF, ESC, DEL, ...) is not, and a proxy that relayed it would let the upstream
# inject a line into the client's view of the response.
_BAD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def invalid_response_head(reason: bytes, raw: RawHeaders) -> str | None:
    """Why an upstream response head cannot be relayed, or None; never quotes a value.

    The upstream's bytes may hold a session cookie: the reason names the field's position (and
    its name when it is a valid token), never what it holds.
    """
    if _BAD_VALUE.search(reason):
        return "its status line's reason phrase holds a control character"
    for number, (name, value) in enumerate(raw, start=1):
        if not _TOKEN.fullmatch(name):
            return f"header field #{number} has an invalid name"
        if _BAD_VALUE.search(value):
            return f"header field #{number} ({name.decode()}) holds a control character"
    return None
