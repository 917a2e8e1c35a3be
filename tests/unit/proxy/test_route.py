"""shim/proxy/route.py: the route from the head alone; no network."""

from __future__ import annotations

import pytest

from shim.config.parse import parse_config
from shim.proxy.route import classify, classify_memoized, is_upgrade

CONFIG = parse_config({"upstream": {"url": "http://portal:8081"}})


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/account/?action=x"),
        ("GET", "/account/?action=y"),
        ("POST", "/account/"),
        ("HEAD", "/.well-known/openid-configuration?x=1"),
        ("GET", "/.well-known/matrix/client"),
        ("GET", "/elsewhere"),
    ],
)
def test_the_memo_agrees_with_classify(method: str, target: str) -> None:
    expected = classify(method, target, CONFIG, False)
    assert classify_memoized(method, target, CONFIG, False) == expected
    assert classify_memoized(method, target, CONFIG, False) == expected
    assert classify_memoized(method, target, CONFIG, True) == "upgrade"


@pytest.mark.parametrize(
    ("tokens", "upgrade", "expected"),
    [
        ({b"upgrade"}, b"websocket", True),
        ({b"upgrade", b"keep-alive"}, b"foo/2, bar", True),
        ({b"upgrade"}, b"h2c", False),
        ({b"keep-alive"}, b"websocket", False),
        ({b"upgrade"}, None, False),
    ],
)
def test_is_upgrade(tokens: set[bytes], upgrade: bytes | None, expected: bool) -> None:
    assert is_upgrade(frozenset(tokens), upgrade) is expected
