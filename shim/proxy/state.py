"""What every connection of the public listener shares; `runtime` is swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from shim.obs.metrics import Metrics
from shim.proxy.followups import Followups
from shim.proxy.pool import UpstreamPool
from shim.proxy.runtime import Runtime


@dataclass
class ShimState:
    runtime: Runtime
    #: the admin listener's client (readiness checks); the public path uses `pool`
    session: aiohttp.ClientSession
    metrics: Metrics
    pool: UpstreamPool = field(default_factory=UpstreamPool)

    #: the Locations of the shim's own redirects, lately (`proxy.deeplinks`)
    followups: Followups = field(default_factory=Followups)

    def __post_init__(self) -> None:
        self.metrics.watch_discovery_cache(self._oldest_cached)

    def _oldest_cached(self) -> float | None:
        """When the oldest document in the current configuration's cache was stored."""
        return self.runtime.cache.oldest_stored()
