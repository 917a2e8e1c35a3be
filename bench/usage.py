"""What the processes used, read from /proc: CPU time per party, busy time of our CPUs, memory.

CPU is counted for the target's whole process tree (nginx's master and workers, the shim's
supervisor and workers), for the origin, for wrk (our only child that exits) and for whatever
else ran on the CPUs we may use; see bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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


def background_percent(seconds: float = 1.0) -> float:
    """How busy our CPUs are before anything starts (100 = one core): others' work is noise."""
    start, at = busy_seconds()[0], time.monotonic()
    time.sleep(seconds)
    return round(100 * (busy_seconds()[0] - start) / (time.monotonic() - at), 1)


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
