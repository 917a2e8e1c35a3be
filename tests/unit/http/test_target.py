"""shim/http/target.py: targets that leave the upstream path prefix; the HTTP/2 preface."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.http.target import (
    HTTP2_PREFACE,
    escapes_prefix,
    is_http2_preface,
    remove_dot_segments,
    structural_path,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4's own example
        ("/mid/content=5/../6", "/mid/6"),
        ("/..", "/"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/", "/"),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/../admin",
        "/%2e%2e/admin",
        "/%2E%2E/admin",
        "/.%2e/admin",
        "/..%2fadmin",
        "/..%2Fadmin",
        "/..%5cadmin",
        "/..\\admin",
        "/x/../../admin",
        "/..",
        "/../authx",
        # a server that merges slashes reads `//..` as `/..`
        "//../admin",
        "/a/..//../admin",
        # `..;x` is `..` to Tomcat and Jetty (path parameters dropped)
        "/..;/admin",
        "/x/..;/..;/admin",
        "/%2e%2e;jsessionid=1/admin",
        # `\\` and `%5c` are `/` to some servers
        "/%5c..%5cadmin",
        "/\\..\\admin",
    ],
)
def test_escapes(path: str) -> None:
    assert escapes_prefix("/auth", path)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/x",
        "/x/../y",
        "/../auth/x",
        "/a/./b",
        "/%2e%2ex",
        "/....",
        "/a//b",
        "/x/..;/y",
        "/a;b",
    ],
)
def test_stays_inside(path: str) -> None:
    assert not escapes_prefix("/auth", path)


def test_without_a_prefix_nothing_escapes() -> None:
    assert not escapes_prefix("", "/../admin")


@given(st.text(alphabet="./%2eEfFaA\\x", max_size=30))
def test_a_path_that_stays_is_inside_after_normalising(tail: str) -> None:
    path = "/" + tail
    if not escapes_prefix("/auth", path):
        assert remove_dot_segments(structural_path("/auth" + path)).startswith("/auth")


def test_http2_preface() -> None:
    assert is_http2_preface(HTTP2_PREFACE)
    assert is_http2_preface(b"PRI * HTTP/2.0\r\n")
    assert not is_http2_preface(b"GET / HTTP/1.1\r\n")
    assert not is_http2_preface(b"PR")
