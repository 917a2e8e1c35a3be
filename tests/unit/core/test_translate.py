"""`msc4191-shim translate`: the one-line explanation of what the shim does with a URL."""

from __future__ import annotations

import pytest

from shim.config.actions import RedirectUnsupported, Unsupported
from shim.config.model import AccountManagementConfig, Strategy
from shim.core.translate import describe_url, explain_url
from shim.vocabulary import BUILTIN_DIALECTS, build_action_table

MAS_09 = build_action_table(BUILTIN_DIALECTS["mas-0.9"], {})


def config(
    strategy: Strategy = "redirect", unsupported: Unsupported = "strip"
) -> AccountManagementConfig:
    return AccountManagementConfig(("/account/",), MAS_09, strategy, unsupported)


SPEAKS_DELETE = "(mas-0.9 speaks org.matrix.session_end for org.matrix.device_delete)"
NOT_SERVED = "org.matrix.account_deactivate is not served by mas-0.9"


@pytest.mark.parametrize(
    ("url", "redirect", "rewrite"),
    [
        (
            "https://auth.example.com/account/?action=org.matrix.device_delete&device_id=X",
            f"redirect to /account/?action=org.matrix.session_end&device_id=X {SPEAKS_DELETE}",
            f"forward upstream as /account/?action=org.matrix.session_end&device_id=X "
            f"{SPEAKS_DELETE}",
        ),
        (
            "/account?id_token_hint=a.b&action=org.matrix.device_delete#frag",
            # the hint is a credential: redacted as in the logs
            f"redirect to /account?id_token_hint=[redacted]&action=org.matrix.session_end "
            f"{SPEAKS_DELETE}",
            f"forward upstream as /account?id_token_hint=[redacted]&action=org.matrix.session_end "
            f"{SPEAKS_DELETE}",
        ),
        (
            "https://auth.example.com/account/?action=org.matrix.account_deactivate&x=1",
            f"strip action -> redirect to /account/?x=1 ({NOT_SERVED}; unsupported: strip)",
            f"strip action -> forward upstream as /account/?x=1 ({NOT_SERVED}; unsupported: strip)",
        ),
        (
            "/account/?action=org.matrix.account_deactivate",
            f"strip action -> redirect to /account/ ({NOT_SERVED}; unsupported: strip)",
            f"strip action -> forward upstream as /account/ ({NOT_SERVED}; unsupported: strip)",
        ),
        (
            "/account/?action=org.matrix.session_end",
            "pass through (mas-0.9 speaks org.matrix.session_end as sent)",
            "pass through (mas-0.9 speaks org.matrix.session_end as sent)",
        ),
        (
            "https://auth.example.com/account/",
            "pass through (no action parameter)",
            "pass through (no action parameter)",
        ),
        (
            "/account/?action=org.matrix.deactivate_account",
            "pass through ('org.matrix.deactivate_account' is not a known action name)",
            "pass through ('org.matrix.deactivate_account' is not a known action name)",
        ),
        (
            "/account/sessions?action=org.matrix.device_delete",
            "pass through (not an entry path)",
            "pass through (not an entry path)",
        ),
        (
            "https://auth.example.com?action=org.matrix.device_delete",
            "pass through (not an entry path)",
            "pass through (not an entry path)",
        ),
        ("not a url", "pass through (not an entry path)", "pass through (not an entry path)"),
        ("", "pass through (not an entry path)", "pass through (not an entry path)"),
    ],
)
def test_explain_both_strategies(url: str, redirect: str, rewrite: str) -> None:
    assert explain_url(url, config("redirect")) == redirect
    assert explain_url(url, config("rewrite")) == rewrite


@pytest.mark.parametrize("strategy", ["redirect", "rewrite"])
def test_explain_unsupported_policies(strategy: Strategy) -> None:
    url = "/account/?action=org.matrix.account_deactivate"
    page = RedirectUnsupported("https://example.com/deactivate")
    assert explain_url(url, config(strategy, page)) == (
        f"send to https://example.com/deactivate ({NOT_SERVED})"
    )
    assert explain_url(url, config(strategy, "pass")) == (
        f"pass through ({NOT_SERVED}; unsupported: pass)"
    )


def test_explain_control_characters() -> None:
    assert explain_url("/account/?action=org.matrix.device_delete%0D%0A", config()) == (
        "pass through (the action value is not UTF-8 or holds CR, LF or NUL)"
    )


def test_describe_url_redacts_the_echoed_url_too() -> None:
    url = "https://a.example/account/?action=org.matrix.device_delete&id_token_hint=SECRET&code=C"
    text = describe_url(url, config())
    assert "SECRET" not in text
    assert "code=C" not in text
    assert text.startswith(
        "https://a.example/account/?action=org.matrix.device_delete&id_token_hint=[redacted]"
    )
