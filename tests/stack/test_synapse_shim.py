"""Real Synapse (MAS mode) behind the shim: discovery works on a portal that alone breaks it.

The control (tests/test_synapse_control.py) shows the same Synapse answering 500 when it talks to
the prototype portal directly. Here the shim stands between them.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from demo.portal import Era
from shim.vocabulary import STABLE_ACTIONS
from tests.support.e2e import demo_stack
from tests.support.synapse import start_synapse
from tests.unit.core.test_spec_schema import api_schema, errors

pytestmark = pytest.mark.synapse

AUTH_METADATA_PATHS = (
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
)
#: the prototype portal advertises these four legacy names (see demo.portal)
PROTOTYPE_STABLE = [
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
]


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json(content_type=None)
        assert isinstance(body, dict), body
        return response.status, body


@pytest.mark.parametrize(
    ("era", "dialect", "expected_actions"),
    [
        ("prototype-unstable-keys", "mas-0.7", PROTOTYPE_STABLE),
        # no list and no URI at all: the shim derives both from its configuration
        ("msc3824", "msc3824", PROTOTYPE_STABLE),
    ],
)
async def test_synapse_discovery_works_through_the_shim(
    tmp_path: Path, era: Era, dialect: str, expected_actions: list[str]
) -> None:
    async with (
        demo_stack(era, {"account_management": {"dialect": dialect}}) as stack,
        start_synapse(tmp_path, stack.shim_url) as synapse,
    ):
        for path in AUTH_METADATA_PATHS:
            status, doc = await _get(synapse.url(path))
            assert status == 200, (path, doc)
            assert doc["account_management_uri"] == f"{stack.shim_url}/account/"
            assert doc["account_management_actions_supported"] == expected_actions
            assert set(expected_actions) <= set(STABLE_ACTIONS)
            assert doc["issuer"] == f"{stack.shim_url}/"
            # what Synapse serves validates against the Matrix spec (v1.19), action enum included
            assert errors(api_schema(), doc) == []
        status, well_known = await _get(synapse.url("/.well-known/matrix/client"))
        assert status == 200, well_known
        auth = well_known["org.matrix.msc2965.authentication"]
        assert isinstance(auth, dict)
        assert auth["account"] == f"{stack.shim_url}/account/"
