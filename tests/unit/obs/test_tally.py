"""The counts the request path adds up (shim/obs/tally.py): cumulative, bounded, refused when a
label value is outside its vocabulary. Their exposition is tested in test_metrics.py."""

from __future__ import annotations

import pytest

from shim.obs.tally import SEEN_DEEPLINKS, Tally
from shim.vocabulary import ACCOUNT_DEACTIVATE, BUILTIN_DIALECTS, build_action_table

BOUNDS = (0.001, 0.01, 0.1)


@pytest.fixture
def tally() -> Tally:
    return Tally(BOUNDS, BOUNDS)


def test_counts_only_grow(tally: Tally) -> None:
    """Nothing takes the counts away: a scrape reads them as they are (no batch to hand over)."""
    tally.finish("deeplink", 302, 0.0005, False)
    tally.upstream("passthrough", 0.05)
    before = (dict(tally.request_counts), {k: list(v) for k, v in tally.duration_counts.items()})
    tally.finish("deeplink", 302, 5.0, False)
    tally.upstream("passthrough", 0.05)
    assert before == ({("deeplink", 302): 1}, {"deeplink": [0.0005, 1, 0, 0, 0]})
    assert tally.request_counts == {("deeplink", 302): 2}
    # [sum, then each bucket's own count, +Inf last]
    assert tally.duration_counts == {"deeplink": [5.0005, 1, 0, 0, 1]}
    assert tally.upstream_counts == {"passthrough": [0.1, 0, 0, 2, 0]}


def test_rare_events_are_counted_by_their_label(tally: Tally) -> None:
    tally.upstream_error("refused")
    tally.upstream_error("refused")
    tally.limit_hit("head_timeout")
    tally.reload(True)
    tally.reload(False)
    tally.reload(False)
    assert tally.upstream_error_counts == {"refused": 2}
    assert tally.limit_hit_counts == {"head_timeout": 1}
    assert tally.reload_counts == {"ok": 1, "error": 2}


@pytest.mark.parametrize(
    "count",
    [
        lambda t: t.request("websockets", 200),
        lambda t: t.finish("websockets", 200, 0.1, False),
        lambda t: t.upstream("other", 0.1),
        lambda t: t.discovery("passthrough"),
        lambda t: t.discovery("cached", "synapse"),
        lambda t: t.upstream_error("timeout"),
        lambda t: t.limit_hit("max_body_bytes"),
    ],
)
def test_a_value_outside_the_vocabulary_is_refused_every_time(tally: Tally, count: object) -> None:
    """Checked the first time a value is seen only; a refused one is never stored, so it is
    refused again (and never reaches the exposition)."""
    assert callable(count)
    for _ in range(2):
        with pytest.raises(ValueError, match="expected one of"):
            count(tally)
    assert not any(
        (
            tally.request_counts,
            tally.duration_counts,
            tally.upstream_counts,
            tally.discovery_counts,
            tally.upstream_error_counts,
            tally.limit_hit_counts,
        )
    )


def test_a_deep_link_is_labelled_by_the_current_table(tally: Tally) -> None:
    """The labels remembered per deep link belong to one table: after a reload that drops an
    alias, the name is counted as `unknown`; after one that adds it back, by its name again."""
    dialect = BUILTIN_DIALECTS["mas-0.9"]
    aliased = build_action_table(dialect, {"org.matrix.deactivate_account": ACCOUNT_DEACTIVATE})
    plain = build_action_table(dialect, {})
    for table in (aliased, plain, aliased):
        tally.deeplink("org.matrix.deactivate_account", None, "passthrough", table)
    assert tally.deeplink_counts == {
        ("org.matrix.deactivate_account", "legacy", "none", "passthrough", "other"): 2,
        ("unknown", "unknown", "none", "passthrough", "other"): 1,
    }


def test_the_deep_links_remembered_are_bounded(tally: Tally) -> None:
    table = build_action_table(BUILTIN_DIALECTS["mas-0.9"], {})
    for i in range(SEEN_DEEPLINKS * 4):
        tally.deeplink(f"made-up-{i}", None, "passthrough", table)
    assert len(tally._deeplinks_seen) <= SEEN_DEEPLINKS
    assert tally.deeplink_counts == {
        ("unknown", "unknown", "none", "passthrough", "other"): SEEN_DEEPLINKS * 4
    }


def test_in_flight_counts_begun_requests_until_they_finish(tally: Tally) -> None:
    tally.begin()
    tally.begin()
    assert tally.in_flight == 2
    tally.finish("passthrough", 200, 0.01, True)
    # an answer to a request never begun (a head refused before it was complete) changes nothing
    tally.finish("passthrough", 400, 0.0, False)
    assert tally.in_flight == 1
