"""The admin status page's facts: what the shim fronts, what it did, and whether it can go.

Pure: `status_snapshot` gathers display-ready values from the configuration, the counters
`/metrics` serves and the portal's own discovery document (as `obs.retirement` reads them for
`doctor` too); `obs.status_html.render_status` turns the snapshot into HTML. Nothing here shows
a credential or a query: URLs lose their user information, query and fragment.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from yarl import URL

from shim.config.model import Config
from shim.config.values import ListenAddress
from shim.http.secrets import REDACTED
from shim.obs.counters import ShimCounters, counters_from_metrics
from shim.obs.metrics import Metrics
from shim.obs.retirement import retirement_notes, retirement_reasons

RETIRE_SECTION: Final = "docs/retirement.md"


@dataclass(frozen=True, slots=True)
class NameCount:
    """Deep links that arrived under one action name, and what each became."""

    incoming: str
    #: `stable`, `legacy`, `none` or `unknown` (the `incoming_kind` label)
    kind: str
    count: int
    #: (`sent` name, outcome, count), the most frequent first
    became: tuple[tuple[str, str, int], ...]
    #: (client family, count), the most frequent first
    clients: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    version: str
    started_at: float
    uptime_seconds: float
    #: the counts are every `--workers` process's, summed (multiprocess mode)
    all_workers: bool
    #: (what, value): the portal, dialect, strategy and public origin
    fronts: tuple[tuple[str, str], ...]
    #: (configuration key, value) for the choices that change what clients see
    choices: tuple[tuple[str, str], ...]
    deeplinks: tuple[NameCount, ...]
    discovery: Mapping[str, int]
    upstream_errors: Mapping[str, int]
    #: how the portal's own discovery document was read, for the verdict
    portal_detail: str
    #: why the shim is still needed; empty: it can go
    reasons: tuple[str, ...]
    #: what to know beside the reasons (whom to chase, the shim's own traffic, a portal that
    #: already speaks MSC4191)
    notes: tuple[str, ...] = ()


def read_counts(metrics: Metrics) -> ShimCounters | None:
    """The counters exactly as `/metrics` serves them (merged over workers in that mode)."""
    return counters_from_metrics(metrics.exposed().collect())


def status_snapshot(
    config: Config,
    counters: ShimCounters | None,
    portal_doc: Mapping[str, Any] | None,
    portal_detail: str,
    *,
    started_at: float,
    all_workers: bool,
    now: float | None = None,
) -> StatusSnapshot:
    now = time.time() if now is None else now
    empty: Mapping[str, int] = {}
    return StatusSnapshot(
        version=counters.version if counters else "unknown",
        started_at=started_at,
        uptime_seconds=max(now - started_at, 0.0),
        all_workers=all_workers,
        fronts=fronts(config),
        choices=choices(config),
        deeplinks=by_incoming_name(counters),
        discovery=counters.discovery if counters else empty,
        upstream_errors=counters.upstream_errors if counters else empty,
        portal_detail=portal_detail,
        reasons=retirement_reasons(portal_doc, config, counters),
        notes=retirement_notes(portal_doc, config, counters),
    )


def by_incoming_name(counters: ShimCounters | None) -> tuple[NameCount, ...]:
    """Clients' deep links per incoming name, the most frequent first (not the shim's own
    follow-ups, not doctor's)."""
    if counters is None:
        return ()
    became: dict[str, Counter[tuple[str, str]]] = {}
    clients: dict[str, Counter[str]] = {}
    kinds: dict[str, str] = {}
    for link in counters.client_deeplinks:
        became.setdefault(link.incoming, Counter())[link.sent, link.outcome] += link.count
        clients.setdefault(link.incoming, Counter())[link.client] += link.count
        kinds[link.incoming] = link.kind
    names = [
        NameCount(
            name,
            kinds[name],
            counts.total(),
            tuple((sent, outcome, n) for (sent, outcome), n in counts.most_common()),
            tuple(clients[name].most_common()),
        )
        for name, counts in became.items()
    ]
    return tuple(sorted(names, key=lambda n: (-n.count, n.incoming)))


def fronts(config: Config) -> tuple[tuple[str, str], ...]:
    public = config.public_url
    return (
        ("portal", display_url(config.upstream.url)),
        ("dialect", config.account_management.table.dialect.name),
        ("strategy", config.account_management.strategy),
        (
            "public origin",
            display_url(public) if public else "each request's Host (X-Forwarded-* if trusted)",
        ),
    )


def choices(config: Config) -> tuple[tuple[str, str], ...]:
    account, discovery = config.account_management, config.discovery
    unsupported = account.unsupported
    page = discovery.account_management_uri
    return (
        ("listen", _address(config.listen) + (" (TLS)" if config.tls else "")),
        ("admin.listen", _address(config.admin.listen)),
        ("account_management.paths", ", ".join(account.paths)),
        (
            "account_management.unsupported",
            unsupported if isinstance(unsupported, str) else "redirect to " + _url(unsupported.url),
        ),
        ("discovery.advertise", discovery.advertise),
        ("discovery.unstable_keys", _on(discovery.unstable_keys)),
        ("discovery.cache", _on(discovery.cache)),
        ("discovery.account_management_uri", _url(page) if page else "the portal's own"),
        ("trusted_proxies", ", ".join(str(n) for n in config.trusted_proxies) or "none"),
    )


def display_url(url: URL) -> str:
    """`url` without its query and fragment, and with any user information redacted."""
    bare = url.with_query(None).with_fragment(None)
    if bare.user is None and bare.password is None:
        return str(bare)
    scheme, _, rest = str(bare.with_user(None)).partition("://")
    return f"{scheme}://{REDACTED}@{rest}"


def _url(text: str) -> str:
    try:
        return display_url(URL(text))
    except ValueError:
        return REDACTED


def _address(listen: ListenAddress) -> str:
    host = f"[{listen.host}]" if ":" in listen.host else listen.host or "*"
    return f"{host}:{listen.port}"


def _on(flag: bool) -> str:
    return "on" if flag else "off"
