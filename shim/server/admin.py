"""The admin listener: liveness, readiness, metrics and a status page, never on the public port."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import hdrs, web

from shim.proxy.state import ShimState
from shim.server.client_errors import no_answer_reason
from shim.server.status_page import PortalDocument, status_page

#: /readyz asks the upstream at most this often, however often it is probed
READY_CHECK_INTERVAL = 2.0
READY_CHECK_TIMEOUT = 2.0


class UpstreamReadiness:
    """Remembers whether the upstream answered recently; one check in flight at a time."""

    def __init__(self, state: ShimState, interval: float = READY_CHECK_INTERVAL) -> None:
        self.state = state
        self.interval = interval
        self.checked_at = float("-inf")
        self.ready = False
        self.detail = "not checked yet"
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, str]:
        async with self._lock:
            if time.monotonic() - self.checked_at >= self.interval:
                self.ready, self.detail = await self._ask_upstream()
                self.checked_at = time.monotonic()
        return self.ready, self.detail

    async def _ask_upstream(self) -> tuple[bool, str]:
        runtime = self.state.runtime
        url = runtime.upstream_url("/")
        try:
            async with self.state.session.get(
                url,
                allow_redirects=False,
                ssl=runtime.upstream_ssl,
                timeout=aiohttp.ClientTimeout(total=READY_CHECK_TIMEOUT),
            ) as response:
                # any HTTP answer means the portal is up: its root may well be a 404 or a 302
                return True, (
                    f"ready: upstream {runtime.upstream_origin} is reachable "
                    f"(GET / answered {response.status}; any HTTP answer counts)"
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = no_answer_reason(exc, READY_CHECK_TIMEOUT)
            return False, f"not ready: upstream {runtime.upstream_origin} did not answer: {reason}"


HEALTH_KEY = web.AppKey("readiness", UpstreamReadiness)
ADMIN_STATE_KEY = web.AppKey("admin_state", ShimState)
DRAINING_KEY = web.AppKey("draining", asyncio.Event)
PORTAL_DOC_KEY = web.AppKey("portal_document", PortalDocument)
STARTED_KEY = web.AppKey("started_at", float)
#: the status page loads nothing from anywhere and runs no script
STATUS_HEADERS = {
    hdrs.CACHE_CONTROL: "no-store",
    hdrs.CONTENT_SECURITY_POLICY: "default-src 'none'; style-src 'unsafe-inline'",
    hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff",
}


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={hdrs.CACHE_CONTROL: "no-store"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAINING_KEY].is_set():
        return web.Response(status=503, text="draining: shutting down\n")
    ready, detail = await request.app[HEALTH_KEY].check()
    return web.Response(
        status=200 if ready else 503, text=detail + "\n", headers={hdrs.CACHE_CONTROL: "no-store"}
    )


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[ADMIN_STATE_KEY].metrics.render(
        request.headers.get(hdrs.ACCEPT)
    )
    response = web.Response(body=body)
    response.headers[hdrs.CONTENT_TYPE] = content_type
    return response


async def status(request: web.Request) -> web.Response:
    app = request.app
    page = await status_page(app[ADMIN_STATE_KEY], app[PORTAL_DOC_KEY], app[STARTED_KEY])
    return web.Response(text=page, content_type="text/html", headers=STATUS_HEADERS)


def make_admin_app(state: ShimState, draining: asyncio.Event) -> web.Application:
    app = web.Application()
    app[ADMIN_STATE_KEY] = state
    app[HEALTH_KEY] = UpstreamReadiness(state)
    app[DRAINING_KEY] = draining
    app[PORTAL_DOC_KEY] = PortalDocument(state)
    app[STARTED_KEY] = time.time()
    app.router.add_get("/", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
