"""Header preparation for both directions of the proxy: pure functions over header lists.

Order of work on a request (fixed, as Caddy documents its own): drop hop-by-hop fields, drop the
client's Host unless it is preserved, drop the forwarding fields the shim does not believe, then
append its own (`shim.http.forwarding` decides which). Responses only lose their
hop-by-hop fields. Repeated fields stay separate and in order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Final

from aiohttp import hdrs
from multidict import CIMultiDict, istr

from shim.http.forwarding import (
    X_FORWARDED_FOR,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    Forwarding,
    ForwardingRefused,
    IPNetwork,
    forwarding_fields,
    is_trusted,
    read_forwarding,
    strip_forwarding,
)

__all__ = [
    "HOP_BY_HOP",
    "X_FORWARDED_FOR",
    "X_FORWARDED_HOST",
    "X_FORWARDED_PROTO",
    "IPNetwork",
    "client_response_headers",
    "connection_tokens",
    "decode_raw",
    "is_trusted",
    "request_forwarding",
    "set_forwarded",
    "strip_hop_by_hop",
    "upstream_request_headers",
]


RawHeaders = Sequence[tuple[bytes, bytes]]

#: RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies have always dropped.
HOP_BY_HOP: Final[frozenset[istr]] = frozenset(
    {
        hdrs.CONNECTION,
        hdrs.KEEP_ALIVE,
        istr("Proxy-Connection"),
        hdrs.TE,
        hdrs.TRAILER,
        hdrs.TRANSFER_ENCODING,
        hdrs.UPGRADE,
        hdrs.PROXY_AUTHORIZATION,
        hdrs.PROXY_AUTHENTICATE,
    }
)

#: Fields the WebSocket client handshake generates itself; the client's own must not be copied.
WEBSOCKET_HANDSHAKE: Final[frozenset[istr]] = frozenset(
    {
        hdrs.SEC_WEBSOCKET_KEY,
        hdrs.SEC_WEBSOCKET_VERSION,
        hdrs.SEC_WEBSOCKET_EXTENSIONS,
        hdrs.SEC_WEBSOCKET_PROTOCOL,
        hdrs.SEC_WEBSOCKET_ACCEPT,
    }
)


def _text(value: bytes) -> str:
    # aiohttp writes header text back as UTF-8, so UTF-8 round-trips byte for byte; other bytes
    # (obsolete latin-1 text) are kept as latin-1 rather than refused.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_raw(raw: RawHeaders) -> list[tuple[str, str]]:
    """Header bytes as text, in order, repeats kept."""
    try:  # almost always plain UTF-8 (ASCII): decode in one go, field by field only if not
        return [(name.decode(), value.decode()) for name, value in raw]
    except UnicodeDecodeError:
        return [(_text(name), _text(value)) for name, value in raw]


def connection_tokens(fields: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The field names a `Connection` header lists, lower-cased: hop-by-hop for this one hop."""
    return _listed_tokens(value for name, value in fields if name.lower() == "connection")


def _listed_tokens(values: Iterable[str]) -> frozenset[str]:
    """The comma-separated tokens in `values`, lower-cased."""
    tokens: set[str] = set()
    for value in values:
        for token in value.split(","):
            if token := token.strip():
                tokens.add(token.lower())
    return frozenset(tokens)


def _lower(names: Iterable[str]) -> frozenset[str]:
    # istr compares case-sensitively in sets; field names are compared lower-cased here
    return frozenset(name.lower() for name in names)


@functools.lru_cache(maxsize=64)
def _dropped(extra: frozenset[istr]) -> frozenset[str]:
    """Hop-by-hop plus `extra`, lower-cased; callers pass a few constant sets, so it is cached."""
    return _lower(HOP_BY_HOP | extra)


def _kept(
    fields: list[tuple[str, str]], lowered: list[str], drop: frozenset[str]
) -> CIMultiDict[str]:
    """The fields whose lower-cased name (`lowered`, in step with `fields`) is not dropped."""
    if "connection" in lowered:
        listed = [
            value for (_, value), low in zip(fields, lowered, strict=True) if low == "connection"
        ]
        drop = drop | _listed_tokens(listed)
    return CIMultiDict(
        [field for field, low in zip(fields, lowered, strict=True) if low not in drop]
    )


def strip_hop_by_hop(
    fields: Iterable[tuple[str, str]], *, extra: frozenset[istr] = frozenset()
) -> CIMultiDict[str]:
    fields = list(fields)
    return _kept(fields, [name.lower() for name, _ in fields], _dropped(extra))


def set_forwarded(
    headers: CIMultiDict[str], *, peer: str | None, scheme: str, host: str | None, trusted: bool
) -> None:
    """Replace the forwarding fields in `headers` by those the shim sends (`forwarding_fields`).

    For callers that hold only the forwarding fields and the Host. A value a trusted proxy sent
    that cannot form an origin is not believed here; `read_forwarding` refuses it instead.
    """
    fields = [*headers.items(), *([(hdrs.HOST, host)] if host else [])]
    try:
        forwarding = read_forwarding(fields, peer=peer, scheme=scheme, trusted=trusted)
    except ForwardingRefused:
        forwarding = Forwarding(peer, False, scheme, host, scheme, host)
    kept = strip_forwarding(headers.items(), trusted=False)
    headers.clear()
    headers.extend(kept)
    headers.extend(forwarding_fields(forwarding))


@functools.lru_cache(maxsize=64)
def _request_dropped(drop: frozenset[istr], websocket: bool, preserve_host: bool) -> frozenset[str]:
    extra = drop | (WEBSOCKET_HANDSHAKE if websocket else frozenset())
    if not preserve_host:
        extra |= {hdrs.HOST}
    return _dropped(extra)


def upstream_request_headers(
    raw: RawHeaders,
    *,
    peer: str | None,
    scheme: str,
    trusted_proxies: Sequence[IPNetwork],
    preserve_host: bool,
    websocket: bool = False,
    drop: frozenset[istr] = frozenset(),
    forwarding: Forwarding | None = None,
) -> CIMultiDict[str]:
    """The client's fields as the upstream should see them.

    `forwarding` is the request's trust decision, when the caller already made it at the edge;
    else it is made here (and ForwardingRefused raised for a value that cannot be believed).
    """
    fields = decode_raw(raw)
    if forwarding is None:
        forwarding = request_forwarding(
            fields, peer=peer, scheme=scheme, trusted_proxies=trusted_proxies
        )
    fields = strip_forwarding(fields, trusted=forwarding.trusted)
    lowered = [name.lower() for name, _ in fields]  # once, for every test below
    headers = _kept(fields, lowered, _request_dropped(drop, websocket, preserve_host))
    headers.extend(forwarding_fields(forwarding))
    return headers


def request_forwarding(
    fields: Sequence[tuple[str, str]],
    *,
    peer: str | None,
    scheme: str,
    trusted_proxies: Sequence[IPNetwork],
) -> Forwarding:
    """The trust decision for a request's decoded fields, after hop-by-hop fields are dropped.

    A field the client's `Connection` names was meant for this hop only, so it is not believed
    either. Raises ForwardingRefused for a Host or believed value that cannot form an origin.
    """
    trusted = is_trusted(peer, trusted_proxies)
    end_to_end = list(strip_hop_by_hop(fields).items())
    return read_forwarding(end_to_end, peer=peer, scheme=scheme, trusted=trusted)


def client_response_headers(
    raw: RawHeaders, *, drop: frozenset[istr] = frozenset()
) -> CIMultiDict[str]:
    """The upstream's response fields as the client should see them."""
    return strip_hop_by_hop(decode_raw(raw), extra=drop)


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
