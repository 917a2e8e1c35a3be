"""`msc4191-shim doctor`, the I/O: fetch what `doctor.diagnose.diagnose` needs, print the report.

Three GETs at once, each with a short timeout: the portal's root and its own discovery document
(directly, not through the shim, to see what the portal says by itself), and the shim's
`/metrics` on its admin listener. Whatever goes wrong becomes a `NoAnswer`, never a traceback.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from typing import Final, TextIO

import aiohttp
from yarl import URL

from shim.config.errors import ConfigError
from shim.config.model import Config
from shim.doctor.diagnose import DoctorInputs, admin_base_url, diagnose, exit_status
from shim.doctor.report import Report, Section, format_findings, format_json
from shim.doctor.values import Answer, Fetched, NoAnswer
from shim.obs.clients import DOCTOR_HEADERS
from shim.obs.retirement import PORTAL_DISCOVERY_PATH
from shim.proxy.runtime import build_runtime
from shim.server.client_errors import no_answer_reason

PROBE_TIMEOUT: Final = 5.0
#: /metrics of one shim is a few tens of KiB; this only stops a wrong URL streaming forever
METRICS_LIMIT: Final = 4 * 1024 * 1024


async def fetch(
    session: aiohttp.ClientSession, url: URL | str, *, limit: int, tls: ssl.SSLContext | bool = True
) -> Fetched:
    """One GET: the status and at most `limit` + 1 bytes of the body (so "too large" shows)."""
    try:
        async with session.get(url, allow_redirects=False, ssl=tls) as response:
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > limit:
                    break
            return Answer(response.status, bytes(body[: limit + 1]))
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        # ValueError: a URL aiohttp refuses; OSError: what the connector did not wrap
        return NoAnswer(no_answer_reason(exc, PROBE_TIMEOUT))


async def probe(config: Config, admin_url: str) -> DoctorInputs:
    """Fetch the three answers concurrently; the portal directly, as the shim would reach it."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    admin = admin_url.rstrip("/") + "/metrics"
    async with aiohttp.ClientSession(timeout=timeout, headers=DOCTOR_HEADERS) as session:
        try:
            runtime = build_runtime(config)
        except ConfigError as exc:  # upstream.ca_file unreadable or not PEM
            reason = "; ".join(problem.message for problem in exc.problems)
            unusable = NoAnswer(f"upstream.ca_file cannot be used: {reason}")
            metrics = await fetch(session, admin, limit=METRICS_LIMIT)
            return DoctorInputs(config, unusable, unusable, metrics, admin_url)
        tls = runtime.upstream_ssl
        root, discovery, metrics = await asyncio.gather(
            fetch(session, runtime.upstream_url("/"), limit=0, tls=tls),
            fetch(
                session,
                runtime.upstream_url(PORTAL_DISCOVERY_PATH),
                limit=config.discovery.max_body_bytes,
                tls=tls,
            ),
            fetch(session, admin, limit=METRICS_LIMIT),
        )
    return DoctorInputs(config, root, discovery, metrics, admin_url)


def run_doctor(
    config: Config,
    *,
    shim_admin_url: str | None,
    out: TextIO | None = None,
    as_json: bool = False,
) -> int:
    """Probe, print the report, return the exit status: 1 when something is broken, else 0.

    `shim_admin_url` None means the admin listener from the configuration, seen from here.
    Runs its own event loop: call it from synchronous code (the CLI), not from inside a loop.
    """
    admin_url = shim_admin_url or admin_base_url(config.admin.listen)
    inputs = asyncio.run(probe(config, admin_url))
    findings = diagnose(inputs)
    dialect = config.account_management.table.dialect.name
    header = (
        f"msc4191-shim doctor: portal {config.upstream.url}, dialect {dialect}, admin {admin_url}"
    )
    if as_json:
        report = Report(header, (Section("the shim (--config)", tuple(findings)),))
        print(format_json(report), file=out or sys.stdout)
    else:
        print(header, *format_findings(findings), sep="\n", file=out or sys.stdout)
    return exit_status(findings)
