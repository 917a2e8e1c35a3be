"""Freshness from the upstream's caching headers, and the bounded last-good cache."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.http.cache import (
    CachedDocument,
    CacheKey,
    DiscoveryCache,
    StoragePolicy,
    Variant,
    cache_directives,
    freshness_lifetime,
    refusal,
    storage_policy,
    upstream_age,
    variant,
    vary_names,
)


def raw(headers: dict[str, str] | list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Fields as the parser gives them: bytes pairs, in order."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(name.encode(), value.encode("latin-1")) for name, value in pairs]


NOW = 1_700_000_000.0


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


LIFETIME_CASES = [
    pytest.param({}, 300.0, id="silent-gets-the-default"),
    pytest.param({"Content-Type": "application/json"}, 300.0, id="unrelated-headers"),
    pytest.param({"Cache-Control": "max-age=60"}, 60.0, id="max-age"),
    pytest.param({"Cache-Control": "public, max-age=86400"}, 86400.0, id="explicit-not-capped"),
    pytest.param({"Cache-Control": "max-age=60, s-maxage=10"}, 10.0, id="s-maxage-first"),
    pytest.param({"Cache-Control": 'max-age="60"'}, 60.0, id="quoted-value"),
    pytest.param({"Cache-Control": "MAX-AGE=60"}, 60.0, id="case-insensitive-name"),
    pytest.param({"cache-control": "max-age=60"}, 60.0, id="lower-case-field-name"),
    pytest.param({"Cache-Control": "max-age=0"}, 0.0, id="max-age-0"),
    pytest.param({"Cache-Control": "max-age=abc"}, 0.0, id="invalid-max-age-is-stale"),
    pytest.param({"Cache-Control": "max-age=-5"}, 0.0, id="negative-max-age-is-stale"),
    pytest.param({"Cache-Control": "max-age"}, 0.0, id="max-age-without-value"),
    # no-cache allows storing only to revalidate every use, and the shim never revalidates
    pytest.param({"Cache-Control": "no-cache"}, None, id="no-cache"),
    pytest.param(
        {"Cache-Control": 'no-cache="Set-Cookie", max-age=60'}, None, id="no-cache-fields"
    ),
    pytest.param({"Set-Cookie": "session=abc"}, None, id="set-cookie"),
    pytest.param({"Cache-Control": "max-age=60", "set-cookie": "a=b"}, None, id="set-cookie-lower"),
    pytest.param({"Cache-Control": "no-store"}, None, id="no-store"),
    pytest.param({"Cache-Control": "max-age=60, private"}, None, id="private"),
    pytest.param({"Cache-Control": 'private="X-Foo"'}, None, id="private-fields"),
    pytest.param({"Cache-Control": "Private"}, None, id="private-case"),
    pytest.param({"Cache-Control": "must-revalidate"}, 300.0, id="no-lifetime-directive"),
    pytest.param({"Vary": "*"}, None, id="vary-star"),
    pytest.param({"Vary": "Accept-Encoding"}, 300.0, id="vary-field"),
    pytest.param({"Expires": http_date(NOW + 120)}, 120.0, id="expires-from-now"),
    pytest.param(
        {"Expires": http_date(NOW + 120), "Date": http_date(NOW - 30)},
        150.0,
        id="expires-minus-date",
    ),
    pytest.param({"Expires": http_date(NOW - 10)}, 0.0, id="expires-in-the-past"),
    pytest.param({"Expires": "0"}, 0.0, id="invalid-expires-is-expired"),
    pytest.param(
        {"Expires": http_date(NOW + 120), "Date": "yesterday"}, 120.0, id="invalid-date-uses-now"
    ),
    pytest.param(
        {"Expires": http_date(NOW + 120), "Cache-Control": "max-age=5"},
        5.0,
        id="max-age-over-expires",
    ),
    pytest.param({"Cache-Control": "max-age=60", "Age": "20"}, 40.0, id="age-subtracted"),
    pytest.param({"Cache-Control": "max-age=60", "Age": "90"}, 0.0, id="older-than-lifetime"),
    pytest.param({"Cache-Control": "max-age=60", "Age": "x"}, 60.0, id="invalid-age-ignored"),
    pytest.param({"Age": "20"}, 300.0, id="age-not-subtracted-from-default"),
]


@pytest.mark.parametrize(("headers", "expected"), LIFETIME_CASES)
def test_freshness_lifetime(headers: dict[str, str], expected: float | None) -> None:
    assert freshness_lifetime(raw(headers), NOW) == expected


def test_freshness_lifetime_reads_every_field_line() -> None:
    headers = raw([("Cache-Control", "max-age=60"), ("cache-control", "no-store")])
    assert freshness_lifetime(headers, NOW) is None


def test_first_of_repeated_directives_wins() -> None:
    headers = [("Cache-Control", "max-age=60"), ("Cache-Control", "max-age=5")]
    assert freshness_lifetime(raw(headers), NOW) == 60.0


def test_custom_default() -> None:
    assert freshness_lifetime(raw({}), NOW, default=30.0) == 30.0


def test_cache_directives() -> None:
    assert cache_directives(raw({"Cache-Control": ' Public , max-age=60, no-cache="a, b",x'})) == {
        "public": None,
        "max-age": "60",
        "no-cache": "a, b",
        "x": None,
    }


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, 0.0), ({"Age": "7"}, 7.0), ({"age": " 7 "}, 7.0), ({"Age": "-1"}, 0.0)],
)
def test_upstream_age(headers: dict[str, str], expected: float) -> None:
    assert upstream_age(raw(headers)) == expected


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_lifetime_is_never_negative(max_age: int, age: int) -> None:
    headers = {"Cache-Control": f"max-age={max_age}", "Age": str(age)}
    assert freshness_lifetime(raw(headers), NOW) == max(0, max_age - age)


def document(
    stored_at: float = NOW,
    fresh_until: float = NOW + 60,
    body: bytes = b"{}",
    vary: Variant = (),
    stale_ok: bool = True,
) -> CachedDocument:
    return CachedDocument(
        body=body,
        headers=((b"Content-Type", b"application/json"),),
        etag='"sha256-x"',
        stored_at=stored_at,
        fresh_until=fresh_until,
        vary=vary,
        stale_ok=stale_ok,
    )


@pytest.mark.parametrize(
    ("now", "expected"), [(NOW, 0), (NOW + 0.9, 0), (NOW + 1, 1), (NOW + 61.5, 61), (NOW - 5, 0)]
)
def test_age_in_whole_seconds(now: float, expected: int) -> None:
    assert document().age(now) == expected


def test_fresh_until_then_only_last_good() -> None:
    cache = DiscoveryCache()
    doc = document()
    cache.store(("/x", "h"), doc)
    assert cache.fresh(("/x", "h"), NOW) is doc
    assert cache.fresh(("/x", "h"), NOW + 59.9) is doc
    assert cache.fresh(("/x", "h"), NOW + 60) is None
    assert cache.last_good(("/x", "h")) is doc
    assert cache.fresh(("/x", "other"), NOW) is None
    assert cache.last_good(("/x", "other")) is None


def test_zero_lifetime_is_never_fresh_but_kept() -> None:
    cache = DiscoveryCache()
    cache.store("k", document(fresh_until=NOW))
    assert cache.fresh("k", NOW) is None
    assert cache.last_good("k") is not None


def test_store_replaces() -> None:
    cache = DiscoveryCache()
    cache.store("k", document(body=b"1"))
    cache.store("k", document(body=b"2"))
    assert len(cache) == 1
    assert (cache.last_good("k") or document()).body == b"2"


def test_least_recently_used_is_evicted() -> None:
    cache = DiscoveryCache(max_entries=2)
    cache.store("a", document())
    cache.store("b", document())
    cache.store("c", document())
    assert cache.last_good("a") is None
    assert cache.fresh("b", NOW) is not None  # reading makes b the most recently used
    cache.store("d", document())
    assert cache.last_good("c") is None
    assert cache.last_good("b") is not None
    assert cache.last_good("d") is not None
    assert len(cache) == 2


def test_default_bound() -> None:
    cache = DiscoveryCache()
    for i in range(100):
        cache.store(i, document())
    assert len(cache) == 64
    assert cache.last_good(35) is None
    assert cache.last_good(36) is not None


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries must be at least 1, got 0"):
        DiscoveryCache(max_entries=0)


# -- what may be stored, and reused stale (RFC 9111 3, 4.2.4) -----------------------------------

POLICY_CASES = [
    pytest.param({}, StoragePolicy(300.0, True), id="silent"),
    pytest.param({"Cache-Control": "max-age=0"}, StoragePolicy(0.0, True), id="max-age-0"),
    pytest.param(
        {"Cache-Control": "max-age=60, must-revalidate"},
        StoragePolicy(60.0, False),
        id="must-revalidate",
    ),
    pytest.param(
        {"Cache-Control": "max-age=60, proxy-revalidate"},
        StoragePolicy(60.0, False),
        id="proxy-revalidate",
    ),
    pytest.param(
        {"Cache-Control": "max-age=600, s-maxage=30"}, StoragePolicy(30.0, False), id="s-maxage"
    ),
    pytest.param({"Cache-Control": "max-age=0, must-revalidate"}, None, id="never-usable"),
    pytest.param({"Cache-Control": "no-cache"}, None, id="no-cache"),
    pytest.param({"Set-Cookie": "sid=1"}, None, id="set-cookie"),
    pytest.param({"Vary": "Accept, *"}, None, id="vary-star"),
    pytest.param({"Cache-Control": "private"}, None, id="private"),
    pytest.param({"Cache-Control": "no-store"}, None, id="no-store"),
]


@pytest.mark.parametrize(("headers", "expected"), POLICY_CASES)
def test_storage_policy(headers: dict[str, str], expected: StoragePolicy | None) -> None:
    assert storage_policy(raw(headers), NOW) == expected


def test_refusal_names_the_reason() -> None:
    assert refusal(raw({"Set-Cookie": "a=b"})) == "Set-Cookie"
    assert refusal(raw({"Cache-Control": "public, no-cache"})) == "Cache-Control: no-cache"
    assert refusal(raw({"Cache-Control": "public"})) is None


def test_vary_names_are_lowercased_sorted_and_star_is_none() -> None:
    assert vary_names(raw({"Vary": "Origin, accept-language", "vary": "Origin"})) == (
        "accept-language",
        "origin",
    )
    assert vary_names(raw({})) == ()
    assert vary_names(raw({"Vary": "*"})) is None


def test_variant_joins_repeats_and_marks_absent_fields() -> None:
    fields = raw([("Origin", "https://a.example"), ("Accept", "a"), ("accept", "b  c")])
    assert variant(("accept", "origin", "x"), fields) == (
        ("accept", "a, b c"),
        ("origin", "https://a.example"),
        ("x", None),
    )


def _varied(origin: str | None) -> CachedDocument:
    return document(body=(origin or "none").encode(), vary=variant(("origin",), _origin(origin)))


def _origin(origin: str | None) -> list[tuple[bytes, bytes]]:
    return [(b"Origin", origin.encode())] if origin else []


def test_each_vary_variant_is_its_own_entry() -> None:
    cache = DiscoveryCache()
    key = CacheKey("https://account.example.com", "/.well-known/openid-configuration")
    cache.store(key, _varied("https://a.example"))
    cache.store(key, _varied(None))
    assert (cache.fresh(key, NOW, _origin("https://a.example")) or document()).body == (
        b"https://a.example"
    )
    assert (cache.fresh(key, NOW, []) or document()).body == b"none"
    assert cache.fresh(key, NOW, _origin("https://b.example")) is None


def test_query_variants_cannot_evict_the_plain_target() -> None:
    cache = DiscoveryCache(max_entries=4)
    plain = CacheKey("https://account.example.com", "/.well-known/openid-configuration")
    cache.store(plain, document(body=b"good"))
    for n in range(100):
        cache.store(CacheKey(plain.origin, f"{plain.target}?x={n}"), document())
    assert (cache.last_good(plain) or document()).body == b"good"
    assert len(cache) == 5


def test_a_document_that_must_revalidate_is_never_the_stale_copy() -> None:
    cache = DiscoveryCache()
    cache.store("k", document(stale_ok=False))
    assert cache.fresh("k", NOW) is not None
    assert cache.last_good("k") is None


def test_cache_keys_are_values() -> None:
    key = CacheKey("https://account.example.com", "/.well-known/openid-configuration")
    same = CacheKey("https://account.example.com", "/.well-known/openid-configuration")
    assert key == same
    assert hash(key) == hash(same)
    assert {key: 1}[same] == 1
    assert key != CacheKey("https://other.example.com", key.target)
    assert key != CacheKey(key.origin, key.target + "?x=1")
    assert key != (key.origin, key.target)
    assert key.plain
    assert not CacheKey(key.origin, key.target + "?x=1").plain


def test_oldest_stored_is_across_both_pools_and_none_when_empty() -> None:
    cache = DiscoveryCache()
    assert cache.oldest_stored() is None
    plain = CacheKey("https://account.example.com", "/.well-known/openid-configuration")
    cache.store(plain, document(stored_at=NOW - 10))
    cache.store(CacheKey(plain.origin, f"{plain.target}?x=1"), document(stored_at=NOW - 30))
    cache.store("k", document(stored_at=NOW))
    assert cache.oldest_stored() == NOW - 30
    cache.store(CacheKey(plain.origin, f"{plain.target}?x=1"), document(stored_at=NOW - 5))
    assert cache.oldest_stored() == NOW - 10, "a replaced document no longer counts"
