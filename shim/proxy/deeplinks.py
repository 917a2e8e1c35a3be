"""Deep links on the account-management entry paths: a 302 written from the head alone, the
query rewritten on the way upstream, or the request passed through.

A browser that gets the shim's 302 asks for its Location through the shim again, with the name
the portal speaks (a legacy one, under a legacy dialect). That request is not a client sending a
legacy name: it is counted apart, as `followup`, when it asks for exactly a Location the shim
issued to the same client address a moment before (`proxy.followups`).
"""

from __future__ import annotations

from typing import Final

from shim.obs.clients import client_family
from shim.proxy.exchange import Exchange
from shim.proxy.h1 import REASONS, response_head, status_line
from shim.proxy.passthrough import Passthrough
from shim.proxy.protocols import Connection, Handler


def client_address(exchange: Exchange) -> str:
    """The client's address: the one a trusted proxy reports (its right-most X-Forwarded-For),
    else the peer's."""
    forwarding = exchange.forwarding
    if forwarding is not None and forwarding.trusted and forwarding.prior_for:
        return forwarding.prior_for[-1]
    return exchange.peer or ""


def handle_deeplink(conn: Connection, exchange: Exchange) -> Handler | None:
    account = exchange.runtime.config.account_management
    target = exchange.target
    path, _, query = target.partition("?")
    plan = exchange.runtime.plan(path, query)
    exchange.kind = "deeplink"
    outcome = plan.outcome
    followups = conn.state.followups
    if (
        outcome == "passthrough"
        and len(followups)
        and (followups.take(client_address(exchange), target, exchange.started))
    ):
        outcome = "followup"
    exchange.outcome = outcome
    decision = plan.decision
    client = client_family(exchange.user_agent())
    conn.state.metrics.tally.deeplink(
        decision.incoming, decision.sent, outcome, account.table, client
    )
    if plan.location is not None:
        if outcome != "redirect-unsupported":  # on this site: its follow-up comes back here
            followups.issued(client_address(exchange), plan.location, exchange.started)
        redirect(conn, exchange, plan.location)
        return None
    return _forward(conn, exchange, plan.target or exchange.target)


def redirect(conn: Connection, exchange: Exchange, location: str) -> None:
    exchange.status = 302
    close = conn.must_close(exchange)
    conn.write(
        response_head(
            _FOUND,
            b"Location: " + location.encode("utf-8") + b"\r\nCache-Control: no-store\r\n",
            date=True,
            length=0,
            connection=b"close" if close else b"",
        )
    )
    conn.done(exchange, keep_alive=not close)


_FOUND: Final = status_line(302, REASONS[302])


def _forward(conn: Connection, exchange: Exchange, target: str) -> Passthrough:
    forward = Passthrough(conn, exchange, target.encode("latin-1"))
    forward.start()
    return forward
