"""The end of every request: one log line and the request counters, from the request's record."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from msc4191_shim.obs.logs import log_request
from msc4191_shim.web.state import RECORD_KEY, RequestRecord, ShimState


def finish_request(
    state: ShimState,
    request: BaseRequest,
    record: RequestRecord,
    status: int | None,
    bytes_sent: int,
    seconds: float,
) -> None:
    state.metrics.observe_request(record.kind, status)
    if record.upstream_seconds is not None:
        state.metrics.observe_upstream(record.kind, record.upstream_seconds)
    log_request(
        method=request.method,
        raw_path_qs=record.target or request.raw_path,
        status=status,
        duration_s=seconds,
        bytes_sent=bytes_sent,
        upstream_status=record.upstream_status,
        kind=record.kind,
        outcome=record.outcome or record.error,
        client=request.remote,
    )


def access_logger_for(state: ShimState) -> type[AbstractAccessLogger]:
    """An access-logger class bound to `state`.

    aiohttp calls it once a response is written, also for requests its parser refused before any
    handler ran (those have no app and no record, and are counted all the same).
    """

    class ShimAccessLogger(AbstractAccessLogger):
        @property
        def enabled(self) -> bool:
            return True

        def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
            record = request.get(RECORD_KEY) or RequestRecord()
            status = None if record.aborted else response.status
            finish_request(state, request, record, status, response.body_length, time)

    return ShimAccessLogger
