"""Flow control between the two sides: why reading from the client is paused, and how much
request body may wait in memory for an upstream connection."""

from __future__ import annotations

from typing import Final

#: reading from the client pauses for any of these reasons, and resumes when none is left
BLOCK_PIPELINE: Final = 1
BLOCK_BODY_BUFFER: Final = 2
BLOCK_UPSTREAM: Final = 4
#: nothing more is read as HTTP/1.1 (a parse error, an Upgrade, a full pipeline, a half-close)
BLOCK_STOPPED: Final = 16
#: bytes read past MAX_QUEUED waiting requests wait unparsed
BLOCK_BACKLOG: Final = 32
#: requests read ahead of their turn (pipelined), per connection; what a client sends beyond
#: them waits, unparsed, until it has read the answers before
MAX_QUEUED: Final = 8
#: request body bytes held while no upstream connection takes them yet
MAX_PENDING_BODY: Final = 256 * 1024
