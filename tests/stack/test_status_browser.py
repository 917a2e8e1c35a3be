"""The admin status page in a real headless Chromium, after known traffic through a real shim.

The DOM Chromium renders must carry the counts the traffic made, and its screenshot must show the
bars in their colours: the page needs nothing but itself (no script, no external asset).
`STATUS_PAGE_SCREENSHOT=docs/status-page.png` also writes the screenshot the README shows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ShimFor
from tests.proxy.test_status_page import (
    EXPECTED,
    Rows,
    portal_with_a_broken_route,
    send_known_traffic,
    settled,
)
from tests.support.browser import CHROMIUM, render_dom, require_chromium

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1000, 900
#: the bar colours of obs.status_html: stable and legacy names
STABLE_RGB = (0x2E, 0x8B, 0x57)
LEGACY_RGB = (0xE0, 0x8A, 0x00)


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


async def screenshot(url: str, out: Path) -> None:
    """`chromium --screenshot` of `url` at WIDTH x HEIGHT into `out` (PNG)."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = await asyncio.create_subprocess_exec(
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--no-proxy-server",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 60)
        except BaseException:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, stderr.decode("utf-8", "replace")[-2000:]


def png_pixels(data: bytes) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and the set of RGB colours of an 8-bit RGB(A), non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert colour in (2, 6), colour  # RGB or RGBA
    step = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * step
    previous, colours = bytearray(stride), set[tuple[int, int, int]]()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            a = line[x - step] if x >= step else 0
            b, c = previous[x], previous[x - step] if x >= step else 0
            line[x] = (line[x] + _predict(kind, a, b, c)) & 0xFF
        colours.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, step))
        previous = line
    return width, height, colours


def _predict(kind: int, a: int, b: int, c: int) -> int:
    if kind == 0:
        return 0
    if kind in (1, 2):
        return a if kind == 1 else b
    if kind == 3:
        return (a + b) // 2
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


async def test_chromium_renders_the_counts_and_the_bars(
    shim_for: ShimFor, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    upstream, _seen = portal_with_a_broken_route()
    shim = await shim_for(upstream)
    await send_known_traffic(client, shim.url)
    await settled(client, shim.admin_url)

    dom = await render_dom(shim.admin_url + "/")
    rows = Rows()
    rows.feed(dom)
    assert {k: n for k, n in rows.rows.items() if k[0] != "errors"} == EXPECTED
    assert sum(n for (table, _), n in rows.rows.items() if table == "errors") == 1
    assert rows.verdict == "needed"
    assert "clients still sent 3 legacy-named deep links" in dom

    picture = tmp_path / "status.png"
    await screenshot(shim.admin_url + "/", picture)
    width, height, colours = png_pixels(picture.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert STABLE_RGB in colours, "no stable bar on the screenshot"
    assert LEGACY_RGB in colours, "no legacy bar on the screenshot"
    if target := os.environ.get("STATUS_PAGE_SCREENSHOT"):
        shutil.copyfile(picture, target)
