"""`msc4191-shim doctor --homeserver`: where each deep link lands, for the portal and per client.

Pure: `deep_link` writes the URL a client opens, `next_url` resolves one redirect (`doctor.fetch`
follows at most `MAX_REDIRECTS`), `judge` turns the hops into a `Landing`, and the checks say
which advertised actions fail and what each common client (`doctor.clients`) gets.

HTTP cannot see what a single-page portal renders: a deep link "lands" when the chain ends in a
2xx. The action name the page receives is read from the last URL that carries one, so a redirect
that renamed it (the shim's) shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from yarl import URL

from shim.core.deeplink import ACTION, parse_query
from shim.doctor.chain import Metadata
from shim.doctor.clients import (
    CLIENT_LINKS,
    PLACEHOLDER_DEVICE_ID,
    ClientLink,
    clients,
    names_a_device,
    stable_name,
)
from shim.doctor.values import Finding, Followed, Level
from shim.vocabulary import STABLE_ACTIONS

MAX_REDIRECTS: Final = 5
_RANK: Final[Mapping[Level, int]] = {"OK": 0, "INFO": 1, "WARN": 2, "FAIL": 3}


def deep_link(account_uri: str, action: str) -> str:
    """`account_uri?action=NAME`, with the placeholder device for device actions."""
    query = f"{ACTION}={quote(action, safe='')}"
    if names_a_device(action):
        query += f"&device_id={PLACEHOLDER_DEVICE_ID}"
    return f"{account_uri}{'&' if '?' in account_uri else '?'}{query}"


def next_url(current: str, location: str) -> str | None:
    """Where a redirect from `current` to `location` goes; None when it is no http(s) URL."""
    try:
        target = URL(current).join(URL(location))
    except ValueError:
        return None
    return str(target) if target.scheme in ("http", "https") and target.host else None


def action_of(url: str) -> str | None:
    """The first `action` in the URL's query, decoded; None without one."""
    try:
        raw_query = URL(url).raw_query_string
    except ValueError:
        return None
    return next((p.value for p in parse_query(raw_query) if p.is_action), None)


def origin_of(url: str) -> str:
    try:
        return str(URL(url).origin())
    except ValueError:
        return url


@dataclass(frozen=True, slots=True)
class Landing:
    """Where one deep link ended: `lands` when the last answer was a 2xx."""

    url: str
    sent: str
    lands: bool
    status: int | None
    #: the action name the page received: the one in the last URL that had an action
    reached: str | None
    #: the statuses in order, `302 -> 200`, or why it stopped
    path: str
    #: other origins a redirect led to
    origins: tuple[str, ...]
    hops: tuple[str, ...]

    @property
    def renamed(self) -> bool:
        return self.reached is not None and self.reached != self.sent


def judge(followed: Followed, sent: str) -> Landing:
    """What the hops of one deep link say: where it ended, what the page got, which origins."""
    hops = followed.hops
    statuses = " -> ".join(str(hop.status) for hop in hops)
    last = hops[-1] if hops else None
    lands = followed.error is None and last is not None and 200 <= last.status < 300
    path = statuses if followed.error is None else f"{statuses} -> {followed.error}".lstrip(" ->")
    reached = None
    for hop in hops:
        reached = action_of(hop.url) or reached
    start = origin_of(followed.url)
    origins = tuple(dict.fromkeys(o for h in hops if (o := origin_of(h.url)) != start))
    shown = tuple(f"{hop.status} {hop.url}" for hop in hops)
    status = last.status if last is not None else None
    return Landing(followed.url, sent, lands, status, reached, path, origins, shown)


def describe(landing: Landing) -> str:
    """`302 -> 200, the page gets org.matrix.session_end` and any other origin on the way."""
    text = landing.path
    if landing.renamed:
        text += f", the page gets {landing.reached}"
    if landing.origins:
        text += f", via {', '.join(landing.origins)}"
    return text


def planned_links(metadata: Metadata | None) -> tuple[tuple[str, str], ...]:
    """(URL, action) of every deep link doctor opens: each advertised action's, each client's."""
    if metadata is None or metadata.account_uri is None:
        return ()
    names = list(metadata.names or ())
    names += [link.action for link in CLIENT_LINKS]
    return tuple(dict.fromkeys((deep_link(metadata.account_uri, n), n) for n in names).keys())


# --- the advertised actions --------------------------------------------------------------------


def check_advertised(metadata: Metadata, landings: Mapping[str, Landing]) -> list[Finding]:
    """One finding per advertised action: does its deep link reach a page?"""
    if metadata.account_uri is None or not metadata.names:
        return []
    findings = []
    for name in metadata.names:
        landing = landings[deep_link(metadata.account_uri, name)]
        if landing.lands:
            findings.append(Finding("OK", f"{name} lands: {describe(landing)}"))
        else:
            what = f"the portal advertises {name}, but its deep link fails: {describe(landing)}"
            todo = "fix the portal's page for it, or stop advertising it"
            findings.append(Finding("FAIL", what, todo, landing.hops))
    return findings


def check_names(names: Sequence[str] | None) -> list[Finding]:
    """Which advertised names are stable, which legacy, and which stable ones only legacy."""
    if names is None:
        return []
    stable = [n for n in names if n in STABLE_ACTIONS]
    legacy = [n for n in names if n not in STABLE_ACTIONS and stable_name(n) is not None]
    other = [n for n in names if stable_name(n) is None]
    findings = [Finding("INFO", f"stable names advertised: {', '.join(stable) or 'none'}")]
    if legacy:
        findings.append(Finding("INFO", f"legacy names advertised: {', '.join(legacy)}"))
    if other:
        findings.append(Finding("INFO", f"names of no known action: {', '.join(other)}"))
    only_legacy = [n for n in legacy if stable_name(n) not in stable]
    if only_legacy:
        pairs = tuple(f"{n} without {stable_name(n)}" for n in only_legacy)
        what = "legacy names without their stable names: current clients do not find these actions"
        todo = "put the shim in front of the portal, or upgrade it (MAS >= 1.10)"
        findings.append(Finding("WARN", what, todo, pairs))
    return findings


# --- the clients -------------------------------------------------------------------------------


def judge_client_link(
    link: ClientLink, names: Sequence[str], landing: Landing
) -> tuple[Level, str]:
    """How one client's deep link fares, and a few words why."""
    stable = stable_name(link.action)
    advertised = link.action in names
    twin = next((n for n in names if n != link.action and stable_name(n) == stable), None)
    if not landing.lands:
        level: Level = "FAIL" if advertised or twin else "INFO"
        return level, f"does not land: {describe(landing)}"
    if advertised:
        return "OK", f"lands: {describe(landing)}"
    if landing.renamed:
        return "OK", f"lands, translated: {describe(landing)}"
    if twin is not None and link.action in STABLE_ACTIONS:
        return "FAIL", f"the portal advertises {twin} instead, and the page gets {link.action}"
    if twin is not None:
        note = f"an old name, not advertised ({twin} is)"
        return "INFO", f"{note}; lands: {describe(landing)}"
    return "INFO", f"not advertised, so the client offers no such link ({describe(landing)})"


def check_clients(metadata: Metadata, landings: Mapping[str, Landing]) -> list[Finding]:
    """One finding per client: the URL each of its deep links opens, and whether it lands."""
    if metadata.account_uri is None:
        return []
    names = metadata.names or ()
    findings = []
    for client in clients():
        worst: Level = "OK"
        details = []
        for link in (link for link in CLIENT_LINKS if link.client == client):
            url = deep_link(metadata.account_uri, link.action)
            level, note = judge_client_link(link, names, landings[url])
            worst = level if _RANK[level] > _RANK[worst] else worst
            details.append(f"{level} {url} — {note}")
        what = {
            "OK": f"{client}: its deep links land",
            "INFO": f"{client}: its deep links land; some of its names are not advertised",
            "WARN": f"{client}: some deep links may not reach their page",
            "FAIL": f"{client}: some deep links do not reach their page",
        }[worst]
        findings.append(Finding(worst, what, "", tuple(details)))
    return findings
