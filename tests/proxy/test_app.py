"""Classification and request targets: pure functions of shim/proxy/route.py and h1.py."""

from __future__ import annotations

import pytest

from shim.config.parse import parse_config
from shim.proxy.h1 import origin_form
from shim.proxy.route import classify

CONFIG = parse_config({"upstream": {"url": "http://portal:8081"}})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/account/?action=x", "/account/?action=x"),
        ("/a%2Fb?c=%20", "/a%2Fb?c=%20"),
        ("http://evil.example/account/?action=x", "/account/?action=x"),
        ("HTTPS://h:8443/p", "/p"),
        ("http://h", "/"),
        ("http://h?q=1", "/?q=1"),
        ("*", None),
        ("example.com:443", None),
        ("ftp://h/x", None),
        ("http://", None),
    ],
)
def test_origin_form(target: str, expected: str | None) -> None:
    assert origin_form(target) == expected


@pytest.mark.parametrize(
    ("method", "target", "websocket", "route"),
    [
        ("GET", "/account/?action=org.matrix.profile", False, "deeplink"),
        ("HEAD", "/account", False, "deeplink"),
        ("GET", "/%61ccount/", False, "deeplink"),
        ("POST", "/account/", False, "passthrough"),
        ("GET", "/account/sessions", False, "passthrough"),
        ("GET", "/.well-known/openid-configuration", False, "discovery"),
        ("HEAD", "/_matrix/client/v1/auth_metadata?x=1", False, "discovery"),
        ("GET", "/.well-known/matrix/client", False, "well_known"),
        ("PUT", "/.well-known/openid-configuration", False, "passthrough"),
        ("GET", "/graphql", True, "upgrade"),
        ("GET", "/elsewhere", False, "passthrough"),
    ],
)
def test_classify(method: str, target: str, websocket: bool, route: str) -> None:
    assert classify(method, target, CONFIG, websocket) == route
