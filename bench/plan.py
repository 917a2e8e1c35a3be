"""What a benchmark run measures: the scenarios, the targets, the CPUs and the settings.

Plain frozen values, decided once by bench/run.py before anything starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import upstream

#: the repository: the shim runs from here, and `git` describes it in the results
ROOT = Path(__file__).resolve().parent.parent
#: where a run writes its results: a new dated file each time, not kept in git (.gitignore)
RUNS = ROOT / "bench" / "runs"
#: the reference runs the READMEs quote, by name (bench/README.md lists them); a run becomes one
#: by being copied here under its name
REFERENCES = ROOT / "bench" / "results"
Kind = Literal["origin", "nginx", "shim"]


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

    def target(self, target: Target) -> str:
        """Where `target` runs: the origin is not started again, it stays where it is."""
        return self.origin if target.kind == "origin" else self.proxy(target.workers)


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


def describe(settings: Settings, scenarios: Sequence[Scenario]) -> dict[str, object]:
    """The settings half of the results file: enough to reproduce and to compare runs."""
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
