"""`config.dump`: the effective configuration, written so that it reads back the same."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shim.config.dump import (
    REDACTED,
    config_as_yaml_data,
    dump_config,
    format_duration,
    format_size,
    redact_url,
)
from shim.config.parse import apply_env_overrides, parse_config
from shim.config.values import parse_duration, parse_size
from tests.support.paths import REPO

EXAMPLE = yaml.safe_load((REPO / "config.example.yaml").read_text(encoding="utf-8"))


def test_a_dump_reads_back_as_the_same_configuration() -> None:
    config = parse_config(EXAMPLE)
    dumped = dump_config(config, "config.example.yaml")
    assert dumped.startswith("# msc4191-shim effective configuration: config.example.yaml")
    assert parse_config(yaml.safe_load(dumped)) == config


def test_defaults_and_environment_are_applied() -> None:
    raw = apply_env_overrides(
        {"upstream": {"url": "http://127.0.0.1:8081"}},
        {"MSC4191_SHIM_LOG_LEVEL": "debug", "MSC4191_SHIM_LISTEN": ":9999"},
    )
    data = config_as_yaml_data(parse_config(raw))
    assert data["log"] == {"format": "json", "level": "DEBUG", "flush_interval": "100ms"}
    assert data["listen"] == "0.0.0.0:9999"
    assert data["upstream"]["connect_timeout"] == "5s"
    assert data["discovery"]["max_body_bytes"] == "1MiB"
    assert data["account_management"]["dialect"] == "mas-0.9"
    assert data["account_management"]["aliases"] == {}


def test_a_custom_dialect_and_aliases_round_trip() -> None:
    raw = {
        "upstream": {"url": "http://127.0.0.1:8081"},
        "account_management": {
            "dialect": {"org.matrix.device_delete": "delete_device"},
            "aliases": {"org.matrix.deactivate_account": "org.matrix.account_deactivate"},
            "unsupported": {"redirect": "https://help.example.com/"},
        },
        "trusted_proxies": ["10.0.0.0/8"],
    }
    config = parse_config(raw)
    data = config_as_yaml_data(config)
    assert data["account_management"]["dialect"] == {"org.matrix.device_delete": "delete_device"}
    assert data["account_management"]["aliases"] == raw["account_management"]["aliases"]  # type: ignore[index]
    assert parse_config(data) == config


def test_the_example_file_dumps_as_it_is_written() -> None:
    """Every value `config dump` writes for the example reads as the example writes it (100ms,
    1MiB, 0.0.0.0:8080): the two are what an operator compares."""
    dumped = config_as_yaml_data(parse_config(EXAMPLE))
    assert dumped.pop("tls") is None  # commented out in the example
    assert dumped == EXAMPLE


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.1, "100ms"), (0.25, "250ms"), (0.0, "0s"), (10.0, "10s"), (1.5, "1.5s")],
)
def test_durations_are_written_as_the_example_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("size", "text"), [(1 << 20, "1MiB"), (32 << 10, "32KiB"), (3 << 30, "3GiB"), (1000, "1000")]
)
def test_sizes_are_written_in_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size


def test_credentials_are_redacted() -> None:
    assert redact_url("https://user:secret@portal.example.com/x") == (
        f"https://{REDACTED}:{REDACTED}@portal.example.com/x"
    )
    assert redact_url("https://token@portal.example.com/") == (
        f"https://{REDACTED}@portal.example.com/"
    )
    assert redact_url("https://portal.example.com/?a=b@c") == "https://portal.example.com/?a=b@c"
    assert redact_url("/etc/msc4191-shim/tls/key.pem") == "/etc/msc4191-shim/tls/key.pem"


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="@"), max_size=40))
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_url(text) == text


@given(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.from_regex(r"[a-z0-9]{6,12}", fullmatch=True)
)
def test_a_password_never_survives(user: str, password: str) -> None:
    redacted = redact_url(f"https://{user}:{password}@portal.example.com/")
    assert f":{password}@" not in redacted
    assert redacted.endswith("@portal.example.com/")
