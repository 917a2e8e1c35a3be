"""Keep-alive connections to the upstream, reused newest first, bounded in number and idle time.

A connection goes back to the pool only after its response was completely and correctly framed
and its request completely sent (the caller decides; see `Passthrough`). `max_connections` bounds
the connections open at once (in use and idle); a request that finds none free waits for one up
to `connect_timeout`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Final

from shim.proxy.errors import ConnectTimeoutError, PoolExhaustedError
from shim.proxy.runtime import UpstreamTarget
from shim.proxy.upstream import UpstreamConnection

#: an idle upstream connection is closed after this long (below common servers' keep-alive
#: timeouts: nginx 75 s, gunicorn 2 s is the exception the retry covers)
IDLE_TIMEOUT: Final = 15.0


class UpstreamPool:
    def __init__(
        self,
        max_connections: int | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        on_full: Callable[[], None] | None = None,
    ) -> None:
        self.max_connections = max_connections
        #: called when a request has to wait for room (the bound was hit)
        self.on_full = on_full
        self.idle_timeout = idle_timeout
        self._idle: dict[object, list[UpstreamConnection]] = {}
        self._open: set[UpstreamConnection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._connecting = 0
        self.closed = False

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self._open) + self._connecting

    def take_idle(self, target: UpstreamTarget) -> UpstreamConnection | None:
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            # `conn.is_usable()`, written out: this runs for every request
            if (
                conn.state == "idle"
                and conn.reusable
                and transport is not None
                and not transport.is_closing()
            ):
                return conn
            conn.close()
        return None

    async def connect(self, target: UpstreamTarget, within: float) -> UpstreamConnection:
        """A new connection (or an idle one freed while waiting for room), within `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.max_connections is not None and self.size >= self.max_connections:
            conn = self.take_idle(target)
            if conn is not None:
                return conn
            if not self._close_one_idle():
                if self.on_full is not None:
                    self.on_full()
                await self._wait_for_room(deadline, within)
        self._connecting += 1  # counts against the bound while connecting
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self.forget, target.key),
                    target.host,
                    target.port,
                    ssl=target.ssl,
                    server_hostname=target.host if target.ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeoutError(f"within {within:g}s") from None
        finally:
            self._connecting -= 1
            self._wake()
        self._open.add(conn)
        return conn

    async def _wait_for_room(self, deadline: float, within: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except TimeoutError:
            raise PoolExhaustedError(
                f"all {self.max_connections} upstream connections (upstream.max_connections) "
                f"stayed busy for {within:g}s"
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _close_one_idle(self) -> bool:
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                return True
        return False

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool after a complete exchange (else closed)."""
        conn.detach()
        if self.closed or not conn.is_usable():
            conn.close()
            return
        conn.idle_since = conn.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_later(self.idle_timeout, self._sweep)
        if self._waiters:
            self._wake()

    def forget(self, conn: UpstreamConnection) -> None:
        """`conn` closed: it no longer counts."""
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        if self._waiters:
            self._wake()

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        limit = loop.time() - self.idle_timeout
        remaining = False
        for idle in self._idle.values():
            for conn in [c for c in idle if c.idle_since <= limit]:
                idle.remove(conn)
                conn.close()
            remaining = remaining or bool(idle)
        if remaining and not self.closed:
            self._sweeper = loop.call_later(self.idle_timeout / 2, self._sweep)

    def close(self) -> None:
        """Close the idle connections now; those in use close when their exchange ends."""
        self.closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
            idle.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def abort_all(self) -> None:
        self.close()
        for conn in list(self._open):
            conn.abort()
