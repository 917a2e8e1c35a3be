"""The forwarding fields of one exchange, rendered as header lines.

The policy (whom to believe, what to append) is `http.headers.set_forwarded`'s; this only feeds
it the exchange's facts and writes its result as bytes. The lines for an untrusted peer depend
only on the peer, the scheme and the Host, so they are remembered for the last combination seen.
"""

from __future__ import annotations

from multidict import CIMultiDict

from msc4191_shim.http.headers import is_trusted, set_forwarded
from msc4191_shim.proxy.exchange import Exchange
from msc4191_shim.proxy.h1 import FORWARDING_NAMES, HOST, field_lines, first_value

_last: tuple[tuple[str | None, str, bytes | None], bytes] | None = None


def forwarding_lines(exchange: Exchange) -> bytes:
    global _last
    host = first_value(exchange.fields, HOST)
    trusted = is_trusted(exchange.peer, exchange.runtime.config.trusted_proxies)
    if not trusted:
        key = (exchange.peer, exchange.scheme, host)
        if _last is not None and _last[0] == key:
            return _last[1]
    incoming: CIMultiDict[str] = CIMultiDict()
    if trusted:
        incoming.extend(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in exchange.fields
            if name.lower() in FORWARDING_NAMES
        )
    set_forwarded(
        incoming,
        peer=exchange.peer,
        scheme=exchange.scheme,
        host=None if host is None else host.decode("latin-1"),
        trusted=trusted,
    )
    lines = field_lines(incoming.items())
    if not trusted:
        _last = ((exchange.peer, exchange.scheme, host), lines)
    return lines
