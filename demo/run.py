"""`python -m demo`: the emulated legacy portal with the shim in front, on localhost.

The demo builds its configuration the way an operator would write it, then serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TypeGuard

from aiohttp import web

from demo.portal import ERAS, Era, make_portal_app
from shim.config.parse import Config, parse_config
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
    shim = await start(config, None)
    origin = f"http://{host}:{port}"
    print(
        f"msc4191-shim demo: a legacy portal ({era}) on {portal_url}, "
        f"the shim in front of it on {origin}\n"
        "Open these stable deep links; the legacy portal shows the right page:\n"
        + "\n".join(demo_links(origin))
        + f"\nMetrics: http://{shim.bound[-1]}/metrics    (Ctrl-C to stop)",
        flush=True,
    )
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
