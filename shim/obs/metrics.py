"""Prometheus metrics: what the shim did, labelled so that the label sets stay small.

The counts are added up by a `Tally` (`obs/tally.py`, on the request path) and served as they
are when `/metrics` is scraped: `Metrics` registers one collector that turns them into metric
families (prometheus-client's public `*MetricFamily` types), so nothing is handed to
prometheus-client between scrapes. `Metrics` owns its own `CollectorRegistry` (never the
process-global one), so tests and reloads can create as many as they like. Every label value is
drawn from a fixed set (`obs/labels.py`); action names are bounded by the `ActionTable` (a name
it does not know counts as `unknown`), clients by their family (`obs/clients.py`).

Several workers (`--workers N`) are several processes, each with its own counts. To serve their
sum, each worker writes a snapshot of its counts to a small file of its own in a shared
directory, at most once a second (`flush`, called by the proxy's listener, and at exit), and a
scrape adds every other worker's file to its own counts (`obs/snapshots.py`):

- `PROMETHEUS_MULTIPROC_DIR` names the directory (the variable prometheus-client's own
  multiprocess mode reads, kept so that existing deployments keep working); the supervisor makes
  one when it is not set (`server/workers.py`) and empties it of earlier runs' files at start;
- counters and histograms are summed over every worker, dead ones included, so counters never go
  backwards when a worker restarts; the in-flight gauge is summed and the discovery cache's age
  is the largest over the live workers only (the supervisor deletes a dead worker's live file);
- process metrics (`process_*`, `python_*`) are only exported without the directory: they would
  describe one worker of several.

There are no `*_created` series: they would double the series of every counter and histogram,
and their value (the process's start) is already in `process_start_time_seconds`.
"""

from __future__ import annotations

import atexit
import os
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from shim import __version__
from shim.obs import MULTIPROC_ENV
from shim.obs.labels import (
    DISCOVERY_OUTCOMES,
    LIMIT_NAMES,
    RELOAD_RESULTS,
    REQUEST_KINDS,
    STATUS_CLASSES,
    UPSTREAM_ERROR_REASONS,
    LimitName,
    UpstreamErrorReason,
    status_class,
)
from shim.obs.snapshots import Live, Snapshot, SnapshotFiles
from shim.obs.tally import Tally

#: From a loopback hop (1 ms) to a portal that is struggling (30 s)...
UPSTREAM_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: ... and past `upstream.read_timeout` (60 s by default): a request cut by the timeout lands
#: in the 120 s bucket, apart from slow answers that made it
UPSTREAM_BUCKETS_LONG: Final = (10.0, 30.0, 60.0, 120.0)
UPSTREAM_BOUNDS: Final = UPSTREAM_BUCKETS + UPSTREAM_BUCKETS_LONG
#: The shim's own answers (a redirect, a cached document) take a tenth of a millisecond or less:
#: the request duration's buckets start there, then follow the upstream's.
REQUEST_BUCKETS_SHORT: Final = (0.0001, 0.00025, 0.0005)
REQUEST_BOUNDS: Final = REQUEST_BUCKETS_SHORT + UPSTREAM_BOUNDS

# The metrics' names (a counter's samples gain `_total`) and HELP texts: dashboards
# (deploy/grafana), alerts (deploy/prometheus) and doctor (obs/counts.py) read them.
REQUESTS: Final = "msc4191_shim_requests"
REQUESTS_HELP: Final = (
    "Requests answered, by kind and status class (aborted: no response was completed)."
)
REQUEST_DURATION: Final = "msc4191_shim_request_duration_seconds"
REQUEST_DURATION_HELP: Final = (
    "Time from a request's complete head to the end of the shim's answer, for every answer "
    "(redirects, cached and rewritten discovery, passthrough, errors), by kind; a websocket's "
    "lasts until it closes."
)
IN_FLIGHT: Final = "msc4191_shim_requests_in_flight"
IN_FLIGHT_HELP: Final = "Requests whose head is complete and whose answer is not finished."
CACHE_AGE: Final = "msc4191_shim_discovery_cache_age_seconds"
CACHE_AGE_HELP: Final = (
    "Age of the oldest discovery document in the cache (0 while none is cached); the portal's "
    "document is refetched when it stops being fresh, and served stale while the portal is down."
)
UPSTREAM_DURATION: Final = "msc4191_shim_upstream_duration_seconds"
UPSTREAM_DURATION_HELP: Final = (
    "Time from sending a request upstream to receiving its response headers."
)
DEEPLINKS: Final = "msc4191_shim_deeplink_translations"
DEEPLINKS_HELP: Final = (
    "Deep links by the action name clients sent (and its kind: stable, legacy, unknown, none), "
    "the name sent to the portal, outcome (followup: the shim's own redirect followed) and "
    "client family."
)
DISCOVERY: Final = "msc4191_shim_discovery_documents"
DISCOVERY_HELP: Final = (
    "Discovery documents served, by outcome (passthrough_*: why it was not rewritten) and "
    "client family."
)
UPSTREAM_ERRORS: Final = "msc4191_shim_upstream_errors"
UPSTREAM_ERRORS_HELP: Final = "Upstream requests that failed without a response, by reason."
LIMIT_HITS: Final = "msc4191_shim_limit_hits"
LIMIT_HITS_HELP: Final = (
    "Clients stopped (or made to wait) by a configured limit, by the limit's key."
)
RELOADS: Final = "msc4191_shim_config_reloads"
RELOADS_HELP: Final = "Configuration reloads (SIGHUP), by result."
BUILD_INFO: Final = "msc4191_shim_build_info"
BUILD_INFO_HELP: Final = "Always 1; the version is in the label."

#: each counter's HELP text and label names, and each histogram's HELP text and bucket bounds
#: (its one label is `kind`); `families` writes them in the exposition's order
COUNTERS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    REQUESTS: (REQUESTS_HELP, ("kind", "status_class")),
    DEEPLINKS: (DEEPLINKS_HELP, ("incoming", "incoming_kind", "sent", "outcome", "client")),
    DISCOVERY: (DISCOVERY_HELP, ("outcome", "client")),
    UPSTREAM_ERRORS: (UPSTREAM_ERRORS_HELP, ("reason",)),
    LIMIT_HITS: (LIMIT_HITS_HELP, ("limit",)),
    RELOADS: (RELOADS_HELP, ("result",)),
}
HISTOGRAMS: Final[dict[str, tuple[str, tuple[float, ...]]]] = {
    REQUEST_DURATION: (REQUEST_DURATION_HELP, REQUEST_BOUNDS),
    UPSTREAM_DURATION: (UPSTREAM_DURATION_HELP, UPSTREAM_BOUNDS),
}
#: a histogram's `le` labels, written as prometheus-client writes its own bounds
_LE: Final = {
    name: (*(floatToGoString(b) for b in bounds), "+Inf")  # type: ignore[no-untyped-call]
    for name, (_, bounds) in HISTOGRAMS.items()
}


def snapshot_of(tally: Tally) -> Snapshot:
    """The tally's counts by label values, with the series that exist from the start at zero
    (they make `rate()` and alerts work before the first event)."""
    snapshot = Snapshot()
    requests = snapshot.counter(REQUESTS)
    for kind in sorted(REQUEST_KINDS):
        for cls in STATUS_CLASSES:
            requests[kind, cls] = 0.0
    for (kind, status), n in tally.request_counts.items():
        requests[kind, status_class(status)] += n
    for name, by_kind in (
        (REQUEST_DURATION, tally.duration_counts),
        (UPSTREAM_DURATION, tally.upstream_counts),
    ):
        histogram = snapshot.histogram(name)
        empty = [0.0] * len(_LE[name]) + [0.0]
        for kind in sorted(REQUEST_KINDS):
            histogram[kind,] = list(by_kind.get(kind, empty))
    snapshot.counter(DEEPLINKS).update(
        (labels, float(n)) for labels, n in tally.deeplink_counts.items()
    )
    discovery = snapshot.counter(DISCOVERY)
    # every outcome for the usual family from the start; other families as seen
    for outcome in sorted(DISCOVERY_OUTCOMES):
        discovery[outcome, "other"] = 0.0
    discovery.update((pair, float(n)) for pair, n in tally.discovery_counts.items())
    for name, names, seen in (
        (UPSTREAM_ERRORS, sorted(UPSTREAM_ERROR_REASONS), tally.upstream_error_counts),
        (LIMIT_HITS, sorted(LIMIT_NAMES), tally.limit_hit_counts),
        (RELOADS, RELOAD_RESULTS, tally.reload_counts),
    ):
        snapshot.counter(name).update(((key,), float(seen.get(key, 0))) for key in names)
    return snapshot


def families(snapshot: Snapshot, live: Live, version: str, now: float) -> Iterator[Metric]:
    """The metric families of `snapshot` and `live`, in the exposition's order."""
    yield _counter(REQUESTS, snapshot)
    yield _histogram(REQUEST_DURATION, snapshot)
    yield GaugeMetricFamily(IN_FLIGHT, IN_FLIGHT_HELP, value=live.in_flight)
    oldest = live.oldest_discovery
    age = 0.0 if oldest is None else max(0.0, now - oldest)
    yield GaugeMetricFamily(CACHE_AGE, CACHE_AGE_HELP, value=age)
    yield _histogram(UPSTREAM_DURATION, snapshot)
    for name in (DEEPLINKS, DISCOVERY, UPSTREAM_ERRORS, LIMIT_HITS, RELOADS):
        yield _counter(name, snapshot)
    build_info = GaugeMetricFamily(BUILD_INFO, BUILD_INFO_HELP, labels=["version"])
    build_info.add_metric([version], 1)
    yield build_info


# A series of another shape (a worker started from another version's code wrote it) is left
# out: a scrape never fails on it.


def _counter(name: str, snapshot: Snapshot) -> CounterMetricFamily:
    text, label_names = COUNTERS[name]
    family = CounterMetricFamily(name, text, labels=label_names)
    for labels, value in snapshot.counters.get(name, {}).items():
        if len(labels) == len(label_names):
            family.add_metric(labels, value)
    return family


def _histogram(name: str, snapshot: Snapshot) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, HISTOGRAMS[name][0], labels=["kind"])
    le = _LE[name]
    for labels, values in snapshot.histograms.get(name, {}).items():
        if len(labels) != 1 or len(values) != len(le) + 1:
            continue
        cumulative, buckets = 0.0, []
        for bound, hits in zip(le, values[1:], strict=True):
            cumulative += hits
            buckets.append((bound, cumulative))
        family.add_metric(labels, buckets, values[0])
    return family


class Metrics:
    """The shim's metrics, in a registry of their own.

    Every count is added up by its `tally`: the request path calls its methods (`begin`,
    `finish`, `upstream`, `deeplink`, `discovery`) itself, compiled to compiled, a C call each
    (obs/tally.py); the rarer events come through `observe_*`.
    """

    def __init__(self, version: str = __version__) -> None:
        self.version = version
        self.tally = Tally(REQUEST_BOUNDS, UPSTREAM_BOUNDS)
        #: what the discovery-cache age gauge reads: the `time.time()` the oldest cached
        #: document was stored, or None (`watch_discovery_cache`)
        self._oldest_discovery: Callable[[], float | None] | None = None
        #: the directory the `--workers` share their counts in, read when the metrics are made
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self._shared: SnapshotFiles | None = None
        self.registry = CollectorRegistry()
        if self.multiprocess_dir:
            self._shared = SnapshotFiles(self.multiprocess_dir)
            # other workers read this one's file: what it counted last must reach them
            atexit.register(_flush_if_alive, weakref.ref(self))
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        # this object is the collector: a scrape reads the counts as they are then
        self.registry.register(self)

    def watch_discovery_cache(self, oldest_stored: Callable[[], float | None]) -> None:
        """Report the cache's age from `oldest_stored()` (`DiscoveryCache.oldest_stored`)."""
        self._oldest_discovery = oldest_stored

    def live(self) -> Live:
        """This process's gauges' values now."""
        watch = self._oldest_discovery
        return Live(self.tally.in_flight, None if watch is None else watch())

    def collect(self) -> Iterator[Metric]:
        """This process's metric families, or every worker's merged when they share counts."""
        snapshot, live = snapshot_of(self.tally), self.live()
        if self._shared is not None:
            live = self._shared.add_others(snapshot, live)
        return families(snapshot, live, self.version, time.time())

    def flush(self) -> None:
        """Share the counts with the other workers: write this process's file (the proxy calls
        this once a second, and it is called at exit); nothing without a shared directory."""
        if self._shared is not None:
            self._shared.write(snapshot_of(self.tally), self.live())

    def observe_upstream_error(self, reason: UpstreamErrorReason) -> None:
        self.tally.upstream_error(reason)

    def observe_limit_hit(self, limit: LimitName) -> None:
        self.tally.limit_hit(limit)

    def observe_reload(self, ok: bool) -> None:
        self.tally.reload(ok)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type, negotiated from an `Accept` header."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def exposed(self) -> CollectorRegistry:
        """What `/metrics` serves (merged over `--workers` when they share counts).

        Read it (`.collect()`) rather than the tally itself, so a status page shows the same
        numbers as a scrape.
        """
        return self.registry


def _flush_if_alive(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics.flush()
