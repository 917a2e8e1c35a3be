"""Counting for retirement, with real Chromium following the shim's redirects.

A shim process in front of the demo portal, scraped by a real Prometheus. Chromium opens stable
deep links: the shim answers 302 to the portal's legacy name and Chromium asks for that through
the shim again. Those follow-ups must leave "which clients still send legacy names" at zero,
while legacy links a client sends itself are counted exactly, and a doctor run changes nothing.
In front of a mas-1.10 portal, Chromium's links of both name sets pass untouched, and the
portal's document passes byte for byte.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from shim.config.parse import parse_config
from shim.doctor.fetch import run_homeserver_doctor
from tests.conftest import ShimProcessFactory
from tests.deploy.test_grafana import load, panels
from tests.support.browser import open_portal_page, require_chromium
from tests.support.e2e import portal
from tests.support.loopback import shim_settings
from tests.support.prometheus import JOB, Prometheus, start_prometheus
from tests.support.views import doctor_view, retirement_queries, since_start, status_view

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

LEGACY = "org.matrix.session_end"
ELEMENT_X = "Element X/25.01.2 (iPhone; iOS 18.2; Scale/3.00)"
#: the stable names Chromium opens, and the page (and legacy name) each lands on at mas-0.9
OPENED = {
    "org.matrix.device_delete": ("session-end", LEGACY),
    "org.matrix.devices_list": ("sessions", "org.matrix.sessions_list"),
}


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for prometheus in started:
        prometheus.stop()


def _panel(title: str) -> str:
    (panel,) = (p for p in panels(load()) if p["title"] == title)
    (target,) = panel["targets"]
    expr: str = target["expr"]
    return expr.replace("$job", JOB)


async def test_chromium_following_redirects_is_not_a_client_sending_legacy_names(
    shim_process_factory: ShimProcessFactory,
    prometheus_dir: list[Prometheus],
    tmp_path: Path,
) -> None:
    chase = since_start(retirement_queries()["whom to chase"])
    chase_panel = _panel("Legacy names clients sent (7d)")
    followups = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}", outcome="followup"}})'
    async with portal("mas-0.9") as upstream:
        settings = shim_settings(upstream)  # strategy redirect, dialect mas-0.9
        shim = await shim_process_factory(settings)
        prometheus = start_prometheus(tmp_path, shim.admin_url.removeprefix("http://"))
        prometheus_dir.append(prometheus)

        for n, (stable, (view, legacy)) in enumerate(OPENED.items()):
            page = await open_portal_page(f"{shim.url}/account/?action={stable}&device_id=C{n}")
            assert (page.view, page.action) == (view, legacy)  # redirected, then followed
            assert URL(page.href).query["action"] == legacy
        await prometheus.until(followups, len(OPENED))
        await asyncio.sleep(1.5)
        assert await prometheus.query(chase) == []
        assert await prometheus.value(chase_panel) == 0

        async with aiohttp.ClientSession(headers={"User-Agent": ELEMENT_X}) as session:
            for n in range(3):
                url = f"{shim.url}/account/?action={LEGACY}&device_id=X{n}"
                async with session.get(url, allow_redirects=False) as response:
                    assert response.status == 200
        await prometheus.until(f"sum({chase})", 3)
        assert await prometheus.by(chase, "client", "incoming") == {("element-x", LEGACY): 3}

        out = io.StringIO()
        await asyncio.to_thread(run_homeserver_doctor, None, shim.url + "/", out=out)
        assert "still needed" in out.getvalue()
        doctors = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}", client="doctor"}})'
        await prometheus.until(f"{doctors} > bool 0", 1)
        await asyncio.sleep(1.5)
        assert await prometheus.by(chase, "client", "incoming") == {("element-x", LEGACY): 3}

        status = await status_view(shim.admin_url)
        doctor, report = await doctor_view(parse_config(settings), shim.admin_url)
        for verdict in (status, doctor):
            (note,) = (n for n in verdict.notes if n.startswith("clients still sent"))
            assert note.startswith(
                "clients still sent 3 legacy-named deep links since the shim started (element-x: 3)"
            ), report
        assert "it changed 2 client deep links since it started (redirect: 2)" in status.reasons
        assert status.reasons == doctor.reasons


async def test_a_mas_110_portal_needs_no_redirect_and_keeps_its_document(
    shim_process_factory: ShimProcessFactory,
    prometheus_dir: list[Prometheus],
    tmp_path: Path,
) -> None:
    changed = since_start(retirement_queries()["changed links"])
    async with portal("mas-1.10") as upstream:
        settings = shim_settings(upstream, account_management={"dialect": "mas-1.10"})
        shim = await shim_process_factory(settings)
        prometheus = start_prometheus(tmp_path, shim.admin_url.removeprefix("http://"))
        prometheus_dir.append(prometheus)

        for name, view in (
            ("org.matrix.device_delete", "session-end"),
            (LEGACY, "session-end"),
            ("org.matrix.devices_list", "sessions"),
        ):
            url = f"{shim.url}/account/?action={name}&device_id=ABCDEFGH"
            page = await open_portal_page(url)
            assert (page.view, page.action, page.href) == (view, name, url)  # no redirect

        openid = "/.well-known/openid-configuration"
        async with aiohttp.ClientSession() as session:
            async with session.get(shim.url + openid) as relayed:
                through = await relayed.read()
            # the demo portal writes its URLs under the Host it is asked with: the shim's
            host = {"Host": URL(shim.url).raw_authority}
            async with session.get(upstream + openid, headers=host) as direct:
                own = await direct.read()
        assert through == own

        links = f'sum(msc4191_shim_deeplink_translations_total{{job="{JOB}"}})'
        await prometheus.until(links, 3)
        assert await prometheus.query(changed) == []
        unchanged = (
            f'sum(msc4191_shim_discovery_documents_total{{job="{JOB}", outcome="unchanged"}})'
        )
        await prometheus.until(unchanged, 1)
        status = await status_view(shim.admin_url)
        assert (status.needed, status.reasons) == (False, ())
