"""shim/proxy/websocket.py: WebSocket frame boundaries in a byte stream; no network."""

from __future__ import annotations

import struct

import pytest

from shim.proxy.websocket import GOING_AWAY, FrameTracker, close_frame


def frame(payload: bytes, *, masked: bool) -> bytes:
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = bytes((0x82, mask_bit | size))
    elif size < 65536:
        header = bytes((0x82, mask_bit | 126)) + struct.pack("!H", size)
    else:
        header = bytes((0x82, mask_bit | 127)) + struct.pack("!Q", size)
    return header + (b"KEYS" if masked else b"") + payload


@pytest.mark.parametrize("size", [0, 5, 125, 126, 70000])
@pytest.mark.parametrize("masked", [False, True])
def test_boundaries_whatever_the_split(size: int, masked: bool) -> None:
    data = frame(b"x" * size, masked=masked) * 2
    for step in (1, 3, 1000):
        tracker = FrameTracker()
        seen = []
        for start in range(0, len(data), step):
            tracker.feed(data[start : start + step])
            seen.append(tracker.at_boundary)
        assert seen[-1], (size, masked, step)
    tracker = FrameTracker()
    tracker.feed(data[:-1])
    assert not tracker.at_boundary


def test_close_frames_carry_the_code() -> None:
    plain = close_frame(GOING_AWAY, b"bye", masked=False)
    assert plain == b"\x88\x05\x03\xe9bye"
    masked = close_frame(GOING_AWAY, b"bye", masked=True)
    key, body = masked[2:6], masked[6:]
    assert masked[:2] == b"\x88\x85"
    assert bytes(b ^ key[i % 4] for i, b in enumerate(body)) == b"\x03\xe9bye"
