"""Deep links on the account-management entry paths: a 302 written from the head alone, the
query rewritten on the way upstream, or the request passed through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msc4191_shim.core.deeplink import plan_deeplink
from msc4191_shim.proxy.exchange import Exchange
from msc4191_shim.proxy.forward import Forward
from msc4191_shim.proxy.h1 import REASONS, simple_response

if TYPE_CHECKING:
    from msc4191_shim.proxy.listener import ClientConnection, Handler

_NO_STORE = (b"Cache-Control", b"no-store")


def handle_deeplink(conn: ClientConnection, exchange: Exchange) -> Handler | None:
    account = exchange.runtime.config.account_management
    path, _, query = exchange.target.partition("?")
    plan = plan_deeplink(path, query, account)
    exchange.kind = "deeplink"
    exchange.outcome = plan.outcome
    decision = plan.decision
    conn.state.metrics.observe_deeplink(
        decision.incoming, decision.sent, plan.outcome, account.table
    )
    if plan.location is not None:
        redirect(conn, exchange, plan.location)
        return None
    return _forward(conn, exchange, plan.target or exchange.target)


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
