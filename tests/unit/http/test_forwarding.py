"""shim/http/forwarding.py: whom to believe, what the upstream is told, the origin."""

from __future__ import annotations

import ipaddress

import pytest

from shim.http.forwarding import (
    Forwarding,
    ForwardingRefused,
    IPNetwork,
    forwarding_fields,
    forwarding_lines,
    is_forwarding_field,
    is_trusted,
    own_forwarded_element,
    public_origin,
    read_forwarding,
    stripped,
    valid_host,
)

HOST = ("Host", "account.example.com")
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"),)


def read(*fields: tuple[str, str], trusted: bool = True) -> Forwarding:
    raw = [(name.encode(), value.encode("latin-1")) for name, value in fields]
    return read_forwarding(raw, peer="10.0.0.2", scheme="http", trusted=trusted)


@pytest.mark.parametrize(
    "name",
    [
        "Forwarded",
        "X-Forwarded-For",
        "x-forwarded-port",
        "X-Forwarded-Prefix",
        "X-Forwarded-Server",
        "X-Real-IP",
        "X-Client-IP",
        "True-Client-IP",
        "CF-Connecting-IP",
        "Fastly-Client-IP",
        "X-Original-URL",
    ],
)
def test_forwarding_fields_are_recognised(name: str) -> None:
    assert is_forwarding_field(name.encode())
    assert is_forwarding_field(name.replace("-", "_").encode())  # a CGI look-alike


@pytest.mark.parametrize("name", ["Host", "X-Request-Id", "Origin", "Via", "X-Forwarded"])
def test_other_fields_are_not(name: str) -> None:
    assert not is_forwarding_field(name.encode())


@pytest.mark.parametrize(
    "value",
    ["account.example.com", "account.example.com:8443", "127.0.0.1:80", "[::1]:8080", "[::1]", "a"],
)
def test_valid_hosts(value: str) -> None:
    assert valid_host(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "evil.example/path",
        "evil.example%0A",
        "a b",
        "user@host",
        "host:99999",
        "host:",
        "[nothex]",
        "javascript:alert(1)",
        "évil.example",
        "-",
        ".",
    ],
)
def test_invalid_hosts(value: str) -> None:
    assert not valid_host(value)


def test_an_untrusted_peer_is_believed_nothing() -> None:
    got = read(
        HOST, ("X-Forwarded-Host", "evil.example"), ("Forwarded", "host=evil"), trusted=False
    )
    assert (got.scheme, got.host, got.prior_for, got.prior_forwarded) == (
        "http",
        "account.example.com",
        (),
        (),
    )


def test_the_right_most_appended_value_wins() -> None:
    got = read(
        HOST,
        ("X-Forwarded-Host", "evil.example, account.example.com"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Proto", "https"),
    )
    assert (got.scheme, got.host) == ("https", "account.example.com")


def test_forwarded_is_understood_when_x_forwarded_is_absent() -> None:
    got = read(
        HOST,
        (
            "Forwarded",
            'for=1.2.3.4;host=evil.example, for=5.6.7.8;proto=HTTPS;host="a.example:8443"',
        ),
    )
    assert (got.scheme, got.host) == ("https", "a.example:8443")
    assert got.prior_forwarded == (
        "for=1.2.3.4;host=evil.example",
        'for=5.6.7.8;proto=HTTPS;host="a.example:8443"',
    )


def test_x_forwarded_goes_before_forwarded() -> None:
    got = read(HOST, ("Forwarded", "proto=http;host=f.example"), ("X-Forwarded-Host", "x.example"))
    assert (got.scheme, got.host) == ("http", "x.example")


@pytest.mark.parametrize(
    ("field", "needle"),
    [
        (("X-Forwarded-Proto", "javascript"), "expected http or https"),
        (("X-Forwarded-Proto", "https, ftp"), "'ftp'"),
        (("X-Forwarded-Host", "evil.example/%0A"), "not a valid host[:port]"),
        (("Forwarded", 'host="a/b"'), "Forwarded host="),
    ],
)
def test_a_believed_value_that_cannot_form_an_origin_is_refused(
    field: tuple[str, str], needle: str
) -> None:
    with pytest.raises(ForwardingRefused) as refused:
        read(HOST, field)
    assert needle in str(refused.value)


def test_an_invalid_or_repeated_host_is_refused_from_anyone() -> None:
    with pytest.raises(ForwardingRefused, match="not a valid host"):
        read(("Host", "a/b"), trusted=False)
    with pytest.raises(ForwardingRefused, match="2 Host fields"):
        read(HOST, HOST, trusted=False)


@pytest.mark.parametrize(
    ("name", "untrusted", "trusted"),
    [
        (b"x-real-ip", True, False),
        (b"accept", False, False),
        (b"x-forwarded-port", True, False),
        (b"forwarded", True, True),
        (b"x-forwarded-for", True, True),
        (b"x-forwarded-host", True, True),
        (b"x_forwarded_port", True, True),
        (b"x_real_ip", True, True),
    ],
)
def test_what_is_stripped_from_whom(name: bytes, untrusted: bool, trusted: bool) -> None:
    """An untrusted peer's forwarding fields all go; a trusted peer's only those the shim
    rewrites; a look-alike spelt with `_` from anyone."""
    assert stripped(name, trusted=False) is untrusted
    assert stripped(name, trusted=True) is trusted


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


def test_fields_for_the_upstream_say_what_was_believed() -> None:
    got = read(
        HOST,
        ("X-Forwarded-For", "1.1.1.1, 2.2.2.2"),
        ("X-Forwarded-Host", "evil.example, account.example.com"),
        ("Forwarded", "for=2.2.2.2"),
    )
    assert forwarding_fields(got) == [
        (b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2, 10.0.0.2"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"account.example.com"),
        (b"Forwarded", b"for=2.2.2.2, for=10.0.0.2;host=account.example.com;proto=http"),
    ]
    assert forwarding_lines(got) == b"".join(
        n + b": " + v + b"\r\n" for n, v in forwarding_fields(got)
    )


def test_a_trusted_peers_bytes_pass_on_byte_for_byte() -> None:
    """Values are read as latin-1, so what is passed on is what came in."""
    got = read(HOST, ("X-Forwarded-For", "1.1.1.1 (caf\u00e9)"))
    assert forwarding_fields(got)[0] == (b"X-Forwarded-For", b"1.1.1.1 (caf\xe9), 10.0.0.2")


def test_own_element_quotes_ipv6_and_ports() -> None:
    got = read_forwarding([(b"Host", b"a.example:8443")], peer="::1", scheme="https", trusted=False)
    assert own_forwarded_element(got) == 'for="[::1]";host="a.example:8443";proto=https'


def test_public_origin() -> None:
    got = read(HOST, ("X-Forwarded-Proto", "https"))
    assert public_origin(got, public_url_origin=None, fallback="x") == "https://account.example.com"
    assert public_origin(got, public_url_origin="https://p", fallback="x") == "https://p"
    assert public_origin(read(), public_url_origin=None, fallback="http://up") == "http://up"
