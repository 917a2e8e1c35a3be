"""`--workers N` and the workers' shared metrics: refused without a directory they can share,
and a dead worker's live gauges dropped (shim/server/workers.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shim.obs import MULTIPROC_ENV
from shim.obs.snapshots import COUNTS_SUFFIX, WORKER_FILE_PREFIX, live_files
from shim.server.workers import share_metrics_between
from tests.conftest import RawUpstreamFactory, ShimProcessFactory
from tests.support.loopback import (
    child_pids,
    free_port,
    run_cli,
    shim_settings,
    tcp_sockets,
    write_config,
)

WAIT = 15.0


def _two_worker_settings(upstream: str) -> dict[str, object]:
    # workers share one port by SO_REUSEPORT, so it is chosen beforehand
    return shim_settings(
        upstream,
        listen=f"127.0.0.1:{free_port()}",
        admin={"listen": f"127.0.0.1:{free_port()}"},
    )


def _start_failed(stderr: str) -> dict[str, object]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    (failed,) = [e for e in events if e.get("event") == "start_failed"]
    assert not [e for e in events if e.get("event") == "ready"], "no worker may start"
    assert isinstance(failed, dict)
    return failed


async def test_workers_refuse_to_start_without_a_shared_metrics_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_directory = tmp_path / "metrics"
    not_a_directory.write_text("a file, not a directory")
    monkeypatch.setenv(MULTIPROC_ENV, str(not_a_directory))
    config = tmp_path / "shim.yaml"
    write_config(config, _two_worker_settings(f"http://127.0.0.1:{free_port()}"))
    status, _, stderr = await run_cli("run", "--config", str(config), "--workers", "2")
    assert status == 1, stderr
    assert "Traceback" not in stderr
    failed = _start_failed(stderr)
    assert failed["level"] == "ERROR"
    error = str(failed["error"])
    assert error.startswith("--workers 2: the workers' metrics need a shared directory")
    assert f"{MULTIPROC_ENV}={str(not_a_directory)!r} cannot be prepared" in error
    assert "make it a directory the shim's user can write" in error


def test_without_the_variable_an_unusable_temporary_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor's own fallback, a new directory under TMPDIR: refused with what to do,
    never a warning and N workers each counting alone."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    with pytest.raises(OSError, match="--workers 3: cannot create a directory") as refused:
        share_metrics_between(3)
    assert f"set {MULTIPROC_ENV} to a directory the shim's user can write" in str(refused.value)
    assert "tmpfs or emptyDir" in str(refused.value)
    assert MULTIPROC_ENV not in os.environ


def counts_files(directory: Path, pid: int) -> list[Path]:
    return list(directory.glob(f"{WORKER_FILE_PREFIX}{pid}-*{COUNTS_SUFFIX}"))


async def _in_flight(admin_url: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(admin_url + "/metrics") as r:
        text = await r.text()
    families = text_string_to_metric_families(text)
    (family,) = [f for f in families if f.name == "msc4191_shim_requests_in_flight"]
    return sum(sample.value for sample in family.samples)


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"never true within {WAIT} s: {what}") from None


async def test_a_dead_worker_no_longer_counts_in_flight(
    shim_process_factory: ShimProcessFactory,
    raw_upstream_factory: RawUpstreamFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker killed with requests in flight leaves its live file behind; the supervisor
    removes it (as prometheus-client's `mark_process_dead` does), so the sum is right again."""
    directory = tmp_path / "metrics"
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))

    async def never_answers(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the request until the shim's side goes away

    upstream = await raw_upstream_factory(never_answers)
    shim = await shim_process_factory(_two_worker_settings(upstream.url), "--workers", "2", ready=2)
    workers = child_pids(shim.proc.pid)
    for pid in workers:
        assert live_files(directory, pid), "each worker has its live file"

    held = 4
    clients = [await asyncio.open_connection("127.0.0.1", shim.port) for _ in range(held)]
    for _, writer in clients:
        writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")

    async def all_held() -> bool:
        return await _in_flight(shim.admin_url) == held

    await _until("every request in flight", all_held)
    holding = {
        pid: sum(1 for s in tcp_sockets(pid) if s[0] == "01" and s[2] == upstream.port)
        for pid in workers
    }
    victim = max(holding, key=lambda pid: holding[pid])
    assert holding[victim] > 0
    os.kill(victim, signal.SIGKILL)  # a worker of the supervisor this test started
    await shim.wait_for_event("worker_died", within=WAIT)
    assert not live_files(directory, victim)
    assert counts_files(directory, victim), "its counts stay: counters never go backwards"

    async def survivors_only() -> bool:
        return await _in_flight(shim.admin_url) == held - holding[victim]

    await _until("the dead worker's requests dropped", survivors_only)
    for _, writer in clients:
        writer.close()
    assert await shim.terminate(WAIT) == 1, "a worker died"
