"""The control for the Synapse test: real Synapse pointed straight at legacy portals, no shim.

Synapse (MAS mode) requires `account_management_uri` in the issuer's document. A prototype portal
that serves only the `org.matrix.msc4191.*` keys, or an MSC3824-era one with no key at all, breaks
discovery for every client (500); a matrix-authentication-service 0.9 document works. The shim's
own Synapse test reuses `start_synapse` with the shim in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from demo.portal import Era, discovery_document, make_portal_app
from tests.support.synapse import SynapseHandle, start_synapse

pytestmark = pytest.mark.synapse

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
RecordProperty = Callable[[str, object], None]

AUTH_METADATA_PATHS = (
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
)
WELL_KNOWN_PATH = "/.well-known/matrix/client"


async def _portal(aiohttp_server: ServerFactory, era: Era) -> str:
    """Serve the era's portal on 127.0.0.1; its base URL, which is also its issuer."""
    server = await aiohttp_server(make_portal_app(era))
    return str(server.make_url("/"))


async def _get_json(synapse: SynapseHandle, path: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(synapse.url(path)) as response,
    ):
        body = await response.json(content_type=None)
        assert isinstance(body, dict), f"{path} answered {body!r}"
        return response.status, body


def _report_startup(synapse: SynapseHandle, record_property: RecordProperty) -> None:
    record_property("synapse_startup_seconds", round(synapse.startup_seconds, 2))
    print(f"Synapse answered {synapse.startup_seconds:.2f} s after it was started")


@pytest.mark.parametrize("era", ["prototype-unstable-keys", "msc3824"])
async def test_synapse_refuses_a_portal_without_account_management_uri(
    aiohttp_server: ServerFactory, tmp_path: Path, record_property: RecordProperty, era: Era
) -> None:
    endpoint = await _portal(aiohttp_server, era)

    async with start_synapse(tmp_path, endpoint) as synapse:
        _report_startup(synapse, record_property)
        for path in (*AUTH_METADATA_PATHS, WELL_KNOWN_PATH):
            status, body = await _get_json(synapse, path)

            assert status == 500, f"{path}: {status} {body}"
            assert body["errcode"] == "M_UNKNOWN"
        # ...for the reason under test, not an unreachable portal:
        log = synapse.log_path.read_text("utf-8", "replace")
        assert "validation error for ServerMetadata" in log
        assert "account_management_uri" in log


async def test_synapse_republishes_a_mas_09_document(
    aiohttp_server: ServerFactory, tmp_path: Path, record_property: RecordProperty
) -> None:
    endpoint = await _portal(aiohttp_server, "mas-0.9")
    expected = discovery_document("mas-0.9", endpoint)

    async with start_synapse(tmp_path, endpoint) as synapse:
        _report_startup(synapse, record_property)
        for path in AUTH_METADATA_PATHS:
            status, body = await _get_json(synapse, path)

            assert (status, body) == (200, expected), path
        status, body = await _get_json(synapse, WELL_KNOWN_PATH)

    assert status == 200
    assert body["org.matrix.msc2965.authentication"] == {
        "issuer": endpoint,
        "account": f"{endpoint}account/",
    }
