"""The operator commands as a shell runs them: config dump and schema, --help, translate --dialect,
the warning for a misspelt variable, a YAML error with its file and line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

from shim.config.parse import parse_config
from shim.config.schema import config_schema
from tests.support.loopback import child_env, run_cli
from tests.support.paths import REPO


async def run_with_env(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shim",
        *args,
        cwd=REPO,
        env={**child_env(), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_config_dump_applies_defaults_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  url: http://127.0.0.1:8081\n")
    code, out, err = await run_with_env(
        {"MSC4191_SHIM_LOG_LEVEL": "debug"}, "config", "dump", "--config", path
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"# msc4191-shim effective configuration: {path}")
    dumped = yaml.safe_load(out)
    assert dumped["log"]["level"] == "DEBUG"
    assert dumped["limits"]["head_timeout"] == "10s"
    assert parse_config(dumped).log.level == "DEBUG"


async def test_config_schema_is_the_committed_one() -> None:
    code, out, err = await run_cli("config", "schema")
    assert (code, err) == (0, "")
    assert json.loads(out) == config_schema()
    assert json.loads((REPO / "config.schema.json").read_text(encoding="utf-8")) == json.loads(out)


async def test_a_misspelt_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  url: http://127.0.0.1:8081\n")
    code, _, err = await run_with_env(
        {"MSC4191_SHIM_UPSTREAM_ULR": "http://elsewhere"}, "check-config", "--config", path
    )
    assert code == 0
    assert err == (
        "warning: environment variable MSC4191_SHIM_UPSTREAM_ULR is not one msc4191-shim reads; "
        "did you mean MSC4191_SHIM_UPSTREAM_URL?\n"
    )


async def test_a_yaml_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  url: http://127.0.0.1:8081\n  bad: [\n")
    code, out, err = await run_cli("check-config", "--config", path)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"1 configuration problem in {path}:",
        f"  - {path}, line 4, column 1: not valid YAML: expected the node content, but found "
        "'<stream end>' (while parsing a flow node)",
    ]


async def test_translate_with_a_dialect_needs_no_file() -> None:
    url = "https://account.example.com/account/?action=org.matrix.device_delete&device_id=X"
    code, out, err = await run_cli("translate", "--dialect", "mas-0.9", url)
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == (
        "  -> redirect to /account/?action=org.matrix.session_end&device_id=X "
        "(mas-0.9 speaks org.matrix.session_end for org.matrix.device_delete)"
    )
    code, out, err = await run_cli("translate", "--dialect", "mas-0.8", url)
    assert (code, out) == (2, "")
    assert "account_management.dialect: expected one of stable, mas-0.7, mas-0.9" in err


async def test_help_has_examples_environment_and_exit_codes() -> None:
    code, out, _ = await run_cli("--help")
    assert code == 0
    assert "msc4191-shim doctor --homeserver https://example.com --json" in out
    assert "MSC4191_SHIM_UPSTREAM_URL  overrides upstream.url" in out
    assert "  2  bad configuration or usage" in out
    assert "\nexit status:\n" in out
