"""What every connection of the public listener shares; `runtime` is swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from shim.config.runtime import Runtime
from shim.http.cache import DiscoveryCache
from shim.obs.metrics import Metrics
from shim.proxy.followups import Followups
from shim.proxy.pool import UpstreamPool


@dataclass
class ShimState:
    runtime: Runtime
    #: the admin listener's client (readiness checks); the public path uses `pool`
    session: aiohttp.ClientSession
    metrics: Metrics
    cache: DiscoveryCache = field(default_factory=DiscoveryCache)
    pool: UpstreamPool = field(default_factory=UpstreamPool)

    def __post_init__(self) -> None:
        self.metrics.watch_discovery_cache(self.cache.oldest_stored)

    #: the Locations of the shim's own redirects, lately (`proxy.deeplinks`)
    followups: Followups = field(default_factory=Followups)
