"""Benchmark the shim against nginx in the same run: `make bench` (`.venv/bin/python bench/run.py`).

One nginx origin (bench/upstream.py) serves every path. In front of it, one at a time: nginx as a
reverse proxy (bench/nginx.conf.template), the shim with 1 worker and the shim with 2 workers.
wrk asks the origin directly and each proxy for the same scenarios; each case reports requests/s,
latency percentiles, the CPU the target used, and its resident memory. Everything listens on
127.0.0.1 only. Results go to a new dated file in bench/runs/ (not kept in git; a run the READMEs
quote is copied to bench/results/ under a name) and a markdown table to stdout; the method and the
CPU pinning are described in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import procs
import upstream
from measure import CaseResult, bench_target, progress
from plan import (
    DEFAULT_TARGETS,
    QUICK_TARGETS,
    RUNS,
    SCENARIOS,
    TARGETS,
    Scenario,
    Settings,
    Target,
    describe,
    plan_layout,
)
from procs import BenchError
from report import markdown_table, median_rows, write_results
from targets import start_target
from usage import background_percent


def dated_output() -> Path:
    """A new file per run (runs/YYYY-MM-DDTHHMMSSZ.json): a run never overwrites another."""
    return RUNS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.json"


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
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every case this many times, the targets taking turns, and report each "
        "case's median round by CPU a request (default 1)",
    )
    p.add_argument("--no-access-log", dest="access_log", action="store_false")
    p.add_argument(
        "--output", type=Path, default=None, help="results JSON (default: a new dated file)"
    )
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
    origin = upstream.start_origin(settings.workdir, procs.free_port(), layout.origin)
    rows: list[CaseResult] = []
    try:
        for target in targets:
            cpus = layout.target(target)
            progress(
                f"{target.name}: {target.workers} worker(s) on CPUs {cpus}, wrk on {layout.wrk}"
            )
            running = start_target(target, origin, settings)
            try:
                rows += bench_target(running, scenarios, settings, origin)
            finally:
                if running.server is not origin:
                    procs.stop(running.server.process)
    finally:
        procs.stop(origin.process)
    return rows


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
            rounds = []
            for number in range(1, args.rounds + 1):
                if args.rounds > 1:
                    progress(f"round {number} of {args.rounds}")
                rounds.append(run_cases(targets, scenarios, settings))
            rows = median_rows(rounds)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    output: Path = args.output or dated_output()
    described = describe(settings, scenarios) | {
        "background_cpu_percent": background,
        "rounds": args.rounds,
    }
    write_results(output, started, described, rows, rounds)
    print(f"{started}, results in {output}\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
