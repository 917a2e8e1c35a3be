"""Header preparation for both directions of the proxy: pure functions over header lists.

Order of work on a request (fixed, as Caddy documents its own): drop hop-by-hop fields, drop the
client's Host unless it is preserved, then set the X-Forwarded-* fields. Responses only lose their
hop-by-hop fields. Repeated fields stay separate and in order.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import hdrs
from multidict import CIMultiDict, istr

#: a trusted-proxy range, as the configuration parses it
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


RawHeaders = Sequence[tuple[bytes, bytes]]

#: RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies have always dropped.
HOP_BY_HOP: frozenset[istr] = frozenset(
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

X_FORWARDED_FOR = istr("X-Forwarded-For")
X_FORWARDED_PROTO = istr("X-Forwarded-Proto")
X_FORWARDED_HOST = istr("X-Forwarded-Host")
_FORWARDED_FIELDS = frozenset({X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST})

#: Fields the WebSocket client handshake generates itself; the client's own must not be copied.
WEBSOCKET_HANDSHAKE: frozenset[istr] = frozenset(
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


def is_trusted(peer: str | None, trusted: Sequence[IPNetwork]) -> bool:
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in network for network in trusted)


def set_forwarded(
    headers: CIMultiDict[str], *, peer: str | None, scheme: str, host: str | None, trusted: bool
) -> None:
    """Append the peer to X-Forwarded-For; believe the other two only from a trusted proxy."""
    previous_for = ", ".join(headers.getall(X_FORWARDED_FOR, [])) if trusted else ""
    proto = headers.get(X_FORWARDED_PROTO) if trusted else None
    fwd_host = headers.get(X_FORWARDED_HOST) if trusted else None
    for name in _FORWARDED_FIELDS:
        headers.popall(name, None)
    chain = [part for part in (previous_for, peer or "") if part]
    if chain:
        headers[X_FORWARDED_FOR] = ", ".join(chain)
    headers[X_FORWARDED_PROTO] = proto or scheme
    if fwd_host or host:
        headers[X_FORWARDED_HOST] = fwd_host or host or ""


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
) -> CIMultiDict[str]:
    """The client's fields as the upstream should see them."""
    fields = decode_raw(raw)
    lowered = [name.lower() for name, _ in fields]  # once, for every test below
    host = fields[lowered.index("host")][1] if "host" in lowered else None
    headers = _kept(fields, lowered, _request_dropped(drop, websocket, preserve_host))
    set_forwarded(
        headers,
        peer=peer,
        scheme=scheme,
        host=host,
        trusted=is_trusted(peer, trusted_proxies),
    )
    return headers


def client_response_headers(
    raw: RawHeaders, *, drop: frozenset[istr] = frozenset()
) -> CIMultiDict[str]:
    """The upstream's response fields as the client should see them."""
    return strip_hop_by_hop(decode_raw(raw), extra=drop)
