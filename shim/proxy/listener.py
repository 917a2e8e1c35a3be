"""The public listener: binds, accepts (up to `limits.max_connections`), drains on shutdown."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from functools import partial
from typing import Any, Final, cast

from shim.config.model import LimitsConfig
from shim.obs.logs import batch_access_lines, flush_access_lines
from shim.proxy.client import ClientConnection
from shim.proxy.protocols import Admitted
from shim.proxy.state import ShimState

#: how often the request counters are handed to prometheus-client (see `Metrics.flush`)
METRICS_FLUSH_SECONDS: Final = 1.0


class Listener:
    def __init__(self, state: ShimState, *, tls: ssl.SSLContext | None) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.scheme = "https" if tls is not None else "http"
        self.tls = tls
        self.connections: set[Admitted] = set()
        self.server: asyncio.Server | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._flusher: asyncio.TimerHandle | None = None

    @property
    def limits(self) -> LimitsConfig:
        """The limits of the current runtime (a reload applies them to new connections)."""
        return self.state.runtime.config.limits

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> list[str]:
        self.server = await self.loop.create_server(
            lambda: ClientConnection(self),
            host or None,
            port,
            ssl=self.tls,
            reuse_port=reuse_port or None,
            reuse_address=True,
            backlog=1024,
        )
        self.batch_access_lines()
        self._flush_metrics()
        # uvloop's Server gives a list where typeshed says tuple
        sockets: Sequence[socket.socket] = cast(Any, self.server).sockets
        return [
            f"{sock.getsockname()[0]}:{sock.getsockname()[1]}"
            for sock in sockets
            if sock.family in (socket.AF_INET, socket.AF_INET6)
        ]

    def batch_access_lines(self) -> None:
        """Access lines: one write per `log.flush_interval` (of the current runtime: a reload
        applies a new one), or per loop pass when it is 0; not one write per request."""
        interval = self.state.runtime.config.log.flush_interval
        batch_access_lines(
            partial(self.loop.call_later, interval) if interval > 0 else self.loop.call_soon
        )

    def _flush_metrics(self) -> None:
        """The request counters reach prometheus-client at least once a second (a scrape of
        this process flushes at once; another worker's waits for this)."""
        self.state.metrics.flush()
        self._flusher = self.loop.call_later(METRICS_FLUSH_SECONDS, self._flush_metrics)

    def admit(self, conn: Admitted) -> bool:
        if len(self.connections) >= self.limits.max_connections:
            return False
        self.connections.add(conn)
        self._idle.clear()
        return True

    def forget(self, conn: Admitted) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Stop accepting; close idle connections; let the others finish within `grace`."""
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.go_away()
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            for conn in list(self.connections):
                conn.abort()
        self.state.pool.abort_all()
        if self._flusher is not None:
            self._flusher.cancel()
        self.state.metrics.flush()
        flush_access_lines()
