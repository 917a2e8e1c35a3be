"""The route of an exchange picks its handler; a handler that answers at once returns None."""

from __future__ import annotations

from shim.proxy.deeplinks import handle_deeplink
from shim.proxy.discovery import handle_discovery
from shim.proxy.exchange import Exchange
from shim.proxy.passthrough import Passthrough
from shim.proxy.protocols import Connection, Handler
from shim.proxy.upgrade import Upgrade


def dispatch(conn: Connection, exchange: Exchange) -> Handler | None:
    route = exchange.route
    if route == "passthrough":
        forward = Passthrough(conn, exchange, exchange.target.encode("latin-1"))
        forward.start()
        return forward
    if route == "deeplink":
        return handle_deeplink(conn, exchange)
    if route == "upgrade":
        splice = Upgrade(conn, exchange)
        splice.start()
        return splice
    return handle_discovery(conn, exchange)
