"""shim/http/headers.py: the pure header preparation, table driven, no network."""

from __future__ import annotations

import ipaddress

import pytest
from multidict import CIMultiDict, istr

from shim.http.headers import (
    HOP_BY_HOP,
    IPNetwork,
    client_response_headers,
    connection_tokens,
    decode_raw,
    invalid_response_head,
    is_trusted,
    set_forwarded,
    strip_hop_by_hop,
    upstream_request_headers,
)

LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"),)

HOP_BY_HOP_FIELDS = [
    ("Connection", "keep-alive"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Connection", "keep-alive"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("Transfer-Encoding", "chunked"),
    ("Upgrade", "h2c"),
    ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
    ("Proxy-Authenticate", 'Basic realm="proxy"'),
]


def raw(*fields: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in fields]


def items(headers: CIMultiDict[str]) -> list[tuple[str, str]]:
    return list(headers.items())


def test_hop_by_hop_set_is_rfc9110_plus_legacy() -> None:
    assert {istr(name) for name, _ in HOP_BY_HOP_FIELDS} == HOP_BY_HOP


def _dropped_both_ways(name: str, value: str) -> None:
    fields = [("X-Before", "1"), (name, value), ("X-After", "2")]
    expected = [("X-Before", "1"), ("X-After", "2")]
    assert items(client_response_headers(raw(*fields))) == expected
    request = upstream_request_headers(
        raw(*fields), peer=None, scheme="http", trusted_proxies=(), preserve_host=True
    )
    assert [(k, v) for k, v in request.items() if not k.startswith("X-Forwarded")] == expected


@pytest.mark.parametrize(("name", "value"), HOP_BY_HOP_FIELDS)
def test_each_hop_by_hop_field_is_dropped_both_ways(name: str, value: str) -> None:
    _dropped_both_ways(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (spell(n), v)
        for n, v in HOP_BY_HOP_FIELDS
        for spell in (str.lower, str.upper)
        if spell(n) != n
    ],
)
def test_hop_by_hop_names_match_in_any_case(name: str, value: str) -> None:
    _dropped_both_ways(name, value)


@pytest.mark.parametrize(
    ("connection", "tokens"),
    [
        ("close", {"close"}),
        ("X-Named, keep-alive", {"x-named", "keep-alive"}),
        (" x-a ,, X-B ", {"x-a", "x-b"}),
        ("", set()),
    ],
)
def test_connection_tokens(connection: str, tokens: set[str]) -> None:
    assert {t.lower() for t in connection_tokens([("Connection", connection)])} == tokens


def test_connection_tokens_from_a_lowercase_field() -> None:
    assert {t.lower() for t in connection_tokens([("connection", "X-Named")])} == {"x-named"}


def test_fields_named_by_any_connection_field_are_dropped() -> None:
    fields = [
        ("Connection", "X-One"),
        ("X-One", "a"),
        ("Connection", "X-Two"),
        ("X-Two", "b"),
        ("X-Three", "c"),
    ]
    assert items(strip_hop_by_hop(fields)) == [("X-Three", "c")]


def test_connection_tokens_match_fields_in_any_case() -> None:
    fields = [("Connection", "x-one, X-TWO"), ("X-One", "a"), ("x-two", "b"), ("X-Three", "c")]
    assert items(strip_hop_by_hop(fields)) == [("X-Three", "c")]


def test_end_to_end_fields_kept_in_order_with_repeats() -> None:
    fields = [
        ("Set-Cookie", "a=1; Path=/"),
        ("Content-Type", "text/html"),
        ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
        ("Content-Encoding", "gzip"),
        ("Set-Cookie", "c=3"),
        ("WWW-Authenticate", 'Bearer realm="x"'),
        ("Cache-Control", "no-store"),
    ]
    assert items(client_response_headers(raw(*fields))) == fields


def test_extra_drops_apply_on_top() -> None:
    fields = raw(("Content-Length", "3"), ("X-Keep", "1"))
    headers = client_response_headers(fields, drop=frozenset({istr("Content-Length")}))
    assert items(headers) == [("X-Keep", "1")]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("caf\u00e9".encode(), "caf\u00e9"),
        (b"caf\xe9", "caf\u00e9"),  # latin-1, not UTF-8: kept rather than refused
        (b"plain", "plain"),
    ],
)
def test_decode_raw(value: bytes, text: str) -> None:
    assert decode_raw([(b"X-Name", value)]) == [("X-Name", text)]


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [
        ("127.0.0.1", LOOPBACK, True),
        ("127.9.9.9", LOOPBACK, True),
        ("10.0.0.1", LOOPBACK, False),
        ("::1", LOOPBACK, False),
        ("127.0.0.1", (), False),
        (None, LOOPBACK, False),
        ("", LOOPBACK, False),
        ("not-an-ip", LOOPBACK, False),
        ("fe80::1%eth0", (ipaddress.ip_network("fe80::/10"),), True),
    ],
)
def test_is_trusted(peer: str | None, trusted: tuple[IPNetwork, ...], expected: bool) -> None:
    assert is_trusted(peer, trusted) is expected


SPOOFED = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-For", "7.7.7.7"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
]


@pytest.mark.parametrize(
    ("incoming", "trusted", "expected"),
    [
        pytest.param(
            [],
            False,
            {"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "h"},
            id="fresh",
        ),
        pytest.param(
            SPOOFED,
            False,
            {"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "h"},
            id="untrusted-replaced",
        ),
        pytest.param(
            SPOOFED,
            True,
            {
                "X-Forwarded-For": "6.6.6.6, 7.7.7.7, 10.1.1.1",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.example",
            },
            id="trusted-extended",
        ),
        pytest.param(
            [],
            True,
            {"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "h"},
            id="trusted-without-fields",
        ),
    ],
)
def test_set_forwarded(
    incoming: list[tuple[str, str]], trusted: bool, expected: dict[str, str]
) -> None:
    headers: CIMultiDict[str] = CIMultiDict(incoming)
    set_forwarded(headers, peer="10.1.1.1", scheme="http", host="h", trusted=trusted)
    assert {k: headers.getall(k) for k in headers} == {k: [v] for k, v in expected.items()}


def test_set_forwarded_without_peer_or_host() -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    set_forwarded(headers, peer=None, scheme="https", host=None, trusted=False)
    assert items(headers) == [("X-Forwarded-Proto", "https")]


@pytest.mark.parametrize(("preserve_host", "host_kept"), [(True, True), (False, False)])
def test_upstream_request_headers_host(preserve_host: bool, host_kept: bool) -> None:
    headers = upstream_request_headers(
        raw(("Host", "portal.example"), ("Accept", "*/*")),
        peer="127.0.0.1",
        scheme="http",
        trusted_proxies=(),
        preserve_host=preserve_host,
    )
    assert ("Host" in headers) is host_kept
    assert headers["X-Forwarded-Host"] == "portal.example"
    assert headers["Accept"] == "*/*"


def test_upstream_request_headers_in_documented_order() -> None:
    """Hop-by-hop first (a Connection naming X-Forwarded-For drops it), then forwarding."""
    headers = upstream_request_headers(
        raw(
            ("Connection", "X-Forwarded-For"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ),
        peer="127.0.0.1",
        scheme="https",
        trusted_proxies=LOOPBACK,
        preserve_host=True,
    )
    assert headers.getall("Cookie") == ["a=1", "b=2"]
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "https"


def test_websocket_handshake_fields_are_left_to_the_client_library() -> None:
    headers = upstream_request_headers(
        raw(
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Sec-WebSocket-Protocol", "chat"),
            ("Origin", "https://portal.example"),
        ),
        peer=None,
        scheme="http",
        trusted_proxies=(),
        preserve_host=True,
        websocket=True,
    )
    assert [k for k in headers if not k.startswith("X-Forwarded")] == ["Origin"]


def test_upstream_request_headers_extra_drop() -> None:
    headers = upstream_request_headers(
        raw(("If-None-Match", '"x"'), ("Accept", "*/*")),
        peer=None,
        scheme="http",
        trusted_proxies=(),
        preserve_host=True,
        drop=frozenset({istr("If-None-Match")}),
    )
    assert "If-None-Match" not in headers
    assert headers["Accept"] == "*/*"


@pytest.mark.parametrize("preserve_host", [True, False])
def test_a_lowercase_host_field_is_recognised(preserve_host: bool) -> None:
    headers = upstream_request_headers(
        raw(("host", "portal.example")),
        peer="127.0.0.1",
        scheme="http",
        trusted_proxies=(),
        preserve_host=preserve_host,
    )
    assert headers.get("X-Forwarded-Host") == "portal.example"
    assert ("Host" in headers) is preserve_host


@pytest.mark.parametrize(
    ("reason", "fields", "expected"),
    [
        (b"OK", [(b"X-A", b"caf\xc3\xa9\tok")], None),
        (
            b"OK",
            [(b"Set-Cookie", b"sid=SECRET\x01")],
            "header field #1 (Set-Cookie) holds a control character",
        ),
        (
            b"OK",
            [(b"X-A", b"1"), (b"X-B", b"a\nb")],
            "header field #2 (X-B) holds a control character",
        ),
        (b"OK", [(b"X-B", b"a\rb")], "header field #1 (X-B) holds a control character"),
        (b"OK", [(b"X-B", b"a\x00b")], "header field #1 (X-B) holds a control character"),
        (b"OK", [(b"X\x01SECRET", b"1")], "header field #1 has an invalid name"),
        (b"O\x01K", [], "its status line's reason phrase holds a control character"),
    ],
)
def test_invalid_response_head_never_quotes_a_value(
    reason: bytes, fields: list[tuple[bytes, bytes]], expected: str | None
) -> None:
    assert invalid_response_head(reason, fields) == expected
