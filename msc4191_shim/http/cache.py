"""A small cache of rewritten discovery documents, fresh by the upstream's caching headers.

Pure: time is passed in as `now`, Unix seconds (`time.time()`: Expires and Date are dates). The
proxy serves a fresh entry without asking the upstream, and the last good entry (with an `Age`)
while the upstream is down or failing, so a portal restart does not break the homeserver's
discovery. The shim acts as a shared cache (RFC 9111): `private` answers are not stored.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from aiohttp import hdrs

#: How long a document counts as fresh when the upstream says nothing about it.
DEFAULT_LIFETIME = 300.0
DEFAULT_MAX_ENTRIES = 64

_DIRECTIVE = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("[^"]*"|[^\s,]*))?\s*(?:,|$)')


def _field_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every line of a header field, case-insensitively (a plain dict or a multidict)."""
    wanted = name.lower()
    return [value for key, value in headers.items() if key.lower() == wanted]


def cache_directives(headers: Mapping[str, str]) -> dict[str, str | None]:
    """The Cache-Control directives, lower-cased names, unquoted values; the first one wins."""
    directives: dict[str, str | None] = {}
    for line in _field_values(headers, hdrs.CACHE_CONTROL):
        for match in _DIRECTIVE.finditer(line):
            name, value = match.group(1).lower(), match.group(2)
            if value is not None and value.startswith('"'):
                value = value[1:-1]
            directives.setdefault(name, value)
    return directives


def _delta_seconds(value: str | None) -> float:
    # RFC 9111 4.2.1: an invalid freshness value makes the response stale, never fresher.
    if value is None or not value.isdigit():
        return 0.0
    return float(value)


def _http_date(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _first(headers: Mapping[str, str], name: str) -> str | None:
    values = _field_values(headers, name)
    return values[0] if values else None


def upstream_age(headers: Mapping[str, str]) -> float:
    """The upstream's `Age` (seconds the response already spent in caches before us), else 0."""
    age = _first(headers, hdrs.AGE)
    return float(age.strip()) if age is not None and age.strip().isdigit() else 0.0


def freshness_lifetime(
    headers: Mapping[str, str], now: float, default: float = DEFAULT_LIFETIME
) -> float | None:
    """Seconds from `now` the response stays fresh; None when it must not be stored at all.

    0 means "store for use while the upstream is down, but never serve as fresh" (`no-cache`,
    `max-age=0`, an Expires in the past). Explicit values are trusted as given, less the
    upstream's `Age`; only a response that says nothing gets `default`.
    """
    directives = cache_directives(headers)
    if "no-store" in directives or "private" in directives:
        return None
    if any(value.strip() == "*" for value in _field_values(headers, hdrs.VARY)):
        return None  # varies on something the request does not show; never reusable
    if "no-cache" in directives:
        return 0.0
    lifetime = _explicit_lifetime(headers, directives, now)
    if lifetime is None:
        return default
    return max(0.0, lifetime - upstream_age(headers))


def _explicit_lifetime(
    headers: Mapping[str, str], directives: Mapping[str, str | None], now: float
) -> float | None:
    for name in ("s-maxage", "max-age"):
        if name in directives:
            return _delta_seconds(directives[name])
    expires_value = _first(headers, hdrs.EXPIRES)
    if expires_value is None:
        return None
    expires = _http_date(expires_value)
    if expires is None:
        return 0.0  # RFC 9111 5.3: an invalid Expires (such as "0") means already expired
    date = _http_date(_first(headers, hdrs.DATE))
    return max(0.0, expires - (now if date is None else date))


@dataclass(frozen=True, slots=True)
class CachedDocument:
    """A rewritten document as it will be served, with when it was stored and until when fresh."""

    body: bytes
    headers: tuple[tuple[str, str], ...]
    etag: str
    stored_at: float
    fresh_until: float

    def age(self, now: float) -> int:
        """Whole seconds since it was stored, for the `Age` header (never negative)."""
        return max(0, int(now - self.stored_at))

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until


class DiscoveryCache:
    """At most `max_entries` documents by the caller's key; the least recently stored goes first."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CachedDocument] = OrderedDict()

    def fresh(self, key: Hashable, now: float) -> CachedDocument | None:
        """The stored document if it is still fresh at `now`."""
        doc = self._entries.get(key)
        return doc if doc is not None and doc.is_fresh(now) else None

    def last_good(self, key: Hashable) -> CachedDocument | None:
        """The stored document, fresh or not: for when the upstream cannot give a new one."""
        return self._entries.get(key)

    def store(self, key: Hashable, doc: CachedDocument) -> None:
        self._entries.pop(key, None)
        self._entries[key] = doc
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
