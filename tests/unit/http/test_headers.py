"""shim/http/headers.py: fields as bytes pairs, the Connection token scan, the head rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.http.headers import (
    HOP_BY_HOP,
    decode_raw,
    first_value,
    invalid_response_head,
    text,
    tokens,
    values,
)


def test_hop_by_hop_set_is_rfc9110_plus_legacy() -> None:
    assert {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    } == HOP_BY_HOP


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"keep-alive"], {b"keep-alive"}),
        ([b"Keep-Alive, X-Named"], {b"keep-alive", b"x-named"}),
        ([b" close ,\tUpgrade,, "], {b"close", b"upgrade"}),
        ([b"a", b"B, c"], {b"a", b"b", b"c"}),
        ([b""], set()),
        ([], set()),
    ],
)
def test_tokens(lines: list[bytes], expected: set[bytes]) -> None:
    assert tokens(lines) == expected


def test_values_and_first_value_match_names_in_any_case() -> None:
    fields = [(b"Cookie", b"a"), (b"X", b"1"), (b"cookie", b"b")]
    assert values(fields, b"cookie") == [b"a", b"b"]
    assert first_value(fields, b"cookie") == b"a"
    assert first_value(fields, b"host") is None


@given(st.binary(max_size=40))
def test_text_round_trips_every_byte(value: bytes) -> None:
    assert text(value).encode("latin-1") == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("caf\u00e9".encode(), "caf\u00e9"),
        (b"caf\xe9", "caf\u00e9"),  # latin-1, not UTF-8: kept rather than refused
        (b"plain", "plain"),
    ],
)
def test_decode_raw(value: bytes, expected: str) -> None:
    assert decode_raw([(b"X-Name", value)]) == [("X-Name", expected)]


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
