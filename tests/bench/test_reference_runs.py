"""The performance figures the project quotes are the reference runs' numbers, and nothing else.

`bench/results/` keeps a few named reference runs (bench/README.md lists them); the figures in
bench/README.md, the README's short table and the other places that mention what compiling saves
are computed here from those files, so a figure cannot drift from its run, and a run nobody quotes
(or a quoted one that is missing) fails. Reads the files only; runs no benchmark.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any

import pytest

from tests.support.paths import REPO

RESULTS = REPO / "bench" / "results"
BENCH_README = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")
CHANGELOG = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
TIMES = "\u00d7"  # the multiplication sign the docs write
TWO_CPU_LATENCY = ("latency-a", "latency-b", "latency-c", "edges")
#: everywhere that says what compiling saves, in the one wording
COMPILE_CLAIMS = ("README.md", "setup.py", "ARCHITECTURE.md", "docs/development.md", "CHANGELOG.md")


def load(name: str) -> dict[str, Any]:
    data = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rows(run: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["target"], row["scenario"]): row for row in run["results"]}


def cpu_us(row: dict[str, Any]) -> float:
    return 1e6 / float(row["requests_per_cpu_s"])


def thousands(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    """Milliseconds as the docs round them: 0.295 -> 0.30 (half up, on the decimal written)."""
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_the_reference_runs_are_the_files_bench_readme_lists() -> None:
    table = BENCH_README.split("## Reference runs")[1].split("###")[0]
    listed = set(re.findall(r"`([a-z0-9-]+\.json)`", table))
    kept = {path.name for path in RESULTS.iterdir()}
    assert kept == listed, "every kept run is listed in bench/README.md, and every listed one kept"


def test_the_readme_table_is_the_newest_full_load_run() -> None:
    run = load("full-load-2026-12-04")
    assert run["date"].startswith("2026-12-04")
    assert "`bench/results/full-load-2026-12-04.json`,\n2026-12-04" in README
    got = rows(run)
    nginx_passthrough = cpu_us(got[("nginx", "get_1k")])
    for label, scenario in (
        ("passthrough, 1 KiB", "get_1k"),
        ("deep link (a 302 from the shim)", "deeplink"),
        ("cached discovery document", "discovery"),
    ):
        shim, nginx = got[("shim", scenario)], got[("nginx", scenario)]
        cells = [
            thousands(shim["requests_per_s"]),
            f"{shim['requests_per_s'] / nginx['requests_per_s']:.2f}",
            f"{cpu_us(shim):.0f}",
            # CPU against nginx's only where both do the same work (nginx passes deep links and
            # discovery documents to the origin; the shim answers them itself)
            f"{cpu_us(shim) / nginx_passthrough:.2f} " if scenario == "get_1k" else "",
        ]
        assert f"| {label} | {' | '.join(cells)}|" in README, label


@pytest.mark.parametrize("run", ["full-load", "full-load-2026-12-04"])
@pytest.mark.parametrize(
    ("label", "scenario"),
    [("passthrough, 1 KiB", "get_1k"), ("passthrough, 1 MiB", "get_1m")],
)
def test_the_bench_readme_full_load_tables_are_the_runs(
    run: str, label: str, scenario: str
) -> None:
    got = rows(load(run))
    shim, nginx = got[("shim", scenario)], got[("nginx", scenario)]
    cells = [
        thousands(shim["requests_per_s"]),
        f"{shim['requests_per_s'] / nginx['requests_per_s']:.2f}",
        thousands(cpu_us(shim)),
        f"{cpu_us(shim) / cpu_us(nginx):.2f}",
        f"{shim['rss_mib']:.1f}",
    ]
    assert f"| | shim | {' | '.join(cells)} |" in BENCH_README, label


def test_the_edge_hardening_figures_are_the_runs() -> None:
    got = rows(load("full-load-2026-12-04"))
    passthrough = got[("shim", "get_1k")]["requests_per_cpu_s"]
    for scenario in ("deeplink", "discovery"):
        own = got[("shim", scenario)]["requests_per_cpu_s"] / passthrough
        assert f"{own:.2f} {TIMES}" in BENCH_README, scenario
    plain = rows(load("plain-python-2026-12-04"))
    shim, nginx = plain[("shim", "get_1k")], plain[("nginx", "get_1k")]
    assert thousands(shim["requests_per_s"]) + " req/s" in BENCH_README
    assert (
        f"{shim['requests_per_s'] / nginx['requests_per_s']:.2f} {TIMES} nginx's rate"
        in BENCH_README
    )
    ratio = shim["requests_per_cpu_s"] / nginx["requests_per_cpu_s"]
    assert f"{ratio:.2f} {TIMES} nginx per CPU second" in BENCH_README
    assert ratio >= 0.5  # issue 21's floor for plain Python


def test_what_compiling_saves_is_the_median_of_the_pairs_everywhere() -> None:
    pairs = load("compile-ab")["pairs"]
    saved = {}
    for scenario, label in (("get_1k", "passthrough"), ("deeplink", "deep link")):
        plain = median(cpu_us(rows(p["python"])[("shim", scenario)]) for p in pairs)
        compiled = median(cpu_us(rows(p["compiled"])[("shim", scenario)]) for p in pairs)
        saved[label] = 1 - compiled / plain
        shown = f"{plain:.0f} → {compiled:.0f} (−{saved[label]:.0%})".replace("%", " %")  # noqa: RUF001
        assert shown in BENCH_README, shown
    assert round(saved["passthrough"], 1) == 0.4  # "about 40 %"
    for name in COMPILE_CLAIMS:
        text = " ".join((REPO / name).read_text(encoding="utf-8").split())
        assert "about 40 % less CPU a passthrough" in text or "about 40 % off" in text, name
        assert "a fifth" not in text, name


def p99_added(name: str, proxy: str) -> float:
    return float(load(name)["latency"][f"{proxy}_p99_added_ms_median"])


@pytest.mark.parametrize("name", [*TWO_CPU_LATENCY, "latency-one-cpu-a", "latency-one-cpu-b"])
def test_each_latency_row_is_its_run(name: str) -> None:
    latency = load(name)["latency"]
    assert latency["cpu_idle"] == "polling"
    row = (
        f"| `{name}` | "
        f"{'every party on one CPU' if 'one-cpu' in name else 'the proxy on a CPU of its own'} | "
        f"{ms(latency['shim_p99_added_ms_median'])} ms | "
        f"{ms(latency['nginx_p99_added_ms_median'])} ms | "
        f"{latency['shim_cpu_us_per_request_median']:.0f} / "
        f"{latency['nginx_cpu_us_per_request_median']:.0f} |"
    )
    assert row in BENCH_README


def test_the_latency_summary_is_the_four_two_cpu_runs() -> None:
    for proxy in ("shim", "nginx"):
        values = [p99_added(name, proxy) for name in TWO_CPU_LATENCY]
        span = f"{ms(min(values))}–{ms(max(values))} ms"  # noqa: RUF001
        for text in (README, BENCH_README, CHANGELOG):
            assert span in text, (proxy, span)
    pooled = {
        proxy: median(
            r[proxy]["p99_added_ms"]
            for name in TWO_CPU_LATENCY
            for r in load(name)["latency"]["rounds"]
        )
        for proxy in ("shim", "nginx")
    }
    assert f"the shim {ms(pooled['shim'])} ms, nginx {ms(pooled['nginx'])} ms" in BENCH_README
    assert all(load(name)["date"].startswith("2026-11-28") for name in TWO_CPU_LATENCY)


def test_the_memory_figures_are_the_edges_run() -> None:
    edges = load("edges")
    peak, added = edges["streaming"]["peak_rss_mib"], edges["idle"]["added_mib"]
    assert edges["streaming"]["bytes_each_way"] == 1 << 30
    assert edges["idle"]["connections"] == 1000
    for text in (README, BENCH_README):
        assert f"peaks at {peak} MiB resident" in text
        assert f"connections add {added} MiB" in " ".join(text.split())
