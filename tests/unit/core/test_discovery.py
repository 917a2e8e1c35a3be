"""The discovery rewrite over the field's documents, every built-in dialect and option."""

from __future__ import annotations

import copy
import gzip
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.config.model import Config
from shim.config.parse import parse_config
from shim.core.discovery import (
    account_management_uri,
    derived_actions,
    if_none_match_matches,
    lists_stable_names,
    parse_json_object,
    portal_speaks_msc4191,
    render_json,
    rewrite_discovery,
    rewrite_document,
    rewrite_well_known,
    strong_etag,
)
from shim.vocabulary import (
    ACCOUNT_DEACTIVATE,
    CROSS_SIGNING_RESET,
    DEVICE_DELETE,
    DEVICE_VIEW,
    DEVICES_LIST,
    PROFILE,
)
from tests.support.paths import DATA

VECTORS = DATA / "vectors.json"
DEFAULT_URI = "https://shim.example.com/account/"
PORTAL_URI = "https://auth.example.com/account/"
UNSTABLE_URI = "org.matrix.msc4191.account_management_uri"
UNSTABLE_ACTIONS = "org.matrix.msc4191.account_management_actions_supported"
STABLE_KEYS = ["account_management_uri", "account_management_actions_supported"]


def load_vectors() -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = json.loads(VECTORS.read_text())["discovery"]
    # `_about` annotates the vector file; it is not part of what the portal serves.
    return {
        name: {k: v for k, v in doc.items() if k != "_about"} for name, doc in documents.items()
    }


def make_config(
    dialect: object = "mas-0.9",
    *,
    discovery: dict[str, Any] | None = None,
    account: dict[str, Any] | None = None,
) -> Config:
    return parse_config(
        {
            "upstream": {"url": "http://127.0.0.1:9000"},
            "account_management": {"dialect": dialect, **(account or {})},
            "discovery": discovery or {},
        }
    )


FOUR = [PROFILE, DEVICES_LIST, DEVICE_VIEW, DEVICE_DELETE]
FIVE = [*FOUR, CROSS_SIGNING_RESET]
SIX = [PROFILE, DEVICES_LIST, DEVICE_VIEW, DEVICE_DELETE, ACCOUNT_DEACTIVATE, CROSS_SIGNING_RESET]
#: the legacy names the shim accepts, per stable name (built-in aliases, in table order)
LEGACY = {
    PROFILE: ["profile"],
    DEVICES_LIST: ["sessions_list", "org.matrix.sessions_list"],
    DEVICE_VIEW: ["session_view", "org.matrix.session_view"],
    DEVICE_DELETE: ["session_end", "org.matrix.session_end"],
}

#: vector -> dialect -> the stable names advertised with `advertise: stable`
EXPECTED: dict[str, dict[str, list[str]]] = {
    # only the unstable list, four legacy names: every built-in dialect serves all four
    "prototype-unstable-keys": {"stable": FOUR, "mas-0.7": FOUR, "mas-0.9": FOUR, "msc3824": FOUR},
    # cross_signing_reset is kept only where the dialect serves it
    "mas-0.9-to-1.9": {"stable": FIVE, "mas-0.7": FOUR, "mas-0.9": FIVE, "msc3824": FOUR},
    # stable and legacy names for the same actions collapse to five stable names
    "mas-1.10-and-later": {"stable": FIVE, "mas-0.7": FOUR, "mas-0.9": FIVE, "msc3824": FOUR},
    # no list at all: what the dialect serves, in the spec's order
    "well-known-matrix-client": {"stable": SIX, "mas-0.7": FOUR, "mas-0.9": FIVE, "msc3824": FOUR},
}
OAUTH_VECTORS = ["prototype-unstable-keys", "mas-0.9-to-1.9", "mas-1.10-and-later"]
DIALECTS = ["stable", "mas-0.7", "mas-0.9", "msc3824"]


def with_legacy(stable: list[str]) -> list[str]:
    return stable + [name for s in stable for name in LEGACY.get(s, [])]


def test_the_vectors_are_the_ones_the_table_describes() -> None:
    assert set(load_vectors()) == set(EXPECTED)


@pytest.mark.parametrize("unstable_keys", [False, True])
@pytest.mark.parametrize("advertise", ["stable", "stable+legacy"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("vector", sorted(EXPECTED))
def test_derived_actions(vector: str, dialect: str, advertise: str, unstable_keys: bool) -> None:
    config = make_config(
        dialect, discovery={"advertise": advertise, "unstable_keys": unstable_keys}
    )
    stable = EXPECTED[vector][dialect]
    expected = stable if advertise == "stable" else with_legacy(stable)
    actions = derived_actions(load_vectors()[vector], config.discovery, config.account_management)
    assert actions == expected


@pytest.mark.parametrize("unstable_keys", [False, True])
@pytest.mark.parametrize("advertise", ["stable", "stable+legacy"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("vector", OAUTH_VECTORS)
def test_rewrite_discovery(vector: str, dialect: str, advertise: str, unstable_keys: bool) -> None:
    config = make_config(
        dialect, discovery={"advertise": advertise, "unstable_keys": unstable_keys}
    )
    upstream = load_vectors()[vector]
    original = copy.deepcopy(upstream)
    stable = EXPECTED[vector][dialect]
    actions = stable if advertise == "stable" else with_legacy(stable)

    doc = rewrite_discovery(
        upstream,
        discovery=config.discovery,
        account=config.account_management,
        default_uri=DEFAULT_URI,
    )

    assert upstream == original, "the upstream document must not be modified"
    assert doc["account_management_uri"] == PORTAL_URI
    assert doc["account_management_actions_supported"] == actions
    added = [k for k in STABLE_KEYS if k not in upstream]
    if unstable_keys:
        assert doc[UNSTABLE_URI] == PORTAL_URI
        assert doc[UNSTABLE_ACTIONS] == actions
        added += [k for k in (UNSTABLE_URI, UNSTABLE_ACTIONS) if k not in upstream]
    # the upstream's keys in their order, then what the shim added, in a fixed order
    assert list(doc) == [*upstream, *added]
    owned = {*STABLE_KEYS, UNSTABLE_URI, UNSTABLE_ACTIONS} if unstable_keys else set(STABLE_KEYS)
    assert {k: v for k, v in doc.items() if k not in owned} == {
        k: v for k, v in upstream.items() if k not in owned
    }


def test_prototype_keeps_its_unstable_keys_when_not_asked_to_write_them() -> None:
    config = make_config("mas-0.7")
    upstream = load_vectors()["prototype-unstable-keys"]
    doc = rewrite_discovery(
        upstream, discovery=config.discovery, account=config.account_management, default_uri="x"
    )
    assert doc[UNSTABLE_ACTIONS] == upstream[UNSTABLE_ACTIONS]
    assert list(doc)[-2:] == STABLE_KEYS


def test_unstable_keys_replace_in_place() -> None:
    config = make_config("stable", discovery={"unstable_keys": True})
    upstream = {
        "issuer": "i",
        UNSTABLE_URI: "https://p/",
        UNSTABLE_ACTIONS: ["session_end"],
        "z": 1,
    }
    doc = rewrite_discovery(
        upstream, discovery=config.discovery, account=config.account_management, default_uri="d"
    )
    assert list(doc) == ["issuer", UNSTABLE_URI, UNSTABLE_ACTIONS, "z", *STABLE_KEYS]
    assert doc[UNSTABLE_ACTIONS] == [DEVICE_DELETE]
    assert doc["account_management_uri"] == "https://p/"


def test_stable_keys_replace_in_place() -> None:
    config = make_config("stable")
    upstream = {"account_management_actions_supported": ["profile"], "a": 1, "b": [2]}
    doc = rewrite_discovery(
        upstream, discovery=config.discovery, account=config.account_management, default_uri="d"
    )
    assert list(doc) == ["account_management_actions_supported", "a", "b", "account_management_uri"]
    assert doc == {
        **upstream,
        "account_management_actions_supported": [PROFILE],
        "account_management_uri": "d",
    }


ACTION_CASES = [
    pytest.param(
        ["x.custom", "org.matrix.session_end", 5, PROFILE, "x.custom", None, "sessions_list"],
        {},
        ["x.custom", DEVICE_DELETE, PROFILE, DEVICES_LIST],
        id="unknown-kept-in-place-duplicates-and-non-strings-dropped",
    ),
    pytest.param(
        [ACCOUNT_DEACTIVATE, CROSS_SIGNING_RESET, PROFILE],
        {},
        [PROFILE],
        id="unreachable-dropped",
    ),
    pytest.param(
        [ACCOUNT_DEACTIVATE, CROSS_SIGNING_RESET, PROFILE],
        {"unsupported": {"redirect": "https://help.example.com/"}},
        [ACCOUNT_DEACTIVATE, CROSS_SIGNING_RESET, PROFILE],
        id="redirect-makes-every-action-reachable",
    ),
    pytest.param(
        None, {"unsupported": {"redirect": "https://help.example.com/"}}, SIX, id="no-list-redirect"
    ),
    pytest.param(
        [ACCOUNT_DEACTIVATE], {"unsupported": "pass"}, [], id="pass-does-not-make-reachable"
    ),
    pytest.param([], {}, [], id="empty-upstream-list-stays-empty"),
    pytest.param(
        ["delete_device", "my_alias"],
        {"aliases": {"my_alias": PROFILE}},
        [DEVICE_DELETE, PROFILE],
        id="configured-alias",
    ),
]


@pytest.mark.parametrize(("upstream", "account", "expected"), ACTION_CASES)
def test_action_translation(
    upstream: list[Any] | None, account: dict[str, Any], expected: list[str]
) -> None:
    # mas-0.7 serves four actions; a custom name for device_delete exercises the dialect's names
    dialect = {
        PROFILE: PROFILE,
        DEVICES_LIST: "org.matrix.sessions_list",
        DEVICE_VIEW: "org.matrix.session_view",
        DEVICE_DELETE: "delete_device",
    }
    config = make_config(dialect, account=account)
    doc = {} if upstream is None else {"account_management_actions_supported": upstream}
    assert derived_actions(doc, config.discovery, config.account_management) == expected


def test_stable_key_that_is_not_a_list_falls_back_to_the_unstable_one() -> None:
    config = make_config("mas-0.9")
    doc = {"account_management_actions_supported": "profile", UNSTABLE_ACTIONS: ["session_end"]}
    assert derived_actions(doc, config.discovery, config.account_management) == [DEVICE_DELETE]


def test_legacy_names_follow_stable_ones_including_custom_portal_names() -> None:
    config = make_config({DEVICE_DELETE: "delete_device"}, discovery={"advertise": "stable+legacy"})
    doc = {"account_management_actions_supported": ["x.custom", "session_end"]}
    assert derived_actions(doc, config.discovery, config.account_management) == [
        "x.custom",
        DEVICE_DELETE,
        "session_end",
        "org.matrix.session_end",
        "delete_device",
    ]


@pytest.mark.parametrize("advertise", ["stable", "stable+legacy"])
def test_configured_actions_override(advertise: str) -> None:
    # exactly the configured stable names, even ones the dialect does not serve (the operator
    # knows better); `advertise` still decides whether legacy names follow
    config = make_config(
        "mas-0.7",
        discovery={"actions": [DEVICE_VIEW, ACCOUNT_DEACTIVATE], "advertise": advertise},
    )
    upstream = load_vectors()["mas-1.10-and-later"]
    expected = [DEVICE_VIEW, ACCOUNT_DEACTIVATE]
    if advertise == "stable+legacy":
        expected += LEGACY[DEVICE_VIEW]
    assert derived_actions(upstream, config.discovery, config.account_management) == expected


# --- a portal that speaks both name sets (dialect mas-1.10) ------------------------------------

MAS_110_OWN = [
    *FIVE,
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
]


@pytest.mark.parametrize("advertise", ["stable", "stable+legacy"])
def test_mas_110_keeps_the_portals_own_document(advertise: str) -> None:
    config = make_config("mas-1.10", discovery={"advertise": advertise})
    upstream = load_vectors()["mas-1.10-and-later"]
    assert upstream["account_management_actions_supported"] == MAS_110_OWN
    doc = rewrite_discovery(
        upstream,
        discovery=config.discovery,
        account=config.account_management,
        default_uri=DEFAULT_URI,
    )
    assert doc == upstream
    assert list(doc) == list(upstream)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_other_dialects_bring_the_same_list_to_stable_names(dialect: str) -> None:
    config = make_config(dialect)
    upstream = load_vectors()["mas-1.10-and-later"]
    actions = derived_actions(upstream, config.discovery, config.account_management)
    assert actions == EXPECTED["mas-1.10-and-later"][dialect]


MAS_110_CASES = [
    pytest.param(
        [*MAS_110_OWN, "org.matrix.plan_management"],
        "stable",
        [*MAS_110_OWN, "org.matrix.plan_management"],
        id="another-action-stays",
    ),
    pytest.param(
        ["org.matrix.sessions_list", "org.matrix.session_end"],
        "stable",
        [DEVICES_LIST, DEVICE_DELETE],
        id="legacy-only-is-translated",
    ),
    pytest.param(
        [PROFILE, DEVICE_DELETE],
        "stable+legacy",
        [PROFILE, DEVICE_DELETE, *LEGACY[PROFILE], *LEGACY[DEVICE_DELETE]],
        id="no-legacy-of-its-own-so-the-shim-adds-them",
    ),
    pytest.param(
        [DEVICE_DELETE, "org.matrix.session_end", ACCOUNT_DEACTIVATE],
        "stable",
        [DEVICE_DELETE],
        id="an-unreachable-stable-name-means-translate",
    ),
    pytest.param(
        [DEVICE_DELETE, "org.matrix.session_end", 5],
        "stable",
        [DEVICE_DELETE],
        id="a-non-string-means-translate",
    ),
]


@pytest.mark.parametrize(("upstream", "advertise", "expected"), MAS_110_CASES)
def test_mas_110_lists(upstream: list[Any], advertise: str, expected: list[str]) -> None:
    config = make_config("mas-1.10", discovery={"advertise": advertise})
    doc = {"account_management_actions_supported": upstream}
    assert derived_actions(doc, config.discovery, config.account_management) == expected


LISTS = [
    pytest.param(MAS_110_OWN, True, id="mas-1.10"),
    pytest.param([*FIVE, "org.matrix.plan_management"], True, id="stable-and-another"),
    pytest.param(["org.matrix.session_end", DEVICE_DELETE], True, id="legacy-with-stable"),
    pytest.param(["org.matrix.session_end"], False, id="legacy-only"),
    pytest.param(["org.matrix.plan_management"], False, id="no-msc4191-name"),
    pytest.param([], False, id="empty"),
    pytest.param([PROFILE, 5], False, id="not-a-string"),
]


@pytest.mark.parametrize(("names", "expected"), LISTS)
def test_lists_stable_names(names: list[Any], expected: bool) -> None:
    table = make_config("mas-0.9").account_management.table
    assert lists_stable_names(names, table) is expected


def test_portal_speaks_msc4191_needs_the_uri_and_the_stable_list() -> None:
    table = make_config("mas-0.9").account_management.table
    vectors = load_vectors()
    assert portal_speaks_msc4191(vectors["mas-1.10-and-later"], table)
    assert not portal_speaks_msc4191(vectors["mas-0.9-to-1.9"], table)
    assert not portal_speaks_msc4191(vectors["prototype-unstable-keys"], table)
    no_uri = {
        k: v for k, v in vectors["mas-1.10-and-later"].items() if k != "account_management_uri"
    }
    assert not portal_speaks_msc4191(no_uri, table)
    assert not portal_speaks_msc4191({**no_uri, "account_management_uri": ""}, table)


URI_CASES = [
    pytest.param({"account_management_uri": "https://a/"}, "https://c/", "https://c/", id="config"),
    pytest.param(
        {"account_management_uri": "https://a/", UNSTABLE_URI: "https://u/"},
        None,
        "https://a/",
        id="stable",
    ),
    pytest.param(
        {"account_management_uri": "", UNSTABLE_URI: "https://u/"},
        None,
        "https://u/",
        id="empty-stable-then-unstable",
    ),
    pytest.param(
        {"account_management_uri": 5, UNSTABLE_URI: ["x"]}, None, DEFAULT_URI, id="non-strings"
    ),
    pytest.param({}, None, DEFAULT_URI, id="default"),
]


@pytest.mark.parametrize(("doc", "configured", "expected"), URI_CASES)
def test_account_management_uri(doc: dict[str, Any], configured: str | None, expected: str) -> None:
    config = make_config(discovery={"account_management_uri": configured})
    assert account_management_uri(doc, config.discovery, DEFAULT_URI) == expected


def test_rewrite_discovery_uses_the_configured_uri() -> None:
    config = make_config(discovery={"account_management_uri": "https://c.example.com/manage"})
    doc = rewrite_discovery(
        load_vectors()["mas-1.10-and-later"],
        discovery=config.discovery,
        account=config.account_management,
        default_uri=DEFAULT_URI,
    )
    assert doc["account_management_uri"] == "https://c.example.com/manage"


def test_well_known_sets_account_in_place() -> None:
    upstream = load_vectors()["well-known-matrix-client"]
    original = copy.deepcopy(upstream)
    doc = rewrite_well_known(upstream, "https://shim.example.com/account/")
    assert upstream == original
    auth = doc["org.matrix.msc2965.authentication"]
    assert list(doc) == list(upstream)
    assert list(auth) == ["issuer", "account"]
    assert auth == {"issuer": "https://auth.example.com/", "account": DEFAULT_URI}
    assert doc["m.homeserver"] == upstream["m.homeserver"]


def test_well_known_appends_account_when_missing() -> None:
    upstream = {"org.matrix.msc2965.authentication": {"issuer": "i"}, "z": 1}
    doc = rewrite_well_known(upstream, "https://a/")
    assert doc == {
        "org.matrix.msc2965.authentication": {"issuer": "i", "account": "https://a/"},
        "z": 1,
    }


@pytest.mark.parametrize(
    "upstream",
    [{"m.homeserver": {"base_url": "https://h"}}, {"org.matrix.msc2965.authentication": "x"}],
)
def test_well_known_without_authentication_is_returned_unchanged(upstream: dict[str, Any]) -> None:
    assert rewrite_well_known(upstream, "https://a/") is upstream


PARSE_CASES = [
    pytest.param(b'{"a":1}', {"a": 1}, id="object"),
    pytest.param(b'\xef\xbb\xbf{"a":1}', {"a": 1}, id="utf8-bom"),
    pytest.param(b"[1]", None, id="array"),
    pytest.param(b'"s"', None, id="string"),
    pytest.param(b"", None, id="empty"),
    pytest.param(b"<html>", None, id="html"),
    pytest.param(b'{"a":"\xff"}', None, id="bad-utf8"),
    pytest.param('{"a":1}'.encode("utf-16"), None, id="utf16"),
    pytest.param(b'{"a":NaN}', None, id="nan"),
    pytest.param(b'{"a":-Infinity}', None, id="infinity"),
    pytest.param(b'{"a":1} x', None, id="trailing-garbage"),
    pytest.param(b'{"a":' + b"9" * 5000 + b"}", None, id="int-over-python-digit-limit"),
    pytest.param(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, id="too-deep"),
]


@pytest.mark.parametrize(("body", "expected"), PARSE_CASES)
def test_parse_json_object(body: bytes, expected: dict[str, Any] | None) -> None:
    assert parse_json_object(body) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1.10,"b":-0,"c":1e400,"d":1E+2,"e":-0.0,"f":123456789012345678901234567890}',
        '{"é":"ü ✓ \\u00e9 \\n \\"","s":"\\ud83d\\ude00","l":[true,false,null,{},[]]}',
        '{"dup":1,"x":2}',
    ],
)
def test_render_repeats_compact_input_exactly(text: str) -> None:
    doc = parse_json_object(text.encode())
    assert doc is not None
    assert json.loads(render_json(doc)) == json.loads(text)
    if "\\u00e9" not in text and "\\ud83d" not in text:
        assert render_json(doc) == text.encode()


def test_render_numbers_as_written() -> None:
    doc = parse_json_object(b'{"a":1.10,"b":-0,"c":1e400,"d":1E+2}')
    assert render_json(doc or {}) == b'{"a":1.10,"b":-0,"c":1e400,"d":1E+2}'


def test_render_lone_surrogate_falls_back_to_ascii_escapes() -> None:
    doc = parse_json_object('{"a":"\\ud800","b":"é"}'.encode())
    assert render_json(doc or {}) == b'{"a":"\\ud800","b":"\\u00e9"}'


def test_render_deep_nesting_without_recursion() -> None:
    body = b'{"a":' + b"[" * 900 + b"]" * 900 + b"}"
    doc = parse_json_object(body)
    assert doc is not None
    assert render_json(doc) == body


def test_render_values_the_shim_adds() -> None:
    assert (
        render_json({"a": ("x", "ü"), "b": 1, "c": 0.5}) == '{"a":["x","ü"],"b":1,"c":0.5}'.encode()
    )


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), JSON_VALUES))
def test_compact_documents_round_trip_byte_identical(value: dict[str, Any]) -> None:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    doc = parse_json_object(text)
    assert doc is not None
    assert render_json(doc) == text


AUTHENTICATION = "org.matrix.msc2965.authentication"
UNTOUCHED_CASES = [
    pytest.param(b"{", None, "passthrough_not_json", id="not-json"),
    pytest.param(b"[]", None, "passthrough_not_object", id="not-an-object"),
    pytest.param(b"{}", "zstd-of-the-future", "passthrough_encoding", id="unknown-coding"),
    pytest.param(b"{}", "gzip", "passthrough_encoding", id="corrupt-gzip"),
    pytest.param(gzip.compress(b" " * 2048 + b"{}"), "gzip", "passthrough_too_large", id="bomb"),
]


@pytest.mark.parametrize(("body", "coding", "expected"), UNTOUCHED_CASES)
def test_rewrite_document_says_why_it_leaves_the_bytes(
    body: bytes, coding: str | None, expected: str
) -> None:
    config = make_config(discovery={"max_body_bytes": 1024})
    result = rewrite_document(
        body, coding, well_known=False, config=config, default_uri=DEFAULT_URI
    )
    assert result == expected


def test_rewrite_document_decodes_rewrites_and_renders() -> None:
    body = gzip.compress(b'{"issuer":"https://auth.example.com/","n":1.10}')
    result = rewrite_document(
        body, "gzip", well_known=False, config=make_config(), default_uri=DEFAULT_URI
    )
    assert isinstance(result, bytes)
    assert result.startswith(b'{"issuer":"https://auth.example.com/","n":1.10,')
    assert json.loads(result)["account_management_uri"] == DEFAULT_URI


def test_rewrite_document_keeps_the_portals_own_well_known_account() -> None:
    """The portal's `account` wins over the shim's default; the same bytes are then "unchanged"."""
    own = json.dumps({AUTHENTICATION: {"issuer": "i", "account": PORTAL_URI}}).encode()
    kwargs: dict[str, Any] = {"well_known": True, "config": make_config()}
    assert rewrite_document(own, None, default_uri=DEFAULT_URI, **kwargs) == "unchanged"
    bare = json.dumps({AUTHENTICATION: {"issuer": "i", "account": ""}}).encode()
    result = rewrite_document(bare, None, default_uri=DEFAULT_URI, **kwargs)
    assert isinstance(result, bytes)
    assert json.loads(result)[AUTHENTICATION]["account"] == DEFAULT_URI


def test_strong_etag() -> None:
    etag = strong_etag(b"{}")
    assert re.fullmatch(r'"sha256-[A-Za-z0-9_-]{27}"', etag)
    assert etag == strong_etag(b"{}")
    assert etag != strong_etag(b"{ }")


ETAG = '"sha256-abc"'
INM_CASES = [
    pytest.param(None, False, id="absent"),
    pytest.param("", False, id="empty"),
    pytest.param("*", True, id="star"),
    pytest.param(" * ", True, id="star-spaces"),
    pytest.param(ETAG, True, id="exact"),
    pytest.param("W/" + ETAG, True, id="weak-matches-weakly"),
    pytest.param('"other", ' + ETAG, True, id="list"),
    pytest.param('"other",,  W/' + ETAG + " ,", True, id="list-empty-elements"),
    pytest.param('"other"', False, id="other"),
    pytest.param('"sha256-ABC"', False, id="case-sensitive"),
    pytest.param("sha256-abc", False, id="unquoted"),
    pytest.param('"sha256-abc', False, id="unterminated"),
    pytest.param('"*"', False, id="quoted-star-is-a-tag"),
]


@pytest.mark.parametrize(("header", "expected"), INM_CASES)
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert if_none_match_matches(header, ETAG) is expected


def test_if_none_match_against_a_weak_etag() -> None:
    assert if_none_match_matches(ETAG, "W/" + ETAG)
