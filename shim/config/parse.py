"""The configuration parser: YAML read once into the frozen objects of `config.model`.

Every problem is collected with its key path and reported at once (`ConfigError`); unknown keys
are rejected with the nearest valid key suggested. The request path only ever sees `Config`.
Defaults are never restated here: a key the file leaves out takes its model field's default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, get_args

import yaml
from yarl import URL

from shim.config.actions import (
    parse_actions,
    parse_aliases,
    parse_dialect,
    parse_unsupported,
)
from shim.config.errors import ConfigError, ConfigProblem
from shim.config.model import (
    DEFAULT_DIALECT,
    AccountManagementConfig,
    AdminConfig,
    Config,
    DiscoveryConfig,
    LimitsConfig,
    LogConfig,
    LogFormat,
    TlsConfig,
    UpstreamConfig,
)
from shim.config.reader import SectionReader
from shim.config.values import (
    choice,
    parse_admin_listen,
    parse_bool,
    parse_cidrs,
    parse_count,
    parse_duration,
    parse_file,
    parse_flush_interval,
    parse_http_url,
    parse_listen,
    parse_log_level,
    parse_paths,
    parse_positive_duration,
    parse_size,
    parse_upstream_url,
)
from shim.config.yaml_errors import yaml_problem
from shim.vocabulary import BUILTIN_DIALECTS, build_action_table

T = TypeVar("T")
Parser = Callable[[object], Any]

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

#: keys a file may still hold from an earlier version: what happened to each and what to do,
#: instead of a bare "unknown key"
REMOVED_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "limits.websocket_max_message": "removed: it never limited anything (the public listener "
        "relays WebSocket frames as they arrive and never holds a whole message, so its memory "
        "is bounded without it); delete the key",
    }
)


def model_defaults(cls: type[Any]) -> dict[str, Any]:
    """Each field of a model dataclass that has a default, with that default (factories called)."""
    found: dict[str, Any] = {}
    for item in fields(cls):
        if item.default is not MISSING:
            found[item.name] = item.default
        elif item.default_factory is not MISSING:
            found[item.name] = item.default_factory()
    return found


def _read(section: SectionReader, cls: type[T], parsers: Mapping[str, Parser]) -> dict[str, Any]:
    """Read each key with its parser; a key with no model default is required."""
    defaults = model_defaults(cls)
    return {
        key: section.get(key, parse, defaults[key]) if key in defaults else section.get(key, parse)
        for key, parse in parsers.items()
    }


def _build(section: SectionReader, cls: type[T], parsers: Mapping[str, Parser]) -> T:
    value = cls(**_read(section, cls, parsers))
    section.finish()
    return value


def _public_url(value: object) -> URL:
    return parse_http_url(value, allow_path=False)


def _account_management_uri(value: object) -> str:
    return str(parse_http_url(value))


_UPSTREAM: Mapping[str, Parser] = {
    "url": parse_upstream_url,
    "connect_timeout": parse_duration,
    "read_timeout": parse_duration,
    "preserve_host": parse_bool,
    "ca_file": parse_file,
    "max_connections": parse_count,
}
_DISCOVERY: Mapping[str, Parser] = {
    "paths": parse_paths,
    "well_known_paths": parse_paths,
    "account_management_uri": _account_management_uri,
    "advertise": choice("stable", "stable+legacy"),
    "actions": parse_actions,
    "unstable_keys": parse_bool,
    "max_body_bytes": parse_size,
    "cache": parse_bool,
}
_LIMITS: Mapping[str, Parser] = {
    "head_timeout": parse_positive_duration,
    "keepalive_timeout": parse_positive_duration,
    "body_idle_timeout": parse_positive_duration,
    "max_head_bytes": parse_size,
    "max_connections": parse_count,
    "request_buffer": parse_size,
    "send_timeout": parse_positive_duration,
}
_LOG: Mapping[str, Parser] = {
    "format": choice(*get_args(LogFormat)),
    "level": parse_log_level,
    "flush_interval": parse_flush_interval,
}
_ADMIN: Mapping[str, Parser] = {"listen": parse_admin_listen}
_TLS: Mapping[str, Parser] = {"cert_file": parse_file, "key_file": parse_file}
_TOP: Mapping[str, Parser] = {
    "listen": parse_listen,
    "public_url": _public_url,
    "trusted_proxies": parse_cidrs,
    "shutdown_grace": parse_duration,
}


def _parse_account_management(section: SectionReader) -> AccountManagementConfig:
    """The dialect and aliases are read here and become the action table the model holds."""
    dialect = section.get("dialect", parse_dialect, BUILTIN_DIALECTS[DEFAULT_DIALECT])
    aliases: Mapping[str, str] = section.get("aliases", parse_aliases, MappingProxyType({}))
    values = _read(
        section,
        AccountManagementConfig,
        {
            "paths": parse_paths,
            "strategy": choice("redirect", "rewrite"),
            "unsupported": parse_unsupported,
        },
    )
    section.finish()
    return AccountManagementConfig(table=build_action_table(dialect, aliases), **values)


def _parse_tls(section: SectionReader) -> TlsConfig | None:
    if not section.raw:
        return None
    return _build(section, TlsConfig, _TLS)


def parse_config(raw: object, source: str = "") -> Config:
    """Turn the loaded YAML into a `Config`, or raise `ConfigError` listing every problem."""
    problems: list[ConfigProblem] = []
    top = SectionReader(raw, "", problems)
    defaults = model_defaults(Config)

    def key(name: str) -> Any:
        return top.get(name, _TOP[name], defaults[name])

    # read in the file's documented order, so the problems are listed in that order too
    config = Config(
        listen=key("listen"),
        upstream=_build(top.section("upstream"), UpstreamConfig, _UPSTREAM),
        public_url=key("public_url"),
        trusted_proxies=key("trusted_proxies"),
        shutdown_grace=key("shutdown_grace"),
        admin=_build(top.section("admin"), AdminConfig, _ADMIN),
        tls=_parse_tls(top.section("tls")),
        log=_build(top.section("log"), LogConfig, _LOG),
        account_management=_parse_account_management(top.section("account_management")),
        discovery=_build(top.section("discovery"), DiscoveryConfig, _DISCOVERY),
        limits=_build(top.section("limits"), LimitsConfig, _LIMITS),
    )
    top.finish()
    if problems:
        raise ConfigError([_removed(problem) for problem in problems], source)
    return config


def _removed(problem: ConfigProblem) -> ConfigProblem:
    if problem.path in REMOVED_KEYS and problem.message.startswith("unknown key"):
        return replace(problem, message=REMOVED_KEYS[problem.path])
    return problem


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


def overridden_keys(env: Mapping[str, str]) -> dict[str, str]:
    """The key paths the environment sets (`upstream.url`), each with its variable's name."""
    return {".".join(keys): name for name, keys in ENV_OVERRIDES.items() if name in env}


def blame_environment(error: ConfigError, env: Mapping[str, str]) -> ConfigError:
    """`error` with each problem in a value the environment set naming that variable."""
    keys = overridden_keys(env)
    problems = [replace(p, variable=keys.get(p.path, "")) for p in error.problems]
    return ConfigError(problems, error.source)


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
        raise ConfigError([yaml_problem(exc, path)], path) from None
    try:
        return parse_config(apply_env_overrides(raw if raw is not None else {}, env), path)
    except ConfigError as exc:
        raise blame_environment(exc, env) from None
