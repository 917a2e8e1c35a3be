"""The Python share of a request, alone: the real listener and upstream code, fake transports.

`.venv/bin/python bench/drive.py [passthrough|deeplink|discovery] [--requests N] [--profile]`

No sockets and no event-loop passes: a `ClientConnection` and an idle `UpstreamConnection` are
wired to transports that only collect what is written, and each request is fed to the one and
the upstream's answer to the other. What is left is the per-request Python work (parsing,
deciding, the access line, the counters), which is what wrk cannot separate from the kernel's
share. The answer is the median and the best of seven rounds in µs a request; `--profile` prints
cProfile's top functions instead (cProfile inflates small calls: use it for where, not how much;
for how much, `py-spy record` on `bench/run.py`'s shim). Used to measure each step of the hot path
(see bench/README.md, "Where the time goes now").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from targets import SHIM_CONFIG

from shim.config.parse import load_config
from shim.obs import logs
from shim.obs.log_setup import configure_logging
from shim.obs.metrics import Metrics
from shim.proxy.client import ClientConnection
from shim.proxy.listener import Listener
from shim.proxy.pool import UpstreamPool
from shim.proxy.runtime import build_runtime
from shim.proxy.state import ShimState
from shim.proxy.upstream import UpstreamConnection

#: the shim as bench/run.py runs it (nothing listens: the transports are fakes)
CONFIG = SHIM_CONFIG.format(port=0, origin="127.0.0.1:9", admin_port=0, log_level="INFO")
HOST = b"Host: 127.0.0.1:8080\r\n\r\n"
REQUESTS = {
    "passthrough": b"GET /bench/1k.bin HTTP/1.1\r\n" + HOST,
    "deeplink": b"GET /account/?action=org.matrix.device_delete&device_id=BENCHDEVICE HTTP/1.1\r\n"
    + HOST,
    "discovery": b"GET /.well-known/openid-configuration HTTP/1.1\r\n" + HOST,
}
FILE_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 13:27:32 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
    b"Last-Modified: Fri, 27 Nov 2026 13:26:24 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6b098500-400"\r\nAccept-Ranges: bytes\r\n\r\n' + b"x" * 1024
)
DOCUMENT = (
    b'{"issuer":"https://auth.example.org/","authorization_endpoint":'
    b'"https://auth.example.org/authorize","org.matrix.msc4191.account_management_uri":'
    b'"https://auth.example.org/account/"}'
)
DOCUMENT_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=300\r\n"
    b"Content-Length: %d\r\n\r\n%b" % (len(DOCUMENT), DOCUMENT)
)


class Collector:
    """A transport that keeps what is written (and is never paused or closed)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def drive(scenario: str, requests: int, profile: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="shim-drive-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(CONFIG, encoding="utf-8")
        config = load_config(str(path))
    configure_logging(config.log.format, config.log.level)
    logs.batch_access_lines(lambda flush: None)  # written when 64 KiB are buffered, as in a pass
    state = ShimState(
        runtime=build_runtime(config),
        session=None,  # type: ignore[arg-type]  # the admin listener's, not used here
        metrics=Metrics(),
        pool=UpstreamPool(None),
    )
    client = ClientConnection(Listener(state, tls=None))
    client_side = Collector()
    client.connection_made(client_side)  # type: ignore[arg-type]
    upstream = UpstreamConnection(state.pool.forget, state.runtime.target.key)
    upstream_side = Collector()
    upstream.connection_made(upstream_side)  # type: ignore[arg-type]
    state.pool._open.add(upstream)
    state.pool.release(upstream)
    request = REQUESTS[scenario]
    answer = DOCUMENT_ANSWER if scenario == "discovery" else FILE_ANSWER

    def one() -> None:
        client.data_received(request)
        if upstream_side.written:  # it went upstream: answer it
            upstream_side.written.clear()
            upstream.data_received(answer)
        if not client_side.written:
            raise SystemExit(f"bench/drive.py: no answer to the {scenario} request")
        client_side.written.clear()

    for _ in range(500):  # warm the memos and caches, as a running shim has them
        one()
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            one()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        return out.getvalue()
    rounds = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(requests):
            one()
        rounds.append((time.perf_counter() - started) / requests * 1e6)
    return (
        f"{scenario}: {statistics.median(rounds):.1f} µs a request "
        f"(best of 7 rounds {min(rounds):.1f}, {requests:,} requests each)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("scenario", nargs="?", default="passthrough", choices=sorted(REQUESTS))
    p.add_argument("--requests", type=int, default=10_000, help="per round (default 10000)")
    p.add_argument("--profile", action="store_true", help="cProfile's top functions instead")
    args = p.parse_args(argv)
    # the access lines go to stderr, as the shim's do: keep them out of the answer
    sys.stderr = open("/dev/null", "w")  # noqa: SIM115  # for the life of the process
    try:
        result = asyncio.run(drive(args.scenario, args.requests, args.profile))
    finally:
        logs.flush_access_lines()
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
