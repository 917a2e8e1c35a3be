"""`doctor.report`: the sections, the problems list, text and JSON; exit status from FAILs."""

from __future__ import annotations

import json

from shim.doctor.chain import ChainAnswers, read_chain
from shim.doctor.links import judge, planned_links
from shim.doctor.report import (
    Report,
    Section,
    format_json,
    format_text,
    homeserver_sections,
)
from shim.doctor.values import Answer, Finding, Followed, Hop, NoAnswer
from tests.support.paths import REPO

VECTORS = json.loads((REPO / "tests/data/vectors.json").read_text(encoding="utf-8"))
HS = "https://matrix.example.com"
ISSUER = "https://auth.example.com/"


def test_problems_and_exit_status() -> None:
    fail = Finding("FAIL", "a broken thing", "fix it")
    report = Report("head", (Section("one", (Finding("OK", "fine"),)), Section("two", (fail,))))
    assert report.exit_status == 1
    text = format_text(report)
    assert text.splitlines() == [
        "head",
        "== one",
        "OK    fine",
        "== two",
        "FAIL  a broken thing  — fix it",
        "1 problem:",
        "  - a broken thing",
    ]
    data = json.loads(format_json(report))
    assert data["problems"] == ["a broken thing"]
    assert data["sections"][1]["findings"][0] == {
        "level": "FAIL",
        "what": "a broken thing",
        "todo": "fix it",
        "details": [],
    }
    clean = Report("head", (Section("one", (Finding("WARN", "odd"),)),))
    assert clean.exit_status == 0
    assert format_text(clean).endswith("no problems: clients will work")


def test_a_mas_1_10_deployment_end_to_end_in_memory() -> None:
    doc = Answer(200, json.dumps(VECTORS["discovery"]["mas-1.10-and-later"]).encode())
    well_known = Answer(200, json.dumps(VECTORS["discovery"]["well-known-matrix-client"]).encode())
    versions = Answer(200, b'{"versions": ["v1.15"]}')
    answers = ChainAnswers(HS, HS, well_known, versions, doc, doc, ISSUER, doc)
    _, metadata = read_chain(answers)
    landings = {
        url: judge(Followed(url, (Hop(url, 200),)), action)
        for url, action in planned_links(metadata)
    }
    sections, needs, facts = homeserver_sections(answers, landings)
    assert [s.title for s in sections] == [
        "discovery",
        "advertised deep links",
        "clients",
        "verdict",
    ]
    assert needs is False
    assert facts["account_management_uri"] == "https://auth.example.com/account/"
    assert not [f for s in sections for f in s.findings if f.level in ("WARN", "FAIL")]


def test_an_unreachable_homeserver_cannot_tell() -> None:
    down = NoAnswer("Connection refused")
    answers = ChainAnswers(HS, HS, down, down, down, down, None, None)
    sections, needs, _ = homeserver_sections(answers, {})
    assert needs is None
    assert [s.title for s in sections] == ["discovery", "verdict"]
    assert sections[-1].findings[0].what.startswith("cannot tell whether this deployment needs")
