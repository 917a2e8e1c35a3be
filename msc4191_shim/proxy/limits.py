"""The edge limits the protocol layer enforces, read once per runtime from the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from msc4191_shim.config.parse import Config


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    #: time to receive a whole request head, from its first byte (`limits.head_timeout`)
    head_timeout: float
    #: idle time allowed between requests on a kept-alive connection
    keepalive_timeout: float
    #: the longest gap between reads of a request body
    body_idle_timeout: float
    #: request line and every field together
    max_head_bytes: int
    #: concurrent client connections per worker
    max_connections: int
    #: upstream connections per worker, in use and idle (`upstream.max_connections`)
    upstream_connections: int


def edge_limits(config: Config) -> EdgeLimits:
    limits = config.limits
    return EdgeLimits(
        head_timeout=limits.head_timeout,
        keepalive_timeout=limits.keepalive_timeout,
        body_idle_timeout=limits.body_idle_timeout,
        max_head_bytes=limits.max_head_bytes,
        max_connections=limits.max_connections,
        upstream_connections=config.upstream.max_connections,
    )
