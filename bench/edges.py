"""The targets run.py does not measure: latency added at a fixed rate (wrk, paced), memory while
1 GiB streams each way, and memory held by 1,000 idle keep-alive connections.
`bench/edges.py [--quick] [--cases latency,streaming,idle] [--rounds N] [--one-cpu] [--allow-idle]`.

The shim runs as in bench/run.py (1 worker, uvloop, access log on), pinned to its own CPU; this
script (the load and the Python upstream for the streaming case) runs on the other one, or with
`--one-cpu` everything runs on the first CPU. While the latency case runs, the CPUs are kept from
halting (bench/awake.py) unless `--allow-idle`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import procs
import upstream
from aiohttp import ClientSession, ClientTimeout, web
from awake import cpus_awake
from plan import RUNS, TARGETS, Settings, plan_layout
from procs import Server
from targets import start_nginx_proxy, start_shim
from usage import cpu_seconds, memory_mib, process_tree
from wrk import run_wrk

MiB = 1024 * 1024
CASES = ("latency", "streaming", "idle")
#: connections the fixed-rate load is spread over
LATENCY_CONNECTIONS = 16


def _worker_pids(server: Server) -> list[int]:
    tree = process_tree(server.process.pid)
    return tree[1:] or tree  # the serving worker(s), not a supervisor


def _paced(
    address: str,
    settings: Settings,
    rate: float,
    seconds: int,
    serving: Mapping[str, Server] | None = None,
) -> dict[str, float]:
    """One paced wrk run against `address`; with, for each of `serving` (the proxy, the
    origin), the CPU time a request cost it: on a shared CPU, what a request queues behind."""
    trees = {role: process_tree(server.process.pid) for role, server in (serving or {}).items()}
    before = {role: cpu_seconds(tree) for role, tree in trees.items()}
    summary = run_wrk(
        f"http://{address}{upstream.SMALL_PATH}",
        seconds,
        LATENCY_CONNECTIONS,
        settings.layout.wrk,
        settings.workdir,
        rate=rate,
    )
    latency = summary.latency_ms()
    result = {
        "requests": summary.requests,
        "achieved_rate": round(summary.requests / summary.seconds, 1),
        "p50_ms": latency.p50,
        "p90_ms": latency.p90,
        "p99_ms": latency.p99,
        "max_ms": latency.max,
        "errors": sum(summary.errors().values()),
    }
    for role, tree in trees.items():
        used = cpu_seconds(tree) - before[role]
        result[f"{role}_cpu_us_per_request"] = round(1e6 * used / max(1, summary.requests), 1)
    return result


def latency_case(
    origin: Server, settings: Settings, rate: float, seconds: int, rounds: int = 5
) -> dict[str, object]:
    """Direct, through nginx and through the shim, in turn, `rounds` times, at `rate` a second.

    wrk paces the requests (`wrk.PACED_LUA`) and times each from its write to its response, in
    C. p99 at a fixed rate is noisy on a shared 2-core VM (an idle vCPU is woken for every hop),
    so the targets take turns in short runs, every round is kept and the median reported; nginx
    as a reverse proxy on the same CPU shows what the machine itself adds.
    """
    proxies = {
        "nginx": start_nginx_proxy(TARGETS["nginx"], origin.address, settings),
        "shim": start_shim(TARGETS["shim"], origin.address, settings),
    }
    addresses = {"direct": origin.address} | {n: p.address for n, p in proxies.items()}
    runs: list[dict[str, dict[str, float]]] = []
    try:
        for address in addresses.values():
            _paced(address, settings, rate, 1)  # warm the pools
        for _ in range(rounds):
            run = {"direct": _paced(origin.address, settings, rate, seconds, {"origin": origin})}
            for name, proxy in proxies.items():
                serving = {"proxy": proxy, "origin": origin}
                run[name] = _paced(proxy.address, settings, rate, seconds, serving)
            for name in proxies:
                added = run[name]["p99_ms"] - run["direct"]["p99_ms"]
                run[name]["p99_added_ms"] = round(added, 3)
            runs.append(run)
    finally:
        for proxy in proxies.values():
            procs.stop(proxy.process)
    return {
        "rate": rate,
        "connections": LATENCY_CONNECTIONS,
        "rounds": runs,
        **{f"{name}_p99_added_ms_median": _median(runs, name, "p99_added_ms") for name in proxies},
        **{
            f"{name}_cpu_us_per_request_median": _median(runs, name, "proxy_cpu_us_per_request")
            for name in proxies
        },
    }


def _median(runs: list[dict[str, dict[str, float]]], name: str, field: str) -> float:
    values = sorted(run[name][field] for run in runs)
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
        help="results JSON (default: a new dated file in bench/runs/)",
    )
    p.add_argument(
        "--cases",
        type=lambda text: text.split(","),
        default=CASES,
        help=f"which cases, comma-separated (default: {','.join(CASES)})",
    )
    p.add_argument("--rounds", type=int, default=5, help="latency rounds (default: 5)")
    p.add_argument(
        "--one-cpu",
        action="store_true",
        help="every party on the first CPU: no request waits for another CPU to wake",
    )
    p.add_argument(
        "--allow-idle",
        action="store_true",
        help="let idle CPUs halt during the latency case (default: held polling, as cyclictest)",
    )
    args = p.parse_args(argv)
    if unknown := set(args.cases) - set(CASES):
        p.error(f"unknown cases {sorted(unknown)}; expected some of {list(CASES)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    cpus = sorted(os.sched_getaffinity(0))
    layout = plan_layout(cpus[:1] if args.one_cpu else cpus)
    os.sched_setaffinity(0, {int(c) for c in layout.wrk.split(",")})
    size = (64 if args.quick else 1024) * MiB
    with tempfile.TemporaryDirectory(prefix="shim-edges-") as tmp:
        settings = Settings(5, 1, 32, True, layout, Path(tmp), retries=0)
        origin = upstream.start_origin(Path(tmp), procs.free_port(), layout.origin)
        try:
            results: dict[str, object] = {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpus": {"proxy": layout.proxy_1, "origin": layout.origin, "load": layout.wrk},
            }
            if "latency" in args.cases:
                seconds = 2 if args.quick else 5
                with cpus_awake(not args.allow_idle) as idle:
                    latency = latency_case(origin, settings, 1000.0, seconds, args.rounds)
                results["latency"] = {"cpu_idle": idle, **latency}
            if "streaming" in args.cases:
                results["streaming"] = asyncio.run(streaming_case(settings, size))
            if "idle" in args.cases:
                count = 200 if args.quick else 1000
                results["idle"] = asyncio.run(idle_case(origin, settings, count))
        finally:
            procs.stop(origin.process)
    output: Path = args.output or RUNS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}-edges.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
