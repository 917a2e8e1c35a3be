"""A fixed-rate HTTP/1.1 load generator for latency at a given rate (wrk only measures at
saturation): each request is timed from when it was *due*, so a stall is not hidden
(no coordinated omission)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence


async def _read_response(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)


async def _connection(
    host: str, port: int, request: bytes, due: Sequence[float], latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    try:
        for when in due:
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            await _read_response(reader)
            latencies.append(loop.time() - when)
    finally:
        writer.close()


async def fixed_rate(
    address: str, path: str, *, rate: float, seconds: float, connections: int = 16
) -> list[float]:
    """Latencies (seconds) of `rate` GETs a second for `seconds`, spread over connections."""
    host, _, port = address.rpartition(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    total = int(rate * seconds)
    latencies: list[float] = []
    schedules = [
        [start + i / rate for i in range(c, total, connections)] for c in range(connections)
    ]
    await asyncio.gather(
        *(_connection(host, int(port), request, due, latencies) for due in schedules)
    )
    return latencies


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def timed(address: str, path: str, rate: float, seconds: float) -> dict[str, float]:
    """p50/p99/max in milliseconds at a fixed rate."""
    started = time.monotonic()
    got = asyncio.run(fixed_rate(address, path, rate=rate, seconds=seconds))
    return {
        "requests": len(got),
        "achieved_rate": round(len(got) / (time.monotonic() - started), 1),
        "p50_ms": round(percentile(got, 50) * 1000, 3),
        "p99_ms": round(percentile(got, 99) * 1000, 3),
        "max_ms": round(max(got) * 1000, 3),
    }
