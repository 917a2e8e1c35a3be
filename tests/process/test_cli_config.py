"""The operator commands as a shell runs them: config dump and schema, --help, translate --dialect,
the warning for a misspelt variable, a YAML error with its file and line, a missing default file,
a mistake in a variable blamed on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from shim.config.parse import parse_config
from shim.config.schema import config_schema
from shim.config.source import DEFAULT_CONFIG_PATH
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


async def test_config_alone_names_its_subcommands_not_an_internal_name() -> None:
    code, out, err = await run_cli("config")
    assert (code, out) == (2, "")
    assert "the following arguments are required: {dump,schema}" in err
    assert "config_command" not in err
    code, _, err = await run_cli()
    assert code == 2
    assert "{run,check-config,translate,config,doctor}" in err


@pytest.mark.skipif(
    os.path.exists(DEFAULT_CONFIG_PATH),
    reason=f"{DEFAULT_CONFIG_PATH} exists on this machine: the default is not missing",
)
@pytest.mark.parametrize(
    ("args", "instead"),
    [
        (("check-config",), None),
        (("run",), None),
        (("config", "dump"), None),
        (("translate", "https://a.example/account/"), "translate --dialect mas-0.9 URL"),
        (("doctor",), "doctor --homeserver https://example.com"),
    ],
)
async def test_a_missing_default_file_says_how_to_give_one(
    args: tuple[str, ...], instead: str | None
) -> None:
    code, out, err = await run_cli(*args)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == (
        f"msc4191-shim {' '.join(a for a in args if not a.startswith('http'))}: no "
        "configuration file: no --config given, MSC4191_SHIM_CONFIG is not set, and the default "
        f"{DEFAULT_CONFIG_PATH} does not exist"
    )
    assert "give one with --config PATH or MSC4191_SHIM_CONFIG=PATH" in lines[1]
    assert (lines[2:] == []) if instead is None else instead in lines[2]


async def test_a_named_file_that_is_missing_is_not_the_default_message(tmp_path: Path) -> None:
    code, _, err = await run_with_env(
        {"MSC4191_SHIM_CONFIG": str(tmp_path / "none.yaml")}, "check-config"
    )
    assert code == 2
    assert "cannot read the configuration file: No such file or directory" in err


async def test_an_environment_mistake_is_blamed_on_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  url: http://127.0.0.1:8081\n")
    code, out, err = await run_with_env(
        {"MSC4191_SHIM_ADMIN_LISTEN": "9090"}, "check-config", "--config", path
    )
    assert (code, out) == (2, "")
    assert err.splitlines()[:2] == [
        f"1 configuration problem in {path} and the environment:",
        "  - admin.listen (set by MSC4191_SHIM_ADMIN_LISTEN): a bare port ('9090') would bind "
        "every interface and expose /metrics and the status page; write 127.0.0.1:9090 (this "
        "host only) or 0.0.0.0:9090 (every interface, as in a container)",
    ]


async def test_the_readme_example_is_what_check_config_prints(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = "$ msc4191-shim check-config --config bad.yaml\n"
    shown = readme.split(command)[1].split("```")[0].splitlines()
    (tmp_path / "bad.yaml").write_text(
        "upstream:\n  url: http://127.0.0.1:8081\n  read_timout: 5s\n"
        "account_management:\n  dialect: mas-0.8\n"
        "discovery:\n  actions: [sessions_list]\n",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shim",
        "check-config",
        "--config",
        "bad.yaml",
        cwd=tmp_path,
        env={**child_env(), "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert (proc.returncode, out) == (2, b"")
    assert err.decode().splitlines() == shown
