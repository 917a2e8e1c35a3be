"""`doctor.report`: the sections, the problems list, text and JSON; exit status from FAILs."""

from __future__ import annotations

import json

from shim.doctor.chain import ChainAnswers, read_chain
from shim.doctor.links import judge, planned_links
from shim.doctor.report import (
    Report,
    Section,
    format_findings,
    format_json,
    format_text,
    homeserver_sections,
    stopped_report,
    unreachable,
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


def test_a_finding_that_introduces_its_reasons_reads_on_into_them() -> None:
    """`…, because:` is followed by its reasons, and what to do comes after them."""
    because = Finding("INFO", "still needed, because:", "or upgrade the portal", ("one", "two"))
    plain = Finding("WARN", "a thing", "do this", ("detail",))
    assert format_findings([because, plain]) == [
        "INFO  still needed, because:",
        "        - one",
        "        - two",
        "      — or upgrade the portal",
        "WARN  a thing  — do this",
        "        - detail",
    ]


def test_a_homeserver_that_answers_nothing_stops_the_run_in_one_line() -> None:
    down = NoAnswer("cannot connect to matrix.example.com:443: connection refused")
    answers = ChainAnswers(HS, HS, down, down, down, down, None, None)
    finding = unreachable(answers)
    assert finding is not None
    assert finding.what == (
        f"the homeserver {HS} does not answer: cannot connect to matrix.example.com:443: "
        "connection refused"
    )
    report = stopped_report("header", finding, {"homeserver": HS})
    assert report.exit_status == 1
    assert format_text(report) == f"FAIL  {finding.what}  — {finding.todo}"
    assert json.loads(format_json(report))["problems"] == [finding.what]


def test_a_homeserver_that_answers_anything_gets_the_whole_report() -> None:
    down = NoAnswer("connection refused")
    missing = Answer(404, b"")
    assert unreachable(ChainAnswers(HS, HS, missing, down, down, down, None, None)) is None
    assert unreachable(ChainAnswers(HS, HS, down, down, down, missing, None, None)) is None


def test_an_issuer_alone_that_does_not_answer_is_one_finding() -> None:
    down = NoAnswer("no answer within 5 s")
    finding = unreachable(ChainAnswers(None, None, None, None, None, None, ISSUER, down))
    assert finding is not None
    assert finding.what == f"the issuer {ISSUER} does not answer: no answer within 5 s"
    # beside a homeserver that answered, an issuer that does not is a finding among the others
    ok = Answer(200, b"{}")
    assert unreachable(ChainAnswers(HS, HS, ok, ok, ok, ok, ISSUER, down)) is None
