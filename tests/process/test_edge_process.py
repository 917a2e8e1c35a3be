"""Process robustness: early signals, a worker supervisor that heals, SSL files checked up front.

Each test runs the real CLI as a child process and watches it from outside (its exit status, its
lifecycle events, /proc).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ShimProcessFactory, UpstreamFactory
from tests.support.loopback import (
    ShimProcess,
    child_pids,
    free_port,
    run_cli,
    shim_settings,
    spawn_shim,
    write_config,
)

WAIT = 15.0
NOT_A_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"


def _hello_app(text: str = "A") -> web.Application:
    async def root(request: web.Request) -> web.Response:
        return web.Response(text=text)

    app = web.Application()
    app.router.add_get("/", root)
    return app


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def _catches(pid: int, signum: signal.Signals) -> bool:
    """Whether `pid` has a handler for (or blocks) `signum`: /proc/<pid>/status SigCgt|SigBlk."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return False
    masks = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    bit = 1 << (signum - 1)
    return bool((int(masks["SigCgt"], 16) | int(masks["SigBlk"], 16)) & bit)


async def _until_caught(process: ShimProcess, signum: signal.Signals) -> None:
    async with asyncio.timeout(WAIT):
        while not _catches(process.proc.pid, signum):
            assert process.proc.returncode is None, process.stderr
            await asyncio.sleep(0.001)


async def _hup_until_ready(process: ShimProcess, ready: int) -> tuple[float, int]:
    """SIGHUP every 2 ms from the moment the process takes SIGHUP until `ready` events.

    Returns how long after exec the process took SIGHUP, and how many signals were sent.
    """
    spawned = time.monotonic()
    await _until_caught(process, signal.SIGHUP)
    taken = time.monotonic() - spawned
    sent = 0
    async with asyncio.timeout(WAIT):
        while len(process.events("ready")) < ready:
            assert process.proc.returncode is None, f"exit {process.proc.returncode}"
            process.send_signal(signal.SIGHUP)
            sent += 1
            await asyncio.sleep(0.002)
    for _ in range(20):  # and a burst once it serves
        process.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.002)
    return taken, sent


@pytest.mark.parametrize("attempt", range(3))
async def test_sighup_while_starting_never_ends_the_shim(
    upstream_factory: UpstreamFactory, tmp_path: Path, attempt: int
) -> None:
    endpoint = await upstream_factory(_hello_app())
    config = tmp_path / "shim.yaml"
    write_config(config, shim_settings(endpoint.url))
    process = await spawn_shim(config)
    try:
        taken, sent = await _hup_until_ready(process, ready=1)
        assert taken < 1.0, f"SIGHUP was fatal for {taken:.3f}s after exec"
        assert sent > 0
        await process.wait_for_event("reloaded")
        assert process.proc.returncode is None
        assert await _get(f"http://127.0.0.1:{process._bound('listen')}/") == (200, "A")
        assert await process.terminate(WAIT) == 0
    finally:
        await process.close()


async def test_a_sigterm_while_starting_stops_the_shim_cleanly(
    upstream_factory: UpstreamFactory, tmp_path: Path
) -> None:
    endpoint = await upstream_factory(_hello_app())
    config = tmp_path / "shim.yaml"
    write_config(config, shim_settings(endpoint.url))
    process = await spawn_shim(config)
    try:
        await _until_caught(process, signal.SIGTERM)
        assert await process.terminate(WAIT) == 0  # held, then acted on: drained and stopped
        assert process.events("stopped") or not process.events("ready")
    finally:
        await process.close()


async def test_workers_started_under_a_sighup_storm_all_come_up(
    upstream_factory: UpstreamFactory, tmp_path: Path
) -> None:
    endpoint = await upstream_factory(_hello_app())
    config = tmp_path / "shim.yaml"
    settings = shim_settings(
        endpoint.url,
        listen=f"127.0.0.1:{free_port()}",
        admin={"listen": f"127.0.0.1:{free_port()}"},
    )
    write_config(config, settings)
    process = await spawn_shim(config, "--workers", "2")
    try:
        await _hup_until_ready(process, ready=2)
        assert not process.events("worker_died"), process.stderr
        assert len(child_pids(process.proc.pid)) == 2
        assert await process.terminate(WAIT) == 0
    finally:
        await process.close()


async def test_a_killed_worker_is_restarted_and_the_supervisor_then_exits_1(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory
) -> None:
    endpoint = await upstream_factory(_hello_app())
    settings = shim_settings(
        endpoint.url,
        listen=f"127.0.0.1:{free_port()}",
        admin={"listen": f"127.0.0.1:{free_port()}"},
    )
    shim = await shim_process_factory(settings, "--workers", "2", ready=2)
    victim, survivor = child_pids(shim.proc.pid)
    os.kill(victim, signal.SIGKILL)  # a worker of the supervisor this test started
    await shim.wait_for_event("worker_died", within=WAIT)
    (died,) = shim.events("worker_died")
    assert (died["pid"], died["signal"], died["level"]) == (victim, "SIGKILL", "ERROR")
    await shim.wait_for_event("worker_restarted", within=WAIT)
    await shim.wait_for_event("ready", count=3, within=WAIT)
    (restarted,) = shim.events("worker_restarted")
    assert restarted["restarts_total"] == 1
    workers = child_pids(shim.proc.pid)
    assert survivor in workers
    assert victim not in workers
    assert len(workers) == 2
    assert await _get(f"{shim.url}/") == (200, "A")

    assert await shim.terminate(WAIT) == 1, "a worker died: the supervisor must not report success"


async def test_check_config_loads_the_ca_file_and_tls_files_as_run_does(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text(NOT_A_CERTIFICATE)
    empty = tmp_path / "empty.pem"
    empty.write_text("# no certificate here\n")
    config = tmp_path / "shim.yaml"
    write_config(
        config,
        {
            "upstream": {"url": "https://portal.internal", "ca_file": str(empty)},
            "tls": {"cert_file": str(bad), "key_file": str(bad)},
        },
    )
    code, out, err = await run_cli("check-config", "--config", str(config))
    assert (code, out) == (2, "")
    assert f"2 configuration problems in {config}:" in err
    assert f"upstream.ca_file: {str(empty)!r} holds no usable PEM certificate" in err
    assert f"tls: cannot load cert_file {str(bad)!r}" in err
    assert "Traceback" not in err
    code, _, err = await run_cli("run", "--config", str(config))
    assert code == 2
    assert "upstream.ca_file" in err


async def test_a_reload_that_cannot_be_applied_is_refused_whole(
    upstream_factory: UpstreamFactory, shim_process_factory: ShimProcessFactory, tmp_path: Path
) -> None:
    endpoint = await upstream_factory(_hello_app("old"))
    settings = shim_settings(endpoint.url)
    shim = await shim_process_factory(settings)
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    # every key changes, the log format included; the CA bundle is what cannot be built
    shim.rewrite_config(
        {
            **settings,
            "upstream": {"url": "https://127.0.0.1:1", "ca_file": str(empty)},
            "log": {"format": "text", "level": "DEBUG"},
        }
    )
    shim.send_signal(signal.SIGHUP)
    await shim.wait_for_event("reload_refused", within=WAIT)
    (refused,) = shim.events("reload_refused")
    assert any("upstream.ca_file" in error for error in refused["errors"]), refused
    assert not shim.events("reloaded")
    before = len(shim.lines)
    assert await _get(f"{shim.url}/") == (200, "old")  # the old upstream
    await asyncio.sleep(0.2)
    assert shim.lines[before:], "the request was not logged"
    assert all(line.startswith("{") for line in shim.lines[before:]), "log format changed"
    assert shim.proc.returncode is None
