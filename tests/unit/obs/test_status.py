"""The status page's facts: counts as /metrics serves them, the doctor's verdict, no secrets."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest
from yarl import URL

from shim.config.model import Config
from shim.config.parse import parse_config
from shim.doctor.diagnose import DoctorInputs, diagnose
from shim.doctor.values import Answer
from shim.obs import MULTIPROC_ENV
from shim.obs.counters import parse_counters
from shim.obs.metrics import Metrics
from shim.obs.status import NameCount, display_url, read_counts, status_snapshot
from shim.server.workers import prepare_multiprocess_dir
from shim.vocabulary import STABLE_ACTIONS

BASE = "https://auth.example.com/"
STABLE_DOC = {
    "issuer": BASE,
    "account_management_uri": f"{BASE}account/",
    "account_management_actions_supported": list(STABLE_ACTIONS),
}


def config(dialect: str = "mas-0.9", **extra: object) -> Config:
    raw = {"upstream": {"url": BASE}, "account_management": {"dialect": dialect}, **extra}
    return parse_config(raw)


def seen(metrics: Metrics, table_config: Config) -> Metrics:
    """3 legacy, 2 stable deep links, one discovery document, one upstream error."""
    table = table_config.account_management.table
    for _ in range(3):
        metrics.tally.deeplink("session_end", "org.matrix.session_end", "redirect", table)
    metrics.tally.deeplink("org.matrix.device_delete", "org.matrix.session_end", "redirect", table)
    metrics.tally.deeplink("org.matrix.profile", "org.matrix.profile", "passthrough", table)
    metrics.tally.discovery("rewritten")
    metrics.observe_upstream_error("refused")
    return metrics


def test_counts_are_those_a_scrape_of_metrics_reads() -> None:
    metrics = seen(Metrics(version="1.2.3"), config())
    live = read_counts(metrics)
    assert live is not None
    assert live == parse_counters(metrics.render()[0].decode())
    assert live.version == "1.2.3"
    assert dict(live.discovery) == {"rewritten": 1}
    assert dict(live.upstream_errors) == {"refused": 1}


def test_deep_links_grouped_by_incoming_name_most_first() -> None:
    snapshot = status_snapshot(
        config(), read_counts(seen(Metrics(), config())), STABLE_DOC, "", started_at=0.0,
        all_workers=False, now=90.0,
    )  # fmt: skip
    other = (("other", 1),)
    assert snapshot.deeplinks == (
        NameCount(
            "session_end",
            "legacy",
            3,
            (("org.matrix.session_end", "redirect", 3),),
            (("other", 3),),
        ),
        NameCount(
            "org.matrix.device_delete",
            "stable",
            1,
            (("org.matrix.session_end", "redirect", 1),),
            other,
        ),
        NameCount(
            "org.matrix.profile", "stable", 1, (("org.matrix.profile", "passthrough", 1),), other
        ),
    )
    assert snapshot.uptime_seconds == 90.0
    assert dict(snapshot.fronts)["dialect"] == "mas-0.9"


def test_the_shims_own_traffic_is_not_among_the_clients_names() -> None:
    cfg = config()
    metrics = seen(Metrics(), cfg)
    table = cfg.account_management.table
    metrics.tally.deeplink("org.matrix.session_end", None, "followup", table, "element-web")
    metrics.tally.deeplink("org.matrix.device_view", "org.matrix.session_view", "redirect",
                           table, "doctor")  # fmt: skip
    metrics.tally.deeplink("org.matrix.plan_management", None, "passthrough", table, "element-x")
    snapshot = status_snapshot(
        cfg, read_counts(metrics), STABLE_DOC, "", started_at=0.0, all_workers=False
    )
    names = {n.incoming: (n.kind, n.count, n.clients) for n in snapshot.deeplinks}
    assert "org.matrix.session_end" not in names
    assert "org.matrix.device_view" not in names
    assert names["unknown"] == ("unknown", 1, (("element-x", 1),))
    assert any("1 follow-up of its own redirects and 1 request from" in n for n in snapshot.notes)


@pytest.mark.parametrize(
    ("dialect", "doc", "events"),
    [
        ("mas-0.9", STABLE_DOC, True),
        ("stable", STABLE_DOC, True),
        ("stable", STABLE_DOC, False),
        ("stable", {"issuer": BASE}, False),
        ("stable", None, False),
    ],
)
def test_the_verdict_is_doctors(dialect: str, doc: dict[str, object] | None, events: bool) -> None:
    metrics = seen(Metrics(), config(dialect)) if events else Metrics()
    snapshot = status_snapshot(
        config(dialect), read_counts(metrics), doc, "", started_at=0.0, all_workers=False
    )
    portal = Answer(200, json.dumps(doc).encode()) if doc else Answer(503)
    findings = diagnose(
        DoctorInputs(config(dialect), Answer(404), portal, Answer(200, metrics.render()[0]), "x")
    )
    assert snapshot.reasons == findings[-1].details
    ready = findings[-1].what == "nothing here needs the shim any more"
    assert (
        (not snapshot.reasons)
        == ready
        == (dialect == "stable" and not events and doc == STABLE_DOC)
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://portal.internal:8443/base/", "https://portal.internal:8443/base/"),
        ("https://user:s3cret@portal/x?token=abc#frag", "https://[redacted]@portal/x"),
        ("http://onlyuser@portal/", "http://[redacted]@portal/"),
    ],
)
def test_urls_lose_credentials_query_and_fragment(url: str, shown: str) -> None:
    assert display_url(URL(url)) == shown


def test_configuration_shown_without_queries() -> None:
    # credentials in upstream.url are refused by the configuration itself; display_url (above)
    # would redact them anyway
    cfg = config(
        upstream={"url": "https://portal.internal/"},
        public_url="https://account.example.com",
        account_management={"unsupported": {"redirect": "https://help.example.com/x?t=1"}},
        discovery={"account_management_uri": "https://account.example.com/account/?s=1"},
    )
    snapshot = status_snapshot(cfg, None, None, "", started_at=0.0, all_workers=False)
    shown = repr((snapshot.fronts, snapshot.choices))
    for secret in ("t=1", "s=1", "?"):
        assert secret not in shown
    assert dict(snapshot.fronts)["public origin"] == "https://account.example.com"
    assert dict(snapshot.choices)["account_management.unsupported"] == (
        "redirect to https://help.example.com/x"
    )


# -- several workers: the page reads the merged counts ---------------------------------------


def _worker() -> None:
    seen(Metrics(version="9.9.9"), config())


def _read(out: str) -> None:
    counts = read_counts(Metrics(version="9.9.9"))
    assert counts is not None
    links = {f"{d.incoming}/{d.outcome}": d.count for d in counts.deeplinks}
    Path(out).write_text(json.dumps([links, dict(counts.discovery)]))


def _run(target: Callable[..., None], *args: object) -> None:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0


def test_counts_are_summed_over_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    prepare_multiprocess_dir(directory)
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    _run(_worker)
    _run(_worker)
    _run(_read, str(tmp_path / "read.json"))
    links, discovery = json.loads((tmp_path / "read.json").read_text())
    assert links["session_end/redirect"] == 6
    assert links["org.matrix.profile/passthrough"] == 2
    assert discovery == {"rewritten": 2}
