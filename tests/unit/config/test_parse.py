"""Configuration: parsed once, every problem reported at once with its key path and a fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shim.config.errors import ConfigError
from shim.config.parse import ENV_OVERRIDES, apply_env_overrides, load_config, parse_config
from shim.config.values import (
    ListenAddress,
    parse_duration,
    parse_flush_interval,
    parse_listen,
    parse_size,
)
from tests.support.paths import REPO

ROOT = REPO
GOLDEN = Path(__file__).parent / "golden"

BAD = {
    "listen": "x",
    "upstrem": {},
    "upstream": {"url": "foo", "read_timout": 3, "connect_timeout": "soon"},
    "public_url": "https://account.example.com/with/path",
    "trusted_proxies": ["10.0.0.0/8", "not-a-cidr"],
    "account_management": {
        "dialect": "mas",
        "strategy": "bounce",
        "unsupported": {"redirect": "ftp://x"},
        "aliases": {"org.matrix.deactivate_account": "deactivate"},
        "paths": ["account"],
    },
    "discovery": {"max_body_bytes": "lots", "advertise": "all", "actions": ["sessions_list"]},
    "log": {"level": "LOUD"},
}


def test_the_example_config_loads_and_documents_every_key() -> None:
    config = load_config(str(ROOT / "config.example.yaml"), env={})
    assert config.upstream.url.port == 8081
    assert config.account_management.table.dialect.name == "mas-0.9"
    text = (ROOT / "config.example.yaml").read_text()
    raw = yaml.safe_load(text)
    for section in ("upstream", "admin", "log", "account_management", "discovery"):
        assert isinstance(raw[section], dict), section
    for key in ("listen", "public_url", "trusted_proxies", "shutdown_grace", "tls", "cert_file"):
        assert key in text, key


def test_every_problem_is_reported_at_once_golden() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BAD, "bad.yaml")
    expected = (GOLDEN / "config_errors.txt").read_text()
    assert str(caught.value) + "\n" == expected


def test_unknown_keys_get_the_nearest_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"upstream": {"url": "http://p", "preserve_hots": True}, "dicsovery": {}})
    messages = [str(p) for p in caught.value.problems]
    assert "upstream.preserve_hots: unknown key; did you mean 'preserve_host'?" in messages
    assert "dicsovery: unknown key; did you mean 'discovery'?" in messages


def test_upstream_url_is_required() -> None:
    with pytest.raises(ConfigError, match=r"upstream\.url: required key is missing"):
        parse_config({})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("250ms", 0.25), ("2m", 120.0), (10, 10.0), ("1.5", 1.5), (0, 0.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1", "5 parsecs", True, None, "s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


def test_the_access_log_flush_interval_is_bounded() -> None:
    assert parse_config({"upstream": {"url": "http://p"}}).log.flush_interval == 0.1
    assert [parse_flush_interval(v) for v in (0, "250ms", "10s")] == [0.0, 0.25, 10.0]
    with pytest.raises(ConfigError, match=r"log\.flush_interval: expected at most 10s"):
        parse_config({"upstream": {"url": "http://p"}, "log": {"flush_interval": "1m"}})
    with pytest.raises(ConfigError, match=r"log\.flush_interval: expected a duration of zero"):
        parse_config({"upstream": {"url": "http://p"}, "log": {"flush_interval": -1}})


@pytest.mark.parametrize(
    ("text", "size"), [("1MiB", 1 << 20), ("512KiB", 512 << 10), (65536, 65536), ("2GB", 2 * 10**9)]
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:8080", ListenAddress("0.0.0.0", 8080)),
        ("[::1]:9090", ListenAddress("::1", 9090)),
        (":8080", ListenAddress("0.0.0.0", 8080)),
        ("localhost:1", ListenAddress("localhost", 1)),
    ],
)
def test_listen_addresses(text: str, address: ListenAddress) -> None:
    assert parse_listen(text) == address


def test_environment_overrides_each_documented_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream: {url: 'http://127.0.0.1:1'}\n")
    env = {
        "MSC4191_SHIM_LISTEN": "127.0.0.1:18080",
        "MSC4191_SHIM_UPSTREAM_URL": "http://portal:8081",
        "MSC4191_SHIM_PUBLIC_URL": "https://account.example.com",
        "MSC4191_SHIM_ADMIN_LISTEN": "0.0.0.0:9999",
        "MSC4191_SHIM_LOG_LEVEL": "debug",
        "MSC4191_SHIM_LOG_FORMAT": "text",
    }
    assert set(env) == set(ENV_OVERRIDES)
    config = load_config(str(path), env)
    assert config.listen == ListenAddress("127.0.0.1", 18080)
    assert str(config.upstream.url) == "http://portal:8081"
    assert str(config.public_url) == "https://account.example.com"
    assert config.admin.listen == ListenAddress("0.0.0.0", 9999)
    assert (config.log.level, config.log.format) == ("DEBUG", "text")


def test_a_bad_override_names_its_key() -> None:
    raw = apply_env_overrides({"upstream": {"url": "http://p"}}, {"MSC4191_SHIM_UPSTREAM_URL": "x"})
    with pytest.raises(ConfigError, match=r"upstream\.url: expected an http\(s\) URL"):
        parse_config(raw)


def test_config_objects_are_frozen() -> None:
    config = parse_config({"upstream": {"url": "http://p"}})
    with pytest.raises(AttributeError):
        config.listen = ListenAddress("x", 1)  # type: ignore[misc]


def test_custom_dialect_and_aliases() -> None:
    config = parse_config(
        {
            "upstream": {"url": "http://p"},
            "account_management": {
                "dialect": {"org.matrix.profile": "profile", "org.matrix.device_delete": "rm"},
                "aliases": {"org.matrix.delete_device": "org.matrix.device_delete"},
                "unsupported": {"redirect": "https://example.com/deactivate"},
            },
        }
    )
    table = config.account_management.table
    assert table.to_portal("org.matrix.device_delete") == "rm"
    assert table.to_stable("org.matrix.delete_device") == "org.matrix.device_delete"
    assert table.to_stable("rm") == "org.matrix.device_delete"
    assert table.to_portal("org.matrix.devices_list") is None


@pytest.mark.parametrize(
    ("content", "code", "needle"),
    [
        ("upstream: {url: 'http://127.0.0.1:1'}\n", 0, "configuration OK"),
        ("upstream: {url: nope}\nlisten: []\n", 2, "upstream.url: expected an http(s) URL"),
        ("upstream: [\n", 2, "not valid YAML"),
    ],
)
def test_check_config_command(tmp_path: Path, content: str, code: int, needle: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "shim", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == code, result
    assert needle in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shim",
            "check-config",
            "--config",
            str(tmp_path / "none.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot read the configuration file: No such file or directory" in result.stderr


@pytest.mark.parametrize(
    ("dialect", "message"),
    [
        (
            {"org.matrix.device_view": "session_end"},
            "org.matrix.device_view: 'session_end' is a name of org.matrix.device_delete; "
            "use the portal's own name for it",
        ),
        (
            {"org.matrix.profile": "me", "org.matrix.devices_list": "me"},
            "org.matrix.devices_list: portal name 'me' is already given to org.matrix.profile",
        ),
    ],
)
def test_a_custom_dialect_cannot_send_users_to_the_wrong_page(
    dialect: dict[str, str], message: str
) -> None:
    raw = {"upstream": {"url": "http://p"}, "account_management": {"dialect": dialect}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert [str(p) for p in caught.value.problems] == [f"account_management.dialect: {message}"]
