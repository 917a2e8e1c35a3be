"""`msc4191-shim doctor`: what the shim does for this portal, and whether it can go.

Pure: `diagnose` turns what `doctor.probe` fetched (the portal's root, the portal's *own*
discovery document, the shim's `/metrics`) and the configuration into findings, one line each,
the verdict last. Nothing here raises for a bad answer: an unreachable portal or unreadable
metrics is a finding. Sections: inputs, the portal's metadata, the verdict, the report; the
dialect is checked in `doctor.dialect`, the shim's counters in `doctor.activity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from yarl import URL

from shim.config.model import Config
from shim.config.values import ListenAddress
from shim.core.deeplink import is_entry_path
from shim.core.discovery import (
    ACCOUNT_MANAGEMENT_URI,
    ACTIONS_SUPPORTED,
    UNSTABLE_ACCOUNT_MANAGEMENT_URI,
    UNSTABLE_ACTIONS_SUPPORTED,
    account_management_uri,
    parse_json_object,
)
from shim.doctor.activity import check_counters, read_counters
from shim.doctor.dialect import check_dialect, check_names
from shim.doctor.values import Fetched, Finding, NoAnswer
from shim.obs.counters import ShimCounters
from shim.obs.retirement import (
    PORTAL_DISCOVERY_PATH,
    advertised_names,
    retirement_notes,
    retirement_reasons,
)

RETIRE: Final = "docs/retirement.md"
EXIT_OK: Final = 0
EXIT_BROKEN: Final = 1

# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoctorInputs:
    config: Config
    #: GET <upstream>/ and GET <upstream>/.well-known/openid-configuration, not through the shim
    upstream_root: Fetched
    portal_discovery: Fetched
    #: GET <admin>/metrics
    metrics: Fetched
    admin_url: str


def admin_base_url(listen: ListenAddress) -> str:
    """Where to reach the admin listener from this host: a wildcard address becomes loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(listen.host, listen.host)
    return f"http://[{host}]:{listen.port}" if ":" in host else f"http://{host}:{listen.port}"


def diagnose(inputs: DoctorInputs) -> list[Finding]:
    """Every finding, in report order, the verdict last."""
    config = inputs.config
    table = config.account_management.table
    findings = [check_upstream(inputs.upstream_root, str(config.upstream.url))]
    doc, read = read_portal_document(inputs.portal_discovery, config.discovery.max_body_bytes)
    findings += read
    names = None if doc is None else advertised_names(doc)
    if doc is not None:
        findings += check_metadata(doc, config)
        findings += check_names(names, table)
        findings += check_dialect(names, table)
    counters, seen = read_counters(inputs.metrics, inputs.admin_url)
    findings += seen if counters is None else check_counters(counters, table)
    if doc is not None:  # the counters' notes are in check_counters
        findings += [Finding("INFO", note) for note in retirement_notes(doc, config, None)]
    findings.append(verdict(doc, names, config, counters))
    return findings


def check_upstream(root: Fetched, upstream: str) -> Finding:
    if isinstance(root, NoAnswer):
        what = f"the portal at {upstream} does not answer: {root.reason}"
        return Finding("FAIL", what, "start the portal, or fix upstream.url")
    return Finding("OK", f"the portal at {upstream} answers (GET / -> {root.status})")


# --- the portal's own metadata -----------------------------------------------------------------


def read_portal_document(
    fetched: Fetched, limit: int
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The portal's own discovery document, or None with a finding that says why not."""
    where = f"the portal's own {PORTAL_DISCOVERY_PATH}"
    relayed = "the shim relays it untouched, so clients and Synapse cannot use it"
    if isinstance(fetched, NoAnswer):
        what = f"{where} does not answer: {fetched.reason}"
        return None, [Finding("FAIL", what, "start the portal, or fix upstream.url")]
    if fetched.status != 200:
        return None, [Finding("FAIL", f"{where} answers {fetched.status}", f"{relayed}: fix it")]
    if len(fetched.body) > limit:
        todo = "the shim relays it untouched: raise discovery.max_body_bytes"
        return None, [Finding("FAIL", f"{where} is larger than {limit} bytes", todo)]
    doc = parse_json_object(fetched.body)
    if doc is None:
        return None, [Finding("FAIL", f"{where} is not a JSON object", f"{relayed}: fix it")]
    return doc, [Finding("OK", f"{where} is a JSON object ({len(doc)} keys)")]


def check_metadata(doc: Mapping[str, Any], config: Config) -> list[Finding]:
    """The stable keys: in the portal's own document, or only their unstable twins?"""
    uri = doc.get(ACCOUNT_MANAGEMENT_URI)
    if isinstance(uri, str) and uri:
        findings = [Finding("OK", f"the portal publishes {ACCOUNT_MANAGEMENT_URI} ({uri})")]
    else:
        what = f"the portal's own document has no {ACCOUNT_MANAGEMENT_URI}"
        todo = (
            "without the shim, Synapse answers 500 on auth_metadata and /.well-known/matrix/client"
            " — keep the shim on the homeserver->portal route (matrix_authentication_service."
            "endpoint)"
        )
        findings = [
            Finding("WARN", what + _only_unstable(doc, UNSTABLE_ACCOUNT_MANAGEMENT_URI), todo)
        ]
    if isinstance(doc.get(ACTIONS_SUPPORTED), list):
        findings.append(Finding("OK", f"the portal publishes {ACTIONS_SUPPORTED}"))
    else:
        what = f"the portal's own document has no {ACTIONS_SUPPORTED} list"
        todo = "without the shim, clients that read the stable key see no actions"
        findings.append(
            Finding("WARN", what + _only_unstable(doc, UNSTABLE_ACTIONS_SUPPORTED), todo)
        )
    return findings + _check_entry_path(doc, config)


def _only_unstable(doc: Mapping[str, Any], unstable_key: str) -> str:
    return f" (only the unstable {unstable_key})" if unstable_key in doc else ""


def _check_entry_path(doc: Mapping[str, Any], config: Config) -> list[Finding]:
    # A deep link is translated only on an entry path; an account page anywhere else would be
    # relayed with the client's action name untouched. The page is the one the shim publishes;
    # with no default, none is checked when neither the configuration nor the portal names one.
    uri = account_management_uri(doc, config.discovery, default_uri="")
    if not uri:
        return []
    try:
        path = URL(uri).path or "/"
    except ValueError:
        return []  # not a URL at all: clients will say so louder than doctor could
    paths = config.account_management.paths
    if is_entry_path(path, paths):
        return []
    what = f"the account page {uri} is not under account_management.paths ({', '.join(paths)})"
    return [Finding("WARN", what, f"deep links to it pass untranslated: add {path} there")]


# --- the verdict and the report ----------------------------------------------------------------


def verdict(
    doc: Mapping[str, Any] | None,
    names: Sequence[str] | None,
    config: Config,
    counters: ShimCounters | None,
) -> Finding:
    reasons = retirement_reasons(doc, config, counters)
    if reasons:
        return Finding("INFO", "the shim is still needed because:", f"see {RETIRE}", reasons)
    if counters is None:
        what = "nothing in the portal's metadata or this configuration needs the shim"
        todo = f"its metrics were not read: check which names clients send ({RETIRE})"
        return Finding("INFO", what, todo)
    todo = f"see {RETIRE} before removing it"
    if not counters.client_deeplinks:
        todo += "; no deep link has been seen yet, so watch the metrics for a client release"
    return Finding("INFO", "nothing here needs the shim any more", todo)


def exit_status(findings: Iterable[Finding]) -> int:
    """1 when anything failed; warnings, information and "the shim can go" are all 0."""
    return EXIT_BROKEN if any(f.level == "FAIL" for f in findings) else EXIT_OK


def format_report(findings: Iterable[Finding]) -> str:
    """`LEVEL  what  — todo`, one line per finding, its details indented below it."""
    lines = []
    for finding in findings:
        todo = f"  — {finding.todo}" if finding.todo else ""
        lines.append(f"{finding.level:<4}  {finding.what}{todo}")
        lines += [f"        - {detail}" for detail in finding.details]
    return "\n".join(lines)
