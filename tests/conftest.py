"""Shared fixtures: loopback upstreams, a shim in this process or as a child process, a client.

Each factory cleans up what it started when the test ends, the last first; the helpers live in
proxy_harness.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiohttp
import pytest
from aiohttp import web

from shim.obs.logs import flush_access_lines
from tests.support.loopback import (
    Endpoint,
    RawHandler,
    RunningShim,
    ShimProcess,
    run_shim,
    run_shim_process,
    serve_app,
    serve_raw,
    shim_settings,
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """A compiled module older than its source would test the old code: refuse to start."""
    check = Path(__file__).resolve().parent.parent / "scripts" / "native.py"
    done = subprocess.run([sys.executable, str(check), "check"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.exit(
            f"{done.stderr}run `make native` to compile again, or `make pure` to test plain Python",
            returncode=4,
        )


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test starts with the root logger as the previous test found it.

    `configure_logging` (the demo, `serve`, reload tests) installs the shim's stderr handler on
    the root logger; left there, a later test's in-process shim writes its access lines into that
    test's captured stderr, and whether that happens would depend on which tests ran first.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    flush_access_lines()
    root.handlers[:] = handlers
    root.setLevel(level)


UpstreamFactory = Callable[..., Awaitable[Endpoint]]
RawUpstreamFactory = Callable[[RawHandler], Awaitable[Endpoint]]
ShimFactory = Callable[[Mapping[str, object]], Awaitable[RunningShim]]
ShimProcessFactory = Callable[..., Awaitable[ShimProcess]]
ShimFor = Callable[..., Awaitable[RunningShim]]

P = ParamSpec("P")
T = TypeVar("T")


def _factory(
    stack: AsyncExitStack, run: Callable[P, AbstractAsyncContextManager[T]]
) -> Callable[P, Awaitable[T]]:
    """`run` as a factory: whatever it starts stays up until `stack` closes."""

    async def start(*args: P.args, **kwargs: P.kwargs) -> T:
        return await stack.enter_async_context(run(*args, **kwargs))

    return start


@pytest.fixture
async def upstream_factory() -> AsyncIterator[UpstreamFactory]:
    """`await upstream_factory(app, **runner_args)` serves an aiohttp app on a loopback port."""
    async with AsyncExitStack() as stack:
        yield _factory(stack, serve_app)


@pytest.fixture
async def raw_upstream_factory() -> AsyncIterator[RawUpstreamFactory]:
    """`await raw_upstream_factory(handler)`: a TCP server that answers byte by byte."""
    async with AsyncExitStack() as stack:
        yield _factory(stack, serve_raw)


@pytest.fixture
async def shim_factory() -> AsyncIterator[ShimFactory]:
    """`await shim_factory(shim_settings(...))` runs the shim in this event loop."""
    async with AsyncExitStack() as stack:
        yield _factory(stack, run_shim)


@pytest.fixture
async def shim_process_factory(tmp_path: Path) -> AsyncIterator[ShimProcessFactory]:
    """`await shim_process_factory(settings, *cli_args, ready=N)`: `msc4191-shim run`, a process."""
    config_paths = (tmp_path / f"shim-{n}.yaml" for n in itertools.count())
    async with AsyncExitStack() as stack:
        launch = _factory(stack, run_shim_process)

        async def start(settings: dict[str, object], *args: str, ready: int = 1) -> ShimProcess:
            return await launch(settings, next(config_paths), *args, ready=ready)

        yield start


@pytest.fixture
def shim_for(
    upstream_factory: UpstreamFactory,
    raw_upstream_factory: RawUpstreamFactory,
    shim_factory: ShimFactory,
) -> ShimFor:
    """`await shim_for(upstream, **settings)`: an in-process shim in front of `upstream`.

    `upstream` is an aiohttp app or a raw handler, served on loopback; `settings` are passed to
    `shim_settings`.
    """

    async def start(upstream: web.Application | RawHandler, /, **settings: Any) -> RunningShim:
        if isinstance(upstream, web.Application):
            endpoint = await upstream_factory(upstream)
        else:
            endpoint = await raw_upstream_factory(upstream)
        return await shim_factory(shim_settings(endpoint.url, **settings))

    return start


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that changes nothing: no decompression, no cookie jar."""
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session
