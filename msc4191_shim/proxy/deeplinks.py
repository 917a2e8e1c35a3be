"""Deep links on the account-management entry paths: a 302 written from the head alone, the
query rewritten on the way upstream, or the request passed through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msc4191_shim.config.parse import Strategy
from msc4191_shim.core.deeplink import DeepLinkDecision, decide, redirect_location
from msc4191_shim.obs.metrics import DeeplinkOutcome
from msc4191_shim.proxy.exchange import Exchange
from msc4191_shim.proxy.forward import Forward
from msc4191_shim.proxy.h1 import REASONS, simple_response

if TYPE_CHECKING:
    from msc4191_shim.proxy.listener import ClientConnection, Handler

_NO_STORE = (b"Cache-Control", b"no-store")


def handle_deeplink(conn: ClientConnection, exchange: Exchange) -> Handler | None:
    account = exchange.runtime.config.account_management
    path, _, query = exchange.target.partition("?")
    decision = decide(query, account.table, account.unsupported)
    outcome = _outcome(decision, account.strategy)
    exchange.kind = "deeplink"
    exchange.outcome = outcome
    conn.state.metrics.observe_deeplink(decision.incoming, decision.sent, outcome, account.table)
    if decision.outcome == "redirect-unsupported" and decision.location is not None:
        redirect(conn, exchange, decision.location)
        return None
    if decision.query is None:
        return _forward(conn, exchange, exchange.target)
    if account.strategy == "redirect":
        redirect(conn, exchange, redirect_location(path, decision.query))
        return None
    return _forward(conn, exchange, f"{path}?{decision.query}" if decision.query else path)


def redirect(conn: ClientConnection, exchange: Exchange, location: str) -> None:
    exchange.status = 302
    close = conn.must_close(exchange)
    conn.write(
        simple_response(
            302,
            REASONS[302],
            ((b"Location", location.encode("utf-8")), _NO_STORE),
            close=close,
        )
    )
    conn.done(exchange, keep_alive=not close)


def _forward(conn: ClientConnection, exchange: Exchange, target: str) -> Forward:
    forward = Forward(conn, exchange, target.encode("latin-1"))
    forward.start()
    return forward


def _outcome(decision: DeepLinkDecision, strategy: Strategy) -> DeeplinkOutcome:
    """The metric/log outcome: the decision, with `translate` named after the strategy used."""
    if decision.outcome == "translate":
        return strategy
    return decision.outcome
