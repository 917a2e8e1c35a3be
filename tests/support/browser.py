"""Headless Chromium for the end-to-end tests: load a URL, run its scripts, return the DOM.

Debian's `chromium` package (scripts/install-chromium.sh). `render_dom` returns the serialised DOM
after the page's scripts ran; `open_portal_page` also reads the demo portal's `<main id="view">`,
whose `data-href` is the URL the browser ended on (after any redirect).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from tests.support.prerequisites import require_file

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "install it with scripts/install-chromium.sh (Debian's chromium package)"

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--virtual-time-budget=5000",
    "--dump-dom",
)


def require_chromium() -> Path:
    """The Chromium binary; skips the test when it is missing, or fails when `CI` is set."""
    return require_file(CHROMIUM, f"{CHROMIUM} is missing; {INSTALL_HINT}", tool="chromium")


# A timeout of its own (ASYNC109) so that a hung Chromium costs 30 s, not the test's whole budget;
# a caller's asyncio.timeout works too: any cancellation kills the browser's process group.
async def render_dom(url: str, *, timeout: float = 30) -> str:  # noqa: ASYNC109
    """Load `url` in a fresh headless Chromium profile and return the DOM after its scripts ran."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = await asyncio.create_subprocess_exec(
            str(CHROMIUM),
            *_FLAGS,
            f"--user-data-dir={profile}",
            url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so a timeout also ends the renderer and zygote children.
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except BaseException:
            _kill_group(process.pid)
            await process.wait()
            raise
    if process.returncode != 0:
        tail = stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"chromium exited with {process.returncode} loading {url}:\n{tail}")
    return stdout.decode("utf-8", "replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class PortalPage:
    """What the demo portal's script rendered: the attributes of `<main id="view">`."""

    view: str
    action: str
    device_id: str
    href: str
    dom: str


class _ViewFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attributes: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "main" and found.get("id") == "view" and self.attributes is None:
            self.attributes = found


def parse_portal_page(dom: str) -> PortalPage:
    """Read `<main id="view">` out of a rendered DOM; AssertionError when it is not there."""
    finder = _ViewFinder()
    finder.feed(dom)
    finder.close()
    assert finder.attributes is not None, f'no <main id="view"> in the page:\n{dom[:2000]}'
    attributes = finder.attributes
    return PortalPage(
        view=attributes.get("data-view", ""),
        action=attributes.get("data-action", ""),
        device_id=attributes.get("data-device-id", ""),
        href=attributes.get("data-href", ""),
        dom=dom,
    )


async def open_portal_page(url: str, *, timeout: float = 30) -> PortalPage:  # noqa: ASYNC109
    """Open `url` (directly or through the shim) and read what the demo portal's page rendered."""
    return parse_portal_page(await render_dom(url, timeout=timeout))
