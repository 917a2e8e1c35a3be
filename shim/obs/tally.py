"""The per-request counts between two flushes, added up as plain numbers.

Every request is counted (its kind and status, its duration from head to answer, the upstream's
time to the head, the deep link or discovery outcome), and the requests being answered are known
(`begin` to `finish`: the in-flight gauge). prometheus-client's `inc` and `observe` take a lock
and several Python calls each, which a request would pay three or four times; a `Tally` adds the
same counts up in dicts, and `Metrics.flush` takes them (`take`) and hands them to
prometheus-client in batches.

This module is compiled with the request path (setup.py) and knows nothing of prometheus-client:
what it counts deep links and discovery documents against are opaque keys (the counters'
children), which its owner supplies.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Final, NoReturn

if TYPE_CHECKING:
    from shim.core.deeplink import DeeplinkOutcome
    from shim.obs.clients import ClientFamily
    from shim.obs.metrics import DiscoveryOutcome, RequestKind
    from shim.vocabulary import ActionTable

#: how many (incoming, sent, outcome, client) tuples `deeplink` remembers the key of
SEEN_DEEPLINKS: Final = 256

#: what `Tally.take` hands over: requests by (kind, status); request durations and upstream times
#: by kind as [sum, then the count per bucket, +Inf last]; other counts by their key
Taken = tuple[
    dict[tuple[str, int | None], int],
    dict[str, list[float]],
    dict[object, int],
    dict[str, list[float]],
]


def refuse(value: str, allowed: Collection[str], what: str) -> NoReturn:
    # mypy checks the Literal types; this catches a caller that passes a plain `str`
    raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(allowed)}")


class Tally:
    """Counts since the last `take`.

    `kinds` are the request kinds, `bounds` the upstream-time buckets' upper bounds (ascending),
    `discovery` the key per (discovery outcome, client family) known at the start,
    `discovery_key(outcome, client)` the key of any other pair,
    `deeplink_key(incoming, sent, outcome, client, table)` the key of a deep link's counts (both
    may raise ValueError for an outcome or family they do not know), and `duration_bounds` the
    request-duration buckets' (`bounds` when not given).
    """

    def __init__(
        self,
        kinds: frozenset[str],
        bounds: tuple[float, ...],
        discovery: Mapping[tuple[str, str], object],
        discovery_key: Callable[[str, str], object],
        deeplink_key: Callable[[str | None, str | None, str, str, ActionTable], object],
        duration_bounds: tuple[float, ...] | None = None,
    ) -> None:
        self._kinds = kinds
        self._bounds = bounds
        self._duration_bounds = bounds if duration_bounds is None else duration_bounds
        self._discovery = dict(discovery)
        self._discovery_key = discovery_key
        self._deeplink_key = deeplink_key
        self._requests: dict[tuple[str, int | None], int] = {}
        self._upstream: dict[str, list[float]] = {}
        self._durations: dict[str, list[float]] = {}
        self._others: dict[object, int] = {}
        #: the requests begun and not yet finished, by `id` of their exchange: a set, so that an
        #: answer for a request that was never begun (a head refused before it was complete)
        #: changes nothing, and the gauge can never drift below the truth
        self._in_flight: set[int] = set()
        # the key per deep link as received, for one table: no label work on a repeat; bounded,
        # since `incoming` is the client's
        self._deeplinks_seen: dict[tuple[str | None, str | None, str, str], object] = {}
        self._deeplink_table: ActionTable | None = None

    def request(self, kind: RequestKind, status: int | None) -> None:
        """One finished request; `status=None` when the response was aborted."""
        if kind not in self._kinds:
            refuse(kind, self._kinds, "request kind")
        key = (kind, status)
        pending = self._requests
        pending[key] = pending.get(key, 0) + 1

    def begin(self, exchange_id: int) -> None:
        """A request whose head is complete is being answered (`id` of its exchange)."""
        self._in_flight.add(exchange_id)

    def finish(
        self, kind: RequestKind, status: int | None, seconds: float, exchange_id: int
    ) -> None:
        """One finished request: counted by kind and status (`None`: aborted), its duration from
        the complete head to the end of the answer observed, and no longer in flight."""
        self.request(kind, status)
        _observe(self._durations, self._duration_bounds, kind, seconds)
        self._in_flight.discard(exchange_id)

    @property
    def in_flight(self) -> int:
        """Requests begun and not finished."""
        return len(self._in_flight)

    def upstream(self, kind: RequestKind, seconds: float) -> None:
        """Time to the upstream's response head."""
        if kind not in self._upstream and kind not in self._kinds:
            refuse(kind, self._kinds, "request kind")
        _observe(self._upstream, self._bounds, kind, seconds)

    def deeplink(
        self,
        incoming: str | None,
        sent: str | None,
        outcome: DeeplinkOutcome,
        table: ActionTable,
        client: ClientFamily = "other",
    ) -> None:
        """One deep link, by the names the client sent and the portal was sent, and who sent it."""
        if self._deeplink_table is not table:
            self._deeplink_table = table
            self._deeplinks_seen.clear()
        seen = (incoming, sent, outcome, client)
        key = self._deeplinks_seen.get(seen)
        if key is None:
            key = self._deeplink_key(incoming, sent, outcome, client, table)
            if len(self._deeplinks_seen) >= SEEN_DEEPLINKS:
                self._deeplinks_seen.clear()
            self._deeplinks_seen[seen] = key
        self._add(key)

    def discovery(self, outcome: DiscoveryOutcome, client: ClientFamily = "other") -> None:
        """One discovery document served, by outcome and who asked for it."""
        pair = (outcome, client)
        key = self._discovery.get(pair)
        if key is None:
            # bounded: the key function refuses outcomes and families it does not know
            key = self._discovery[pair] = self._discovery_key(outcome, client)
        self._add(key)

    def _add(self, key: object) -> None:
        others = self._others
        others[key] = others.get(key, 0) + 1

    def take(self) -> Taken:
        """Everything counted since the last call; the tally starts again from nothing."""
        taken = (self._requests, self._upstream, self._others, self._durations)
        self._requests, self._upstream, self._others, self._durations = {}, {}, {}, {}
        return taken


def _observe(
    histograms: dict[str, list[float]], bounds: tuple[float, ...], kind: str, seconds: float
) -> None:
    """One observation into `histograms[kind]`: [sum, then the count per bucket, +Inf last]."""
    counts = histograms.get(kind)
    if counts is None:
        counts = histograms[kind] = [0.0] * (len(bounds) + 2)
    seconds = max(seconds, 0.0)
    counts[0] += seconds
    # the first bucket whose bound is >= seconds (the last one is +Inf)
    counts[bisect.bisect_left(bounds, seconds) + 1] += 1
