"""The dashboard's queries, run by a real Prometheus on what a real shim process exposed.

A shim process in front of the demo portal (mas-0.9) is scraped every second by Prometheus
(Debian's `prometheus`; `make test` installs it). Deep links with legacy and stable names, a
discovery document and a passthrough request go through the shim; then every query of
deploy/grafana/msc4191-shim.json, with Grafana's variables filled in as Grafana would, goes to
Prometheus's HTTP API. Each must parse and evaluate, and the panels the migration is judged by
("Can I retire the shim?") must show what was sent.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import ShimProcessFactory
from tests.deploy.test_grafana import exprs, load, panels
from tests.deploy.tools import require_tool
from tests.support.e2e import portal
from tests.support.loopback import HOST, ShimProcess, free_port, shim_settings

JOB = "msc4191-shim"
#: what Grafana puts for the variables: the job picked, and a rate window of a few scrapes
VARIABLES = {"$job": JOB, "$__rate_interval": "10s"}
LEGACY = "org.matrix.session_end"  # what the mas-0.9 portal knows; old clients send it
STABLE = "org.matrix.device_delete"  # what new clients send; the shim redirects it to LEGACY
WAIT = 30.0

pytestmark = pytest.mark.timeout(120)


class Prometheus:
    """A Prometheus process on loopback, scraping one target every second."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params={"query": expr}) as response,
        ):
            body = await response.json()
        assert response.status == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, expr: str) -> float:
        result = await self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    async def until(self, expr: str, want: float) -> None:
        """Wait until `expr` (one number) is `want` in what Prometheus has scraped."""
        seen: object = "nothing"
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        if (seen := await self.value(expr)) == want:
                            return
                    except (aiohttp.ClientError, AssertionError) as e:
                        seen = e  # not up yet, or the series not scraped yet
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(
                f"{expr} never became {want} in {WAIT} s; last: {seen!r}"
            ) from None


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """`prometheus_for("127.0.0.1:PORT")`: a real Prometheus scraping that target as job JOB."""
    binary = require_tool("prometheus")
    started: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> Prometheus:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        settings = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        with (tmp_path / "prometheus.log").open("wb") as log:
            command = [binary, f"--config.file={config}", f"--web.listen-address={HOST}:{port}"]
            command += [f"--storage.tsdb.path={tmp_path / 'data'}", "--log.level=warn"]
            started.append(subprocess.Popen(command, stdout=log, stderr=log, cwd=tmp_path))
        return Prometheus(f"http://{HOST}:{port}")

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


async def _send(shim: ShimProcess, counts: dict[str, int]) -> None:
    async with aiohttp.ClientSession() as session:
        for target, count in counts.items():
            for _ in range(count):
                async with session.get(shim.url + target, allow_redirects=False) as response:
                    await response.read()
                    assert response.status < 500, (target, response.status)


def _link(action: str) -> str:
    return f"/account/?action={action}&device_id=ABCDEFGH"


def _filled(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not fill: {expr}"
    return expr


def _by_title() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for panel in panels(load()):
        for target in panel.get("targets", []):
            found.setdefault(panel["title"], []).append(_filled(target["expr"]))
    return found


async def test_every_dashboard_query_runs_and_the_retirement_panels_show_the_traffic(
    prometheus_for: Callable[[str], Prometheus], shim_process_factory: ShimProcessFactory
) -> None:
    async with portal("mas-0.9") as upstream:
        shim = await shim_process_factory(shim_settings(upstream))
        prometheus = prometheus_for(shim.admin_url.removeprefix("http://"))
        discovery = "/.well-known/openid-configuration"
        # the series exist before the scrapes that count: increase() starts from the first
        await _send(shim, {_link(LEGACY): 1, _link(STABLE): 1, discovery: 1, "/elsewhere": 1})
        links = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}", incoming!="none"}})'
        await prometheus.until(links, 2)
        await asyncio.sleep(2.5)  # two more scrapes at those values
        await _send(shim, {_link(LEGACY): 3, _link(STABLE): 1, discovery: 2})
        await prometheus.until(links, 6)
        await asyncio.sleep(1.5)

        queries = _by_title()
        assert sum(len(q) for q in queries.values()) == len(exprs(load())) - 1  # + label_values
        for group in queries.values():
            for expr in group:
                await prometheus.query(expr)  # parses, evaluates, is a vector

        async def one(title: str) -> float:
            (expr,) = queries[title]
            return await prometheus.value(expr)

        # the retirement panels: legacy names are still sent, the shim still changes links
        assert await one("Unstable names sent (7d)") > 0
        assert await one("Links the shim still changes (7d)") > 0
        assert await one("Discovery documents the portal did not write (7d)") > 0
        share = await one("Share of legacy names (7d)")
        assert 0.5 < share < 1, share  # 3 legacy of 4 since the counting began
        (per_name,) = queries["Which clients still send unstable names (per name, 7d)"]
        names = {row["metric"]["incoming"] for row in await prometheus.query(per_name)}
        assert names == {LEGACY}
        (changing,) = queries["Is the shim still changing links? (7d)"]
        changed = [row["metric"] for row in await prometheus.query(changing)]
        assert {(m["incoming"], m["sent"]) for m in changed} == {(STABLE, LEGACY)}

        # the live panels: requests by kind, and the portal's latency from the histogram
        (requests,) = queries["Requests by kind and status class"]
        kinds = {row["metric"]["kind"] for row in await prometheus.query(requests)}
        assert {"deeplink", "discovery", "passthrough"} <= kinds, kinds
        for expr in queries["Upstream latency (to response headers) p50 / p90 / p99"]:
            latencies = [float(row["value"][1]) for row in await prometheus.query(expr)]
            # a kind with no request in the window is NaN (0/0), which Grafana draws as a gap
            recent = [v for v in latencies if not math.isnan(v)]
            assert recent, (expr, latencies)
            assert all(0 < v < 10 for v in recent), (expr, latencies)

        # the $job variable's values, as Grafana asks for them
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{prometheus.url}/api/v1/label/job/values",
                params={"match[]": "msc4191_shim_build_info"},
            ) as response,
        ):
            assert (await response.json())["data"] == [JOB]
