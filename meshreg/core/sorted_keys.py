"""A sorted set of keys that pages cheaply: the index behind the paged ``services`` read.

Theory of operation
-------------------
The keys are kept in sorted chunks of at most ``2 * LOAD`` (a list of lists,
with each chunk's largest key in ``maxes``): the shape of sortedcontainers'
``SortedList``, cut down to what the registry needs.  Adding or removing a key
costs a binary search over ``maxes`` and one within a chunk, plus moving at
most ``2 * LOAD`` pointers; a page of P keys after a given key costs the same
search and then P steps.  So a ``services`` page costs O(log N + P), never
O(N), however many services a namespace holds (a plain sorted list would move
N/2 pointers on every insert: seconds for a few hundred thousand services).

Invariants: every chunk is non-empty and sorted; the chunks are in order
(each chunk's keys are above the previous chunk's maximum); ``maxes[i]`` is
``chunks[i][-1]``; ``len(self)`` counts the keys.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any

LOAD = 512  # keys; chunks hold LOAD..2*LOAD keys after a split (fewer after removals)


class SortedKeys:
    """Sorted, unique keys (any mutually comparable values) in chunks."""

    __slots__ = ("_chunks", "_maxes", "_len")

    def __init__(self) -> None:
        self._chunks: list[list[Any]] = []
        self._maxes: list[Any] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: Any) -> bool:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        return j < len(chunk) and chunk[j] == key

    def add(self, key: Any) -> bool:
        """Insert ``key``; False when it was already there."""
        maxes = self._maxes
        if not maxes:
            self._chunks.append([key])
            maxes.append(key)
            self._len = 1
            return True
        i = bisect_left(maxes, key)
        if i == len(maxes):  # above every key: the last chunk takes it
            i -= 1
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if j < len(chunk) and chunk[j] == key:
            return False
        chunk.insert(j, key)
        maxes[i] = chunk[-1]
        self._len += 1
        if len(chunk) > 2 * LOAD:
            self._chunks[i : i + 1] = [chunk[:LOAD], chunk[LOAD:]]
            maxes[i : i + 1] = [chunk[LOAD - 1], chunk[-1]]
        return True

    def discard(self, key: Any) -> bool:
        """Remove ``key``; False when it was not there."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return False
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return False
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._chunks[i]
            del maxes[i]
            return True
        maxes[i] = chunk[-1]
        # Keep chunks from thinning out: join a small one to its successor.
        if len(chunk) < LOAD // 4 and i + 1 < len(maxes):
            chunk.extend(self._chunks.pop(i + 1))
            del maxes[i]
        return True

    def after(self, start: Any, inclusive: bool = False) -> Iterator[Any]:
        """The keys above ``start`` (or equal to it, ``inclusive``), in order.

        Cost: one binary search, then one step per key taken.  The set must not
        change while the iterator is in use.
        """
        maxes, chunks = self._maxes, self._chunks
        i = bisect_left(maxes, start) if inclusive else bisect_right(maxes, start)
        if i == len(maxes):
            return
        chunk = chunks[i]
        j = bisect_left(chunk, start) if inclusive else bisect_right(chunk, start)
        while i < len(chunks):
            chunk = chunks[i]
            yield from chunk[j:] if j else chunk
            i += 1
            j = 0

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._chunks:
            yield from chunk
