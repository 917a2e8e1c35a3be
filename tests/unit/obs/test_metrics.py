from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from shim.config.model import UpstreamConfig
from shim.core.deeplink import DeeplinkOutcome
from shim.obs import MULTIPROC_ENV
from shim.obs.labels import (
    CLIENT_FAMILIES,
    DEEPLINK_OUTCOMES,
    DISCOVERY_OUTCOMES,
    REQUEST_KINDS,
    name_kind,
)
from shim.obs.metrics import Metrics
from shim.obs.snapshots import COUNTS_SUFFIX, LIVE_SUFFIX, WORKER_FILE_PREFIX, Snapshot
from shim.server.workers import forget_live_gauges, prepare_multiprocess_dir
from shim.vocabulary import (
    ACCOUNT_DEACTIVATE,
    BUILTIN_DIALECTS,
    ActionTable,
    build_action_table,
)
from tests.support.paths import DATA

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PREFIX = "msc4191_shim_"


def _table() -> ActionTable:
    return build_action_table(
        BUILTIN_DIALECTS["mas-0.9"], {"org.matrix.deactivate_account": ACCOUNT_DEACTIVATE}
    )


def _samples(body: bytes) -> Samples:
    """Parse the exposition back, keeping only the shim's own samples."""
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples[PREFIX + name, tuple(sorted(labels.items()))]


def _series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == PREFIX + name]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="1.2.3")


# -- rendering ------------------------------------------------------------------------------


def _shim_lines(body: bytes) -> list[str]:
    """The exposition's lines about the shim's own metrics (not `process_*`, `python_*`)."""
    return [line for line in body.decode().splitlines() if "msc4191_shim_" in line]


def test_the_exposition_is_what_dashboards_and_alerts_read() -> None:
    """Every name, type, HELP text, label set, bucket bound and order, as the shim served them
    through prometheus-client's own metric objects (tests/data/metrics/exposition.txt)."""
    metrics = Metrics(version="1.2.3")
    table = build_action_table(BUILTIN_DIALECTS["mas-0.9"], {})
    metrics.tally.deeplink("org.matrix.device_view", "org.matrix.session_view", "redirect", table)
    metrics.tally.finish("deeplink", 302, 0.0002, False)
    metrics.tally.upstream("passthrough", 0.01)
    metrics.observe_upstream_error("refused")
    metrics.observe_limit_hit("head_timeout")
    metrics.observe_reload(True)
    metrics.tally.discovery("cached", "element-x")
    expected = (DATA / "metrics" / "exposition.txt").read_text().splitlines()
    assert _shim_lines(metrics.render()[0]) == expected


def test_render_reports_every_observation(metrics: Metrics) -> None:
    table = _table()
    metrics.tally.request("deeplink", 302)
    metrics.tally.request("deeplink", 302)
    metrics.tally.request("passthrough", None)
    metrics.tally.upstream("passthrough", 0.003)
    metrics.tally.upstream("passthrough", 12.0)
    metrics.tally.deeplink("org.matrix.device_view", "org.matrix.session_view", "redirect", table)
    metrics.tally.deeplink("org.matrix.account_deactivate", None, "strip", table, "element-x")
    metrics.tally.deeplink("org.matrix.session_view", None, "followup", table, "element-web")
    metrics.tally.discovery("rewritten")
    metrics.tally.discovery("cached", "doctor")
    metrics.observe_upstream_error("refused")
    metrics.observe_reload(True)
    metrics.observe_reload(False)
    metrics.observe_reload(False)

    samples = _samples(metrics.render()[0])

    assert _get(samples, "requests_total", kind="deeplink", status_class="3xx") == 2
    assert _get(samples, "requests_total", kind="passthrough", status_class="aborted") == 1
    assert _get(samples, "upstream_duration_seconds_count", kind="passthrough") == 2
    assert _get(samples, "upstream_duration_seconds_sum", kind="passthrough") == 12.003
    assert _get(samples, "upstream_duration_seconds_bucket", kind="passthrough", le="0.005") == 1
    assert _get(samples, "upstream_duration_seconds_bucket", kind="passthrough", le="10.0") == 1
    assert _get(samples, "upstream_duration_seconds_bucket", kind="passthrough", le="30.0") == 2
    redirect = {
        "incoming": "org.matrix.device_view",
        "incoming_kind": "stable",
        "sent": "org.matrix.session_view",
        "outcome": "redirect",
        "client": "other",
    }
    assert _get(samples, "deeplink_translations_total", **redirect) == 1
    strip = {
        "incoming": "org.matrix.account_deactivate",
        "incoming_kind": "stable",
        "sent": "none",
        "outcome": "strip",
        "client": "element-x",
    }
    assert _get(samples, "deeplink_translations_total", **strip) == 1
    followup = {
        "incoming": "org.matrix.session_view",
        "incoming_kind": "legacy",
        "sent": "none",
        "outcome": "followup",
        "client": "element-web",
    }
    assert _get(samples, "deeplink_translations_total", **followup) == 1
    assert _get(samples, "discovery_documents_total", outcome="rewritten", client="other") == 1
    assert _get(samples, "discovery_documents_total", outcome="cached", client="doctor") == 1
    assert _get(samples, "upstream_errors_total", reason="refused") == 1
    assert _get(samples, "config_reloads_total", result="ok") == 1
    assert _get(samples, "config_reloads_total", result="error") == 2
    assert _get(samples, "build_info", version="1.2.3") == 1


def test_fixed_series_exist_at_zero(metrics: Metrics) -> None:
    samples = _samples(metrics.render()[0])
    for kind in REQUEST_KINDS:
        for cls in ("1xx", "2xx", "3xx", "4xx", "5xx", "aborted"):
            assert _get(samples, "requests_total", kind=kind, status_class=cls) == 0
        assert _get(samples, "upstream_duration_seconds_count", kind=kind) == 0
    for outcome in DISCOVERY_OUTCOMES:
        assert _get(samples, "discovery_documents_total", outcome=outcome, client="other") == 0
    # other families' series appear as they are seen
    assert {s["client"] for s in _series(samples, "discovery_documents_total")} == {"other"}
    assert _get(samples, "config_reloads_total", result="ok") == 0
    assert _series(samples, "deeplink_translations_total") == []


def _bounds(samples: Samples, name: str) -> list[float]:
    return sorted(
        float(labels["le"]) for labels in _series(samples, name) if labels["kind"] == "passthrough"
    )


def test_bucket_bounds_cover_a_sidecar_and_reach_past_the_read_timeout(metrics: Metrics) -> None:
    samples = _samples(metrics.render()[0])
    read_timeout = UpstreamConfig(URL("http://portal")).read_timeout  # the default
    upstream = _bounds(samples, "upstream_duration_seconds_bucket")
    assert upstream[0] == 0.001
    assert upstream[-1] == float("inf")
    assert upstream[-2] > read_timeout, "a request cut by the timeout needs a bucket of its own"
    assert read_timeout in upstream, "and answers just inside it one apart from it"
    request = _bounds(samples, "request_duration_seconds_bucket")
    assert request[0] == 0.0001, "a redirect takes a tenth of a millisecond"
    assert set(upstream) <= set(request)


def test_a_scrape_reads_the_counts_as_they_are_now(metrics: Metrics) -> None:
    """No flush between counting and scraping: the registry reads the tally itself."""

    def read() -> float:
        samples = _samples(metrics.render()[0])
        return _get(samples, "requests_total", kind="discovery", status_class="2xx")

    assert read() == 0
    metrics.tally.request("discovery", 200)
    assert read() == 1
    metrics.tally.request("discovery", 204)
    assert read() == 2


def test_no_created_series(metrics: Metrics) -> None:
    metrics.tally.finish("deeplink", 302, 0.0002, False)
    metrics.tally.upstream("passthrough", 0.01)
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        body = metrics.render(accept)[0].decode()
        assert "_created" not in body, body


def test_request_duration_is_observed_for_every_kind(metrics: Metrics) -> None:
    metrics.tally.finish("deeplink", 302, 0.00015, False)
    metrics.tally.finish("discovery", 200, 0.0004, False)
    metrics.tally.finish("passthrough", 502, 61.0, False)
    metrics.tally.finish("passthrough", None, 0.02, False)
    samples = _samples(metrics.render()[0])
    duration = "request_duration_seconds_bucket"
    assert _get(samples, duration, kind="deeplink", le="0.0001") == 0
    assert _get(samples, duration, kind="deeplink", le="0.00025") == 1
    assert _get(samples, duration, kind="discovery", le="0.0005") == 1
    assert _get(samples, duration, kind="passthrough", le="60.0") == 1
    assert _get(samples, duration, kind="passthrough", le="120.0") == 2
    assert _get(samples, "request_duration_seconds_count", kind="passthrough") == 2
    assert _get(samples, "request_duration_seconds_sum", kind="passthrough") == 61.02
    assert _get(samples, "requests_total", kind="passthrough", status_class="5xx") == 1
    assert _get(samples, "requests_total", kind="passthrough", status_class="aborted") == 1
    for kind in REQUEST_KINDS:
        assert _get(samples, "request_duration_seconds_count", kind=kind) >= 0


def test_in_flight_counts_begun_requests_until_they_finish(metrics: Metrics) -> None:
    def in_flight() -> float:
        return _get(_samples(metrics.render()[0]), "requests_in_flight")

    assert in_flight() == 0
    metrics.tally.begin()
    metrics.tally.begin()
    assert in_flight() == 2
    metrics.tally.finish("passthrough", 200, 0.01, True)
    assert in_flight() == 1
    # an answer to a request never begun (a head refused before it was complete) changes nothing
    metrics.tally.finish("passthrough", 400, 0.0, False)
    assert in_flight() == 1
    metrics.tally.finish("passthrough", 200, 0.01, True)
    assert in_flight() == 0


def test_discovery_cache_age_is_the_oldest_document(metrics: Metrics) -> None:
    def age() -> float:
        return _get(_samples(metrics.render()[0]), "discovery_cache_age_seconds")

    assert age() == 0, "no cache watched yet"
    stored: list[float] = []
    metrics.watch_discovery_cache(lambda: min(stored, default=None))
    assert age() == 0, "nothing cached"
    stored += [time.time() - 90, time.time() - 5]
    assert 90 <= age() < 95
    stored.clear()
    assert age() == 0


def test_deeplink_labels_are_bounded(metrics: Metrics) -> None:
    table = _table()
    for i in range(500):
        metrics.tally.deeplink(f"made-up-{i}", f"made-up-{i}", "passthrough", table)
        metrics.tally.deeplink(None, None, "passthrough", table)
    series = _series(_samples(metrics.render()[0]), "deeplink_translations_total")
    assert sorted(s["incoming"] for s in series) == ["none", "unknown"]
    assert sorted(s["sent"] for s in series) == ["none", "unknown"]
    assert sorted(s["incoming_kind"] for s in series) == ["none", "unknown"]


def test_every_deeplink_series_is_within_the_table(metrics: Metrics) -> None:
    table = _table()
    names = [*table.to_stable_names, None, "junk"]
    for incoming in names:
        for sent in names:
            for outcome in get_args(DeeplinkOutcome):
                for client in sorted(CLIENT_FAMILIES):
                    metrics.tally.deeplink(incoming, sent, outcome, table, client)  # type: ignore[arg-type]
    series = _series(_samples(metrics.render()[0]), "deeplink_translations_total")
    allowed = {*table.to_stable_names, "none", "unknown"}
    assert {s["incoming"] for s in series} == allowed
    assert {s["sent"] for s in series} <= allowed
    assert {s["client"] for s in series} == CLIENT_FAMILIES
    # the kind is the incoming name's, so it multiplies nothing
    assert len(series) == len(allowed) ** 2 * len(DEEPLINK_OUTCOMES) * len(CLIENT_FAMILIES)
    assert {(s["incoming"], s["incoming_kind"]) for s in series} == {
        (name, name_kind(name, table) if name not in ("none", "unknown") else name)
        for name in allowed
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.tally.request("websockets", 200),
        lambda m: m.tally.upstream("other", 0.1),
        lambda m: m.tally.deeplink(None, None, "redirect_unsupported", _table()),
        lambda m: m.tally.deeplink(None, None, "passthrough", _table(), "firefox"),
        lambda m: m.tally.discovery("passthrough"),
        lambda m: m.tally.discovery("cached", "synapse"),
        lambda m: m.observe_upstream_error("timeout"),
    ],
)
def test_unknown_label_values_are_refused(
    metrics: Metrics, call: Callable[[Metrics], None]
) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        call(metrics)


def test_instances_do_not_share_a_registry() -> None:
    first, second = Metrics(), Metrics()
    first.tally.discovery("stale")
    stale = {"outcome": "stale", "client": "other"}
    assert _get(_samples(first.render()[0]), "discovery_documents_total", **stale) == 1
    assert _get(_samples(second.render()[0]), "discovery_documents_total", **stale) == 0


def test_single_process_exports_process_metrics(metrics: Metrics) -> None:
    body = metrics.render()[0].decode()
    assert "\nprocess_resident_memory_bytes " in body
    assert "\npython_info{" in body


def test_content_negotiation(metrics: Metrics) -> None:
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE msc4191_shim_requests_total counter" in body

    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE msc4191_shim_requests counter" in body


# -- several workers: each one's counts in a file of its own, summed by a scrape ------------


def test_prepare_multiprocess_dir_empties_only_the_workers_files(tmp_path: Path) -> None:
    ours = (
        f"{WORKER_FILE_PREFIX}123-ab{COUNTS_SUFFIX}",
        f"{WORKER_FILE_PREFIX}9-cd{LIVE_SUFFIX}",
        f"{WORKER_FILE_PREFIX}9-cd{COUNTS_SUFFIX}.partial",
    )
    for name in (*ours, "counter_123.db", "keep.txt"):
        (tmp_path / name).write_text("{}")
    prepare_multiprocess_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_123.db", "keep.txt"]

    prepare_multiprocess_dir(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir()


def test_prepare_multiprocess_dir_names_the_problem(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(OSError, match=f"{MULTIPROC_ENV}=.*file.*cannot be prepared"):
        prepare_multiprocess_dir(not_a_dir)


def test_the_variable_is_read_when_the_metrics_are_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not when prometheus-client is imported (this test process imported it without the
    variable): the shim's files are its own."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    first, second = Metrics(), Metrics()
    first.tally.request("deeplink", 302)
    assert list(tmp_path.iterdir()) == [], "written once a second (`flush`), not per request"
    first.flush()
    assert len(list(tmp_path.glob(f"{WORKER_FILE_PREFIX}{os.getpid()}-*{COUNTS_SUFFIX}"))) == 1
    body = second.render()[0]
    assert _get(_samples(body), "requests_total", kind="deeplink", status_class="3xx") == 1
    assert b"process_resident_memory_bytes" not in body, "one worker's of several"


def test_another_versions_series_are_left_out_not_the_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started from other code (an upgrade under a running supervisor) may write
    series of another shape: the scrape leaves those out and serves the rest."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    other = Snapshot()
    other.counter("msc4191_shim_requests")["deeplink", "3xx"] = 2
    other.counter("msc4191_shim_requests")["deeplink", "3xx", "extra"] = 5
    other.histogram("msc4191_shim_upstream_duration_seconds")["grpc",] = [1.0, 1.0]
    other.histogram("msc4191_shim_upstream_duration_seconds")["deeplink",] = [1.0, 1.0]
    (tmp_path / f"{WORKER_FILE_PREFIX}1-ab{COUNTS_SUFFIX}").write_text(other.to_json())
    samples = _samples(Metrics().render()[0])
    assert _get(samples, "requests_total", kind="deeplink", status_class="3xx") == 2
    assert _get(samples, "upstream_duration_seconds_count", kind="deeplink") == 0
    assert {s["kind"] for s in _series(samples, "upstream_duration_seconds_count")} == set(
        REQUEST_KINDS
    )


def _worker(status: int, requests: int) -> None:
    """A worker process: the variable was inherited, so its counts go to the shared files (at
    exit, as a worker's last counts do; a running one writes them once a second)."""
    metrics = Metrics(version="9.9.9")
    for _ in range(requests):
        metrics.tally.request("deeplink", status)
    metrics.tally.upstream("deeplink", 0.002)
    metrics.tally.deeplink("session_end", "org.matrix.session_end", "redirect", _table())
    metrics.tally.discovery("cached")
    metrics.tally.begin()  # still in flight when it exits
    metrics.watch_discovery_cache(lambda: time.time() - 60 * status)


def _scrape(out: str) -> None:
    """Another worker answering `/metrics`: it must see every worker's counts."""
    body, _content_type = Metrics(version="9.9.9").render()
    Path(out).write_bytes(body)


def _run(target: Callable[..., None], *args: object) -> int:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert process.pid is not None
    return process.pid


def test_multiprocess_workers_are_summed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / f"{WORKER_FILE_PREFIX}1-ab{COUNTS_SUFFIX}").write_text("left from an earlier run")
    prepare_multiprocess_dir(directory)
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))

    first = _run(_worker, 302, 3)
    _run(_worker, 200, 4)
    _run(_scrape, str(tmp_path / "scrape.txt"))

    assert len(list(directory.glob(f"*{COUNTS_SUFFIX}"))) == 3  # one per process
    body = (tmp_path / "scrape.txt").read_bytes()
    samples = _samples(body)
    assert _get(samples, "requests_total", kind="deeplink", status_class="3xx") == 3
    assert _get(samples, "requests_total", kind="deeplink", status_class="2xx") == 4
    assert _get(samples, "requests_total", kind="passthrough", status_class="2xx") == 0
    assert _get(samples, "upstream_duration_seconds_count", kind="deeplink") == 2
    assert _get(samples, "upstream_duration_seconds_bucket", kind="deeplink", le="0.0025") == 2
    link = {
        "incoming": "session_end",
        "incoming_kind": "legacy",
        "sent": "org.matrix.session_end",
        "outcome": "redirect",
        "client": "other",
    }
    assert _get(samples, "deeplink_translations_total", **link) == 2
    assert _get(samples, "discovery_documents_total", outcome="cached", client="other") == 2
    assert _get(samples, "build_info", version="9.9.9") == 1
    assert _get(samples, "requests_in_flight") == 2
    assert 60 * 302 <= _get(samples, "discovery_cache_age_seconds") < 60 * 302 + 30
    assert b"process_resident_memory_bytes" not in body
    # the same HELP and TYPE lines as one process's (prometheus-client's multiprocess mode
    # wrote "Multiprocess metric" for every HELP)
    expected = (DATA / "metrics" / "exposition.txt").read_text().splitlines()
    assert [x for x in _shim_lines(body) if x.startswith("#")] == [
        x for x in expected if x.startswith("#")
    ]

    # the first worker died: its gauges no longer count, its counts do
    forget_live_gauges(str(directory), first)
    _run(_scrape, str(tmp_path / "scrape.txt"))
    samples = _samples((tmp_path / "scrape.txt").read_bytes())
    assert _get(samples, "requests_in_flight") == 1
    assert 60 * 200 <= _get(samples, "discovery_cache_age_seconds") < 60 * 200 + 30
    assert _get(samples, "requests_total", kind="deeplink", status_class="3xx") == 3
