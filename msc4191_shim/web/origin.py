"""Where the client reached us: the public origin used for Location rewrites and defaults."""

from __future__ import annotations

from aiohttp import hdrs, web

from msc4191_shim.config.runtime import Runtime
from msc4191_shim.http.headers import X_FORWARDED_HOST, X_FORWARDED_PROTO, is_trusted


def public_origin(request: web.Request, runtime: Runtime) -> str:
    """`public_url`, else the origin a trusted proxy reports, else the request's own."""
    if runtime.config.public_url is not None:
        return runtime.public_origin(request.scheme, None)
    scheme, host = request.scheme, request.headers.get(hdrs.HOST)
    if is_trusted(request.remote, runtime.config.trusted_proxies):
        scheme = request.headers.get(X_FORWARDED_PROTO, scheme).split(",")[0].strip() or scheme
        host = request.headers.get(X_FORWARDED_HOST, host or "").split(",")[0].strip() or host
    return runtime.public_origin(scheme, host)
