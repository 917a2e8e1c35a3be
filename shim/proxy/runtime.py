"""Everything the request path derives from the configuration, built once per (re)load.

A `Runtime` is built whole when the file is loaded or reloaded, before anything changes, and
swapped in whole; a request keeps the one it started under. It holds the configuration, every
fact derived from it (where the portal is and how to reach it, its path prefix, the public
origin), and what is remembered under it: the memos of pure functions of this configuration
(routes, deep-link plans) and the discovery cache. Those start empty at each reload, so nothing
learned under an old configuration is served again, and no lookup has to check which
configuration it was made under.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Final

from yarl import URL

from shim.config.model import Config
from shim.config.tls import upstream_context
from shim.core.deeplink import DeepLinkPlan, plan_deeplink
from shim.http.cache import DiscoveryCache
from shim.memo import Memo
from shim.proxy.route import Route, classify

#: the routes of the (method, path) pairs seen lately (SECURITY.md: what the hot path remembers)
ROUTES: Final = 512
#: the plans of the deep links seen lately: most are the same few from every client; only
#: targets up to this long are remembered
PLANS: Final = 1024
PLAN_MAX_TARGET: Final = 512


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where and how to connect to the portal."""

    host: str
    port: int
    ssl: ssl.SSLContext | None
    #: the path prefix of `upstream.url`, prepended to every target
    prefix: bytes
    #: the Host field when the client's is not preserved
    authority: bytes
    #: the prefix as text (it is ASCII)
    prefix_text: str
    #: what the pool files this target's connections under
    key: tuple[str, int, bool]


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    #: scheme://host:port plus any path prefix, without a trailing slash
    upstream_base: str
    upstream_origin: URL
    upstream_ssl: ssl.SSLContext | bool
    target: UpstreamTarget
    #: `public_url`'s origin, when it is set
    public_url_origin: str | None
    #: the portal's origin as text (the public origin when nothing else names one)
    upstream_origin_text: str
    routes: Memo[tuple[str, str], Route] = field(default_factory=lambda: Memo(ROUTES))
    plans: Memo[tuple[str, str], DeepLinkPlan] = field(default_factory=lambda: Memo(PLANS))
    #: rewritten discovery documents (a reload drops them: SECURITY.md, the discovery cache)
    cache: DiscoveryCache = field(default_factory=DiscoveryCache)

    def route(self, method: str, raw_path: str, upgrade: bool) -> Route:
        """`route.classify` of a request under this configuration, remembered by (method,
        path): the query does not change a route."""
        if upgrade:
            return "upgrade"
        key = (method, raw_path.partition("?")[0])
        route = self.routes.get(key)
        if route is None:
            route = self.routes.put(key, classify(method, key[1], self.config, False))
        return route

    def plan(self, path: str, query: str) -> DeepLinkPlan:
        """`core.deeplink.plan_deeplink` of a deep link under this configuration, remembered."""
        key = (path, query)
        plan = self.plans.get(key)
        if plan is None:
            plan = plan_deeplink(path, query, self.config.account_management)
            if len(path) + len(query) <= PLAN_MAX_TARGET:
                self.plans.put(key, plan)
        return plan

    def upstream_url(self, raw_path_qs: str) -> URL:
        """The upstream URL for a raw client path and query, byte for byte (no re-encoding)."""
        return URL(self.upstream_base + raw_path_qs, encoded=True)


def build_runtime(config: Config) -> Runtime:
    """Raises `ConfigError` (upstream.ca_file) when the CA bundle cannot be loaded."""
    url = config.upstream.url
    upstream_ssl = upstream_context(config.upstream)
    base = str(url.origin()) + url.raw_path.rstrip("/")
    public_url = config.public_url
    return Runtime(
        config,
        base,
        url.origin(),
        upstream_ssl,
        _target(url, upstream_ssl),
        None if public_url is None else str(public_url.origin()),
        str(url.origin()),
    )


def _target(url: URL, upstream_ssl: ssl.SSLContext | bool) -> UpstreamTarget:
    assert url.host is not None
    assert url.port is not None
    context = upstream_ssl if isinstance(upstream_ssl, ssl.SSLContext) else None
    tls = context if url.scheme == "https" else None
    prefix = url.raw_path.rstrip("/")
    return UpstreamTarget(
        host=url.host,
        port=url.port,
        ssl=tls,
        prefix=prefix.encode("ascii"),
        authority=url.host_port_subcomponent.encode("idna") if url.host_port_subcomponent else b"",
        prefix_text=prefix,
        key=(url.host, url.port, tls is not None),
    )
