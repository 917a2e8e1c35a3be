"""Every count the metrics report, added up as plain numbers since the process started.

Every request is counted (its kind and status, its duration from head to answer, the upstream's
time to the head, the deep link or discovery outcome), the requests being answered are known
(`begin` to `finish`: the in-flight gauge), and so are the rarer events (upstream errors, limit
hits, reloads). prometheus-client's `inc` and `observe` take a lock and several Python calls
each, which a request would pay three or four times; a `Tally` adds the same counts up in dicts,
and `obs/metrics.py` reads them when it is scraped (or writes them for the other `--workers`).

This module is compiled with the request path (setup.py) and knows nothing of prometheus-client.
The counts are cumulative and only ever grow: read the `*_counts` dicts, never write them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shim.memo import Memo
from shim.obs.labels import (
    CLIENT_FAMILIES,
    DISCOVERY_OUTCOMES,
    LIMIT_NAMES,
    REQUEST_KINDS,
    UPSTREAM_ERROR_REASONS,
    ClientFamily,
    DeeplinkLabels,
    DiscoveryOutcome,
    LimitName,
    RequestKind,
    UpstreamErrorReason,
    check,
    deeplink_labels,
)

if TYPE_CHECKING:
    from shim.core.deeplink import DeeplinkOutcome
    from shim.vocabulary import ActionTable

#: how many (incoming, sent, outcome, client) tuples `deeplink` remembers the labels of
SEEN_DEEPLINKS: Final = 256

#: a histogram's counts: [sum, then the count per bucket (not cumulative), +Inf last]
Buckets = list[float]


class Tally:
    """Counts since the process started.

    `request_bounds` are the request-duration buckets' upper bounds (ascending), and
    `upstream_bounds` the upstream-time buckets'. A label value outside its vocabulary
    (`obs/labels.py`) is refused with ValueError the first time it is seen, and never counted.
    """

    def __init__(
        self, request_bounds: tuple[float, ...], upstream_bounds: tuple[float, ...]
    ) -> None:
        self.request_bounds = request_bounds
        self.upstream_bounds = upstream_bounds
        #: finished requests by (kind, status); status None: the response was aborted
        self.request_counts: dict[tuple[str, int | None], int] = {}
        #: by kind: the durations from the complete head to the end of the answer
        self.duration_counts: dict[str, Buckets] = {}
        #: by kind: the times to the upstream's response head
        self.upstream_counts: dict[str, Buckets] = {}
        self.deeplink_counts: dict[DeeplinkLabels, int] = {}
        #: by (outcome, client family)
        self.discovery_counts: dict[tuple[str, str], int] = {}
        #: by reason, limit name and result (`ok`, `error`)
        self.upstream_error_counts: dict[str, int] = {}
        self.limit_hit_counts: dict[str, int] = {}
        self.reload_counts: dict[str, int] = {}
        #: the requests begun and not yet finished (`finish` is told whether its request was
        #: begun: one refused before its head was complete never was, and changes nothing)
        self.in_flight = 0
        # the labels per deep link as received, for one table: no label work on a repeat;
        # bounded, since `incoming` is the client's
        self._deeplinks_seen: Memo[tuple[str | None, str | None, str, str], DeeplinkLabels] = Memo(
            SEEN_DEEPLINKS
        )
        self._deeplink_table: ActionTable | None = None

    def request(self, kind: RequestKind, status: int | None) -> None:
        """One finished request; `status=None` when the response was aborted."""
        key = (kind, status)
        counts = self.request_counts
        count = counts.get(key)
        if count is None:
            check(kind, REQUEST_KINDS, "request kind")
            count = 0
        counts[key] = count + 1

    def begin(self) -> None:
        """A request whose head is complete is being answered."""
        self.in_flight += 1

    def finish(self, kind: RequestKind, status: int | None, seconds: float, begun: bool) -> None:
        """One finished request: counted by kind and status (`None`: aborted), its duration from
        the complete head to the end of the answer observed, and, if it was `begun`, no longer
        in flight."""
        self.request(kind, status)
        _observe(self.duration_counts, self.request_bounds, kind, seconds)
        if begun:
            self.in_flight -= 1

    def upstream(self, kind: RequestKind, seconds: float) -> None:
        """Time to the upstream's response head."""
        _observe(self.upstream_counts, self.upstream_bounds, kind, seconds)

    def deeplink(
        self,
        incoming: str | None,
        sent: str | None,
        outcome: DeeplinkOutcome,
        table: ActionTable,
        client: ClientFamily = "other",
    ) -> None:
        """One deep link, by the names the client sent and the portal was sent, and who sent it."""
        seen = self._deeplinks_seen
        if self._deeplink_table is not table:
            self._deeplink_table = table
            seen.clear()
        key = (incoming, sent, outcome, client)
        labels = seen.get(key)
        if labels is None:
            labels = seen.put(key, deeplink_labels(incoming, sent, outcome, client, table))
        counts = self.deeplink_counts
        counts[labels] = counts.get(labels, 0) + 1

    def discovery(self, outcome: DiscoveryOutcome, client: ClientFamily = "other") -> None:
        """One discovery document served, by outcome and who asked for it."""
        key = (outcome, client)
        counts = self.discovery_counts
        count = counts.get(key)
        if count is None:
            check(outcome, DISCOVERY_OUTCOMES, "discovery outcome")
            check(client, CLIENT_FAMILIES, "client family")
            count = 0
        counts[key] = count + 1

    def upstream_error(self, reason: UpstreamErrorReason) -> None:
        """An upstream request that failed without a response."""
        _add(self.upstream_error_counts, reason, UPSTREAM_ERROR_REASONS, "upstream error reason")

    def limit_hit(self, limit: LimitName) -> None:
        """A client stopped (or made to wait) by the `limits.*` key `limit`."""
        _add(self.limit_hit_counts, limit, LIMIT_NAMES, "limit name")

    def reload(self, ok: bool) -> None:
        """A configuration reload, applied (`ok`) or refused whole (`error`)."""
        key = "ok" if ok else "error"
        self.reload_counts[key] = self.reload_counts.get(key, 0) + 1


def _add(counts: dict[str, int], key: str, allowed: frozenset[str], what: str) -> None:
    count = counts.get(key)
    if count is None:
        check(key, allowed, what)
        count = 0
    counts[key] = count + 1


def _observe(
    histograms: dict[str, Buckets], bounds: tuple[float, ...], kind: str, seconds: float
) -> None:
    """One observation into `histograms[kind]`: [sum, then the count per bucket, +Inf last]."""
    counts = histograms.get(kind)
    if counts is None:
        check(kind, REQUEST_KINDS, "request kind")
        counts = histograms[kind] = [0.0] * (len(bounds) + 2)
    if seconds < 0.0:
        seconds = 0.0
    counts[0] += seconds
    # the first bucket whose bound is >= seconds (the last one is +Inf): most answers land in
    # the first few, so a walk from the shortest beats a bisection's call
    index = 1
    for bound in bounds:
        if seconds <= bound:
            break
        index += 1
    counts[index] += 1
