"""One request and its answer: everything decided once, when the request head is complete.

Built by the client connection and passed to every step (classify, prepare the upstream head,
relay, log): the target, the route, the configuration pinned for this request (a reload
meanwhile does not change it), the public origin (computed at most once) and the log record,
filled in along the way and written out once at the end.
"""

from __future__ import annotations

import time

from shim.http.forwarding import Forwarding, public_origin
from shim.http.headers import first_value
from shim.obs.labels import RequestKind
from shim.proxy.request import RequestFields
from shim.proxy.route import Route
from shim.proxy.runtime import Runtime


class Exchange:
    """Built once a request, positionally in the order below (see `ClientConnection`).

    A plain class, not a dataclass: compiled (setup.py), a dataclass keeps its generated
    `__init__` in Python, which cost more than the rest of building an exchange.
    """

    __slots__ = (
        "_public_origin",
        "aborted",
        "after_head",
        "begun",
        "body",
        "body_received",
        "body_size",
        "bytes_sent",
        "dispatched",
        "error",
        "expect_continue",
        "fields",
        "forwarding",
        "http11",
        "keep_alive",
        "kind",
        "method",
        "outcome",
        "peer",
        "raw_target",
        "refusal",
        "request",
        "request_complete",
        "route",
        "runtime",
        "scheme",
        "started",
        "status",
        "streaming",
        "target",
        "upstream_seconds",
        "upstream_status",
    )

    def __init__(
        self,
        method: str,
        raw_target: bytes,
        target: str,
        http11: bool,
        request: RequestFields,
        keep_alive: bool,
        runtime: Runtime,
        peer: str | None,
        scheme: str,
    ) -> None:
        self.method = method
        #: the request target as received (bytes), and in origin form (`/path?query`)
        self.raw_target = raw_target
        self.target = target
        self.http11 = http11
        #: what the request's fields say: the one description every step reads
        self.request = request
        #: the end-to-end fields the upstream gets (`RequestFields.fields`)
        self.fields = request.fields
        #: the client lets the connection be kept after this exchange
        self.keep_alive = keep_alive
        self.route: Route = "passthrough"
        self.runtime = runtime
        self.peer = peer
        self.scheme = scheme
        #: the whole request (head and body) has been read
        self.request_complete = not request.has_body
        #: the client waits for `100 Continue` before sending its body
        self.expect_continue = request.expect_continue
        #: why the request is refused before any route sees it: (status, reason)
        self.refusal: tuple[int, str] | None = request.refusal
        #: what the forwarding fields are believed to say (None for a refused request)
        self.forwarding: Forwarding | None = None
        #: body pieces read and not yet handed to a handler (a body up to
        #: `limits.request_buffer` is read whole before the exchange is dispatched)
        self.body: list[bytes] = []
        self.body_size = 0
        #: body bytes llhttp has delivered so far (held or handed on)
        self.body_received = 0
        #: handed to the handler its route names
        self.dispatched = False
        #: the handler takes the rest of the body as it arrives
        self.streaming = False
        #: bytes after the head of an Upgrade that waited in the pipeline (the new protocol's);
        #: None for any other exchange
        self.after_head: bytes | None = None
        self.started = time.monotonic()
        # -- the record: what happened, for the access log and the request counters
        self.kind: RequestKind = "passthrough"
        self.outcome: str | None = None
        self.status: int | None = None
        self.upstream_status: int | None = None
        self.upstream_seconds: float | None = None
        self.error: str | None = None
        #: the response started but could not be completed (the client saw a broken response)
        self.aborted = False
        #: counted in flight (`access.begin_exchange`)
        self.begun = False
        self.bytes_sent = 0
        self._public_origin: str | None = None

    def take_body(self) -> list[bytes]:
        """The body pieces read so far, handed over once."""
        body, self.body = self.body, []
        self.body_size = 0
        return body

    @property
    def is_head(self) -> bool:
        return self.method == "HEAD"

    def header(self, name: bytes) -> bytes | None:
        """The first field called `name` (lower-cased bytes)."""
        return first_value(self.fields, name)

    def user_agent(self) -> bytes | None:
        """The request's first end-to-end User-Agent field (read with the other fields, once
        per distinct head: `RequestFields.user_agent`)."""
        return self.request.user_agent

    def public_origin(self) -> str:
        """`public_url`'s origin, else the origin a trusted proxy reports, else the request's
        own, else the portal's."""
        if self._public_origin is None:
            runtime = self.runtime
            forwarding = self.forwarding
            fallback = runtime.upstream_origin_text
            if forwarding is None:
                self._public_origin = runtime.public_url_origin or fallback
            else:
                self._public_origin = public_origin(
                    forwarding, public_url_origin=runtime.public_url_origin, fallback=fallback
                )
        return self._public_origin
