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
