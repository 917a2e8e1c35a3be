"""The per-request counts between two flushes, added up as plain numbers.

Every request is counted (its kind and status, the upstream's time to the head, the deep link or
discovery outcome). prometheus-client's `inc` and `observe` take a lock and several Python calls
each, which a request would pay three or four times; a `Tally` adds the same counts up in dicts,
and `Metrics.flush` takes them (`take`) and hands them to prometheus-client in batches.

This module is compiled with the request path (setup.py) and knows nothing of prometheus-client:
what it counts deep links and discovery documents against are opaque keys (the counters'
children), which its owner supplies.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Final, NoReturn

if TYPE_CHECKING:
    from shim.core.actions import ActionTable
    from shim.core.deeplink import DeeplinkOutcome
    from shim.obs.clients import ClientFamily
    from shim.obs.metrics import DiscoveryOutcome, RequestKind

#: how many (incoming, sent, outcome, client) tuples `deeplink` remembers the key of
SEEN_DEEPLINKS: Final = 256

#: what `Tally.take` hands over: requests by (kind, status); upstream times by kind as
#: [sum, then the count per bucket, +Inf last]; other counts by their key
Taken = tuple[dict[tuple[str, int | None], int], dict[str, list[float]], dict[object, int]]


def refuse(value: str, allowed: Collection[str], what: str) -> NoReturn:
    # mypy checks the Literal types; this catches a caller that passes a plain `str`
    raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(allowed)}")


class Tally:
    """Counts since the last `take`.

    `kinds` are the request kinds, `bounds` the upstream-time buckets' upper bounds (ascending),
    `discovery` the key per (discovery outcome, client family) known at the start,
    `discovery_key(outcome, client)` the key of any other pair, and
    `deeplink_key(incoming, sent, outcome, client, table)` the key of a deep link's counts (both
    may raise ValueError for an outcome or family they do not know).
    """

    def __init__(
        self,
        kinds: frozenset[str],
        bounds: tuple[float, ...],
        discovery: Mapping[tuple[str, str], object],
        discovery_key: Callable[[str, str], object],
        deeplink_key: Callable[[str | None, str | None, str, str, ActionTable], object],
    ) -> None:
        self._kinds = kinds
        self._bounds = bounds
        self._discovery = dict(discovery)
        self._discovery_key = discovery_key
        self._deeplink_key = deeplink_key
        self._requests: dict[tuple[str, int | None], int] = {}
        self._upstream: dict[str, list[float]] = {}
        self._others: dict[object, int] = {}
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

    def upstream(self, kind: RequestKind, seconds: float) -> None:
        """Time to the upstream's response head."""
        counts = self._upstream.get(kind)
        if counts is None:
            if kind not in self._kinds:
                refuse(kind, self._kinds, "request kind")
            counts = self._upstream[kind] = [0.0] * (len(self._bounds) + 2)
        seconds = max(seconds, 0.0)
        counts[0] += seconds  # the sum; then the buckets' counts
        # the first bucket whose bound is >= seconds (the last one is +Inf)
        counts[bisect.bisect_left(self._bounds, seconds) + 1] += 1

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
        taken = (self._requests, self._upstream, self._others)
        self._requests, self._upstream, self._others = {}, {}, {}
        return taken
