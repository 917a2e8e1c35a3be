"""shim/proxy/request.py: the one description of a request's fields; no network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.proxy.request import NOT_FORWARDED, PROTECTED, RequestFields, read_fields

Fields = list[tuple[bytes, bytes]]


def _read(fields: Fields, *, http11: bool = True, upgrade: bool = False) -> RequestFields:
    return read_fields(fields, http11=http11, upgrade_flag=upgrade, trusted=False)


@pytest.mark.parametrize(
    "token",
    [
        b"Content-Length",
        b"Transfer-Encoding",
        b"Host",
        b"X-Forwarded-For",
        b"X-Forwarded-Host",
        b"X-Forwarded-Proto",
        b"Forwarded",
    ],
)
def test_a_connection_token_never_removes_framing_host_or_forwarding(token: bytes) -> None:
    request = _read(
        [(b"Host", b"portal"), (b"Connection", b"keep-alive, " + token), (b"Content-Length", b"5")]
    )
    assert request.refusal is None
    assert (request.framing, request.length, request.host) == ("length", 5, b"portal")
    assert token.lower() not in request.tokens
    assert request.fields == [(b"Host", b"portal")]


def test_other_tokens_remove_the_fields_they_name() -> None:
    request = _read([(b"Host", b"p"), (b"Connection", b"X-Named"), (b"X-Named", b"1"), (b"A", b"")])
    assert request.fields == [(b"Host", b"p"), (b"A", b"")]


def test_the_end_to_end_fields_keep_case_order_and_repeats() -> None:
    received = [
        (b"cookie", b"a=1"),
        (b"Host", b"p"),
        (b"Expect", b"100-continue"),
        (b"TE", b"trailers"),
        (b"Content-Length", b"3"),
        (b"Cookie", b"b=2"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Authorization", b"Basic x"),
    ]
    request = _read(received)
    assert request.fields == [(b"cookie", b"a=1"), (b"Host", b"p"), (b"Cookie", b"b=2")]
    assert request.expect_continue


@pytest.mark.parametrize("value", [b"chunked", b"CHUNKED", b"chunked "])
def test_chunked_is_the_one_transfer_coding(value: bytes) -> None:
    request = _read([(b"Host", b"p"), (b"Transfer-Encoding", value)])
    assert (request.refusal, request.framing, request.has_body) == (None, "chunked", True)


@pytest.mark.parametrize(
    "fields",
    [
        [(b"Transfer-Encoding", b"chunked\t")],  # llhttp refuses it only after the head
        [(b"Transfer-Encoding", b"xchunked")],
        [(b"Transfer-Encoding", b"gzip, chunked")],
        [(b"Transfer-Encoding", b"chunked, gzip")],
        [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")],
        [(b"Content-Length", b"5, 5")],
        [(b"Content-Length", b"-1")],
    ],
)
def test_framing_other_than_one_chunked_or_one_length_is_refused(fields: Fields) -> None:
    request = _read([(b"Host", b"p"), *fields])
    assert request.refusal is not None
    assert request.refusal[0] == 400


def test_a_zero_length_is_no_body_but_still_a_length() -> None:
    request = _read([(b"Host", b"p"), (b"Content-Length", b" 0 ")])
    assert (request.framing, request.length, request.has_body) == ("length", 0, False)


@pytest.mark.parametrize(
    "framing",
    [[(b"Content-Length", b"5")], [(b"Transfer-Encoding", b"chunked")]],
)
def test_an_upgrade_with_a_body_is_refused(framing: Fields) -> None:
    """llhttp reads no body after an Upgrade head: forwarded, the body would be read as the
    next request."""
    received = [(b"Host", b"p"), (b"Upgrade", b"websocket"), (b"Connection", b"upgrade")]
    request = _read([*received, *framing], upgrade=True)
    assert request.refusal is not None
    assert request.refusal[0] == 400
    assert request.upgrade is None


@pytest.mark.parametrize(
    ("protocol", "spliced"),
    [(b"websocket", b"websocket"), (b"example/1", b"example/1"), (b"h2c", None), (b"", None)],
)
def test_an_upgrade_without_a_body_is_spliced_unless_h2c(
    protocol: bytes, spliced: bytes | None
) -> None:
    received = [(b"Host", b"p"), (b"Upgrade", protocol), (b"Connection", b"Upgrade")]
    request = _read(received, upgrade=True)
    assert (request.refusal, request.upgrade) == (None, spliced)
    assert request.fields == [(b"Host", b"p")]


@pytest.mark.parametrize("hosts", [[], [b""], [b" "], [b"a", b"b"]])
def test_http11_needs_exactly_one_non_empty_host(hosts: list[bytes]) -> None:
    request = _read([(b"Host", host) for host in hosts])
    assert request.refusal is not None
    assert request.refusal[0] == 400


def test_http10_may_go_without_a_host() -> None:
    request = _read([], http11=False)
    assert (request.refusal, request.host, request.keep_alive) == (None, None, False)


@pytest.mark.parametrize(
    ("http11", "connection", "keep_alive"),
    [
        (True, b"", True),
        (True, b"close", False),
        (True, b"Keep-Alive, Close", False),
        (False, b"", False),
        (False, b"keep-alive", True),
    ],
)
def test_keep_alive(http11: bool, connection: bytes, keep_alive: bool) -> None:
    fields = [(b"Host", b"p"), *([(b"Connection", connection)] if connection else [])]
    assert _read(fields, http11=http11).keep_alive is keep_alive


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize(
    "name", [b"X_Forwarded_For", b"x_forwarded_host", b"X_Real_IP", b"X_FORWARDED_PROTO"]
)
def test_underscored_forwarding_look_alikes_never_pass(name: bytes, trusted: bool) -> None:
    request = read_fields(
        [(b"Host", b"p"), (name, b"1.2.3.4")], http11=True, upgrade_flag=False, trusted=trusted
    )
    assert request.fields == [(b"Host", b"p")]


def test_a_trusted_peers_forwarding_fields_are_read_not_forwarded() -> None:
    received = [(b"Host", b"p"), (b"X-Forwarded-Host", b"public"), (b"X-Real-IP", b"1.2.3.4")]
    request = read_fields(received, http11=True, upgrade_flag=False, trusted=True)
    assert request.fields == [(b"Host", b"p"), (b"X-Real-IP", b"1.2.3.4")]
    assert request.end_to_end_received() == received


_NAMES = st.sampled_from(
    [
        b"Host",
        b"Connection",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Expect",
        b"TE",
        b"Trailer",
        b"X-Forwarded-For",
        b"X_Forwarded_For",
        b"Cookie",
        b"X-A",
    ]
)
_VALUES = st.sampled_from(
    [b"", b"p", b"5", b"chunked", b"close", b"upgrade", b"Content-Length", b"Host, X-A", b"x"]
)
_FIELDS = st.lists(st.tuples(_NAMES, _VALUES), max_size=8)


@given(_FIELDS, st.booleans(), st.booleans(), st.booleans())
def test_what_goes_upstream_never_carries_framing_or_hop_by_hop_fields(
    fields: Fields, http11: bool, upgrade: bool, trusted: bool
) -> None:
    request = read_fields(fields, http11=http11, upgrade_flag=upgrade, trusted=trusted)
    sent = {name.lower() for name, _ in request.fields}
    assert not sent & NOT_FORWARDED
    assert not request.tokens & PROTECTED
    # every Host the client sent still goes (a token cannot remove it), unless refused
    if request.refusal is None:
        assert sum(name.lower() == b"host" for name, _ in request.fields) == sum(
            name.lower() == b"host" for name, _ in fields
        )
    # the body is either refused or described once
    if request.refusal is None and upgrade:
        assert not request.has_body


@given(_FIELDS, _FIELDS, st.booleans(), st.booleans())
def test_a_description_is_reused_only_for_the_same_arguments(
    first: Fields, second: Fields, http11: bool, trusted: bool
) -> None:
    request = read_fields(first, http11=http11, upgrade_flag=False, trusted=trusted)
    assert request.same(list(first), http11, False, trusted)
    assert request.same(second, http11, False, trusted) is (first == second)
    assert not request.same(first, not http11, False, trusted)
    assert not request.same(first, http11, True, trusted)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([(b"Host", b"p")], None),
        ([(b"Host", b"p"), (b"USER-AGENT", b"a"), (b"User-Agent", b"b")], b"a"),
        # a field its Connection names was for this hop only: not the client's User-Agent
        ([(b"Host", b"p"), (b"Connection", b"User-Agent"), (b"User-Agent", b"a")], None),
    ],
)
def test_the_user_agent_is_the_first_end_to_end_one(fields: Fields, expected: bytes | None) -> None:
    request = _read(fields)
    assert request.user_agent == expected
    # what a lookup in the fields the portal gets would find
    sent = [value for name, value in request.fields if name.lower() == b"user-agent"]
    assert request.user_agent == (sent[0] if sent else None)
