"""`msc4191-shim doctor --homeserver` against real Synapse (MAS mode), with and without the shim.

The same chain a client follows: Synapse's well-known, /versions and auth_metadata (which it
builds from the issuer's document), then the deep links. Without the shim the prototype portal
breaks Synapse's discovery and doctor says so; through the shim every client's link lands.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from shim.doctor.fetch import run_homeserver_doctor
from tests.support.e2e import demo_stack, portal
from tests.support.synapse import start_synapse

pytestmark = pytest.mark.synapse


async def doctor(homeserver: str, *, as_json: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    status = await asyncio.to_thread(
        run_homeserver_doctor, homeserver, None, as_json=as_json, out=out
    )
    return status, out.getvalue()


async def test_doctor_sees_synapse_refuse_the_prototype_portal(tmp_path: Path) -> None:
    async with portal("prototype-unstable-keys") as url, start_synapse(tmp_path, url) as synapse:
        status, out = await doctor(synapse.base_url)
    assert status == 1, out
    assert f"auth_metadata {synapse.base_url}/_matrix/client/v1/auth_metadata answers 500" in out
    assert "the issuer's document has no account_management_uri" in out
    assert "- Synapse refuses the issuer's document (auth_metadata answers 500)" in out


async def test_doctor_through_the_shim_in_front_of_synapse(tmp_path: Path) -> None:
    async with (
        demo_stack(
            "prototype-unstable-keys", {"account_management": {"dialect": "mas-0.7"}}
        ) as stack,
        start_synapse(tmp_path, stack.shim_url) as synapse,
    ):
        status, out = await doctor(synapse.base_url)
        _, report = await doctor(synapse.base_url, as_json=True)
    assert status == 0, out
    assert f"OK    {synapse.base_url}/.well-known/matrix/client names the issuer" in out
    assert f"OK    account_management_uri: {stack.shim_url}/account/" in out
    assert "OK    Element Web / matrix-js-sdk (2026): its deep links land" in out
    assert "OK    Element X / matrix-rust-sdk (new): its deep links land" in out
    assert "the shim (or another translator) is in front and still needed" in out
    data = json.loads(report)
    assert (data["exit_status"], data["needs_shim"], data["read_from"]) == (
        0,
        True,
        "auth_metadata",
    )
    assert data["account_management_actions_supported"] == [
        "org.matrix.profile",
        "org.matrix.devices_list",
        "org.matrix.device_view",
        "org.matrix.device_delete",
    ]
