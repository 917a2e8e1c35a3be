"""`msc4191-shim translate`: one line per URL saying what the shim does with a GET of it, and why.

Pure; the same plan the proxy carries out (`core.deeplink.plan_deeplink`), worded for an operator.
Output is pasted into tickets and chat: credential values (`id_token_hint`, `code`, ...) are
replaced as in the logs (`shim.http.secrets`).
"""

from __future__ import annotations

from shim.config.model import AccountManagementConfig
from shim.core.deeplink import DeepLinkPlan, is_entry_raw_path, plan_deeplink
from shim.http.secrets import redact_path_qs
from shim.http.target import split_reference


def explain_url(url: str, account: AccountManagementConfig) -> str:
    """What a GET of `url` (absolute, or path and query) becomes: "redirect to ... (why)"."""
    # scheme and authority of an absolute URL are dropped: only the path and query reach the shim
    reference = split_reference(url.strip())
    target = (reference.rest if reference.is_absolute else url.strip()).partition("#")[0]
    raw_path, _, query = target.partition("?")
    raw_path = raw_path or "/"
    if not is_entry_raw_path(raw_path, account.paths):
        return "pass through (not an entry path)"
    plan = plan_deeplink(raw_path, query, account)
    return f"{redact_path_qs(_action(plan))} ({plan.decision.reason})"


def describe_url(url: str, account: AccountManagementConfig) -> str:
    """The URL as given (credentials redacted) and, indented below it, `explain_url`."""
    return f"{redact_path_qs(url.strip())}\n  -> {explain_url(url, account)}"


def _action(plan: DeepLinkPlan) -> str:
    if plan.location is not None and plan.outcome == "redirect-unsupported":
        return f"send to {plan.location}"
    if plan.location is not None:
        verb = f"redirect to {plan.location}"
    elif plan.target is not None:
        verb = f"forward upstream as {plan.target}"
    else:
        return "pass through"
    return f"strip action -> {verb}" if plan.outcome == "strip" else verb
