"""The one place where an upstream failure becomes a status code and a reason people can act on.

Refused, unresolvable, unreachable within `connect_timeout`, a TLS failure, a reset or a
malformed answer -> 502; no byte within `read_timeout` -> 504. Each with one line of text.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import ClassVar

from shim.obs.labels import UpstreamErrorReason
from shim.proxy.runtime import Runtime


class UpstreamError(Exception):
    """The upstream did not give a usable answer; `reason` is the metric label."""

    # a ClassVar, not an instance default: mypyc (setup.py) gives a compiled exception class
    # only the attributes its own __init__ sets
    reason: ClassVar[UpstreamErrorReason] = "other"


class ConnectTimeoutError(UpstreamError):
    reason = "connect_timeout"


class ReadTimeoutError(UpstreamError):
    reason = "read_timeout"


class UpstreamClosedError(UpstreamError):
    """The connection closed (or reset) before the response was complete."""

    reason = "reset"

    def __init__(self, *, before_any_byte: bool) -> None:
        super().__init__("closed the connection")
        #: the request may be sent again on a new connection (if it is idempotent)
        self.before_any_byte = before_any_byte


class BadResponseError(UpstreamError):
    reason = "other"


class PoolExhaustedError(UpstreamError):
    reason = "other"


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    status: int
    reason: UpstreamErrorReason  # metric label
    text: str  # what the client and the log are told


def classify_failure(exc: BaseException, runtime: Runtime) -> UpstreamFailure:
    """What the client sees for `exc` (raised while connecting to or reading the upstream)."""
    upstream = runtime.upstream_origin
    cfg = runtime.config.upstream
    if isinstance(exc, ReadTimeoutError):
        return UpstreamFailure(
            504, "read_timeout", f"upstream {upstream} sent nothing for {cfg.read_timeout:g}s"
        )
    if isinstance(exc, ConnectTimeoutError | TimeoutError):
        return UpstreamFailure(
            502,
            "connect_timeout",
            f"cannot connect to upstream {upstream} within {cfg.connect_timeout:g}s",
        )
    if isinstance(exc, socket.gaierror):
        return UpstreamFailure(502, "dns", f"cannot resolve upstream host {upstream.host}")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return UpstreamFailure(502, "tls", f"TLS with upstream {upstream} failed: {exc}")
    if isinstance(exc, UpstreamClosedError):
        return UpstreamFailure(502, "reset", f"upstream {upstream} closed the connection")
    if isinstance(exc, PoolExhaustedError):
        return UpstreamFailure(502, "other", f"upstream {upstream}: {exc}")
    if isinstance(exc, UpstreamError):
        return UpstreamFailure(502, exc.reason, f"bad response from upstream {upstream}: {exc}")
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc) or type(exc).__name__
        return UpstreamFailure(502, "refused", f"cannot connect to upstream {upstream}: {detail}")
    return UpstreamFailure(502, "other", f"bad response from upstream {upstream}: {exc}")
