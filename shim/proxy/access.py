"""The ends of every exchange: its start (in flight), and its end: one access-log line and the
request counters, from its record."""

from __future__ import annotations

import logging
import time
from typing import Final

from shim.obs.logs import log_request
from shim.proxy.errors import UpstreamFailure, classify_failure
from shim.proxy.exchange import Exchange
from shim.proxy.state import ShimState

logger: Final = logging.getLogger("msc4191_shim.proxy")


def begin_exchange(state: ShimState, exchange: Exchange) -> None:
    """The exchange is the one being answered (`ClientConnection._start`): in flight until
    `finish_exchange`. A request refused before its head was complete is never begun."""
    exchange.begun = True
    state.metrics.tally.begin()


def finish_exchange(state: ShimState, exchange: Exchange) -> None:
    status = None if exchange.aborted else exchange.status
    duration = time.monotonic() - exchange.started
    # the compiled tally itself: a direct C call, no method lookup
    tally = state.metrics.tally
    tally.finish(exchange.kind, status, duration, exchange.begun)
    if exchange.upstream_seconds is not None:
        tally.upstream(exchange.kind, exchange.upstream_seconds)
    log_request(
        method=exchange.method,
        raw_path_qs=exchange.target,
        status=status,
        duration_s=duration,
        bytes_sent=exchange.bytes_sent,
        upstream_status=exchange.upstream_status,
        kind=exchange.kind,
        outcome=exchange.outcome or exchange.error,
        client=exchange.peer,
        request_fields=exchange.fields,
        user_agent=_user_agent(exchange) if exchange.kind == "deeplink" else None,
    )


#: a longer User-Agent is cut here on the line (it is the client's, up to the head's limit)
USER_AGENT_CHARS: Final = 256


def _user_agent(exchange: Exchange) -> str | None:
    """The client's User-Agent for its deep link's line: whom to chase (docs/retirement.md)."""
    value = exchange.user_agent()
    return None if value is None else value[:USER_AGENT_CHARS].decode("latin-1")


def note_failure(
    state: ShimState, exchange: Exchange, exc: BaseException, what: str
) -> UpstreamFailure:
    """Classify an upstream failure once, count it and tell the operator in one line."""
    failure = classify_failure(exc, exchange.runtime)
    state.metrics.observe_upstream_error(failure.reason)
    logger.warning("%s: %s", what, failure.text)
    return failure
