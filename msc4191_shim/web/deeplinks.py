"""Deep links on the account-management entry paths: redirect, rewrite, or pass through."""

from __future__ import annotations

from aiohttp import hdrs, web

from msc4191_shim.config.model import Strategy
from msc4191_shim.core.deeplink import DeepLinkDecision, decide, redirect_location
from msc4191_shim.obs.metrics import DeeplinkOutcome
from msc4191_shim.web.forward import ResponseHeaderHook, forward
from msc4191_shim.web.state import record_of, request_target, runtime_of, shim_state


def _split(raw_path_qs: str) -> tuple[str, str]:
    path, _, query = raw_path_qs.partition("?")
    return path, query


def _redirect(location: str) -> web.Response:
    return web.Response(
        status=302,
        headers={hdrs.LOCATION: location, hdrs.CACHE_CONTROL: "no-store"},
    )


async def handle_deeplink(request: web.Request, hook: ResponseHeaderHook) -> web.StreamResponse:
    state = shim_state(request)
    account = runtime_of(request).config.account_management
    path, query = _split(request_target(request))
    decision = decide(query, account.table, account.unsupported)
    outcome = _outcome(decision, account.strategy)
    record = record_of(request)
    record.kind = "deeplink"
    record.outcome = outcome
    state.metrics.observe_deeplink(decision.incoming, decision.sent, outcome, account.table)
    if decision.outcome == "redirect-unsupported" and decision.location is not None:
        return _redirect(decision.location)
    if decision.query is None:
        return await forward(request, hook=hook)
    if account.strategy == "redirect":
        return _redirect(redirect_location(path, decision.query))
    new_path_qs = f"{path}?{decision.query}" if decision.query else path
    return await forward(request, raw_path_qs=new_path_qs, hook=hook)


def _outcome(decision: DeepLinkDecision, strategy: Strategy) -> DeeplinkOutcome:
    """The metric/log outcome: the decision, with `translate` named after the strategy used."""
    if decision.outcome == "translate":
        return strategy
    return decision.outcome
