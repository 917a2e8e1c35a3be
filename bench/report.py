"""What a run leaves behind: the results file (machine, settings, every number) and the table.

The table's columns are explained in bench/README.md.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from measure import CaseResult
from plan import ROOT


def _command_output(command: Sequence[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=10, check=False, cwd=cwd
        )
    except OSError:
        return "unavailable"
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr else ""


def hot_path() -> str:
    """`compiled` when the shim's request path runs as mypyc extensions (scripts/native.py, the
    image), else `python`: the two are measured, and guarded, apart."""
    probe = "import shim.proxy.client as m; print(m.__file__)"
    found = _command_output([sys.executable, "-c", probe], cwd=ROOT)
    return "compiled" if found.endswith(".so") else "python"


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
        "hot_path": hot_path(),
        "nginx": _command_output(["nginx", "-v"]),
        "wrk": _command_output(["wrk", "-v"]),
        "commit": _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }


def median_rows(rounds: Sequence[Sequence[CaseResult]]) -> list[CaseResult]:
    """Each case's median round, by CPU a request (requests per CPU-second), in the first
    round's order: one noisy moment on a shared machine moves one round, not the result."""
    chosen: list[CaseResult] = []
    for first in rounds[0]:
        same = [
            r
            for rows in rounds
            for r in rows
            if (r.scenario, r.target) == (first.scenario, first.target)
        ]
        same.sort(key=lambda r: r.requests_per_cpu_s or 0.0)
        chosen.append(same[(len(same) - 1) // 2])
    return chosen


def write_results(
    output: Path,
    date: str,
    settings: dict[str, object],
    rows: Sequence[CaseResult],
    rounds: Sequence[Sequence[CaseResult]] = (),
) -> None:
    """the results file: when, on what machine, with which settings, and every number
    (`results`: each case's median round, `rounds`: every round, when there were several)."""
    report: dict[str, object] = {
        "date": date,
        "machine": machine(),
        "settings": settings,
        "results": [asdict(row) for row in rows],
    }
    if len(rounds) > 1:
        report["rounds"] = [[asdict(row) for row in rows] for rows in rounds]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


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
