"""The callbacks between the proxy's parts, typed once, as uvicorn's and h11's layers do it.

A route's handler is handed the client connection (`Connection`, the abstract base the client
connection implements) and gives it a `Handler`; the connection is handed the listener's
`Admission`. Each part imports these protocols, never the module of the
part it calls back, so the client connection, the listener, the dispatcher and the handlers form
no import circle (`tests/unit/test_layers.py` checks). The upstream side has its own pair,
`upstream.ResponseSink` (what an upstream connection tells its exchange's handler) and the pool's
`on_closed` callback.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from shim.config.model import LimitsConfig
from shim.proxy.exchange import Exchange
from shim.proxy.state import ShimState


class Handler(Protocol):
    """What a route does with an exchange once it is the one being answered."""

    def request_body(self, data: bytes) -> None: ...
    def request_end(self) -> None: ...
    def request_broken(self) -> bool: ...
    def client_writable(self, writable: bool) -> None: ...
    def client_lost(self) -> None: ...
    def going_away(self) -> None: ...


class Connection(asyncio.Protocol):
    """The client connection, as a handler sees it (`client.ClientConnection` is the one).

    An abstract base class rather than a `typing.Protocol`: compiled (setup.py), a handler's
    calls through it are C calls through a vtable, where a protocol's would be Python method
    lookups on every request.
    """

    #: what every connection of the listener shares
    state: ShimState
    loop: asyncio.AbstractEventLoop
    #: the last upstream head block and what it was made from (`Passthrough.upstream_head`)
    upstream_block: tuple[object, bytes] | None

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def answer(self, exchange: Exchange, status: int, text: str) -> None:
        """A short answer of the proxy's own (an error with its reason)."""
        raise NotImplementedError

    def done(self, exchange: Exchange, *, keep_alive: bool) -> None:
        """The answer to `exchange` is complete."""
        raise NotImplementedError

    def must_close(self, exchange: Exchange) -> bool:
        """The answer to `exchange` ends the connection."""
        raise NotImplementedError

    def send_continue(self, exchange: Exchange) -> None:
        raise NotImplementedError

    def block_reading(self, reason: int, blocked: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class Admitted(Protocol):
    """A client connection, as the listener sees it."""

    def go_away(self) -> None: ...
    def abort(self) -> None: ...


class Admission(Protocol):
    """The listener, as a client connection sees it."""

    state: ShimState
    loop: asyncio.AbstractEventLoop
    scheme: str

    @property
    def limits(self) -> LimitsConfig: ...

    def admit(self, conn: Admitted) -> bool: ...
    def forget(self, conn: Admitted) -> None: ...
