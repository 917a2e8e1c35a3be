"""Stable deep links opened in headless Chromium, through the shim, land on the legacy page."""

from __future__ import annotations

import pytest

from demo.portal import Era
from shim.vocabulary import BUILTIN_ALIASES, STABLE_ACTIONS
from tests.support.browser import open_portal_page, require_chromium
from tests.support.e2e import UNSERVED, demo_stack, expected_view

pytestmark = pytest.mark.browser

DIALECT_OF: dict[Era, str] = {"mas-0.9": "mas-0.9", "msc3824": "msc3824"}


@pytest.mark.parametrize("era", ["mas-0.9", "msc3824"])
async def test_every_stable_link_lands_on_the_right_page(era: Era) -> None:
    require_chromium()
    config = {"account_management": {"dialect": DIALECT_OF[era]}}
    async with demo_stack(era, config) as stack:
        for action in STABLE_ACTIONS:
            url = f"{stack.shim_url}/account/?action={action}&device_id=ABCDEFGH"
            page = await open_portal_page(url)
            # unsupported: strip -> the portal's home, device_id kept
            assert page.view == expected_view(era, action), (action, page)
            if action not in UNSERVED[era]:
                assert page.device_id == "ABCDEFGH"
                assert page.href.startswith(stack.shim_url + "/account/?action=")


async def test_an_old_client_name_also_lands_right_on_a_modern_dialect() -> None:
    """Element X (old) sends org.matrix.session_end; a `msc3824` portal needs `session_end`."""
    require_chromium()
    async with demo_stack("msc3824", {"account_management": {"dialect": "msc3824"}}) as stack:
        assert BUILTIN_ALIASES["org.matrix.session_end"] == "org.matrix.device_delete"
        page = await open_portal_page(
            f"{stack.shim_url}/account/?device_id=XYZ&action=org.matrix.session_end"
        )
        assert page.view == "session-end"
        assert page.href == f"{stack.shim_url}/account/?device_id=XYZ&action=session_end"
