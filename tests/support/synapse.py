"""A real Synapse from PyPI on loopback, delegating auth to an account portal (MAS mode).

scripts/install-synapse.sh puts `matrix-synapse` in `.venv-synapse` at the repository root, its own
virtualenv so its pins never fight ours. `start_synapse` writes a minimal homeserver.yaml (SQLite,
one client-only listener on 127.0.0.1, nothing that reaches the network), starts Synapse, waits
until it answers, and stops it on exit, printing its log when the block failed.

Synapse fetches `<mas_endpoint>/.well-known/openid-configuration` on first use and keeps a good
document until it restarts: a test that changes the document starts a new Synapse.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from tests.support.loopback import free_port
from tests.support.paths import REPO
from tests.support.prerequisites import require_file

SYNAPSE_VENV = REPO / ".venv-synapse"
SYNAPSE_PYTHON = SYNAPSE_VENV / "bin" / "python"
INSTALL_HINT = "install it with scripts/install-synapse.sh (matrix-synapse from PyPI)"
SERVER_NAME = "localhost"
MAS_SECRET = "msc4191-shim-test-secret"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class SynapseHandle:
    base_url: str  # "http://127.0.0.1:<port>", no trailing slash
    port: int
    config_path: Path
    log_path: Path
    startup_seconds: float  # from spawning the process to the first answer on /versions

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def require_synapse() -> Path:
    """Synapse's interpreter; skips the test when it is missing, or fails when `CI` is set."""
    return require_file(SYNAPSE_PYTHON, f"{SYNAPSE_VENV} is missing; {INSTALL_HINT}")


def homeserver_config(
    directory: Path, port: int, mas_endpoint: str, extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """A minimal homeserver.yaml for a local instance delegating auth to `mas_endpoint`."""
    config: dict[str, object] = {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(directory / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / f"{SERVER_NAME}.signing.key"),
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "report_stats": False,
        "enable_metrics": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "serve_client_wellknown": True,
        "enable_registration": False,
        "password_config": {"enabled": False},
        "matrix_authentication_service": {
            "enabled": True,
            "endpoint": mas_endpoint,
            "secret": MAS_SECRET,
        },
    }
    config.update(extra or {})
    return config


@asynccontextmanager
async def start_synapse(
    tmp_path: Path,
    mas_endpoint: str,
    *,
    extra_config: Mapping[str, object] | None = None,
    name: str = "synapse",
) -> AsyncIterator[SynapseHandle]:
    """Run Synapse in `tmp_path/name` with `matrix_authentication_service.endpoint = mas_endpoint`.

    `extra_config` overrides top-level keys of the generated homeserver.yaml. Skips (or fails
    under CI) when .venv-synapse is missing.
    """
    python = require_synapse()
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()  # Synapse cannot listen on port 0
    config_path = directory / "homeserver.yaml"
    config = homeserver_config(directory, port, mas_endpoint, extra_config)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    log_path = directory / "synapse.log"
    handle_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            str(python),
            "-m",
            "synapse.app.homeserver",
            "-c",
            str(config_path),
            cwd=directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await _wait_until_answering(process, handle_url, log_path)
        yield SynapseHandle(handle_url, port, config_path, log_path, time.monotonic() - started)
    except BaseException:
        _dump_log(log_path)
        raise
    finally:
        await _stop(process)


async def _wait_until_answering(
    process: asyncio.subprocess.Process, base_url: str, log_path: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(
                    f"Synapse exited with status {process.returncode} while starting; "
                    f"its log is {log_path}"
                )
            with suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(f"{base_url}/_matrix/client/versions") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(
        f"Synapse did not answer on {base_url}/_matrix/client/versions within "
        f"{START_TIMEOUT:.0f} s; its log is {log_path}"
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        _kill(process)
        await process.wait()
    except asyncio.CancelledError:
        _kill(process)  # never leave a homeserver behind a cancelled test
        raise


def _kill(process: asyncio.subprocess.Process) -> None:
    with suppress(ProcessLookupError):
        process.kill()


def _dump_log(log_path: Path, limit: int = 20_000) -> None:
    # pytest shows captured stderr for a failing test: the homeserver's side of the story.
    text = log_path.read_text("utf-8", "replace") if log_path.exists() else "(no log)"
    print(f"----- Synapse log ({log_path}), last {limit} characters -----", file=sys.stderr)
    print(text[-limit:], file=sys.stderr)
