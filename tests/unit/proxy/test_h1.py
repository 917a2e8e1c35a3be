"""shim/proxy/h1.py: the heads the proxy writes, byte for byte; no network."""

from __future__ import annotations

import pytest

from shim.proxy.framing import parse_response_head
from shim.proxy.h1 import (
    client_response_head,
    interim_head,
    origin_form,
    request_line,
    simple_response,
    switching_head,
    upstream_field_block,
    valid_target,
)
from shim.proxy.request import read_fields

FIELDS = [
    (b"Host", b"portal.example"),
    (b"Connection", b"keep-alive, X-Named"),
    (b"X-Named", b"dropped"),
    (b"cookie", b"a=1"),
    (b"Expect", b"100-continue"),
    (b"Cookie", b"b=2"),
    (b"TE", b"trailers"),
]


def test_the_upstream_head_keeps_case_order_and_repeats_and_drops_hop_by_hop() -> None:
    request = read_fields(FIELDS, http11=True, upgrade_flag=False, trusted=False)
    head = request_line(b"GET", b"/a%2Fb?x") + upstream_field_block(
        request.fields, host=None, forwarding=b"X-Forwarded-For: 1.2.3.4\r\n"
    )
    assert head == (
        b"GET /a%2Fb?x HTTP/1.1\r\nHost: portal.example\r\ncookie: a=1\r\nCookie: b=2\r\n"
        b"X-Forwarded-For: 1.2.3.4\r\n"
    )


def test_a_replaced_host_comes_first_and_dropped_fields_go() -> None:
    request = read_fields(
        [(b"Host", b"client"), (b"X-Forwarded-Host", b"spoof"), (b"Content-Type", b"t")],
        http11=True,
        upgrade_flag=False,
        trusted=False,
    )
    head = request_line(b"POST", b"/p") + upstream_field_block(
        request.fields, host=b"127.0.0.1:81", forwarding=b"", drop=frozenset({b"content-type"})
    )
    assert head == b"POST /p HTTP/1.1\r\nHost: 127.0.0.1:81\r\n"


def test_the_client_head_drops_hop_by_hop_and_frames_anew() -> None:
    parsed = parse_response_head(
        b"HTTP/1.1 299 Custom Reason\r\nConnection: X-C\r\nX-C: 1\r\nKeep-Alive: t=5\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Length: 9\r\nDate: D\r\nLocation: /x\r\n"
        b"Set-Cookie: a\r\n\r\n",
        4096,
    )
    assert parsed is not None
    head = client_response_head(
        parsed[0],
        framing="chunked",
        http11=True,
        close=True,
        rewrite_location=lambda value: b"https://public" + value,
    )
    assert head == (
        b"HTTP/1.1 299 Custom Reason\r\nDate: D\r\nLocation: https://public/x\r\n"
        b"Set-Cookie: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )


def test_a_date_is_added_and_an_http10_client_told_keep_alive() -> None:
    parsed = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 4096)
    assert parsed is not None
    head = client_response_head(parsed[0], framing="length", http11=False, close=False)
    assert head.startswith(b"HTTP/1.0 200 OK\r\nDate: ")
    assert head.endswith(b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n")


def test_interim_and_switching_heads() -> None:
    early = parse_response_head(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nTE: x\r\n\r\n", 99)
    switching = parse_response_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        999,
    )
    assert early is not None
    assert switching is not None
    assert interim_head(early[0]) == b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    assert switching_head(switching[0]) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )


def test_a_simple_response_for_head_has_no_body() -> None:
    full = simple_response(302, b"Found", [(b"Location", b"/x")], b"", close=True)
    assert full.startswith(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nDate: ")
    assert full.endswith(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    not_modified = simple_response(304, b"Not Modified", [], close=False, framed=False)
    assert b"Content-Length" not in not_modified
    head_only = simple_response(200, b"OK", [], b"body", close=False, head_only=True)
    assert b"Content-Length: 4\r\n" in head_only
    assert head_only.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    ("target", "valid"),
    [(b"/a?b=%20", True), (b"*", True), (b"/a b", False), (b"/caf\xc3\xa9", False), (b"", False)],
)
def test_valid_target(target: bytes, valid: bool) -> None:
    assert valid_target(target) is valid


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/account/?action=x", "/account/?action=x"),
        ("/x?", "/x?"),
        ("http://evil.example/account/?action=x", "/account/?action=x"),
        ("http://h?q=1", "/?q=1"),
        ("*", None),
        ("example.com:443", None),
    ],
)
def test_origin_form(target: str, expected: str | None) -> None:
    assert origin_form(target) == expected
