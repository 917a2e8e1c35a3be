"""Benchmark the shim against nginx in the same run: `make bench` (`.venv/bin/python bench/run.py`).

One nginx origin (bench/upstream.py) serves every path. In front of it, one at a time: nginx as a
reverse proxy (bench/nginx.conf.template), the shim with 1 worker and the shim with 2 workers.
wrk asks the origin directly and each proxy for the same scenarios; each case reports requests/s,
latency percentiles, the CPU the target used, and its resident memory. Everything listens on
127.0.0.1 only. Results go to bench/results/latest.json and a markdown table to stdout; the
method and the CPU pinning are described in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import upstream

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "bench" / "nginx.conf.template"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
Kind = Literal["origin", "nginx", "shim"]

#: wrk's own summary, as one JSON line (latencies in microseconds)
WRK_REPORT_LUA = """\
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

SHIM_CONFIG = """\
listen: "127.0.0.1:{port}"
upstream:
  url: "http://{origin}"
shutdown_grace: 2s
admin:
  listen: "127.0.0.1:{admin_port}"
log:
  format: json
  level: {log_level}
account_management:
  paths: ["/account/"]
  dialect: mas-0.9
  strategy: redirect
discovery:
  cache: true
"""


class BenchError(Exception):
    """Something that stops the benchmark; the message says what and what to do."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    path: str


SCENARIOS = (
    Scenario("get_1k", "1 KiB passthrough GET", upstream.SMALL_PATH),
    Scenario("get_1m", "1 MiB passthrough download", upstream.LARGE_PATH),
    Scenario(
        "deeplink",
        "deep link (shim: 302; nginx/origin: passthrough baseline)",
        "/account/?action=org.matrix.device_delete&device_id=BENCHDEVICE",
    ),
    Scenario(
        "discovery",
        "discovery document (shim: rewritten, from cache)",
        upstream.DISCOVERY_PATH,
    ),
)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kind: Kind
    workers: int


TARGETS = {
    t.name: t
    for t in (
        Target("origin", "origin", 1),
        Target("nginx", "nginx", 1),
        Target("nginx-2w", "nginx", 2),
        Target("shim", "shim", 1),
        Target("shim-2w", "shim", 2),
    )
}
DEFAULT_TARGETS = ("origin", "nginx", "shim", "shim-2w")
QUICK_TARGETS = ("nginx", "shim")


@dataclass(frozen=True, slots=True)
class Layout:
    """Which CPUs (taskset lists) each party runs on."""

    proxy_1: str
    proxy_2: str
    origin: str
    wrk: str

    def proxy(self, workers: int) -> str:
        return self.proxy_1 if workers == 1 else self.proxy_2


def plan_layout(cpus: Sequence[int]) -> Layout:
    """A 1-worker proxy gets a core of its own; origin and wrk share the other one.

    With 4+ CPUs every party has its own; a 2-worker proxy takes two cores, which on a 2-core
    machine means sharing them with wrk and the origin.
    """
    c = [str(n) for n in sorted(cpus)]
    if len(c) >= 4:
        return Layout(c[0], f"{c[0]},{c[1]}", c[2], c[3])
    if len(c) >= 2:
        return Layout(c[0], f"{c[0]},{c[1]}", c[-1], c[-1])
    return Layout(c[0], c[0], c[0], c[0])


@dataclass(frozen=True, slots=True)
class Settings:
    duration: int
    warmup: int
    connections: int
    access_log: bool
    layout: Layout
    workdir: Path
    #: a case during which other processes used more than `max_other` % CPU is measured again,
    #: up to `retries` times, and the quietest attempt is kept
    retries: int = 2
    max_other: float = 20.0


@dataclass(frozen=True, slots=True)
class Running:
    target: Target
    address: str
    process: subprocess.Popen[bytes]
    log: Path


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # the command name may contain spaces and ')'


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (nginx workers, shim workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = 0
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mib(pids: Sequence[int], field: str) -> float:
    """The sum of `field` (VmRSS, VmHWM) over the processes, in MiB."""
    kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if (match := re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)) is not None:
            kib += int(match.group(1))
    return round(kib / 1024, 1)


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:`port` (one per SO_REUSEPORT worker)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == wanted and line.split()[3] == "0A")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (both nginx and the shim drain and exit); SIGKILL the group if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what we started
        process.wait()


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# --- targets -------------------------------------------------------------------------------------


def fill_template(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    if (left := re.search(r"\{\{\w+\}\}", template)) is not None:
        raise BenchError(f"{TEMPLATE}: no value for {left.group(0)}")
    return template


def start_nginx_proxy(target: Target, origin: str, settings: Settings) -> Running:
    address = f"127.0.0.1:{free_port()}"
    prefix = settings.workdir
    access = f"{prefix}/{target.name}-access.log combined" if settings.access_log else "off"
    values = {"workers": str(target.workers), "prefix": str(prefix), "name": target.name}
    values |= {"access_log": access, "origin": origin, "listen": address}
    config = fill_template(TEMPLATE.read_text(encoding="utf-8"), values)
    cpus = settings.layout.proxy(target.workers)
    process = upstream.start_nginx(prefix, config, target.name, cpus)
    log = prefix / f"{target.name}-error.log"
    try:
        upstream.wait_ready(address, upstream.SMALL_PATH, process)
    except RuntimeError as exc:
        stop(process)
        raise BenchError(f"nginx did not start: {exc}\n{log_tail(log)}") from exc
    return Running(target, address, process, log)


def start_shim(target: Target, origin: str, settings: Settings) -> Running:
    port, admin_port = free_port(), free_port()
    level = "INFO" if settings.access_log else "WARNING"
    config = settings.workdir / f"{target.name}.yaml"
    config.write_text(
        SHIM_CONFIG.format(port=port, origin=origin, admin_port=admin_port, log_level=level)
    )
    log = settings.workdir / f"{target.name}.log"
    command = ["taskset", "-c", settings.layout.proxy(target.workers), sys.executable]
    command += ["-m", "shim", "run", "--config", str(config), "--workers", str(target.workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=out, start_new_session=True
        )
    running = Running(target, f"127.0.0.1:{port}", process, log)
    try:
        upstream.wait_ready(f"127.0.0.1:{admin_port}", "/readyz", process, timeout=20.0)
        _wait_listeners(port, target.workers, process)
    except RuntimeError as exc:
        stop(process)
        raise BenchError(f"the shim did not start: {exc}\n{log_tail(log)}") from exc
    return running


def _wait_listeners(port: int, count: int, process: subprocess.Popen[bytes]) -> None:
    """Every worker has bound the port, so SO_REUSEPORT spreads the load from the start."""
    deadline = time.monotonic() + 20.0
    while listeners(port) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"only {listeners(port)} of {count} workers listen on {port}")
        time.sleep(0.05)


def start_target(target: Target, origin: upstream.Origin, settings: Settings) -> Running:
    if target.kind == "origin":
        return Running(
            target, origin.address, origin.process, settings.workdir / "origin-error.log"
        )
    if target.kind == "nginx":
        return start_nginx_proxy(target, origin.address, settings)
    return start_shim(target, origin.address, settings)


# --- measuring -----------------------------------------------------------------------------------


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


def run_wrk(url: str, seconds: int, settings: Settings) -> dict[str, float]:
    script = settings.workdir / "report.lua"
    if not script.exists():
        script.write_text(WRK_REPORT_LUA)
    command = ["taskset", "-c", settings.layout.wrk, "wrk", "-t1", f"-c{settings.connections}"]
    command += [f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            report: dict[str, float] = json.loads(line.removeprefix("BENCHJSON "))
            return report
    raise BenchError(f"wrk gave no report for {url} (exit {done.returncode}): {done.stderr}")


@dataclass(frozen=True, slots=True)
class CpuClock:
    """CPU seconds used so far: by the target, the origin, wrk, and by anything on our CPUs."""

    wall: float
    target: float
    origin: float
    wrk: float
    tasks: float
    softirq: float

    @classmethod
    def read(cls, target: Sequence[int], origin: Sequence[int]) -> CpuClock:
        wrk = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is our only child that exits
        tasks, softirq = busy_seconds()
        return cls(
            time.monotonic(),
            cpu_seconds(target),
            cpu_seconds([pid for pid in origin if pid not in target]),
            wrk.ru_utime + wrk.ru_stime,
            tasks,
            softirq,
        )

    def percent_since(self, start: CpuClock) -> dict[str, float]:
        """Each party's share of one CPU over the interval (100 = one core all the time)."""
        wall = self.wall - start.wall
        used = {
            "target": self.target - start.target,
            "origin": self.origin - start.origin,
            "wrk": self.wrk - start.wrk,
        }
        used["other"] = max(0.0, self.tasks - start.tasks - sum(used.values()))
        used["softirq"] = self.softirq - start.softirq
        return {name: round(100 * seconds / wall, 1) for name, seconds in used.items()}


def busy_seconds() -> tuple[float, float]:
    """Time the CPUs we may use spent (1) running tasks, anyone's, (2) in interrupts.

    From /proc/stat. Interrupt time (mostly the loopback network stack carrying our own traffic)
    is charged to no process, so it is kept apart rather than counted as someone else's work.
    """
    usable = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    tasks = interrupts = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name in usable:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
            tasks += user + nice + system + steal  # guest time is inside user
            interrupts += irq + softirq
    hz = os.sysconf("SC_CLK_TCK")
    return tasks / hz, interrupts / hz


@dataclass(frozen=True, slots=True)
class Latency:
    """wrk's latency distribution, in milliseconds."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One target under one scenario: a row of the table and of results/latest.json."""

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


def background_percent(seconds: float = 1.0) -> float:
    """How busy our CPUs are before anything starts (100 = one core): others' work is noise."""
    start, at = busy_seconds()[0], time.monotonic()
    time.sleep(seconds)
    return round(100 * (busy_seconds()[0] - start) / (time.monotonic() - at), 1)


def measure(
    running: Running,
    scenario: Scenario,
    settings: Settings,
    origin_pids: Sequence[int],
    idle_mib: float,
) -> CaseResult:
    pids = process_tree(running.process.pid)
    start = CpuClock.read(pids, origin_pids)
    wrk = run_wrk(f"http://{running.address}{scenario.path}", settings.duration, settings)
    cpu = CpuClock.read(pids, origin_pids).percent_since(start)
    seconds = wrk["duration_us"] / 1e6
    ms = {k: round(wrk[k] / 1000, 3) for k in ("p50", "p90", "p99", "max", "mean")}
    return CaseResult(
        scenario=scenario.name,
        target=running.target.name,
        path=scenario.path,
        requests=int(wrk["requests"]),
        requests_per_s=round(wrk["requests"] / seconds, 1),
        transfer_mib_per_s=round(wrk["bytes"] / seconds / 2**20, 1),
        latency_ms=Latency(**ms),
        errors={k: int(wrk[k]) for k in ("connect", "read", "write", "timeout", "status")},
        cpu_percent=cpu["target"],
        requests_per_cpu_s=_per_cpu_second(wrk["requests"], seconds, cpu["target"]),
        cpu_percent_others={k: cpu[k] for k in ("origin", "wrk", "other", "softirq")},
        rss_idle_mib=idle_mib,
        rss_mib=memory_mib(pids, "VmRSS"),
        rss_peak_mib=memory_mib(pids, "VmHWM"),
        processes=len(pids),
    )


def _per_cpu_second(requests: float, seconds: float, percent: float) -> float | None:
    return round(requests / seconds / (percent / 100), 1) if percent > 0 else None


def bench_target(
    running: Running, scenarios: Sequence[Scenario], settings: Settings, origin: upstream.Origin
) -> list[CaseResult]:
    idle = memory_mib(process_tree(running.process.pid), "VmRSS")
    origin_pids = process_tree(origin.process.pid)
    if settings.warmup:  # fills connection pools; the discovery cache fills at the check
        run_wrk(f"http://{running.address}{upstream.SMALL_PATH}", settings.warmup, settings)
    rows: list[CaseResult] = []
    for scenario in scenarios:
        expected = upstream.fetch(origin.address, scenario.path).body
        answer = upstream.fetch(running.address, scenario.path)
        try:
            check_answer(running.target.kind, scenario, answer, expected)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{running.log.name}:\n{log_tail(running.log)}") from None
        progress(f"  {running.target.name:9} {scenario.name:10} {settings.duration} s ...")
        rows.append(measure_quietly(running, scenario, settings, origin_pids, idle))
    return rows


def measure_quietly(
    running: Running,
    scenario: Scenario,
    settings: Settings,
    origin_pids: Sequence[int],
    idle_mib: float,
) -> CaseResult:
    """Measure; again while other processes disturbed it (see `Settings.retries`)."""
    attempts: list[CaseResult] = []
    while len(attempts) <= settings.retries:
        attempts.append(measure(running, scenario, settings, origin_pids, idle_mib))
        if running.process.poll() is not None:
            raise BenchError(
                f"{running.target.name} exited ({running.process.returncode}) during "
                f"{scenario.name}:\n{log_tail(running.log)}"
            )
        other = attempts[-1].cpu_percent_others["other"]
        if other <= settings.max_other:
            break
        progress(f"    other processes used {other:.0f}% CPU meanwhile")
    best = min(attempts, key=lambda row: row.cpu_percent_others["other"])
    return replace(best, attempts=len(attempts))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- report --------------------------------------------------------------------------------------


def _command_output(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unavailable"
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr else ""


def machine() -> dict[str, object]:
    model = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    return {
        "cpu_model": model.group(1) if model else platform.processor(),
        "cpus": os.cpu_count(),
        "cpus_usable": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": metadata.version("aiohttp"),
        "uvloop": find_spec("uvloop") is not None,
        "nginx": _command_output(["nginx", "-v"]),
        "wrk": _command_output(["wrk", "-v"]),
        "commit": _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }


def _number(value: object, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.{digits}f}"


def markdown_table(rows: Sequence[CaseResult]) -> str:
    """One line per case. `vs nginx`: requests/s over nginx's in that scenario. `CPU %`: the
    target's (100 = one core). `load %`: origin + wrk. `other %`: everything else on the machine.
    """
    nginx = {r.scenario: r.requests_per_s for r in rows if r.target == "nginx"}
    lines = [
        "| scenario | target | req/s | vs nginx | p50 ms | p99 ms | CPU % | req/CPU-s | RSS MiB "
        "| load % | other % | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        base = nginx.get(row.scenario)
        others = row.cpu_percent_others
        cells = [
            row.scenario,
            row.target,
            _number(row.requests_per_s),
            _number(row.requests_per_s / base if base else None, 2),
            _number(row.latency_ms.p50, 2),
            _number(row.latency_ms.p99, 2),
            _number(row.cpu_percent),
            _number(row.requests_per_cpu_s),
            _number(row.rss_mib, 1),
            _number(others["origin"] + others["wrk"]),
            _number(others["other"]),
            str(sum(row.errors.values())),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def seconds_arg(text: str) -> int:
    """`10s` or `10`: whole seconds, as wrk takes them."""
    match = re.fullmatch(r"(\d+)s?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected whole seconds such as 10s, got {text!r}")
    return int(match.group(1))


def names_arg(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(choices)}"
            )
        return names

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=seconds_arg, default=10, help="per case (default 10s)")
    p.add_argument("--warmup", type=seconds_arg, default=None, help="per target (default 1s)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument(
        "--targets",
        type=names_arg(tuple(TARGETS)),
        default=None,
        help=f"comma-separated, from {', '.join(TARGETS)} (default {','.join(DEFAULT_TARGETS)})",
    )
    p.add_argument(
        "--scenarios",
        type=names_arg(tuple(s.name for s in SCENARIOS)),
        default=tuple(s.name for s in SCENARIOS),
        help="comma-separated (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: targets {','.join(QUICK_TARGETS)} unless --targets, no warm-up",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=None,
        help="measure a case again, up to this many times, while other processes use more "
        "than 20%% CPU during it (default 2; 0 with --quick)",
    )
    p.add_argument("--no-access-log", dest="access_log", action="store_false")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON")
    return p


def require_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"{', '.join(missing)} not found; install with: apt-get install -y nginx-light wrk "
            "util-linux (or run `make bench`, which does)"
        )


def run_cases(
    targets: Sequence[Target], scenarios: Sequence[Scenario], settings: Settings
) -> list[CaseResult]:
    """Start the origin, then each target in turn (stopped before the next one starts)."""
    layout = settings.layout
    origin = upstream.start_origin(settings.workdir, free_port(), layout.origin)
    rows: list[CaseResult] = []
    try:
        for target in targets:
            cpus = layout.origin if target.kind == "origin" else layout.proxy(target.workers)
            progress(
                f"{target.name}: {target.workers} worker(s) on CPUs {cpus}, wrk on {layout.wrk}"
            )
            running = start_target(target, origin, settings)
            try:
                rows += bench_target(running, scenarios, settings, origin)
            finally:
                if running.process is not origin.process:
                    stop(running.process)
    finally:
        stop(origin.process)
    return rows


def describe(settings: Settings, scenarios: Sequence[Scenario]) -> dict[str, object]:
    """The settings half of results/latest.json: enough to reproduce and to compare runs."""
    layout = settings.layout
    return {
        "duration_s": settings.duration,
        "warmup_s": settings.warmup,
        "connections": settings.connections,
        "wrk_threads": 1,
        "access_log": settings.access_log,
        "retries": settings.retries,
        "max_other_cpu_percent": settings.max_other,
        "cpus": {
            "proxy_1_worker": layout.proxy_1,
            "proxy_2_workers": layout.proxy_2,
            "origin": layout.origin,
            "wrk": layout.wrk,
        },
        "scenarios": {s.name: {"title": s.title, "path": s.path} for s in scenarios},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = args.targets or (QUICK_TARGETS if args.quick else DEFAULT_TARGETS)
    targets = [TARGETS[name] for name in names]
    scenarios = [s for s in SCENARIOS if s.name in args.scenarios]
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    layout = plan_layout(sorted(os.sched_getaffinity(0)))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        require_tools()
        background = background_percent()
        if background > 20:
            progress(f"warning: {background:.0f}% CPU busy before the run; expect noisy numbers")
        with tempfile.TemporaryDirectory(prefix="shim-bench-") as tmp:
            settings = Settings(
                args.duration,
                warmup,
                args.connections,
                args.access_log,
                layout,
                Path(tmp),
                retries=args.retries if args.retries is not None else (0 if args.quick else 2),
            )
            rows = run_cases(targets, scenarios, settings)
    except (BenchError, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    report = {
        "date": started,
        "machine": machine(),
        "settings": describe(settings, scenarios) | {"background_cpu_percent": background},
        "results": [asdict(row) for row in rows],
    }
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{started}, results in {output}\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
