"""Why an HTTP request got no answer, in an operator's words, for /readyz and `doctor`.

aiohttp's own text is written for developers: `Cannot connect to host 127.0.0.1:9 ssl:default
[Connect call failed ('127.0.0.1', 9)]` names a TLS setting on a plain http URL and repeats the
address. An operator wants `cannot connect to 127.0.0.1:9: connection refused`.
"""

from __future__ import annotations

import errno
import os

import aiohttp


def no_answer_reason(exc: BaseException, timeout: float | None = None) -> str:
    """One short clause: refused, no such host, timed out, an untrusted certificate..."""
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return f"no answer within {timeout:g} s" if timeout is not None else "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return f"its TLS certificate is not trusted at {exc.host}:{exc.port} ({detail})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve the host name {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"TLS with {exc.host}:{exc.port} failed ({_os_reason(exc.os_error)})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection was closed before an answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"not an HTTP answer ({exc.message})"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    return str(exc) or type(exc).__name__


def _os_reason(error: OSError) -> str:
    """`connection refused` from errno; asyncio's strerror repeats the address instead."""
    if error.errno is not None and error.errno in errno.errorcode:
        return os.strerror(error.errno).lower()
    return str(error.strerror or error) or type(error).__name__
