"""The `--workers`' shared counts (shim/obs/snapshots.py): each worker's file, written whole,
and the sum a scrape reads. Real files in a temporary directory; the workers as real processes
are in test_metrics.py and tests/process/test_workers.py."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from shim.obs.snapshots import (
    COUNTS_SUFFIX,
    LIVE_SUFFIX,
    WORKER_FILE_PREFIX,
    Live,
    Snapshot,
    SnapshotFiles,
    live_files,
    worker_files,
)


def _counts(requests: float, seconds: float) -> Snapshot:
    counts = Snapshot()
    counts.counter("requests")["deeplink", "3xx"] = requests
    counts.histogram("duration")[("deeplink",)] = [seconds, 1.0, 0.0, 0.0]
    return counts


def test_counts_survive_their_file_format() -> None:
    counts = _counts(3, 0.25)
    counts.counter("links")["a", "b"] = 1
    assert Snapshot.from_json(counts.to_json()) == counts


def test_adding_sums_every_series_and_keeps_the_order() -> None:
    mine = _counts(3, 0.25)
    other = _counts(4, 0.5)
    other.counter("requests")["passthrough", "2xx"] = 7
    other.counter("errors")[("refused",)] = 1
    mine.add(other)
    assert mine.counters == {
        "requests": {("deeplink", "3xx"): 7, ("passthrough", "2xx"): 7},
        "errors": {("refused",): 1},
    }
    assert mine.histograms == {"duration": {("deeplink",): [0.75, 2.0, 0.0, 0.0]}}
    assert list(mine.counters["requests"]) == [("deeplink", "3xx"), ("passthrough", "2xx")]


def test_a_histogram_with_other_buckets_is_not_added() -> None:
    """A worker started from another version's code: its buckets cannot be summed with these."""
    mine = _counts(1, 0.25)
    other = Snapshot()
    other.histogram("duration")[("deeplink",)] = [9.0, 1.0, 1.0]
    mine.add(other)
    assert mine.histograms["duration"] == {("deeplink",): [0.25, 1.0, 0.0, 0.0]}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "Expecting value"),
        ("[]", "not a JSON object"),
        ('{"counters": []}', "counters is not an object"),
        ('{"counters": {"requests": [["deeplink", 1, 2]]}}', "not a list of \\[labels, value\\]"),
        ('{"counters": {"requests": [["deeplink", 1]]}}', "labels 'deeplink' are not a list"),
        ('{"counters": {"requests": [[["deeplink"], "1"]]}}', "'1' is not a number"),
        ('{"counters": {"requests": [[[1], 1]]}}', "labels \\[1\\] are not a list of strings"),
        ('{"histograms": {"duration": [[["deeplink"], 1]]}}', "1 is not a list"),
        ('{"histograms": {"duration": [[["deeplink"], [true]]]}}', "True is not a number"),
    ],
)
def test_counts_in_another_format_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Snapshot.from_json(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "Expecting value"),
        ("[]", "not a JSON object"),
        ("{}", "in_flight is None, not a count"),
        ('{"in_flight": "2"}', "in_flight is '2', not a count"),
        ('{"in_flight": true}', "in_flight is True, not a count"),
        ('{"in_flight": 1.5}', "in_flight is 1.5, not a count"),
        ('{"in_flight": 1, "oldest_discovery": "x"}', "'x' is not a number"),
    ],
)
def test_live_gauges_in_another_format_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Live.from_json(text)


def test_live_gauges_together() -> None:
    assert Live(2, None).with_(Live(3, 100.0)) == Live(5, 100.0)
    assert Live(2, 50.0).with_(Live(0, 100.0)) == Live(2, 50.0), "the oldest document counts"
    assert Live(0, None).with_(Live(0, None)) == Live(0, None)
    assert Live.from_json(Live(4, 12.5).to_json()) == Live(4, 12.5)


def test_a_worker_writes_its_two_files_whole(tmp_path: Path) -> None:
    shared = SnapshotFiles(tmp_path)
    shared.write(_counts(1, 0.1), Live(1, None))
    names = sorted(p.name for p in tmp_path.iterdir())
    stem = f"{WORKER_FILE_PREFIX}{os.getpid()}-"
    assert [n.startswith(stem) for n in names] == [True, True]
    assert sorted(n.rpartition(".")[0].rpartition(".")[2] for n in names) == ["counts", "live"]
    assert Snapshot.from_json(shared.counts_path.read_text()) == _counts(1, 0.1)

    inode = shared.counts_path.stat().st_ino
    shared.write(_counts(1, 0.1), Live(2, None))
    assert shared.counts_path.stat().st_ino == inode, "unchanged counts are not written again"
    shared.write(_counts(2, 0.1), Live(2, None))
    assert shared.counts_path.stat().st_ino != inode, "replaced by a rename, never rewritten"
    assert Live.from_json(shared.live_path.read_text()) == Live(2, None)
    assert len(list(tmp_path.iterdir())) == 2, "no partial file left behind"


def test_a_scrape_adds_the_other_workers_and_only_the_live_ones_gauges(tmp_path: Path) -> None:
    first, second, scraper = (SnapshotFiles(tmp_path) for _ in range(3))
    first.write(_counts(3, 0.25), Live(2, 500.0))
    second.write(_counts(4, 0.5), Live(1, 100.0))
    scraper.write(_counts(1000, 1000.0), Live(1000, 1.0))  # its own file is one second old

    counts = _counts(5, 1.0)
    live = scraper.add_others(counts, Live(1, None))
    assert counts.counters["requests"] == {("deeplink", "3xx"): 12}
    assert counts.histograms["duration"] == {("deeplink",): [1.75, 3.0, 0.0, 0.0]}
    assert live == Live(4, 100.0)

    # the second worker died: the supervisor deletes its live file, its counts stay
    second.live_path.unlink()
    counts = _counts(5, 1.0)
    assert scraper.add_others(counts, Live(1, None)) == Live(3, 500.0)
    assert counts.counters["requests"] == {("deeplink", "3xx"): 12}


def test_an_unreadable_file_is_left_out_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = SnapshotFiles(tmp_path)
    good.write(_counts(3, 0.25), Live(1, None))
    (tmp_path / f"{WORKER_FILE_PREFIX}1-x{COUNTS_SUFFIX}").write_text("{not json")
    (tmp_path / f"{WORKER_FILE_PREFIX}1-x{LIVE_SUFFIX}").write_bytes(b"\xff\xfe")
    scraper = SnapshotFiles(tmp_path)
    for _ in range(3):
        counts = _counts(0, 0.0)
        with caplog.at_level(logging.WARNING, "msc4191_shim.metrics"):
            assert scraper.add_others(counts, Live(0, None)) == Live(1, None)
        assert counts.counters["requests"] == {("deeplink", "3xx"): 3}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert all(
        "cannot be read" in w and "left out of this worker's /metrics" in w for w in warnings
    )


def test_a_directory_that_went_away_costs_a_warning_not_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    shared = SnapshotFiles(directory)
    shutil.rmtree(directory)
    with caplog.at_level(logging.WARNING, "msc4191_shim.metrics"):
        shared.write(_counts(1, 0.1), Live(0, None))
        shared.write(_counts(2, 0.1), Live(0, None))
        directory.mkdir()
        shared.write(_counts(3, 0.1), Live(0, None))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert f"cannot write this worker's metrics to {directory}" in warnings[0]
    assert "check that the directory exists and has room" in warnings[0]
    assert warnings[1] == f"this worker's metrics are written to {directory} again"
    assert Snapshot.from_json(shared.counts_path.read_text()) == _counts(3, 0.1)


def test_the_supervisor_finds_a_workers_files_by_its_pid(tmp_path: Path) -> None:
    for name in (
        f"{WORKER_FILE_PREFIX}12-aa{LIVE_SUFFIX}",
        f"{WORKER_FILE_PREFIX}12-aa{COUNTS_SUFFIX}",
        f"{WORKER_FILE_PREFIX}123-bb{LIVE_SUFFIX}",
        f"{WORKER_FILE_PREFIX}12-cc{COUNTS_SUFFIX}.partial",
        "12-aa.live.json",  # not the shim's
    ):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in live_files(tmp_path, 12)] == [f"{WORKER_FILE_PREFIX}12-aa{LIVE_SUFFIX}"]
    assert len(worker_files(tmp_path)) == 4
