"""One parsed request: what its fields say, and what this hop will send upstream. Pure.

Built once, when llhttp has read a request head, and read by every later step: the route, the
forwarding decision, the discovery cache key, the upstream head and how the body is framed all
come from this one description, so no step can act on a request other than the one sent.

- **Framing is this hop's.** The client's `Content-Length` and `Transfer-Encoding` are never
  copied: the body is described as llhttp will deliver it (none, a length, or chunked), and the
  upstream head gets the framing of the bytes that will really follow it.
- **A `Connection` token never removes** the request's Host, its framing or the forwarding fields
  this hop writes (`PROTECTED`): such a token is ignored, as if it had not been sent.
- **Refused before anything is sent:** an HTTP/1.1 request without one non-empty Host, a
  Transfer-Encoding other than `chunked`, and an Upgrade that carries a body (llhttp would skip
  that body and read it as the next request).
"""

from __future__ import annotations

from typing import Final, Literal

from shim.http.forwarding import stripped
from shim.http.headers import Fields
from shim.http.headers import tokens as listed_tokens
from shim.proxy.h1 import (
    CONNECTION,
    CONTENT_LENGTH,
    EXPECT,
    HOP_BY_HOP_NAMES,
    HOST,
    TRANSFER_ENCODING,
    UPGRADE,
)

BodyFraming = Literal["none", "length", "chunked"]

#: names a `Connection` token may not remove: the message's identity and framing, and the
#: forwarding fields this hop writes itself (a token naming one is ignored)
PROTECTED: Final = frozenset(
    {
        HOST,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
    }
)
#: never copied upstream: hop-by-hop fields, the client's framing (this hop frames the body
#: anew) and Expect (the proxy answers `100-continue` itself)
NOT_FORWARDED: Final = HOP_BY_HOP_NAMES | {EXPECT, CONTENT_LENGTH}
_USER_AGENT: Final = b"user-agent"
_READ: Final = frozenset(
    {HOST, CONNECTION, UPGRADE, EXPECT, CONTENT_LENGTH, TRANSFER_ENCODING, _USER_AGENT}
)
_CHUNKED: Final = b"chunked"


class RequestFields:
    """What a request's fields say, decided once (see the module's docstring).

    A pure function of (`received`, `http11`, `upgrade_flag`, `trusted`): a connection whose
    requests repeat their fields (most do) reuses the last one.
    """

    __slots__ = (
        "expect_continue",
        "fields",
        "framing",
        "host",
        "http11",
        "keep_alive",
        "length",
        "received",
        "refusal",
        "tokens",
        "trusted",
        "upgrade",
        "upgrade_flag",
        "user_agent",
    )

    def __init__(self, received: Fields, http11: bool, upgrade_flag: bool, trusted: bool) -> None:
        #: the fields as received: names, case, order and repeats
        self.received = received
        self.http11 = http11
        #: llhttp read the head as an Upgrade (Upgrade and `Connection: upgrade`, or CONNECT):
        #: it delivers no body after it, whatever the framing fields say
        self.upgrade_flag = upgrade_flag
        #: the peer is a trusted proxy (its forwarding fields are believed)
        self.trusted = trusted
        #: the end-to-end fields the upstream gets, in order: less hop-by-hop fields, the
        #: client's framing, the fields its Connection names and the forwarding fields the
        #: policy replaces; the Host stays where it stood
        self.fields: Fields = []
        #: the one Host value (None for an HTTP/1.0 request without one)
        self.host: bytes | None = None
        #: how llhttp delivers the body: none, `length` bytes, or chunked
        self.framing: BodyFraming = "none"
        self.length = 0
        #: the Connection tokens that apply (lower-cased), protected names left out
        self.tokens: frozenset[bytes] = frozenset()
        self.keep_alive = True
        self.expect_continue = False
        #: the protocol of an Upgrade the proxy splices (any but h2c), else None
        self.upgrade: bytes | None = None
        #: why the request is refused before anything is sent: (status, reason)
        self.refusal: tuple[int, str] | None = None
        #: the first end-to-end User-Agent (the client family and deep-link lines read it)
        self.user_agent: bytes | None = None

    def same(self, received: Fields, http11: bool, upgrade_flag: bool, trusted: bool) -> bool:
        """This description is the one `read_fields` would give for these arguments."""
        return (
            self.http11 is http11
            and self.upgrade_flag is upgrade_flag
            and self.trusted is trusted
            and self.received == received
        )

    def end_to_end_received(self) -> Fields:
        """The fields less hop-by-hop ones, forwarding fields included: what a trusted peer's
        forwarding fields are read from (a field its Connection names was for this hop only)."""
        dropped = NOT_FORWARDED | self.tokens
        return [(name, value) for name, value in self.received if name.lower() not in dropped]

    @property
    def has_body(self) -> bool:
        return self.framing == "chunked" or self.length > 0


def read_fields(
    received: Fields, *, http11: bool, upgrade_flag: bool, trusted: bool
) -> RequestFields:
    """The one description of a request's fields (see `RequestFields`)."""
    facts = RequestFields(received, http11, upgrade_flag, trusted)
    hosts: list[bytes] = []
    codings: list[bytes] = []
    lengths: list[bytes] = []
    connection: list[bytes] = []
    upgrade = expect = user_agent = None
    for name, value in received:
        low = name.lower()
        if low not in _READ:
            continue
        if low == HOST:
            hosts.append(value)
        elif low == CONNECTION:
            connection.append(value)
        elif low == TRANSFER_ENCODING:
            codings.append(value)
        elif low == CONTENT_LENGTH:
            lengths.append(value)
        elif low == UPGRADE:
            upgrade = value
        elif low == _USER_AGENT:
            if user_agent is None:
                user_agent = value
        else:
            expect = value
    tokens = listed_tokens(connection) - PROTECTED if connection else frozenset()
    facts.tokens = tokens
    facts.user_agent = None if _USER_AGENT in tokens else user_agent
    facts.keep_alive = b"close" not in tokens if http11 else b"keep-alive" in tokens
    facts.expect_continue = expect is not None and expect.strip(b" \t").lower() == b"100-continue"
    facts.refusal = _framing(facts, codings, lengths) or _host(facts, hosts)
    if upgrade_flag and facts.refusal is None:
        if facts.has_body:
            facts.refusal = (
                400,
                "an Upgrade request with a body is not relayed: send the body after the "
                "protocol switch, or the request without Upgrade",
            )
        elif upgrade is not None and _splices(upgrade):
            facts.upgrade = upgrade
    dropped = NOT_FORWARDED | tokens if tokens else NOT_FORWARDED
    trusted_peer = trusted
    facts.fields = [
        (name, value)
        for name, value in received
        if (low := name.lower()) not in dropped and not stripped(low, trusted=trusted_peer)
    ]
    return facts


def _framing(
    facts: RequestFields, codings: list[bytes], lengths: list[bytes]
) -> tuple[int, str] | None:
    """How the body ends, as llhttp reads it (which has refused conflicting fields already);
    a refusal for a coding llhttp would reject only after the head (`chunked\\t`, `xchunked`)."""
    if codings:
        value = codings[0].rstrip(b" ")  # llhttp allows trailing spaces, nothing else
        if len(codings) > 1 or value.lower() != _CHUNKED:
            shown = b", ".join(codings)[:40].decode("latin-1")
            return (
                400,
                f"Transfer-Encoding {shown!r} is not supported: send the body chunked "
                "(Transfer-Encoding: chunked) or with a Content-Length",
            )
        facts.framing = "chunked"
    elif lengths:
        value = lengths[0].strip(b" \t")
        if len(lengths) > 1 or not value.isdigit():
            return (400, "Content-Length is not one decimal number")
        facts.framing = "length"
        facts.length = int(value)
    return None


def _host(facts: RequestFields, hosts: list[bytes]) -> tuple[int, str] | None:
    if len(hosts) > 1:
        return (400, f"{len(hosts)} Host fields: send exactly one (RFC 9112 section 3.2)")
    host = hosts[0].strip(b" \t") if hosts else b""
    if host:
        facts.host = host
    elif facts.http11:
        return (
            400,
            "an HTTP/1.1 request needs one non-empty Host field (RFC 9112 section 3.2): "
            "send the portal's host name",
        )
    return None


def _splices(upgrade: bytes) -> bool:
    """An Upgrade the proxy splices: any protocol but h2c, which is HTTP/2 for this hop only
    (RFC 9113 section 3.1 removed it; nginx drops it too)."""
    protocols = {p.strip(b" \t").lower().split(b"/")[0] for p in upgrade.split(b",")}
    return bool(protocols - {b"h2c", b""})
