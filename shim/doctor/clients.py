"""The deep links common clients open, as each writes them (the forms in tests/data/vectors.json).

Pure data. Each client builds `<account_management_uri>?action=NAME`, adding `&device_id=ID` for
the device actions; what differs between them is the NAME. Sources: MSC4191, Element Web and
matrix-js-sdk, Element X and matrix-rust-sdk (see tests/data/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shim.vocabulary import (
    ACCOUNT_DEACTIVATE,
    BUILTIN_ALIASES,
    DEVICE_DELETE,
    DEVICE_VIEW,
    DEVICES_LIST,
    PROFILE,
    STABLE_ACTIONS,
)

#: a device ID no homeserver issued: the page for it may say "no such device", which still lands
PLACEHOLDER_DEVICE_ID: Final = "MSC4191DOCTOR"
#: the stable actions whose deep link names a device
DEVICE_ACTIONS: Final = frozenset({DEVICE_VIEW, DEVICE_DELETE})


@dataclass(frozen=True, slots=True)
class ClientLink:
    """One deep link one client opens: who, and the action name it writes."""

    client: str
    action: str


CLIENT_LINKS: Final[tuple[ClientLink, ...]] = (
    ClientLink("Element Web / matrix-js-sdk (2026)", DEVICE_VIEW),
    ClientLink("Element Web / matrix-js-sdk (2026)", DEVICE_DELETE),
    ClientLink("Element Web / matrix-js-sdk (2024)", "org.matrix.session_view"),
    ClientLink("Element X / matrix-rust-sdk (new)", DEVICES_LIST),
    ClientLink("Element X / matrix-rust-sdk (old)", "org.matrix.sessions_list"),
    ClientLink("Element X / matrix-rust-sdk (old)", "org.matrix.session_end"),
    ClientLink("MSC3824-era clients", "session_end"),
    ClientLink("any client", PROFILE),
    ClientLink("any client", ACCOUNT_DEACTIVATE),
)


def stable_name(action: str) -> str | None:
    """The stable name of a stable or built-in legacy name; None for any other name."""
    return action if action in STABLE_ACTIONS else BUILTIN_ALIASES.get(action)


def names_a_device(action: str) -> bool:
    return stable_name(action) in DEVICE_ACTIONS


def clients() -> tuple[str, ...]:
    """The clients of the table, in table order."""
    return tuple(dict.fromkeys(link.client for link in CLIENT_LINKS))
