"""What the request path needs from the configuration, derived once per (re)load.

A `Runtime` is immutable; a reload builds a new one and swaps it in, so a request that started
under the old configuration finishes under it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from yarl import URL

from shim.config.model import Config
from shim.config.tls import upstream_context


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    #: scheme://host:port plus any path prefix, without a trailing slash
    upstream_base: str
    upstream_origin: URL
    upstream_ssl: ssl.SSLContext | bool

    def upstream_url(self, raw_path_qs: str) -> URL:
        """The upstream URL for a raw client path and query, byte for byte (no re-encoding)."""
        return URL(self.upstream_base + raw_path_qs, encoded=True)

    def public_origin(self, scheme: str, host: str | None) -> str:
        """Where clients reach the portal: `public_url` if set, else the request's own origin."""
        if self.config.public_url is not None:
            return str(self.config.public_url.origin())
        return f"{scheme}://{host}" if host else str(self.upstream_origin)


def build_runtime(config: Config) -> Runtime:
    """Raises `ConfigError` (upstream.ca_file) when the CA bundle cannot be loaded."""
    url = config.upstream.url
    upstream_ssl = upstream_context(config.upstream)
    base = str(url.origin()) + url.raw_path.rstrip("/")
    return Runtime(config, base, url.origin(), upstream_ssl)
