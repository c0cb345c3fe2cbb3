"""Version stamps: a hybrid logical clock, so stamps from different nodes order.

A stamp is ``(microseconds << 10) | node_tag``.  The microseconds part is
the node's wall clock, pushed forward so that every stamp a node issues is
above every stamp it has issued *or seen* (a hybrid logical clock, so a skewed
clock cannot make a newer write lose).  ``node_tag`` (10 bits of the node id's
hash) breaks ties between nodes deterministically.  Merging keeps the record
with the highest stamp: last writer wins, per instance.

Bounded stamps (docs/DISTRO.md): a stamp from a peer further than
``MAX_CLOCK_AHEAD`` ahead of the receiver's wall clock is rejected before it
is observed (``too_far_ahead``), so no message can push a clock far into the
future; and the clock never issues a stamp above ``MAX_STAMP``, the wire's
bound, so whatever it has observed, its stamps are always accepted on the wire.
"""

from __future__ import annotations

import xxhash

TAG_BITS = 10
# The stamp bounds, defined here with the stamp format (wire/limits re-exports them):
MAX_STAMP = 2**63 - 1  # the largest stamp on the wire (a signed 64-bit int everywhere)
# s; a stamp further ahead of the receiver's wall clock is rejected and does not move
# its clock (docs/DISTRO.md, "Bounded stamps"): NTP keeps clocks within milliseconds and
# a resumed VM within seconds; 60 s tolerates a badly kept clock, while a stamp from a
# broken or hostile peer can push the cluster's clocks at most 60 s ahead of real time
# (never towards MAX_STAMP: at today's time the microseconds use 51 of the 53 bits).
MAX_CLOCK_AHEAD = 60.0
TAG_MASK = (1 << TAG_BITS) - 1
MAX_US = MAX_STAMP >> TAG_BITS  # the clock saturates here (year 2255; never in practice)
MAX_AHEAD_US = int(MAX_CLOCK_AHEAD * 1_000_000)


def node_tag(node_id: str) -> int:
    return int(xxhash.xxh32_intdigest(node_id.encode())) & TAG_MASK


def stamp_limit(wall: float) -> int:
    """The highest stamp a node whose wall clock reads ``wall`` (s) accepts from a peer."""
    us = min(int(wall * 1_000_000) + MAX_AHEAD_US, MAX_US)
    return (max(us, 0) << TAG_BITS) | TAG_MASK


def highest_stamp_at(wall: float) -> int:
    """The highest stamp any node can issue at wall-clock time ``wall`` (s)."""
    us = min(max(int(wall * 1_000_000), 0), MAX_US)
    return (us << TAG_BITS) | TAG_MASK


def stamp_seconds(stamp: int) -> float:
    """The wall-clock time (s) a stamp was issued at, as its issuer's clock read it."""
    return (stamp >> TAG_BITS) / 1_000_000


class HybridClock:
    """Issues strictly increasing stamps; ``observe`` keeps it above peers' stamps."""

    def __init__(self, node_id: str) -> None:
        self.tag = node_tag(node_id)
        self.last_us = 0

    def stamp(self, wall: float) -> int:
        """A new stamp for a write at wall-clock time ``wall`` (seconds)."""
        us = int(wall * 1_000_000)
        last = self.last_us
        # saturating at MAX_US: a stamp is never above what the wire accepts
        self.last_us = min(us if us > last else last + 1, MAX_US)
        return (self.last_us << TAG_BITS) | self.tag

    def observe(self, stamp: int) -> None:
        """Remember a stamp seen from a peer (checked against ``stamp_limit`` first)."""
        us = stamp >> TAG_BITS
        if us > self.last_us:
            self.last_us = min(us, MAX_US)
