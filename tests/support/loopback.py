"""Helpers for the proxy's functional tests: loopback servers, the shim in or out of process.

Everything here talks over real sockets on 127.0.0.1. The raw helpers exist for the checks a
client library would hide: the exact request line, repeated or hop-by-hop fields, message framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

import shim.server.process as process
from shim.config.parse import parse_config
from tests.support.paths import REPO

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the shim binds exactly the ports it is given)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


# -- upstreams -----------------------------------------------------------------------------------


async def start_app(app: web.Application, **runner_args: Any) -> tuple[web.AppRunner, Endpoint]:
    """Serve `app` on a fresh loopback port; the caller cleans the runner up."""
    runner_args.setdefault("shutdown_timeout", 0.5)
    runner = web.AppRunner(app, access_log=None, **runner_args)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    return runner, Endpoint(HOST, port)


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, **runner_args: Any) -> AsyncIterator[Endpoint]:
    """`app` on a fresh loopback port for the duration of the block."""
    runner, endpoint = await start_app(app, **runner_args)
    try:
        yield endpoint
    finally:
        await runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server whose handler writes the exact bytes of its answer (or none at all)."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> Endpoint:
        self.server = await asyncio.start_server(self._accept, HOST, 0)
        return Endpoint(HOST, self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            await self.server.wait_closed()


@contextlib.asynccontextmanager
async def serve_raw(handler: RawHandler) -> AsyncIterator[Endpoint]:
    """A `RawServer` for `handler` on a fresh loopback port for the duration of the block."""
    server = RawServer(handler)
    try:
        yield await server.start()
    finally:
        await server.close()


# -- raw HTTP/1.1 messages ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """A start line and the header fields exactly as they were sent (order and repeats kept)."""

    start_line: str
    fields: tuple[tuple[str, str], ...]

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.getall(name)
        return values[0] if values else None

    def names(self) -> set[str]:
        return {key.lower() for key, _ in self.fields}

    @property
    def status(self) -> int:
        return int(self.start_line.split(" ", 2)[1])

    @property
    def target(self) -> str:
        return self.start_line.split(" ", 2)[1]


def parse_head(data: bytes) -> Head:
    lines = data.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return Head(lines[0], tuple(fields))


async def read_head(reader: asyncio.StreamReader) -> Head:
    return parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_body(reader: asyncio.StreamReader, head: Head, *, bodiless: bool = False) -> bytes:
    """The message body by its framing: none, Content-Length, chunked, or up to EOF."""
    if bodiless:
        return b""
    if "chunked" in (head.get("Transfer-Encoding") or "").lower():
        return await read_chunked(reader)
    length = head.get("Content-Length")
    if length is not None:
        return await reader.readexactly(int(length))
    if head.start_line.startswith("HTTP/"):
        return await reader.read()
    return b""


async def read_response(reader: asyncio.StreamReader, *, method: str = "GET") -> tuple[Head, bytes]:
    """One response; interim 1xx answers are skipped."""
    while True:
        head = await read_head(reader)
        if not 100 <= head.status < 200:
            break
    bodiless = method == "HEAD" or head.status in (204, 304)
    return head, await read_body(reader, head, bodiless=bodiless)


async def raw_exchange(port: int, request: bytes, *, within: float = 10.0) -> bytes:
    """Send `request` (which should say `Connection: close`) and return every byte until EOF."""
    async with connect(port) as (reader, writer):
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), within)


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw client connection to 127.0.0.1:`port`, closed on the way out."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close abortively (SO_LINGER 0: the peer gets a RST, not a FIN): a client that is gone,
    as opposed to one that only half-closed after its request."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def exchange_one(
    port: int, request: bytes, *, method: str = "GET", within: float = 10.0
) -> tuple[Head, bytes]:
    """Send `request` on a new connection and read exactly one response by its framing."""
    async with connect(port) as (reader, writer):
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(read_response(reader, method=method), within)


def split_response(data: bytes) -> tuple[Head, bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    return parse_head(head), rest


# -- the shim ----------------------------------------------------------------------------------


def shim_settings(
    upstream_url: str, *, upstream: Mapping[str, object] | None = None, **top: object
) -> dict[str, object]:
    """A raw config mapping on loopback; `top` replaces top-level keys.

    Port 0: the kernel picks a free port when the shim binds, so no other process can take it
    between choosing and binding; the harness reads the bound ports back from the shim.
    """
    settings: dict[str, object] = {
        "listen": f"{HOST}:0",
        "admin": {"listen": f"{HOST}:0"},
        "upstream": {"url": upstream_url, **(upstream or {})},
        "shutdown_grace": "1s",
        "log": {"format": "json", "level": "INFO"},
    }
    settings.update(top)
    return settings


def _port_of(settings: Mapping[str, object], *keys: str) -> int:
    node: object = settings
    for key in keys:
        assert isinstance(node, Mapping)
        node = node[key]
    return int(str(node).rsplit(":", 1)[1])


@dataclass
class RunningShim:
    """A shim started in this process with `shim.server.process.start`."""

    shim: process.Shim
    port: int
    admin_port: int
    stopped: bool = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await process.stop(self.shim)


async def start_shim(settings: Mapping[str, object]) -> RunningShim:
    running = await process.start(parse_config(dict(settings)), None)
    public, admin = running.bound[0], running.bound[-1]
    return RunningShim(running, _port_of_address(public), _port_of_address(admin))


@contextlib.asynccontextmanager
async def run_shim(settings: Mapping[str, object]) -> AsyncIterator[RunningShim]:
    """The shim in this event loop for the duration of the block."""
    running = await start_shim(settings)
    try:
        yield running
    finally:
        await running.stop()


def _port_of_address(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@dataclass
class ShimProcess:
    """`python -m shim run --config PATH` as a child process, with its stderr collected."""

    proc: asyncio.subprocess.Process
    config_path: Path
    settings: dict[str, object]
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def _bound(self, key: str) -> int:
        """The port the (first) process logged in its `ready` event under `key`."""
        ready = self.events("ready")
        assert ready, "the shim has not logged `ready` yet"
        addresses = ready[0][key]
        assert isinstance(addresses, list)
        assert addresses, ready[0]
        return _port_of_address(str(addresses[0]))

    @property
    def port(self) -> int:
        configured = _port_of(self.settings, "listen")
        return configured or self._bound("listen")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def admin_url(self) -> str:
        configured = _port_of(self.settings, "admin", "listen")
        return f"http://{HOST}:{configured or self._bound('admin')}"

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines of event `name`; an ECS line (`log.format: ecs`) as its own fields (under
        `msc4191_shim`) with `event` its name and `ecs` the whole line."""
        found = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and "ecs.version" in record:
                    record = _ecs_event(record)
                if isinstance(record, dict) and record.get("event") == name:
                    found.append(record)
        return found

    async def wait_for_event(self, name: str, count: int = 1, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.events(name)) < count:
                if self.proc.returncode is not None:
                    raise AssertionError(f"shim exited {self.proc.returncode}:\n{self.stderr}")
                await asyncio.sleep(0.02)

    def rewrite_config(self, settings: Mapping[str, object]) -> None:
        write_config(self.config_path, settings)

    def send_signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    async def wait(self, within: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), within)

    async def terminate(self, within: float) -> int:
        """SIGTERM, as an orchestrator stops it; its exit code, waited for at most `within` s."""
        self.send_signal(signal.SIGTERM)
        return await self.wait(within)

    def status_kib(self, key: str = "VmHWM", pid: int | None = None) -> int:
        """A memory figure from /proc/<pid>/status in KiB (VmHWM: the peak resident size)."""
        text = Path(f"/proc/{pid or self.proc.pid}/status").read_text(encoding="ascii")
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{pid or self.proc.pid}/status")

    async def close(self) -> None:
        """Kill the child if it still runs (only this process, by its pid) and reap it."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        if self.reader is not None:
            await self.reader


def _ecs_event(line: dict[str, Any]) -> dict[str, Any]:
    event = line.get("event", {})
    access = event.get("dataset") == "msc4191_shim.access"
    name = "request" if access else event.get("action", line.get("message"))
    return {**line.get("msc4191_shim", {}), "event": name, "ecs": line}


def write_config(path: Path, settings: Mapping[str, object]) -> None:
    path.write_text(yaml.safe_dump(dict(settings)), encoding="utf-8")


def child_env() -> dict[str, str]:
    """This environment without the shim's own overrides (they would change the config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSC4191_SHIM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    async for line in stream:
        lines.append(line.decode("utf-8", "replace").rstrip("\n"))


async def spawn_shim(
    config_path: Path, *args: str, settings: dict[str, object] | None = None
) -> ShimProcess:
    """`msc4191-shim run --config PATH ARGS` as a child, its stderr collected; not waited for."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shim",
        "run",
        "--config",
        str(config_path),
        *args,
        cwd=REPO,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    process = ShimProcess(proc, config_path, settings or {})
    process.reader = asyncio.create_task(_collect(proc.stderr, process.lines))
    return process


async def launch_shim(
    settings: dict[str, object], config_path: Path, *args: str, ready: int = 1
) -> ShimProcess:
    """Start the CLI and wait until `ready` processes logged `ready` (one per worker)."""
    write_config(config_path, settings)
    process = await spawn_shim(config_path, *args, settings=settings)
    try:
        await process.wait_for_event("ready", count=ready, within=15.0)
    except BaseException:
        await process.close()
        raise
    return process


@contextlib.asynccontextmanager
async def run_shim_process(
    settings: dict[str, object], config_path: Path, *args: str, ready: int = 1
) -> AsyncIterator[ShimProcess]:
    """`launch_shim` for the duration of the block; the child is killed on the way out."""
    process = await launch_shim(settings, config_path, *args, ready=ready)
    try:
        yield process
    finally:
        await process.close()


async def run_cli(*args: str, within: float = 20.0) -> tuple[int, str, str]:
    """Run `python -m shim ARGS` to completion: exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shim",
        *args,
        cwd=REPO,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid`, from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    return [int(child) for child in children.split()]


def tcp_sockets(pid: int) -> list[tuple[str, int, int, str]]:
    """The IPv4 TCP sockets process `pid` holds: (state, local port, remote port, remote ip).

    States are /proc/net/tcp's hex codes: "0A" listening, "01" established.
    """
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        parts = line.split()
        local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
        if inode in inodes:
            rip, rport = remote.split(":")
            found.append((state, int(local.split(":")[1], 16), int(rport, 16), rip))
    return found
