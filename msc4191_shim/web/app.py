"""The public application: classify each request, then hand it to the one handler that owns it.

request -> classify (websocket / discovery / well-known / deep link / passthrough) -> handler ->
response. Classification looks only at the method and the path, never at the body.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import PlainResource
from multidict import CIMultiDict

from msc4191_shim.config.model import Config
from msc4191_shim.config.runtime import Runtime
from msc4191_shim.core.deeplink import is_entry_raw_path
from msc4191_shim.core.location import rewrite_location
from msc4191_shim.web.access import finish_request
from msc4191_shim.web.deeplinks import handle_deeplink
from msc4191_shim.web.discovery import handle_discovery
from msc4191_shim.web.forward import ResponseHeaderHook, forward
from msc4191_shim.web.origin import public_origin
from msc4191_shim.web.state import STATE_KEY, ShimState, record_of, runtime_of, shim_state
from msc4191_shim.web.websocket import is_websocket_upgrade, relay_websocket, track_websockets

Route = Literal["websocket", "discovery", "well_known", "deeplink", "passthrough"]
_READ_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
#: request line and header field limit, both directions (nginx's large_client_header_buffers is 8k)
MAX_HEADER_LINE = 16384


def origin_form(target: str) -> str | None:
    """`/path?query` for an origin-form or absolute-form request target; None for any other.

    A client may send the absolute form (`http://host/path?q`, RFC 9112 §3.2.2) to any server;
    its scheme and authority are dropped and the rest is kept byte for byte. The asterisk form
    (`OPTIONS *`) and the authority form (CONNECT) are not proxied.
    """
    if target.startswith("/"):
        return target
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        return None
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path_qs = rest[cut:]
    return path_qs if path_qs.startswith("/") else "/" + path_qs


def classify(method: str, raw_path: str, config: Config, websocket: bool) -> Route:
    if websocket:
        return "websocket"
    if method not in _READ_METHODS:
        return "passthrough"
    path = raw_path.partition("?")[0]
    if path in config.discovery.paths:
        return "discovery"
    if path in config.discovery.well_known_paths:
        return "well_known"
    if is_entry_raw_path(path, config.account_management.paths):
        return "deeplink"
    return "passthrough"


def location_hook(request: web.Request, runtime: Runtime) -> ResponseHeaderHook:
    """Rewrite a Location that points at the upstream's own origin, as nginx's default does."""
    account = runtime.config.account_management
    table = account.table if account.strategy == "rewrite" else None
    origin = public_origin(request, runtime)

    def hook(headers: CIMultiDict[str]) -> None:
        location = headers.get(hdrs.LOCATION)
        if location is not None:
            headers[hdrs.LOCATION] = rewrite_location(
                location,
                upstream_origin=runtime.upstream_origin,
                public_origin=origin,
                back_translate=table,
                entry_paths=account.paths,
            )

    return hook


async def handle(request: web.Request) -> web.StreamResponse:
    state = shim_state(request)
    runtime = runtime_of(request)  # one configuration for the whole request, even across a reload
    record = record_of(request)
    target = origin_form(request.raw_path)
    if target is None:
        return web.Response(
            status=400,
            text=f"request target {request.raw_path[:64]!r} is not proxied: "
            "send /path?query (this is a reverse proxy, not a forward proxy)\n",
        )
    record.target = target
    route = classify(request.method, target, runtime.config, is_websocket_upgrade(request))
    try:
        if route == "websocket":
            return await relay_websocket(request)
        hook = location_hook(request, runtime)
        if route == "discovery" or route == "well_known":
            return await handle_discovery(request, well_known=route == "well_known", hook=hook)
        if route == "deeplink":
            return await handle_deeplink(request, hook)
        return await forward(request, hook=hook)
    except asyncio.CancelledError:
        # the client went away; the upstream request was cancelled with us
        record.error = "client disconnected"
        record.aborted = True
        finish_request(state, request, record, None, 0, time.monotonic() - record.started)
        raise


def make_app(state: ShimState) -> web.Application:
    app = web.Application(
        handler_args={"max_field_size": MAX_HEADER_LINE, "max_line_size": MAX_HEADER_LINE}
    )
    app[STATE_KEY] = state
    track_websockets(app)
    every_target = _EveryTarget("/")
    every_target.add_route(hdrs.METH_ANY, handle)
    app.router.register_resource(every_target)
    return app


class _EveryTarget(PlainResource):
    """One resource for every request target, `*` and absolute forms included.

    aiohttp's router only knows paths; `handle` decides what is proxied. Registered under "/",
    which the router reaches last for any path, so resolving costs a few dict lookups.
    """

    def _match(self, path: str) -> dict[str, str]:
        return {}

    def raw_match(self, path: str) -> bool:
        return True
