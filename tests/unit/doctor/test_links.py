"""`doctor.links` and `doctor.clients`: deep-link URLs, hops judged, clients graded; no network."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.doctor.chain import Metadata
from shim.doctor.clients import CLIENT_LINKS, PLACEHOLDER_DEVICE_ID, stable_name
from shim.doctor.links import (
    Landing,
    action_of,
    check_advertised,
    check_clients,
    check_names,
    deep_link,
    judge,
    judge_client_link,
    next_url,
    planned_links,
)
from shim.doctor.values import Followed, Hop
from shim.vocabulary import BUILTIN_ALIASES, STABLE_ACTIONS
from tests.support.paths import REPO

VECTORS = json.loads((REPO / "tests/data/vectors.json").read_text(encoding="utf-8"))
ACCOUNT = "https://auth.example.com/account/"


def metadata(names: Sequence[str] | None, uri: str | None = ACCOUNT) -> Metadata:
    return Metadata("auth_metadata", {}, uri, None if names is None else tuple(names))


def landed(url: str, action: str, *hops: tuple[int, str | None]) -> Landing:
    """A landing whose hops are (status, the URL of that hop or None for `url`)."""
    return judge(Followed(url, tuple(Hop(u or url, s) for s, u in hops)), action)


def test_the_client_table_matches_the_vectors() -> None:
    """Every client form of tests/data/vectors.json is in the product's table, and no other."""
    in_vectors = {action_of(link["url"]) for link in VECTORS["deep_links"]}
    assert in_vectors == {link.action for link in CLIENT_LINKS}
    for link in VECTORS["deep_links"]:
        action = action_of(link["url"])
        assert action is not None
        assert deep_link(ACCOUNT, action) == link["url"].replace("ABCDEFGH", PLACEHOLDER_DEVICE_ID)


def test_deep_links() -> None:
    assert deep_link(ACCOUNT, "org.matrix.profile") == f"{ACCOUNT}?action=org.matrix.profile"
    assert deep_link("https://a.test/acc?lang=en", "session_end") == (
        f"https://a.test/acc?lang=en&action=session_end&device_id={PLACEHOLDER_DEVICE_ID}"
    )
    assert deep_link(ACCOUNT, "a b&c") == f"{ACCOUNT}?action=a%20b%26c"


def test_stable_names() -> None:
    assert {stable_name(s) for s in STABLE_ACTIONS} == set(STABLE_ACTIONS)
    assert all(stable_name(alias) == stable for alias, stable in BUILTIN_ALIASES.items())
    assert stable_name("org.example.other") is None


def test_redirect_targets() -> None:
    assert next_url(f"{ACCOUNT}?a=1", "/account/?b=2") == "https://auth.example.com/account/?b=2"
    assert next_url(ACCOUNT, "https://login.example.com/") == "https://login.example.com/"
    assert next_url(ACCOUNT, "javascript:alert(1)") is None


def test_a_translating_redirect_is_seen() -> None:
    url = deep_link(ACCOUNT, "org.matrix.device_delete")
    target = url.replace("device_delete", "session_end")
    landing = landed(url, "org.matrix.device_delete", (302, None), (200, target))
    assert (landing.lands, landing.reached, landing.renamed) == (
        True,
        "org.matrix.session_end",
        True,
    )
    assert landing.path == "302 -> 200"
    assert landing.origins == ()


def test_a_login_page_on_another_origin_keeps_the_last_action() -> None:
    url = deep_link(ACCOUNT, "org.matrix.profile")
    landing = landed(url, "org.matrix.profile", (302, None), (200, "https://sso.example.net/login"))
    assert (landing.lands, landing.reached, landing.renamed) == (True, "org.matrix.profile", False)
    assert landing.origins == ("https://sso.example.net",)


def test_errors_and_stops() -> None:
    url = deep_link(ACCOUNT, "org.matrix.profile")
    assert not landed(url, "org.matrix.profile", (500, None)).lands
    stopped = judge(Followed(url, (Hop(url, 302),), "more than 5 redirects"), "org.matrix.profile")
    assert (stopped.lands, stopped.path) == (False, "302 -> more than 5 redirects")
    nothing = judge(Followed(url, (), "no answer from x: refused"), "org.matrix.profile")
    assert (nothing.lands, nothing.status, nothing.path) == (
        False,
        None,
        "no answer from x: refused",
    )


@given(st.lists(st.sampled_from([200, 204, 302, 404, 500]), min_size=1, max_size=6))
def test_lands_only_on_a_final_2xx(statuses: list[int]) -> None:
    url = deep_link(ACCOUNT, "org.matrix.profile")
    landing = judge(Followed(url, tuple(Hop(url, s) for s in statuses)), "org.matrix.profile")
    assert landing.lands == (200 <= statuses[-1] < 300)


def test_the_links_doctor_opens() -> None:
    links = planned_links(metadata(["org.matrix.profile", "org.matrix.cross_signing_reset"]))
    urls = [url for url, _ in links]
    assert len(urls) == len(set(urls))
    assert urls[:2] == [
        f"{ACCOUNT}?action=org.matrix.profile",
        f"{ACCOUNT}?action=org.matrix.cross_signing_reset",
    ]
    assert len(links) == 1 + len({link.action for link in CLIENT_LINKS})
    assert planned_links(metadata(["org.matrix.profile"], uri=None)) == ()
    assert planned_links(None) == ()


def _all_land(meta: Metadata, status: int = 200) -> dict[str, Landing]:
    return {url: landed(url, action, (status, None)) for url, action in planned_links(meta)}


def test_an_advertised_action_that_fails() -> None:
    meta = metadata(["org.matrix.profile", "org.matrix.cross_signing_reset"])
    landings = _all_land(meta)
    bad = deep_link(ACCOUNT, "org.matrix.cross_signing_reset")
    landings[bad] = landed(bad, "org.matrix.cross_signing_reset", (500, None))
    findings = check_advertised(meta, landings)
    assert [f.level for f in findings] == ["OK", "FAIL"]
    assert findings[1].what == (
        "the portal advertises org.matrix.cross_signing_reset, but its deep link fails: 500"
    )


@pytest.mark.parametrize(
    ("action", "names", "level", "note"),
    [
        ("org.matrix.device_view", ["org.matrix.device_view"], "OK", "lands: 200"),
        (
            "org.matrix.device_view",
            ["org.matrix.session_view"],
            "FAIL",
            "the portal advertises org.matrix.session_view instead, and the page gets "
            "org.matrix.device_view",
        ),
        (
            "org.matrix.session_view",
            ["org.matrix.device_view"],
            "INFO",
            "an old name, not advertised (org.matrix.device_view is); lands: 200",
        ),
        (
            "org.matrix.account_deactivate",
            ["org.matrix.profile"],
            "INFO",
            "not advertised, so the client offers no such link (200)",
        ),
    ],
)
def test_client_links(action: str, names: list[str], level: str, note: str) -> None:
    link = next(link for link in CLIENT_LINKS if link.action == action)
    url = deep_link(ACCOUNT, action)
    assert judge_client_link(link, names, landed(url, action, (200, None))) == (level, note)


def test_an_advertised_client_link_that_fails() -> None:
    link = next(link for link in CLIENT_LINKS if link.action == "org.matrix.devices_list")
    url = deep_link(ACCOUNT, link.action)
    level, note = judge_client_link(link, [link.action], landed(url, link.action, (404, None)))
    assert (level, note) == ("FAIL", "does not land: 404")


def test_clients_against_a_legacy_portal() -> None:
    meta = metadata(VECTORS["discovery"]["mas-0.9-to-1.9"]["account_management_actions_supported"])
    findings = {f.what.split(":")[0]: f for f in check_clients(meta, _all_land(meta))}
    assert findings["Element Web / matrix-js-sdk (2026)"].level == "FAIL"
    assert findings["Element Web / matrix-js-sdk (2024)"].level == "OK"
    assert findings["Element X / matrix-rust-sdk (new)"].level == "FAIL"
    assert findings["Element X / matrix-rust-sdk (old)"].level == "OK"
    assert findings["Element X / matrix-rust-sdk (old)"].details[0] == (
        f"OK {ACCOUNT}?action=org.matrix.sessions_list — lands: 200"
    )


def test_clients_against_mas_1_10() -> None:
    names = VECTORS["discovery"]["mas-1.10-and-later"]["account_management_actions_supported"]
    meta = metadata(names)
    assert {f.level for f in check_clients(meta, _all_land(meta))} <= {"OK", "INFO"}


def test_names() -> None:
    legacy = check_names(
        VECTORS["discovery"]["mas-0.9-to-1.9"]["account_management_actions_supported"]
    )
    assert legacy[-1].level == "WARN"
    assert legacy[-1].details == (
        "org.matrix.sessions_list without org.matrix.devices_list",
        "org.matrix.session_view without org.matrix.device_view",
        "org.matrix.session_end without org.matrix.device_delete",
    )
    current = check_names(
        VECTORS["discovery"]["mas-1.10-and-later"]["account_management_actions_supported"]
    )
    assert [f.level for f in current] == ["INFO", "INFO"]
    assert check_names(["org.example.x"])[-1].what == "names of no known action: org.example.x"
    assert check_names(None) == []
