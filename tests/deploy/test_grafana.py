"""The Grafana dashboard (deploy/grafana/msc4191-shim.json), checked against the live metrics.

Every query must name only series a real `Metrics()` registry exposes (with their `_total`,
`_bucket`, `_count`, `_sum` suffixes) and only labels those series carry (plus the `job` and
`instance` labels Prometheus adds at scrape time); and the JSON must import as is: a datasource
variable every panel and target uses, unique panel ids, a schemaVersion Grafana 10-11 reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from shim.config.parse import parse_config
from shim.obs.metrics import Metrics
from tests.support.paths import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "msc4191-shim.json"
#: the one home of the retirement queries
RETIREMENT = REPO / "docs" / "retirement.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: labels Prometheus attaches to every scraped series (target labels)
SCRAPE_LABELS = frozenset({"job", "instance"})
#: PromQL words that are neither metric names nor labels
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)

IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(rf"({IDENT})?\s*\{{([^}}]*)\}}")
MATCHER = re.compile(rf"\s*({IDENT})\s*(?:=~|!~|!=|=)\s*\"(?:[^\"\\]|\\.)*\"\s*,?")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def exposed_series() -> dict[str, frozenset[str]]:
    """Sample name -> its label names, from a live registry that has seen every kind of event."""
    metrics = Metrics()
    table = parse_config({"upstream": {"url": "http://portal"}}).account_management.table
    metrics.tally.deeplink("session_end", "org.matrix.session_end", "redirect", table, "element-x")
    metrics.tally.discovery("rewritten", "doctor")
    metrics.tally.upstream("deeplink", 0.01)
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in series.items()}


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def exprs(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    variables = dashboard["templating"]["list"]
    found += [v["definition"] for v in variables if v["type"] == "query"]
    return found


def parse_expr(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric name -> labels matched on it, labels used in grouping clauses)."""
    selected: dict[str, set[str]] = {}
    grouping = {g.strip() for m in GROUPING.finditer(expr) for g in m.group(1).split(",")}
    rest = GROUPING.sub(" ", expr)
    for match in SELECTOR.finditer(rest):
        name, matchers = match.group(1), match.group(2)
        labels = {m.group(1) for m in MATCHER.finditer(matchers)}
        assert MATCHER.sub("", matchers).strip() == "", f"unparsed matchers {matchers!r}"
        assert name, f"a selector without a metric name in {expr!r}"
        selected.setdefault(name, set()).update(labels)
    rest = SELECTOR.sub(lambda m: (m.group(1) or "") + " ", rest)
    rest = STRING.sub(" ", re.sub(r"\[[^\]]*\]", " ", rest))
    # label_values(metric, label): the second argument is a label of the first
    if m := re.fullmatch(rf"label_values\(\s*({IDENT})\s*,\s*({IDENT})\s*\)", expr.strip()):
        return {m.group(1): {m.group(2)}}, set()
    for ident in re.finditer(rf"(?<![\w.$:]){IDENT}(?![\w:])(?!\s*\()", rest):
        word = ident.group(0)
        if word.lower() not in KEYWORDS:
            selected.setdefault(word, set())
    return selected, grouping - {""}


def test_every_query_names_only_exported_series_and_their_labels() -> None:
    series = exposed_series()
    queries = exprs(load())
    assert len(queries) >= 15
    for expr in queries:
        selected, grouping = parse_expr(expr)
        assert selected, f"no metric in {expr!r}"
        known_labels: set[str] = set(SCRAPE_LABELS)
        for name, labels in selected.items():
            assert name in series, f"{name} in {expr!r} is not exported; known: {sorted(series)}"
            assert labels <= series[name] | SCRAPE_LABELS, (name, labels - series[name], expr)
            known_labels |= series[name]
        assert grouping <= known_labels, (grouping - known_labels, expr)


def test_the_parser_sees_what_it_must() -> None:
    selected, grouping = parse_expr(
        'histogram_quantile(0.9, sum by (le, kind) (rate(a_bucket{job=~"$j", x!="y,z"}[5m])))'
        " / ignoring(q) b_total"
    )
    assert selected == {"a_bucket": {"job", "x"}, "b_total": set()}
    assert grouping == {"le", "kind", "q"}


def test_the_latency_panel_reads_the_upstream_histogram() -> None:
    quantiles = [e for e in exprs(load()) if e.startswith("histogram_quantile(")]
    assert {e.split(",")[0] for e in quantiles} == {
        "histogram_quantile(0.5",
        "histogram_quantile(0.9",
        "histogram_quantile(0.99",
    }
    assert all("msc4191_shim_upstream_duration_seconds_bucket" in e for e in quantiles)
    assert all("by (le" in e for e in quantiles)


def retirement_queries() -> list[str]:
    """The PromQL blocks of docs/retirement.md, in order."""
    text = RETIREMENT.read_text(encoding="utf-8")
    return re.findall(r"```promql\n(.*?)\n```", text, flags=re.S)


def without_job(expr: str) -> str:
    """A panel's query as docs/retirement.md writes it: no `job`, no stat panel's zero."""
    expr = expr.replace('job=~"$job", ', "").replace('{job=~"$job"}', "")
    return expr.removesuffix(" or vector(0)")


def test_the_retirement_queries_are_panels() -> None:
    blocks = retirement_queries()
    assert len(blocks) == 4
    ours = [without_job(e) for e in exprs(load())]
    for query in blocks:
        assert query in ours, f"docs/retirement.md query missing from the dashboard: {query}"


def test_the_retirement_queries_live_in_one_place() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "```promql" not in readme
    assert "msc4191_shim_" not in readme
    assert "[docs/retirement.md](docs/retirement.md)" in readme


def test_a_datasource_variable_every_panel_and_target_uses() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["datasource"] == DATASOURCE
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_importable_as_is() -> None:
    dashboard = load()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == "msc4191-shim"
    assert "id" not in dashboard  # an id would overwrite whichever dashboard has it
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    assert "${DS_" not in DASHBOARD.read_text(encoding="utf-8")  # no unresolved __inputs


@pytest.mark.parametrize(
    "panel_title",
    [
        "Deep links by incoming name and outcome",
        "Share of legacy names",
        "Discovery documents by outcome",
        "Upstream errors by reason",
        "Upstream latency (to response headers) p50 / p90 / p99",
    ],
)
def test_the_panels_the_migration_needs(panel_title: str) -> None:
    assert panel_title in {p["title"] for p in panels(load())}
