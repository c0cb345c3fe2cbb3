"""Batching replicated deltas into ``deltas`` messages (pure: the clock is a parameter).

Theory of operation
-------------------
The core publishes one ``ReplicatedDelta`` per change, numbered by ``seq``.  Sent one
per PUB message, a busy node spends most of its replication work (its own and every
receiver's) on per-message costs: a send, a receive, a decode call.  The runtime hands
each delta to a :class:`DeltaBatcher` instead, which packs it at once (so every size is
exact) and holds it until one of:

* the batch holds ``max_deltas`` deltas, or the next one would take its body past
  ``max_bytes`` (then the batch goes first and the newcomer starts the next one);
* the next delta does not continue the batch (another node or epoch, or a seq that is
  not the last one + 1: a batch is consecutive deltas, numbered by its first);
* the runtime has nothing more to read this loop turn, or is about to send anything
  else on the replication channel (a beacon announces our seq, a digest our state: the
  deltas before it must go before it, so the receiver's gap detection and digests see
  the order in which the core made them): ``flush()``;
* ``max_delay`` has passed since the batch's first delta (``due``; checked by ``add``
  and the runtime): a long loop turn does not hold a change back longer;
* in the middle of a turn (``must_go``): right after a write, unless writes come in
  a burst (the delta before the last came less than ``max_delay`` before it) and more
  requests wait in its socket (the next write may join the batch), or when ``due`` has
  passed; the runtime asks after every write that changed something, before its
  reply, and every ``CHECK_EVERY`` requests of a long drain (a burst of beats, which
  never join a batch).

So under light load every delta leaves at once, before the reply to the write that
made it, alone (as a plain ``delta`` message, the format older nodes read), and under
a burst of writes the burst's deltas share a few messages, each held ``max_delay`` at
most.  A body never exceeds ``max_bytes`` unless one delta alone does (it is
then sent alone, as before batching); ``max_bytes`` is far under what a receiver
accepts (``MAX_PEER_BODY_BYTES``, and the SUB socket's frame cap above it, which also
leaves room for CURVE's framing).
"""

from __future__ import annotations

import math

from meshreg.wire import limits
from meshreg.wire.peer import (
    MAX_BATCH_DELTAS,
    ReplicatedDelta,
    array_header,
    batch_overhead,
    encode_delta_batch,
    encode_packed_delta,
    pack_payload,
)

BATCH_DELTAS = 256  # deltas per message at most; a receiver applies one message in a
# turn, so this bounds what one message costs it (~256 x 20 us, 5 ms) and how long its
# other sockets wait
BATCH_BYTES = 256 * 1024  # bytes per body at most (1/32 of MAX_PEER_BODY_BYTES)
BATCH_DELAY = 0.001  # s a delta may wait for others (a burst of writes); the p99 target
# from a write's reply to every node's push is 5 ms, and a slow VM spends ~2 ms in hops
CHECK_EVERY = 32  # requests a loop drain serves between looks at the batch's delay
# (and at the replication socket): ~0.5 ms of beats on a slow VM, one compare a request

assert BATCH_DELTAS <= MAX_BATCH_DELTAS
assert BATCH_BYTES * 4 <= limits.MAX_PEER_BODY_BYTES


class DeltaBatcher:
    """Consecutive deltas of one node in, ``[kind, body]`` messages out."""

    def __init__(
        self,
        max_deltas: int = BATCH_DELTAS,
        max_bytes: int = BATCH_BYTES,
        max_delay: float = BATCH_DELAY,
    ) -> None:
        if not 0 < max_deltas <= MAX_BATCH_DELTAS:
            raise ValueError(f"max_deltas must be in 1..{MAX_BATCH_DELTAS}")
        if not 0 < max_bytes <= limits.MAX_PEER_BODY_BYTES:
            raise ValueError(f"max_bytes must be in 1..{limits.MAX_PEER_BODY_BYTES}")
        self.max_deltas = max_deltas
        self.max_bytes = max_bytes
        self.max_delay = max_delay
        self._first: ReplicatedDelta | None = None
        self._packed: list[bytes] = []
        self._size = 0  # bytes of the body so far (overhead, array header, payloads)
        self._next_seq = 0
        self._last = -math.inf  # when the last delta came (``add``'s clock)
        self._gap = math.inf  # s between the last two deltas (a burst: under max_delay)
        self.due = math.inf  # when the batch must go at the latest
        self.messages = 0  # messages made (counters for stats)
        self.deltas = 0  # deltas in them

    def __len__(self) -> int:
        return len(self._packed)

    def add(self, delta: ReplicatedDelta, now: float) -> list[list[bytes]]:
        """Take ``delta``; the messages that must be sent now, in order (0 to 2)."""
        out: list[list[bytes]] = []
        packed = pack_payload(delta.payload)
        self._gap, self._last = now - self._last, now
        first = self._first
        if first is not None and (
            delta.node != first.node
            or delta.epoch != first.epoch
            or delta.seq != self._next_seq
            or self._size + len(packed) > self.max_bytes
        ):
            out.append(self._take())
        if self._first is None:
            self._first = delta
            # + 3: the array header's largest size below 65,536 elements
            self._size = len(batch_overhead(delta.node, delta.epoch, delta.seq)) + 3
            self.due = now + self.max_delay
        self._packed.append(packed)
        self._size += len(packed)
        self._next_seq = delta.seq + 1
        if len(self._packed) >= self.max_deltas or self._size >= self.max_bytes or now >= self.due:
            out.append(self._take())
        return out

    def must_go(self, now: float, more_waiting: bool) -> bool:
        """Whether the batch held must be sent now, in the middle of a turn: it holds a
        delta and either no other delta is likely to join it soon (``more_waiting``
        False: no request waits; or the last delta came ``max_delay`` or more after
        the one before it: changes are not coming in a burst) and its write's reply
        should not leave before it, or ``due`` has passed."""
        return self._first is not None and (
            not more_waiting or self._gap >= self.max_delay or now >= self.due
        )

    def flush(self) -> list[bytes] | None:
        """The batch held (None: nothing held)."""
        return self._take() if self._first is not None else None

    def _take(self) -> list[bytes]:
        first, packed = self._first, self._packed
        assert first is not None
        self._first, self._packed, self._size, self.due = None, [], 0, math.inf
        self.messages += 1
        self.deltas += len(packed)
        if len(packed) == 1:  # the format every node reads
            return encode_packed_delta(first.node, first.epoch, first.seq, packed[0])
        return encode_delta_batch(first.node, first.epoch, first.seq, packed)

    def body_bytes(self) -> int:
        """The exact size of the body held (for tests)."""
        if not self._packed:
            return 0
        assert self._first is not None
        head = batch_overhead(self._first.node, self._first.epoch, self._first.seq)
        return len(head) + len(array_header(len(self._packed))) + sum(map(len, self._packed))
