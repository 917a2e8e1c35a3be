"""`python -m demo`: the emulated legacy portal with the shim in front, on localhost.

The demo builds its configuration the way an operator would write it, then serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TypeGuard

from aiohttp import web

from demo.portal import ERAS, Era, make_portal_app
from shim.config.model import Config
from shim.config.parse import parse_config
from shim.obs.log_setup import configure_logging
from shim.server.process import run_loop, start, stop

#: the portal era -> the dialect the shim is configured with for it
DEMO_DIALECTS = {
    "mas-0.9": "mas-0.9",
    "mas-0.7": "mas-0.7",
    "prototype-unstable-keys": "mas-0.7",
    "msc3824": "msc3824",
    "mas-1.10": "mas-1.10",
}

DEMO_LINKS = (
    ("profile", "org.matrix.profile"),
    ("devices list", "org.matrix.devices_list"),
    ("view a device", "org.matrix.device_view&device_id=ABCDEFGH"),
    ("log out a device", "org.matrix.device_delete&device_id=ABCDEFGH"),
    ("deactivate (unsupported: stripped)", "org.matrix.account_deactivate"),
    ("legacy name, passed through", "org.matrix.session_end&device_id=ABCDEFGH"),
)


def _is_era(name: str) -> TypeGuard[Era]:
    return name in ERAS


def demo_config(era: Era, host: str, port: int, portal_url: str) -> Config:
    """The demo's shim, written as an operator would (admin on a port the kernel picks)."""
    return parse_config(
        {
            "listen": f"{host}:{port}",
            "upstream": {"url": portal_url},
            "admin": {"listen": f"{host}:0"},
            "log": {"format": "text"},
            "account_management": {"dialect": DEMO_DIALECTS[era]},
        },
        "demo",
    )


def shim_command() -> str:
    """How to run `msc4191-shim` from here: the script beside this interpreter (the checkout's
    .venv/bin/msc4191-shim, shown relative to the current folder), else the bare name."""
    script = Path(sys.executable).with_name("msc4191-shim")
    if not script.exists():
        return "msc4191-shim"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def banner(era: str, portal_url: str, origin: str, admin: str) -> str:
    """What the demo prints once it serves: the links to open, the status page, a doctor run."""
    return "\n".join(
        [
            f"msc4191-shim demo: a legacy portal ({era}) on {portal_url}, "
            f"the shim in front of it on {origin}",
            "Open these stable deep links; the legacy portal shows the right page:",
            *demo_links(origin),
            f"Status page: {admin}/    (what the shim changed, and whether it can go)",
            f"Metrics:     {admin}/metrics",
            f"Check it as clients see it: {shim_command()} doctor --issuer {origin}",
            "Ctrl-C to stop.",
        ]
    )


def port_in_use(host: str, port: int, error: OSError) -> str:
    """One line for a listener that cannot bind, with the way out."""
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    return (
        f"python -m demo: cannot listen on {host}:{port}: {reason}; pick another port: "
        f"make demo PORT={port + 10} (or python -m demo --port {port + 10})"
    )


def demo_links(origin: str) -> list[str]:
    lines = [f"  {label:<36} {origin}/account/?action={query}" for label, query in DEMO_LINKS]
    lines.append(f"  {'discovery document':<36} {origin}/.well-known/openid-configuration")
    return lines


async def _serve_demo(host: str, port: int, era: Era) -> int:
    portal = web.AppRunner(make_portal_app(era), access_log=None)
    await portal.setup()
    await web.TCPSite(portal, host, 0).start()  # a port the kernel picks: never taken
    portal_host, portal_port = portal.addresses[0][:2]
    portal_url = f"http://{portal_host}:{portal_port}"
    config = demo_config(era, host, port, portal_url)
    configure_logging(config.log.format, config.log.level)
    try:
        shim = await start(config, None)
    except OSError as exc:  # the port is taken (or the host is not this machine's)
        print(port_in_use(host, port, exc), file=sys.stderr)
        await portal.cleanup()
        return 1
    origin = f"http://{host}:{port}"
    print(banner(era, portal_url, origin, f"http://{shim.bound[-1]}"), flush=True)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shim.stopping.set)
    await shim.stopping.wait()
    await stop(shim)
    await portal.cleanup()
    return 0


def run_demo(host: str, port: int, era: str) -> int:
    if not _is_era(era):
        print(f"--era: expected one of {', '.join(ERAS)}, got {era!r}")
        return 2
    return run_loop(lambda: _serve_demo(host, port, era))
