"""Reading one configuration mapping: problems are recorded, not raised, and unknown keys flagged.

Every section of the file is read through a `SectionReader`, so a file with ten mistakes gets
ten messages in one run, each with its key path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from shim.config.errors import ConfigProblem, join_path, unknown_key_message

T = TypeVar("T")
_MISSING: Any = object()


class SectionReader:
    """Reads one mapping, recording problems instead of raising, and flags keys never read."""

    def __init__(self, raw: object, path: str, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.error(path, f"expected a mapping, got {type(raw).__name__} {raw!r}")
            raw = {}
        self.raw: Mapping[Any, Any] = raw

    def error(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def get(self, key: str, parse: Callable[[object], T], default: T = _MISSING) -> T:
        self.seen.add(key)
        path = join_path(self.path, key)
        if key not in self.raw or (self.raw[key] is None and default is not _MISSING):
            if default is _MISSING:
                self.error(path, "required key is missing")
                return None  # type: ignore[return-value]  # only ever read after ConfigError
            return default
        try:
            return parse(self.raw[key])
        except ValueError as exc:
            self.error(path, str(exc))
            return default if default is not _MISSING else None  # type: ignore[return-value]

    def section(self, key: str) -> SectionReader:
        self.seen.add(key)
        return SectionReader(self.raw.get(key), join_path(self.path, key), self.problems)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self.seen:
                self.error(join_path(self.path, str(key)), unknown_key_message(str(key), self.seen))
