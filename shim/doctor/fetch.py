"""`msc4191-shim doctor --homeserver`, the I/O: follow the chain clients follow, open the links.

Every request has its own timeout and the whole run a deadline, so an unreachable homeserver or
issuer is a finding within seconds, never a hang or a traceback. Redirects are followed by hand,
at most `links.MAX_REDIRECTS`, so each hop is recorded. Everything else is pure: `doctor.chain`,
`doctor.links`, `doctor.verdict`, `doctor.report`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Final, TextIO

import aiohttp
from aiohttp import hdrs

from shim.config.model import Config
from shim.doctor.chain import (
    AUTH_METADATA,
    DOCUMENT_LIMIT,
    OPENID_CONFIGURATION,
    UNSTABLE_AUTH_METADATA,
    VERSIONS,
    WELL_KNOWN_CLIENT,
    ChainAnswers,
    client_base,
    issuer_of,
    join,
    read_chain,
)
from shim.doctor.diagnose import admin_base_url, diagnose
from shim.doctor.links import MAX_REDIRECTS, Landing, judge, next_url, planned_links
from shim.doctor.probe import probe
from shim.doctor.report import (
    Report,
    Section,
    format_json,
    format_text,
    homeserver_sections,
    stopped_report,
    unreachable,
)
from shim.doctor.values import Answer, Fetched, Followed, Hop, NoAnswer
from shim.obs.clients import DOCTOR_HEADERS
from shim.server.client_errors import no_answer_reason

REQUEST_TIMEOUT: Final = 5.0
#: the chain and the deep links together (the shim-side probe of --config adds at most 5 s);
#: what is still unasked then is reported as not answering
DEADLINE: Final = 20.0
#: deep links opened at once
CONCURRENCY: Final = 8
#: a deep link's page is read no further than this: doctor wants its status, not its body
PAGE_LIMIT: Final = 0


class Deadline:
    """The time left for the run; each request gets at most `REQUEST_TIMEOUT` of it."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._end = self._loop.time() + seconds

    def request_timeout(self) -> float:
        return min(REQUEST_TIMEOUT, self._end - self._loop.time())


async def get(
    session: aiohttp.ClientSession, url: str, deadline: Deadline, *, limit: int
) -> tuple[Fetched, str | None]:
    """One GET, no redirect followed: the answer (body capped at `limit` + 1) and its Location."""
    seconds = deadline.request_timeout()
    if seconds <= 0:
        return NoAnswer(f"not asked: doctor's {DEADLINE:g} s deadline passed"), None
    try:
        timeout = aiohttp.ClientTimeout(total=seconds)
        async with session.get(url, allow_redirects=False, timeout=timeout) as response:
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > limit:
                    break
            location = response.headers.get(hdrs.LOCATION)
            return Answer(response.status, bytes(body[: limit + 1])), location
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        # ValueError: a URL aiohttp refuses; OSError: what the connector did not wrap
        return NoAnswer(no_answer_reason(exc, float(f"{seconds:.3g}"))), None


async def fetch_document(session: aiohttp.ClientSession, url: str, deadline: Deadline) -> Fetched:
    fetched, _ = await get(session, url, deadline, limit=DOCUMENT_LIMIT)
    return fetched


async def follow(session: aiohttp.ClientSession, url: str, deadline: Deadline) -> Followed:
    """GET `url` and its redirects, at most `MAX_REDIRECTS` of them, recording every hop."""
    hops: list[Hop] = []
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        fetched, location = await get(session, current, deadline, limit=PAGE_LIMIT)
        if isinstance(fetched, NoAnswer):
            return Followed(url, tuple(hops), f"no answer from {current}: {fetched.reason}")
        hops.append(Hop(current, fetched.status, location))
        if not 300 <= fetched.status < 400 or location is None:
            return Followed(url, tuple(hops))
        target = next_url(current, location)
        if target is None:
            return Followed(url, tuple(hops), f"a Location that is no http(s) URL: {location!r}")
        current = target
    return Followed(url, tuple(hops), f"more than {MAX_REDIRECTS} redirects")


async def gather_chain(
    session: aiohttp.ClientSession, homeserver: str | None, issuer: str | None, deadline: Deadline
) -> ChainAnswers:
    """The well-known, /versions and both auth_metadata paths, then the issuer's document."""
    well_known = versions = stable = unstable = None
    base = None
    if homeserver is not None:
        well_known = await fetch_document(session, join(homeserver, WELL_KNOWN_CLIENT), deadline)
        base = client_base(homeserver, well_known)
        versions, stable, unstable = await asyncio.gather(
            *(
                fetch_document(session, join(base, path), deadline)
                for path in (VERSIONS, AUTH_METADATA, UNSTABLE_AUTH_METADATA)
            )
        )
    found = issuer_of(issuer, (stable, unstable), well_known)
    issuer_document = None
    if found is not None:
        issuer_document = await fetch_document(session, join(found, OPENID_CONFIGURATION), deadline)
    return ChainAnswers(
        homeserver, base, well_known, versions, stable, unstable, found, issuer_document
    )


async def open_links(
    session: aiohttp.ClientSession, links: tuple[tuple[str, str], ...], deadline: Deadline
) -> dict[str, Landing]:
    """Every (URL, action) followed, a few at a time: URL -> where it landed."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(url: str, action: str) -> Landing:
        async with gate:
            return judge(await follow(session, url, deadline), action)

    landings = await asyncio.gather(*(one(url, action) for url, action in links))
    return {landing.url: landing for landing in landings}


async def build_report(
    homeserver: str | None,
    issuer: str | None,
    config: Config | None = None,
    admin_url: str | None = None,
) -> Report:
    """Everything doctor asks, then the pure report; the shim-side section with a config."""
    deadline = Deadline(DEADLINE)
    header = f"msc4191-shim doctor: homeserver {homeserver or '-'}, issuer {issuer or '-'}"
    async with aiohttp.ClientSession(headers=DOCTOR_HEADERS) as session:
        answers = await gather_chain(session, homeserver, issuer, deadline)
        stop = unreachable(answers)
        if stop is not None:  # nothing else is worth asking: one line says so
            return stopped_report(header, stop, {"homeserver": homeserver, "issuer": issuer})
        _, metadata = read_chain(answers)
        landings = await open_links(session, planned_links(metadata), deadline)
    sections, needs_shim, facts = homeserver_sections(answers, landings)
    if config is not None:
        admin = admin_url or admin_base_url(config.admin.listen)
        inputs = await probe(config, admin)
        sections.insert(len(sections) - 1, Section("the shim (--config)", tuple(diagnose(inputs))))
    header = f"msc4191-shim doctor: homeserver {homeserver or '-'}, issuer {answers.issuer or '-'}"
    facts = {"homeserver": homeserver, "issuer": answers.issuer, **facts}
    return Report(header, tuple(sections), needs_shim, facts)


def run_homeserver_doctor(
    homeserver: str | None,
    issuer: str | None,
    *,
    config: Config | None = None,
    admin_url: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    """Probe, print the report, return its exit status (1 when clients will trip, else 0).

    Runs its own event loop: call it from synchronous code (the CLI), not from inside a loop.
    """
    report = asyncio.run(build_report(homeserver, issuer, config, admin_url))
    print(format_json(report) if as_json else format_text(report), file=out or sys.stdout)
    return report.exit_status
