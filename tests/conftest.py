"""Shared fixtures: loopback upstreams, a shim in this process or as a child process, a client.

Each factory cleans up what it started when the test ends; the helpers live in proxy_harness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.proxy_harness import (
    Endpoint,
    RawHandler,
    RawServer,
    RunningShim,
    ShimProcess,
    launch_shim,
    start_app,
    start_shim,
)

UpstreamFactory = Callable[..., Awaitable[Endpoint]]
RawUpstreamFactory = Callable[[RawHandler], Awaitable[Endpoint]]
ShimFactory = Callable[[Mapping[str, object]], Awaitable[RunningShim]]
ShimProcessFactory = Callable[..., Awaitable[ShimProcess]]


@pytest.fixture
async def upstream_factory() -> AsyncIterator[UpstreamFactory]:
    """`await upstream_factory(app, **runner_args)` serves an aiohttp app on a loopback port."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, **runner_args: Any) -> Endpoint:
        runner, endpoint = await start_app(app, **runner_args)
        runners.append(runner)
        return endpoint

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def raw_upstream_factory() -> AsyncIterator[RawUpstreamFactory]:
    """`await raw_upstream_factory(handler)`: a TCP server that answers byte by byte."""
    servers: list[RawServer] = []

    async def start(handler: RawHandler) -> Endpoint:
        server = RawServer(handler)
        servers.append(server)
        return await server.start()

    yield start
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def shim_factory() -> AsyncIterator[ShimFactory]:
    """`await shim_factory(shim_settings(...))` runs the shim in this event loop."""
    shims: list[RunningShim] = []

    async def start(settings: Mapping[str, object]) -> RunningShim:
        running = await start_shim(settings)
        shims.append(running)
        return running

    yield start
    for running in reversed(shims):
        await running.stop()


@pytest.fixture
async def shim_process_factory(tmp_path: Path) -> AsyncIterator[ShimProcessFactory]:
    """`await shim_process_factory(settings, *cli_args, ready=N)` runs `python -m shim run`."""
    processes: list[ShimProcess] = []

    async def start(settings: dict[str, object], *args: str, ready: int = 1) -> ShimProcess:
        path = tmp_path / f"shim-{len(processes)}.yaml"
        process = await launch_shim(settings, path, *args, ready=ready)
        processes.append(process)
        return process

    yield start
    for process in reversed(processes):
        await process.close()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that changes nothing: no decompression, no cookie jar."""
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session
