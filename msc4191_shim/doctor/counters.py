"""`msc4191-shim doctor`: what the running shim's own counters say it did since it started.

Pure: `read_counters` turns the shim's `/metrics` answer into `ShimCounters` (or a finding that
says why it could not), `check_counters` reports them, and `counter_reasons` says which of them
still make the shim needed. The names and labels are those `obs.metrics.Metrics` exports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from msc4191_shim.core.actions import STABLE_ACTIONS, ActionTable
from msc4191_shim.doctor.values import Fetched, Finding, NoAnswer, format_counts, plural
from msc4191_shim.obs.metrics import DeeplinkOutcome, DiscoveryOutcome

# Sample names as the text exposition spells them (a counter gains `_total`); see `Metrics`.
BUILD_INFO: Final = "msc4191_shim_build_info"
DEEPLINKS: Final = "msc4191_shim_deeplink_translations_total"
DISCOVERY: Final = "msc4191_shim_discovery_documents_total"
UPSTREAM_ERRORS: Final = "msc4191_shim_upstream_errors_total"

#: deep links the shim left as they were
UNCHANGED_DEEPLINK: Final[DeeplinkOutcome] = "passthrough"
#: discovery documents the shim wrote itself rather than relaying the portal's
WRITTEN_DISCOVERY: Final[frozenset[DiscoveryOutcome]] = frozenset({"rewritten", "cached", "stale"})
#: discovery documents the shim relayed untouched, or served stale: a prefix, not the label set,
#: so a shim of another version with another `passthrough_*` reason is still counted
RELAYED_PREFIX: Final = "passthrough_"
STALE_DISCOVERY: Final[DiscoveryOutcome] = "stale"


@dataclass(frozen=True, slots=True)
class DeepLinkCount:
    incoming: str
    sent: str
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class ShimCounters:
    """The counters that say what the shim did since it started (non-zero series only)."""

    version: str
    deeplinks: tuple[DeepLinkCount, ...]
    discovery: Mapping[str, int]
    upstream_errors: Mapping[str, int]


def parse_counters(text: str) -> ShimCounters | None:
    """The shim's counters in a Prometheus text exposition; None when it is not the shim's.

    Raises ValueError when the text is not a Prometheus exposition at all.
    """
    version = None
    deeplinks: list[DeepLinkCount] = []
    discovery: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # another exporter on that port may serve NaN or +Inf, which int() refuses
            value = sample.value if math.isfinite(sample.value) else 0.0
            labels, count = sample.labels, int(value)
            if sample.name == BUILD_INFO:
                version = labels.get("version", "?")
            elif count <= 0:
                continue
            elif sample.name == DEEPLINKS:
                incoming, sent = labels.get("incoming", "?"), labels.get("sent", "?")
                deeplinks.append(DeepLinkCount(incoming, sent, labels.get("outcome", "?"), count))
            elif sample.name == DISCOVERY:
                discovery[labels.get("outcome", "?")] += count
            elif sample.name == UPSTREAM_ERRORS:
                errors[labels.get("reason", "?")] += count
    if version is None:
        return None
    return ShimCounters(
        version,
        tuple(deeplinks),
        MappingProxyType(dict(discovery)),
        MappingProxyType(dict(errors)),
    )


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


def incoming_kind(incoming: str) -> str:
    """`stable`, `legacy`, or the label itself (`none`, `other`) for a deep link's incoming name."""
    # `none` and `other` are what `obs.metrics.action_label` counts an absent or unknown name as
    if incoming in ("none", "other"):
        return incoming
    return "stable" if incoming in STABLE_ACTIONS else "legacy"


def check_counters(counters: ShimCounters, table: ActionTable) -> list[Finding]:
    """What the shim did since it started: deep links by name and outcome, discovery, errors."""
    findings = [Finding("OK", f"the shim (version {counters.version}) serves its metrics")]
    findings.append(_deeplink_summary(counters.deeplinks, table))
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
    return findings


def _deeplink_summary(deeplinks: Sequence[DeepLinkCount], table: ActionTable) -> Finding:
    if not deeplinks:
        what = "no deep link seen since the shim started"
        return Finding("INFO", what, "the counts say nothing about clients yet")
    by_name: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    for link in deeplinks:
        by_name[link.incoming] += link.count
        by_kind[incoming_kind(link.incoming)] += link.count
        by_outcome[link.outcome] += link.count
    details = [f"{name}: {n} ({_describe(name, table)})" for name, n in by_name.most_common()]
    details.append(f"outcomes: {format_counts(by_outcome)}")
    total = plural(by_kind.total(), "deep link")
    what = f"{total} since the shim started: {format_counts(by_kind)}"
    return Finding("INFO", what, "", tuple(details))


def _describe(incoming: str, table: ActionTable) -> str:
    kind = incoming_kind(incoming)
    if kind == "legacy":
        stable = table.to_stable(incoming)
        return "legacy name" if stable is None else f"legacy name of {stable}"
    return {"none": "no action", "other": "names the shim does not know"}.get(kind, kind)


def counter_reasons(counters: ShimCounters) -> Iterable[str]:
    """What the counters show the shim still doing for clients: legacy names, changed links..."""
    legacy = sum(d.count for d in counters.deeplinks if incoming_kind(d.incoming) == "legacy")
    if legacy:
        links = plural(legacy, "legacy-named deep link")
        yield f"clients still sent {links} since the shim started"
    changed: Counter[str] = Counter()
    for link in counters.deeplinks:
        if link.outcome != UNCHANGED_DEEPLINK:
            changed[link.outcome] += link.count
    if changed:
        links = plural(changed.total(), "deep link")
        yield f"it changed {links} since it started ({format_counts(changed)})"
    written: dict[str, int] = {
        k: n for k, n in counters.discovery.items() if k in WRITTEN_DISCOVERY
    }
    if written:
        documents = plural(sum(written.values()), "discovery document")
        yield f"it wrote {documents} itself ({format_counts(written)})"
