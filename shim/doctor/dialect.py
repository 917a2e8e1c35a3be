"""`msc4191-shim doctor`: the portal's advertised action names against the shim's table and dialect.

Pure: which names the portal advertises are stable, legacy or unknown to the shim, whether the
configured dialect sends exactly what the portal advertises, and which dialect would.
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.doctor.values import Finding, join_names
from shim.obs.retirement import portal_mapping, portal_speaks_stable, translations
from shim.vocabulary import BUILTIN_DIALECTS, STABLE_ACTIONS, ActionTable


def check_names(names: Sequence[str] | None, table: ActionTable) -> list[Finding]:
    """Which advertised names are stable, which legacy aliases, which unknown to the shim."""
    if names is None:
        return []
    if not names:
        return [Finding("INFO", "the portal advertises an empty list of actions")]
    legacy = [n for n in names if n not in STABLE_ACTIONS and table.to_stable(n) is not None]
    unknown = [n for n in names if table.to_stable(n) is None]
    stable = [n for n in names if n in STABLE_ACTIONS]
    findings = [Finding("INFO", f"the portal advertises stable names: {join_names(stable)}")]
    if legacy:
        findings.append(
            Finding(
                "INFO",
                f"the portal advertises legacy names: {join_names(legacy)}",
                "the shim translates them in deep links and discovery",
                tuple(f"{name} is the legacy name of {table.to_stable(name)}" for name in legacy),
            )
        )
    if unknown:
        what = f"the portal advertises names the shim does not know: {join_names(unknown)}"
        todo = "they pass as written; if one spells a stable action, map it in the dialect"
        findings.append(Finding("INFO", what, todo))
    return findings


def dialect_advice(names: Sequence[str], table: ActionTable) -> str:
    """The dialect that sends exactly what the portal advertises: a built-in one, else a mapping.

    A built-in dialect whose portal also serves other names (`mas-1.10`) fits only a portal that
    advertises those names too.
    """
    mapping = portal_mapping(names, table)
    for dialect in BUILTIN_DIALECTS.values():
        if dict(dialect.portal_names) == mapping and dialect.also_speaks <= set(names):
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
