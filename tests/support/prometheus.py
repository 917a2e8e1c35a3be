"""A real Prometheus on loopback scraping a shim's admin listener every second.

Debian's `prometheus` (scripts/setup.sh --test installs it, without its exporters). Tests start one
per target with `start_prometheus`, query it over its HTTP API, and stop it at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.loopback import HOST, free_port
from tests.support.prerequisites import unavailable

JOB = "msc4191-shim"
WAIT = 30.0


def require_prometheus() -> str:
    """The `prometheus` binary; skips the test when it is missing, or fails under CI."""
    found = shutil.which("prometheus")
    if found is None:
        unavailable("prometheus is not installed; run scripts/setup.sh --test")
    return str(found)


class Prometheus:
    """A Prometheus process on loopback, scraping one target every second as job JOB."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params={"query": expr}) as response,
        ):
            body = await response.json()
        assert response.status == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, expr: str) -> float:
        result = await self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    async def by(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """The vector's values keyed by the values of `labels`."""
        return {
            tuple(row["metric"].get(label, "") for label in labels): float(row["value"][1])
            for row in await self.query(expr)
        }

    async def until(self, expr: str, want: float) -> None:
        """Wait until `expr` (one number) is `want` in what Prometheus has scraped."""
        seen: object = "nothing"
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        if (seen := await self.value(expr)) == want:
                            return
                    except (aiohttp.ClientError, AssertionError) as e:
                        seen = e  # not up yet, or the series not scraped yet
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(
                f"{expr} never became {want} in {WAIT} s; last: {seen!r}"
            ) from None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_prometheus(directory: Path, target: str) -> Prometheus:
    """Prometheus scraping `target` (`127.0.0.1:PORT`) every second; its files in `directory`."""
    binary = require_prometheus()
    port = free_port()
    config = directory / "prometheus.yml"
    settings = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with (directory / "prometheus.log").open("wb") as log:
        command = [binary, f"--config.file={config}", f"--web.listen-address={HOST}:{port}"]
        command += [f"--storage.tsdb.path={directory / 'data'}", "--log.level=warn"]
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=directory)
    return Prometheus(f"http://{HOST}:{port}", process)
