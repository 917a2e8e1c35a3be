"""The memory of the shim's own redirects, so that a browser following one is not counted as a
client that sent the Location's (legacy) name.

Pure: the caller passes the time. One per shim (`proxy.state.ShimState`), across reloads: a
reload does not change what a browser follows.
"""

from __future__ import annotations

from typing import Final

#: how long, and for how many, the shim remembers the Locations of its redirects: a browser
#: follows a 302 at once; a flood of redirects only pushes the oldest out (their follow-ups are
#: then counted as the client's own)
FOLLOWUP_SECONDS: Final = 5.0
FOLLOWUP_ENTRIES: Final = 4096


class Followups:
    """The Locations of the shim's own redirects, by (client address, target), for a while.

    What is kept of each is the hash of the pair (Python's, SipHash under a per-process key), so
    an entry costs the same whatever the target's length and no `id_token_hint` in a Location
    outlives its request. Bounded in entries, oldest first: every entry lives as long, so
    insertion order is expiry order. An entry is taken by the first request that matches it: one
    redirect, at most one follow-up counted apart. A client matches only what the shim issued to
    its own address, so it can mislabel only its own requests.
    """

    def __init__(self, seconds: float = FOLLOWUP_SECONDS, entries: int = FOLLOWUP_ENTRIES) -> None:
        self.seconds = seconds
        self.entries = entries
        self._expiry: dict[int, float] = {}

    def issued(self, client: str, target: str, now: float) -> None:
        expiry = self._expiry
        key = hash((client, target))
        expiry.pop(key, None)  # again at the end: the newest
        while expiry:  # the expired, and the oldest while full
            oldest = next(iter(expiry))
            if expiry[oldest] > now and len(expiry) < self.entries:
                break
            del expiry[oldest]
        expiry[key] = now + self.seconds

    def take(self, client: str, target: str, now: float) -> bool:
        """True (once) when `target` is a Location issued to `client` within the last while."""
        until = self._expiry.pop(hash((client, target)), None)
        return until is not None and until >= now

    def __len__(self) -> int:
        return len(self._expiry)
