"""One definition, four views: the same traffic through a real shim process, read by a real
Prometheus (the queries of docs/retirement.md and every query of the Grafana dashboard), the
admin status page and `msc4191-shim doctor --config`; they must agree.

A shim process in front of the demo portal is scraped every second by Prometheus (Debian's
`prometheus`; `make test` installs it). Clients of every kind send deep links and fetch a
discovery document: a browser-like client that follows the shim's redirects, Element X with
legacy names, an MSC3824-era link, a name outside MSC4191; then `msc4191-shim doctor` probes the
shim. Each dashboard query must parse and evaluate; the retirement panels must show the clients'
traffic and nothing of the shim's own (follow-ups, doctor); the docs' queries, counted since the
shim started, must give the numbers the status page and doctor give. In front of a mas-1.10
portal every view must say the shim can go.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from shim.config.parse import parse_config
from shim.doctor.fetch import run_homeserver_doctor
from tests.conftest import ShimProcessFactory
from tests.deploy.test_grafana import exprs, load, panels
from tests.support.e2e import portal
from tests.support.loopback import ShimProcess, shim_settings
from tests.support.prometheus import JOB, Prometheus, start_prometheus
from tests.support.views import doctor_view, retirement_queries, since_start, status_view

#: what Grafana puts for the variables: the job picked, and a rate window of a few scrapes
VARIABLES = {"$job": JOB, "$__rate_interval": "10s"}
STABLE = "org.matrix.device_delete"  # what new clients send; mas-0.9 gets LEGACY for it
LEGACY = "org.matrix.session_end"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
ELEMENT_X = "Element X/25.01.2 (iPhone; iOS 18.2; Scale/3.00)"
OPENID = "/.well-known/openid-configuration"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """`prometheus_for("127.0.0.1:PORT")`: a real Prometheus scraping that target as job JOB."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(start_prometheus(tmp_path, target))
        return started[-1]

    yield start
    for prometheus in started:
        prometheus.stop()


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


def _link(action: str, device: str = "ABCDEFGH") -> str:
    return f"/account/?action={action}&device_id={device}"


async def _get(shim: ShimProcess, target: str, agent: str, *, follow: bool = False) -> None:
    headers = {"User-Agent": agent}
    async with (
        aiohttp.ClientSession() as session,
        session.get(shim.url + target, headers=headers, allow_redirects=follow) as response,
    ):
        await response.read()
        assert response.status < (300 if follow else 400), (target, response.status)


async def clients_round(shim: ShimProcess, round_: int, *, msc3824: bool = True) -> None:
    """What clients send in one round (see the module's docstring): 11 deep links (7 without the
    MSC3824-era one, with no redirect to follow) and 2 documents. Device IDs differ per round, so
    no request asks for a Location the shim issued in the other round."""
    for n in range(2):  # a browser following the shim's redirects
        await _get(shim, _link(STABLE, f"D{round_}{n}"), CHROME, follow=True)
    await _get(shim, _link("org.matrix.devices_list", f"L{round_}"), CHROME, follow=True)
    for n in range(2):  # Element X (old) with legacy names
        await _get(shim, _link(LEGACY, f"X{round_}{n}"), ELEMENT_X)
    await _get(shim, "/account/?action=org.matrix.sessions_list", ELEMENT_X)
    if msc3824:  # an MSC3824-era name, which no MAS serves; not followed
        await _get(shim, _link("session_end", f"M{round_}"), CHROME)
    await _get(shim, "/account/?action=org.matrix.plan_management", CHROME)  # not MSC4191
    for _ in range(2):
        await _get(shim, OPENID, ELEMENT_X)


async def doctor_through(shim: ShimProcess) -> str:
    """`msc4191-shim doctor --issuer SHIM`: every probe and deep link through the shim."""
    out = io.StringIO()
    issuer = shim.url + "/"
    await asyncio.to_thread(run_homeserver_doctor, None, issuer, out=out)
    return out.getvalue()


def _number(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return int(found.group(1))


async def test_four_views_agree_and_doctor_changes_none(
    prometheus_for: Callable[[str], Prometheus], shim_process_factory: ShimProcessFactory
) -> None:
    async with portal("mas-0.9") as upstream:
        settings = shim_settings(upstream)
        shim = await shim_process_factory(settings)
        prometheus = prometheus_for(shim.admin_url.removeprefix("http://"))
        # the series exist before the scrapes that count: increase() starts from the first
        await clients_round(shim, 1)
        links = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}"}})'
        await prometheus.until(links, 11)
        await asyncio.sleep(2.5)  # two more scrapes at those values
        await clients_round(shim, 2)
        await prometheus.until(links, 22)
        await asyncio.sleep(1.5)

        # -- every dashboard query parses and evaluates; the retirement panels show clients'
        queries = _by_title()
        assert sum(len(q) for q in queries.values()) == len(exprs(load())) - 1  # + label_values
        for group in queries.values():
            for expr in group:
                await prometheus.query(expr)

        async def one(title: str) -> float:
            (expr,) = queries[title]
            return await prometheus.value(expr)

        # a round's 4 changed links (3 stable names redirected, 1 MSC3824 name), 2 documents
        # written (cached), 3 legacy names from Element X and 1 from a desktop: increase()
        # extrapolates a little past the samples, so at least that, and less than two rounds
        assert 4 <= await one("Links the shim still changes (7d)") < 8
        assert 2 <= await one("Discovery documents the shim wrote (7d)") < 4
        assert 4 <= await one("Legacy names clients sent (7d)") < 8
        assert 0.4 < await one("Share of legacy names (7d)") < 0.6  # 4 of the 8 with a name
        (chase,) = queries["Whom to chase: legacy names by client family (7d)"]
        assert set(await prometheus.by(chase, "client", "incoming")) == {
            ("element-x", LEGACY),
            ("element-x", "org.matrix.sessions_list"),
            ("element-web", "session_end"),
        }
        (changing,) = queries["Is the shim still changing links? (7d)"]
        assert set(await prometheus.by(changing, "outcome", "incoming", "sent")) == {
            ("redirect", STABLE, LEGACY),
            ("redirect", "org.matrix.devices_list", "org.matrix.sessions_list"),
            ("redirect", "session_end", LEGACY),
        }
        (requests,) = queries["Requests by kind and status class"]
        kinds = {row["metric"]["kind"] for row in await prometheus.query(requests)}
        assert {"deeplink", "discovery"} <= kinds, kinds
        for expr in queries["Upstream latency (to response headers) p50 / p90 / p99"]:
            latencies = [float(row["value"][1]) for row in await prometheus.query(expr)]
            # a kind with no request in the window is NaN (0/0), which Grafana draws as a gap
            recent = [v for v in latencies if not math.isnan(v)]
            assert recent, (expr, latencies)
            assert all(0 < v < 10 for v in recent), (expr, latencies)

        # -- the docs' queries since the start: exact, and what the status page and doctor say
        docs = {name: since_start(expr) for name, expr in retirement_queries().items()}
        changed = sum(float(r["value"][1]) for r in await prometheus.query(docs["changed links"]))
        written = await prometheus.value(docs["written documents"])
        chased = await prometheus.by(docs["whom to chase"], "client", "incoming")
        assert (changed, written) == (8, 4)  # round 1: rewritten, cached; round 2: cached twice
        assert chased == {
            ("element-x", LEGACY): 4,
            ("element-x", "org.matrix.sessions_list"): 2,
            ("element-web", "session_end"): 2,
        }
        assert _nonzero(await prometheus.by(docs["documents by outcome"], "outcome")) == {
            ("rewritten",): 1,
            ("cached",): 3,
        }

        config = parse_config(settings)
        status = await status_view(shim.admin_url)
        doctor, report = await doctor_view(config, shim.admin_url)
        assert status.needed
        assert doctor.needed
        assert status.reasons == doctor.reasons, report
        reasons = "\n".join(status.reasons)
        assert _number(reasons, r"it changed (\d+) client deep links") == changed
        assert _number(reasons, r"it wrote (\d+) discovery documents clients read") == written
        (chase_note,) = (n for n in status.notes if n.startswith("clients still sent"))
        assert _number(chase_note, r"clients still sent (\d+) legacy") == sum(chased.values())
        assert "(element-x: 6, element-web: 2)" in chase_note
        assert chase_note in doctor.notes, report

        # -- doctor through the shim: its probes and their follow-ups move none of it
        before = {name: await prometheus.query(expr) for name, expr in docs.items()}
        said = await doctor_through(shim)
        assert "the shim (or another translator) is in front and still needed" in said
        doctors = f'sum(msc4191_shim_discovery_documents_total{{job="{JOB}", client="doctor"}})'
        await prometheus.until(doctors, 1)
        await asyncio.sleep(1.5)
        for name, expr in docs.items():
            assert _values(await prometheus.query(expr)) == _values(before[name]), name
        assert await one("Legacy names clients sent (7d)") < 8
        (own,) = (t for t in queries if t.startswith("The shim's own traffic"))
        assert len(queries[own]) == 3
        again = await status_view(shim.admin_url)
        assert again.reasons == status.reasons
        assert any("requests from msc4191-shim doctor" in note for note in again.notes)

        # -- the $job variable's values, as Grafana asks for them
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{prometheus.url}/api/v1/label/job/values",
                params={"match[]": "msc4191_shim_build_info"},
            ) as response,
        ):
            assert (await response.json())["data"] == [JOB]


def _nonzero(values: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    """Without the series that exist at 0 from the start (every discovery outcome)."""
    return {key: value for key, value in values.items() if value}


def _values(rows: list[dict[str, object]]) -> dict[str, str]:
    """A vector as {labels: value}, comparable across two evaluations (times differ)."""
    out = {}
    for row in rows:
        metric, value = row["metric"], row["value"]
        assert isinstance(metric, dict)
        assert isinstance(value, list)
        out[repr(sorted(metric.items()))] = str(value[1])
    return out


async def test_in_front_of_mas_110_every_view_says_it_can_go(
    prometheus_for: Callable[[str], Prometheus], shim_process_factory: ShimProcessFactory
) -> None:
    async with portal("mas-1.10") as upstream:
        extra = {"dialect": "mas-1.10"}
        settings = shim_settings(
            upstream, account_management=extra, discovery={"advertise": "stable+legacy"}
        )
        shim = await shim_process_factory(settings)
        prometheus = prometheus_for(shim.admin_url.removeprefix("http://"))
        await clients_round(shim, 1, msc3824=False)
        links = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}", client!="doctor"}})'
        await prometheus.until(links, 7)  # nothing redirected: no follow-ups
        await asyncio.sleep(2.5)
        await clients_round(shim, 2, msc3824=False)
        said = await doctor_through(shim)
        await prometheus.until(links, 14)
        doctors = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}", client="doctor"}})'
        await prometheus.until(doctors + " > bool 0", 1)
        await asyncio.sleep(1.5)

        queries = _by_title()
        (changes,) = queries["Links the shim still changes (7d)"]
        (writes,) = queries["Discovery documents the shim wrote (7d)"]
        assert await prometheus.value(changes) == 0
        assert await prometheus.value(writes) == 0
        docs = {name: since_start(expr) for name, expr in retirement_queries().items()}
        assert await prometheus.query(docs["changed links"]) == []
        assert await prometheus.value(docs["written documents"]) == 0
        by_outcome = await prometheus.by(docs["documents by outcome"], "outcome")
        assert _nonzero(by_outcome) == {("unchanged",): 4}
        # whom to chase, still: old Element X sends legacy names, which MAS 1.10 serves
        chased = await prometheus.by(docs["whom to chase"], "client", "incoming")
        assert chased[("element-x", LEGACY)] == 4

        status = await status_view(shim.admin_url)
        doctor, report = await doctor_view(parse_config(settings), shim.admin_url)
        assert (status.needed, status.reasons) == (False, ())
        assert (doctor.needed, doctor.reasons) == (False, ()), report
        assert "this deployment does not need the shim" in said
