"""The edge limits the client side enforces, read once per runtime from `config.limits`."""

from __future__ import annotations

from dataclasses import dataclass

from msc4191_shim.config.parse import Config


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    #: time to receive a whole request head, from its first byte
    head_timeout: float = 10.0
    #: idle time allowed between requests on a kept-alive connection
    keepalive_timeout: float = 75.0
    #: the longest gap between reads of a request body
    body_idle_timeout: float = 60.0
    #: request line and every field together
    max_head_bytes: int = 32768
    #: concurrent client connections per worker (None: unbounded)
    max_connections: int | None = None
    #: upstream connections per worker, in use and idle (None: unbounded)
    upstream_connections: int | None = None


def edge_limits(config: Config) -> EdgeLimits:
    """The configured limits; the defaults above for any the configuration does not have."""
    defaults = EdgeLimits()
    section = getattr(config, "limits", None)

    def pick(name: str, default: object) -> object:
        return getattr(section, name, default) if section is not None else default

    return EdgeLimits(
        head_timeout=float(pick("head_timeout", defaults.head_timeout)),  # type: ignore[arg-type]
        keepalive_timeout=float(pick("keepalive_timeout", defaults.keepalive_timeout)),  # type: ignore[arg-type]
        body_idle_timeout=float(pick("body_idle_timeout", defaults.body_idle_timeout)),  # type: ignore[arg-type]
        max_head_bytes=int(pick("max_head_bytes", defaults.max_head_bytes)),  # type: ignore[call-overload]
        max_connections=pick("max_connections", None),  # type: ignore[arg-type]
        upstream_connections=getattr(config.upstream, "max_connections", None),
    )
