"""The shim's counters: what it did since it started, read from what `/metrics` serves.

Pure: `counters_from_metrics` turns metric families into `ShimCounters`, whether they come from a
live registry (the admin status page reads what `/metrics` encodes) or, through `parse_counters`,
from a scraped text exposition (`msc4191-shim doctor`). The names and labels are those
`obs.metrics.Metrics` exports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shim.vocabulary import STABLE_ACTIONS

# Sample names as the exposition spells them (a counter gains `_total`); see `Metrics`.
BUILD_INFO: Final = "msc4191_shim_build_info"
DEEPLINKS: Final = "msc4191_shim_deeplink_translations_total"
DISCOVERY: Final = "msc4191_shim_discovery_documents_total"
UPSTREAM_ERRORS: Final = "msc4191_shim_upstream_errors_total"


#: the outcome of a deep link that followed the shim's own redirect, and the family of
#: `msc4191-shim doctor`'s requests: the shim's own traffic, not clients' (`obs.metrics`)
FOLLOWUP: Final = "followup"
DOCTOR: Final = "doctor"


@dataclass(frozen=True, slots=True)
class DeepLinkCount:
    incoming: str
    sent: str
    outcome: str
    count: int
    #: `stable`, `legacy`, `unknown` or `none` (the `incoming_kind` label)
    kind: str = "?"
    #: the client family (`obs.clients`)
    client: str = "other"

    @property
    def from_a_client(self) -> bool:
        """False for the shim's own traffic: a follow-up of its redirect, or doctor's probe."""
        return self.outcome != FOLLOWUP and self.client != DOCTOR


@dataclass(frozen=True, slots=True)
class ShimCounters:
    """The counters that say what the shim did since it started (non-zero series only)."""

    version: str
    deeplinks: tuple[DeepLinkCount, ...]
    #: discovery documents served to clients (not to doctor), by outcome
    discovery: Mapping[str, int]
    upstream_errors: Mapping[str, int]
    #: discovery documents served to `msc4191-shim doctor`, by outcome
    doctor_discovery: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def client_deeplinks(self) -> tuple[DeepLinkCount, ...]:
        """The deep links clients sent: not follow-ups of the shim's redirects, not doctor's."""
        return tuple(link for link in self.deeplinks if link.from_a_client)


def parse_counters(text: str) -> ShimCounters | None:
    """The shim's counters in a Prometheus text exposition; None when it is not the shim's.

    Raises ValueError when the text is not a Prometheus exposition at all.
    """
    return counters_from_metrics(list(text_string_to_metric_families(text)))


def counters_from_metrics(families: Iterable[Metric]) -> ShimCounters | None:
    """The shim's counters among `families`; None when they are not the shim's (no build_info)."""
    samples = (sample for family in families for sample in family.samples)
    version = None
    deeplinks: list[DeepLinkCount] = []
    discovery: Counter[str] = Counter()
    doctor: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for sample in samples:
        # another exporter on that port may serve NaN or +Inf, which int() refuses
        value = sample.value if math.isfinite(sample.value) else 0.0
        labels, count = sample.labels, int(value)
        if sample.name == BUILD_INFO:
            version = labels.get("version", "?")
        elif count <= 0:
            continue
        elif sample.name == DEEPLINKS:
            incoming, sent = labels.get("incoming", "?"), labels.get("sent", "?")
            outcome, client = labels.get("outcome", "?"), labels.get("client", "other")
            kind = labels.get("incoming_kind") or incoming_kind(incoming)
            deeplinks.append(DeepLinkCount(incoming, sent, outcome, count, kind, client))
        elif sample.name == DISCOVERY:
            into = doctor if labels.get("client") == DOCTOR else discovery
            into[labels.get("outcome", "?")] += count
        elif sample.name == UPSTREAM_ERRORS:
            errors[labels.get("reason", "?")] += count
    if version is None:
        return None
    return ShimCounters(
        version,
        tuple(deeplinks),
        MappingProxyType(dict(discovery)),
        MappingProxyType(dict(errors)),
        MappingProxyType(dict(doctor)),
    )


def incoming_kind(incoming: str) -> str:
    """`stable`, `legacy`, or the label itself (`none`, `unknown`) for an `incoming` label: what
    the `incoming_kind` label says, for a series without it."""
    # `none` and `unknown` are what `obs.metrics.action_label` counts an absent or unknown name as
    if incoming in ("none", "unknown"):
        return incoming
    return "stable" if incoming in STABLE_ACTIONS else "legacy"


def format_counts(counts: Mapping[str, int]) -> str:
    """`key: n, ...`, the largest count first."""
    return ", ".join(f"{key}: {n}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def plural(count: int, noun: str) -> str:
    """`1 deep link`, `2 deep links`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
