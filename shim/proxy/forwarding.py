"""The forwarding decision of one exchange, and the lines the upstream gets for it.

The policy is `http.forwarding`'s (whom to believe, which fields to strip, what to append); this
module feeds it the exchange's facts once at the edge and renders its answer as header bytes.
The rendered lines for an untrusted peer depend only on the peer, the scheme and the Host, so
they are remembered for the last combination seen; whether a field name is a forwarding field
is remembered per name.
"""

from __future__ import annotations

from typing import Final

from shim.config.runtime import Runtime
from shim.http.forwarding import (
    Forwarding,
    ForwardingRefused,
    forwarding_fields,
    is_trusted,
    read_forwarding,
    strip_forwarding,
)
from shim.http.headers import decode_raw
from shim.proxy.h1 import Fields, field_lines

_MAX_NAMES: Final = 1024
_trusted_names: Final[dict[bytes, bool]] = {}
_untrusted_names: Final[dict[bytes, bool]] = {}
#: the lines for the last untrusted peer (one entry: clients repeat, and on a keep-alive
#: connection the peer is the same for every request)
_last_lines: Final[dict[tuple[str | None, str, str | None], bytes]] = {}


def read_exchange_forwarding(
    fields: Fields, *, peer: str | None, scheme: str, runtime: Runtime
) -> Forwarding:
    """What the request's forwarding fields are believed to say; ForwardingRefused if bad."""
    trusted = is_trusted(peer, runtime.config.trusted_proxies)
    return read_forwarding(decode_raw(fields), peer=peer, scheme=scheme, trusted=trusted)


def stripped(name: bytes, *, trusted: bool) -> bool:
    """The client's field `name` (lower-cased) is not copied upstream: the policy's
    `strip_forwarding`, asked once per name."""
    cache = _trusted_names if trusted else _untrusted_names
    known = cache.get(name)
    if known is None:
        known = not strip_forwarding([(name.decode("latin-1"), "")], trusted=trusted)
        if len(cache) < _MAX_NAMES:
            cache[name] = known
    return known


def forwarding_lines(forwarding: Forwarding) -> bytes:
    """The forwarding fields this hop appends, as header lines."""
    if not forwarding.trusted:
        key = (forwarding.peer, forwarding.scheme, forwarding.host)
        lines = _last_lines.get(key)
        if lines is None:
            lines = field_lines(forwarding_fields(forwarding))
            _last_lines.clear()
            _last_lines[key] = lines
        return lines
    return field_lines(forwarding_fields(forwarding))


__all__ = ["ForwardingRefused", "forwarding_lines", "read_exchange_forwarding", "stripped"]
