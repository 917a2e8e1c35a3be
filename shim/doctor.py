"""`msc4191-shim doctor`: what the shim does for this portal, and whether it can go.

Pure: `diagnose` turns what `shim.doctor_probe` fetched (the portal's root, the portal's *own*
discovery document, the shim's `/metrics`) and the configuration into findings, one line each,
the verdict last. Nothing here raises for a bad answer: an unreachable portal or unreadable
metrics is a finding. Sections: inputs, the portal's metadata, the dialect, the shim's counters,
the verdict, the report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from shim.actions import BUILTIN_DIALECTS, STABLE_ACTIONS, ActionTable
from shim.config import Config
from shim.config_values import ListenAddress
from shim.deeplink import is_entry_path
from shim.discovery import (
    ACCOUNT_MANAGEMENT_URI,
    ACTIONS_SUPPORTED,
    UNSTABLE_ACCOUNT_MANAGEMENT_URI,
    UNSTABLE_ACTIONS_SUPPORTED,
    parse_json_object,
)

Level = Literal["OK", "WARN", "FAIL", "INFO"]
PORTAL_DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
RETIRE: Final = "README 'Can I retire the shim?'"
EXIT_OK: Final = 0
EXIT_BROKEN: Final = 1

# --- inputs and findings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: how bad, what was seen, what to do; details go below it."""

    level: Level
    what: str
    todo: str = ""
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP response: its status and, where doctor reads it, its body (capped by the probe)."""

    status: int
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No HTTP response at all, and why: refused, timed out, TLS..."""

    reason: str


Fetched = Answer | NoAnswer


@dataclass(frozen=True, slots=True)
class DoctorInputs:
    config: Config
    #: GET <upstream>/ and GET <upstream>/.well-known/openid-configuration, not through the shim
    upstream_root: Fetched
    portal_discovery: Fetched
    #: GET <admin>/metrics
    metrics: Fetched
    admin_url: str


def admin_base_url(listen: ListenAddress) -> str:
    """Where to reach the admin listener from this host: a wildcard address becomes loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(listen.host, listen.host)
    return f"http://[{host}]:{listen.port}" if ":" in host else f"http://{host}:{listen.port}"


def diagnose(inputs: DoctorInputs) -> list[Finding]:
    """Every finding, in report order, the verdict last."""
    config = inputs.config
    table = config.account_management.table
    findings = [check_upstream(inputs.upstream_root, str(config.upstream.url))]
    doc, read = read_portal_document(inputs.portal_discovery, config.discovery.max_body_bytes)
    findings += read
    names = None if doc is None else advertised_names(doc)
    if doc is not None:
        findings += check_metadata(doc, config)
        findings += check_names(names, table)
        findings += check_dialect(names, table)
    counters, seen = read_counters(inputs.metrics, inputs.admin_url)
    findings += seen if counters is None else check_counters(counters, table)
    findings.append(verdict(doc, names, config, counters))
    return findings


def check_upstream(root: Fetched, upstream: str) -> Finding:
    if isinstance(root, NoAnswer):
        what = f"the portal at {upstream} does not answer: {root.reason}"
        return Finding("FAIL", what, "start the portal, or fix upstream.url")
    return Finding("OK", f"the portal at {upstream} answers (GET / -> {root.status})")


# --- the portal's own metadata -----------------------------------------------------------------


def read_portal_document(
    fetched: Fetched, limit: int
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The portal's own discovery document, or None with a finding that says why not."""
    where = f"the portal's own {PORTAL_DISCOVERY_PATH}"
    relayed = "the shim relays it untouched, so clients and Synapse cannot use it"
    if isinstance(fetched, NoAnswer):
        what = f"{where} does not answer: {fetched.reason}"
        return None, [Finding("FAIL", what, "start the portal, or fix upstream.url")]
    if fetched.status != 200:
        return None, [Finding("FAIL", f"{where} answers {fetched.status}", f"{relayed}: fix it")]
    if len(fetched.body) > limit:
        todo = "the shim relays it untouched: raise discovery.max_body_bytes"
        return None, [Finding("FAIL", f"{where} is larger than {limit} bytes", todo)]
    doc = parse_json_object(fetched.body)
    if doc is None:
        return None, [Finding("FAIL", f"{where} is not a JSON object", f"{relayed}: fix it")]
    return doc, [Finding("OK", f"{where} is a JSON object ({len(doc)} keys)")]


def advertised_names(doc: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The portal's action names as written (stable key first), or None when it lists none."""
    for key in (ACTIONS_SUPPORTED, UNSTABLE_ACTIONS_SUPPORTED):
        value = doc.get(key)
        if isinstance(value, list):
            return tuple(dict.fromkeys(item for item in value if isinstance(item, str)))
    return None


def check_metadata(doc: Mapping[str, Any], config: Config) -> list[Finding]:
    """The stable keys: in the portal's own document, or only their unstable twins?"""
    uri = doc.get(ACCOUNT_MANAGEMENT_URI)
    if isinstance(uri, str) and uri:
        findings = [Finding("OK", f"the portal publishes {ACCOUNT_MANAGEMENT_URI} ({uri})")]
    else:
        what = f"the portal's own document has no {ACCOUNT_MANAGEMENT_URI}"
        todo = (
            "without the shim, Synapse answers 500 on auth_metadata and /.well-known/matrix/client"
            " — keep the shim on the homeserver->portal route (matrix_authentication_service."
            "endpoint)"
        )
        findings = [
            Finding("WARN", what + _only_unstable(doc, UNSTABLE_ACCOUNT_MANAGEMENT_URI), todo)
        ]
    if isinstance(doc.get(ACTIONS_SUPPORTED), list):
        findings.append(Finding("OK", f"the portal publishes {ACTIONS_SUPPORTED}"))
    else:
        what = f"the portal's own document has no {ACTIONS_SUPPORTED} list"
        todo = "without the shim, clients that read the stable key see no actions"
        findings.append(
            Finding("WARN", what + _only_unstable(doc, UNSTABLE_ACTIONS_SUPPORTED), todo)
        )
    return findings + _check_entry_path(doc, config)


def _only_unstable(doc: Mapping[str, Any], unstable_key: str) -> str:
    return f" (only the unstable {unstable_key})" if unstable_key in doc else ""


def _check_entry_path(doc: Mapping[str, Any], config: Config) -> list[Finding]:
    # A deep link is translated only on an entry path; an account page anywhere else would be
    # relayed with the client's action name untouched.
    uri = config.discovery.account_management_uri
    for key in (ACCOUNT_MANAGEMENT_URI, UNSTABLE_ACCOUNT_MANAGEMENT_URI):
        value = doc.get(key)
        uri = uri or (value if isinstance(value, str) and value else None)
    if uri is None:
        return []
    try:
        path = URL(uri).path or "/"
    except ValueError:
        return []  # not a URL at all: clients will say so louder than doctor could
    paths = config.account_management.paths
    if is_entry_path(path, paths):
        return []
    what = f"the account page {uri} is not under account_management.paths ({', '.join(paths)})"
    return [Finding("WARN", what, f"deep links to it pass untranslated: add {path} there")]


def check_names(names: Sequence[str] | None, table: ActionTable) -> list[Finding]:
    """Which advertised names are stable, which legacy aliases, which unknown to the shim."""
    if names is None:
        return []
    if not names:
        return [Finding("INFO", "the portal advertises an empty list of actions")]
    legacy = [n for n in names if n not in STABLE_ACTIONS and table.to_stable(n) is not None]
    unknown = [n for n in names if table.to_stable(n) is None]
    stable = [n for n in names if n in STABLE_ACTIONS]
    findings = [Finding("INFO", f"the portal advertises stable names: {_list(stable)}")]
    if legacy:
        findings.append(
            Finding(
                "INFO",
                f"the portal advertises legacy names: {_list(legacy)}",
                "the shim translates them in deep links and discovery",
                tuple(f"{name} is the legacy name of {table.to_stable(name)}" for name in legacy),
            )
        )
    if unknown:
        what = f"the portal advertises names the shim does not know: {_list(unknown)}"
        todo = "they pass as written; if one spells a stable action, map it in the dialect"
        findings.append(Finding("INFO", what, todo))
    return findings


# --- the dialect against what the portal advertises --------------------------------------------


def portal_mapping(names: Sequence[str], table: ActionTable) -> dict[str, str]:
    """stable name -> the name the portal advertises for it (the stable one when it has both)."""
    mapping: dict[str, str] = {}
    for name in names:
        stable = table.to_stable(name)
        if stable is not None and (stable not in mapping or name == stable):
            mapping[stable] = name
    return {stable: mapping[stable] for stable in STABLE_ACTIONS if stable in mapping}


def portal_speaks_stable(names: Sequence[str], table: ActionTable) -> bool:
    """True when the portal advertises the stable name of every action it serves."""
    mapping = portal_mapping(names, table)
    return bool(mapping) and all(stable == name for stable, name in mapping.items())


def translations(table: ActionTable) -> list[tuple[str, str]]:
    """(stable, portal name) for each name the dialect changes on the way to the portal."""
    return [(s, p) for s, p in table.dialect.portal_names.items() if s != p]


def dialect_advice(names: Sequence[str], table: ActionTable) -> str:
    """The dialect that sends exactly what the portal advertises: a built-in one, else a mapping."""
    mapping = portal_mapping(names, table)
    for dialect in BUILTIN_DIALECTS.values():
        if dict(dialect.portal_names) == mapping:
            return f"set dialect: {dialect.name}"
    pairs = ", ".join(f"{stable}: {name}" for stable, name in mapping.items())
    return f"set dialect: {{{pairs}}}"


def check_dialect(names: Sequence[str] | None, table: ActionTable) -> list[Finding]:
    """WARN where the dialect and the portal's advertised actions disagree."""
    dialect = table.dialect
    if not names:
        what = f"the portal advertises no actions, so dialect {dialect.name} cannot be checked"
        todo = "follow one deep link per action through the shim (msc4191-shim translate URL)"
        return [Finding("INFO", what, todo)]
    advertised = portal_mapping(names, table)
    written = set(names)
    advice = dialect_advice(names, table)
    findings = []
    for stable, name in advertised.items():
        sent = dialect.portal_name(stable)
        if sent is None:
            what = f"the portal advertises {name} but dialect {dialect.name} does not serve it"
            todo = f"the shim drops it from discovery and applies `unsupported`: {advice}"
            findings.append(Finding("WARN", what, todo))
        elif sent not in written:
            sends = f"dialect {dialect.name} sends {_as(stable, sent)}"
            what = f"{sends}, but the portal advertises {name}"
            findings.append(Finding("WARN", what, advice))
    for stable, sent in dialect.portal_names.items():
        if stable not in advertised:
            sends = f"dialect {dialect.name} sends {_as(stable, sent)}"
            what = f"{sends}, but the portal does not advertise it"
            todo = f"such a deep link may land on the portal's unknown-action page: {advice}"
            findings.append(Finding("WARN", what, todo))
    if findings:
        return findings
    findings.append(Finding("OK", f"dialect {dialect.name} matches the actions the portal offers"))
    if portal_speaks_stable(names, table) and translations(table):
        what = "the portal advertises the stable name of every action it serves"
        findings.append(Finding("INFO", what, advice))
    return findings


def _as(stable: str, sent: str) -> str:
    return f"{stable} unchanged" if sent == stable else f"{stable} as {sent}"


# --- the shim's own counters -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeepLinkCount:
    incoming: str
    sent: str
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class ShimCounters:
    """The counters that say what the shim did since it started (non-zero series only)."""

    version: str
    deeplinks: tuple[DeepLinkCount, ...]
    discovery: Mapping[str, int]
    upstream_errors: Mapping[str, int]


def parse_counters(text: str) -> ShimCounters | None:
    """The shim's counters in a Prometheus text exposition; None when it is not the shim's.

    Raises ValueError when the text is not a Prometheus exposition at all.
    """
    version = None
    deeplinks: list[DeepLinkCount] = []
    discovery: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # another exporter on that port may serve NaN or +Inf, which int() refuses
            value = sample.value if math.isfinite(sample.value) else 0.0
            labels, count = sample.labels, int(value)
            if sample.name == "msc4191_shim_build_info":
                version = labels.get("version", "?")
            elif count <= 0:
                continue
            elif sample.name == "msc4191_shim_deeplink_translations_total":
                incoming, sent = labels.get("incoming", "?"), labels.get("sent", "?")
                deeplinks.append(DeepLinkCount(incoming, sent, labels.get("outcome", "?"), count))
            elif sample.name == "msc4191_shim_discovery_documents_total":
                discovery[labels.get("outcome", "?")] += count
            elif sample.name == "msc4191_shim_upstream_errors_total":
                errors[labels.get("reason", "?")] += count
    if version is None:
        return None
    return ShimCounters(
        version,
        tuple(deeplinks),
        MappingProxyType(dict(discovery)),
        MappingProxyType(dict(errors)),
    )


def read_counters(fetched: Fetched, admin_url: str) -> tuple[ShimCounters | None, list[Finding]]:
    where = f"the shim's admin listener at {admin_url}"
    todo = "run doctor where the shim runs, or pass --admin-url (see admin.listen)"
    if isinstance(fetched, NoAnswer):
        return None, [Finding("WARN", f"{where} does not answer: {fetched.reason}", todo)]
    if fetched.status != 200:
        return None, [Finding("WARN", f"{where} answers {fetched.status} on /metrics", todo)]
    try:
        counters = parse_counters(fetched.body.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one too
        return None, [Finding("WARN", f"{where} serves unreadable /metrics ({exc})", todo)]
    if counters is None:
        return None, [Finding("WARN", f"{where} serves metrics, but not an msc4191-shim's", todo)]
    return counters, []


def incoming_kind(incoming: str) -> str:
    """`stable`, `legacy`, or the label itself (`none`, `other`) for a deep link's incoming name."""
    if incoming in ("none", "other"):
        return incoming
    return "stable" if incoming in STABLE_ACTIONS else "legacy"


def check_counters(counters: ShimCounters, table: ActionTable) -> list[Finding]:
    """What the shim did since it started: deep links by name and outcome, discovery, errors."""
    findings = [Finding("OK", f"the shim (version {counters.version}) serves its metrics")]
    findings.append(_deeplink_summary(counters.deeplinks, table))
    relayed = {k: n for k, n in counters.discovery.items() if k.startswith("passthrough_")}
    relayed |= {k: n for k, n in counters.discovery.items() if k == "stale"}
    if not counters.discovery:
        findings.append(Finding("INFO", "no discovery document served since the shim started"))
    else:
        what = f"discovery documents since the shim started: {_counts(counters.discovery)}"
        findings.append(Finding("INFO", what))
    if relayed:
        what = f"discovery documents relayed untouched or stale: {_counts(relayed)}"
        todo = "the portal answered what the shim could not rewrite: see the shim's log"
        findings.append(Finding("WARN", what, todo))
    if counters.upstream_errors:
        what = f"the shim could not reach the portal: {_counts(counters.upstream_errors)}"
        findings.append(Finding("WARN", what, "see the shim's log, check the portal"))
    return findings


def _deeplink_summary(deeplinks: Sequence[DeepLinkCount], table: ActionTable) -> Finding:
    if not deeplinks:
        what = "no deep link seen since the shim started"
        return Finding("INFO", what, "the counts say nothing about clients yet")
    by_name: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    for link in deeplinks:
        by_name[link.incoming] += link.count
        by_kind[incoming_kind(link.incoming)] += link.count
        by_outcome[link.outcome] += link.count
    details = [f"{name}: {n} ({_describe(name, table)})" for name, n in by_name.most_common()]
    details.append(f"outcomes: {_counts(by_outcome)}")
    what = f"{_n(by_kind.total(), 'deep link')} since the shim started: {_counts(by_kind)}"
    return Finding("INFO", what, "", tuple(details))


def _describe(incoming: str, table: ActionTable) -> str:
    kind = incoming_kind(incoming)
    if kind == "legacy":
        stable = table.to_stable(incoming)
        return "legacy name" if stable is None else f"legacy name of {stable}"
    return {"none": "no action", "other": "names the shim does not know"}.get(kind, kind)


# --- the verdict and the report ----------------------------------------------------------------


def verdict(
    doc: Mapping[str, Any] | None,
    names: Sequence[str] | None,
    config: Config,
    counters: ShimCounters | None,
) -> Finding:
    reasons = tuple(_reasons(doc, names, config, counters))
    if reasons:
        return Finding("INFO", "the shim is still needed because:", f"see {RETIRE}", reasons)
    if counters is None:
        what = "nothing in the portal's metadata or this configuration needs the shim"
        todo = f"its metrics were not read: check which names clients send ({RETIRE})"
        return Finding("INFO", what, todo)
    todo = f"see {RETIRE} before removing it"
    if not counters.deeplinks:
        todo += "; no deep link has been seen yet, so watch the metrics for a client release"
    return Finding("INFO", "nothing here needs the shim any more", todo)


def _reasons(
    doc: Mapping[str, Any] | None,
    names: Sequence[str] | None,
    config: Config,
    counters: ShimCounters | None,
) -> Iterable[str]:
    table = config.account_management.table
    if doc is None:
        yield "the portal's own discovery document could not be checked"
    else:
        if not isinstance(doc.get(ACCOUNT_MANAGEMENT_URI), str):
            yield f"the portal does not publish {ACCOUNT_MANAGEMENT_URI}"
        if not isinstance(doc.get(ACTIONS_SUPPORTED), list):
            yield f"the portal does not publish {ACTIONS_SUPPORTED}"
        elif names and not portal_speaks_stable(names, table):
            yield "the portal advertises legacy names without their stable names"
    if renamed := translations(table):
        pairs = ", ".join(f"{stable} -> {portal}" for stable, portal in renamed)
        yield f"dialect {table.dialect.name} is not stable: it sends the portal {pairs}"
    if config.discovery.advertise == "stable+legacy":
        yield "discovery.advertise is stable+legacy: old clients read legacy names from the shim"
    if config.discovery.unstable_keys:
        yield "discovery.unstable_keys is on: old clients read org.matrix.msc4191.* from the shim"
    if counters is not None:
        yield from _counter_reasons(counters)


def _counter_reasons(counters: ShimCounters) -> Iterable[str]:
    legacy = sum(d.count for d in counters.deeplinks if incoming_kind(d.incoming) == "legacy")
    if legacy:
        yield f"clients still sent {_n(legacy, 'legacy-named deep link')} since the shim started"
    changed: Counter[str] = Counter()
    for link in counters.deeplinks:
        if link.outcome != "passthrough":
            changed[link.outcome] += link.count
    if changed:
        yield f"it changed {_n(changed.total(), 'deep link')} since it started ({_counts(changed)})"
    written = {k: n for k, n in counters.discovery.items() if k in ("rewritten", "cached", "stale")}
    if written:
        documents = _n(sum(written.values()), "discovery document")
        yield f"it wrote {documents} itself ({_counts(written)})"


def exit_status(findings: Iterable[Finding]) -> int:
    """1 when anything failed; warnings, information and "the shim can go" are all 0."""
    return EXIT_BROKEN if any(f.level == "FAIL" for f in findings) else EXIT_OK


def format_report(findings: Iterable[Finding]) -> str:
    """`LEVEL  what  — todo`, one line per finding, its details indented below it."""
    lines = []
    for finding in findings:
        todo = f"  — {finding.todo}" if finding.todo else ""
        lines.append(f"{finding.level:<4}  {finding.what}{todo}")
        lines += [f"        - {detail}" for detail in finding.details]
    return "\n".join(lines)


def _list(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key}: {n}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
