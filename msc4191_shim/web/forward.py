"""Forward one request to the upstream and stream the answer back, adding and losing nothing.

This is the only place where upstream failures become status codes: refused or unresolvable ->
502, no byte within `read_timeout` -> 504, each with a short text body. A failure after the
response has started aborts the client connection, so a truncated body never looks complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, istr

from msc4191_shim.config.runtime import Runtime
from msc4191_shim.http.headers import client_response_headers, upstream_request_headers
from msc4191_shim.obs.metrics import UpstreamErrorReason
from msc4191_shim.web.state import record_of, request_target, runtime_of, shim_state

logger = logging.getLogger("msc4191_shim.proxy")

#: aiohttp's client would add these by itself; a transparent proxy sends only what it got.
SKIP_AUTO_HEADERS = frozenset(
    {hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE}
)
CHUNK_LIMIT = 64 * 1024
_ANSWERED_HERE = frozenset({hdrs.EXPECT})

ResponseHeaderHook = Callable[[CIMultiDict[str]], None]


class _NoInventedHeaders(web.StreamResponse):
    """Do not invent `Server` or `Content-Type` fields.

    aiohttp fills both in when a handler leaves them out; for a proxy that would be a field the
    upstream never sent. (`Date` is kept: RFC 9110 §6.6.1 asks a proxy to add one if missing.)
    """

    async def _prepare_headers(self) -> None:
        absent = {n for n in (hdrs.SERVER, hdrs.CONTENT_TYPE) if n not in self.headers}
        await super()._prepare_headers()
        for name in absent:
            self.headers.popall(name, None)


class PassthroughResponse(_NoInventedHeaders):
    """An upstream answer streamed as it arrives."""


class PassthroughBodyResponse(_NoInventedHeaders, web.Response):
    """An upstream answer already read whole, relayed as is."""


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    status: int
    reason: UpstreamErrorReason  # metric label
    text: str  # what the client and the log are told


def classify_failure(exc: BaseException, runtime: Runtime) -> UpstreamFailure:
    """Turn a client-side exception into the status the client sees and a reason for people."""
    upstream = runtime.upstream_origin
    cfg = runtime.config.upstream
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return UpstreamFailure(
            504, "read_timeout", f"upstream {upstream} sent nothing for {cfg.read_timeout:g}s"
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError | asyncio.TimeoutError):
        return UpstreamFailure(
            502,
            "connect_timeout",
            f"cannot connect to upstream {upstream} within {cfg.connect_timeout:g}s",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return UpstreamFailure(502, "dns", f"cannot resolve upstream host {upstream.host}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return UpstreamFailure(502, "tls", f"TLS with upstream {upstream} failed: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamFailure(
            502, "refused", f"cannot connect to upstream {upstream}: {exc.strerror or exc}"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return UpstreamFailure(502, "reset", f"upstream {upstream} closed the connection")
    return UpstreamFailure(502, "other", f"bad response from upstream {upstream}: {exc}")


def failure_response(failure: UpstreamFailure) -> web.Response:
    return web.Response(
        status=failure.status,
        text=failure.text + "\n",
        headers={hdrs.CACHE_CONTROL: "no-store"},
    )


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_LIMIT):
        yield chunk


def prepare_upstream_headers(
    request: web.Request, runtime: Runtime, *, websocket: bool = False
) -> CIMultiDict[str]:
    config = runtime.config
    return upstream_request_headers(
        request.raw_headers,
        peer=request.remote,
        scheme=request.scheme,
        trusted_proxies=config.trusted_proxies,
        preserve_host=config.upstream.preserve_host,
        websocket=websocket,
        # the shim's own server already answered `100 Continue`; forwarded, it would make the
        # client side wait for the upstream's 100 (with no timeout) before sending the body
        drop=_ANSWERED_HERE,
    )


async def open_upstream(
    request: web.Request,
    runtime: Runtime,
    *,
    raw_path_qs: str | None = None,
    method: str | None = None,
    drop_headers: frozenset[istr] = frozenset(),
) -> aiohttp.ClientResponse:
    """Send the request upstream; the caller owns (and must release) the response."""
    state = shim_state(request)
    headers = prepare_upstream_headers(request, runtime)
    for name in drop_headers:
        headers.popall(name, None)
    started = time.monotonic()
    response = await state.session.request(
        method or request.method,
        runtime.upstream_url(raw_path_qs or request_target(request)),
        headers=headers,
        data=_body(request) if request.body_exists else None,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        allow_redirects=False,
        timeout=runtime.timeout,
        ssl=runtime.upstream_ssl,
    )
    record = record_of(request)
    record.upstream_status = response.status
    record.upstream_seconds = time.monotonic() - started
    return response


async def stream_response(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    hook: ResponseHeaderHook | None = None,
    *,
    head: bytes = b"",
) -> web.StreamResponse:
    """Relay status, headers and body as they arrive; abort the client if the upstream fails.

    `head` is body the caller already read from `upstream`; it goes out first.
    """
    headers = client_response_headers(upstream.raw_headers)
    if hook is not None:
        hook(headers)
    response = PassthroughResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    try:
        await response.prepare(request)
        if await _relay_body(request, upstream, response, head):
            await response.write_eof()
    except ConnectionError:
        # the client went away while we wrote to it: expected, and not the upstream's fault
        record = record_of(request)
        record.error, record.aborted = "client disconnected", True
    return response


async def _relay_body(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    head: bytes,
) -> bool:
    """Copy the body as it arrives; False when the upstream failed and the client was aborted.

    Reads and writes are apart on purpose: a failed read is the upstream's, a failed write
    (ConnectionError) the client's.
    """
    if head:
        await response.write(head)
    while True:
        try:
            chunk = await upstream.content.readany()
        except (TimeoutError, aiohttp.ClientError) as exc:
            _upstream_failed_mid_body(request, exc)
            return False
        if not chunk:
            return True
        await response.write(chunk)


def _upstream_failed_mid_body(request: web.Request, exc: BaseException) -> None:
    failure = _note_failure(request, exc, "upstream failed mid-body; aborting the client response")
    record = record_of(request)
    record.error, record.aborted = f"aborted mid-body: {failure.text}", True
    _abort(request)


def _abort(request: web.Request) -> None:
    # Closing the transport without the final chunk (or short of Content-Length) is how HTTP/1.1
    # says "incomplete"; aiohttp then skips write_eof quietly (ConnectionError is expected there).
    if request.transport is not None:
        request.transport.abort()


async def forward(
    request: web.Request,
    *,
    raw_path_qs: str | None = None,
    hook: ResponseHeaderHook | None = None,
) -> web.StreamResponse:
    """Proxy `request` (optionally under another path and query) and stream the answer."""
    runtime = runtime_of(request)
    try:
        upstream = await open_upstream(request, runtime, raw_path_qs=raw_path_qs)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return upstream_failed(request, exc)
    async with upstream:
        return await stream_response(request, upstream, hook)


def upstream_failed(request: web.Request, exc: BaseException) -> web.Response:
    """The upstream failed before answering: 502/504 with the reason."""
    failure = _note_failure(request, exc, "upstream error")
    record_of(request).error = failure.text
    return failure_response(failure)


def _note_failure(request: web.Request, exc: BaseException, what: str) -> UpstreamFailure:
    """Classify an upstream failure once, count it and tell the operator."""
    failure = classify_failure(exc, runtime_of(request))
    shim_state(request).metrics.observe_upstream_error(failure.reason)
    logger.warning("%s: %s", what, failure.text)
    return failure
