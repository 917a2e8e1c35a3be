"""Deep-link decisions over raw query strings: every name x every dialect x every policy."""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from urllib.parse import unquote_plus, unquote_to_bytes

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.config.actions import RedirectUnsupported, Unsupported
from shim.config.model import AccountManagementConfig, Strategy
from shim.core.deeplink import (
    decide,
    decode_component,
    is_entry_path,
    is_entry_raw_path,
    parse_query,
    plan_deeplink,
    redirect_location,
)
from shim.http.target import split_reference
from shim.vocabulary import (
    BUILTIN_ALIASES,
    BUILTIN_DIALECTS,
    STABLE_ACTIONS,
    ActionTable,
    Dialect,
    build_action_table,
)
from tests.support.paths import DATA

VECTORS = DATA / "vectors.json"
OPERATOR_PAGE = "https://example.com/deactivate"
POLICIES: tuple[Unsupported, ...] = ("strip", "pass", RedirectUnsupported(OPERATOR_PAGE))
ACCEPTED = (*STABLE_ACTIONS, *BUILTIN_ALIASES)
TABLES = {name: build_action_table(d, {}) for name, d in BUILTIN_DIALECTS.items()}
MAS_09 = TABLES["mas-0.9"]


def stable_of(name: str) -> str:
    return name if name in STABLE_ACTIONS else BUILTIN_ALIASES[name]


# --- every accepted name x every built-in dialect x every unsupported policy ---------------


@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize("dialect", TABLES)
@pytest.mark.parametrize("name", ACCEPTED)
def test_every_name_in_every_dialect(name: str, dialect: str, policy: Unsupported) -> None:
    query = f"id_token_hint=e30.x-Y_z&action={name}&device_id=AB%2FCD+E"
    portal = BUILTIN_DIALECTS[dialect].portal_name(stable_of(name))
    decision = decide(query, TABLES[dialect], policy)

    assert decision.incoming == name
    assert decision.stable == stable_of(name)
    if portal == name or name in BUILTIN_DIALECTS[dialect].also_speaks:
        assert (decision.outcome, decision.query) == ("passthrough", None)
    elif portal is not None:
        assert decision.outcome == "translate"
        assert decision.sent == portal
        assert decision.query == f"id_token_hint=e30.x-Y_z&action={portal}&device_id=AB%2FCD+E"
        assert decision.reason == f"{dialect} speaks {portal} for {stable_of(name)}"
    elif policy == "strip":
        assert (decision.outcome, decision.sent) == ("strip", None)
        assert decision.query == "id_token_hint=e30.x-Y_z&device_id=AB%2FCD+E"
    elif policy == "pass":
        assert (decision.outcome, decision.query) == ("passthrough", None)
    else:
        assert (decision.outcome, decision.query) == ("redirect-unsupported", None)
        assert decision.location == OPERATOR_PAGE
        assert decision.reason == f"{stable_of(name)} is not served by {dialect}"
    if decision.query is not None:
        assert decide(decision.query, TABLES[dialect], policy).outcome == "passthrough"


# --- the client vectors --------------------------------------------------------------------

#: what each vector's query becomes on mas-0.9 with `unsupported: strip` (None: passed through)
MAS_09_EXPECTED = {
    "action=org.matrix.device_delete&device_id=ABCDEFGH": (
        "action=org.matrix.session_end&device_id=ABCDEFGH"
    ),
    "action=org.matrix.device_view&device_id=ABCDEFGH": (
        "action=org.matrix.session_view&device_id=ABCDEFGH"
    ),
    "action=org.matrix.session_view&device_id=ABCDEFGH": None,
    "action=org.matrix.sessions_list": None,
    "action=org.matrix.session_end&device_id=ABCDEFGH": None,
    "action=org.matrix.devices_list": "action=org.matrix.sessions_list",
    "action=session_end&device_id=ABCDEFGH": "action=org.matrix.session_end&device_id=ABCDEFGH",
    "action=org.matrix.profile": None,
    "action=org.matrix.account_deactivate": "",
}


def vector_queries() -> list[str]:
    links = json.loads(VECTORS.read_text(encoding="utf-8"))["deep_links"]
    return [link["url"].partition("?")[2] for link in links]


def test_the_expectations_cover_every_vector() -> None:
    assert set(vector_queries()) == set(MAS_09_EXPECTED)


@pytest.mark.parametrize("query", vector_queries())
def test_client_vectors_on_mas_09(query: str) -> None:
    assert decide(query, MAS_09, "strip").query == MAS_09_EXPECTED[query]


@pytest.mark.parametrize("dialect", TABLES)
@pytest.mark.parametrize("query", vector_queries())
def test_client_vectors_land_on_a_name_the_portal_speaks(query: str, dialect: str) -> None:
    table = TABLES[dialect]
    decision = decide(query, table, "strip")
    result = query if decision.query is None else decision.query
    for param in parse_query(result):
        if param.is_action:
            assert param.value is not None
            assert table.speaks(param.value)
    assert ("device_id=ABCDEFGH" in result) == ("device_id=ABCDEFGH" in query)


# --- the odd shapes clients and attackers send ---------------------------------------------

ODD_QUERIES = [
    # (raw query, outcome, new query) on mas-0.9 with `unsupported: strip`
    ("", "passthrough", None),
    ("device_id=X", "passthrough", None),
    ("action", "passthrough", None),
    ("action=", "passthrough", None),
    ("action=&action=org.matrix.device_view", "passthrough", None),
    ("action=nonsense", "passthrough", None),
    ("action=org.matrix.deactivate_account", "passthrough", None),
    ("action=ORG.MATRIX.DEVICE_VIEW", "passthrough", None),
    ("action=%FF", "passthrough", None),
    ("action=org.matrix.device_view%FF", "passthrough", None),
    ("action=org.matrix.device_view%0D%0A", "passthrough", None),
    ("action=org.matrix.device_view%00", "passthrough", None),
    ("action=org.matrix.device_view\r\nSet-Cookie:x", "passthrough", None),
    ("action=+org.matrix.device_view", "passthrough", None),
    ("action=org.matrix.device_view;device_id=X", "passthrough", None),
    # spoken after decoding: the portal decodes too
    ("action=org%2Ematrix.session_end", "passthrough", None),
    ("action=org%2ematrix%2esession_end", "passthrough", None),
    # translated: only the value bytes change
    ("device_id=A+B&action=org.matrix.device_delete", "translate", None),
    ("action=org%2Ematrix.device_delete", "translate", "action=org.matrix.session_end"),
    ("%61ction=org.matrix.device_delete", "translate", "%61ction=org.matrix.session_end"),
    ("action=org.matrix.device_view&device_id=A%20B;c", "translate", None),
    ("&&action=org.matrix.devices_list&", "translate", "&&action=org.matrix.sessions_list&"),
    ("x&action=org.matrix.device_view&y=", "translate", "x&action=org.matrix.session_view&y="),
    ("action=org.matrix.device_view=x", "passthrough", None),
    # repeated action: decided on the first, every action brought to the portal's names
    (
        "action=org.matrix.device_view&action=session_end&action=x",
        "translate",
        "action=org.matrix.session_view&action=org.matrix.session_end&action=x",
    ),
    ("action=org.matrix.session_view&action=org.matrix.device_delete", "passthrough", None),
    ("action=nonsense&action=org.matrix.device_delete", "passthrough", None),
    (
        "action=org.matrix.device_view&action=org.matrix.account_deactivate&b=1",
        "translate",
        "action=org.matrix.session_view&b=1",
    ),
    # unsupported, stripped with the `&` that joined it
    ("action=org.matrix.account_deactivate", "strip", ""),
    ("a=1&action=org.matrix.account_deactivate", "strip", "a=1"),
    ("action=org.matrix.account_deactivate&a=1", "strip", "a=1"),
    ("a=1&action=org.matrix.account_deactivate&b=2", "strip", "a=1&b=2"),
    ("a=1&&action=org.matrix.account_deactivate", "strip", "a=1&"),
    (
        "action=org.matrix.account_deactivate&action=org.matrix.device_view",
        "strip",
        "action=org.matrix.session_view",
    ),
    (
        "action=org.matrix.account_deactivate&action=org.matrix.account_deactivate",
        "strip",
        "",
    ),
]


@pytest.mark.parametrize(("query", "outcome", "new_query"), ODD_QUERIES)
def test_odd_queries(query: str, outcome: str, new_query: str | None) -> None:
    decision = decide(query, MAS_09, "strip")
    assert decision.outcome == outcome
    if outcome == "translate" and new_query is None:  # the single action, translated in place
        new_query = query.replace("org.matrix.device_delete", "org.matrix.session_end").replace(
            "org.matrix.device_view", "org.matrix.session_view"
        )
    assert decision.query == new_query


@pytest.mark.parametrize(
    ("query", "incoming", "reason"),
    [
        ("", None, "no action parameter"),
        ("action=%FF", None, "the action value is not UTF-8 or holds CR, LF or NUL"),
        ("action=%0D%0A", None, "the action value is not UTF-8 or holds CR, LF or NUL"),
        ("action", "", "the action parameter is empty"),
        ("action=x+y", "x y", "'x y' is not a known action name"),
        ("action=" + "x" * 100, "x" * 100, repr("x" * 64 + "...") + " is not a known action name"),
        (
            "action=org.matrix.session_end",
            "org.matrix.session_end",
            "mas-0.9 speaks org.matrix.session_end as sent",
        ),
        (
            "action=org.matrix.account_deactivate",
            "org.matrix.account_deactivate",
            "org.matrix.account_deactivate is not served by mas-0.9; unsupported: pass",
        ),
    ],
)
def test_passthrough_reasons(query: str, incoming: str | None, reason: str) -> None:
    decision = decide(query, MAS_09, "pass")
    assert decision.outcome == "passthrough"
    assert (decision.incoming, decision.reason) == (incoming, reason)


def test_custom_dialect_and_extra_alias() -> None:
    dialect = Dialect("custom", MappingProxyType({"org.matrix.device_delete": "delete_device"}))
    table = build_action_table(dialect, {"org.matrix.delete_device": "org.matrix.device_delete"})
    decision = decide("action=org.matrix.delete_device&device_id=X", table, "strip")
    assert decision.query == "action=delete_device&device_id=X"
    assert decision.reason == "custom speaks delete_device for org.matrix.device_delete"
    assert decide("action=delete_device", table, "strip").outcome == "passthrough"
    assert decide("action=org.matrix.profile", table, "strip").query == ""


def test_a_contradictory_table_is_passed_through_not_looped() -> None:
    # the dialect's names for two actions are each other's aliases: translating would ping-pong
    dialect = Dialect(
        "custom",
        MappingProxyType(
            {"org.matrix.device_view": "session_end", "org.matrix.device_delete": "session_view"}
        ),
    )
    table = build_action_table(dialect, {})
    decision = decide("action=org.matrix.device_view", table, "strip")
    assert decision.outcome == "passthrough"
    assert decision.reason == (
        "custom's name session_end for org.matrix.device_view is an alias of "
        "org.matrix.device_delete; fix account_management"
    )


# --- hypothesis properties -----------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())
OTHER_PIECE = st.text(ANY_CHAR.filter(lambda c: c != "&")).filter(
    lambda piece: unquote_plus(piece.partition("=")[0], errors="replace") != "action"
)
ACTION_NAME = st.sampled_from(["action", "%61ction", "act%69on"])
ACTION_VALUE = st.one_of(
    st.sampled_from([*ACCEPTED, "", "x", "org.matrix.deactivate_account"]),
    st.sampled_from(ACCEPTED).map(lambda n: n.replace(".", "%2E", 1)),
    st.text(ANY_CHAR.filter(lambda c: c != "&")),
)
ACTION_PIECE = st.one_of(
    st.builds(lambda n, v: f"{n}={v}", ACTION_NAME, ACTION_VALUE), st.just("action")
)
PIECES = st.lists(st.one_of(OTHER_PIECE, ACTION_PIECE), max_size=8)
FRAGMENTS = st.lists(
    st.sampled_from(
        [
            *("action", "=", "&", ";", "+", "%", "%FF", "%0D%0A", "%2E", "%61", "\udcff", "\r"),
            *ACCEPTED,
        ]
    )
    | st.text(ANY_CHAR, max_size=3)
)
ANY_TABLE = st.sampled_from(list(TABLES.values()))
ANY_POLICY = st.sampled_from(POLICIES)


def split(query: str) -> list[str]:
    """The pieces of a query; the empty query has none (stripping the only action leaves it)."""
    return query.split("&") if query else []


def is_action(piece: str) -> bool:
    return decode_component(piece.partition("=")[0]) == "action"


def stripped(piece: str, table: ActionTable, policy: Unsupported) -> bool:
    """True for an action piece naming a known action the portal cannot serve, under strip."""
    stable = table.to_stable(decode_component(piece.partition("=")[2]) or "")
    return policy == "strip" and stable is not None and table.to_portal(stable) is None


def without_action_values(pieces: list[str]) -> list[str]:
    return [piece.partition("=")[0] if is_action(piece) else piece for piece in pieces]


@given(PIECES, ANY_TABLE, ANY_POLICY)
@example(["action=org.matrix.device_view", "action=org.matrix.account_deactivate"], MAS_09, "strip")
def test_only_action_values_change(
    pieces: list[str], table: ActionTable, policy: Unsupported
) -> None:
    decision = decide("&".join(pieces), table, policy)
    if decision.query is None:
        return
    kept = [p for p in pieces if not (is_action(p) and stripped(p, table, policy))]
    expected = split("&".join(kept))
    assert without_action_values(split(decision.query)) == without_action_values(expected)


@given(PIECES, ANY_TABLE, ANY_POLICY)
def test_every_other_piece_survives_in_order(
    pieces: list[str], table: ActionTable, policy: Unsupported
) -> None:
    query = "&".join(pieces)
    decision = decide(query, table, policy)
    result = query if decision.query is None else decision.query
    before = [p for p in split(query) if not is_action(p)]
    after = [p for p in split(result) if not is_action(p)]
    # compared as joined text: a lone empty piece ("&action=x" stripped) and no piece are both ""
    assert "&".join(after) == "&".join(before)
    assert len(after) == len(before) or "&".join(before) == ""


@given(PIECES, ANY_TABLE, ANY_POLICY)
def test_deciding_twice_equals_deciding_once(
    pieces: list[str], table: ActionTable, policy: Unsupported
) -> None:
    decision = decide("&".join(pieces), table, policy)
    if decision.query is not None:
        again = decide(decision.query, table, policy)
        assert (again.outcome, again.query) == ("passthrough", None)


@given(st.text(ANY_CHAR) | FRAGMENTS.map("".join), ANY_TABLE, ANY_POLICY)
def test_never_raises_and_stays_idempotent(
    query: str, table: ActionTable, policy: Unsupported
) -> None:
    decision = decide(query, table, policy)
    if decision.query is not None:
        assert decide(decision.query, table, policy).outcome == "passthrough"


# --- entry paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "entries", "expected"),
    [
        ("/account/", ("/account/",), True),
        ("/account", ("/account/",), True),
        ("/account/", ("/account",), True),
        ("/account", ("/account",), True),
        ("/account/sessions", ("/account/",), False),
        ("/account//", ("/account/",), False),
        ("/accounts", ("/account/",), False),
        ("/Account/", ("/account/",), False),
        ("/", ("/",), True),
        ("/x", ("/",), False),
        ("/manage", ("/account/", "/manage/"), True),
        ("/account/", (), False),
    ],
)
def test_is_entry_path(path: str, entries: tuple[str, ...], expected: bool) -> None:
    assert is_entry_path(path, entries) is expected


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [("/account/", True), ("/%61ccount", True), ("/account%2F", True), ("/account%FF", False)],
)
def test_is_entry_raw_path_decodes_strictly(raw_path: str, expected: bool) -> None:
    assert is_entry_raw_path(raw_path, ("/account/",)) is expected


# --- redirect locations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_path", "query", "location"),
    [
        ("/account/", "action=org.matrix.session_end&device_id=X", None),
        ("/account", "a=%FF&b=+;c", None),
        ("/account/", "", "/account/"),
        ("/account/?old=1", "new=2", "/account/?new=2"),
        ("/account/#frag", "", "/account/"),
        ("//evil.example/account/", "a=1", "/evil.example/account/?a=1"),
        ("///evil.example", "", "/evil.example"),
        ("/\\evil.example", "", "/evil.example"),
        ("\\\\evil.example", "", "/evil.example"),
        ("/\t/evil.example", "", "/%09/evil.example"),
        ("/\r\n/evil.example", "", "/%0D%0A/evil.example"),
        (" //evil.example", "", "/%20//evil.example"),
        ("http://evil.example/account/", "a=1", "/account/?a=1"),
        ("https://evil.example", "", "/"),
        ("javascript:alert(1)", "", "/javascript:alert(1)"),
        ("", "", "/"),
        ("/account/\udcff\u00e9", "", "/account/%FF%C3%A9"),
        ("/account/", "a=\r\nSet-Cookie:%20x\x00", "/account/?a=%0D%0ASet-Cookie:%20x%00"),
        ("/account/", "a=#b", "/account/?a=%23b"),
    ],
)
def test_redirect_location(raw_path: str, query: str, location: str | None) -> None:
    expected = location if location is not None else f"{raw_path}?{query}"
    assert redirect_location(raw_path, query) == expected


@given(st.text(ANY_CHAR), st.text(ANY_CHAR))
def test_redirect_location_stays_on_the_origin(raw_path: str, query: str) -> None:
    location = redirect_location(raw_path, query)
    assert location.startswith("/")
    assert location[1:2] not in ("/", "\\")
    assert location.isascii()
    assert not any(c in location for c in "\r\n\0\t #")


# --- the plan: a decision with the strategy applied, shared by the proxy and `translate` ---------

DL = "org.matrix.device_delete"
GONE = "org.matrix.account_deactivate"  # no built-in legacy dialect serves it


@pytest.mark.parametrize(
    ("query", "strategy", "unsupported", "outcome", "location", "target"),
    [
        (f"action={DL}&device_id=A", "redirect", "strip", "redirect",
         "/account/?action=org.matrix.session_end&device_id=A", None),
        (f"action={DL}&device_id=A", "rewrite", "strip", "rewrite",
         None, "/account/?action=org.matrix.session_end&device_id=A"),
        (f"action={GONE}&x=1", "redirect", "strip", "strip", "/account/?x=1", None),
        (f"action={GONE}", "rewrite", "strip", "strip", None, "/account/"),
        (f"action={GONE}", "redirect", RedirectUnsupported("https://help.example/"),
         "redirect-unsupported", "https://help.example/", None),
        (f"action={GONE}", "rewrite", "pass", "passthrough", None, None),
        ("action=org.matrix.session_end", "redirect", "strip", "passthrough", None, None),
        ("device_id=A", "rewrite", "strip", "passthrough", None, None),
    ],
)  # fmt: skip
def test_plan_applies_the_strategy(
    query: str,
    strategy: Strategy,
    unsupported: Unsupported,
    outcome: str,
    location: str | None,
    target: str | None,
) -> None:
    account = AccountManagementConfig(table=MAS_09, strategy=strategy, unsupported=unsupported)
    plan = plan_deeplink("/account/", query, account)
    assert (plan.outcome, plan.location, plan.target) == (outcome, location, target)
    assert plan.decision == decide(query, MAS_09, unsupported)


# --- the fast paths give what the general ones give ------------------------------------------

_query_text = st.text(alphabet=st.sampled_from("action=&%+2Fab.\r\x00é\udcff_-41"), max_size=30)


def _slow_decode(raw: str) -> str | None:
    try:
        text = unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeError:
        return None
    return None if set("\r\n\0") & set(text) else text


@given(_query_text | st.text(max_size=20))
@example("plain")
@example("a\rb")
def test_decode_component_fast_path_is_the_general_one(raw: str) -> None:
    assert decode_component(raw) == _slow_decode(raw)


@given(
    _query_text | st.sampled_from(["action=org.matrix.device_delete&device_id=X", "%61ction=x"]),
    st.sampled_from(list(TABLES)),
    st.sampled_from(POLICIES),
)
def test_decide_reads_the_first_action_as_parse_query_does(
    raw_query: str, dialect: str, policy: Unsupported
) -> None:
    params = parse_query(raw_query)
    first = next((p for p in params if p.is_action), None)
    decision = decide(raw_query, TABLES[dialect], policy)
    assert decision.incoming == (first.value if first is not None else None)
    if decision.query is not None:  # only pieces named action changed
        kept = [p.raw for p in params if not p.is_action]
        assert [p.raw for p in parse_query(decision.query) if not p.is_action] == kept


@given(st.text(max_size=30), _query_text)
@example("https://evil.example/x", "a=b")
@example("/a b#c", "x=é")
def test_redirect_location_fast_paths_are_the_general_one(raw_path: str, query: str) -> None:
    path = re.split(r"[?#]", raw_path, maxsplit=1)[0]
    reference = split_reference(path)
    path = reference.rest if reference.is_absolute else path
    unsafe = re.compile(r"[^\x21-\x7e]|#")

    def encode(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            try:
                data = m.group().encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                data = m.group().encode("utf-8", "surrogatepass")
            return "".join(f"%{b:02X}" for b in data)

        return unsafe.sub(one, text)

    path = "/" + encode(path).lstrip("/\\")
    assert redirect_location(raw_path, query) == (f"{path}?{encode(query)}" if query else path)
