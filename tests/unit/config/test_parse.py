"""Configuration: parsed once, every problem reported at once with its key path and a fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shim.config.errors import ConfigError
from shim.config.parse import ENV_OVERRIDES, apply_env_overrides, load_config, parse_config
from shim.config.schema import config_schema
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


# --- rules pinned one by one (each was changed by a mutation probe and nothing failed) -------


def _file_keys() -> list[tuple[str, str]]:
    """(section, key) for every key the file may hold, read from the schema the model generates:
    ("", "listen") for a top-level key, ("discovery", "cache") inside a section."""
    properties = config_schema()["properties"]
    found = [("", key) for key in properties]
    for section, schema in properties.items():
        options = [schema, *schema.get("anyOf", ())]
        for option in options:
            found += [(section, key) for key in option.get("properties", {})]
    return found


def _misspelt(key: str) -> str:
    return key[:-1] if key.endswith("s") else key + "s"


@pytest.mark.parametrize(("section", "key"), _file_keys(), ids=lambda v: v or "top")
def test_a_misspelt_key_is_refused_in_every_section_with_the_right_one_suggested(
    section: str, key: str
) -> None:
    bad = _misspelt(key)
    raw: dict[str, object] = {"upstream": {"url": "http://p"}}
    if section:
        inner = raw.setdefault(section, {})
        assert isinstance(inner, dict)
        inner[bad] = "x"
    else:
        raw[bad] = "x"
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    where = f"{section}.{bad}" if section else bad
    assert f"{where}: unknown key; did you mean '{key}'?" in [str(p) for p in caught.value.problems]


def test_the_issues_example_cache_tll_is_refused() -> None:
    raw = {"upstream": {"url": "http://p"}, "discovery": {"cache_tll": "5m"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert [str(p) for p in caught.value.problems] == [
        "discovery.cache_tll: unknown key; did you mean 'cache'?"
    ]


@pytest.mark.parametrize("text", [0, "0", "0KiB", "0 MiB"])
def test_a_size_of_zero_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="expected a size above zero"):
        parse_size(text)
    for section, key in (("discovery", "max_body_bytes"), ("limits", "max_head_bytes")):
        with pytest.raises(ConfigError, match=rf"{section}\.{key}: expected a size above zero"):
            parse_config({"upstream": {"url": "http://p"}, section: {key: text}})


@pytest.mark.parametrize("listen", ["0.0.0.0:65535", "[::1]:65535", ":65535", "65535"])
def test_port_65535_is_accepted(listen: str) -> None:
    assert parse_listen(listen).port == 65535


@pytest.mark.parametrize("listen", ["0.0.0.0:65536", "[::1]:65536", ":65536", "65536", ":99999"])
def test_a_port_above_65535_is_refused(listen: str) -> None:
    with pytest.raises(ValueError, match="expected a port from 0 to 65535, got"):
        parse_listen(listen)
    problem = r"^1 configuration problem:\n  - listen: expected a port"
    with pytest.raises(ConfigError, match=problem):
        parse_config({"upstream": {"url": "http://p"}, "listen": listen})


@pytest.mark.parametrize("bare", [9090, "9090"])
def test_a_bare_admin_port_is_refused_not_bound_on_every_interface(bare: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"upstream": {"url": "http://p"}, "admin": {"listen": bare}})
    assert [str(p) for p in caught.value.problems] == [
        f"admin.listen: a bare port ({bare!r}) would bind every interface and expose /metrics "
        "and the status page; write 127.0.0.1:9090 (this host only) or 0.0.0.0:9090 (every "
        "interface, as in a container)"
    ]
    # written out, every interface is a choice; and the public listener's bare port stays one
    admin = parse_config({"upstream": {"url": "http://p"}, "admin": {"listen": "0.0.0.0:9090"}})
    assert admin.admin.listen == ListenAddress("0.0.0.0", 9090)
    public = parse_config({"upstream": {"url": "http://p"}, "listen": 8080})
    assert public.listen == ListenAddress("0.0.0.0", 8080)


def test_a_bad_value_from_the_environment_is_blamed_on_its_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream: {url: 'http://127.0.0.1:1'}\nlog: {level: LOUD}\n")
    env = {"MSC4191_SHIM_LISTEN": "x", "MSC4191_SHIM_LOG_FORMAT": "text"}
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env)
    assert str(caught.value).splitlines() == [
        f"2 configuration problems in {path} and the environment:",
        "  - listen (set by MSC4191_SHIM_LISTEN): expected host:port such as 0.0.0.0:8080, got 'x'",
        "  - log.level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'",
    ]


def test_a_file_problem_alone_is_not_blamed_on_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream: {url: 'http://127.0.0.1:1'}\nlisten: x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {"MSC4191_SHIM_LOG_LEVEL": "debug"})
    assert str(caught.value).splitlines()[0] == f"1 configuration problem in {path}:"
    assert str(caught.value.problems[0]).startswith("listen: expected host:port")


def test_the_removed_websocket_max_message_says_what_to_do() -> None:
    raw = {"upstream": {"url": "http://p"}, "limits": {"websocket_max_message": "1MiB"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    [problem] = caught.value.problems
    assert problem.path == "limits.websocket_max_message"
    assert problem.message.startswith("removed: it never limited anything")
    assert problem.message.endswith("; delete the key")


@pytest.mark.parametrize(
    ("dialect", "hint"),
    [
        ("mas-0.8", "; MAS 0.8 speaks the dialect 'mas-0.7': did you mean 'mas-0.7'?"),
        ("mas-1.4", "; MAS 1.4 speaks the dialect 'mas-0.9': did you mean 'mas-0.9'?"),
        ("MAS-0.9.2", "; MAS 0.9 speaks the dialect 'mas-0.9': did you mean 'mas-0.9'?"),
        ("mas-1.12", "; MAS 1.12 speaks the stable names: write 'stable' (or retire the shim)"),
        ("mas-0.6", "; MAS before 0.7 publishes no account-management metadata to translate"),
        ("stabel", "; did you mean 'stable'?"),
        ("msc3842", "; did you mean 'msc3824'?"),
        ("portal", ""),
    ],
)
def test_an_unknown_dialect_gets_what_to_write_instead(dialect: str, hint: str) -> None:
    raw = {"upstream": {"url": "http://p"}, "account_management": {"dialect": dialect}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    [problem] = caught.value.problems
    assert problem.message.endswith(f"got {dialect!r}{hint}")


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("org.matrix.device_delet", "org.matrix.device_delete"),
        ("org.matrix.profil", "org.matrix.profile"),
        ("org.matrix.sesion_end", "org.matrix.device_delete"),  # an alias's stable name
    ],
)
def test_a_misspelt_action_name_gets_the_stable_name_suggested(name: str, meant: str) -> None:
    for raw_section in (
        {"discovery": {"actions": [name]}},
        {"account_management": {"aliases": {"x.y": name}}},
        {"account_management": {"dialect": {name: "rm"}}},
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config({"upstream": {"url": "http://p"}, **raw_section})
        [problem] = caught.value.problems
        assert problem.message.endswith(f"got {name!r}; did you mean {meant!r}?"), problem
