"""`msc4191-shim doctor`, the values its parts pass along: what was fetched, what was found.

`doctor.probe` fills `Fetched` values; `doctor.diagnose`, `doctor.dialect` and
`doctor.counters` turn them into `Finding`s, worded with the helpers at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Level = Literal["OK", "WARN", "FAIL", "INFO"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: how bad, what was seen, what to do; details go below it."""

    level: Level
    what: str
    todo: str = ""
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP response: its status and, where doctor reads it, its body (capped by the probe)."""

    status: int
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No HTTP response at all, and why: refused, timed out, TLS..."""

    reason: str


Fetched = Answer | NoAnswer


def join_names(names: Iterable[str]) -> str:
    """`a, b, c`, or `none` when there are none."""
    return ", ".join(names) or "none"


def format_counts(counts: Mapping[str, int]) -> str:
    """`key: n, ...`, the largest count first."""
    return ", ".join(f"{key}: {n}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def plural(count: int, noun: str) -> str:
    """`1 deep link`, `2 deep links`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
