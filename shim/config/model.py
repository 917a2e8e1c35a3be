"""The configuration model: frozen dataclasses, each default written here and nowhere else.

The parser (`config.parse`) reads its defaults from these classes through `dataclasses.fields()`,
so `config.example.yaml`, the schema and `config dump` can all be checked against one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yarl import URL

from shim.config.actions import Unsupported
from shim.config.values import ListenAddress
from shim.http.forwarding import IPNetwork
from shim.vocabulary import BUILTIN_DIALECTS, ActionTable, build_action_table

Strategy = Literal["redirect", "rewrite"]
Advertise = Literal["stable", "stable+legacy"]
#: json: our JSON lines; ecs: Elastic Common Schema names (obs/logs.py); text: for people
LogFormat = Literal["json", "ecs", "text"]

#: the dialect of `account_management.dialect` when the file names none (MAS 0.9 to 1.9)
DEFAULT_DIALECT = "mas-0.9"

DEFAULT_DISCOVERY_PATHS = (
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    url: URL
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    preserve_host: bool = True
    ca_file: Path | None = None
    #: connections to the portal per worker, in use and idle together; a request that finds
    #: them all busy waits (within connect_timeout) for one to come back. As many as client
    #: connections, so each (a WebSocket included) can hold one; Envoy's default is also 1024
    max_connections: int = 1024


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
    #: access lines are written together at most this often (and at once past 64 KiB, before any
    #: other line, and at shutdown); 0 writes them at the end of each event-loop pass. A line
    #: waits no longer than this; a crash loses at most this much (Envoy flushes every 1s)
    flush_interval: float = 0.1


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """What one client may cost: time and bytes before a request is complete, and connections.

    Defaults follow HAProxy and nginx where they have one (see SECURITY.md).
    """

    #: a whole request head (request line and fields) must arrive within this, from its first
    #: byte (HAProxy's usual `timeout http-request 10s`; nginx client_header_timeout is 60s)
    head_timeout: float = 10.0
    #: a kept-alive connection may sit idle this long between requests (nginx keepalive_timeout)
    keepalive_timeout: float = 75.0
    #: the longest gap between two reads of a request body (nginx client_body_timeout)
    body_idle_timeout: float = 60.0
    #: request line and all header fields together (nginx large_client_header_buffers 4 x 8k)
    max_head_bytes: int = 32 * 1024
    #: concurrent client connections per worker; more are refused with 503 until one closes
    max_connections: int = 1024
    #: a request body up to this size is read whole before an upstream connection is taken
    #: (a framing error gets a 400 before the portal sees anything; a slow small body holds no
    #: pooled connection); a larger one streams as it arrives (nginx buffers bodies by default)
    request_buffer: int = 64 * 1024
    #: the longest a client may leave its answer unread before the connection is cut (nginx
    #: send_timeout)
    send_timeout: float = 60.0


def _default_table() -> ActionTable:
    return build_action_table(BUILTIN_DIALECTS[DEFAULT_DIALECT], {})


@dataclass(frozen=True, slots=True)
class AccountManagementConfig:
    paths: tuple[str, ...] = ("/account/",)
    table: ActionTable = field(default_factory=_default_table)
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
    account_management: AccountManagementConfig = field(default_factory=AccountManagementConfig)
    listen: ListenAddress = ListenAddress("0.0.0.0", 8080)
    public_url: URL | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    shutdown_grace: float = 10.0
    admin: AdminConfig = field(default_factory=AdminConfig)
    tls: TlsConfig | None = None
    log: LogConfig = field(default_factory=LogConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
