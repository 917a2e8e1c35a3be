"""The process: listeners, signals (SIGTERM drains, SIGHUP reloads), and N workers on one port."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from shim.config.errors import ConfigError
from shim.config.model import Config, TlsConfig
from shim.config.parse import load_config
from shim.config.tls import check_contexts, listener_context
from shim.obs.log_setup import configure_logging
from shim.obs.logs import log_event
from shim.obs.metrics import Metrics
from shim.proxy.listener import Listener
from shim.proxy.pool import UpstreamPool
from shim.proxy.runtime import build_runtime
from shim.proxy.state import ShimState
from shim.server.admin import make_admin_app
from shim.server.signals import take_held

logger = logging.getLogger("msc4191_shim.server")

#: the admin listener's client reads the upstream's answers with these header limits
MAX_HEADER_LINE = 16384
#: aiohttp's `enable_cleanup_closed` works around a CPython leak of aborted SSL transports, fixed
#: in 3.12.7 and 3.13.1 (python/cpython#118960); aiohttp ignores it there with a DeprecationWarning
CLEANUP_CLOSED = sys.version_info < (3, 12, 7) or (3, 13, 0) <= sys.version_info < (3, 13, 1)


def make_session() -> aiohttp.ClientSession:
    """One pooled client for the process: no cookie jar, no decompression, no auto headers."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=CLEANUP_CLOSED),
        cookie_jar=aiohttp.DummyCookieJar(),
        # the same header limits as the public listener, so what a client may send, the
        # upstream may answer (aiohttp's client default is 8190)
        max_line_size=MAX_HEADER_LINE,
        max_field_size=MAX_HEADER_LINE,
        auto_decompress=False,
        trust_env=False,
    )


def tls_context(tls: TlsConfig | None) -> ssl.SSLContext | None:
    return listener_context(tls)  # built as check-config builds it


@dataclass
class Shim:
    """A running shim in this process; `reload` and `stop` are what the signals call."""

    config_path: str | None
    state: ShimState
    tls: ssl.SSLContext | None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: set when shutdown starts, so /readyz turns 503 and load balancers stop sending
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    runners: list[web.AppRunner] = field(default_factory=list)
    public: Listener | None = None
    bound: list[str] = field(default_factory=list)

    def reload(self) -> None:
        if self.config_path is None:
            return
        # Build everything (file, SSL contexts, runtime) before changing anything, the log
        # level included: a reload is applied whole or refused whole.
        try:
            config = load_config(self.config_path)
            check_contexts(config, self.config_path)
            runtime = build_runtime(config)
            if self.tls is not None and config.tls is not None:
                # new handshakes use the new certificate; open connections keep theirs
                self.tls.load_cert_chain(str(config.tls.cert_file), str(config.tls.key_file))
        except ConfigError as exc:
            self.state.metrics.observe_reload(False)
            log_event("reload_refused", level=logging.ERROR, errors=[str(p) for p in exc.problems])
            return
        except (OSError, ssl.SSLError) as exc:
            self.state.metrics.observe_reload(False)
            log_event("reload_refused", level=logging.ERROR, errors=[f"tls: {exc}"])
            return
        old = self.state.runtime.config
        at_restart = (config.listen, config.admin.listen, config.tls is None, config.shutdown_grace)
        if at_restart != (old.listen, old.admin.listen, self.tls is None, old.shutdown_grace):
            log_event(
                "reload_partial",
                level=logging.WARNING,
                detail="listen addresses, turning TLS on or off and shutdown_grace take effect "
                "on restart; everything else applies now",
            )
        configure_logging(config.log.format, config.log.level)
        self.state.runtime = runtime
        if self.public is not None:
            self.public.batch_access_lines()
        self.state.pool.max_connections = config.upstream.max_connections
        self.state.metrics.observe_reload(True)
        log_event("reloaded", config=self.config_path)


async def start(config: Config, config_path: str | None, *, reuse_port: bool = False) -> Shim:
    """Bind both listeners and return the running shim (the caller awaits `stopping`).

    The public listener is the protocol-level proxy (`shim.proxy`); the admin listener
    stays an aiohttp application.
    """
    metrics = Metrics()
    state = ShimState(
        runtime=build_runtime(config),
        session=make_session(),
        metrics=metrics,
        pool=UpstreamPool(
            config.upstream.max_connections,
            on_full=lambda: metrics.observe_limit_hit("upstream_max_connections"),
        ),
    )
    shim = Shim(config_path, state, tls_context(config.tls))
    admin = web.AppRunner(make_admin_app(shim.state, shim.draining), access_log=None)
    shim.runners = [admin]
    try:
        shim.public = Listener(shim.state, tls=shim.tls)
        shim.bound.extend(
            await shim.public.start(config.listen.host, config.listen.port, reuse_port=reuse_port)
        )
        await admin.setup()
        site = web.TCPSite(
            admin, config.admin.listen.host, config.admin.listen.port, reuse_port=reuse_port
        )
        await site.start()
        shim.bound.extend(_bound_addresses(admin))
    except BaseException:
        await stop(shim)
        raise
    return shim


def _bound_addresses(runner: web.AppRunner) -> list[str]:
    return [f"{a[0]}:{a[1]}" for a in runner.addresses if isinstance(a, tuple)]


async def stop(shim: Shim) -> None:
    """Stop accepting, let in-flight requests finish within shutdown_grace, then close.

    Open WebSockets are told "going away" at once rather than held for the whole grace.
    """
    shim.draining.set()
    if shim.public is not None:
        await shim.public.drain(shim.state.runtime.config.shutdown_grace)
    for runner in shim.runners:
        await runner.cleanup()
    await shim.state.session.close()


async def serve(config: Config, config_path: str | None, *, reuse_port: bool = False) -> int:
    configure_logging(config.log.format, config.log.level)
    try:
        shim = await start(config, config_path, reuse_port=reuse_port)
    except OSError as exc:
        log_event(
            "start_failed", level=logging.ERROR, error=f"cannot listen: {exc.strerror or exc}"
        )
        return 1
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, shim.stopping.set)
    loop.add_signal_handler(signal.SIGINT, shim.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, shim.reload)
    for signum in take_held():  # arrived while starting (see server.signals): act on them now
        (shim.reload if signum == signal.SIGHUP else shim.stopping.set)()
    log_event(
        "ready",
        listen=shim.bound[:-1],
        admin=shim.bound[-1:],
        upstream=str(config.upstream.url),
        event_loop=type(loop).__module__.split(".")[0],  # "uvloop" when installed
    )
    await shim.stopping.wait()
    log_event("draining", grace_seconds=config.shutdown_grace)
    await stop(shim)
    log_event("stopped")
    return 0


def run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a coroutine factory on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
