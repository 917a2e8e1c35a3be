"""The upstream path prefix holds on servers that merge slashes and read `..;` and `\\` as `..`
and `/` (issue 21): a real shim process in front of `http://portal/prefix`, raw sockets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.rawhttp import MARKER, one_response, request, send_raw
from tests.support.shimchild import edge

pytestmark = pytest.mark.timeout(60)

PREFIX = "/prefix"

#: each leaves /prefix once slashes are merged, `..;` is read as `..` (Tomcat, Spring) and
#: `\\` or `%5c` as `/` (IIS, some WSGI stacks)
ESCAPES = [
    "//../x",
    "/..;/x",
    "/%5c..%5cx",
    "/a/..//../x",
    "/a//../../x",
    "/a/..;/..;/x",
    "/%2e%2e;/x",
    "/.%2e;/x",
    "/\\..\\x",
    "/a%5c..%5c..%5cx",
    "///..//..//x",
]

#: those characters, without leaving the prefix: still proxied, byte for byte
STAYS_INSIDE = [
    "/a//b/../c",
    "/a/..;/b",
    "/a%5cb",
    "/..a/x",
    "/a/b..;/c",
    "/a\\b",
    "//a//b",
]


@pytest.mark.parametrize("target", ESCAPES)
def test_a_target_that_escapes_the_prefix_after_merging_is_refused(
    tmp_path: Path, target: str
) -> None:
    with edge(tmp_path / "shim.yaml", prefix=PREFIX) as (portal, shim):
        reply = send_raw(shim.port, request("GET", target, f"{MARKER}: E", "Connection: close"))
        time.sleep(0.1)
    response = one_response(reply)
    assert response.status == 400, response
    assert PREFIX.encode() in response.body, response.body
    assert portal.raw() == b"", portal.raw()[:200]


def test_targets_that_stay_inside_the_prefix_are_still_proxied(tmp_path: Path) -> None:
    with edge(tmp_path / "shim.yaml", prefix=PREFIX) as (portal, shim):
        statuses = [
            one_response(
                send_raw(shim.port, request("GET", target, f"{MARKER}: I", "Connection: close"))
            ).status
            for target in STAYS_INSIDE
        ]
        seen = portal.wait_for(len(STAYS_INSIDE), within=1.0)
    assert statuses == [200] * len(STAYS_INSIDE)
    assert [r.target for r in seen] == [PREFIX + t for t in STAYS_INSIDE]
