"""Whether the shim is still needed, and why: the reasons `doctor` and the status page both give.

Pure: from the portal's own discovery document (None when it could not be read), the
configuration and the shim's counters (None when they could not be read), the reasons the shim
must stay. No reason means it can go (see README 'Can I retire the shim?').
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from shim.config.model import Config
from shim.core.actions import STABLE_ACTIONS, ActionTable
from shim.core.discovery import (
    ACCOUNT_MANAGEMENT_URI,
    ACTIONS_SUPPORTED,
    UNSTABLE_ACTIONS_SUPPORTED,
)
from shim.obs.counts import ShimCounters, format_counts, incoming_kind, plural
from shim.obs.metrics import DeeplinkOutcome, DiscoveryOutcome

#: where the portal's own discovery document is read from (directly, not through the shim)
PORTAL_DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
#: deep links the shim left as they were
UNCHANGED_DEEPLINK: Final[DeeplinkOutcome] = "passthrough"
#: discovery documents the shim wrote itself rather than relaying the portal's
WRITTEN_DISCOVERY: Final[frozenset[DiscoveryOutcome]] = frozenset({"rewritten", "cached", "stale"})


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
    return (
        *portal_reasons(doc, config.account_management.table),
        *config_reasons(config),
        *(() if counters is None else counter_reasons(counters)),
    )


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


def config_reasons(config: Config) -> Iterable[str]:
    """What this configuration has the shim do that the portal would not do by itself."""
    table = config.account_management.table
    if renamed := translations(table):
        pairs = ", ".join(f"{stable} -> {portal}" for stable, portal in renamed)
        yield f"dialect {table.dialect.name} is not stable: it sends the portal {pairs}"
    if config.discovery.advertise == "stable+legacy":
        yield "discovery.advertise is stable+legacy: old clients read legacy names from the shim"
    if config.discovery.unstable_keys:
        yield "discovery.unstable_keys is on: old clients read org.matrix.msc4191.* from the shim"


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
