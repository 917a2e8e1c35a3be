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

from msc4191_shim.config.actions import RedirectUnsupported as RedirectUnsupported
from msc4191_shim.config.actions import Unsupported as Unsupported
from msc4191_shim.config.actions import (
    parse_actions,
    parse_aliases,
    parse_dialect,
    parse_unsupported,
)
from msc4191_shim.config.errors import ConfigError, ConfigProblem
from msc4191_shim.config.reader import SectionReader
from msc4191_shim.config.values import (
    ListenAddress,
    choice,
    parse_bool,
    parse_cidrs,
    parse_duration,
    parse_file,
    parse_http_url,
    parse_listen,
    parse_log_level,
    parse_paths,
    parse_size,
)
from msc4191_shim.core.actions import BUILTIN_DIALECTS, ActionTable, build_action_table
from msc4191_shim.http.headers import IPNetwork

T = TypeVar("T")

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


def _parse_upstream(section: SectionReader) -> UpstreamConfig:
    upstream = UpstreamConfig(
        url=section.get("url", parse_http_url),
        connect_timeout=section.get("connect_timeout", parse_duration, 5.0),
        read_timeout=section.get("read_timeout", parse_duration, 60.0),
        preserve_host=section.get("preserve_host", parse_bool, True),
        ca_file=section.get("ca_file", parse_file, None),
    )
    section.finish()
    return upstream


def _parse_account_management(section: SectionReader) -> AccountManagementConfig:
    dialect = section.get("dialect", parse_dialect, BUILTIN_DIALECTS["mas-0.9"])
    aliases: Mapping[str, str] = section.get("aliases", parse_aliases, {})
    account = AccountManagementConfig(
        paths=section.get("paths", parse_paths, ("/account/",)),
        table=build_action_table(dialect, aliases),
        strategy=section.get("strategy", choice("redirect", "rewrite"), "redirect"),
        unsupported=section.get("unsupported", parse_unsupported, "strip"),
    )
    section.finish()
    return account


def _parse_discovery(section: SectionReader) -> DiscoveryConfig:
    discovery = DiscoveryConfig(
        paths=section.get("paths", parse_paths, DEFAULT_DISCOVERY_PATHS),
        well_known_paths=section.get(
            "well_known_paths", parse_paths, ("/.well-known/matrix/client",)
        ),
        account_management_uri=section.get(
            "account_management_uri", lambda v: str(parse_http_url(v)), None
        ),
        advertise=section.get("advertise", choice("stable", "stable+legacy"), "stable"),
        actions=section.get("actions", parse_actions, None),
        unstable_keys=section.get("unstable_keys", parse_bool, False),
        max_body_bytes=section.get("max_body_bytes", parse_size, 1024 * 1024),
        cache=section.get("cache", parse_bool, True),
    )
    section.finish()
    return discovery


def _parse_tls(section: SectionReader) -> TlsConfig | None:
    if not section.raw:
        return None
    tls = TlsConfig(
        cert_file=section.get("cert_file", parse_file), key_file=section.get("key_file", parse_file)
    )
    section.finish()
    return tls


def _parse_simple(section: SectionReader, build: Callable[[SectionReader], T]) -> T:
    value = build(section)
    section.finish()
    return value


def parse_config(raw: object, source: str = "") -> Config:
    """Turn the loaded YAML into a `Config`, or raise `ConfigError` listing every problem."""
    problems: list[ConfigProblem] = []
    top = SectionReader(raw, "", problems)
    config = Config(
        listen=top.get("listen", parse_listen, ListenAddress("0.0.0.0", 8080)),
        upstream=_parse_upstream(top.section("upstream")),
        public_url=top.get("public_url", lambda v: parse_http_url(v, allow_path=False), None),
        trusted_proxies=top.get("trusted_proxies", parse_cidrs, ()),
        shutdown_grace=top.get("shutdown_grace", parse_duration, 10.0),
        admin=_parse_simple(
            top.section("admin"),
            lambda s: AdminConfig(s.get("listen", parse_listen, ListenAddress("127.0.0.1", 9090))),
        ),
        tls=_parse_tls(top.section("tls")),
        log=_parse_simple(
            top.section("log"),
            lambda s: LogConfig(
                format=s.get("format", choice("json", "text"), "json"),
                level=s.get("level", parse_log_level, "INFO"),
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
