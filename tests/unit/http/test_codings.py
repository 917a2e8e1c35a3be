"""Decoding buffered bodies: every coding, chains, refusals, and bombs stopped early."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.http.codings import DecodeRefused, decode_body, parse_content_codings

MiB = 1024 * 1024
PAYLOAD = b'{"issuer":"https://auth.example.com/"}' * 50


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zstd(data: bytes) -> bytes:
    return bytes(zstandard.ZstdCompressor().compress(data))


def zstd_streamed(data: bytes) -> bytes:
    """A frame without a declared content size, as a streaming encoder writes it."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return bytes(compressor.compress(data) + compressor.flush())


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": raw_deflate,
    "br": brotli.compress,
    "zstd": zstd,
    "zstd-streamed": zstd_streamed,
}
#: encoder name -> Content-Encoding
CODING = {
    "gzip": "gzip",
    "deflate": "deflate",
    "raw-deflate": "deflate",
    "br": "br",
    "zstd": "zstd",
    "zstd-streamed": "zstd",
}


def reason(body: bytes, coding: str | None, limit: int = MiB) -> str:
    with pytest.raises(DecodeRefused) as info:
        decode_body(body, coding, limit)
    return info.value.reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ()),
        ("", ()),
        ("identity", ()),
        ("GZIP", ("gzip",)),
        ("gzip, br", ("gzip", "br")),
        (" br ,, identity ,zstd", ("br", "zstd")),
    ],
)
def test_parse_content_codings(header: str | None, expected: tuple[str, ...]) -> None:
    assert parse_content_codings(header) == expected


@pytest.mark.parametrize("coding", [None, "", "identity", "Identity"])
def test_identity(coding: str | None) -> None:
    assert decode_body(PAYLOAD, coding, MiB) == PAYLOAD


def test_identity_over_the_limit() -> None:
    assert reason(PAYLOAD, None, len(PAYLOAD) - 1) == "too-large"


@pytest.mark.parametrize("name", ENCODERS)
def test_round_trip(name: str) -> None:
    assert decode_body(ENCODERS[name](PAYLOAD), CODING[name], MiB) == PAYLOAD


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("x-gzip", gzip.compress),
        ("Gzip", gzip.compress),
        ("gzip, br", lambda d: brotli.compress(gzip.compress(d))),
        ("zstd, deflate, gzip", lambda d: gzip.compress(zlib.compress(zstd(d)))),
        ("br, identity", brotli.compress),
    ],
)
def test_aliases_case_and_chains(coding: str, encode: Callable[[bytes], bytes]) -> None:
    assert decode_body(encode(PAYLOAD), coding, MiB) == PAYLOAD


def test_gzip_with_several_members() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode_body(body, "gzip", MiB) == b"first second"


def test_zstd_with_several_and_skippable_frames() -> None:
    skippable = b"\x5a\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    body = skippable + zstd(b"first ") + skippable + zstd_streamed(b"second")
    assert decode_body(body, "zstd", MiB) == b"first second"


def test_zstd_checksummed_frame() -> None:
    body = zstandard.ZstdCompressor(write_checksum=True).compress(PAYLOAD)
    assert decode_body(body, "zstd", MiB) == PAYLOAD
    corrupted = body[:-1] + bytes([body[-1] ^ 1])
    assert reason(corrupted, "zstd") == "corrupt"


def test_zstd_window_over_8_mib_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters(window_log=24)
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    body = compressor.compress(PAYLOAD) + compressor.flush()
    assert reason(body, "zstd") == "corrupt"


@pytest.mark.parametrize("coding", ["compress", "x-compress", "gzip, unknown", "exi", "*"])
def test_unknown_encoding(coding: str) -> None:
    # refused before any decoding is attempted, whatever the body
    assert reason(b"not even compressed", coding) == "unknown-encoding"


def test_refusal_message_names_the_coding() -> None:
    with pytest.raises(DecodeRefused, match="cannot decode Content-Encoding unknown"):
        decode_body(b"", "gzip, unknown", MiB)


@pytest.mark.parametrize("name", ENCODERS)
def test_truncated(name: str) -> None:
    body = ENCODERS[name](PAYLOAD + bytes(range(256)) * 20)
    assert reason(body[: len(body) - 5], CODING[name]) == "corrupt"


@pytest.mark.parametrize("name", ENCODERS)
def test_trailing_garbage(name: str) -> None:
    assert reason(ENCODERS[name](PAYLOAD) + b"garbage!", CODING[name]) == "corrupt"


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("body", [b"", b"garbage that is not compressed"])
def test_not_compressed_at_all(name: str, body: bytes) -> None:
    assert reason(body, CODING[name]) == "corrupt"


@pytest.mark.parametrize("name", ENCODERS)
def test_limit_is_inclusive(name: str) -> None:
    body = ENCODERS[name](PAYLOAD)
    assert decode_body(body, CODING[name], len(PAYLOAD)) == PAYLOAD
    assert reason(body, CODING[name], len(PAYLOAD) - 1) == "too-large"


def test_every_step_of_a_chain_is_bounded() -> None:
    inner = gzip.compress(bytes(10 * MiB))
    assert reason(brotli.compress(inner), "gzip, br", len(inner) - 1) == "too-large"


BOMB = bytes(10 * MiB)
BOMBS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "raw-deflate": ("deflate", raw_deflate),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", zstd),
    "zstd-streamed": ("zstd", zstd_streamed),
    "gzip-in-br": ("gzip, br", lambda d: brotli.compress(gzip.compress(d))),
}


@pytest.mark.parametrize("name", BOMBS)
def test_bomb_is_stopped_without_inflating(name: str) -> None:
    coding, encode = BOMBS[name]
    body = encode(BOMB)
    assert len(body) < 64 * 1024
    tracemalloc.start()
    try:
        assert reason(body, coding, MiB) == "too-large"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the limit, one step of output and bookkeeping; 10 MiB would be inflated otherwise
    assert peak < 2.5 * MiB, f"peak {peak} bytes"


ROUND_TRIP_ENCODERS = st.sampled_from(sorted(ENCODERS))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=4096), name=ROUND_TRIP_ENCODERS)
def test_any_bytes_round_trip(data: bytes, name: str) -> None:
    body = ENCODERS[name](data)
    assert decode_body(body, CODING[name], len(data)) == data
    if data:
        assert reason(body, CODING[name], len(data) - 1) == "too-large"
