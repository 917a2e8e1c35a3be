"""The end of every request: one log line and the request counters, from the request's record."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from shim.access_log import log_request
from shim.web_state import STATE_KEY, record_of


def finish_request(
    request: BaseRequest, status: int | None, bytes_sent: int, seconds: float
) -> None:
    if not isinstance(request, web.Request) or STATE_KEY not in request.app:
        return
    state = request.app[STATE_KEY]
    record = record_of(request)
    state.metrics.observe_request(record.kind, status)
    if record.upstream_seconds is not None:
        state.metrics.observe_upstream(record.kind, record.upstream_seconds)
    log_request(
        method=request.method,
        raw_path_qs=request.raw_path,
        status=status,
        duration_s=seconds,
        bytes_sent=bytes_sent,
        upstream_status=record.upstream_status,
        kind=record.kind,
        outcome=record.outcome or record.error,
        client=request.remote,
    )


class ShimAccessLogger(AbstractAccessLogger):
    """aiohttp calls this once the response is written; we log our own fields, redacted."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        aborted = isinstance(request, web.Request) and record_of(request).aborted
        finish_request(request, None if aborted else response.status, response.body_length, time)
