"""shim/proxy/framing.py: response heads, how bodies end, chunk coding; no network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.proxy.framing import (
    ChunkedDecoder,
    FramingError,
    ResponseHead,
    _general_head,
    body_kind,
    chunk,
    client_framing,
    last_chunk,
    parse_response_head,
)
from shim.proxy.h1 import client_response_head

LIMIT = 65536


def head(raw: bytes) -> ResponseHead:
    parsed = parse_response_head(raw, LIMIT)
    assert parsed is not None
    return parsed[0]


def test_a_head_keeps_names_order_and_repeats() -> None:
    raw = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nx-lower: v\r\nSet-Cookie: b=2\r\n\r\nbody"
    parsed = parse_response_head(raw, LIMIT)
    assert parsed is not None
    got, size = parsed
    assert raw[size:] == b"body"
    assert (got.status, got.reason) == (200, b"OK")
    assert got.fields == [(b"Set-Cookie", b"a=1"), (b"x-lower", b"v"), (b"Set-Cookie", b"b=2")]
    assert got.lowered == [b"set-cookie", b"x-lower", b"set-cookie"]


def test_an_incomplete_head_is_none_until_the_limit() -> None:
    assert parse_response_head(b"HTTP/1.1 200 OK\r\nX: y\r\n", LIMIT) is None
    with pytest.raises(FramingError, match="longer than 16 bytes"):
        parse_response_head(b"HTTP/1.1 200 OK\r\nX: yyyyyyyyyyy\r\n", 16)


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad\x01: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 099 Early\r\n\r\n",
        b"HTTP/1.1 000 OK\r\n\r\n",
        b"HTTP/1.1 600 OK\r\n\r\n",
        b"HTTP/1.1 999 OK\r\nX: \x01\r\n\r\n",
    ],
)
def test_malformed_heads_are_refused_without_quoting_them(raw: bytes) -> None:
    with pytest.raises(FramingError) as refused:
        parse_response_head(raw, LIMIT)
    for quoted in ("AT ALL", "folded", "Bad", "No colon", "-1"):
        assert quoted not in str(refused.value)


def test_control_bytes_in_values_are_flagged_for_the_head_rules() -> None:
    assert not head(b"HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\tok\r\n\r\n").has_control_bytes
    assert head(b"HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n").has_control_bytes
    assert head(b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n").has_control_bytes


@pytest.mark.parametrize(
    ("raw", "method", "kind"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"GET", "length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"HEAD", "none"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"GET", "none"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"GET", "none"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", b"GET", "none"),
        (b"HTTP/1.1 103 Early Hints\r\n\r\n", b"GET", "none"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET", "chunked"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"GET",
            "chunked",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", b"GET", "close"),
        (b"HTTP/1.1 200 OK\r\n\r\n", b"GET", "close"),
    ],
)
def test_body_kind(raw: bytes, method: bytes, kind: str) -> None:
    assert body_kind(head(raw), method) == kind


@pytest.mark.parametrize(
    ("raw", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", False),
    ],
)
def test_reusable(raw: bytes, reusable: bool) -> None:
    assert head(raw).reusable is reusable


@pytest.mark.parametrize(
    ("kind", "http11", "framing"),
    [
        ("length", True, "length"),
        ("none", False, "none"),
        ("chunked", True, "chunked"),
        ("close", True, "chunked"),
        ("chunked", False, "close"),
        ("close", False, "close"),
    ],
)
def test_client_framing(kind: str, http11: bool, framing: str) -> None:
    assert client_framing(kind, http11=http11) == framing  # type: ignore[arg-type]


def test_chunk_and_last_chunk() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert last_chunk([]) == b"0\r\n\r\n"
    assert last_chunk([(b"X-Sum", b"1")]) == b"0\r\nX-Sum: 1\r\n\r\n"


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    decoder = ChunkedDecoder()
    body = b"5;note=ext\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT"
    assert b"".join(decoder.feed(body)) == b"hello world"
    assert decoder.done
    assert decoder.trailers == [(b"X-Trailer", b"t")]
    assert decoder.rest == b"NEXT"


def test_a_trailer_with_a_control_byte_is_left_out() -> None:
    decoder = ChunkedDecoder()
    decoder.feed(b"0\r\nX-Cr: a\rb\r\nX-Nul: a\x00b\r\nX-Ok: fine\r\n\r\n")
    assert decoder.done
    assert decoder.trailers == [(b"X-Ok", b"fine")]


@pytest.mark.parametrize(
    "connection", [b"Content-Length", b"Transfer-Encoding", b"keep-alive, content-length"]
)
def test_a_connection_token_never_unframes_the_client_response(connection: bytes) -> None:
    """The upstream's Connection may name its own framing fields; the body is still framed by
    them, and the client gets this hop's Content-Length."""
    got = head(b"HTTP/1.1 200 OK\r\nConnection: " + connection + b"\r\nContent-Length: 5\r\n\r\n")
    assert (got.length, got.reusable) == (5, True)
    kept = client_response_head(got, framing="length", http11=True, close=False)
    assert kept.count(b"Content-Length: 5\r\n") == 1
    assert b"Connection:" not in kept


@pytest.mark.parametrize(
    ("raw", "method", "length"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", b"HEAD", b"42"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n", b"GET", b"42"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"GET", b"0"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", b"GET", None),
    ],
)
def test_a_length_without_a_body_is_written_where_it_means_something(
    raw: bytes, method: bytes, length: bytes | None
) -> None:
    got = head(raw)
    kept = client_response_head(got, framing=body_kind(got, method), http11=True, close=False)
    written = [line for line in kept.split(b"\r\n") if line.startswith(b"Content-Length: ")]
    assert written == ([] if length is None else [b"Content-Length: " + length])


@pytest.mark.parametrize(
    "body",
    [b"zz\r\n", b"5\r\nhelloXX\r\n", b"0\r\nno colon\r\n\r\n", b"9" * 5000],
    ids=["bad-size", "no-crlf", "bad-trailer", "endless-size-line"],
)
def test_a_broken_chunked_body_is_refused(body: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(body)


@given(
    pieces=st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_split_of_a_chunked_body_decodes_to_the_payload(
    pieces: list[bytes], cuts: list[int]
) -> None:
    encoded = b"".join(chunk(p) for p in pieces) + last_chunk([])
    points = sorted({c % (len(encoded) + 1) for c in cuts})
    parts = [encoded[a:b] for a, b in zip([0, *points], [*points, len(encoded)], strict=True)]
    decoder = ChunkedDecoder()
    out = b"".join(piece for part in parts for piece in decoder.feed(part))
    assert out == b"".join(pieces)
    assert decoder.done


# -- the fast path and the repeat memo must say what the general path says

_LINES = st.sampled_from(
    [
        b"Server: nginx",
        b"Content-Type: text/html",
        b"Content-Length: 12",
        b"content-length:7",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Connection: keep-alive",
        b"Connection: close",
        b"Connection: close, X-Drop",
        b"X-Drop: 1",
        b"Keep-Alive: timeout=5",
        b"Location: /next",
        b"Set-Cookie: a=1",
        b'ETag: "x"',
        b"Trailer: X-Sum",
        b"Upgrade: websocket",
        b"Proxy-Connection: keep-alive",
        b"x-odd:  spaced value \t",
        b"Connection: Content-Length",
        b"Connection: close, Transfer-Encoding",
    ]
)


def _facts(got: ResponseHead) -> tuple[object, ...]:
    """Everything a sink reads from a head, and the client's head made from it."""
    kept = client_response_head(got, framing="length", http11=True, close=False)
    return (
        got.status,
        got.reason,
        got.fields,
        got.length,
        got.chunked,
        got.close_delimited,
        got.reusable,
        got.connection_tokens,
        got.has_date,
        got.has_location,
        kept,
    )


@given(
    lines=st.lists(_LINES, max_size=8),
    date_at=st.integers(min_value=0, max_value=8),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
)
def test_the_fast_path_and_a_repeated_head_read_as_the_general_path(
    lines: list[bytes], date_at: int, version: bytes
) -> None:
    def block(second: int) -> bytes:
        date = b"Date: Fri, 27 Nov 2026 13:27:%02d GMT" % second
        with_date = [*lines[:date_at], date, *lines[date_at:]]
        return b"\r\n".join([version + b" 200 OK", *with_date])

    for second in (1, 2, 3):  # the first is read afresh, the others as repeats
        raw = block(second)
        try:
            expected = _facts(_general_head(raw))
        except FramingError:
            with pytest.raises(FramingError):
                parse_response_head(raw + b"\r\n\r\n", LIMIT)
            continue
        assert _facts(head(raw + b"\r\n\r\n")) == expected


def test_a_repeated_head_with_a_control_byte_in_its_date_is_flagged() -> None:
    good = b"HTTP/1.1 200 OK\r\nDate: Fri, 27 Nov 2026 13:27:01 GMT\r\nContent-Length: 0\r\n\r\n"
    assert not head(good).has_control_bytes
    assert head(good.replace(b"13:27:01", b"13:27\x0002")).has_control_bytes


def test_a_head_that_sets_a_cookie_is_not_remembered() -> None:
    from shim.proxy import framing

    raw = b"HTTP/1.1 200 OK\r\nDate: Fri, 27 Nov 2026 13:27:01 GMT\r\nSet-Cookie: s=1\r\n\r\n"
    framing._repeats.clear()
    head(raw)
    assert not framing._repeats  # session cookies are not kept in memory for a repeat
    head(raw.replace(b"Set-Cookie: s=1\r\n", b""))
    assert len(framing._repeats) == 1
