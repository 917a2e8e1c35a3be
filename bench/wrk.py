"""Running wrk (1 thread, `--latency`) and reading its summary, which a Lua hook prints as JSON."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError, pinned

#: wrk's own summary, as one JSON line (latencies in microseconds)
REPORT_LUA = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50": %.1f, "p90": %.1f, "p99": %.1f, '
    .. '"max": %.1f, "mean": %.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""
_MARKER = "BENCHJSON "
#: a mean fixed rate (wrk's `delay` hook): before each request a connection waits a random
#: 1 .. 2*gap-1 ms, mean `gap`, so the connections' requests do not line up. wrk times a request
#: from its write to its response, in C, to the microsecond.
PACED_LUA = """\
local gap = {gap}
delay = function() return math.random(1, 2 * gap - 1) end
"""


@dataclass(frozen=True, slots=True)
class Latency:
    """wrk's latency distribution, in milliseconds."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float


@dataclass(frozen=True, slots=True)
class Summary:
    """One wrk run, as its Lua hook reports it (latencies in microseconds)."""

    requests: int
    duration_us: int
    bytes: int
    #: socket errors, and `status`: answers other than 2xx/3xx
    connect: int
    read: int
    write: int
    status: int
    timeout: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @property
    def seconds(self) -> float:
        return self.duration_us / 1e6

    def latency_ms(self) -> Latency:
        ms = [round(us / 1000, 3) for us in (self.p50, self.p90, self.p99, self.max, self.mean)]
        return Latency(*ms)

    def errors(self) -> dict[str, int]:
        return {
            "connect": self.connect,
            "read": self.read,
            "write": self.write,
            "timeout": self.timeout,
            "status": self.status,
        }


def parse_summary(stdout: str) -> Summary | None:
    """The summary line in wrk's output, or None when the hook printed none."""
    for line in stdout.splitlines():
        if line.startswith(_MARKER):
            return Summary(**json.loads(line.removeprefix(_MARKER)))
    return None


def run_wrk(
    url: str, seconds: int, connections: int, cpus: str, workdir: Path, rate: float | None = None
) -> Summary:
    """`seconds` of wrk with `connections` against `url`, on `cpus`: as fast as it answers, or
    `rate` requests a second (the mean: each connection is paced to the millisecond)."""
    if rate is None:
        script = workdir / "report.lua"
        script.write_text(REPORT_LUA)
    else:
        gap = max(1, round(1000 * connections / rate))
        script = workdir / f"paced-{gap}.lua"
        script.write_text(PACED_LUA.format(gap=gap) + REPORT_LUA)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency"]
    command += ["-s", str(script), url]
    done = subprocess.run(
        pinned(cpus, command), capture_output=True, text=True, timeout=seconds + 60
    )
    summary = parse_summary(done.stdout)
    if summary is None:
        raise BenchError(f"wrk gave no report for {url} (exit {done.returncode}): {done.stderr}")
    return summary
