"""The memory of the shim's own redirects: who may follow which Location, how long, how many."""

from __future__ import annotations

from shim.proxy.followups import FOLLOWUP_ENTRIES, FOLLOWUP_SECONDS, Followups

TARGET = "/account/?action=org.matrix.session_end&device_id=ABC"


def test_the_bounds_are_a_few_seconds_and_a_few_thousand() -> None:
    assert 1.0 <= FOLLOWUP_SECONDS <= 10.0
    assert 1000 <= FOLLOWUP_ENTRIES <= 10_000


def test_a_location_is_followed_once_by_the_client_it_was_issued_to() -> None:
    memory = Followups()
    memory.issued("192.0.2.1", TARGET, now=100.0)
    assert not memory.take("192.0.2.2", TARGET, now=100.1)  # another client: its own request
    assert not memory.take("192.0.2.1", TARGET + "&x=1", now=100.1)  # not the exact target
    assert memory.take("192.0.2.1", TARGET, now=100.2)
    assert not memory.take("192.0.2.1", TARGET, now=100.3)  # one redirect, one follow-up
    assert len(memory) == 0


def test_a_location_is_forgotten_after_its_seconds() -> None:
    memory = Followups(seconds=5.0)
    memory.issued("192.0.2.1", TARGET, now=100.0)
    assert memory.take("192.0.2.1", TARGET, now=105.0)
    memory.issued("192.0.2.1", TARGET, now=200.0)
    assert not memory.take("192.0.2.1", TARGET, now=205.1)


def test_expired_entries_go_when_the_next_is_issued() -> None:
    memory = Followups(seconds=5.0)
    for n in range(10):
        memory.issued("192.0.2.1", f"{TARGET}{n}", now=100.0)
    memory.issued("192.0.2.1", TARGET, now=106.0)
    assert len(memory) == 1


def test_a_flood_pushes_out_the_oldest_only() -> None:
    memory = Followups(seconds=5.0, entries=100)
    for n in range(1000):
        memory.issued("198.51.100.7", f"{TARGET}{n}", now=100.0)
        assert len(memory) <= 100
    assert not memory.take("198.51.100.7", f"{TARGET}0", now=100.0)
    assert memory.take("198.51.100.7", f"{TARGET}999", now=100.0)
    assert memory.take("198.51.100.7", f"{TARGET}900", now=100.0)


def test_issuing_again_renews() -> None:
    memory = Followups(seconds=5.0, entries=2)
    memory.issued("192.0.2.1", "/a", now=100.0)
    memory.issued("192.0.2.1", "/b", now=101.0)
    memory.issued("192.0.2.1", "/a", now=102.0)  # now the newest
    memory.issued("192.0.2.1", "/c", now=103.0)  # pushes out /b, the oldest
    assert memory.take("192.0.2.1", "/a", now=106.5)
    assert not memory.take("192.0.2.1", "/b", now=103.0)


def test_what_is_kept_holds_no_token() -> None:
    memory = Followups()
    memory.issued("192.0.2.1", TARGET + "&id_token_hint=s3cr3t", now=1.0)
    assert "s3cr3t" not in repr(memory._expiry)
