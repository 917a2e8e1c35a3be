"""Whatever query a client sends to an entry or discovery path: never a 5xx, never a raw CR/LF.

Hypothesis generates request targets from every character a request line may carry (RFC 3986
plus percent-encoded bytes of any value) and sends them, byte for byte, to one running shim in
front of an upstream that always answers 200 or a JSON document, so any 5xx is the shim's own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shim.config.parse import parse_config
from shim.server.process import Shim, start, stop
from shim.vocabulary import BUILTIN_ALIASES, STABLE_ACTIONS

UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
SUB_DELIMS = "!$'()*+,;:@/?"  # `&` and `=` are generated as separators below
NAMES = [*STABLE_ACTIONS, *BUILTIN_ALIASES, "org.matrix.deactivate_account", ""]

percent_byte = st.integers(0, 255).map(lambda b: f"%{b:02X}")
plain = st.text(alphabet=UNRESERVED + SUB_DELIMS, max_size=12)
component = st.lists(st.one_of(plain, percent_byte), max_size=6).map("".join)
action_value = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(lambda n: n.replace(".", "%2E", 1)),
    component,
)
parameter = st.one_of(
    st.tuples(st.sampled_from(["action", "ACTION", "act%69on"]), action_value).map("=".join),
    st.tuples(component, component).map("=".join),
    component,
)
query = st.lists(parameter, max_size=8).map("&".join)
path = st.sampled_from(
    ["/account/", "/account", "/.well-known/openid-configuration", "/.well-known/matrix/client"]
)


class Background:
    """An upstream and a shim on their own event loop in a thread, for a synchronous test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.shim: Shim | None = None
        self.upstream: web.AppRunner | None = None

    def __enter__(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _start(self) -> int:
        async def anything(request: web.Request) -> web.Response:
            if request.path.startswith("/.well-known/"):
                return web.json_response({"issuer": "https://i/", "m": {"account": "x"}})
            return web.Response(text="portal")

        app = web.Application()
        app.router.add_get("/{tail:.*}", anything)
        self.upstream = web.AppRunner(app, access_log=None)
        await self.upstream.setup()
        await web.TCPSite(self.upstream, "127.0.0.1", 0).start()
        port = self.upstream.addresses[0][1]
        config = parse_config(
            {
                "listen": "127.0.0.1:0",
                "admin": {"listen": "127.0.0.1:0"},
                "upstream": {"url": f"http://127.0.0.1:{port}"},
                "log": {"level": "ERROR"},
                "discovery": {"cache": False},
            }
        )
        self.shim = await start(config, None)
        return int(self.shim.bound[0].rsplit(":", 1)[1])

    async def _stop(self) -> None:
        if self.shim is not None:
            await stop(self.shim)
        if self.upstream is not None:
            await self.upstream.cleanup()


@pytest.fixture(scope="module")
def shim_port() -> Iterator[int]:
    with Background() as port:
        yield port


def _exchange(port: int, target: str, method: str) -> bytes:
    request = f"{method} {target} HTTP/1.1\r\nHost: shim.test\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("ascii"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=path, query=query, method=st.sampled_from(["GET", "HEAD"]))
def test_no_query_gets_a_server_error_or_a_broken_header(
    shim_port: int, path: str, query: str, method: str
) -> None:
    raw = _exchange(shim_port, f"{path}?{query}" if query else path, method)
    head, _, _ = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status < 500, raw[:300]
    for line in head.split(b"\r\n")[1:]:
        assert b"\r" not in line
        assert b"\n" not in line
        assert b"\x00" not in line
    if status == 302:
        location = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"location:")
        )
        # the redirect stays on the request's origin
        assert location.startswith(b"/")
        assert not location.startswith(b"//")
