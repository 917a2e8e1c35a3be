"""Location rewriting: upstream origin to public origin; action names back to stable names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from shim.core.location import back_translate_query, rewrite_location
from shim.vocabulary import BUILTIN_DIALECTS, ActionTable, build_action_table

UPSTREAM = URL("http://127.0.0.1:8081")
PUBLIC = "https://account.example.com"
ENTRY = ("/account/",)
MAS_09 = build_action_table(BUILTIN_DIALECTS["mas-0.9"], {})
MSC3824 = build_action_table(BUILTIN_DIALECTS["msc3824"], {})
MAS_110 = build_action_table(BUILTIN_DIALECTS["mas-1.10"], {})


def rewrite(location: str, table: ActionTable | None = None, upstream: URL = UPSTREAM) -> str:
    return rewrite_location(
        location,
        upstream_origin=upstream,
        public_origin=PUBLIC,
        back_translate=table,
        entry_paths=ENTRY,
    )


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://127.0.0.1:8081/account/?x=%2F+1;y#f", f"{PUBLIC}/account/?x=%2F+1;y#f"),
        ("http://127.0.0.1:8081/login", f"{PUBLIC}/login"),
        ("HTTP://127.0.0.1:8081/login", f"{PUBLIC}/login"),
        ("http://127.0.0.1:8081", PUBLIC),
        ("http://127.0.0.1:8081?next=/x", f"{PUBLIC}?next=/x"),
        ("http://127.0.0.1:8081#top", f"{PUBLIC}#top"),
        ("//127.0.0.1:8081/login", f"{PUBLIC}/login"),
        ("http://127.0.0.1:8081//double//slash", f"{PUBLIC}//double//slash"),
        # other origins stay
        ("http://127.0.0.1:8082/login", None),
        ("https://127.0.0.1:8081/login", None),
        ("http://127.0.0.1/login", None),
        ("http://user@127.0.0.1:8081/login", None),
        ("https://other.example/account/", None),
        ("https://account.example.com/login", None),
        ("mailto:admin@example.com", None),
        # relative references stay
        ("/login?next=%2Faccount%2F", None),
        ("login", None),
        ("?x=1", None),
        ("", None),
        # malformed stays
        ("http://[::1/login", None),
        ("http://127.0.0.1:99999/login", None),
        ("http://127.0.0.1:x/login", None),
        ("http:///login", None),
    ],
)
def test_origin_rewrite(location: str, expected: str | None) -> None:
    assert rewrite(location) == (location if expected is None else expected)


@pytest.mark.parametrize(
    ("upstream", "location", "expected"),
    [
        (URL("http://portal"), "http://portal:80/x", f"{PUBLIC}/x"),
        (URL("http://portal:80"), "http://PORTAL/x", f"{PUBLIC}/x"),
        (URL("http://[::1]:8081"), "http://[::1]:8081/x", f"{PUBLIC}/x"),
        (URL("https://portal.internal"), "https://portal.internal:443/x?a", f"{PUBLIC}/x?a"),
        (URL("https://portal.internal"), "http://portal.internal/x", None),
    ],
)
def test_origin_comparison(upstream: URL, location: str, expected: str | None) -> None:
    assert rewrite(location, upstream=upstream) == (location if expected is None else expected)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (
            "/account/?action=org.matrix.session_end&device_id=X",
            "/account/?action=org.matrix.device_delete&device_id=X",
        ),
        (
            "http://127.0.0.1:8081/account?action=org.matrix.sessions_list#x",
            f"{PUBLIC}/account?action=org.matrix.devices_list#x",
        ),
        (
            f"{PUBLIC}/account/?action=org.matrix.session_view&device_id=A%2FB",
            f"{PUBLIC}/account/?action=org.matrix.device_view&device_id=A%2FB",
        ),
        (
            "/account/?id_token_hint=a.b&action=org%2Ematrix.session_end&x=%20+;",
            "/account/?id_token_hint=a.b&action=org.matrix.device_delete&x=%20+;",
        ),
        (
            "/account/?action=nonsense&action=org.matrix.session_end",
            "/account/?action=nonsense&action=org.matrix.device_delete",
        ),
        ("/%61ccount/?action=session_end", "/%61ccount/?action=org.matrix.device_delete"),
        # already stable, unknown, undecodable, not an entry path, another origin: untouched
        ("/account/?action=org.matrix.profile", None),
        ("/account/?action=org.matrix.account_deactivate", None),
        ("/account/?action=%FF", None),
        ("/account/?action=", None),
        ("/account/", None),
        ("/account/#action=org.matrix.session_end", None),
        ("/account/sessions?action=org.matrix.session_end", None),
        ("/login?next=%2Faccount%2F%3Faction%3Dorg.matrix.session_end", None),
        ("https://other.example/account/?action=org.matrix.session_end", None),
        ("//other.example/account/?action=org.matrix.session_end", None),
        ("account/?action=org.matrix.session_end", None),
    ],
)
def test_back_translation_on_entry_paths(location: str, expected: str | None) -> None:
    assert rewrite(location, MAS_09) == (location if expected is None else expected)


def test_no_back_translation_without_a_table() -> None:
    assert rewrite("/account/?action=org.matrix.session_end") == (
        "/account/?action=org.matrix.session_end"
    )
    assert rewrite("http://127.0.0.1:8081/account/?action=org.matrix.session_end") == (
        f"{PUBLIC}/account/?action=org.matrix.session_end"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=session_end", "action=org.matrix.device_delete"),
        ("action=sessions_list&device_id=X", "action=org.matrix.devices_list&device_id=X"),
        ("action=profile", "action=org.matrix.profile"),
        ("action=org.matrix.profile", "action=org.matrix.profile"),
        ("", ""),
        ("&&", "&&"),
    ],
)
def test_back_translate_query_msc3824(query: str, expected: str) -> None:
    assert back_translate_query(query, MSC3824) == expected


@pytest.mark.parametrize(
    ("query", "table", "expected"),
    [
        # mas-1.10 serves both names: nothing to translate back
        ("action=org.matrix.session_end&device_id=X", MAS_110, None),
        ("action=org.matrix.sessions_list", MAS_110, None),
        # its MSC3824 spelling it does not serve: back to the stable name
        ("action=session_end", MAS_110, "action=org.matrix.device_delete"),
        # mas-0.9 serves only the legacy name: back to the stable one, as before
        ("action=org.matrix.session_end", MAS_09, "action=org.matrix.device_delete"),
    ],
)
def test_back_translate_leaves_names_a_portal_serves_beside_the_stable_one(
    query: str, table: ActionTable, expected: str | None
) -> None:
    assert back_translate_query(query, table) == (query if expected is None else expected)


ANY_TEXT = st.text(st.characters(exclude_categories=()))
LOCATION = ANY_TEXT | st.lists(
    st.sampled_from(
        [
            *("http:", "//", "127.0.0.1", ":8081", "/account/", "?", "action=", "session_end"),
            *("#", "&", "%FF", "@", "[", "\\", "\udcff", "\r\n", "https://account.example.com"),
        ]
    )
).map("".join)


@given(LOCATION, st.sampled_from([None, MAS_09, MSC3824]))
def test_never_raises(location: str, table: ActionTable | None) -> None:
    result = rewrite(location, table)
    if table is None and not result.startswith(PUBLIC):
        assert result == location
