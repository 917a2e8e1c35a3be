"""Discovery documents: fetch, decode, rewrite, cache; anything unexpected passes through untouched.

Only a 200 JSON object within `max_body_bytes` is rewritten. Everything else is relayed byte for
byte with the upstream's own headers, and counted with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, istr

from msc4191_shim.config.model import Config
from msc4191_shim.core.discovery import (
    if_none_match_matches,
    parse_json,
    render_json,
    rewrite_discovery,
    rewrite_well_known,
    strong_etag,
)
from msc4191_shim.http.cache import CachedDocument, freshness_lifetime, upstream_age
from msc4191_shim.http.codings import DecodeRefused, decode_body
from msc4191_shim.http.headers import client_response_headers
from msc4191_shim.obs.metrics import DiscoveryOutcome
from msc4191_shim.web.forward import (
    PassthroughBodyResponse,
    ResponseHeaderHook,
    open_upstream,
    stream_response,
    upstream_failed,
)
from msc4191_shim.web.origin import public_origin
from msc4191_shim.web.state import record_of, request_target, runtime_of, shim_state

#: conditional and partial requests would let the upstream answer something we cannot rewrite
_CONDITIONAL = frozenset(
    {
        hdrs.IF_NONE_MATCH,
        hdrs.IF_MODIFIED_SINCE,
        hdrs.IF_MATCH,
        hdrs.IF_UNMODIFIED_SINCE,
        hdrs.RANGE,
        hdrs.IF_RANGE,
    }
)
#: fields that describe the upstream's bytes, not ours
_REPLACED = frozenset(
    {
        hdrs.CONTENT_ENCODING,
        hdrs.CONTENT_LENGTH,
        hdrs.ETAG,
        hdrs.LAST_MODIFIED,
        hdrs.DATE,
        hdrs.AGE,
        istr("Content-MD5"),
        istr("Digest"),
        istr("Repr-Digest"),
    }
)


@dataclass(frozen=True, slots=True)
class _Exchange:
    """What one discovery request decided before the upstream answered."""

    well_known: bool
    hook: ResponseHeaderHook
    now: float
    use_cache: bool


def _cache_key(request: web.Request) -> tuple[str, str]:
    return request_target(request), request.host


async def handle_discovery(
    request: web.Request, *, well_known: bool, hook: ResponseHeaderHook
) -> web.StreamResponse:
    state = shim_state(request)
    runtime = runtime_of(request)
    discovery = runtime.config.discovery
    record = record_of(request)
    record.kind = "discovery"
    key = _cache_key(request)
    now = time.time()
    # a shared cache never answers for a request that carries credentials (RFC 9111 §3.5)
    use_cache = discovery.cache and hdrs.AUTHORIZATION not in request.headers
    if use_cache and (cached := state.cache.fresh(key, now)) is not None:
        return _serve(request, cached, "cached", now)
    try:
        upstream = await open_upstream(
            request, runtime, method=hdrs.METH_GET, drop_headers=_CONDITIONAL
        )
    except (TimeoutError, aiohttp.ClientError) as exc:
        if use_cache and (stale := state.cache.last_good(key)) is not None:
            return _serve(request, stale, "stale", now)
        return upstream_failed(request, exc)
    async with upstream:
        if upstream.status >= 500 and use_cache:
            stale = state.cache.last_good(key)
            if stale is not None:
                return _serve(request, stale, "stale", now)
        if upstream.status != 200:
            return await _pass(request, upstream, b"", "passthrough_status", hook)
        declared = upstream.content_length
        if declared is not None and declared > discovery.max_body_bytes:
            return await _pass(request, upstream, b"", "passthrough_too_large", hook)
        body = await _read_capped(upstream, discovery.max_body_bytes)
        if len(body) > discovery.max_body_bytes:
            return await _pass(request, upstream, body, "passthrough_too_large", hook)
        exchange = _Exchange(well_known, hook, now, use_cache)
        return _rewrite_or_pass(request, upstream, body, exchange)


def rewrite_document(
    body: bytes,
    content_encoding: str | None,
    *,
    well_known: bool,
    config: Config,
    default_uri: str,
) -> bytes | DiscoveryOutcome:
    """The rewritten body, or why the upstream's bytes must pass through untouched (pure)."""
    discovery = config.discovery
    try:
        decoded = decode_body(body, content_encoding, discovery.max_body_bytes)
    except DecodeRefused as refused:
        return "passthrough_too_large" if refused.reason == "too-large" else "passthrough_encoding"
    try:
        doc = parse_json(decoded)
    except ValueError:
        return "passthrough_not_json"
    if not isinstance(doc, dict):
        return "passthrough_not_object"
    if well_known:
        uri = discovery.account_management_uri or _existing_account(doc) or default_uri
        new_doc = rewrite_well_known(doc, uri)
    else:
        new_doc = rewrite_discovery(
            doc, discovery=discovery, account=config.account_management, default_uri=default_uri
        )
    # the portal already serves what the shim would: its own bytes, a sign the shim can go
    return "unchanged" if new_doc == doc else render_json(new_doc)


def _rewrite_or_pass(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    body: bytes,
    exchange: _Exchange,
) -> web.StreamResponse:
    runtime = runtime_of(request)
    account = runtime.config.account_management
    result = rewrite_document(
        body,
        upstream.headers.get(hdrs.CONTENT_ENCODING),
        well_known=exchange.well_known,
        config=runtime.config,
        default_uri=public_origin(request, runtime) + account.paths[0],
    )
    if isinstance(result, str):
        return _relay_bytes(request, upstream, body, result, exchange.hook)
    headers = client_response_headers(upstream.raw_headers, drop=_REPLACED)
    exchange.hook(headers)
    lifetime = freshness_lifetime(upstream.headers, exchange.now)
    document = CachedDocument(
        body=result,
        headers=tuple(headers.items()),
        etag=strong_etag(result),
        stored_at=exchange.now - upstream_age(upstream.headers),
        fresh_until=exchange.now + (lifetime or 0.0),
    )
    if exchange.use_cache and lifetime is not None:
        shim_state(request).cache.store(_cache_key(request), document)
    return _serve(request, document, "rewritten", exchange.now)


def _existing_account(doc: dict[str, object]) -> str | None:
    auth = doc.get("org.matrix.msc2965.authentication")
    account = auth.get("account") if isinstance(auth, dict) else None
    return account if isinstance(account, str) and account else None


def _serve(
    request: web.Request, document: CachedDocument, outcome: DiscoveryOutcome, now: float
) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict(document.headers)
    headers[hdrs.ETAG] = document.etag
    if outcome != "rewritten":
        headers[hdrs.AGE] = str(document.age(now))
    conditions = request.headers.getall(hdrs.IF_NONE_MATCH, [])
    if conditions and if_none_match_matches(", ".join(conditions), document.etag):
        _count(request, "not_modified")
        headers.popall(hdrs.CONTENT_TYPE, None)
        return PassthroughBodyResponse(status=304, headers=headers)
    _count(request, outcome)
    return PassthroughBodyResponse(status=200, body=document.body, headers=headers)


def _count(request: web.Request, outcome: DiscoveryOutcome) -> None:
    shim_state(request).metrics.observe_discovery(outcome)
    record_of(request).outcome = outcome


async def _read_capped(upstream: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most `limit + 1` bytes: enough to know the body is too large, never more."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await upstream.content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _relay_bytes(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    body: bytes,
    outcome: DiscoveryOutcome,
    hook: ResponseHeaderHook,
) -> web.Response:
    """The whole upstream body is in hand: send it, and its headers, exactly as received."""
    _count(request, outcome)
    headers = client_response_headers(upstream.raw_headers)
    hook(headers)
    response = PassthroughBodyResponse(
        status=upstream.status, reason=upstream.reason, headers=headers, body=body
    )
    return response


async def _pass(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    head: bytes,
    outcome: DiscoveryOutcome,
    hook: ResponseHeaderHook,
) -> web.StreamResponse:
    """Stream the upstream's answer as is, starting with the bytes already read."""
    _count(request, outcome)
    return await stream_response(request, upstream, hook, head=head)
