"""Deep links on the account-management entry paths: a 302 written from the head alone, the
query rewritten on the way upstream, or the request passed through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shim.config.model import AccountManagementConfig
from shim.core.deeplink import DeepLinkPlan, plan_deeplink
from shim.proxy.exchange import Exchange
from shim.proxy.forward import Forward
from shim.proxy.h1 import http_date

if TYPE_CHECKING:
    from shim.proxy.listener import ClientConnection, Handler

#: plans for the (path, query) pairs seen lately, under one configuration: most deep links are
#: the same few (`?action=org.matrix.devices_list`, `...profile`) from every client; a pure
#: function's answer, bounded in number and in the size of what is remembered
_MEMO_SIZE: Final = 1024
_MEMO_MAX_TARGET: Final = 512
_plans: Final[dict[tuple[str, str], DeepLinkPlan]] = {}
_plans_account: Final[list[AccountManagementConfig]] = []


def planned(path: str, query: str, account: AccountManagementConfig) -> DeepLinkPlan:
    """`plan_deeplink`, remembered."""
    if not _plans_account or _plans_account[0] is not account:
        _plans.clear()
        _plans_account[:] = [account]
    key = (path, query)
    plan = _plans.get(key)
    if plan is None:
        plan = plan_deeplink(path, query, account)
        if len(path) + len(query) <= _MEMO_MAX_TARGET:
            if len(_plans) >= _MEMO_SIZE:
                _plans.clear()
            _plans[key] = plan
    return plan


def handle_deeplink(conn: ClientConnection, exchange: Exchange) -> Handler | None:
    account = exchange.runtime.config.account_management
    path, _, query = exchange.target.partition("?")
    plan = planned(path, query, account)
    exchange.kind = "deeplink"
    exchange.outcome = plan.outcome
    decision = plan.decision
    conn.state.metrics.tally.deeplink(decision.incoming, decision.sent, plan.outcome, account.table)
    if plan.location is not None:
        redirect(conn, exchange, plan.location)
        return None
    return _forward(conn, exchange, plan.target or exchange.target)


def redirect(conn: ClientConnection, exchange: Exchange, location: str) -> None:
    exchange.status = 302
    close = conn.must_close(exchange)
    # what `simple_response` writes for these fields, in one formatting step
    conn.write(
        _REDIRECT
        % (location.encode("utf-8"), http_date(), b"Connection: close\r\n" if close else b"")
    )
    conn.done(exchange, keep_alive=not close)


_REDIRECT: Final = (
    b"HTTP/1.1 302 Found\r\nLocation: %b\r\nCache-Control: no-store\r\n"
    b"Content-Length: 0\r\nDate: %b\r\n%b\r\n"
)


def _forward(conn: ClientConnection, exchange: Exchange, target: str) -> Forward:
    forward = Forward(conn, exchange, target.encode("latin-1"))
    forward.start()
    return forward
