"""`msc4191-shim doctor`: the report in sections, as text for people or JSON for CI.

Pure. A problem is a FAIL finding: something a client will trip over. The exit status is 1 when
there is one, else 0; the text ends with the problems, so the last lines say what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from shim.core.discovery import parse_json_object
from shim.doctor.chain import ChainAnswers, read_chain
from shim.doctor.links import Landing, check_advertised, check_clients, check_names
from shim.doctor.values import Answer, Finding, NoAnswer
from shim.doctor.verdict import check_era, portal_era, shim_reasons, verdict

EXIT_OK: Final = 0
EXIT_PROBLEMS: Final = 1


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class Report:
    header: str
    sections: tuple[Section, ...]
    #: True: the deployment needs the shim (in front or not); None: doctor could not tell
    needs_shim: bool | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    #: the run stopped at its first request (nothing answered): the text is that one finding
    stopped: bool = False

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for s in self.sections for f in s.findings if f.level == "FAIL")

    @property
    def exit_status(self) -> int:
        return EXIT_PROBLEMS if self.problems else EXIT_OK


def homeserver_sections(
    answers: ChainAnswers, landings: Mapping[str, Landing]
) -> tuple[list[Section], bool | None, dict[str, Any]]:
    """The discovery, deep-link, client and verdict sections of `doctor --homeserver`.

    `landings` holds a `Landing` for each URL of `links.planned_links` (keyed by URL).
    """
    chain, metadata = read_chain(answers)
    issuer_doc = _issuer_doc(answers)
    refused = any(
        isinstance(a, Answer) and a.status == 500
        for a in (answers.auth_metadata, answers.unstable_auth_metadata)
    )
    missing, in_front = shim_reasons(metadata, refused, landings.values())
    discovery = chain + (check_names(metadata.names) if metadata else [])
    discovery += check_era(issuer_doc, translated=bool(in_front))
    sections = [Section("discovery", tuple(discovery))]
    if metadata is not None and metadata.account_uri is not None:
        advertised = check_advertised(metadata, landings)
        sections.append(Section("advertised deep links", tuple(advertised)))
        sections.append(Section("clients", tuple(check_clients(metadata, landings))))
    era = None if in_front else portal_era(issuer_doc)
    sections.append(Section("verdict", (verdict(missing, in_front, era, read=bool(metadata)),)))
    needs = bool(missing or in_front) if metadata is not None or refused else None
    facts = {
        "account_management_uri": metadata.account_uri if metadata else None,
        "account_management_actions_supported": list(metadata.names or ()) if metadata else None,
        "read_from": metadata.source if metadata else None,
        "deep_links": [_landing_fact(x) for x in landings.values()],
    }
    return sections, needs, facts


def unreachable(answers: ChainAnswers) -> Finding | None:
    """The finding that ends the run when the first server asked does not answer at all.

    Every later finding would repeat it (the same error for each path, then "no issuer", "no
    document", "cannot tell"): an operator who mistyped --homeserver wants one line.
    """
    if answers.homeserver is not None:
        asked = (
            answers.well_known,
            answers.versions,
            answers.auth_metadata,
            answers.unstable_auth_metadata,
        )
        failures = [a for a in asked if isinstance(a, NoAnswer)]
        if len(failures) < len(asked):
            return None
        what = f"the homeserver {answers.homeserver} does not answer: {failures[0].reason}"
        return Finding(
            "FAIL", what, "check --homeserver, that it runs, and that this host can reach it"
        )
    if answers.issuer is not None and isinstance(answers.issuer_document, NoAnswer):
        what = f"the issuer {answers.issuer} does not answer: {answers.issuer_document.reason}"
        return Finding(
            "FAIL", what, "check --issuer, that it runs, and that this host can reach it"
        )
    return None


def stopped_report(header: str, finding: Finding, facts: Mapping[str, Any]) -> Report:
    """A run that stopped at `finding`: printed as that one line."""
    return Report(header, (Section("reach", (finding,)),), None, facts, stopped=True)


def _issuer_doc(answers: ChainAnswers) -> dict[str, Any] | None:
    fetched = answers.issuer_document
    if not isinstance(fetched, Answer) or fetched.status != 200:
        return None
    return parse_json_object(fetched.body)


def _landing_fact(landing: Landing) -> dict[str, Any]:
    return {
        "url": landing.url,
        "action": landing.sent,
        "lands": landing.lands,
        "status": landing.status,
        "page_gets": landing.reached,
        "hops": list(landing.hops),
    }


def format_findings(findings: Iterable[Finding]) -> list[str]:
    """`LEVEL  what  — todo`, one line per finding, its details indented below it.

    A finding that introduces its details (`…, because:`) is followed by them first and its
    todo after them, so the sentence reads on into its reasons.
    """
    lines = []
    for finding in findings:
        todo = f"  — {finding.todo}" if finding.todo else ""
        introduces = finding.details and finding.what.endswith(":")
        lines.append(f"{finding.level:<4}  {finding.what}{'' if introduces else todo}")
        lines += [f"        - {detail}" for detail in finding.details]
        if introduces and finding.todo:
            lines.append(f"      — {finding.todo}")
    return lines


def format_text(report: Report) -> str:
    if report.stopped:
        return "\n".join(format_findings(report.problems))
    lines = [report.header]
    for section in report.sections:
        lines.append(f"== {section.title}")
        lines += format_findings(section.findings)
    problems = report.problems
    if problems:
        lines.append(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}:")
        lines += [f"  - {p.what}" for p in problems]
    else:
        lines.append("no problems: clients will work")
    return "\n".join(lines)


def format_json(report: Report) -> str:
    data = {
        "header": report.header,
        "exit_status": report.exit_status,
        "needs_shim": report.needs_shim,
        "problems": [p.what for p in report.problems],
        "sections": [
            {"title": s.title, "findings": [_finding(f) for f in s.findings]}
            for s in report.sections
        ],
        **report.facts,
    }
    return json.dumps(data, indent=2)


def _finding(finding: Finding) -> dict[str, Any]:
    data = asdict(finding)
    data["details"] = list(finding.details)
    return data
