"""`msc4191-shim doctor`, the pure part: findings from fetched answers, no network."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from demo.portal import ERAS, Era, discovery_document
from shim.config.model import Config
from shim.config.parse import parse_config
from shim.config.values import ListenAddress
from shim.core.deeplink import DeeplinkOutcome
from shim.doctor.diagnose import (
    DoctorInputs,
    admin_base_url,
    check_metadata,
    diagnose,
    exit_status,
    format_report,
)
from shim.doctor.dialect import check_dialect, check_names, dialect_advice
from shim.doctor.values import Answer, Fetched, Finding, NoAnswer
from shim.obs.counters import ShimCounters, parse_counters
from shim.obs.labels import DiscoveryOutcome
from shim.obs.metrics import Metrics
from shim.obs.retirement import advertised_names, portal_speaks_stable
from shim.vocabulary import BUILTIN_DIALECTS, STABLE_ACTIONS

BASE = "https://auth.example.com/"
ADMIN = "http://127.0.0.1:9090"
LEGACY_SESSION_NAMES = (
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
)
#: MAS 1.10 and later: the five stable names it serves, plus the three old session names
MAS_110_NAMES = tuple(n for n in STABLE_ACTIONS if n != "org.matrix.account_deactivate")
MAS_110_NAMES += LEGACY_SESSION_NAMES
ALL_STABLE_DOC = {"issuer": BASE, "account_management_uri": f"{BASE}account/"} | {
    "account_management_actions_supported": list(STABLE_ACTIONS)
}


def config(dialect: str = "mas-0.9", **extra: object) -> Config:
    raw = {"upstream": {"url": BASE}, "account_management": {"dialect": dialect}, **extra}
    return parse_config(raw)


def answer(doc: object) -> Answer:
    return Answer(200, json.dumps(doc).encode())


def metrics_text(
    dialect: str = "mas-0.9",
    links: tuple[tuple[str | None, str | None, DeeplinkOutcome], ...] = (),
    discovery: tuple[DiscoveryOutcome, ...] = (),
) -> Answer:
    """The real exposition of a real `Metrics` that saw these events."""
    metrics = Metrics()
    table = config(dialect).account_management.table
    for incoming, sent, outcome in links:
        metrics.tally.deeplink(incoming, sent, outcome, table)
    for item in discovery:
        metrics.tally.discovery(item)
    return Answer(200, metrics.render()[0])


def inputs(
    doc: object,
    dialect: str = "mas-0.9",
    metrics: Fetched | None = None,
    **extra: object,
) -> DoctorInputs:
    return DoctorInputs(
        config(dialect, **extra),
        Answer(404),
        answer(doc),
        metrics if metrics is not None else NoAnswer("connection refused"),
        ADMIN,
    )


def lines(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.level, f.what) for f in findings]


def names_of(era: Era) -> tuple[str, ...] | None:
    return advertised_names(discovery_document(era, BASE))


# --- the portal's metadata, per era --------------------------------------------------------------

METADATA: Mapping[Era, tuple[str, str, bool]] = {
    # era: (level for account_management_uri, level for actions_supported, only unstable keys)
    "mas-0.9": ("OK", "OK", False),
    "mas-0.7": ("OK", "OK", False),
    "prototype-unstable-keys": ("WARN", "WARN", True),
    "msc3824": ("WARN", "WARN", False),
    "mas-1.10": ("OK", "OK", False),
}


@pytest.mark.parametrize("era", ERAS)
def test_metadata_keys_of_each_era(era: Era) -> None:
    uri, actions, only_unstable = METADATA[era]
    findings = check_metadata(discovery_document(era, BASE), config())
    assert [f.level for f in findings] == [uri, actions]
    assert ("only the unstable org.matrix.msc4191." in findings[0].what) == only_unstable
    if uri == "WARN":
        assert "Synapse answers 500 on auth_metadata" in findings[0].todo
        assert "keep the shim on the homeserver->portal route" in findings[0].todo


def test_an_account_page_outside_the_entry_paths_is_reported() -> None:
    doc = {**ALL_STABLE_DOC, "account_management_uri": f"{BASE}myaccount"}
    findings = check_metadata(doc, config())
    assert findings[-1].level == "WARN"
    assert "add /myaccount there" in findings[-1].todo
    configured = config(account_management={"dialect": "stable", "paths": ["/myaccount"]})
    assert [f.level for f in check_metadata(doc, configured)] == ["OK", "OK"]


@pytest.mark.parametrize(
    ("era", "legacy"),
    [
        ("mas-0.9", LEGACY_SESSION_NAMES),
        ("mas-0.7", LEGACY_SESSION_NAMES),
        ("prototype-unstable-keys", LEGACY_SESSION_NAMES),
        ("msc3824", None),
    ],
)
def test_legacy_and_stable_names_per_era(era: Era, legacy: tuple[str, ...] | None) -> None:
    findings = check_names(names_of(era), config().account_management.table)
    if legacy is None:
        assert findings == []
        return
    assert findings[0].what.startswith("the portal advertises stable names: org.matrix.profile")
    assert findings[1].what == f"the portal advertises legacy names: {', '.join(legacy)}"
    assert findings[1].details[2] == "org.matrix.session_end is the legacy name of " + (
        "org.matrix.device_delete"
    )


def test_names_the_shim_does_not_know_are_information() -> None:
    table = config().account_management.table
    findings = check_names(("org.matrix.profile", "org.example.wat"), table)
    assert findings[-1] == Finding(
        "INFO",
        "the portal advertises names the shim does not know: org.example.wat",
        "they pass as written; if one spells a stable action, map it in the dialect",
    )


# --- the dialect against each era ----------------------------------------------------------------

CSR = "org.matrix.cross_signing_reset"
DEACTIVATE = "org.matrix.account_deactivate"

DIALECT_TABLE: list[tuple[Era, str, list[tuple[str, str]]]] = [
    ("mas-0.9", "mas-0.9", [("OK", "dialect mas-0.9 matches the actions the portal offers")]),
    (
        "mas-0.9",
        "mas-0.7",
        [("WARN", f"the portal advertises {CSR} but dialect mas-0.7 does not serve it")],
    ),
    (
        "mas-0.9",
        "stable",
        [
            ("WARN", "dialect stable sends org.matrix.devices_list unchanged, "
             "but the portal advertises org.matrix.sessions_list"),
            ("WARN", "dialect stable sends org.matrix.device_view unchanged, "
             "but the portal advertises org.matrix.session_view"),
            ("WARN", "dialect stable sends org.matrix.device_delete unchanged, "
             "but the portal advertises org.matrix.session_end"),
            ("WARN", f"dialect stable sends {DEACTIVATE} unchanged, "
             "but the portal does not advertise it"),
        ],
    ),
    ("mas-0.7", "mas-0.7", [("OK", "dialect mas-0.7 matches the actions the portal offers")]),
    (
        "mas-0.7",
        "mas-0.9",
        [("WARN", f"dialect mas-0.9 sends {CSR} unchanged, but the portal does not advertise it")],
    ),
    (
        "prototype-unstable-keys",
        "mas-0.7",
        [("OK", "dialect mas-0.7 matches the actions the portal offers")],
    ),
    (
        "prototype-unstable-keys",
        "msc3824",
        [
            ("WARN", "dialect msc3824 sends org.matrix.profile as profile, "
             "but the portal advertises org.matrix.profile"),
            ("WARN", "dialect msc3824 sends org.matrix.devices_list as sessions_list, "
             "but the portal advertises org.matrix.sessions_list"),
            ("WARN", "dialect msc3824 sends org.matrix.device_view as session_view, "
             "but the portal advertises org.matrix.session_view"),
            ("WARN", "dialect msc3824 sends org.matrix.device_delete as session_end, "
             "but the portal advertises org.matrix.session_end"),
        ],
    ),
    (
        "msc3824",
        "msc3824",
        [("INFO", "the portal advertises no actions, so dialect msc3824 cannot be checked")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("era", "dialect", "expected"), DIALECT_TABLE)
def test_dialect_against_each_era(era: Era, dialect: str, expected: list[tuple[str, str]]) -> None:
    assert lines(check_dialect(names_of(era), config(dialect).account_management.table)) == expected


@pytest.mark.parametrize(
    ("era", "advice"),
    [
        ("mas-0.9", "set dialect: mas-0.9"),
        ("mas-0.7", "set dialect: mas-0.7"),
        ("prototype-unstable-keys", "set dialect: mas-0.7"),
    ],
)
@pytest.mark.parametrize("dialect", list(BUILTIN_DIALECTS))
def test_every_warning_points_at_the_dialect_that_fits(era: Era, advice: str, dialect: str) -> None:
    table = config(dialect).account_management.table
    assert dialect_advice(names_of(era) or (), table) == advice
    for finding in check_dialect(names_of(era), table):
        assert finding.level == "OK" or finding.todo.endswith(advice), finding


def test_a_portal_with_every_stable_name_is_told_to_set_dialect_stable() -> None:
    names = advertised_names(ALL_STABLE_DOC)
    assert names is not None
    on_mas = check_dialect(names, config("mas-0.9").account_management.table)
    assert {f.level for f in on_mas} == {"WARN"}
    assert all(f.todo.endswith("set dialect: stable") for f in on_mas)
    on_stable = check_dialect(names, config("stable").account_management.table)
    assert lines(on_stable) == [("OK", "dialect stable matches the actions the portal offers")]


def test_a_portal_that_also_speaks_stable_names_gets_a_hint_not_a_warning() -> None:
    """MAS 1.10+: both spellings advertised, so mas-0.9 still works; stable names would too."""
    table = config("mas-0.9").account_management.table
    assert portal_speaks_stable(MAS_110_NAMES, table)
    findings = check_dialect(MAS_110_NAMES, table)
    assert [f.level for f in findings] == ["OK", "INFO"]
    assert findings[1].what == "the portal advertises the stable name of every action it serves"
    assert findings[1].todo == "set dialect: mas-1.10"


def test_mas_110_is_advised_only_for_a_portal_that_lists_both_name_sets() -> None:
    table = config("mas-0.9").account_management.table
    only_stable = tuple(n for n in MAS_110_NAMES if n not in LEGACY_SESSION_NAMES)
    mapping = ", ".join(f"{n}: {n}" for n in only_stable)
    assert dialect_advice(only_stable, table) == f"set dialect: {{{mapping}}}"
    assert dialect_advice(MAS_110_NAMES, table) == "set dialect: mas-1.10"


def test_a_mas_110_dialect_matches_a_mas_110_portal() -> None:
    table = config("mas-1.10").account_management.table
    assert [(f.level, f.what) for f in check_dialect(MAS_110_NAMES, table)] == [
        ("OK", "dialect mas-1.10 matches the actions the portal offers")
    ]


# --- the shim's counters -------------------------------------------------------------------------


def test_counters_from_a_real_exposition() -> None:
    text = metrics_text(
        "mas-0.7",
        links=(
            ("org.matrix.session_end", "org.matrix.session_end", "passthrough"),
            ("org.matrix.session_end", "org.matrix.session_end", "passthrough"),
            ("org.matrix.device_delete", "org.matrix.session_end", "redirect"),
            ("org.matrix.wat", None, "passthrough"),
            (None, None, "passthrough"),
        ),
        discovery=("rewritten", "rewritten", "stale"),
    )
    counters = parse_counters(text.body.decode())
    assert isinstance(counters, ShimCounters)
    assert {(d.incoming, d.outcome, d.count) for d in counters.deeplinks} == {
        ("org.matrix.session_end", "passthrough", 2),
        ("org.matrix.device_delete", "redirect", 1),
        ("unknown", "passthrough", 1),
        ("none", "passthrough", 1),
    }
    assert dict(counters.discovery) == {"rewritten": 2, "stale": 1}
    assert dict(counters.upstream_errors) == {}


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (NoAnswer("connection refused"), "does not answer: connection refused"),
        (Answer(404, b"not found"), "answers 404 on /metrics"),
        (Answer(200, b"<html>a login page</html>"), "serves unreadable /metrics"),
        (Answer(200, b"\xff\xfe"), "serves unreadable /metrics"),
        (Answer(200, b"up 1\n"), "serves metrics, but not an msc4191-shim's"),
        (Answer(200, b"up +Inf\nx NaN\n"), "serves metrics, but not an msc4191-shim's"),
    ],
)
def test_metrics_that_cannot_be_read_are_a_warning(metrics: Fetched, expected: str) -> None:
    findings = diagnose(inputs(ALL_STABLE_DOC, "stable", metrics))
    (finding,) = (f for f in findings if "admin listener" in f.what)
    assert finding.level == "WARN"
    assert expected in finding.what
    assert "--admin-url" in finding.todo
    assert findings[-1].what.startswith("nothing in the portal's metadata")


def test_deep_link_summary_counts_stable_and_legacy_names() -> None:
    links: tuple[tuple[str | None, str | None, DeeplinkOutcome], ...] = (
        ("org.matrix.session_end", "org.matrix.session_end", "passthrough"),
        ("org.matrix.sessions_list", "org.matrix.sessions_list", "passthrough"),
        ("org.matrix.device_delete", "org.matrix.session_end", "redirect"),
    )
    doc = discovery_document("mas-0.7", BASE)
    findings = diagnose(inputs(doc, "mas-0.7", metrics_text("mas-0.7", links)))
    (summary,) = (f for f in findings if "client deep links since" in f.what)
    assert summary.what == "3 client deep links since the shim started: legacy: 2, stable: 1"
    assert summary.details == (
        "org.matrix.session_end: 1 (legacy name of org.matrix.device_delete)",
        "org.matrix.sessions_list: 1 (legacy name of org.matrix.devices_list)",
        "org.matrix.device_delete: 1 (stable)",
        "outcomes: passthrough: 2, redirect: 1",
    )
    reasons = findings[-1].details
    assert "it changed 1 client deep link since it started (redirect: 1)" in reasons
    # legacy names the portal serves are whom to chase, not a reason
    assert not any("legacy-named" in reason for reason in reasons)
    assert (
        "clients still sent 2 legacy-named deep links since the shim started (other: 2): not a "
        "reason by itself where the portal serves those names, but whom to chase before a portal "
        "that drops them"
    ) in [f.what for f in findings]


def test_relayed_discovery_and_upstream_errors_are_warnings() -> None:
    metrics = Metrics()
    metrics.tally.discovery("passthrough_status")
    metrics.observe_upstream_error("refused")
    findings = diagnose(inputs(ALL_STABLE_DOC, "stable", Answer(200, metrics.render()[0])))
    warnings = [f.what for f in findings if f.level == "WARN"]
    assert "discovery documents relayed untouched or stale: passthrough_status: 1" in warnings
    assert "the shim could not reach the portal: refused: 1" in warnings
    assert "no client deep link seen since the shim started" in [f.what for f in findings]


# --- the verdict ---------------------------------------------------------------------------------


#: the legacy eras, and the dialects that are not mas-1.10's own in front of MAS 1.10
LEGACY_SETUPS = [(e, d) for e in ERAS if e != "mas-1.10" for d in BUILTIN_DIALECTS] + [
    ("mas-1.10", d) for d in BUILTIN_DIALECTS if d != "mas-1.10"
]


@pytest.mark.parametrize(("era", "dialect"), LEGACY_SETUPS)
def test_every_legacy_era_still_needs_the_shim(era: Era, dialect: str) -> None:
    findings = diagnose(inputs(discovery_document(era, BASE), dialect, metrics_text(dialect)))
    assert findings[-1].what == "the shim is still needed because:"
    assert findings[-1].level == "INFO"
    assert exit_status(findings) == 0


def test_a_mas_110_portal_with_its_dialect_no_longer_needs_the_shim() -> None:
    links: tuple[tuple[str | None, str | None, DeeplinkOutcome], ...] = (
        ("org.matrix.device_delete", None, "passthrough"),
        ("org.matrix.session_end", None, "passthrough"),
        ("org.matrix.plan_management", None, "passthrough"),
    )
    metrics = metrics_text("mas-1.10", links, discovery=("unchanged", "passthrough_status"))
    extra = {"discovery": {"advertise": "stable+legacy"}}
    findings = diagnose(inputs(discovery_document("mas-1.10", BASE), "mas-1.10", metrics, **extra))
    assert findings[-1].what == "nothing here needs the shim any more"
    assert {f.level for f in findings} <= {"OK", "INFO", "WARN"}
    # the portal's own 404 relayed is a warning about the portal, not a reason to keep the shim
    assert not any("already speaks" in f.what for f in findings)


def test_the_same_portal_under_mas_09_is_told_it_already_speaks_msc4191() -> None:
    findings = diagnose(
        inputs(discovery_document("mas-1.10", BASE), "mas-0.9", metrics_text("mas-0.9"))
    )
    assert findings[-1].what == "the shim is still needed because:"
    (note,) = (f for f in findings if "already speaks" in f.what)
    assert note.what.startswith("the portal already speaks MSC4191; you may not need the shim")
    assert "set dialect: mas-1.10" in note.what


def test_verdict_reasons_for_the_prototype_portal() -> None:
    doc = discovery_document("prototype-unstable-keys", BASE)
    links: tuple[tuple[str | None, str | None, DeeplinkOutcome], ...] = (
        ("org.matrix.session_end", "org.matrix.session_end", "passthrough"),
    )
    findings = diagnose(inputs(doc, "mas-0.7", metrics_text("mas-0.7", links)))
    assert findings[-1].details == (
        "the portal does not publish account_management_uri",
        "the portal does not publish account_management_actions_supported",
        "dialect mas-0.7 is not stable: it sends the portal "
        "org.matrix.devices_list -> org.matrix.sessions_list, "
        "org.matrix.device_view -> org.matrix.session_view, "
        "org.matrix.device_delete -> org.matrix.session_end",
    )


def test_configuration_for_old_clients_is_a_reason() -> None:
    extra = {"discovery": {"advertise": "stable+legacy", "unstable_keys": True}}
    findings = diagnose(inputs(ALL_STABLE_DOC, "stable", metrics_text("stable"), **extra))
    assert findings[-1].details == (
        "discovery.advertise is stable+legacy: old clients read legacy names from the shim",
        "discovery.unstable_keys is on: old clients read org.matrix.msc4191.* from the shim",
    )


def test_a_stable_portal_with_stable_clients_no_longer_needs_the_shim() -> None:
    links: tuple[tuple[str | None, str | None, DeeplinkOutcome], ...] = (
        ("org.matrix.device_delete", "org.matrix.device_delete", "passthrough"),
    )
    metrics = metrics_text("stable", links, discovery=("unchanged",))
    findings = diagnose(inputs(ALL_STABLE_DOC, "stable", metrics))
    assert findings[-1] == Finding(
        "INFO",
        "nothing here needs the shim any more",
        "see docs/retirement.md before removing it",
    )
    assert {f.level for f in findings} == {"OK", "INFO"}
    assert exit_status(findings) == 0


def test_no_deep_links_yet_is_said_in_the_verdict() -> None:
    findings = diagnose(inputs(ALL_STABLE_DOC, "stable", metrics_text("stable")))
    assert findings[-1].what == "nothing here needs the shim any more"
    assert "no deep link has been seen yet" in findings[-1].todo


# --- what cannot be fetched ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discovery", "expected"),
    [
        (NoAnswer("timed out"), "the portal's own /.well-known/openid-configuration does not "
         "answer: timed out"),
        (Answer(404, b"{}"), "the portal's own /.well-known/openid-configuration answers 404"),
        (Answer(200, b"[1, 2]"), "the portal's own /.well-known/openid-configuration is not a "
         "JSON object"),
        (Answer(200, b"{" + b" " * (1024 * 1024) + b"}"), "the portal's own "
         "/.well-known/openid-configuration is larger than 1048576 bytes"),
    ],
)  # fmt: skip
def test_a_broken_portal_document_fails(discovery: Fetched, expected: str) -> None:
    findings = diagnose(DoctorInputs(config(), Answer(200), discovery, NoAnswer("refused"), ADMIN))
    assert ("FAIL", expected) in lines(findings)
    assert "the portal's own discovery document could not be checked" in findings[-1].details
    assert exit_status(findings) == 1


def test_an_unreachable_portal_fails() -> None:
    down = NoAnswer("Cannot connect to host auth.example.com:443")
    findings = diagnose(DoctorInputs(config(), down, down, NoAnswer("refused"), ADMIN))
    assert findings[0] == Finding(
        "FAIL",
        "the portal at https://auth.example.com/ does not answer: "
        "Cannot connect to host auth.example.com:443",
        "start the portal, or fix upstream.url",
    )
    assert exit_status(findings) == 1


# --- small pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        (ListenAddress("127.0.0.1", 9090), "http://127.0.0.1:9090"),
        (ListenAddress("0.0.0.0", 9090), "http://127.0.0.1:9090"),
        (ListenAddress("::", 9191), "http://[::1]:9191"),
        (ListenAddress("::1", 9090), "http://[::1]:9090"),
        (ListenAddress("10.1.2.3", 80), "http://10.1.2.3:80"),
    ],
)
def test_admin_url_from_the_listen_address(listen: ListenAddress, url: str) -> None:
    assert admin_base_url(listen) == url


def test_report_format() -> None:
    findings = [
        Finding("OK", "fine"),
        Finding("WARN", "odd", "fix it"),
        Finding("INFO", "because:", "see README", ("one", "two")),
    ]
    assert format_report(findings) == (
        "OK    fine\n"
        "WARN  odd  — fix it\n"
        "INFO  because:  — see README\n"
        "        - one\n"
        "        - two"
    )
    assert exit_status(findings) == 0
    assert exit_status([*findings, Finding("FAIL", "broken")]) == 1


# --- invariants ----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
NAMES = st.sampled_from([*STABLE_ACTIONS, *LEGACY_SESSION_NAMES, "session_end", "org.x.y", ""])
KEYS = st.sampled_from(
    [
        "account_management_uri",
        "account_management_actions_supported",
        "org.matrix.msc4191.account_management_uri",
        "org.matrix.msc4191.account_management_actions_supported",
    ]
)
DOCUMENTS = st.dictionaries(
    KEYS, JSON_VALUES | st.lists(NAMES, max_size=8) | st.sampled_from([BASE, f"{BASE}x"])
)


@given(
    doc=DOCUMENTS,
    dialect=st.sampled_from(list(BUILTIN_DIALECTS)),
    metrics=st.binary(max_size=64).map(lambda body: Answer(200, body)),
)
def test_any_document_and_any_metrics_give_findings_and_a_verdict(
    doc: dict[str, object], dialect: str, metrics: Answer
) -> None:
    findings = diagnose(inputs(doc, dialect, metrics))
    assert findings[-1].level == "INFO"
    assert findings[-1].what.startswith(("the shim is still needed", "nothing"))
    assert exit_status(findings) == 0
    assert format_report(findings).count("\n") >= len(findings) - 1
