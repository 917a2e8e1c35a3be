"""`msc4191-shim doctor`, the values its parts pass along: what was fetched, what was found.

`doctor.probe` fills `Fetched` values; `doctor.diagnose`, `doctor.dialect` and
`doctor.activity` turn them into `Finding`s, worded with the helpers at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
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


@dataclass(frozen=True, slots=True)
class Hop:
    """One response on the way to a deep link's page: where, what, and where it sent us next."""

    url: str
    status: int
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Followed:
    """A GET whose redirects were followed, a bounded number of them; `error` when it stopped
    without a final answer (no answer at some hop, too many redirects, a Location that is no URL).
    """

    url: str
    hops: tuple[Hop, ...]
    error: str | None = None


def join_names(names: Iterable[str]) -> str:
    """`a, b, c`, or `none` when there are none."""
    return ", ".join(names) or "none"
