"""WebSocket frame boundaries in a byte stream, pure: the splice relays bytes, never frames,
but to say "going away" at shutdown it must write its close frame between two frames.

Only frame headers are read (RFC 6455 §5.2); payloads are skipped by their length, so the state
is a few bytes whatever the message size.
"""

from __future__ import annotations

import os
import struct
from typing import Final

GOING_AWAY: Final = 1001


def _header_size(first_two: bytes | bytearray) -> int:
    length = first_two[1] & 0x7F
    extra = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extra + (4 if first_two[1] & 0x80 else 0)


def _payload_size(header: bytes | bytearray) -> int:
    length = header[1] & 0x7F
    if length == 126:
        return int(struct.unpack_from("!H", header, 2)[0])
    if length == 127:
        return int(struct.unpack_from("!Q", header, 2)[0])
    return length


class FrameTracker:
    """Follows frames through the bytes fed to it; `at_boundary` between two frames."""

    __slots__ = ("_header", "_need", "_payload_left")

    def __init__(self) -> None:
        self._header = bytearray()
        self._need = 2
        self._payload_left = 0

    @property
    def at_boundary(self) -> bool:
        return not self._header and not self._payload_left

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._payload_left:
                take = min(self._payload_left, end - pos)
                self._payload_left -= take
                pos += take
                continue
            header = self._header
            take = min(self._need - len(header), end - pos)
            header += data[pos : pos + take]
            pos += take
            if len(header) == 2 and self._need == 2:
                self._need = _header_size(header)
            if len(header) == self._need:
                self._payload_left = _payload_size(header)
                header.clear()
                self._need = 2


def close_frame(code: int, reason: bytes, *, masked: bool) -> bytes:
    """A close frame; `masked` for one sent to a server (RFC 6455 §5.3)."""
    payload = struct.pack("!H", code) + reason[:123]
    if not masked:
        return bytes((0x88, len(payload))) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x88, 0x80 | len(payload))) + key + body
