"""The demo portal and the real shim, both on loopback, for end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from shim.config import parse_config
from shim.demo_portal import Era, make_portal_app
from shim.server import Shim, start, stop


@dataclass(frozen=True, slots=True)
class Stack:
    portal_url: str
    shim_url: str
    admin_url: str
    shim: Shim


@asynccontextmanager
async def portal(era: Era) -> AsyncIterator[str]:
    runner = web.AppRunner(make_portal_app(era), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def shim_in_front(
    upstream: str, extra: Mapping[str, object] | None = None
) -> AsyncIterator[Stack]:
    # port 0: the kernel picks free ports at bind time, read back from `shim.bound`
    raw: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0"},
        "upstream": {"url": upstream},
        **(extra or {}),
    }
    shim = await start(parse_config(raw), None)
    public, admin = shim.bound[0], shim.bound[-1]
    try:
        yield Stack(upstream, f"http://{public}", f"http://{admin}", shim)
    finally:
        await stop(shim)


@asynccontextmanager
async def demo_stack(era: Era, extra: Mapping[str, object] | None = None) -> AsyncIterator[Stack]:
    async with portal(era) as portal_url, shim_in_front(portal_url, extra) as stack:
        yield stack
