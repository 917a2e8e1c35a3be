"""`msc4191-shim doctor`: the running shim's activity, what its counters say it did since it
started.

Pure: `read_counters` turns the shim's `/metrics` answer into `obs.counters.ShimCounters` (or a
finding that says why it could not) and `check_counters` reports them; which of them still make
the shim needed is `obs.retirement.counter_reasons`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from shim.doctor.values import Fetched, Finding, NoAnswer
from shim.obs.counters import DeepLinkCount, ShimCounters, format_counts, parse_counters, plural
from shim.obs.labels import DiscoveryOutcome
from shim.obs.retirement import counter_notes
from shim.vocabulary import ActionTable

#: discovery documents the shim relayed untouched, or served stale: a prefix, not the label set,
#: so a shim of another version with another `passthrough_*` reason is still counted
RELAYED_PREFIX: Final = "passthrough_"
STALE_DISCOVERY: Final[DiscoveryOutcome] = "stale"


def read_counters(fetched: Fetched, admin_url: str) -> tuple[ShimCounters | None, list[Finding]]:
    """The shim's counters, or None with a finding that says why they could not be read."""
    where = f"the shim's admin listener at {admin_url}"
    todo = "run doctor where the shim runs, or pass --admin-url (see admin.listen)"
    if isinstance(fetched, NoAnswer):
        return None, [Finding("WARN", f"{where} does not answer: {fetched.reason}", todo)]
    if fetched.status != 200:
        return None, [Finding("WARN", f"{where} answers {fetched.status} on /metrics", todo)]
    try:
        counters = parse_counters(fetched.body.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one too
        return None, [Finding("WARN", f"{where} serves unreadable /metrics ({exc})", todo)]
    if counters is None:
        return None, [Finding("WARN", f"{where} serves metrics, but not an msc4191-shim's", todo)]
    return counters, []


def check_counters(counters: ShimCounters, table: ActionTable) -> list[Finding]:
    """What the shim did for clients since it started: deep links by name and outcome, discovery,
    errors; then whom to chase and the shim's own traffic, which the counts leave out."""
    findings = [Finding("OK", f"the shim (version {counters.version}) serves its metrics")]
    findings.append(_deeplink_summary(counters.client_deeplinks, table))
    relayed = {k: n for k, n in counters.discovery.items() if k.startswith(RELAYED_PREFIX)}
    relayed |= {k: n for k, n in counters.discovery.items() if k == STALE_DISCOVERY}
    if not counters.discovery:
        findings.append(Finding("INFO", "no discovery document served since the shim started"))
    else:
        what = f"discovery documents since the shim started: {format_counts(counters.discovery)}"
        findings.append(Finding("INFO", what))
    if relayed:
        what = f"discovery documents relayed untouched or stale: {format_counts(relayed)}"
        todo = "the portal answered what the shim could not rewrite: see the shim's log"
        findings.append(Finding("WARN", what, todo))
    if counters.upstream_errors:
        what = f"the shim could not reach the portal: {format_counts(counters.upstream_errors)}"
        findings.append(Finding("WARN", what, "see the shim's log, check the portal"))
    findings += [Finding("INFO", note) for note in counter_notes(counters)]
    return findings


def _deeplink_summary(deeplinks: Sequence[DeepLinkCount], table: ActionTable) -> Finding:
    if not deeplinks:
        what = "no client deep link seen since the shim started"
        return Finding("INFO", what, "the counts say nothing about clients yet")
    by_name: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    kinds: dict[str, str] = {}
    for link in deeplinks:
        by_name[link.incoming] += link.count
        by_kind[link.kind] += link.count
        by_outcome[link.outcome] += link.count
        kinds[link.incoming] = link.kind
    details = [
        f"{name}: {n} ({_describe(name, kinds[name], table)})" for name, n in by_name.most_common()
    ]
    details.append(f"outcomes: {format_counts(by_outcome)}")
    total = plural(by_kind.total(), "client deep link")
    what = f"{total} since the shim started: {format_counts(by_kind)}"
    return Finding("INFO", what, "", tuple(details))


def _describe(incoming: str, kind: str, table: ActionTable) -> str:
    if kind == "legacy":
        stable = table.to_stable(incoming)
        return "legacy name" if stable is None else f"legacy name of {stable}"
    return {
        "none": "no action",
        "unknown": "not an MSC4191 name: passed as sent, nothing to migrate",
    }.get(kind, kind)
