"""The route of an exchange picks its handler; a handler that answers at once returns None."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shim.proxy.deeplinks import handle_deeplink
from shim.proxy.discovery import handle_discovery
from shim.proxy.exchange import Exchange
from shim.proxy.passthrough import Passthrough
from shim.proxy.upgrade import Upgrade

if TYPE_CHECKING:
    from shim.proxy.client import ClientConnection, Handler


def dispatch(conn: ClientConnection, exchange: Exchange) -> Handler | None:
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
