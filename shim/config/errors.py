"""Configuration errors: each names its key path, what was got, and what to do instead.

Parsing collects every problem before failing, so an operator fixes a file in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str
    message: str
    #: the environment variable the value came from, when not from the file: an operator who
    #: reads only the file would look for the mistake in the wrong place
    variable: str = ""

    def __str__(self) -> str:
        where = f"{self.path} (set by {self.variable})" if self.variable else self.path
        return f"{where}: {self.message}" if where else self.message


class ConfigError(Exception):
    """Raised once, after parsing, with every problem found."""

    def __init__(self, problems: Sequence[ConfigProblem], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__(format_problems(self.problems, source))


def format_problems(problems: Iterable[ConfigProblem], source: str = "") -> str:
    items = list(problems)
    where = f" in {source}" if source else ""
    if any(problem.variable for problem in items):
        where += " and the environment" if source else " in the environment"
    noun = "problem" if len(items) == 1 else "problems"
    lines = [f"{len(items)} configuration {noun}{where}:"]
    lines.extend(f"  - {problem}" for problem in items)
    return "\n".join(lines)


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the nearest candidate, or nothing when none is near."""
    suggestion = nearest(name, candidates)
    return f"; did you mean {suggestion!r}?" if suggestion else ""


def unknown_key_message(key: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    suggestion = nearest(key, valid)
    hint = f"did you mean '{suggestion}'?" if suggestion else f"valid keys: {', '.join(valid)}"
    return f"unknown key; {hint}"


def join_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key
