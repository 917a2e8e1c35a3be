"""shim/proxy/route.py: the route from the head alone; no network."""

from __future__ import annotations

import pytest

from shim.config.parse import parse_config
from shim.proxy.route import Route, classify

CONFIG = parse_config({"upstream": {"url": "http://portal:8081"}})


@pytest.mark.parametrize(
    ("method", "target", "route"),
    [
        ("GET", "/account/?action=x", "deeplink"),
        ("HEAD", "/account/", "deeplink"),
        ("POST", "/account/", "passthrough"),
        ("HEAD", "/.well-known/openid-configuration?x=1", "discovery"),
        ("GET", "/.well-known/matrix/client", "well_known"),
        ("GET", "/elsewhere", "passthrough"),
    ],
)
def test_classify(method: str, target: str, route: Route) -> None:
    assert classify(method, target, CONFIG, False) == route
    assert classify(method, target, CONFIG, True) == "upgrade"
