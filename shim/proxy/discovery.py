"""Discovery documents: answered from the cache, or fetched through the pool, rewritten, cached.

Only a 200 JSON object within `max_body_bytes` is rewritten. Anything else is relayed as the
upstream sent it (streamed from the first byte past the limit), and counted with the reason.
While the upstream fails (no answer, or a 5xx) the last good document is served, with its Age.
"""

from __future__ import annotations

import time
from typing import Final

from shim.core.discovery import if_none_match_matches, rewrite_document, strong_etag
from shim.http.cache import (
    CachedDocument,
    CacheKey,
    storage_policy,
    upstream_age,
    variant,
    vary_names,
)
from shim.http.headers import Fields
from shim.memo import Memo
from shim.obs.clients import client_family
from shim.obs.labels import DiscoveryOutcome
from shim.proxy.errors import UpstreamError
from shim.proxy.exchange import Exchange
from shim.proxy.framing import BodyKind, ResponseHead
from shim.proxy.h1 import (
    HOP_BY_HOP_NAMES,
    LOCATION,
    REASONS,
    http_date,
    simple_response,
)
from shim.proxy.passthrough import Passthrough
from shim.proxy.protocols import Connection, Handler

#: conditional and partial requests would let the upstream answer something we cannot rewrite
CONDITIONAL: Final = frozenset(
    {
        b"if-none-match",
        b"if-modified-since",
        b"if-match",
        b"if-unmodified-since",
        b"range",
        b"if-range",
    }
)
#: fields that describe the upstream's bytes, not ours
REPLACED: Final = frozenset(
    {
        b"content-encoding",
        b"content-length",
        b"etag",
        b"last-modified",
        b"date",
        b"age",
        b"content-md5",
        b"digest",
        b"repr-digest",
    }
)
_AUTHORIZATION: Final = b"authorization"
_IF_NONE_MATCH: Final = b"if-none-match"


def cache_key(exchange: Exchange) -> CacheKey:
    """The public origin as finally believed, and the target (the document embeds the one and
    depends on the other); the upstream's Vary fields are the cache's to add."""
    return CacheKey(exchange.public_origin(), exchange.target)


def handle_discovery(conn: Connection, exchange: Exchange) -> Handler | None:
    exchange.kind = "discovery"
    discovery = exchange.runtime.config.discovery
    now = time.time()
    # a shared cache never answers for a request that carries credentials (RFC 9111 §3.5)
    use_cache = discovery.cache and exchange.header(_AUTHORIZATION) is None
    key = cache_key(exchange)
    cached = exchange.runtime.cache.fresh(key, now, exchange.fields) if use_cache else None
    if cached is not None:
        serve(conn, exchange, cached, "cached", now)
        return None
    fetch = DiscoveryFetch(conn, exchange, use_cache=use_cache, now=now)
    fetch.start()
    return fetch


def serve(
    conn: Connection,
    exchange: Exchange,
    document: CachedDocument,
    outcome: DiscoveryOutcome,
    now: float,
) -> None:
    """A document of the proxy's own (rewritten, cached or stale), or 304 if the client has it."""
    age = None if outcome == "rewritten" else b"%d" % document.age(now)
    conditions = [v for n, v in exchange.fields if n.lower() == _IF_NONE_MATCH]
    status = 200
    if conditions and if_none_match_matches(
        b", ".join(conditions).decode("latin-1"), document.etag
    ):
        outcome, status = "not_modified", 304
    count(conn, exchange, outcome)
    exchange.status = status
    close = conn.must_close(exchange)
    head_only = exchange.method == "HEAD"
    data = _rendered(document, status, age, close=close, head_only=head_only)
    exchange.bytes_sent = 0 if head_only or status == 304 else len(document.body)
    conn.write(data)
    conn.done(exchange, keep_alive=not close)


#: the last renderings of documents: within a second (one Date, one Age) a document is served
#: byte for byte the same, so it is rendered once (by identity; bounded in number and size, so
#: at most 16 answers of 64 KiB are held besides the cache's own copies)
_renderings: Final[
    Memo[tuple[int, int, bytes | None, bytes, bool, bool], tuple[CachedDocument, bytes]]
] = Memo(16)
_RENDERING_MAX_BYTES: Final = 64 * 1024


def _rendered(
    document: CachedDocument, status: int, age: bytes | None, *, close: bool, head_only: bool
) -> bytes:
    """The whole answer: 200 with the document, or 304 without its body and Content-Type."""
    key = (id(document), status, age, http_date(), close, head_only)
    entry = _renderings.get(key)
    if entry is not None and entry[0] is document:
        return entry[1]
    fields = [*document.headers, (b"ETag", document.etag.encode("ascii"))]
    if age is not None:
        fields.append((b"Age", age))
    body = document.body
    if status == 304:
        body = b""
        fields = [(n, v) for n, v in fields if n.lower() != b"content-type"]
    data = simple_response(
        status,
        REASONS[status],
        fields,
        body,
        close=close,
        head_only=head_only,
        framed=status != 304,  # a 304's Content-Length would describe a body not sent
    )
    if len(data) <= _RENDERING_MAX_BYTES:
        _renderings.put(key, (document, data))
    return data


def count(conn: Connection, exchange: Exchange, outcome: DiscoveryOutcome) -> None:
    conn.state.metrics.tally.discovery(outcome, client_family(exchange.user_agent()))
    exchange.outcome = outcome


class DiscoveryFetch(Passthrough):
    """A cache miss: GET the document through the pool; collect it (up to the limit) to rewrite,
    or relay it as it comes."""

    def __init__(
        self, conn: Connection, exchange: Exchange, *, use_cache: bool, now: float
    ) -> None:
        super().__init__(
            conn, exchange, exchange.target.encode("latin-1"), method=b"GET", drop=CONDITIONAL
        )
        self.use_cache = use_cache
        self.now = now
        self.limit = exchange.runtime.config.discovery.max_body_bytes
        self._collecting: tuple[ResponseHead, BodyKind] | None = None
        self._body: list[bytes] = []
        self._size = 0

    def response_head(self, head: ResponseHead, kind: BodyKind) -> None:
        exchange = self.exchange
        if head.status >= 500 and self._serve_stale():
            exchange.upstream_status = head.status
            return
        if head.status != 200:
            count(self.conn, exchange, "passthrough_status")
            super().response_head(head, kind)
        elif head.length is not None and head.length > self.limit:
            count(self.conn, exchange, "passthrough_too_large")
            super().response_head(head, kind)
        else:
            exchange.upstream_status = head.status
            self._collecting = (head, kind)

    def response_whole(self, head: ResponseHead, kind: BodyKind, body: bytes) -> None:
        self.response_in_steps(head, kind, body)

    def response_body(self, data: bytes) -> None:
        if self._collecting is None:
            super().response_body(data)
            return
        self._body.append(data)
        self._size += len(data)
        if self._size > self.limit:  # too large to rewrite: relay from the first byte
            head, kind = self._collecting
            self._collecting = None
            count(self.conn, self.exchange, "passthrough_too_large")
            super().response_head(head, kind)
            super().response_body(b"".join(self._body))
            self._body.clear()

    def response_end(self, trailers: Fields) -> None:
        if self._collecting is None:
            super().response_end(trailers)
            return
        head, kind = self._collecting
        self._collecting = None
        body = b"".join(self._body)
        result = rewrite_document(
            body,
            _content_encoding(head),
            well_known=self.exchange.route == "well_known",
            config=self.exchange.runtime.config,
            default_uri=self.exchange.public_origin()
            + self.exchange.runtime.config.account_management.paths[0],
        )
        if isinstance(result, str):
            count(self.conn, self.exchange, result)
            super().response_head(head, kind)
            super().response_body(body)
            super().response_end(trailers)
            return
        document = self._document(head, result)
        self._release()
        serve(self.conn, self.exchange, document, "rewritten", self.now)

    def _document(self, head: ResponseHead, body: bytes) -> CachedDocument:
        rewrite = self._location_rewriter()
        kept = [
            (n, rewrite(v) if n.lower() == LOCATION else v)
            for n, v in head.fields
            if n.lower() not in HOP_BY_HOP_NAMES and n.lower() not in REPLACED
        ]
        upstream_headers = head.fields
        policy = storage_policy(upstream_headers, self.now)
        names = vary_names(upstream_headers) or ()
        document = CachedDocument(
            body=body,
            headers=tuple(kept),
            etag=strong_etag(body),
            stored_at=self.now - upstream_age(upstream_headers),
            fresh_until=self.now + (policy.lifetime if policy is not None else 0.0),
            vary=variant(names, self.exchange.fields),
            stale_ok=policy is not None and policy.stale_ok,
        )
        if self.use_cache and policy is not None:
            self.exchange.runtime.cache.store(cache_key(self.exchange), document)
        return document

    def _release(self) -> None:
        self.finished = True
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return
        if self._request_sent and upstream.reusable and upstream.state == "idle":
            self.pool.release(upstream)
        else:
            upstream.abort()

    def _serve_stale(self) -> bool:
        if not self.use_cache:
            return False
        stale = self.exchange.runtime.cache.last_good(
            cache_key(self.exchange), self.exchange.fields
        )
        if stale is None:
            return False
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        self.finished = True
        serve(self.conn, self.exchange, stale, "stale", self.now)
        return True

    def _failed_before_answer(self, exc: BaseException) -> None:
        if isinstance(exc, UpstreamError | OSError) and self._serve_stale():
            return
        super()._failed_before_answer(exc)


def _content_encoding(head: ResponseHead) -> str | None:
    values = [v for n, v in head.fields if n.lower() == b"content-encoding"]
    return b", ".join(values).decode("latin-1") if values else None
