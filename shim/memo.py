"""The one bounded memo the request path uses: answers of a pure function, kept by key.

Work that repeats from request to request (a route, a deep link's plan, a response head's
analysis) is worked out once and looked up after. Every memo is one of these: at most `size`
entries; when full it starts over, the cheapest bound there is (no bookkeeping per hit, and a
client that floods it with new keys only makes it forget). A hit gives exactly what computing
afresh would, so what it holds is shared safely by every client. SECURITY.md lists each memo,
its key and its bound.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    __slots__ = ("_entries", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def put(self, key: K, value: V) -> V:
        """Remember `value` for `key` (forgetting everything first when full); returns it."""
        entries = self._entries
        if len(entries) >= self.size:
            entries.clear()
        entries[key] = value
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
