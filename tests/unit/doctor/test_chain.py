"""`doctor.chain`: the discovery chain read from answers in memory, no network."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.doctor.chain import (
    ChainAnswers,
    client_base,
    issuer_of,
    parse_base_url,
    read_chain,
)
from shim.doctor.values import Answer, Fetched, Finding, NoAnswer
from tests.support.paths import REPO

VECTORS = json.loads((REPO / "tests/data/vectors.json").read_text(encoding="utf-8"))
HS = "https://matrix.example.com"
ISSUER = "https://auth.example.com/"
REFUSED = Answer(500, b'{"errcode": "M_UNKNOWN", "error": "Internal server error"}')


def doc(era: str) -> dict[str, Any]:
    document = dict(VECTORS["discovery"][era])
    document.pop("_about", None)
    return document


def ok(body: object) -> Answer:
    return Answer(200, json.dumps(body).encode())


def answers(
    issuer_doc: Fetched | None,
    *,
    auth_metadata: Fetched | None = None,
    well_known: Fetched | None = None,
) -> ChainAnswers:
    well_known = well_known or ok(VECTORS["discovery"]["well-known-matrix-client"])
    return ChainAnswers(
        HS,
        HS,
        well_known,
        ok({"versions": ["v1.11", "v1.9", "r0.6.1"]}),
        auth_metadata if auth_metadata is not None else issuer_doc,
        auth_metadata if auth_metadata is not None else issuer_doc,
        ISSUER,
        issuer_doc,
    )


def levels(findings: list[Finding]) -> dict[str, str]:
    return {f.what: f.level for f in findings}


def test_mas_1_10_reads_clean() -> None:
    findings, metadata = read_chain(answers(ok(doc("mas-1.10-and-later"))))
    assert metadata is not None
    assert metadata.source == "auth_metadata"
    assert metadata.account_uri == "https://auth.example.com/account/"
    assert metadata.names is not None
    assert metadata.names[:2] == ("org.matrix.profile", "org.matrix.devices_list")
    assert [f.level for f in findings if f.level != "OK"] == []
    assert findings[1].what.endswith("(newest spec version v1.11)")


def test_synapse_refusing_a_prototype_document() -> None:
    findings, metadata = read_chain(
        answers(ok(doc("prototype-unstable-keys")), auth_metadata=REFUSED)
    )
    assert metadata is not None
    assert metadata.source == "the issuer's document"
    refused = [f for f in findings if "answers 500 M_UNKNOWN (Internal server error)" in f.what]
    assert len(refused) == 2
    assert all(f.level == "FAIL" for f in refused)
    assert "Synapse answers 500 when the issuer's document has no account_management_uri" in (
        refused[0].todo
    )
    missing = next(f for f in findings if "has no account_management_uri" in f.what)
    assert missing.level == "FAIL"
    assert "(only the unstable org.matrix.msc4191.account_management_uri)" in missing.what


def test_documents_that_disagree() -> None:
    shim = ok(doc("mas-1.10-and-later"))
    portal = ok(doc("mas-0.9-to-1.9"))
    chain = ChainAnswers(HS, HS, None, ok({"versions": []}), shim, shim, ISSUER, portal)
    findings, metadata = read_chain(chain)
    assert metadata is not None
    assert metadata.source == "auth_metadata"
    disagree = [f for f in findings if f.what.startswith("the documents disagree on")]
    assert [f.what for f in disagree] == [
        "the documents disagree on account_management_actions_supported"
    ]
    assert disagree[0].level == "WARN"
    assert disagree[0].details[-1].startswith("the issuer's document: [")


def test_a_well_known_account_page_that_differs() -> None:
    well_known = ok(
        {"org.matrix.msc2965.authentication": {"issuer": ISSUER, "account": "https://x.test/"}}
    )
    findings, _ = read_chain(answers(ok(doc("mas-1.10-and-later")), well_known=well_known))
    assert (
        levels(findings)[
            "org.matrix.msc2965.authentication.account (https://x.test/) is not the documents'"
        ]
        == "WARN"
    )


def test_missing_spec_keys_are_a_problem() -> None:
    broken = doc("mas-1.10-and-later")
    del broken["revocation_endpoint"]
    broken["code_challenge_methods_supported"] = ["plain"]
    findings, _ = read_chain(answers(ok(broken)))
    failed = next(f for f in findings if "lacks what the Matrix spec requires" in f.what)
    assert failed.level == "FAIL"
    assert failed.details == (
        "revocation_endpoint",
        "code_challenge_methods_supported without S256",
    )


def test_nothing_answers() -> None:
    down = NoAnswer("Connection refused")
    chain = ChainAnswers(HS, HS, down, down, down, down, None, None)
    findings, metadata = read_chain(chain)
    assert metadata is None
    assert levels(findings) == {
        f"{HS}/.well-known/matrix/client does not answer: Connection refused": "INFO",
        f"the homeserver does not answer: {HS}/_matrix/client/versions: Connection refused": "FAIL",
        f"auth_metadata {HS}/_matrix/client/v1/auth_metadata does not answer: Connection refused": (
            "FAIL"
        ),
        "unstable auth_metadata "
        f"{HS}/_matrix/client/unstable/org.matrix.msc2965/auth_metadata does not answer: "
        "Connection refused": "FAIL",
        "no issuer to ask: neither auth_metadata nor the well-known names one": "FAIL",
        "no discovery document clients could read": "FAIL",
    }


def test_issuer_only() -> None:
    chain = ChainAnswers(None, None, None, None, None, None, ISSUER, ok(doc("mas-0.9-to-1.9")))
    findings, metadata = read_chain(chain)
    assert metadata is not None
    assert metadata.source == "the issuer's document"
    assert findings[0].what.startswith("the issuer's document https://auth.example.com/.well-known")


def test_where_to_ask() -> None:
    well_known = ok(
        {
            "m.homeserver": {"base_url": "https://matrix-client.example.com"},
            "org.matrix.msc2965.authentication": {"issuer": "https://wk.example.com/"},
        }
    )
    assert client_base("https://example.com", well_known) == "https://matrix-client.example.com"
    assert client_base("https://example.com", NoAnswer("x")) == "https://example.com"
    assert client_base("https://example.com", ok({"m.homeserver": {"base_url": "nope"}})) == (
        "https://example.com"
    )
    metadata = ok({"issuer": "https://am.example.com/"})
    assert issuer_of("https://given/", [metadata], well_known) == "https://given/"
    assert issuer_of(None, [REFUSED, metadata], well_known) == "https://am.example.com/"
    assert issuer_of(None, [REFUSED, None], well_known) == "https://wk.example.com/"
    assert issuer_of(None, [REFUSED], NoAnswer("x")) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.com", "https://example.com"),
        ("http://127.0.0.1:8008", "http://127.0.0.1:8008"),
        (" https://example.com/base/ ", "https://example.com/base/"),
    ],
)
def test_base_urls(given: str, expected: str) -> None:
    assert parse_base_url(given) == expected


@pytest.mark.parametrize(
    "given", ["ftp://example.com", "https://", "https://x/?a=1", "http://x/#f"]
)
def test_bad_base_urls(given: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_base_url(given)
