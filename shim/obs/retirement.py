"""Whether the shim is still needed, and why: the reasons `doctor` and the status page both give.

Pure: from the portal's own discovery document (None when it could not be read), the
configuration and the shim's counters (None when they could not be read), the reasons the shim
must stay. No reason means it can go. The same definition, as PromQL, is in docs/retirement.md
and the Grafana dashboard's "Can I retire the shim?" row:

- the shim changed no client's deep link (every outcome `passthrough`);
- it wrote no discovery document a client read (no `rewritten`, `cached`, `stale`,
  `not_modified`);
- nothing in the portal's document or the configuration has it do what the portal does not.

Clients' requests only: a follow-up of the shim's own redirect (`followup`) and doctor's probes
(client family `doctor`) are the shim's own traffic. Legacy names clients send are not a reason
by themselves: where the portal does not serve one, the shim changes the link and that counts;
where it does (MAS 1.10 serves both sets), it passes. They are reported, by client family, as
whom to chase before a portal that drops them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from shim.config.model import Config
from shim.core.deeplink import DeeplinkOutcome
from shim.core.discovery import (
    ACCOUNT_MANAGEMENT_URI,
    ACTIONS_SUPPORTED,
    UNSTABLE_ACTIONS_SUPPORTED,
    portal_speaks_msc4191,
    rewrite_discovery,
)
from shim.obs.counters import DOCTOR, FOLLOWUP, ShimCounters, format_counts, plural
from shim.obs.labels import DiscoveryOutcome
from shim.vocabulary import STABLE_ACTIONS, ActionTable

#: where the portal's own discovery document is read from (directly, not through the shim)
PORTAL_DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
#: deep links the shim left as they were
UNCHANGED_DEEPLINK: Final[DeeplinkOutcome] = "passthrough"
#: discovery documents the shim wrote itself rather than relaying the portal's (`not_modified`:
#: a 304 for a document of its own)
WRITTEN_DISCOVERY: Final[frozenset[DiscoveryOutcome]] = frozenset(
    {"rewritten", "cached", "stale", "not_modified"}
)
#: what the status page and doctor say when the portal's own document already speaks MSC4191
ALREADY_SPEAKS: Final = "the portal already speaks MSC4191; you may not need the shim"


def advertised_names(doc: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The portal's action names as written (stable key first), or None when it lists none."""
    for key in (ACTIONS_SUPPORTED, UNSTABLE_ACTIONS_SUPPORTED):
        value = doc.get(key)
        if isinstance(value, list):
            return tuple(dict.fromkeys(item for item in value if isinstance(item, str)))
    return None


def portal_mapping(names: Sequence[str], table: ActionTable) -> dict[str, str]:
    """stable name -> the name the portal advertises for it (the stable one when it has both)."""
    mapping: dict[str, str] = {}
    for name in names:
        stable = table.to_stable(name)
        if stable is not None and (stable not in mapping or name == stable):
            mapping[stable] = name
    return {stable: mapping[stable] for stable in STABLE_ACTIONS if stable in mapping}


def portal_speaks_stable(names: Sequence[str], table: ActionTable) -> bool:
    """True when the portal advertises the stable name of every action it serves."""
    mapping = portal_mapping(names, table)
    return bool(mapping) and all(stable == name for stable, name in mapping.items())


def translations(table: ActionTable) -> list[tuple[str, str]]:
    """(stable, portal name) for each name the dialect changes on the way to the portal."""
    return [(s, p) for s, p in table.dialect.portal_names.items() if s != p]


def retirement_reasons(
    doc: Mapping[str, Any] | None, config: Config, counters: ShimCounters | None
) -> tuple[str, ...]:
    """Why the shim is still needed; empty when nothing that was checked needs it."""
    reasons = [*portal_reasons(doc, config.account_management.table), *config_reasons(config, doc)]
    if doc is not None and not reasons and (changed := changed_keys(doc, config)):
        # a portal that needs nothing, yet the shim would serve its document otherwise (a
        # dialect other than mas-1.10 in front of MAS 1.10): what the counters will show
        reasons.append(f"it changes the portal's own discovery document ({', '.join(changed)})")
    if counters is not None:
        reasons += counter_reasons(counters)
    return tuple(reasons)


def retirement_notes(
    doc: Mapping[str, Any] | None, config: Config, counters: ShimCounters | None
) -> tuple[str, ...]:
    """What the operator should know beside the reasons: not reasons themselves."""
    notes = []
    table = config.account_management.table
    speaks = doc is not None and portal_speaks_msc4191(doc, table)
    if speaks and doc is not None and (translations(table) or rewrites(doc, config)):
        notes.append(
            f"{ALREADY_SPEAKS}: its own document has {ACCOUNT_MANAGEMENT_URI} and the stable "
            f"name of every action it lists, yet dialect {table.dialect.name} still has the "
            "shim translate; set dialect: mas-1.10 (a portal that serves both name sets) or "
            "stable, and watch the counts"
        )
    if counters is not None:
        notes += counter_notes(counters)
    return tuple(notes)


def portal_reasons(doc: Mapping[str, Any] | None, table: ActionTable) -> Iterable[str]:
    """What the portal's own document lacks that the shim writes for it."""
    if doc is None:
        yield "the portal's own discovery document could not be checked"
        return
    if not isinstance(doc.get(ACCOUNT_MANAGEMENT_URI), str):
        yield f"the portal does not publish {ACCOUNT_MANAGEMENT_URI}"
    names = advertised_names(doc)
    if not isinstance(doc.get(ACTIONS_SUPPORTED), list):
        yield f"the portal does not publish {ACTIONS_SUPPORTED}"
    elif names and not portal_speaks_stable(names, table):
        yield "the portal advertises legacy names without their stable names"


def config_reasons(config: Config, doc: Mapping[str, Any] | None = None) -> Iterable[str]:
    """What this configuration has the shim do that the portal would not do by itself.

    With the portal's document, the discovery options count only when the shim's rewrite of it
    differs from it: under `mas-1.10`, `stable+legacy` adds nothing to a list that has the
    portal's own legacy names.
    """
    table = config.account_management.table
    if renamed := translations(table):
        pairs = ", ".join(f"{stable} -> {portal}" for stable, portal in renamed)
        yield f"dialect {table.dialect.name} is not stable: it sends the portal {pairs}"
    if doc is not None and not rewrites(doc, config):
        return
    if config.discovery.advertise == "stable+legacy":
        yield "discovery.advertise is stable+legacy: old clients read legacy names from the shim"
    if config.discovery.unstable_keys:
        yield "discovery.unstable_keys is on: old clients read org.matrix.msc4191.* from the shim"


def rewrites(doc: Mapping[str, Any], config: Config) -> bool:
    """True when the shim would serve the portal's document other than the portal wrote it."""
    return bool(changed_keys(doc, config))


def changed_keys(doc: Mapping[str, Any], config: Config) -> list[str]:
    """The keys the shim's rewrite of the portal's document sets to another value, or adds."""
    rewritten = rewrite_discovery(
        dict(doc),
        discovery=config.discovery,
        account=config.account_management,
        default_uri="",
    )
    return [key for key, value in rewritten.items() if key not in doc or doc[key] != value]


def counter_reasons(counters: ShimCounters) -> Iterable[str]:
    """What the counters show the shim still doing for clients: changed links, written documents."""
    changed: Counter[str] = Counter()
    for link in counters.client_deeplinks:
        if link.outcome != UNCHANGED_DEEPLINK:
            changed[link.outcome] += link.count
    if changed:
        links = plural(changed.total(), "client deep link")
        yield f"it changed {links} since it started ({format_counts(changed)})"
    written: dict[str, int] = {
        k: n for k, n in counters.discovery.items() if k in WRITTEN_DISCOVERY
    }
    if written:
        documents = plural(sum(written.values()), "discovery document")
        yield f"it wrote {documents} clients read ({format_counts(written)})"


def legacy_senders(counters: ShimCounters) -> Counter[str]:
    """Legacy-named deep links clients sent, by client family: whom to chase."""
    senders: Counter[str] = Counter()
    for link in counters.client_deeplinks:
        if link.kind == "legacy":
            senders[link.client] += link.count
    return senders


def counter_notes(counters: ShimCounters) -> Iterable[str]:
    """Whom to chase, and the shim's own traffic the counts leave out."""
    if senders := legacy_senders(counters):
        links = plural(senders.total(), "legacy-named deep link")
        yield (
            f"clients still sent {links} since the shim started ({format_counts(senders)}): "
            "not a reason by itself where the portal serves those names, but whom to chase "
            "before a portal that drops them"
        )
    followups = sum(d.count for d in counters.deeplinks if d.outcome == FOLLOWUP)
    doctor = sum(
        d.count for d in counters.deeplinks if d.client == DOCTOR and d.outcome != FOLLOWUP
    )
    doctor += sum(counters.doctor_discovery.values())
    if followups or doctor:
        own = []
        if followups:
            own.append(plural(followups, "follow-up") + " of its own redirects")
        if doctor:
            own.append(plural(doctor, "request") + " from msc4191-shim doctor")
        yield f"not counted as clients': {' and '.join(own)}"
