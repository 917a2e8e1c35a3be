"""Decode a buffered response body by its Content-Encoding, never inflating past a size limit.

Pure functions over bytes; no I/O. The discovery rewrite buffers the upstream body (at most
`max_body_bytes` of it) and needs the identity bytes to parse the JSON. A compressed body can
expand a thousandfold (a "zip bomb"), so every decoder here produces output in steps of at most
`_STEP` bytes and stops as soon as the total passes `limit`: the decoded data held at any time is
at most about `limit + 64 KiB`, whatever the compressed input claims. (The successful result is
copied once into an immutable `bytes`.)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final, Literal, Protocol

import brotli
import zstandard

DecodeFailure = Literal["unknown-encoding", "too-large", "corrupt"]

#: Largest piece of output asked of a decoder at once.
_STEP: Final = 32 * 1024
#: RFC 9659 limits the `zstd` content coding to an 8 MiB window; larger frames are refused
#: rather than letting the decoder allocate up to its 128 MiB default.
_ZSTD_MAX_WINDOW: Final = 8 * 1024 * 1024
_GZIP_MAGIC: Final = b"\x1f\x8b"


class DecodeRefused(Exception):  # noqa: N818  # a refusal to decode, not a fault
    """The body cannot be decoded within the limit; the caller passes it through unchanged."""

    def __init__(self, reason: DecodeFailure, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DecodeFailure = reason
        self.detail = detail


class _Sink:
    """Collects decoded output and refuses it once it passes the limit."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.data = bytearray()

    def room(self) -> int:
        """How much output to ask for next: one step, or just enough to detect the overflow."""
        return min(_STEP, self.limit + 1 - len(self.data))

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            raise DecodeRefused(
                "too-large", f"the {self.coding} body decodes to more than {self.limit} bytes"
            )


def parse_content_codings(content_encoding: str | None) -> tuple[str, ...]:
    """The codings in the order they were applied, lower-cased, `identity` and blanks left out."""
    if not content_encoding:
        return ()
    codings = (c.strip().lower() for c in content_encoding.split(","))
    return tuple(c for c in codings if c and c != "identity")


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo every content coding (last applied first); refuse unknown, oversized or corrupt input.

    Each step's output is bounded by `limit` too, so a chain cannot be used to stage a bomb.
    """
    codings = parse_content_codings(content_encoding)
    unknown = [c for c in codings if c not in _DECODERS]
    if unknown:
        raise DecodeRefused(
            "unknown-encoding",
            f"cannot decode Content-Encoding {', '.join(unknown)}; "
            f"supported: {', '.join(_DECODERS)}",
        )
    for coding in reversed(codings):
        body = _DECODERS[coding](body, _Sink(coding, limit))
    if len(body) > limit:
        raise DecodeRefused("too-large", f"the body is {len(body)} bytes, over {limit}")
    return body


def _corrupt(coding: str, detail: str) -> DecodeRefused:
    return DecodeRefused("corrupt", f"the {coding} body is corrupt: {detail}")


class _Decompressor(Protocol):
    """What `zlib.decompressobj()` returns, as far as `_inflate_stream` uses it."""

    @property
    def eof(self) -> bool: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


def _inflate_stream(data: bytes, decompressor: _Decompressor, sink: _Sink) -> bytes:
    """Run one zlib/gzip/raw stream to its end; return the input left after it."""
    while not decompressor.eof:
        chunk = decompressor.decompress(data, sink.room())
        sink.add(chunk)
        data = decompressor.unconsumed_tail
        if not (chunk or data or decompressor.eof):
            raise _corrupt(sink.coding, "the stream is truncated")
    return decompressor.unused_data


def _gzip(body: bytes, sink: _Sink) -> bytes:
    # A gzip body may hold several members one after another (RFC 1952 2.2), as gunzip accepts.
    rest = body
    try:
        while True:
            rest = _inflate_stream(rest, zlib.decompressobj(16 + zlib.MAX_WBITS), sink)
            if not rest:
                return bytes(sink.data)
            if not rest.startswith(_GZIP_MAGIC):
                raise _corrupt(sink.coding, f"{len(rest)} bytes of trailing data")
    except zlib.error as exc:
        raise _corrupt(sink.coding, str(exc)) from None


def _looks_like_zlib(body: bytes) -> bool:
    """RFC 1950 2.2: method 8 (deflate) and a header checksum divisible by 31."""
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _deflate(body: bytes, sink: _Sink) -> bytes:
    # `deflate` means zlib-wrapped (RFC 9110 8.4.1.2), but servers have long sent raw deflate
    # and browsers accept both: try the wrapper when the header says so, else (or then) raw.
    attempts = (zlib.MAX_WBITS, -zlib.MAX_WBITS) if _looks_like_zlib(body) else (-zlib.MAX_WBITS,)
    error = ""
    for wbits in attempts:
        sink.data.clear()
        try:
            rest = _inflate_stream(body, zlib.decompressobj(wbits), sink)
        except zlib.error as exc:
            error = str(exc)
            continue
        if rest:
            raise _corrupt(sink.coding, f"{len(rest)} bytes of trailing data")
        return bytes(sink.data)
    raise _corrupt(sink.coding, error)


def _brotli(body: bytes, sink: _Sink) -> bytes:
    decompressor = brotli.Decompressor()
    try:
        # process() may overshoot its output_buffer_limit by one internal block (~32 KiB).
        sink.add(decompressor.process(body, output_buffer_limit=sink.room()))
        while not decompressor.is_finished():
            if decompressor.can_accept_more_data():
                raise _corrupt(sink.coding, "the stream is truncated")
            sink.add(decompressor.process(b"", output_buffer_limit=sink.room()))
    except brotli.error as exc:
        raise _corrupt(sink.coding, str(exc)) from None
    return bytes(sink.data)


def _zstd(body: bytes, sink: _Sink) -> bytes:
    # The zstandard decoders either ignore an output limit (decompress() trusts a declared
    # content size, decompressobj() has none) or say nothing about truncation (stream_reader);
    # so check the frame structure first, then read through stream_reader in bounded steps.
    _check_zstd_frames(body, sink.coding)
    decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    try:
        reader = decompressor.stream_reader(body, read_across_frames=True)
        while chunk := reader.read(sink.room()):
            sink.add(chunk)
    except zstandard.ZstdError as exc:
        raise _corrupt(sink.coding, str(exc)) from None
    return bytes(sink.data)


_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE: Final = b"\x2a\x4d\x18"  # after a first byte 0x50-0x5f (little-endian 0x184D2A5?)


def _check_zstd_frames(body: bytes, coding: str) -> None:
    """Walk the frames and blocks (RFC 8878 3.1) so a truncated or padded body is refused."""
    if not body:
        raise _corrupt(coding, "the body is empty")
    offset = 0
    while offset < len(body):
        if body[offset + 1 : offset + 4] == _ZSTD_SKIPPABLE and body[offset] & 0xF0 == 0x50:
            size = int.from_bytes(body[offset + 4 : offset + 8], "little")
            offset += 8 + size
        elif body[offset : offset + 4] == _ZSTD_MAGIC:
            offset = _zstd_frame_end(body, offset, coding)
        else:
            raise _corrupt(coding, f"no zstd frame at byte {offset}")
    if offset > len(body):
        raise _corrupt(coding, "the stream is truncated")


def _zstd_frame_end(body: bytes, offset: int, coding: str) -> int:
    if offset + 5 > len(body):
        raise _corrupt(coding, "the stream is truncated")
    descriptor = body[offset + 4]
    single_segment = descriptor >> 5 & 1
    content_size_bytes = (single_segment, 2, 4, 8)[descriptor >> 6]
    offset += 5 + (1 - single_segment) + (0, 1, 2, 4)[descriptor & 3] + content_size_bytes
    last = False
    while not last:
        if offset + 3 > len(body):
            raise _corrupt(coding, "the stream is truncated")
        header = int.from_bytes(body[offset : offset + 3], "little")
        last, block_type, size = bool(header & 1), header >> 1 & 3, header >> 3
        if block_type == 3:
            raise _corrupt(coding, f"reserved block type at byte {offset}")
        offset += 3 + (1 if block_type == 1 else size)  # an RLE block holds one byte
    return offset + (4 if descriptor & 4 else 0)  # the optional content checksum


_DECODERS: Final[dict[str, Callable[[bytes, _Sink], bytes]]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
