"""The MSC4191 action names: stable names, their aliases, and what each portal dialect speaks.

Pure data and lookups; no I/O. Sources: the Matrix spec's list of stable actions (v1.18+, MSC4191
and MSC4312), the prototype aliases from the MSC's development (MSC2965 drafts, MSC3824), and what
clients in the field send (see tests/data/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PROFILE = "org.matrix.profile"
DEVICES_LIST = "org.matrix.devices_list"
DEVICE_VIEW = "org.matrix.device_view"
DEVICE_DELETE = "org.matrix.device_delete"
ACCOUNT_DEACTIVATE = "org.matrix.account_deactivate"
CROSS_SIGNING_RESET = "org.matrix.cross_signing_reset"

#: The spec's six stable action names, in the spec's order.
STABLE_ACTIONS: tuple[str, ...] = (
    PROFILE,
    DEVICES_LIST,
    DEVICE_VIEW,
    DEVICE_DELETE,
    ACCOUNT_DEACTIVATE,
    CROSS_SIGNING_RESET,
)

#: Unstable names from prototype implementations, each an alias of one stable name.
BUILTIN_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "profile": PROFILE,
        "sessions_list": DEVICES_LIST,
        "org.matrix.sessions_list": DEVICES_LIST,
        "session_view": DEVICE_VIEW,
        "org.matrix.session_view": DEVICE_VIEW,
        "session_end": DEVICE_DELETE,
        "org.matrix.session_end": DEVICE_DELETE,
    }
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The names one portal understands: stable name -> the portal's name (absent: unsupported).

    `also_speaks`: other names the portal serves as written besides those (matrix-authentication
    -service 1.10 and later serves its old `org.matrix.session_*` names next to the stable ones),
    so a link with one passes untouched.
    """

    name: str
    portal_names: Mapping[str, str]
    also_speaks: frozenset[str] = frozenset()

    def portal_name(self, stable: str) -> str | None:
        return self.portal_names.get(stable)


def _dialect(
    name: str, names: dict[str, str], also_speaks: frozenset[str] = frozenset()
) -> Dialect:
    return Dialect(name, MappingProxyType(names), also_speaks)


_MAS_07 = {
    PROFILE: PROFILE,
    DEVICES_LIST: "org.matrix.sessions_list",
    DEVICE_VIEW: "org.matrix.session_view",
    DEVICE_DELETE: "org.matrix.session_end",
}

BUILTIN_DIALECTS: Mapping[str, Dialect] = MappingProxyType(
    {
        "stable": _dialect("stable", {name: name for name in STABLE_ACTIONS}),
        "mas-0.7": _dialect("mas-0.7", dict(_MAS_07)),
        "mas-0.9": _dialect("mas-0.9", {**_MAS_07, CROSS_SIGNING_RESET: CROSS_SIGNING_RESET}),
        # MAS 1.10 and later: the stable names (no account deactivation) and, as written, its
        # older names too; it advertises both sets (tests/data/vectors.json)
        "mas-1.10": _dialect(
            "mas-1.10",
            {name: name for name in (*_MAS_07, CROSS_SIGNING_RESET)},
            frozenset(name for name in _MAS_07.values() if name not in STABLE_ACTIONS),
        ),
        "msc3824": _dialect(
            "msc3824",
            {
                PROFILE: "profile",
                DEVICES_LIST: "sessions_list",
                DEVICE_VIEW: "session_view",
                DEVICE_DELETE: "session_end",
            },
        ),
    }
)


@dataclass(frozen=True, slots=True)
class ActionTable:
    """Everything the shim needs to map an incoming action name to what the portal speaks."""

    dialect: Dialect
    #: every name the shim recognises (stable, built-in alias, configured alias, the
    #: dialect's own names) -> its stable name
    to_stable_names: Mapping[str, str]

    def to_stable(self, name: str) -> str | None:
        return self.to_stable_names.get(name)

    def to_portal(self, stable: str) -> str | None:
        return self.dialect.portal_name(stable)

    def speaks(self, name: str) -> bool:
        """True when the portal understands `name` exactly as written."""
        stable = self.to_stable(name)
        if stable is None:
            return False
        return self.to_portal(stable) == name or name in self.dialect.also_speaks

    def is_legacy(self, name: str) -> bool:
        """True for an MSC4191 name the table knows that is not a stable name."""
        return name not in STABLE_ACTIONS and name in self.to_stable_names

    def legacy_names(self, stable: str) -> tuple[str, ...]:
        """The non-stable names the shim accepts for `stable`, in table order."""
        return tuple(n for n, s in self.to_stable_names.items() if s == stable and n != stable)


def build_action_table(dialect: Dialect, extra_aliases: Mapping[str, str]) -> ActionTable:
    """Combine the built-in aliases, the configured ones and the dialect's own names.

    Configured aliases win over built-in ones; the dialect's reverse mapping is added last so a
    custom portal name (say `delete_device`) is recognised and translated back in Location URLs.
    """
    names: dict[str, str] = {name: name for name in STABLE_ACTIONS}
    names.update(BUILTIN_ALIASES)
    names.update(extra_aliases)
    for stable, portal in dialect.portal_names.items():
        names.setdefault(portal, stable)
    return ActionTable(dialect, MappingProxyType(names))
