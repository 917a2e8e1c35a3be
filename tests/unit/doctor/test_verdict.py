"""`doctor.verdict`: the portal's era from its document, and whether the shim is needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from demo.portal import discovery_document
from shim.doctor.chain import Metadata
from shim.doctor.links import deep_link, judge
from shim.doctor.values import Followed, Hop
from shim.doctor.verdict import check_era, portal_era, shim_reasons, verdict
from tests.support.paths import REPO

VECTORS = json.loads((REPO / "tests/data/vectors.json").read_text(encoding="utf-8"))
ACCOUNT = "https://auth.example.com/account/"


def vector(era: str) -> dict[str, Any]:
    doc = VECTORS["discovery"][era]
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    ("doc", "era"),
    [
        (vector("prototype-unstable-keys"), "a prototype portal (only the unstable"),
        (vector("mas-0.9-to-1.9"), "MAS 0.9-1.9 (legacy names, with cross-signing reset)"),
        (vector("mas-1.10-and-later"), "MAS-like 1.10 or later"),
        (discovery_document("mas-0.7", "https://a/"), "MAS 0.7-0.8 (legacy names, no cross"),
        (discovery_document("msc3824", "https://a/"), "a portal without account-management"),
        ({"account_management_actions_supported": ["session_end"]}, "an MSC3824-era portal"),
        ({"account_management_actions_supported": ["org.matrix.device_delete"]}, "a portal that"),
        ({"account_management_actions_supported": []}, None),
    ],
)
def test_eras(doc: dict[str, Any], era: str | None) -> None:
    found = portal_era(doc)
    assert found == era if era is None else (found or "").startswith(era)


def test_the_era_says_how_to_read_the_version() -> None:
    [finding] = check_era(vector("mas-0.9-to-1.9"), translated=False)
    assert "GET /api/admin/v1/version with an admin token" in finding.todo
    [hidden] = check_era(vector("mas-1.10-and-later"), translated=True)
    assert "its era is hidden" in hidden.what
    assert check_era(None, translated=False) == []


def meta(names: list[str] | None, uri: str | None = ACCOUNT) -> Metadata:
    return Metadata("auth_metadata", {}, uri, None if names is None else tuple(names))


def renamed(stable: str, legacy: str) -> Any:
    url = deep_link(ACCOUNT, stable)
    hops = (Hop(url, 302), Hop(url.replace(stable, legacy), 200))
    return judge(Followed(url, hops), stable)


def test_nothing_read_cannot_tell() -> None:
    assert shim_reasons(None, False, []) == ([], [])
    assert verdict([], [], None, read=False).what.startswith("cannot tell")


def test_no_uri_or_refused_needs_the_shim() -> None:
    missing, in_front = shim_reasons(meta(None, uri=None), True, [])
    assert missing == [
        "Synapse refuses the issuer's document (auth_metadata answers 500)",
        "clients find no account_management_uri",
    ]
    assert in_front == []
    finding = verdict(missing, in_front, None)
    assert finding.what.startswith("this deployment needs the shim")
    assert "MAS >= 1.10 (ess-helm >= 26.1.3" in finding.todo


def test_a_translator_in_front_is_still_needed() -> None:
    landing = renamed("org.matrix.device_delete", "org.matrix.session_end")
    missing, in_front = shim_reasons(meta(["org.matrix.device_delete"]), False, [landing])
    assert missing == []
    assert in_front == [
        "a redirect in front of the portal renames stable names "
        "(org.matrix.device_delete -> org.matrix.session_end)"
    ]
    assert verdict(missing, in_front, None).what.startswith("the shim (or another translator)")


def test_a_stable_portal_needs_none() -> None:
    names = vector("mas-1.10-and-later")["account_management_actions_supported"]
    missing, in_front = shim_reasons(meta(names), False, [])
    assert (missing, in_front) == ([], [])
    finding = verdict(missing, in_front, "MAS 1.10 or later")
    assert (
        finding.what
        == "this deployment does not need the shim: the portal looks like MAS 1.10 or later"
    )
