"""`msc4191-shim doctor` against the demo portal and the real shim on loopback.

`run_doctor` runs its own event loop, so the tests call it in a thread while this loop keeps
serving the portal and the shim.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from demo.portal import make_portal_app
from shim.config.model import AdminConfig, Config
from shim.config.parse import parse_config
from shim.config.values import parse_listen
from shim.doctor.probe import run_doctor
from shim.obs.clients import DOCTOR_USER_AGENT
from tests.support.e2e import Stack, demo_stack, recording
from tests.support.loopback import free_port, serve_app

PROTOTYPE_ON_MAS_07 = {"account_management": {"dialect": "mas-0.7"}}


async def follow(stack: Stack, *actions: str) -> None:
    """One deep link per action through the shim, as a client would send it."""
    async with aiohttp.ClientSession() as session:
        for action in actions:
            url = f"{stack.shim_url}/account/?action={action}&device_id=ABCDEFGH"
            async with session.get(url, allow_redirects=False) as response:
                assert response.status in (200, 302), (action, response.status)


def running_config(stack: Stack) -> Config:
    """The running shim's config, with the admin port it actually bound (it was given port 0)."""
    config = stack.shim.state.runtime.config
    admin = AdminConfig(parse_listen(stack.admin_url.removeprefix("http://")))
    return dataclasses.replace(config, admin=admin)


async def test_doctor_explains_the_prototype_portal(capsys: pytest.CaptureFixture[str]) -> None:
    async with demo_stack("prototype-unstable-keys", PROTOTYPE_ON_MAS_07) as stack:
        # the legacy links first: after the shim's 302 for device_delete, the same legacy URL
        # from the same address within seconds is its follow-up, counted apart
        await follow(
            stack,
            "org.matrix.session_end",
            "org.matrix.session_end",
            "org.matrix.sessions_list",
            "org.matrix.device_delete",
        )
        status = await asyncio.to_thread(
            run_doctor, running_config(stack), shim_admin_url=stack.admin_url
        )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert (
        "WARN  the portal's own document has no account_management_uri "
        "(only the unstable org.matrix.msc4191.account_management_uri)  — without the shim, "
        "Synapse answers 500 on auth_metadata and /.well-known/matrix/client" in out
    )
    assert (
        "INFO  the portal advertises legacy names: org.matrix.sessions_list, "
        "org.matrix.session_view, org.matrix.session_end" in out
    )
    assert "OK    dialect mas-0.7 matches the actions the portal offers" in out
    assert "INFO  4 client deep links since the shim started: legacy: 3, stable: 1" in out
    assert "- org.matrix.session_end: 2 (legacy name of org.matrix.device_delete)" in out
    assert "- org.matrix.device_delete: 1 (stable)" in out
    assert "- outcomes: passthrough: 3, redirect: 1" in out
    assert "INFO  the shim is still needed because:" in out
    assert "- it changed 1 client deep link since it started (redirect: 1)" in out
    assert (
        "INFO  clients still sent 3 legacy-named deep links since the shim started (other: 3)"
        in out
    )
    assert "FAIL" not in out


async def test_doctor_finds_the_admin_listener_from_the_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mas-0.9 portal behind the mas-0.7 dialect: cross-signing reset gets lost."""
    async with demo_stack("mas-0.9", PROTOTYPE_ON_MAS_07) as stack:
        status = await asyncio.to_thread(run_doctor, running_config(stack), shim_admin_url=None)
    out = capsys.readouterr().out
    assert status == 0
    assert f"admin {stack.admin_url}" in out.splitlines()[0]
    assert (
        "WARN  the portal advertises org.matrix.cross_signing_reset but dialect mas-0.7 does "
        "not serve it  — the shim drops it from discovery and applies `unsupported`: "
        "set dialect: mas-0.9" in out
    )
    assert "INFO  no client deep link seen since the shim started" in out


def test_nothing_listening_is_a_failure_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    portal, admin = free_port(), free_port()
    config = parse_config(
        {"upstream": {"url": f"http://127.0.0.1:{portal}"}, "admin": {"listen": f":{admin}"}}
    )
    assert run_doctor(config, shim_admin_url=None) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert f"FAIL  the portal at http://127.0.0.1:{portal} does not answer: " in out
    assert "FAIL  the portal's own /.well-known/openid-configuration does not answer" in out
    assert f"WARN  the shim's admin listener at http://127.0.0.1:{admin} does not answer" in out
    assert "- the portal's own discovery document could not be checked" in out


def test_an_unusable_ca_file_is_a_finding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate\n")
    upstream = {"url": "https://127.0.0.1:1", "ca_file": str(ca_file)}
    config = parse_config({"upstream": upstream, "admin": {"listen": f":{free_port()}"}})
    assert run_doctor(config, shim_admin_url=None) == 1
    assert "does not answer: upstream.ca_file cannot be used" in capsys.readouterr().out


async def test_doctor_with_a_config_says_who_it_is() -> None:
    portal = make_portal_app("mas-0.9")
    agents = recording(portal)
    async with serve_app(portal) as upstream:
        config = parse_config({"upstream": {"url": upstream.url}})
        # the portal stands in for the admin listener too: its /metrics is a 404, a finding
        await asyncio.to_thread(run_doctor, config, shim_admin_url=upstream.url)
    assert sorted(agents) == [DOCTOR_USER_AGENT] * 3  # the root, the document, /metrics


async def test_the_doctor_command(tmp_path: Path) -> None:
    """`msc4191-shim doctor --config PATH --admin-url URL`, as an operator runs it."""
    async with demo_stack("prototype-unstable-keys", PROTOTYPE_ON_MAS_07) as stack:
        await follow(stack, "org.matrix.session_end")
        path = tmp_path / "config.yaml"
        raw = {"upstream": {"url": stack.portal_url}, **PROTOTYPE_ON_MAS_07}
        path.write_text(yaml.safe_dump(raw))
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "shim", "doctor", "--config", str(path)),
            *("--admin-url", stack.admin_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    assert (process.returncode, err.decode()) == (0, "")
    report = out.decode()
    assert "org.matrix.msc4191.account_management_uri" in report
    assert "INFO  1 client deep link since the shim started: legacy: 1" in report
    assert "INFO  clients still sent 1 legacy-named deep link since the shim started" in report
