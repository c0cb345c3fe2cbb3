"""Version stamps: a hybrid logical clock, so stamps from different nodes order.

A stamp is ``(microseconds << 10) | node_tag``.  The microseconds part is
the node's wall clock, pushed forward so that every stamp a node issues is
above every stamp it has issued *or seen* (a hybrid logical clock, so a skewed
clock cannot make a newer write lose).  ``node_tag`` (10 bits of the node id's
hash) breaks ties between nodes deterministically.  Merging keeps the record
with the highest stamp: last writer wins, per instance.
"""

from __future__ import annotations

import xxhash

TAG_BITS = 10
TAG_MASK = (1 << TAG_BITS) - 1


def node_tag(node_id: str) -> int:
    return int(xxhash.xxh32_intdigest(node_id.encode())) & TAG_MASK


class HybridClock:
    """Issues strictly increasing stamps; ``observe`` keeps it above peers' stamps."""

    def __init__(self, node_id: str) -> None:
        self.tag = node_tag(node_id)
        self.last_us = 0

    def stamp(self, wall: float) -> int:
        """A new stamp for a write at wall-clock time ``wall`` (seconds)."""
        us = int(wall * 1_000_000)
        self.last_us = us if us > self.last_us else self.last_us + 1
        return (self.last_us << TAG_BITS) | self.tag

    def observe(self, stamp: int) -> None:
        """Remember a stamp seen from a peer."""
        us = stamp >> TAG_BITS
        if us > self.last_us:
            self.last_us = us
