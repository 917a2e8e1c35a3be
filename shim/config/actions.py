"""Parsers for the action-related configuration: names, dialects, aliases, `unsupported`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, TypeVar

from shim.config.errors import did_you_mean, nearest
from shim.config.values import parse_http_url
from shim.vocabulary import BUILTIN_ALIASES, BUILTIN_DIALECTS, STABLE_ACTIONS, Dialect

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RedirectUnsupported:
    """`unsupported: {redirect: URL}`: send the user to the operator's own page."""

    url: str


Unsupported = Literal["strip", "pass"] | RedirectUnsupported


def parse_action_name(value: object) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "&=#?% \r\n"):
        raise ValueError(f"expected an action name such as org.matrix.profile, got {value!r}")
    return value


def parse_stable_name(value: object) -> str:
    name = parse_action_name(value)
    if name in BUILTIN_ALIASES:
        stable = BUILTIN_ALIASES[name]
        raise ValueError(f"{name!r} is an unstable alias; write its stable name {stable!r}")
    if name not in STABLE_ACTIONS:
        names = ", ".join(STABLE_ACTIONS)
        raise ValueError(f"expected a stable action name ({names}), got {name!r}{_hint(name)}")
    return name


def _hint(name: str) -> str:
    """The stable name a misspelt one was most likely meant as (an alias's stable name)."""
    near = nearest(name, [*STABLE_ACTIONS, *BUILTIN_ALIASES])
    if near is None:
        return ""
    return f"; did you mean {BUILTIN_ALIASES.get(near, near)!r}?"


#: `mas-0.8`: a MAS version written where a dialect name goes
_MAS_VERSION: Final = re.compile(r"mas-?(\d+)\.(\d+)(?:\.\d+)?", re.IGNORECASE)
#: MAS speaks the stable names itself from this version on
MAS_STABLE_SINCE: Final = (1, 10)


def dialect_hint(name: str) -> str:
    """What to write instead of an unknown dialect name: for a MAS version, the dialect that
    version speaks (the newest built-in `mas-X.Y` at or below it); else the nearest name."""
    match = _MAS_VERSION.fullmatch(name.strip())
    if match is None:
        return did_you_mean(name, BUILTIN_DIALECTS)
    version = (int(match.group(1)), int(match.group(2)))
    shown = f"MAS {version[0]}.{version[1]}"
    if version >= MAS_STABLE_SINCE and f"mas-{version[0]}.{version[1]}" not in BUILTIN_DIALECTS:
        return f"; {shown} speaks the stable names: write 'stable' (or retire the shim)"
    spoken = [
        (found, dialect)
        for dialect in BUILTIN_DIALECTS
        if (found := _MAS_VERSION.fullmatch(dialect)) is not None
        and (int(found.group(1)), int(found.group(2))) <= version
    ]
    if not spoken:
        return "; MAS before 0.7 publishes no account-management metadata to translate"
    best = max(spoken, key=lambda item: (int(item[0].group(1)), int(item[0].group(2))))[1]
    return f"; {shown} speaks the dialect {best!r}: did you mean {best!r}?"


def each(parse: Callable[[object], T]) -> Callable[[object, object], T]:
    """Parse one item of a list or mapping, naming the item in the error."""

    def parse_item(where: object, value: object) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            label = f"[{where}]" if isinstance(where, int) else f"{where}:"
            raise ValueError(f"{label} {exc}") from None

    return parse_item


def parse_dialect(value: object) -> Dialect:
    if isinstance(value, str):
        if value not in BUILTIN_DIALECTS:
            names = ", ".join(BUILTIN_DIALECTS)
            raise ValueError(
                f"expected one of {names} or a mapping stable name -> portal name, got {value!r}"
                + dialect_hint(value)
            )
        return BUILTIN_DIALECTS[value]
    if isinstance(value, Mapping) and value:
        mapping = {parse_stable_name(k): parse_action_name(v) for k, v in value.items()}
        _check_portal_names(mapping)
        return Dialect("custom", MappingProxyType(mapping))
    raise ValueError(
        f"expected a dialect name or a mapping stable name -> portal name, got {value!r}"
    )


def _check_portal_names(mapping: Mapping[str, str]) -> None:
    """Each portal name must stand for one action, and not be another action's known name.

    Otherwise a client sending that name would be sent to the wrong page, or the shim would
    translate back and forth.
    """
    owner: dict[str, str] = {}
    for stable, portal in mapping.items():
        if portal in owner:
            raise ValueError(
                f"{stable}: portal name {portal!r} is already given to {owner[portal]}"
            )
        known = portal if portal in STABLE_ACTIONS else BUILTIN_ALIASES.get(portal)
        if known is not None and known != stable:
            raise ValueError(
                f"{stable}: {portal!r} is a name of {known}; use the portal's own name for it"
            )
        owner[portal] = stable


def parse_aliases(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping alias -> stable name, got {value!r}")
    item = each(parse_stable_name)
    return {parse_action_name(k): item(k, v) for k, v in value.items()}


def parse_unsupported(value: object) -> Unsupported:
    if value in ("strip", "pass"):
        return "strip" if value == "strip" else "pass"
    if isinstance(value, Mapping) and set(value) == {"redirect"}:
        return RedirectUnsupported(str(each(parse_http_url)("redirect", value["redirect"])))
    raise ValueError(f"expected strip, pass or {{redirect: 'https://...'}}, got {value!r}")


def parse_actions(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of stable action names, got {value!r}")
    item = each(parse_stable_name)
    return tuple(item(i, name) for i, name in enumerate(value))
