"""shim/proxy/runtime.py: what is derived once per (re)load, and what is remembered under it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shim.config.parse import parse_config
from shim.core.deeplink import plan_deeplink
from shim.proxy.route import classify
from shim.proxy.runtime import PLAN_MAX_TARGET, build_runtime

CONFIG = parse_config(
    {"upstream": {"url": "https://portal.example:8443/auth/"}, "public_url": "https://a.example"}
)

_PATHS = st.sampled_from(
    ["/account/", "/account", "/.well-known/openid-configuration", "/elsewhere", "/"]
)
_QUERIES = st.sampled_from(
    ["", "action=org.matrix.device_delete&device_id=A", "action=sessions_list", "x=1"]
)


def test_the_facts_are_derived_once() -> None:
    runtime = build_runtime(CONFIG)
    target = runtime.target
    assert (target.host, target.port, target.prefix, target.prefix_text) == (
        "portal.example",
        8443,
        b"/auth",
        "/auth",
    )
    assert target.authority == b"portal.example:8443"
    assert target.ssl is not None
    assert runtime.public_url_origin == "https://a.example"
    assert str(runtime.upstream_url("/x?y=%2F")) == "https://portal.example:8443/auth/x?y=%2F"


@given(st.sampled_from(["GET", "HEAD", "POST"]), _PATHS, _QUERIES, st.booleans())
def test_a_remembered_route_is_the_route(method: str, path: str, query: str, upgrade: bool) -> None:
    runtime = build_runtime(CONFIG)
    target = f"{path}?{query}" if query else path
    for _ in range(2):  # worked out, then remembered
        assert runtime.route(method, target, upgrade) == classify(method, target, CONFIG, upgrade)


@given(_PATHS, _QUERIES)
def test_a_remembered_plan_is_the_plan(path: str, query: str) -> None:
    runtime = build_runtime(CONFIG)
    expected = plan_deeplink(path, query, CONFIG.account_management)
    assert runtime.plan(path, query) == expected
    assert runtime.plan(path, query) == expected


def test_what_is_remembered_is_bounded_and_per_runtime() -> None:
    runtime = build_runtime(CONFIG)
    for n in range(runtime.routes.size + 5):
        runtime.route("GET", f"/p{n}", False)
    assert len(runtime.routes) <= runtime.routes.size
    runtime.plan("/account/", "x=" + "a" * PLAN_MAX_TARGET)  # too long to remember
    assert len(runtime.plans) == 0
    runtime.plan("/account/", "action=sessions_list")
    assert len(runtime.plans) == 1
    reloaded = build_runtime(CONFIG)
    assert (len(reloaded.routes), len(reloaded.plans), reloaded.cache is runtime.cache) == (
        0,
        0,
        False,
    )
