"""The retirement definition: what keeps the shim needed, and what is only whom to chase."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.config.model import Config
from shim.config.parse import parse_config
from shim.core.deeplink import DeeplinkOutcome
from shim.obs.counters import ShimCounters
from shim.obs.labels import ClientFamily, DiscoveryOutcome
from shim.obs.metrics import Metrics
from shim.obs.retirement import (
    ALREADY_SPEAKS,
    config_reasons,
    counter_reasons,
    legacy_senders,
    retirement_notes,
    retirement_reasons,
)
from shim.obs.status import read_counts
from shim.vocabulary import STABLE_ACTIONS
from tests.support.paths import DATA

Link = tuple[str | None, str | None, DeeplinkOutcome, ClientFamily]


def vector(name: str) -> dict[str, Any]:
    documents = json.loads((DATA / "vectors.json").read_text())["discovery"]
    return {k: v for k, v in documents[name].items() if k != "_about"}


MAS_110 = vector("mas-1.10-and-later")
MAS_09 = vector("mas-0.9-to-1.9")


def config(dialect: str = "mas-0.9", **discovery: object) -> Config:
    return parse_config(
        {
            "upstream": {"url": "https://auth.example.com/"},
            "account_management": {"dialect": dialect},
            "discovery": discovery,
        }
    )


def counters(
    cfg: Config, links: tuple[Link, ...] = (), discovery: tuple[DiscoveryOutcome, ...] = ()
) -> ShimCounters:
    """What a real registry reads back after these events (clients' discovery as `other`)."""
    metrics = Metrics()
    table = cfg.account_management.table
    for incoming, sent, outcome, client in links:
        metrics.tally.deeplink(incoming, sent, outcome, table, client)
    for item in discovery:
        metrics.tally.discovery(item)
    read = read_counts(metrics)
    assert read is not None
    return read


STABLE_REDIRECTED: Link = (
    "org.matrix.device_delete",
    "org.matrix.session_end",
    "redirect",
    "other",
)
#: what a browser sends after that redirect: the legacy name, passed through
ITS_FOLLOWUP: Link = ("org.matrix.session_end", None, "followup", "element-web")
LEGACY_FROM_A_CLIENT: Link = ("org.matrix.session_end", None, "passthrough", "element-x")


def test_a_follow_up_is_neither_a_legacy_sender_nor_a_changed_link() -> None:
    cfg = config()
    seen = counters(cfg, (STABLE_REDIRECTED, ITS_FOLLOWUP))
    assert legacy_senders(seen) == {}
    assert list(counter_reasons(seen)) == [
        "it changed 1 client deep link since it started (redirect: 1)"
    ]


def test_legacy_names_are_counted_by_family_and_are_not_a_reason() -> None:
    cfg = config()
    seen = counters(cfg, (LEGACY_FROM_A_CLIENT, LEGACY_FROM_A_CLIENT, ITS_FOLLOWUP))
    assert legacy_senders(seen) == {"element-x": 2}
    assert list(counter_reasons(seen)) == []
    (note,) = retirement_notes(None, cfg, seen)[:1]
    assert note.startswith(
        "clients still sent 2 legacy-named deep links since the shim started (element-x: 2)"
    )


def test_doctors_probes_are_the_shims_own_traffic() -> None:
    cfg = config()
    probes: tuple[Link, ...] = (
        ("org.matrix.device_delete", "org.matrix.session_end", "redirect", "doctor"),
        ("org.matrix.session_end", None, "followup", "doctor"),
        ("session_end", "org.matrix.session_end", "redirect", "doctor"),
    )
    metrics = Metrics()
    table = cfg.account_management.table
    for incoming, sent, outcome, client in probes:
        metrics.tally.deeplink(incoming, sent, outcome, table, client)
    metrics.tally.discovery("passthrough_status", "doctor")
    metrics.tally.discovery("rewritten", "doctor")
    seen = read_counts(metrics)
    assert seen is not None
    assert seen.client_deeplinks == ()
    assert dict(seen.discovery) == {}
    assert dict(seen.doctor_discovery) == {"passthrough_status": 1, "rewritten": 1}
    assert list(counter_reasons(seen)) == []
    assert retirement_notes(None, cfg, seen) == (
        "not counted as clients': 1 follow-up of its own redirects and 4 requests from "
        "msc4191-shim doctor",
    )


def test_names_outside_msc4191_are_nothing_to_migrate() -> None:
    cfg = config("mas-1.10")
    seen = counters(cfg, (("org.matrix.plan_management", None, "passthrough", "element-web"),))
    (link,) = seen.deeplinks
    assert (link.incoming, link.kind) == ("unknown", "unknown")
    assert legacy_senders(seen) == {}
    assert retirement_reasons(MAS_110, cfg, seen) == ()


@pytest.mark.parametrize(
    ("outcome", "written"),
    [
        ("rewritten", True),
        ("cached", True),
        ("stale", True),
        ("not_modified", True),  # a 304 for a document of the shim's own
        ("unchanged", False),
        ("passthrough_status", False),  # the portal's own 404, relayed
    ],
)
def test_documents_the_shim_wrote(outcome: DiscoveryOutcome, written: bool) -> None:
    reasons = list(counter_reasons(counters(config(), discovery=(outcome,))))
    assert reasons == ([f"it wrote 1 discovery document clients read ({outcome}: 1)"] * written)


def test_mas_110_with_its_own_portal_can_go() -> None:
    cfg = config("mas-1.10", advertise="stable+legacy")
    links: tuple[Link, ...] = (
        ("org.matrix.device_delete", None, "passthrough", "element-web"),
        LEGACY_FROM_A_CLIENT,
    )
    seen = counters(cfg, links, discovery=("unchanged", "passthrough_status"))
    assert retirement_reasons(MAS_110, cfg, seen) == ()
    assert not any(ALREADY_SPEAKS in note for note in retirement_notes(MAS_110, cfg, seen))


@pytest.mark.parametrize(
    ("dialect", "doc", "reasons"),
    [
        # the portal's own legacy names: stable+legacy adds nothing under mas-1.10
        ("mas-1.10", MAS_110, []),
        # mas-0.9 brings MAS 1.10's list to stable names, then adds legacy ones
        ("mas-0.9", MAS_110, ["dialect", "discovery.advertise"]),
        ("mas-1.10", None, ["discovery.advertise"]),
    ],
)
def test_discovery_options_count_only_when_they_change_the_document(
    dialect: str, doc: dict[str, Any] | None, reasons: list[str]
) -> None:
    found = list(config_reasons(config(dialect, advertise="stable+legacy"), doc))
    assert [reason.split()[0] for reason in found] == reasons


@pytest.mark.parametrize(
    ("dialect", "doc", "said"),
    [
        ("mas-0.9", MAS_110, True),  # the portal speaks MSC4191, the dialect still translates
        ("mas-1.10", MAS_110, False),
        ("stable", MAS_110, True),  # it would drop the portal's legacy names
        # stable names only, as a stable portal: nothing to translate or rewrite
        ("stable", MAS_110 | {"account_management_actions_supported": list(STABLE_ACTIONS)}, False),
        ("mas-0.9", MAS_09, False),
        ("mas-0.9", None, False),
    ],
)
def test_a_portal_that_already_speaks_msc4191_is_pointed_out(
    dialect: str, doc: dict[str, Any] | None, said: bool
) -> None:
    notes = retirement_notes(doc, config(dialect), None)
    assert any(note.startswith(ALREADY_SPEAKS) for note in notes) is said


def test_a_dialect_that_would_rewrite_a_portal_needing_nothing_is_a_reason() -> None:
    # what the counters show once documents are served: say it before any traffic
    assert retirement_reasons(MAS_110, config("stable"), None) == (
        "it changes the portal's own discovery document (account_management_actions_supported)",
    )
    assert retirement_reasons(MAS_110, config("mas-1.10"), None) == ()
