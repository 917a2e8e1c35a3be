"""The real process logs one JSON line per request and per lifecycle event, and no secret."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import yaml
from yarl import URL

from tests.e2e_harness import portal
from tests.proxy_harness import free_port

SECRET = "s3cr3tvalue"


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            assert process.returncode is None, "the shim exited early"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the shim did not become healthy")


async def test_one_json_line_per_request_and_no_secret_anywhere(tmp_path: Path) -> None:
    async with portal("mas-0.9") as upstream:
        port, admin = free_port(), free_port()
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "listen": f"127.0.0.1:{port}",
                    "admin": {"listen": f"127.0.0.1:{admin}"},
                    "upstream": {"url": upstream},
                    "log": {"format": "json", "level": "DEBUG"},
                }
            )
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shim", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await _wait_ready(f"http://127.0.0.1:{admin}/healthz", process)
            base = f"http://127.0.0.1:{port}"
            queries = [
                f"/account/?id_token_hint={SECRET}&action=org.matrix.device_delete&device_id=D1",
                f"/callback?code={SECRET}&state={SECRET}",
                f"/account/?action=org.matrix.profile&login_hint={SECRET}",
                f"/account/?org.matrix.msc4198.login_hint={SECRET}",
            ]
            headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"}
            async with aiohttp.ClientSession() as session:
                for query in queries:
                    async with session.get(
                        URL(base + query, encoded=True), headers=headers, allow_redirects=False
                    ) as response:
                        await response.read()
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0
    output = stdout.decode() + stderr.decode()
    assert SECRET not in output
    assert "Traceback" not in output
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == len(queries), requests
    first = requests[0]
    for key in ("time", "method", "path", "status", "duration_ms", "bytes", "upstream_status"):
        assert key in first, (key, first)
    assert first["status"] == 302
    assert first["kind"] == "deeplink"
    assert first["outcome"] == "redirect"
    assert first["path"].startswith("/account/?id_token_hint=")
    assert "device_id=D1" in first["path"]
    assert requests[1]["kind"] == "passthrough"
    assert requests[1]["upstream_status"] == 404
    events = [line["event"] for line in lines if line.get("event") != "request"]
    assert events[0] == "ready"
    ready = next(line for line in lines if line.get("event") == "ready")
    # the `uvloop` extra is installed with the tests: the shim runs on it
    assert ready["event_loop"] == "uvloop"
    assert events[-2:] == ["draining", "stopped"]
