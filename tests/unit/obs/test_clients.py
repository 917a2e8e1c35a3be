"""Client families from User-Agents: a bounded label, from a pure function."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim import __version__
from shim.obs import clients
from shim.obs.clients import (
    DOCTOR_HEADERS,
    DOCTOR_USER_AGENT,
    client_family,
    family_of,
)
from shim.obs.labels import CLIENT_FAMILIES

#: User-Agents as each sends them (browsers' from their vendors' documented formats)
AGENTS = [
    pytest.param(None, "other", id="none"),
    pytest.param("", "other", id="empty"),
    pytest.param(DOCTOR_USER_AGENT, "doctor", id="doctor"),
    pytest.param("msc4191-shim-doctor/0.0.1", "doctor", id="doctor-another-version"),
    pytest.param("Mozilla/5.0 msc4191-shim-doctor/1", "element-web", id="doctor-not-first"),
    pytest.param("Element X/25.01.2 (iPhone; iOS 18.2; Scale/3.00)", "element-x", id="ex-ios"),
    pytest.param(
        "Element X/25.01.0 (Google Pixel 8; Android 14; UQ1A; Sdk ...)",
        "element-x",
        id="ex-android",
    ),
    pytest.param("matrix-rust-sdk/0.9.0", "element-x", id="rust-sdk"),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
        "element-x",
        id="safari-iphone",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "element-x",
        id="chrome-android",
    ),
    pytest.param(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "element-web",
        id="chrome-linux",
    ),
    pytest.param(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0",
        "element-web",
        id="firefox-mac",
    ),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Element/1.11.89 Chrome/130.0.6723.137 Electron/33.2.1 Safari/537.36",
        "element-web",
        id="element-desktop",
    ),
    pytest.param("MyElement/1.0", "other", id="element-inside-another-token"),
    pytest.param("Synapse/1.120.0", "other", id="synapse"),
    pytest.param("curl/8.5.0", "other", id="curl"),
    pytest.param("Python/3.11 aiohttp/3.11.0", "other", id="aiohttp"),
]


@pytest.mark.parametrize(("agent", "family"), AGENTS)
def test_family_of(agent: str | None, family: str) -> None:
    assert family_of(agent) == family
    raw = None if agent is None else agent.encode("latin-1")
    assert client_family(raw) == family


def test_doctor_says_who_it_is() -> None:
    assert f"msc4191-shim-doctor/{__version__}" == DOCTOR_USER_AGENT
    assert dict(DOCTOR_HEADERS) == {"User-Agent": DOCTOR_USER_AGENT}


@given(st.binary(max_size=600))
def test_any_field_value_has_one_of_the_families(raw: bytes) -> None:
    assert client_family(raw) in CLIENT_FAMILIES
    assert client_family(raw) == family_of(raw.decode("latin-1"))


def test_the_memo_is_bounded() -> None:
    for i in range(3 * clients._families.size):
        client_family(b"agent/%d" % i)
    client_family(b"x" * 10_000)
    assert len(clients._families) <= clients._families.size
    assert clients._families.get(b"x" * 10_000) is None
