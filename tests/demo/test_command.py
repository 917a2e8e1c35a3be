"""`python -m demo` (`make demo`) as a person runs it: read the links, open them, open the status
page, run the doctor command it prints, Ctrl-C; and a taken port is one line, not a traceback."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import hdrs
from yarl import URL

from demo.portal import HOME_VIEW, PORTAL_ACTION_HEADER, view_for
from tests.support.loopback import free_port
from tests.support.paths import REPO

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
DEEP_LINK = re.compile(r"^\s+(?P<label>.+?)\s{2,}(?P<url>http://\S+/account/\?action=\S+)$")
#: what each printed link shows on the default portal (mas-0.9), by its label
EXPECTED_VIEW = {
    "profile": "profile",
    "devices list": "sessions",
    "view a device": "session",
    "log out a device": "session-end",
    "deactivate (unsupported: stripped)": HOME_VIEW,
    "legacy name, passed through": "session-end",
}


@asynccontextmanager
async def running_demo(
    port: int, stderr_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """Start the demo, yield it with the lines it printed up to "Ctrl-C to stop."."""
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "demo",
            "--port",
            str(port),
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        lines = await asyncio.wait_for(_read_banner(process), START_TIMEOUT)
        yield process, lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _read_banner(process: asyncio.subprocess.Process) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Ctrl-C to stop.":
        line = await process.stdout.readline()
        assert line, f"the demo stopped printing early: {lines}"
        lines.append(line.decode().rstrip("\n"))
    return lines


async def _follow(
    client: aiohttp.ClientSession, url: str
) -> tuple[list[int], aiohttp.ClientResponse]:
    """GET `url`, following redirects by hand; the statuses on the way and the last response."""
    statuses: list[int] = []
    for _ in range(5):
        async with client.get(URL(url, encoded=True), allow_redirects=False) as response:
            await response.read()
        statuses.append(response.status)
        if response.status != 302:
            return statuses, response
        url = str(URL(url).join(URL(response.headers[hdrs.LOCATION], encoded=True)))
    raise AssertionError(f"redirect loop: {statuses}")


async def _run_the_printed_doctor(lines: list[str], port: int) -> None:
    """The doctor command the demo prints, run as printed from the checkout: clients will work."""
    prefix = "Check it as clients see it: "
    [command] = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    args = shlex.split(command)
    assert args[0] == ".venv/bin/msc4191-shim" or args[0].endswith("/msc4191-shim"), command
    assert args[1:] == ["doctor", "--issuer", f"http://127.0.0.1:{port}"]
    doctor = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shim",
        *args[1:],
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(doctor.communicate(), 40)
    assert doctor.returncode == 0, (out, err)
    assert out.decode().rstrip().endswith("no problems: clients will work")


async def test_a_taken_port_is_one_line_with_the_way_out(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "demo",
            "--port",
            str(port),
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    assert process.returncode == 1
    assert out == b""
    assert err.decode().splitlines() == [
        f"python -m demo: cannot listen on 127.0.0.1:{port}: address already in use; pick "
        f"another port: make demo PORT={port + 10} (or python -m demo --port {port + 10})"
    ]


async def test_the_demo_links_land_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    port = free_port()
    stderr_path = tmp_path / "demo.log"
    async with running_demo(port, stderr_path) as (process, lines):
        links = [m.groupdict() for line in lines if (m := DEEP_LINK.match(line))]
        assert [link["label"] for link in links] == list(EXPECTED_VIEW), lines
        assert all(link["url"].startswith(f"http://127.0.0.1:{port}/account/") for link in links)
        async with aiohttp.ClientSession() as client:
            # the first stable link the portal does not speak: one redirect, then its page
            statuses, landed = await _follow(client, links[1]["url"])
            assert statuses == [302, 200]
            assert landed.headers[PORTAL_ACTION_HEADER] == "org.matrix.sessions_list"
            for link in links:
                statuses, landed = await _follow(client, link["url"])
                assert statuses[-1] == 200, link
                assert len(statuses) <= 2, link
                shown = view_for("mas-0.9", landed.headers.get(PORTAL_ACTION_HEADER))
                assert shown == EXPECTED_VIEW[link["label"]], link
            discovery = next(line.split()[-1] for line in lines if "openid-configuration" in line)
            async with client.get(discovery) as response:
                document = await response.json()
            assert document["account_management_uri"] == f"http://127.0.0.1:{port}/account/"
            assert "org.matrix.devices_list" in document["account_management_actions_supported"]
            status_page = next(line.split()[2] for line in lines if line.startswith("Status page:"))
            async with client.get(status_page) as response:
                assert response.status == 200
                assert "org.matrix.devices_list" in await response.text()
        await _run_the_printed_doctor(lines, port)
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        assert code == 0, stderr_path.read_text()
