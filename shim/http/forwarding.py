"""Forwarding fields: whom to believe, what the upstream is told, and the public origin. Pure.

One decision per request, made once at the edge (`read_forwarding`) and carried on it:

1. From a peer outside `trusted_proxies`, *every* forwarding field the client wrote is ignored and
   removed (`Forwarded`, all `X-Forwarded-*`, `X-Real-IP`, `True-Client-IP`, ...): the upstream
   sees only what the shim itself sets, so no client can pose as a proxy.
2. From a trusted peer, `X-Forwarded-Proto`/`-Host` are believed, else the `Forwarded` element
   the peer added (RFC 7239). When a field holds a list (an appending proxy: `evil.example,
   account.example.com`), the **right-most** value wins: it is the one our trusted peer added;
   everything to its left came from hops we know nothing about. This is nginx realip's and
   Envoy's `xff_num_trusted_hops: 1` reading. `X-Forwarded-*` goes before `Forwarded` because it
   is what nginx, HAProxy, Envoy and cloud load balancers write; most of them pass a client's
   `Forwarded` through untouched.
3. A believed scheme must be `http` or `https`, and a host a plain `host[:port]`; anything else
   is refused (a 400 naming the field), never copied into a URL.

Fields are bytes pairs as the parser gave them (`shim.http.headers`); only the values a rule
reads are decoded (latin-1, so what is passed on round-trips byte for byte).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from shim.http.headers import RawHeaders, text, values

#: a trusted-proxy range, as the configuration parses it
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HOST: Final = b"host"
FORWARDED: Final = b"forwarded"
X_FORWARDED_FOR: Final = b"x-forwarded-for"
X_FORWARDED_PROTO: Final = b"x-forwarded-proto"
X_FORWARDED_HOST: Final = b"x-forwarded-host"

#: fields that claim something about the client or the original request, beside `X-Forwarded-*`
#: (the set nginx, HAProxy, Envoy, Cloudflare, Fastly, Akamai and IIS-era stacks write or read)
_FORWARDING_NAMES: Final = frozenset(
    {
        b"forwarded",
        b"x-real-ip",
        b"x-client-ip",
        b"client-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"fastly-client-ip",
        b"x-cluster-client-ip",
        b"x-original-forwarded-for",
        b"x-original-host",
        b"x-original-url",
        b"x-rewrite-url",
        b"x-host",
        b"x-proxyuser-ip",
        b"x-envoy-external-address",
    }
)
_X_FORWARDED_PREFIX: Final = b"x-forwarded-"
#: what the shim itself writes for a trusted peer; the peer's other forwarding fields pass
_REWRITTEN: Final = frozenset({FORWARDED, X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST})
SCHEMES: Final = ("http", "https")

# host[:port]: a DNS-style name, an IPv4 address or a bracketed IPv6 address (RFC 3986 3.2.2
# without percent-encoding and sub-delims, which no real host name needs and which would let a
# value smuggle `/`, `%0A` or `@` into a URL), then an optional port of at most 5 digits.
_HOST: Final = re.compile(
    r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[(?P<ipv6>[0-9A-Fa-f:.]{2,45})\])(?::(?P<port>\d{1,5}))?"
)


class ForwardingRefused(ValueError):  # noqa: N818  # a refusal, as codings.DecodeRefused
    """A forwarding or Host field that cannot form an origin; the request gets a 400."""


def is_forwarding_field(name: bytes) -> bool:
    """True for a field that claims who the client is or what it asked for, or a look-alike
    spelt with `_` (`X_Forwarded_For`): CGI and WSGI stacks read `-` and `_` as the same, so
    a look-alike would reach the application as the real field."""
    lowered = name.lower()
    if b"_" in lowered:
        lowered = lowered.replace(b"_", b"-")
    return lowered.startswith(_X_FORWARDED_PREFIX) or lowered in _FORWARDING_NAMES


def stripped(lowered: bytes, *, trusted: bool) -> bool:
    """The client's field (its name lower-cased) is not passed on: from an untrusted peer any
    forwarding field; from a trusted one those the shim rewrites; from anyone a look-alike
    spelt with `_` (a trusted proxy writes `-`)."""
    if not trusted:
        return is_forwarding_field(lowered)
    return lowered in _REWRITTEN or (b"_" in lowered and is_forwarding_field(lowered))


def is_trusted(peer: str | None, trusted: Sequence[IPNetwork]) -> bool:
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in network for network in trusted)


def valid_host(value: str) -> bool:
    """A plain `host[:port]` (see `_HOST`), port at most 65535."""
    match = _HOST.fullmatch(value)
    if match is None or int(match["port"] or 0) > 65535:
        return False
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Forwarding:
    """What the shim believes about one request, and the chain it passes on."""

    peer: str | None
    trusted: bool
    #: the scheme and Host this hop received
    received_scheme: str
    received_host: str | None
    #: the client's scheme and host as finally believed (after the trust decision)
    scheme: str
    host: str | None
    #: X-Forwarded-For entries and Forwarded elements a trusted peer sent, in order
    prior_for: tuple[str, ...] = ()
    prior_forwarded: tuple[str, ...] = ()


def _entries(fields: RawHeaders, name: bytes) -> list[str]:
    """Every comma-separated entry of every line of `name`, in order, blanks left out."""
    return [
        text(part.strip(b" \t"))
        for value in values(fields, name)
        for part in value.split(b",")
        if part.strip(b" \t")
    ]


def _received_host(fields: RawHeaders) -> str | None:
    hosts = [text(value.strip(b" \t")) for value in values(fields, HOST)]
    if len(hosts) > 1:
        raise ForwardingRefused(f"{len(hosts)} Host fields; send exactly one (RFC 9112 3.2)")
    if not hosts or not hosts[0]:
        return None
    if not valid_host(hosts[0]):
        raise ForwardingRefused(f"Host {hosts[0][:64]!r} is not a valid host[:port]")
    return hosts[0]


def read_forwarding(
    fields: RawHeaders, *, peer: str | None, scheme: str, trusted: bool
) -> Forwarding:
    """The request's believed origin and forwarding chain; ForwardingRefused for a bad value.

    `fields`: the request's end-to-end fields as received (hop-by-hop ones left out, forwarding
    ones kept: `RequestFields.end_to_end_received`); for an untrusted peer only the Host is read.
    """
    host = _received_host(fields)
    if not trusted:
        return Forwarding(peer, False, scheme, host, scheme, host)
    elements = tuple(_split_elements(fields))
    last = _parse_element(elements[-1]) if elements else {}
    proto = _right_most(fields, X_FORWARDED_PROTO) or _named(last, "proto")
    fwd_host = _right_most(fields, X_FORWARDED_HOST) or _named(last, "host")
    believed_scheme = _checked_scheme(proto) if proto is not None else scheme
    believed_host = _checked_host(fwd_host) if fwd_host is not None else host
    return Forwarding(
        peer,
        True,
        scheme,
        host,
        believed_scheme,
        believed_host,
        tuple(_entries(fields, X_FORWARDED_FOR)),
        elements,
    )


_SHOWN: Final = {X_FORWARDED_PROTO: "X-Forwarded-Proto", X_FORWARDED_HOST: "X-Forwarded-Host"}


def _right_most(fields: RawHeaders, name: bytes) -> tuple[str, str] | None:
    entries = _entries(fields, name)
    return (_SHOWN[name], entries[-1]) if entries else None


def _named(element: dict[str, str], key: str) -> tuple[str, str] | None:
    value = element.get(key)
    return (f"Forwarded {key}=", value) if value is not None else None


def _checked_scheme(named: tuple[str, str]) -> str:
    field, value = named
    if value.lower() not in SCHEMES:
        raise ForwardingRefused(
            f"{field} {value[:64]!r} from a trusted proxy: expected http or https"
        )
    return value.lower()


def _checked_host(named: tuple[str, str]) -> str:
    field, value = named
    if not valid_host(value):
        raise ForwardingRefused(
            f"{field} {value[:64]!r} from a trusted proxy is not a valid host[:port]"
        )
    return value


# -- RFC 7239 ----------------------------------------------------------------------------------

_PAIR: Final = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _split_elements(fields: RawHeaders) -> Iterable[str]:
    """Forwarded elements in order (a comma outside quotes separates them)."""
    for value in values(fields, FORWARDED):
        for element in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', text(value)):
            if element.strip():
                yield element.strip()


def _parse_element(element: str) -> dict[str, str]:
    """`for=...;proto=https;host=...` as lower-cased names and unquoted values."""
    pairs: dict[str, str] = {}
    for part in re.findall(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+', element):
        match = _PAIR.fullmatch(part)
        if match is None:
            continue
        value = match[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.setdefault(match[1].lower(), value)
    return pairs


def _quoted(value: str) -> str:
    return value if _TOKEN.fullmatch(value) else '"' + value.replace('"', '\\"') + '"'


def _node(peer: str) -> str:
    # RFC 7239 6: an IPv6 address is bracketed (and so quoted)
    return f"[{peer}]" if ":" in peer else peer


def own_forwarded_element(forwarding: Forwarding) -> str:
    """This hop's `Forwarded` element: the request it received, from whom."""
    parts = [f"for={_quoted(_node(forwarding.peer))}"] if forwarding.peer else []
    if forwarding.received_host:
        parts.append(f"host={_quoted(forwarding.received_host)}")
    parts.append(f"proto={forwarding.received_scheme}")
    return ";".join(parts)


# -- what the upstream is told ------------------------------------------------------------------


def forwarding_fields(forwarding: Forwarding) -> list[tuple[bytes, bytes]]:
    """The forwarding fields the shim sends upstream, appended after the client's own fields.

    X-Forwarded-For gains the peer; X-Forwarded-Proto/-Host say what the shim believed (the
    upstream sees the same origin the shim used); a trusted peer's Forwarded chain gains this
    hop's element.
    """
    chain = [*forwarding.prior_for, *([forwarding.peer] if forwarding.peer else [])]
    out: list[tuple[bytes, bytes]] = []
    if chain:
        out.append((b"X-Forwarded-For", ", ".join(chain).encode("latin-1")))
    out.append((b"X-Forwarded-Proto", forwarding.scheme.encode("latin-1")))
    if forwarding.host:
        out.append((b"X-Forwarded-Host", forwarding.host.encode("latin-1")))
    if forwarding.prior_forwarded:
        elements = [*forwarding.prior_forwarded, own_forwarded_element(forwarding)]
        out.append((b"Forwarded", ", ".join(elements).encode("latin-1", "replace")))
    return out


def forwarding_lines(forwarding: Forwarding) -> bytes:
    """`forwarding_fields` as header lines."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in forwarding_fields(forwarding))


def public_origin(forwarding: Forwarding, *, public_url_origin: str | None, fallback: str) -> str:
    """`public_url`'s origin if set, else the believed scheme://host, else `fallback`."""
    if public_url_origin is not None:
        return public_url_origin
    if forwarding.host:
        return f"{forwarding.scheme}://{forwarding.host}"
    return fallback
