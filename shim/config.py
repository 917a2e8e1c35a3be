"""The configuration: YAML parsed once into frozen, typed objects.

Every problem is collected with its key path and reported at once (`ConfigError`); unknown keys
are rejected with the nearest valid key suggested. The request path only ever sees `Config`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import yaml
from yarl import URL

from shim.actions import (
    BUILTIN_ALIASES,
    BUILTIN_DIALECTS,
    STABLE_ACTIONS,
    ActionTable,
    Dialect,
    build_action_table,
)
from shim.config_errors import ConfigError, ConfigProblem, join_path, unknown_key_message
from shim.config_values import (
    IPNetwork,
    ListenAddress,
    parse_cidr,
    parse_duration,
    parse_http_url,
    parse_listen,
    parse_size,
)

DEFAULT_CONFIG_PATH = "/etc/msc4191-shim/config.yaml"
CONFIG_ENV = "MSC4191_SHIM_CONFIG"

#: Environment variables that override single keys, applied before validation.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "MSC4191_SHIM_LISTEN": ("listen",),
        "MSC4191_SHIM_UPSTREAM_URL": ("upstream", "url"),
        "MSC4191_SHIM_PUBLIC_URL": ("public_url",),
        "MSC4191_SHIM_ADMIN_LISTEN": ("admin", "listen"),
        "MSC4191_SHIM_LOG_LEVEL": ("log", "level"),
        "MSC4191_SHIM_LOG_FORMAT": ("log", "format"),
    }
)

DEFAULT_DISCOVERY_PATHS = (
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
)

Strategy = Literal["redirect", "rewrite"]
Advertise = Literal["stable", "stable+legacy"]
LogFormat = Literal["json", "text"]


@dataclass(frozen=True, slots=True)
class RedirectUnsupported:
    """`unsupported: {redirect: URL}`: send the user to the operator's own page."""

    url: str


Unsupported = Literal["strip", "pass"] | RedirectUnsupported


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    url: URL
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    preserve_host: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: ListenAddress = ListenAddress("127.0.0.1", 9090)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: LogFormat = "json"
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class AccountManagementConfig:
    paths: tuple[str, ...]
    table: ActionTable
    strategy: Strategy = "redirect"
    unsupported: Unsupported = "strip"


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    paths: tuple[str, ...] = DEFAULT_DISCOVERY_PATHS
    well_known_paths: tuple[str, ...] = ("/.well-known/matrix/client",)
    account_management_uri: str | None = None
    advertise: Advertise = "stable"
    actions: tuple[str, ...] | None = None
    unstable_keys: bool = False
    max_body_bytes: int = 1024 * 1024
    cache: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    upstream: UpstreamConfig
    account_management: AccountManagementConfig
    listen: ListenAddress = ListenAddress("0.0.0.0", 8080)
    public_url: URL | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    shutdown_grace: float = 10.0
    admin: AdminConfig = field(default_factory=AdminConfig)
    tls: TlsConfig | None = None
    log: LogConfig = field(default_factory=LogConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)


T = TypeVar("T")
_MISSING: Any = object()


class _Section:
    """Reads one mapping, recording problems instead of raising, and flags keys never read."""

    def __init__(self, raw: object, path: str, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.error(path, f"expected a mapping, got {type(raw).__name__} {raw!r}")
            raw = {}
        self.raw: Mapping[Any, Any] = raw

    def error(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def get(self, key: str, parse: Callable[[object], T], default: T = _MISSING) -> T:
        self.seen.add(key)
        path = join_path(self.path, key)
        if key not in self.raw or (self.raw[key] is None and default is not _MISSING):
            if default is _MISSING:
                self.error(path, "required key is missing")
                return None  # type: ignore[return-value]  # only ever read after ConfigError
            return default
        try:
            return parse(self.raw[key])
        except ValueError as exc:
            self.error(path, str(exc))
            return default if default is not _MISSING else None  # type: ignore[return-value]

    def section(self, key: str) -> _Section:
        self.seen.add(key)
        return _Section(self.raw.get(key), join_path(self.path, key), self.problems)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self.seen:
                self.error(join_path(self.path, str(key)), unknown_key_message(str(key), self.seen))


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _choice(*choices: str) -> Callable[[object], Any]:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        raise ValueError(f"expected a path starting with a single '/', got {value!r}")
    if "?" in value or "#" in value:
        raise ValueError(f"expected a path without '?' or '#', got {value!r}")
    return value


def _paths(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of paths, got {value!r}")
    problems = []
    for i, item in enumerate(value):
        try:
            _path(item)
        except ValueError as exc:
            problems.append(f"[{i}] {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(value)


def _file(value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a file path, got {value!r}")
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"no readable file at {value!r}; give the path of an existing file")
    return path


def _cidrs(value: object) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of CIDRs such as ['10.0.0.0/8'], got {value!r}")
    return tuple(parse_cidr(item) for item in value)


def _log_level(value: object) -> str:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    if not isinstance(value, str) or value.upper() not in levels:
        raise ValueError(f"expected one of {', '.join(levels)}, got {value!r}")
    return value.upper()


def _action_name(value: object) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "&=#?% \r\n"):
        raise ValueError(f"expected an action name such as org.matrix.profile, got {value!r}")
    return value


def _stable_name(value: object) -> str:
    name = _action_name(value)
    if name in BUILTIN_ALIASES:
        stable = BUILTIN_ALIASES[name]
        raise ValueError(f"{name!r} is an unstable alias; write its stable name {stable!r}")
    if name not in STABLE_ACTIONS:
        names = ", ".join(STABLE_ACTIONS)
        raise ValueError(f"expected a stable action name ({names}), got {name!r}")
    return name


def _each(parse: Callable[[object], T]) -> Callable[[object, object], T]:
    """Parse one item of a list or mapping, naming the item in the error."""

    def parse_item(where: object, value: object) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            label = f"[{where}]" if isinstance(where, int) else f"{where}:"
            raise ValueError(f"{label} {exc}") from None

    return parse_item


def _dialect(value: object) -> Dialect:
    if isinstance(value, str):
        if value not in BUILTIN_DIALECTS:
            names = ", ".join(BUILTIN_DIALECTS)
            raise ValueError(
                f"expected one of {names} or a mapping stable name -> portal name, got {value!r}"
            )
        return BUILTIN_DIALECTS[value]
    if isinstance(value, Mapping) and value:
        mapping = {_stable_name(k): _action_name(v) for k, v in value.items()}
        return Dialect("custom", MappingProxyType(mapping))
    raise ValueError(
        f"expected a dialect name or a mapping stable name -> portal name, got {value!r}"
    )


def _aliases(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping alias -> stable name, got {value!r}")
    item = _each(_stable_name)
    return {_action_name(k): item(k, v) for k, v in value.items()}


def _unsupported(value: object) -> Unsupported:
    if value in ("strip", "pass"):
        return "strip" if value == "strip" else "pass"
    if isinstance(value, Mapping) and set(value) == {"redirect"}:
        return RedirectUnsupported(str(_each(parse_http_url)("redirect", value["redirect"])))
    raise ValueError(f"expected strip, pass or {{redirect: 'https://...'}}, got {value!r}")


def _actions(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of stable action names, got {value!r}")
    item = _each(_stable_name)
    return tuple(item(i, name) for i, name in enumerate(value))


def _parse_upstream(section: _Section) -> UpstreamConfig:
    upstream = UpstreamConfig(
        url=section.get("url", parse_http_url),
        connect_timeout=section.get("connect_timeout", parse_duration, 5.0),
        read_timeout=section.get("read_timeout", parse_duration, 60.0),
        preserve_host=section.get("preserve_host", _bool, True),
        ca_file=section.get("ca_file", _file, None),
    )
    section.finish()
    return upstream


def _parse_account_management(section: _Section) -> AccountManagementConfig:
    dialect = section.get("dialect", _dialect, BUILTIN_DIALECTS["mas-0.9"])
    aliases: Mapping[str, str] = section.get("aliases", _aliases, {})
    account = AccountManagementConfig(
        paths=section.get("paths", _paths, ("/account/",)),
        table=build_action_table(dialect, aliases),
        strategy=section.get("strategy", _choice("redirect", "rewrite"), "redirect"),
        unsupported=section.get("unsupported", _unsupported, "strip"),
    )
    section.finish()
    return account


def _parse_discovery(section: _Section) -> DiscoveryConfig:
    discovery = DiscoveryConfig(
        paths=section.get("paths", _paths, DEFAULT_DISCOVERY_PATHS),
        well_known_paths=section.get("well_known_paths", _paths, ("/.well-known/matrix/client",)),
        account_management_uri=section.get(
            "account_management_uri", lambda v: str(parse_http_url(v)), None
        ),
        advertise=section.get("advertise", _choice("stable", "stable+legacy"), "stable"),
        actions=section.get("actions", _actions, None),
        unstable_keys=section.get("unstable_keys", _bool, False),
        max_body_bytes=section.get("max_body_bytes", parse_size, 1024 * 1024),
        cache=section.get("cache", _bool, True),
    )
    section.finish()
    return discovery


def _parse_tls(section: _Section) -> TlsConfig | None:
    if not section.raw:
        return None
    tls = TlsConfig(
        cert_file=section.get("cert_file", _file), key_file=section.get("key_file", _file)
    )
    section.finish()
    return tls


def _parse_simple(section: _Section, build: Callable[[_Section], T]) -> T:
    value = build(section)
    section.finish()
    return value


def parse_config(raw: object, source: str = "") -> Config:
    """Turn the loaded YAML into a `Config`, or raise `ConfigError` listing every problem."""
    problems: list[ConfigProblem] = []
    top = _Section(raw, "", problems)
    config = Config(
        listen=top.get("listen", parse_listen, ListenAddress("0.0.0.0", 8080)),
        upstream=_parse_upstream(top.section("upstream")),
        public_url=top.get("public_url", lambda v: parse_http_url(v, allow_path=False), None),
        trusted_proxies=top.get("trusted_proxies", _cidrs, ()),
        shutdown_grace=top.get("shutdown_grace", parse_duration, 10.0),
        admin=_parse_simple(
            top.section("admin"),
            lambda s: AdminConfig(s.get("listen", parse_listen, ListenAddress("127.0.0.1", 9090))),
        ),
        tls=_parse_tls(top.section("tls")),
        log=_parse_simple(
            top.section("log"),
            lambda s: LogConfig(
                format=s.get("format", _choice("json", "text"), "json"),
                level=s.get("level", _log_level, "INFO"),
            ),
        ),
        account_management=_parse_account_management(top.section("account_management")),
        discovery=_parse_discovery(top.section("discovery")),
    )
    top.finish()
    if problems:
        raise ConfigError(problems, source)
    return config


def apply_env_overrides(raw: object, env: Mapping[str, str]) -> object:
    """Return a copy of the raw mapping with the documented environment variables applied."""
    if not isinstance(raw, dict):
        return raw
    result: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for variable, keys in ENV_OVERRIDES.items():
        if variable not in env:
            continue
        target = result
        for key in keys[:-1]:
            node = target.get(key)
            target[key] = node = dict(node) if isinstance(node, dict) else {}
            target = node
        target[keys[-1]] = env[variable]
    return result


def resolve_config_path(given: str | None, env: Mapping[str, str]) -> str:
    return given or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and parse the file at `path`."""
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        problem = ConfigProblem("", f"cannot read the configuration file: {exc.strerror}")
        raise ConfigError([problem], path) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem("", f"not valid YAML: {exc}")], path) from None
    return parse_config(apply_env_overrides(raw if raw is not None else {}, env), path)
