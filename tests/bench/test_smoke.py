"""bench/run.py end to end, one second a case: it starts the origin, nginx and the shim, checks
each answers what the scenario is about, and writes a results JSON with numbers for both proxies;
and bench/edges.py's paced latency case, one short round.

The numbers themselves are not asserted (performance is measured, not asserted: see
bench/README.md); only that every case produced some, without errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

ROOT = REPO
SCENARIOS = ("get_1k", "get_1m", "deeplink", "discovery")

pytestmark = [
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("nginx", "wrk", "taskset")),
        reason="needs nginx and wrk: scripts/setup.sh --test installs them (make test does)",
    ),
    pytest.mark.timeout(90),
]


def test_quick_run_reports_numbers_for_nginx_and_the_shim(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--duration", "1s", "--quick"]
    command += ["--rounds", "2"]
    done = subprocess.run(
        [*command, "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=80
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    rows = {(row["target"], row["scenario"]): row for row in report["results"]}
    assert set(rows) == {(target, s) for target in ("nginx", "shim") for s in SCENARIOS}
    for row in rows.values():
        assert row["requests_per_s"] > 0
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        assert row["cpu_percent"] > 0
        assert row["rss_mib"] > 0
        assert row["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    assert "| deeplink | shim |" in done.stdout
    # two rounds: each case reports the lower of its two (the median rounds down)
    rounds = report["rounds"]
    assert len(rounds) == 2
    for key, row in rows.items():
        measured = [r for each in rounds for r in each if (r["target"], r["scenario"]) == key]
        assert row == min(measured, key=lambda r: r["requests_per_cpu_s"])


def test_paced_latency_reports_p99_and_cpu_a_request_for_both_proxies(tmp_path: Path) -> None:
    output = tmp_path / "edges.json"
    command = [sys.executable, str(ROOT / "bench" / "edges.py"), "--quick", "--cases", "latency"]
    command += ["--rounds", "1", "--output", str(output)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=80)

    assert done.returncode == 0, done.stderr
    latency = json.loads(output.read_text(encoding="utf-8"))["latency"]
    # whether idle CPUs could halt during the case, always stated (bench/awake.py)
    assert latency["cpu_idle"] == "polling" or latency["cpu_idle"].startswith("free (")
    (run,) = latency["rounds"]
    assert set(run) == {"direct", "nginx", "shim"}
    for name, row in run.items():
        assert row["requests"] > 0
        assert row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["origin_cpu_us_per_request"] > 0
        if name != "direct":
            # what each proxy's own processes spent, beside the origin's: not zero, not absurd
            assert 0 < row["proxy_cpu_us_per_request"] < 100_000
            assert latency[f"{name}_cpu_us_per_request_median"] == row["proxy_cpu_us_per_request"]
            assert latency[f"{name}_p99_added_ms_median"] == row["p99_added_ms"]
    assert "proxy_cpu_us_per_request" not in run["direct"]


@pytest.mark.parametrize("scenario", ["passthrough", "deeplink", "discovery"])
def test_the_in_process_drive_answers_every_scenario(scenario: str) -> None:
    """bench/drive.py feeds the real listener: it stops with an error when a request gets no
    answer, so a broken path fails here rather than printing a number."""
    command = [sys.executable, str(ROOT / "bench" / "drive.py"), scenario, "--requests", "50"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=50)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{scenario}: ")
    assert "µs a request" in done.stdout
