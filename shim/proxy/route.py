"""Which handler owns a request, decided from its head alone (pure)."""

from __future__ import annotations

from typing import Final, Literal

from shim.config.model import Config
from shim.core.deeplink import is_entry_raw_path

Route = Literal["upgrade", "discovery", "well_known", "deeplink", "passthrough"]
_READ_METHODS: Final = frozenset({"GET", "HEAD"})


def classify(method: str, raw_path: str, config: Config, upgrade: bool) -> Route:
    """The route for a request: method and origin-form target, never the body."""
    if upgrade:
        return "upgrade"
    if method not in _READ_METHODS:
        return "passthrough"
    path = raw_path.partition("?")[0]
    if path in config.discovery.paths:
        return "discovery"
    if path in config.discovery.well_known_paths:
        return "well_known"
    if is_entry_raw_path(path, config.account_management.paths):
        return "deeplink"
    return "passthrough"


_MEMO_SIZE: Final = 512
_memo: Final[dict[tuple[str, str], Route]] = {}
_memo_config: Final[list[Config]] = []


def classify_memoized(method: str, raw_path: str, config: Config, upgrade: bool) -> Route:
    """`classify`, remembered for the paths seen lately under this `config` (a pure function
    of its arguments; the query does not matter)."""
    if upgrade:
        return "upgrade"
    if not _memo_config or _memo_config[0] is not config:
        _memo.clear()
        _memo_config[:] = [config]
    key = (method, raw_path.partition("?")[0])
    route = _memo.get(key)
    if route is None:
        route = classify(method, key[1], config, False)
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[key] = route
    return route


def is_upgrade(connection_tokens: frozenset[bytes], upgrade: bytes | None) -> bool:
    """An Upgrade the proxy splices: any protocol but h2c, which is HTTP/2 for this hop only
    (RFC 9113 §3.1 removed it; nginx drops it too)."""
    if upgrade is None or b"upgrade" not in connection_tokens:
        return False
    protocols = {p.strip().lower().split(b"/")[0] for p in upgrade.split(b",")}
    return bool(protocols - {b"h2c", b""})
