"""A small cache of rewritten discovery documents, fresh by the upstream's caching headers.

Pure: time is passed in as `now`, Unix seconds (`time.time()`: Expires and Date are dates). The
proxy serves a fresh entry without asking the upstream, and the last good entry (with an `Age`)
while the upstream is down or failing, so a portal restart does not break the homeserver's
discovery.

The shim is a shared cache (RFC 9111) and follows its rules: the key is everything the answer
depends on (the public origin as computed, the target, and the request fields the upstream's
`Vary` names); an answer with `Set-Cookie`, `private`, `no-store`, `no-cache` or `Vary: *` is never
stored; `s-maxage` beats `max-age`; after `must-revalidate`, `proxy-revalidate` or `s-maxage` a
stale copy is never served, not even while the upstream is down.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final, final

from shim.http.headers import RawHeaders, text, values

#: How long a document counts as fresh when the upstream says nothing about it.
DEFAULT_LIFETIME: Final = 300.0
DEFAULT_MAX_ENTRIES: Final = 64

_DIRECTIVE: Final = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("[^"]*"|[^\s,]*))?\s*(?:,|$)'
)


_CACHE_CONTROL: Final = b"cache-control"
_AGE: Final = b"age"
_SET_COOKIE: Final = b"set-cookie"
_EXPIRES: Final = b"expires"
_DATE: Final = b"date"
_VARY: Final = b"vary"


def _field_values(headers: RawHeaders, name: bytes) -> list[str]:
    """Every line of a header field (`name` lower-cased), as text."""
    return [text(value) for value in values(headers, name)]


def cache_directives(headers: RawHeaders) -> dict[str, str | None]:
    """The Cache-Control directives, lower-cased names, unquoted values; the first one wins."""
    directives: dict[str, str | None] = {}
    for line in _field_values(headers, _CACHE_CONTROL):
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


def _first(headers: RawHeaders, name: bytes) -> str | None:
    values = _field_values(headers, name)
    return values[0] if values else None


def upstream_age(headers: RawHeaders) -> float:
    """The upstream's `Age` (seconds the response already spent in caches before us), else 0."""
    age = _first(headers, _AGE)
    return float(age.strip()) if age is not None and age.strip().isdigit() else 0.0


#: RFC 9111 5.2.2: directives after which a stale copy must not be served without revalidation
#: (the shim does not revalidate, so such a copy is never served once stale)
_NO_STALE: Final = ("must-revalidate", "proxy-revalidate", "s-maxage")


def refusal(headers: RawHeaders) -> str | None:
    """Why a shared cache must not store this response at all, or None when it may.

    `no-cache` is here too: it allows storing only to revalidate before every use, and the shim
    does not revalidate (it asks the upstream unconditionally), so a stored copy could never be
    used. A `Set-Cookie` is one user's; replaying it would hand their session to everyone.
    """
    directives = cache_directives(headers)
    for name in ("no-store", "private", "no-cache"):
        if name in directives:
            return f"Cache-Control: {name}"
    if _field_values(headers, _SET_COOKIE):
        return "Set-Cookie"
    if vary_names(headers) is None:
        return "Vary: *"
    return None


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """How a storable response may be reused: fresh for `lifetime` s, then stale-if-error?"""

    lifetime: float
    #: may it be served stale while the upstream is down or failing (RFC 9111 4.2.4)?
    stale_ok: bool


def storage_policy(
    headers: RawHeaders, now: float, default: float = DEFAULT_LIFETIME
) -> StoragePolicy | None:
    """The reuse rules for a response, or None when it must not be stored (see `refusal`)."""
    lifetime = freshness_lifetime(headers, now, default)
    if lifetime is None:
        return None
    stale_ok = not any(name in cache_directives(headers) for name in _NO_STALE)
    if lifetime <= 0 and not stale_ok:
        return None  # never fresh and never usable stale: nothing to keep it for
    return StoragePolicy(lifetime, stale_ok)


def freshness_lifetime(
    headers: RawHeaders, now: float, default: float = DEFAULT_LIFETIME
) -> float | None:
    """Seconds from `now` the response stays fresh; None when it must not be stored at all.

    0 means "store for use while the upstream is down, but never serve as fresh" (`max-age=0`,
    an Expires in the past). Explicit values are trusted as given, less the upstream's `Age`;
    only a response that says nothing gets `default`.
    """
    if refusal(headers) is not None:
        return None
    lifetime = _explicit_lifetime(headers, cache_directives(headers), now)
    if lifetime is None:
        return default
    return max(0.0, lifetime - upstream_age(headers))


def _explicit_lifetime(
    headers: RawHeaders, directives: Mapping[str, str | None], now: float
) -> float | None:
    for name in ("s-maxage", "max-age"):
        if name in directives:
            return _delta_seconds(directives[name])
    expires_value = _first(headers, _EXPIRES)
    if expires_value is None:
        return None
    expires = _http_date(expires_value)
    if expires is None:
        return 0.0  # RFC 9111 5.3: an invalid Expires (such as "0") means already expired
    date = _http_date(_first(headers, _DATE))
    return max(0.0, expires - (now if date is None else date))


def vary_names(headers: RawHeaders) -> tuple[str, ...] | None:
    """The request fields the response varies on, lower-cased and sorted; None for `Vary: *`."""
    names: set[str] = set()
    for line in _field_values(headers, _VARY):
        for name in line.split(","):
            name = name.strip().lower()
            if name == "*":
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


Variant = tuple[tuple[str, str | None], ...]


def variant(names: tuple[str, ...], request_fields: RawHeaders) -> Variant:
    """The request's values of the fields `names` (repeats joined, RFC 9111 4.1), None if absent."""
    if not names:  # the upstream varies on nothing: nothing to read (the usual case)
        return ()
    found: dict[str, list[str]] = {}
    for key, value in request_fields:
        if (low := text(key).lower()) in names:
            found.setdefault(low, []).append(" ".join(text(value).split()))
    return tuple((name, ", ".join(found[name]) if name in found else None) for name in names)


@final
class CacheKey:
    """What a discovery answer depends on besides the `Vary` fields.

    `origin` is the public origin *as finally computed* (after the trust decision on forwarding
    fields): the rewritten document embeds it, so two requests that would get different
    `account_management_uri`s never share an entry. `plain`: a target without a query, the
    document Synapse and clients actually fetch.

    Built and looked up on every discovery request, so a plain class (compiled, a C struct)
    whose hash is computed once, rather than a named tuple, whose constructor is Python.
    """

    __slots__ = ("_hash", "origin", "plain", "target")

    def __init__(self, origin: str, target: str) -> None:
        self.origin = origin
        self.target = target
        self.plain = "?" not in target
        self._hash = hash((origin, target))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CacheKey)
            and self.origin == other.origin
            and self.target == other.target
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"CacheKey({self.origin!r}, {self.target!r})"


@dataclass(frozen=True, slots=True)
class CachedDocument:
    """A rewritten document as it will be served, with when it was stored and until when fresh."""

    body: bytes
    #: the fields it is served with, as the portal sent them (bytes: one vocabulary)
    headers: tuple[tuple[bytes, bytes], ...]
    etag: str
    stored_at: float
    fresh_until: float
    #: the request field values this document was built for (the upstream's `Vary`)
    vary: Variant = ()
    #: may be served stale when the upstream is down (no must-revalidate, s-maxage, ...)
    stale_ok: bool = True

    def age(self, now: float) -> int:
        """Whole seconds since it was stored, for the `Age` header (never negative)."""
        return max(0, int(now - self.stored_at))

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until


class DiscoveryCache:
    """Rewritten documents by key and `Vary` variant, in two pools of `max_entries` each.

    Documents of plain targets (no query) live apart from the others, so any number of `?x=N`
    variants cannot evict the last good copy of the document clients fetch; within a pool the
    least recently used goes first. Each configuration (`proxy.runtime.Runtime`) has its own,
    so no document made under an older one is served after a reload.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._plain: OrderedDict[tuple[Hashable, Variant], CachedDocument] = OrderedDict()
        self._other: OrderedDict[tuple[Hashable, Variant], CachedDocument] = OrderedDict()
        #: the Vary field names of the latest document stored under each key
        self._vary: dict[Hashable, tuple[str, ...]] = {}

    def _pool(self, key: Hashable) -> OrderedDict[tuple[Hashable, Variant], CachedDocument]:
        return self._plain if isinstance(key, CacheKey) and key.plain else self._other

    def _get(self, key: Hashable, request_fields: RawHeaders) -> CachedDocument | None:
        names = self._vary.get(key)
        full = (key, variant(names, request_fields) if names else ())
        pool = self._plain if isinstance(key, CacheKey) and key.plain else self._other  # `_pool`
        doc = pool.get(full)
        if doc is not None:
            pool.move_to_end(full)
        return doc

    def fresh(
        self, key: Hashable, now: float, request_fields: RawHeaders = ()
    ) -> CachedDocument | None:
        """The document stored for this key and request if it is still fresh at `now`."""
        doc = self._get(key, request_fields)
        return doc if doc is not None and now < doc.fresh_until else None  # `is_fresh`, inline

    def last_good(self, key: Hashable, request_fields: RawHeaders = ()) -> CachedDocument | None:
        """The stored document, fresh or stale, if it may stand in for a failing upstream."""
        doc = self._get(key, request_fields)
        return doc if doc is not None and doc.stale_ok else None

    def store(self, key: Hashable, doc: CachedDocument) -> None:
        names = tuple(name for name, _ in doc.vary)
        pool = self._pool(key)
        if self._vary.get(key, names) != names:
            # the upstream now varies on other fields: the old variants are keyed wrongly
            for full in [full for full in pool if full[0] == key]:
                del pool[full]
        self._vary[key] = names
        full = (key, doc.vary)
        pool.pop(full, None)
        pool[full] = doc
        while len(pool) > self.max_entries:
            (old_key, _), _ = pool.popitem(last=False)
            if not any(k == old_key for k, _ in pool):
                self._vary.pop(old_key, None)

    def oldest_stored(self) -> float | None:
        """When the oldest document held was stored (`stored_at`), or None when none is."""
        return min(
            (doc.stored_at for pool in (self._plain, self._other) for doc in pool.values()),
            default=None,
        )

    def __len__(self) -> int:
        return len(self._plain) + len(self._other)
