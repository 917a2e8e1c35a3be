"""Snapshots of the counts by label values, and the files the `--workers` share them through.

A `Snapshot` is what `obs/metrics.py` serves: one process's counts (or several processes' added
up) by metric name and label values. With `--workers`, each worker writes two small JSON files
of its own to the shared directory (`PROMETHEUS_MULTIPROC_DIR`): its counts (counters and
histograms, since it started) and its live gauges (requests in flight, when its oldest cached
discovery document was stored). Each is replaced whole (written beside, then renamed), so a
reader sees one complete version or the other, never half of one. A scrape adds every other
worker's files to its own counts:

- a dead worker's counts stay (its file is never deleted while the shim runs), so counters never
  go backwards when a worker is restarted;
- a dead worker's live file is deleted by the supervisor (`server/workers.py`), so the gauges
  count the live workers only.

The same design as prometheus-client's multiprocess mode (one file per process, merged when
read), in a format of the shim's own: the tally's counts are written as they are, with no call
into prometheus-client per request or per flush. Pure apart from the files; no
prometheus-client, so the supervisor can import the names.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

logger: Final = logging.getLogger("msc4191_shim.metrics")

#: a worker's files: `<prefix><pid>-<token><suffix>`; the token tells apart two processes that
#: had the same pid (a restarted worker), so a new worker never takes over a dead one's counts
WORKER_FILE_PREFIX: Final = "msc4191-shim-worker-"
COUNTS_SUFFIX: Final = ".counts.json"
LIVE_SUFFIX: Final = ".live.json"
#: what a write leaves while it is under way (renamed over the file when complete)
PARTIAL_SUFFIX: Final = ".partial"

#: label values -> value
Series = dict[tuple[str, ...], float]


def worker_files(directory: Path) -> list[Path]:
    """Every file of the shim's workers in `directory` (a start empties it of these only)."""
    return sorted(directory.glob(WORKER_FILE_PREFIX + "*"))


def live_files(directory: Path, pid: int) -> list[Path]:
    """The live-gauge file(s) of the worker whose process id is `pid`."""
    return sorted(directory.glob(f"{WORKER_FILE_PREFIX}{pid}-*{LIVE_SUFFIX}"))


@dataclass
class Snapshot:
    """Counters and histograms by metric name, then by label values (the counts at one moment).

    A histogram's values are [sum, then the count per bucket (not cumulative), +Inf last].
    """

    counters: dict[str, Series] = field(default_factory=dict)
    histograms: dict[str, dict[tuple[str, ...], list[float]]] = field(default_factory=dict)

    def counter(self, name: str) -> Series:
        return self.counters.setdefault(name, {})

    def histogram(self, name: str) -> dict[tuple[str, ...], list[float]]:
        return self.histograms.setdefault(name, {})

    def add(self, other: Snapshot) -> None:
        """Add `other`'s counts to these; series only `other` has are added at the end."""
        for name, series in other.counters.items():
            mine = self.counter(name)
            for labels, value in series.items():
                mine[labels] = mine.get(labels, 0.0) + value
        for name, histograms in other.histograms.items():
            own = self.histogram(name)
            for labels, values in histograms.items():
                current = own.get(labels)
                if current is None:
                    own[labels] = list(values)
                elif len(current) == len(values):
                    own[labels] = [a + b for a, b in zip(current, values, strict=True)]
                # else: another version's buckets (a worker started from newer code): not added

    def to_json(self) -> str:
        return json.dumps(
            {
                "counters": {
                    name: [[list(labels), value] for labels, value in series.items()]
                    for name, series in self.counters.items()
                },
                "histograms": {
                    name: [[list(labels), values] for labels, values in series.items()]
                    for name, series in self.histograms.items()
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Raises ValueError when `text` is not what `to_json` writes."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        counts = cls()
        for name, rows in _section(data, "counters").items():
            counts.counters[name] = {_labels(labels): _number(value) for labels, value in rows}
        for name, rows in _section(data, "histograms").items():
            counts.histograms[name] = {
                _labels(labels): [_number(v) for v in _list(values)] for labels, values in rows
            }
        return counts


@dataclass(frozen=True, slots=True)
class Live:
    """A worker's gauges (or several live workers' together)."""

    in_flight: int
    #: the `time.time()` the oldest cached discovery document was stored; None: none cached
    oldest_discovery: float | None

    def with_(self, other: Live) -> Live:
        """Both together: the requests in flight summed, the oldest document the oldest."""
        stored = [t for t in (self.oldest_discovery, other.oldest_discovery) if t is not None]
        return Live(self.in_flight + other.in_flight, min(stored, default=None))

    def to_json(self) -> str:
        return json.dumps({"in_flight": self.in_flight, "oldest_discovery": self.oldest_discovery})

    @classmethod
    def from_json(cls, text: str) -> Live:
        """Raises ValueError when `text` is not what `to_json` writes."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        in_flight, oldest = data.get("in_flight"), data.get("oldest_discovery")
        if not isinstance(in_flight, int) or isinstance(in_flight, bool):
            raise ValueError(f"in_flight is {in_flight!r}, not a count")
        return cls(in_flight, None if oldest is None else _number(oldest))


class SnapshotFiles:
    """This process's files in the shared `directory`, and the other workers' read back."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        stem = f"{WORKER_FILE_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
        self.counts_path = self.directory / (stem + COUNTS_SUFFIX)
        self.live_path = self.directory / (stem + LIVE_SUFFIX)
        #: what each file holds now: an unchanged file is not written again
        self._written: dict[Path, str] = {}
        self._failing = False
        #: files that could not be read, already reported (one warning each)
        self._unreadable: set[Path] = set()

    def write(self, snapshot: Snapshot, live: Live) -> None:
        """Replace this process's files. Never raises: a full disk costs the other workers this
        one's latest counts (a warning says so), not the process."""
        try:
            self._replace(self.counts_path, snapshot.to_json())
            self._replace(self.live_path, live.to_json())
        except OSError as exc:
            if not self._failing:
                logger.warning(
                    "cannot write this worker's metrics to %s (%s): the other workers' scrapes "
                    "miss its latest counts until it can; check that the directory exists and "
                    "has room",
                    self.directory,
                    exc.strerror or exc,
                )
            self._failing = True
        else:
            if self._failing:
                logger.warning("this worker's metrics are written to %s again", self.directory)
            self._failing = False

    def _replace(self, path: Path, text: str) -> None:
        if self._written.get(path) == text:
            return
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        self._written[path] = text

    def add_others(self, snapshot: Snapshot, live: Live) -> Live:
        """Add every other worker's counts to `snapshot` (the dead ones' too); returns `live`
        with the live workers' gauges added."""
        own = (self.counts_path, self.live_path)
        for path in sorted(self.directory.glob(f"{WORKER_FILE_PREFIX}*{COUNTS_SUFFIX}")):
            if path not in own and (text := self._read(path)) is not None:
                try:
                    snapshot.add(Snapshot.from_json(text))
                except ValueError as exc:
                    self._report(path, exc)
        for path in sorted(self.directory.glob(f"{WORKER_FILE_PREFIX}*{LIVE_SUFFIX}")):
            if path not in own and (text := self._read(path)) is not None:
                try:
                    live = live.with_(Live.from_json(text))
                except ValueError as exc:
                    self._report(path, exc)
        return live

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # a dead worker's live file, deleted since the listing
        except (OSError, UnicodeDecodeError) as exc:
            self._report(path, exc)
            return None

    def _report(self, path: Path, exc: Exception) -> None:
        if path not in self._unreadable:
            self._unreadable.add(path)
            logger.warning(
                "another worker's metrics file %s cannot be read (%s); it is left out of this "
                "worker's /metrics: was something else writing to the directory?",
                path,
                exc,
            )


def _section(data: dict[str, object], key: str) -> dict[str, list[list[object]]]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ValueError(f"{key} is not an object")
    for name, rows in section.items():
        if not isinstance(rows, list) or not all(
            isinstance(row, list) and len(row) == 2 for row in rows
        ):
            raise ValueError(f"{key}.{name} is not a list of [labels, value] pairs")
    return section


def _labels(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"labels {value!r} are not a list of strings")
    return tuple(value)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list")
    return value


def _number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return float(value)
