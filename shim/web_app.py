"""The public application: classify each request, then hand it to the one handler that owns it.

request -> classify (websocket / discovery / well-known / deep link / passthrough) -> handler ->
response. Classification looks only at the method and the path, never at the body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from aiohttp import hdrs, web
from multidict import CIMultiDict

from shim.config import Config
from shim.deeplink import is_entry_raw_path
from shim.location import rewrite_location
from shim.runtime import Runtime
from shim.web_access import finish_request
from shim.web_deeplink import handle_deeplink
from shim.web_discovery import handle_discovery
from shim.web_origin import public_origin
from shim.web_proxy import ResponseHeaderHook, forward
from shim.web_state import STATE_KEY, ShimState, record_of, shim_state
from shim.web_websocket import is_websocket_upgrade, relay_websocket

logger = logging.getLogger("msc4191_shim.app")

Route = Literal["websocket", "discovery", "well_known", "deeplink", "passthrough"]
_READ_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


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
    runtime = state.runtime  # one configuration for the whole request, even across a reload
    record = record_of(request)
    route = classify(
        request.method, request.raw_path, runtime.config, is_websocket_upgrade(request)
    )
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
        finish_request(request, None, 0, time.monotonic() - record.started)
        raise


def make_app(state: ShimState) -> web.Application:
    app = web.Application(handler_args={"max_field_size": 16384, "max_line_size": 16384})
    app[STATE_KEY] = state
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
