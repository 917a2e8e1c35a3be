"""`msc4191-shim doctor --homeserver`: the demo stack, a MAS 1.10-like portal, and broken stacks.

The homeserver here is a small stand-in for Synapse in MAS mode (tests/stack/test_doctor_synapse.py
runs the real one): it serves `/.well-known/matrix/client` and `/versions`, and republishes the
issuer's `/.well-known/openid-configuration` on both `auth_metadata` paths, answering 500 M_UNKNOWN
when that document has no `account_management_uri`, as Synapse does. `run_homeserver_doctor` runs
its own event loop, so the tests call it in a thread while this loop serves.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from demo.portal import Era, make_portal_app
from shim.doctor.fetch import run_homeserver_doctor
from shim.doctor.probe import run_doctor
from shim.obs.clients import DOCTOR_USER_AGENT
from shim.obs.counters import parse_counters
from tests.support.e2e import demo_stack, recording
from tests.support.loopback import free_port, run_cli, serve_app
from tests.support.paths import REPO

VECTORS = json.loads((REPO / "tests/data/vectors.json").read_text(encoding="utf-8"))
VECTOR_BASE = "https://auth.example.com/"
AUTH_METADATA_PATHS = (
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
)


def homeserver_app(issuer: str) -> web.Application:
    """A homeserver that delegates auth to `issuer`, as Synapse does in MAS mode."""

    async def well_known(request: web.Request) -> web.Response:
        auth = {"issuer": issuer}
        return web.json_response({"org.matrix.msc2965.authentication": auth})

    async def versions(request: web.Request) -> web.Response:
        return web.json_response({"versions": ["v1.11", "v1.15"], "unstable_features": {}})

    async def auth_metadata(request: web.Request) -> web.Response:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                doc = await response.json(content_type=None)
        except aiohttp.ClientError:
            doc = None
        if not isinstance(doc, dict) or "account_management_uri" not in doc:
            error = {"errcode": "M_UNKNOWN", "error": "Internal server error"}
            return web.json_response(error, status=500)
        return web.json_response(doc)

    app = web.Application()
    app.router.add_get("/.well-known/matrix/client", well_known)
    app.router.add_get("/_matrix/client/versions", versions)
    for path in AUTH_METADATA_PATHS:
        app.router.add_get(path, auth_metadata)
    return app


@asynccontextmanager
async def homeserver(issuer: str) -> AsyncIterator[str]:
    async with serve_app(homeserver_app(issuer)) as endpoint:
        yield endpoint.url


@asynccontextmanager
async def portal(era: Era) -> AsyncIterator[str]:
    async with serve_app(make_portal_app(era)) as endpoint:
        yield endpoint.url


def vector_document(era: str, base: str) -> dict[str, Any]:
    """A document of tests/data/vectors.json with its URLs under `base`."""
    text = json.dumps(VECTORS["discovery"][era]).replace(VECTOR_BASE, base)
    doc = json.loads(text)
    assert isinstance(doc, dict)
    return doc


def portal_app(era: str, *, failing: Mapping[str, int] | None = None) -> web.Application:
    """A portal serving a vectors.json document; `failing`: action -> the status its page gets."""
    failing = failing or {}

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(vector_document(era, f"http://{request.host}/"))

    async def account(request: web.Request) -> web.Response:
        status = failing.get(request.query.get("action", ""), 200)
        return web.Response(status=status, text="<!doctype html><title>account</title>")

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/account/", account)
    return app


async def doctor(homeserver_url: str | None, issuer: str | None = None) -> tuple[int, str]:
    """The report as text, and the exit status."""
    out = io.StringIO()
    status = await asyncio.to_thread(run_homeserver_doctor, homeserver_url, issuer, out=out)
    return status, out.getvalue()


async def doctor_json(homeserver_url: str | None, issuer: str | None = None) -> dict[str, Any]:
    out = io.StringIO()
    await asyncio.to_thread(run_homeserver_doctor, homeserver_url, issuer, as_json=True, out=out)
    data = json.loads(out.getvalue())
    assert isinstance(data, dict)
    return data


# --- working deployments -------------------------------------------------------------------------


async def test_the_demo_stack_works_and_still_needs_the_shim() -> None:
    """A MAS 0.9 portal with the shim in front: every link lands, the shim renames them."""
    async with (
        demo_stack("mas-0.9", {"account_management": {"dialect": "mas-0.9"}}) as stack,
        homeserver(stack.shim_url + "/") as hs,
    ):
        status, out = await doctor(hs)
    assert status == 0, out
    assert "OK    auth_metadata " in out
    assert f"OK    account_management_uri: {stack.shim_url}/account/" in out
    assert (
        "OK    org.matrix.device_delete lands: 302 -> 200, the page gets org.matrix.session_end"
        in out
    )
    assert "OK    Element Web / matrix-js-sdk (2026): its deep links land" in out
    verdict = out.splitlines()[-4:]
    assert verdict[0] == (
        "INFO  the shim (or another translator) is in front and still needed, because:"
    )
    assert verdict[1].startswith("        - a redirect in front of the portal renames stable")
    assert verdict[2].startswith("      — or upgrade the portal: MAS >= 1.10")
    assert verdict[3] == "no problems: clients will work"


async def test_a_mas_1_10_portal_needs_no_shim() -> None:
    async with serve_app(portal_app("mas-1.10-and-later")) as issuer, homeserver(issuer.url) as hs:
        status, out = await doctor(hs)
        data = await doctor_json(hs)
    assert status == 0, out
    assert (
        "INFO  this deployment does not need the shim: the portal looks like MAS-like 1.10" in out
    )
    assert "WARN" not in out
    assert (data["exit_status"], data["needs_shim"], data["problems"]) == (0, False, [])
    assert data["account_management_actions_supported"][:2] == [
        "org.matrix.profile",
        "org.matrix.devices_list",
    ]
    assert all(link["lands"] for link in data["deep_links"])


# --- doctor says who it is ---------------------------------------------------------------------


async def test_doctor_says_who_it_is_on_every_request() -> None:
    portal = portal_app("mas-1.10-and-later")
    at_portal = recording(portal)
    async with serve_app(portal) as issuer:
        hs_app = homeserver_app(issuer.url)
        at_homeserver = recording(hs_app)
        async with serve_app(hs_app) as hs:
            status, out = await doctor(hs.url)
        assert status == 0, out
        # the homeserver is asked by doctor only; the portal also by the homeserver's own client
        assert len(at_homeserver) >= 4
        assert set(at_homeserver) == {DOCTOR_USER_AGENT}
        at_portal.clear()
        status, out = await doctor(None, issuer.url)
        assert status == 0, out
    assert len(at_portal) >= 10  # the issuer's document and every deep link
    assert set(at_portal) == {DOCTOR_USER_AGENT}


async def test_a_doctor_run_through_the_shim_is_not_client_traffic() -> None:
    """Pointed at the shim itself (the demo without a homeserver): its probes, its 404s on the
    homeserver's paths and its follow-ups of the shim's redirects are doctor's, not clients'."""
    async with demo_stack("mas-0.9") as stack:
        for _ in range(2):
            _status, out = await doctor(stack.shim_url + "/", stack.shim_url + "/")
            assert "the shim (or another translator) is in front and still needed" in out
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.1)  # the counts reach /metrics at the end of each exchange
            async with session.get(stack.admin_url + "/metrics") as response:
                counters = parse_counters(await response.text())
        report = io.StringIO()
        config = stack.shim.state.runtime.config
        await asyncio.to_thread(run_doctor, config, shim_admin_url=stack.admin_url, out=report)
    assert counters is not None
    assert counters.client_deeplinks == ()
    assert dict(counters.discovery) == {}
    assert counters.doctor_discovery["rewritten"] >= 1
    assert counters.doctor_discovery["passthrough_status"] >= 2  # the homeserver's paths: 404
    doctors = {(d.client, d.outcome) for d in counters.deeplinks}
    assert {client for client, _ in doctors} == {"doctor"}
    assert {"redirect", "followup", "passthrough", "strip"} == {outcome for _, outcome in doctors}
    said = report.getvalue()
    assert "INFO  no client deep link seen since the shim started" in said
    assert "legacy-named" not in said
    assert "relayed untouched" not in said
    assert "requests from msc4191-shim doctor" in said


# --- broken deployments --------------------------------------------------------------------------


async def test_a_portal_without_account_management_uri_breaks_synapse() -> None:
    """The prototype portal publishes only org.matrix.msc4191.*: auth_metadata answers 500."""
    async with portal("prototype-unstable-keys") as issuer, homeserver(issuer) as hs:
        status, out = await doctor(hs)
    assert status == 1, out
    assert "/_matrix/client/v1/auth_metadata answers 500 M_UNKNOWN (Internal server error)" in out
    assert (
        "FAIL  the issuer's document has no account_management_uri "
        "(only the unstable org.matrix.msc4191.account_management_uri)" in out
    )
    assert "- Synapse refuses the issuer's document (auth_metadata answers 500)" in out
    assert "looks like a prototype portal (only the unstable org.matrix.msc4191.* keys)" in out


async def test_a_portal_with_legacy_names_only_fails_current_clients() -> None:
    async with portal("mas-0.9") as issuer, homeserver(issuer) as hs:
        status, out = await doctor(hs)
    assert status == 1, out
    assert "looks like MAS 0.9-1.9 (legacy names, with cross-signing reset)" in out
    assert "- org.matrix.session_end without org.matrix.device_delete" in out
    assert (
        "- FAIL " + issuer + "/account/?action=org.matrix.device_delete&device_id=MSC4191DOCTOR"
        " — the portal advertises org.matrix.session_end instead" in out
    )
    problems = out[out.index("problems:") :]
    assert "Element Web / matrix-js-sdk (2026)" in problems
    assert "Element X / matrix-rust-sdk (new)" in problems
    assert "- the portal advertises only legacy names for org.matrix.devices_list" in out


async def test_a_portal_that_fails_an_advertised_action() -> None:
    app = portal_app("mas-1.10-and-later", failing={"org.matrix.cross_signing_reset": 500})
    async with serve_app(app) as issuer, homeserver(issuer.url) as hs:
        status, out = await doctor(hs)
    assert status == 1, out
    assert (
        "FAIL  the portal advertises org.matrix.cross_signing_reset, but its deep link fails: 500"
        in out
    )
    assert out.rstrip().splitlines()[-1].startswith("  - the portal advertises org.matrix.cross")


async def test_a_redirect_loop_is_bounded() -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/account/?action={request.query.get('action', '')}&again=1")

    async with serve_app(_with_looping_account(loop)) as issuer:
        status, out = await doctor(None, issuer.url)
    assert status == 1, out
    assert "302 -> 302 -> 302 -> 302 -> 302 -> 302 -> more than 5 redirects" in out


def _with_looping_account(handler: Any) -> web.Application:
    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(vector_document("mas-1.10-and-later", f"http://{request.host}/"))

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/account/", handler)
    return app


async def test_an_unreachable_homeserver_is_one_line() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    status, out = await doctor(url)
    assert status == 1
    assert out == (
        f"FAIL  the homeserver {url} does not answer: cannot connect to 127.0.0.1:{port}: "
        "connection refused  — check --homeserver, that it runs, and that this host can reach it\n"
    )


async def test_an_unreachable_issuer_alone_is_one_line() -> None:
    port = free_port()
    code, out, err = await run_cli("doctor", "--issuer", f"http://127.0.0.1:{port}")
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"FAIL  the issuer http://127.0.0.1:{port} does not answer: cannot connect to "
        f"127.0.0.1:{port}: connection refused  — check --issuer, that it runs, and that this "
        "host can reach it"
    ]


async def test_an_unreachable_issuer() -> None:
    issuer = f"http://127.0.0.1:{free_port()}/"
    async with homeserver(issuer) as hs:
        status, out = await doctor(hs)
    assert status == 1, out
    document = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    assert f"FAIL  the issuer's document {document} does not answer: " in out
    assert "FAIL  no discovery document clients could read" in out


async def test_the_command_exits_within_the_deadline_with_one_line() -> None:
    """A homeserver that accepts and never answers: the deadline, not a hang, ends the run."""
    hung: list[asyncio.StreamWriter] = []

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        code, out, err = await run_cli("doctor", "--homeserver", f"http://127.0.0.1:{port}")
        took = time.monotonic() - started
    finally:
        server.close()
        for writer in hung:
            writer.close()
    assert code == 1, (out, err)
    assert took < 30
    assert err == ""
    assert out == (
        f"FAIL  the homeserver http://127.0.0.1:{port} does not answer: no answer within 5 s"
        "  — check --homeserver, that it runs, and that this host can reach it\n"
    )


async def test_the_command_as_ci_runs_it() -> None:
    async with serve_app(portal_app("mas-1.10-and-later")) as issuer, homeserver(issuer.url) as hs:
        code, out, err = await run_cli("doctor", "--homeserver", hs, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["homeserver"] == hs
    assert data["issuer"] == issuer.url + "/"
    assert data["needs_shim"] is False
    assert [s["title"] for s in data["sections"]] == [
        "discovery",
        "advertised deep links",
        "clients",
        "verdict",
    ]


@pytest.mark.parametrize("bad", ["ftp://example.com", "https://", "https://example.com/?x=1"])
async def test_a_bad_homeserver_url_is_a_usage_error(bad: str) -> None:
    code, out, err = await run_cli("doctor", "--homeserver", bad)
    assert (code, out) == (2, "")
    assert err.startswith("doctor: expected ")
    assert len(err.strip().splitlines()) == 1
