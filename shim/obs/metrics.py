"""Prometheus metrics: what the shim did, labelled so that the label sets stay small.

`Metrics` owns its own `CollectorRegistry` (never the process-global one), so tests and
reloads can create as many as they like. Every label value is drawn from a fixed set; action
names are bounded by the `ActionTable` (a name it does not know counts as `unknown`), clients by
their family (`obs.clients`).

Several workers (`--workers N`) are several processes, each with its own counters. To see their
sum, use prometheus-client's multiprocess mode:

- set `PROMETHEUS_MULTIPROC_DIR` in the environment *before the shim starts* (prometheus-client
  chooses its storage when it is first imported; workers inherit the variable);
- the directory must be writable by the shim's user, on a local filesystem (tmpfs is best; with a
  read-only root filesystem, mount an `emptyDir`), and emptied once at start, before the workers
  start: `prepare_multiprocess_dir()`; files left from an earlier run would be added in;
- every worker then answers `/metrics` with the sum over all workers, dead ones included, so
  counters never go backwards when a worker restarts;
- gauges need a `multiprocess_mode`: `build_info` uses `max` (every worker reports 1), the
  in-flight gauge `livesum` (the live workers' sum), the discovery cache's age `livemax`;
- process metrics (`process_*`, `python_gc_*`) are only exported without multiprocess mode.

No `*_created` series: prometheus-client's are switched off for the whole process when this module
is imported (`disable_created_metrics`). They double the series of every counter and histogram,
and their value (the process's start) is already in `process_start_time_seconds`.
"""

from __future__ import annotations

import atexit
import os
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Final, Literal, cast, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from shim import __version__
from shim.core.deeplink import DeeplinkOutcome as DeeplinkOutcome
from shim.obs import MULTIPROC_ENV
from shim.obs.clients import CLIENT_FAMILIES
from shim.obs.tally import Tally, refuse
from shim.vocabulary import ActionTable

RequestKind = Literal["passthrough", "deeplink", "discovery", "websocket"]
DiscoveryOutcome = Literal[
    "rewritten",
    "unchanged",
    "cached",
    "stale",
    "passthrough_status",
    "passthrough_not_json",
    "passthrough_not_object",
    "passthrough_encoding",
    "passthrough_too_large",
    "not_modified",
]
UpstreamErrorReason = Literal[
    "refused", "dns", "tls", "connect_timeout", "read_timeout", "reset", "other"
]
#: the `limits.*` key that stopped a client (`upstream_max_connections`: a request had to wait
#: for a free upstream connection)
LimitName = Literal[
    "head_timeout",
    "keepalive_timeout",
    "body_idle_timeout",
    "max_head_bytes",
    "max_connections",
    "send_timeout",
    "upstream_max_connections",
]

REQUEST_KINDS: Final[frozenset[str]] = frozenset(get_args(RequestKind))
DEEPLINK_OUTCOMES: Final[frozenset[str]] = frozenset(get_args(DeeplinkOutcome))
DISCOVERY_OUTCOMES: Final[frozenset[str]] = frozenset(get_args(DiscoveryOutcome))
UPSTREAM_ERROR_REASONS: Final[frozenset[str]] = frozenset(get_args(UpstreamErrorReason))
LIMIT_NAMES: Final[frozenset[str]] = frozenset(get_args(LimitName))
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "aborted", "other")

#: From a loopback hop (1 ms) to a portal that is struggling (30 s)...
UPSTREAM_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: ... and past `upstream.read_timeout` (60 s by default): a request cut by the timeout lands
#: in the 120 s bucket, apart from slow answers that made it
UPSTREAM_BUCKETS_LONG: Final = (10.0, 30.0, 60.0, 120.0)
_UPSTREAM_BOUNDS: Final = UPSTREAM_BUCKETS + UPSTREAM_BUCKETS_LONG
#: The shim's own answers (a redirect, a cached document) take a tenth of a millisecond or less:
#: the request duration's buckets start there, then follow the upstream's.
REQUEST_BUCKETS_SHORT: Final = (0.0001, 0.00025, 0.0005)
_REQUEST_BOUNDS: Final = REQUEST_BUCKETS_SHORT + _UPSTREAM_BOUNDS

disable_created_metrics()  # type: ignore[no-untyped-call]


def status_class(status: int | None) -> str:
    """`2xx` for 204; `aborted` when no status was sent; `other` outside 100..599."""
    if status is None:
        return "aborted"
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


#: `incoming_kind`: what the name a client sent is (`name_kind`)
NameKind = Literal["stable", "legacy", "unknown", "none"]
#: the label of a name the action table does not know: it is not an MSC4191 name to migrate
#: (another action the portal serves, such as MAS's `org.matrix.plan_management`, or a typo)
UNKNOWN_NAME: Final = "unknown"


def action_label(name: str | None, table: ActionTable) -> str:
    """The name itself when the table knows it; `none` when absent; `unknown` for anything else."""
    if name is None:
        return "none"
    return name if table.to_stable(name) is not None else UNKNOWN_NAME


def name_kind(name: str | None, table: ActionTable) -> NameKind:
    """`stable`, `legacy` (an alias or a dialect's name the table knows), `unknown`, `none`."""
    if name is None:
        return "none"
    if table.to_stable(name) is None:
        return "unknown"
    return "legacy" if table.is_legacy(name) else "stable"


def _check(value: str, allowed: frozenset[str], what: str) -> None:
    # mypy checks the Literal types; this catches a caller that passes a plain `str`
    if value not in allowed:
        refuse(value, allowed, what)


class _FlushFirst:
    """A collector that reports nothing: collected first, it brings the counters up to date."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        self._metrics.flush()
        return []

    def describe(self) -> Iterable[Metric]:
        return []


def _flush_if_alive(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics.flush()


def _add_observations(histograms: dict[str, Histogram], taken: dict[str, list[float]]) -> None:
    for kind, counts in taken.items():
        # prometheus-client's own per-child values (what `observe` adds to), one addition per
        # bucket for a batch of observations
        histogram = histograms[kind]
        histogram._sum.inc(counts[0])
        for bucket, hits in zip(histogram._buckets, counts[1:], strict=True):
            if hits:
                bucket.inc(hits)


class Metrics:
    """The shim's metrics, in a registry of their own.

    The per-request counts (requests and their durations, upstream times, deep links,
    discovery outcomes, the requests in flight) are added up by its `tally` and handed to
    prometheus-client in batches by `flush`, which also sets the gauges (in flight, the
    discovery cache's age): every collection of the registry flushes first, and the proxy
    flushes once a second (so that, with several workers, each worker's files are at most a
    second behind).
    """

    def __init__(self, version: str = __version__) -> None:
        #: from the environment only: prometheus-client writes its files where the variable says
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(
                f"{MULTIPROC_ENV} was set after prometheus_client was imported, so this "
                "process's metrics would not be shared; set it in the environment before "
                "the shim starts"
            )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_FlushFirst(self))
        if self.multiprocess_dir:
            # other workers read this one's files: what it counted last must reach them
            atexit.register(_flush_if_alive, weakref.ref(self))
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._define(version)

    def _define(self, version: str) -> None:
        reg = self.registry
        self.requests = Counter(
            "msc4191_shim_requests",
            "Requests answered, by kind and status class (aborted: no response was completed).",
            ["kind", "status_class"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "msc4191_shim_request_duration_seconds",
            "Time from a request's complete head to the end of the shim's answer, for every "
            "answer (redirects, cached and rewritten discovery, passthrough, errors), by kind; "
            "a websocket's lasts until it closes.",
            ["kind"],
            buckets=_REQUEST_BOUNDS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "msc4191_shim_requests_in_flight",
            "Requests whose head is complete and whose answer is not finished.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.discovery_cache_age = Gauge(
            "msc4191_shim_discovery_cache_age_seconds",
            "Age of the oldest discovery document in the cache (0 while none is cached); the "
            "portal's document is refetched when it stops being fresh, and served stale while "
            "the portal is down.",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.upstream_duration = Histogram(
            "msc4191_shim_upstream_duration_seconds",
            "Time from sending a request upstream to receiving its response headers.",
            ["kind"],
            buckets=_UPSTREAM_BOUNDS,
            registry=reg,
        )
        self.deeplinks = Counter(
            "msc4191_shim_deeplink_translations",
            "Deep links by the action name clients sent (and its kind: stable, legacy, unknown,"
            " none), the name sent to the portal, outcome (followup: the shim's own redirect"
            " followed) and client family.",
            ["incoming", "incoming_kind", "sent", "outcome", "client"],
            registry=reg,
        )
        self.discovery = Counter(
            "msc4191_shim_discovery_documents",
            "Discovery documents served, by outcome (passthrough_*: why it was not rewritten)"
            " and client family.",
            ["outcome", "client"],
            registry=reg,
        )
        self.upstream_errors = Counter(
            "msc4191_shim_upstream_errors",
            "Upstream requests that failed without a response, by reason.",
            ["reason"],
            registry=reg,
        )
        self.limit_hits = Counter(
            "msc4191_shim_limit_hits",
            "Clients stopped (or made to wait) by a configured limit, by the limit's key.",
            ["limit"],
            registry=reg,
        )
        self.reloads = Counter(
            "msc4191_shim_config_reloads",
            "Configuration reloads (SIGHUP), by result.",
            ["result"],
            registry=reg,
        )
        build_info = Gauge(
            "msc4191_shim_build_info",
            "Always 1; the version is in the label.",
            ["version"],
            registry=reg,
            multiprocess_mode="max",
        )
        build_info.labels(version=version).set(1)
        self._zero_fixed_series()

    def _zero_fixed_series(self) -> None:
        # Series that exist from the start make `rate()` and alerts work before the first event.
        # The children are kept: `.labels()` costs more than the increment, on every request.
        self._requests_by: dict[tuple[str, str], Counter] = {}
        self._upstream_duration_by: dict[str, Histogram] = {}
        self._request_duration_by: dict[str, Histogram] = {}
        for kind in sorted(REQUEST_KINDS):
            self._upstream_duration_by[kind] = self.upstream_duration.labels(kind=kind)
            self._request_duration_by[kind] = self.request_duration.labels(kind=kind)
            for status in STATUS_CLASSES:
                child = self.requests.labels(kind=kind, status_class=status)
                self._requests_by[kind, status] = child
        # discovery: every outcome for the usual family from the start; other families as seen
        self._discovery_by: dict[tuple[str, str], Counter] = {
            (o, "other"): self.discovery.labels(outcome=o, client="other")
            for o in sorted(DISCOVERY_OUTCOMES)
        }
        self._upstream_errors_by = {
            r: self.upstream_errors.labels(reason=r) for r in sorted(UPSTREAM_ERROR_REASONS)
        }
        for result in ("ok", "error"):
            self.reloads.labels(result=result)
        self._limit_hits_by = {n: self.limit_hits.labels(limit=n) for n in sorted(LIMIT_NAMES)}
        # deep links: label sets appear as they are seen (bounded by the action tables' names)
        self._deeplinks_by: dict[tuple[str, str, str, str, str], Counter] = {}
        self.tally = Tally(
            REQUEST_KINDS,
            _UPSTREAM_BOUNDS,
            self._discovery_by,
            self._discovery_child,
            self._deeplink_child,
            _REQUEST_BOUNDS,
        )
        #: the per-request counts: the request path calls its methods (`begin`, `finish`,
        #: `upstream`, `deeplink`, `discovery`) itself, compiled to compiled, a C call each
        #: (obs/tally.py)
        #: what the discovery-cache age gauge reads at each flush: the `time.time()` the oldest
        #: cached document was stored, or None (`watch_discovery_cache`)
        self._oldest_discovery: Callable[[], float | None] | None = None

    def watch_discovery_cache(self, oldest_stored: Callable[[], float | None]) -> None:
        """Report the cache's age from `oldest_stored()` (`DiscoveryCache.oldest_stored`)."""
        self._oldest_discovery = oldest_stored
        self.flush()

    def flush(self) -> None:
        """Hand the counts added up since the last flush to prometheus-client."""
        requests, upstream, children, durations = self.tally.take()
        for (kind, status), count in requests.items():
            self._requests_by[kind, status_class(status)].inc(count)
        for child, count in children.items():
            cast(Counter, child).inc(count)
        _add_observations(self._upstream_duration_by, upstream)
        _add_observations(self._request_duration_by, durations)
        self.in_flight.set(self.tally.in_flight)
        if self._oldest_discovery is not None:
            oldest = self._oldest_discovery()
            self.discovery_cache_age.set(0 if oldest is None else max(0.0, time.time() - oldest))

    def _deeplink_child(
        self,
        incoming: str | None,
        sent: str | None,
        outcome: str,
        client: str,
        table: ActionTable,
    ) -> Counter:
        """The series of a deep link: names the table does not know are counted as `unknown`."""
        _check(outcome, DEEPLINK_OUTCOMES, "deep-link outcome")
        _check(client, CLIENT_FAMILIES, "client family")
        kind = name_kind(incoming, table)
        labels = (action_label(incoming, table), kind, action_label(sent, table), outcome, client)
        child = self._deeplinks_by.get(labels)
        if child is None:
            child = self._deeplinks_by[labels] = self.deeplinks.labels(*labels)
        return child

    def _discovery_child(self, outcome: str, client: str) -> Counter:
        _check(outcome, DISCOVERY_OUTCOMES, "discovery outcome")
        _check(client, CLIENT_FAMILIES, "client family")
        child = self._discovery_by.get((outcome, client))
        if child is None:
            child = self._discovery_by[outcome, client] = self.discovery.labels(outcome, client)
        return child

    def observe_upstream_error(self, reason: UpstreamErrorReason) -> None:
        _check(reason, UPSTREAM_ERROR_REASONS, "upstream error reason")
        self._upstream_errors_by[reason].inc()

    def observe_limit_hit(self, limit: LimitName) -> None:
        _check(limit, LIMIT_NAMES, "limit name")
        self._limit_hits_by[limit].inc()

    def observe_reload(self, ok: bool) -> None:
        self.reloads.labels(result="ok" if ok else "error").inc()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type, negotiated from an `Accept` header."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.exposed()), content_type

    def exposed(self) -> CollectorRegistry:
        """What `/metrics` serves: this process's registry, or every worker's merged.

        Read it (`.collect()`) rather than the counters themselves, so a status page shows the
        same numbers as a scrape, summed over `--workers`.
        """
        if not self.multiprocess_dir:
            return self.registry
        self.flush()
        # A fresh registry per scrape, as prometheus-client's multiprocess guide does: the
        # collector reads every worker's files at collection time.
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return merged
