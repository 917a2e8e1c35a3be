"""The targets wrk does not measure: latency added at a fixed rate, memory while 1 GiB streams
each way, and memory held by 1,000 idle keep-alive connections. `bench/edges.py [--quick]`.

The shim runs as in bench/run.py (1 worker, uvloop, access log on), pinned to its own CPU; this
script (the load and the Python upstream for the streaming case) runs on the other one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import procs
import upstream
from aiohttp import ClientSession, ClientTimeout, web
from loadgen import timed
from plan import ROOT, TARGETS, Settings, plan_layout
from procs import Server
from targets import start_nginx_proxy, start_shim
from usage import memory_mib, process_tree

MiB = 1024 * 1024
RESULTS = ROOT / "bench" / "results"


def _worker_pids(server: Server) -> list[int]:
    tree = process_tree(server.process.pid)
    return tree[1:] or tree  # the serving worker(s), not a supervisor


def latency_case(
    origin: Server, settings: Settings, rate: float, seconds: float, rounds: int = 3
) -> dict[str, object]:
    """Direct, through nginx and through the shim, in turn, `rounds` times.

    p99 at a fixed rate is noisy on a shared 2-core VM: every round is kept, the median
    reported, and nginx as a reverse proxy on the same CPU shows what the machine itself adds
    (a proxy on another vCPU wakes it from idle on every hop).
    """
    proxies = {
        "nginx": start_nginx_proxy(TARGETS["nginx"], origin.address, settings),
        "shim": start_shim(TARGETS["shim"], origin.address, settings),
    }
    runs: list[dict[str, object]] = []
    try:
        for proxy in proxies.values():
            timed(proxy.address, upstream.SMALL_PATH, rate, 1.0)  # warm the pools
        for _ in range(rounds):
            direct = timed(origin.address, upstream.SMALL_PATH, rate, seconds)
            run: dict[str, object] = {"direct": direct}
            for name, proxy in proxies.items():
                through = timed(proxy.address, upstream.SMALL_PATH, rate, seconds)
                run[name] = through | {
                    "p99_added_ms": round(through["p99_ms"] - direct["p99_ms"], 3)
                }
            runs.append(run)
    finally:
        for proxy in proxies.values():
            procs.stop(proxy.process)
    return {
        "rate": rate,
        "rounds": runs,
        **{f"{name}_p99_added_ms_median": _median_added(runs, name) for name in proxies},
    }


def _median_added(runs: list[dict[str, object]], name: str) -> float:
    values = sorted(float(run[name]["p99_added_ms"]) for run in runs)  # type: ignore[index]
    return values[len(values) // 2]


async def _streaming_upstream(size: int) -> tuple[web.AppRunner, str]:
    block = os.urandom(MiB)

    async def sink(request: web.Request) -> web.Response:
        got = 0
        async for chunk in request.content.iter_any():
            got += len(chunk)
        return web.Response(text=str(got))

    async def source(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        for _ in range(size // MiB):
            await response.write(block)
        return response

    app = web.Application(client_max_size=0)
    app.router.add_put("/upload", sink)
    app.router.add_get("/download", source)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"127.0.0.1:{runner.addresses[0][1]}"


async def _stream_both_ways(address: str, size: int) -> tuple[int, int]:
    block = os.urandom(MiB)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // MiB):
            yield block

    timeout = ClientTimeout(total=600)
    async with ClientSession(timeout=timeout, auto_decompress=False) as session:
        async with session.put(f"http://{address}/upload", data=body()) as response:
            up = int(await response.text())
        down = 0
        async with session.get(f"http://{address}/download") as response:
            async for chunk in response.content.iter_any():
                down += len(chunk)
    return up, down


async def streaming_case(settings: Settings, size: int) -> dict[str, object]:
    runner, address = await _streaming_upstream(size)
    try:
        shim = await asyncio.to_thread(start_shim, TARGETS["shim"], address, settings)
        try:
            pids = _worker_pids(shim)
            idle = memory_mib(pids, "VmRSS")
            up, down = await _stream_both_ways(shim.address, size)
            peak = memory_mib(pids, "VmHWM")
        finally:
            procs.stop(shim.process)
    finally:
        await runner.cleanup()
    return {
        "bytes_each_way": size,
        "up": up,
        "down": down,
        "rss_idle_mib": idle,
        "peak_rss_mib": peak,
    }


async def _idle_connections(address: str, count: int) -> list[asyncio.StreamWriter]:
    host, _, port = address.rpartition(":")
    writers = []
    request = f"GET {upstream.SMALL_PATH} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writers.append(writer)
    return writers


async def idle_case(origin: Server, settings: Settings, count: int) -> dict[str, object]:
    shim = await asyncio.to_thread(start_shim, TARGETS["shim"], origin.address, settings)
    try:
        pids = _worker_pids(shim)
        await _idle_connections(shim.address, 4)  # the first requests' own allocations
        before = memory_mib(pids, "VmRSS")
        writers = await _idle_connections(shim.address, count)
        await asyncio.sleep(0.5)
        after = memory_mib(pids, "VmRSS")
        for writer in writers:
            writer.close()
    finally:
        procs.stop(shim.process)
    return {
        "connections": count,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "added_mib": round(after - before, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short runs, 64 MiB, 200 connections")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results JSON (default: a new dated file in bench/results/)",
    )
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    layout = plan_layout(sorted(os.sched_getaffinity(0)))
    os.sched_setaffinity(0, {int(c) for c in layout.wrk.split(",")})
    size = (64 if args.quick else 1024) * MiB
    with tempfile.TemporaryDirectory(prefix="shim-edges-") as tmp:
        settings = Settings(5, 1, 32, True, layout, Path(tmp), retries=0)
        origin = upstream.start_origin(Path(tmp), procs.free_port(), layout.origin)
        try:
            results = {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "latency": latency_case(origin, settings, 1000.0, 3.0 if args.quick else 10.0),
                "streaming": asyncio.run(streaming_case(settings, size)),
                "idle": asyncio.run(idle_case(origin, settings, 200 if args.quick else 1000)),
            }
        finally:
            procs.stop(origin.process)
    output: Path = args.output or RESULTS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}-edges.json"
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
