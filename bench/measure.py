"""Measuring a running target: check it answers right, run wrk per scenario, account CPU and memory.

A case disturbed by other processes on our CPUs is measured again (see `Settings.retries`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import upstream
import usage
from plan import Kind, Scenario, Settings
from procs import BenchError, Server, log_tail
from targets import Running
from wrk import Latency, Summary, run_wrk


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One target under one scenario: a row of the table and of the results file."""

    scenario: str
    target: str
    path: str
    requests: int
    requests_per_s: float
    transfer_mib_per_s: float
    latency_ms: Latency
    #: wrk's socket errors, and `status`: answers other than 2xx/3xx
    errors: dict[str, int]
    #: the target's processes (100 = one core busy all the time)
    cpu_percent: float
    requests_per_cpu_s: float | None
    #: the rest of the machine meanwhile: the origin, wrk, `other` (tasks not ours), and
    #: `softirq` (interrupt time on our CPUs, mostly the loopback network stack)
    cpu_percent_others: dict[str, float]
    rss_idle_mib: float
    rss_mib: float
    rss_peak_mib: float
    processes: int
    #: measurements taken; more than 1 when other processes disturbed the first
    attempts: int = 1


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_answer(kind: Kind, scenario: Scenario, answer: upstream.Answer, origin: bytes) -> None:
    """The target answers what the scenario is about, so the numbers measure the right thing.

    Everything is the origin's answer byte for byte, except what the shim exists for: a deep
    link becomes a 302 to the translated URL, and the discovery document is rewritten.
    """
    shim = kind == "shim"
    status = 302 if shim and scenario.name == "deeplink" else 200
    problem = None
    if answer.status != status:
        problem = f"status {answer.status}, expected {status}"
    elif status == 302:
        if "action=" not in answer.headers.get("location", ""):
            problem = f"Location {answer.headers.get('location')!r} has no translated action"
    elif shim and scenario.name == "discovery":
        if answer.body == origin:
            problem = "the discovery document came back unchanged (not rewritten)"
    elif answer.body != origin:
        problem = f"a {len(answer.body)}-byte body differs from the origin's {len(origin)} bytes"
    if problem is not None:
        raise BenchError(f"{kind} {scenario.path}: {problem}; not benchmarking a wrong answer")


def _run_wrk(server: Server, path: str, seconds: int, settings: Settings) -> Summary:
    url = f"http://{server.address}{path}"
    return run_wrk(url, seconds, settings.connections, settings.layout.wrk, settings.workdir)


def measure(
    running: Running,
    scenario: Scenario,
    settings: Settings,
    origin_pids: Sequence[int],
    idle_mib: float,
) -> CaseResult:
    server = running.server
    pids = usage.process_tree(server.process.pid)
    start = usage.CpuClock.read(pids, origin_pids)
    wrk = _run_wrk(server, scenario.path, settings.duration, settings)
    cpu = usage.CpuClock.read(pids, origin_pids).percent_since(start)
    return CaseResult(
        scenario=scenario.name,
        target=running.target.name,
        path=scenario.path,
        requests=wrk.requests,
        requests_per_s=round(wrk.requests / wrk.seconds, 1),
        transfer_mib_per_s=round(wrk.bytes / wrk.seconds / 2**20, 1),
        latency_ms=wrk.latency_ms(),
        errors=wrk.errors(),
        cpu_percent=cpu["target"],
        requests_per_cpu_s=_per_cpu_second(wrk.requests, wrk.seconds, cpu["target"]),
        cpu_percent_others={k: cpu[k] for k in ("origin", "wrk", "other", "softirq")},
        rss_idle_mib=idle_mib,
        rss_mib=usage.memory_mib(pids, "VmRSS"),
        rss_peak_mib=usage.memory_mib(pids, "VmHWM"),
        processes=len(pids),
    )


def _per_cpu_second(requests: float, seconds: float, percent: float) -> float | None:
    return round(requests / seconds / (percent / 100), 1) if percent > 0 else None


def measure_quietly(
    running: Running,
    scenario: Scenario,
    settings: Settings,
    origin_pids: Sequence[int],
    idle_mib: float,
) -> CaseResult:
    """Measure; again while other processes disturbed it (see `Settings.retries`)."""
    process, log = running.server.process, running.server.log
    attempts: list[CaseResult] = []
    while len(attempts) <= settings.retries:
        attempts.append(measure(running, scenario, settings, origin_pids, idle_mib))
        if process.poll() is not None:
            raise BenchError(
                f"{running.target.name} exited ({process.returncode}) during "
                f"{scenario.name}:\n{log_tail(log)}"
            )
        other = attempts[-1].cpu_percent_others["other"]
        if other <= settings.max_other:
            break
        progress(f"    other processes used {other:.0f}% CPU meanwhile")
    best = min(attempts, key=lambda row: row.cpu_percent_others["other"])
    return replace(best, attempts=len(attempts))


def bench_target(
    running: Running, scenarios: Sequence[Scenario], settings: Settings, origin: Server
) -> list[CaseResult]:
    """Warm `running` up, then check and measure it in each scenario."""
    server = running.server
    idle = usage.memory_mib(usage.process_tree(server.process.pid), "VmRSS")
    origin_pids = usage.process_tree(origin.process.pid)
    if settings.warmup:  # fills connection pools; the discovery cache fills at the check
        _run_wrk(server, upstream.SMALL_PATH, settings.warmup, settings)
    rows: list[CaseResult] = []
    for scenario in scenarios:
        expected = upstream.fetch(origin.address, scenario.path).body
        answer = upstream.fetch(server.address, scenario.path)
        try:
            check_answer(running.target.kind, scenario, answer, expected)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{server.log.name}:\n{log_tail(server.log)}") from None
        progress(f"  {running.target.name:9} {scenario.name:10} {settings.duration} s ...")
        rows.append(measure_quietly(running, scenario, settings, origin_pids, idle))
    return rows
