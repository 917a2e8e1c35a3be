"""The metrics' label vocabularies and how a value becomes a label (shim/obs/labels.py)."""

from __future__ import annotations

import pytest

from shim.obs.labels import action_label, deeplink_labels, name_kind, status_class
from shim.vocabulary import (
    ACCOUNT_DEACTIVATE,
    BUILTIN_DIALECTS,
    ActionTable,
    build_action_table,
)


def _table() -> ActionTable:
    return build_action_table(
        BUILTIN_DIALECTS["mas-0.9"], {"org.matrix.deactivate_account": ACCOUNT_DEACTIVATE}
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "aborted"),
        (100, "1xx"),
        (101, "1xx"),
        (200, "2xx"),
        (204, "2xx"),
        (302, "3xx"),
        (404, "4xx"),
        (502, "5xx"),
        (599, "5xx"),
        (0, "other"),
        (600, "other"),
        (999, "other"),
    ],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, "none"),
        ("org.matrix.device_view", "org.matrix.device_view"),  # stable
        ("session_end", "session_end"),  # built-in alias
        ("org.matrix.session_view", "org.matrix.session_view"),  # the dialect's own name
        ("org.matrix.deactivate_account", "org.matrix.deactivate_account"),  # configured alias
        ("", "unknown"),
        ("org.matrix.unknown", "unknown"),
        ("org.matrix.plan_management", "unknown"),  # MAS's, not an MSC4191 name
        ("Org.Matrix.Profile", "unknown"),
        ("x" * 10_000, "unknown"),
    ],
)
def test_action_label(name: str | None, expected: str) -> None:
    assert action_label(name, _table()) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, "none"),
        ("org.matrix.device_view", "stable"),
        ("session_end", "legacy"),  # built-in alias
        ("org.matrix.session_view", "legacy"),  # the dialect's own name
        ("org.matrix.deactivate_account", "legacy"),  # configured alias
        ("org.matrix.plan_management", "unknown"),  # never unstable: nothing to migrate
        ("", "unknown"),
    ],
)
def test_name_kind(name: str | None, expected: str) -> None:
    assert name_kind(name, _table()) == expected


def test_deeplink_labels_in_the_exposition_order() -> None:
    labels = deeplink_labels("session_end", "made-up", "redirect", "element-x", _table())
    assert labels == ("session_end", "legacy", "unknown", "redirect", "element-x")


@pytest.mark.parametrize(
    ("outcome", "client", "what"),
    [
        ("redirect_unsupported", "other", "deep-link outcome 'redirect_unsupported'"),
        ("redirect", "firefox", "client family 'firefox'"),
    ],
)
def test_deeplink_labels_refuse_values_outside_the_vocabulary(
    outcome: str, client: str, what: str
) -> None:
    with pytest.raises(ValueError, match=f"unknown {what}; expected one of"):
        deeplink_labels(None, None, outcome, client, _table())
