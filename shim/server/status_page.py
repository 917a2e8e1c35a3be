"""The admin listener's status page: the portal's own document, read now and then, and the page.

The I/O around the pure `obs.status` (the facts) and `obs.status_html` (the HTML): the counts
come from what `/metrics` serves, the verdict needs the portal's *own* discovery document, which
is fetched directly from the upstream (as `doctor` does), at most every `PORTAL_CHECK_INTERVAL`
however often the page is loaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

import aiohttp

from shim.core.discovery import parse_json_object
from shim.obs.metrics import Metrics
from shim.obs.retirement import PORTAL_DISCOVERY_PATH
from shim.obs.status import read_counts, status_snapshot
from shim.obs.status_html import render_status
from shim.proxy.runtime import Runtime

PORTAL_CHECK_INTERVAL: Final = 10.0
PORTAL_CHECK_TIMEOUT: Final = 2.0


class ShimView(Protocol):
    """What the page reads of the shim's shared state (whichever public listener runs)."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def session(self) -> aiohttp.ClientSession: ...
    @property
    def metrics(self) -> Metrics: ...


class PortalDocument:
    """The portal's own discovery document as last read, and how that went."""

    def __init__(self, state: ShimView, interval: float = PORTAL_CHECK_INTERVAL) -> None:
        self.state = state
        self.interval = interval
        self.checked_at = float("-inf")
        self.doc: Mapping[str, Any] | None = None
        self.detail = "the portal's own discovery document was not read yet"
        self._lock = asyncio.Lock()

    async def read(self) -> tuple[Mapping[str, Any] | None, str]:
        async with self._lock:
            if time.monotonic() - self.checked_at >= self.interval:
                self.doc, self.detail = await self._fetch()
                self.checked_at = time.monotonic()
        return self.doc, self.detail

    async def _fetch(self) -> tuple[Mapping[str, Any] | None, str]:
        runtime = self.state.runtime
        limit = runtime.config.discovery.max_body_bytes
        where = f"the portal's own {PORTAL_DISCOVERY_PATH}"
        try:
            async with self.state.session.get(
                runtime.upstream_url(PORTAL_DISCOVERY_PATH),
                allow_redirects=False,
                ssl=runtime.upstream_ssl,
                timeout=aiohttp.ClientTimeout(total=PORTAL_CHECK_TIMEOUT),
            ) as response:
                status, body = response.status, bytearray()
                async for chunk in response.content.iter_any():
                    body += chunk
                    if len(body) > limit:
                        break
        except (TimeoutError, aiohttp.ClientError) as exc:
            return None, f"{where} did not answer: {str(exc) or type(exc).__name__}"
        doc = parse_json_object(bytes(body)) if status == 200 and len(body) <= limit else None
        if doc is None:
            return None, f"{where} answered {status} without a usable JSON object"
        return doc, f"{where} was read directly from the portal (every {self.interval:g} s)"


async def status_page(state: ShimView, portal: PortalDocument, started_at: float) -> str:
    doc, detail = await portal.read()
    snapshot = status_snapshot(
        state.runtime.config,
        read_counts(state.metrics),
        doc,
        detail,
        started_at=started_at,
        all_workers=state.metrics.multiprocess_dir is not None,
    )
    return render_status(snapshot)
