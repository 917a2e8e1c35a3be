"""State shared by the handlers, and the per-request record that feeds logs and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from msc4191_shim.config.runtime import Runtime
from msc4191_shim.http.cache import DiscoveryCache
from msc4191_shim.obs.metrics import Metrics, RequestKind


@dataclass
class ShimState:
    """Everything the handlers share. `runtime` is swapped whole on reload; the rest lives on."""

    runtime: Runtime
    session: aiohttp.ClientSession
    metrics: Metrics
    cache: DiscoveryCache = field(default_factory=DiscoveryCache)


@dataclass
class RequestRecord:
    """What happened to one request, filled in along the way and written out once at the end."""

    #: the request target in origin form (`/path?query`), byte for byte as the client sent it
    target: str = ""
    kind: RequestKind = "passthrough"
    outcome: str | None = None
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    error: str | None = None
    #: the response started but could not be completed (the client saw a broken response)
    aborted: bool = False
    started: float = field(default_factory=time.monotonic)


STATE_KEY = web.AppKey("shim_state", ShimState)
RECORD_KEY = web.RequestKey("msc4191_shim_record", RequestRecord)


def shim_state(request: web.Request) -> ShimState:
    return request.app[STATE_KEY]


def record_of(request: web.Request) -> RequestRecord:
    record = request.get(RECORD_KEY)
    if record is None:
        record = request[RECORD_KEY] = RequestRecord()
    return record


def request_target(request: web.Request) -> str:
    """The origin-form target `handle` settled on; the raw path before it has run."""
    return record_of(request).target or request.raw_path


RUNTIME_KEY = web.RequestKey("msc4191_shim_runtime", Runtime)


def runtime_of(request: web.Request) -> Runtime:
    """The configuration this request started under; a reload meanwhile does not change it."""
    runtime = request.get(RUNTIME_KEY)
    if runtime is None:
        runtime = request[RUNTIME_KEY] = request.app[STATE_KEY].runtime
    return runtime
