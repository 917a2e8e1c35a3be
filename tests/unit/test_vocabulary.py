"""The action tables: stable names, aliases, built-in dialects, custom dialects, extra aliases."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from shim.vocabulary import (
    BUILTIN_ALIASES,
    BUILTIN_DIALECTS,
    STABLE_ACTIONS,
    Dialect,
    build_action_table,
)

STABLE = (
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.account_deactivate",
    "org.matrix.cross_signing_reset",
)

ALIASES = {
    "profile": "org.matrix.profile",
    "sessions_list": "org.matrix.devices_list",
    "org.matrix.sessions_list": "org.matrix.devices_list",
    "session_view": "org.matrix.device_view",
    "org.matrix.session_view": "org.matrix.device_view",
    "session_end": "org.matrix.device_delete",
    "org.matrix.session_end": "org.matrix.device_delete",
}

MAS_07 = {
    "org.matrix.profile": "org.matrix.profile",
    "org.matrix.devices_list": "org.matrix.sessions_list",
    "org.matrix.device_view": "org.matrix.session_view",
    "org.matrix.device_delete": "org.matrix.session_end",
}

#: dialect -> the names the portal also serves as written, besides its `DIALECTS` names
ALSO_SPEAKS = {
    "mas-1.10": {"org.matrix.sessions_list", "org.matrix.session_view", "org.matrix.session_end"}
}

#: dialect -> stable name -> the portal's name (absent: not served), written out by hand
DIALECTS: dict[str, dict[str, str]] = {
    "stable": {name: name for name in STABLE},
    "mas-0.7": MAS_07,
    "mas-0.9": {**MAS_07, "org.matrix.cross_signing_reset": "org.matrix.cross_signing_reset"},
    "mas-1.10": {
        name: name
        for name in (*MAS_07, "org.matrix.cross_signing_reset")  # no account deactivation
    },
    "msc3824": {
        "org.matrix.profile": "profile",
        "org.matrix.devices_list": "sessions_list",
        "org.matrix.device_view": "session_view",
        "org.matrix.device_delete": "session_end",
    },
}


def test_stable_actions_are_the_specs_six_in_order() -> None:
    assert STABLE_ACTIONS == STABLE


@pytest.mark.parametrize(("alias", "stable"), ALIASES.items())
def test_every_builtin_alias_maps_to_its_stable_name(alias: str, stable: str) -> None:
    assert BUILTIN_ALIASES[alias] == stable


def test_no_other_builtin_aliases() -> None:
    assert dict(BUILTIN_ALIASES) == ALIASES


def test_builtin_dialects_are_the_five_documented() -> None:
    assert set(BUILTIN_DIALECTS) == set(DIALECTS)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("stable", STABLE)
def test_builtin_dialect_portal_name(dialect: str, stable: str) -> None:
    assert BUILTIN_DIALECTS[dialect].portal_name(stable) == DIALECTS[dialect].get(stable)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", [*STABLE, *ALIASES])
def test_table_knows_every_accepted_name_in_every_dialect(dialect: str, name: str) -> None:
    table = build_action_table(BUILTIN_DIALECTS[dialect], {})
    stable = name if name in STABLE else ALIASES[name]
    assert table.to_stable(name) == stable
    assert table.to_portal(stable) == DIALECTS[dialect].get(stable)
    also = ALSO_SPEAKS.get(dialect, set())
    assert table.speaks(name) == (DIALECTS[dialect].get(stable) == name or name in also)
    assert table.is_legacy(name) == (name not in STABLE)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_what_each_dialect_also_speaks(dialect: str) -> None:
    assert BUILTIN_DIALECTS[dialect].also_speaks == ALSO_SPEAKS.get(dialect, set())


def test_mas_110_speaks_both_name_sets_but_not_the_unprefixed_ones() -> None:
    table = build_action_table(BUILTIN_DIALECTS["mas-1.10"], {})
    for stable, legacy in MAS_07.items():
        assert table.speaks(stable)
        assert table.speaks(legacy)
    assert not table.speaks("session_end")  # MSC3824's: the shim still translates it
    assert table.to_portal("org.matrix.device_delete") == "org.matrix.device_delete"
    assert table.to_portal("org.matrix.account_deactivate") is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_names_are_unknown(dialect: str) -> None:
    table = build_action_table(BUILTIN_DIALECTS[dialect], {})
    for name in ("", "org.matrix.deactivate_account", "ORG.MATRIX.PROFILE", "org.matrix.profile "):
        assert table.to_stable(name) is None
        assert not table.speaks(name)
        assert not table.is_legacy(name)


def test_custom_dialect_names_are_recognised_and_map_back() -> None:
    dialect = Dialect(
        "custom",
        MappingProxyType({"org.matrix.device_delete": "delete_device", "org.matrix.profile": "me"}),
    )
    table = build_action_table(dialect, {})
    assert table.to_stable("delete_device") == "org.matrix.device_delete"
    assert table.to_stable("me") == "org.matrix.profile"
    assert table.speaks("delete_device")
    assert not table.speaks("org.matrix.device_delete")
    assert table.to_portal("org.matrix.device_delete") == "delete_device"
    assert table.to_portal("org.matrix.devices_list") is None
    assert table.legacy_names("org.matrix.device_delete") == (
        "session_end",
        "org.matrix.session_end",
        "delete_device",
    )


def test_extra_aliases_are_accepted_and_win_over_builtin_ones() -> None:
    table = build_action_table(
        BUILTIN_DIALECTS["mas-0.9"],
        {
            "org.matrix.deactivate_account": "org.matrix.account_deactivate",
            "profile": "org.matrix.devices_list",
        },
    )
    assert table.to_stable("org.matrix.deactivate_account") == "org.matrix.account_deactivate"
    assert table.to_stable("profile") == "org.matrix.devices_list"
    assert "org.matrix.deactivate_account" in table.legacy_names("org.matrix.account_deactivate")


def test_legacy_names_in_table_order() -> None:
    table = build_action_table(BUILTIN_DIALECTS["stable"], {})
    assert table.legacy_names("org.matrix.device_view") == (
        "session_view",
        "org.matrix.session_view",
    )
    assert table.legacy_names("org.matrix.cross_signing_reset") == ()
