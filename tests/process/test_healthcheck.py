"""`msc4191-shim healthcheck` (the image's HEALTHCHECK) asks the admin listener the configuration
names, wherever the operator moved it, and fails with a reason when nothing answers there."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.conftest import ShimProcessFactory, UpstreamFactory
from tests.process.test_edge_process import _hello_app
from tests.support.loopback import child_env, free_port, shim_settings, write_config
from tests.support.paths import REPO


async def healthcheck(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shim",
        "healthcheck",
        *args,
        cwd=REPO,
        env={**child_env(), **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_healthcheck_follows_the_configured_admin_address(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory, tmp_path: Path
) -> None:
    endpoint = await upstream_factory(_hello_app())
    port = free_port()  # not the image's 9090: the check must read it from the configuration
    settings = shim_settings(endpoint.url, admin={"listen": f"0.0.0.0:{port}"})
    shim = await shim_process_factory(settings)
    config = tmp_path / "same.yaml"
    write_config(config, settings)
    assert await healthcheck("--config", str(config)) == (
        0,
        f"http://127.0.0.1:{port}/healthz answered 200\n",
        "",
    )
    # the variable that overrides the file moves what is asked, as it moves the listener
    elsewhere = free_port()
    status, _, err = await healthcheck(
        "--config", str(config), env={"MSC4191_SHIM_ADMIN_LISTEN": f"127.0.0.1:{elsewhere}"}
    )
    assert status == 1
    assert f"http://127.0.0.1:{elsewhere}/healthz did not answer" in err

    assert await shim.terminate(15) == 0
    status, out, err = await healthcheck("--config", str(config))
    assert (status, out) == (1, "")
    assert f"http://127.0.0.1:{port}/healthz did not answer (" in err
    assert "Traceback" not in err


async def test_healthcheck_with_a_broken_configuration_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("upstream: {url: 'not a url'}\n", encoding="utf-8")
    status, _, err = await healthcheck("--config", str(config))
    assert status == 2
    assert "upstream.url" in err
