"""Flow control between the two sides: why reading from the client is paused, and how much
request body may wait in memory for an upstream connection."""

from __future__ import annotations

from typing import Final

#: reading from the client pauses for any of these reasons, and resumes when none is left
BLOCK_PIPELINE: Final = 1
BLOCK_BODY_BUFFER: Final = 2
BLOCK_UPSTREAM: Final = 4
#: request body bytes held while no upstream connection takes them yet
MAX_PENDING_BODY: Final = 256 * 1024
