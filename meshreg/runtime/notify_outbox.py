"""Notifications held while a subscriber's queue on the node is full, instead of lost.

The notification XPUB queues at most ``NOTIFY_SNDHWM`` messages per subscriber (the
node's memory, review23 F1), and libzmq drops what exceeds it, silently, for that
subscriber.  In a burst of more changes than that (a rolling deploy of every service a
gateway watches) a consumer reading at full speed lost the last of them whenever the
node's I/O thread fell behind its loop (2 cores under load: 4 runs in 8), and learned of
them only at its next re-pull, 10 s later: the last change of a service has no later
revision that would show the gap.

So the XPUB runs with ``XPUB_NODROP``: a send for which some matching subscriber has no
room raises ``zmq.Again``, and the message waits here, in its topic's order, retried
every millisecond at the loop's turns.  A subscriber that reads empties its queue in
milliseconds.  One that does not read (stopped, or an attacker's: the ZMTP heartbeat
drops it within 20 s) must not hold the others for long: once a topic's oldest has
waited ``HOLD_S`` with nothing of it sent, it goes lossy (libzmq's default: every
subscriber with room gets it, a full one loses it and is left out until it reads), and
the rest follow as before.  Held messages are shared by every subscriber (one copy
each), at most ``MAX_HELD_BYTES``: beyond it the oldest go lossy, ``OVERFLOW_STEP`` at a
time (at the send that overflows and at each loop turn, down to three quarters of it), so
no turn of the loop blocks on it and what a subscriber that does not read pins stays
bounded by the socket's HWM.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import zmq

HOLD_S = 0.5  # a topic's oldest held notification waits this long in vain, then lossy
RETRY_S = 0.001  # the loop's next turn while anything is held
MAX_HELD_BYTES = 16 * 1024 * 1024  # held (shared by every subscriber), then shed lossy
# held notifications sent lossy per step once over MAX_HELD_BYTES (one step per send that
# overflows, one per loop turn), down to 3/4 of it: a step is milliseconds, never the
# whole 16 MiB of small syncs at once (review29 F4: 142,000 sends, a 0.4-2 s stall)
OVERFLOW_STEP = 1000


class NotifyOutbox:
    """Sends notifications, in order per topic; holds those a full subscriber refuses.

    ``send(frames)`` raises ``zmq.Again`` when a subscriber the topic (``frames[0]``)
    matches has a full queue (NODROP on); ``set_lossy(True)`` turns NODROP off (libzmq's
    default behaviour), False on again.  Topics are whole service or config topics (the
    subscription gate admits no prefix), so a held notification holds back only later
    ones of its own topic: a stopped subscriber delays the services it watches, no other.
    """

    def __init__(
        self, send: Callable[[list[bytes]], None], set_lossy: Callable[[bool], None]
    ) -> None:
        self._send = send
        self._set_lossy = set_lossy
        self._held: dict[bytes, deque[list[bytes]]] = {}  # topic -> waiting, in order
        self._since: dict[bytes, float] = {}  # topic -> its head waits since (or last sent)
        self._count = 0
        self._bytes = 0
        self.held_total = 0  # notifications that waited (sent later, in order)
        self.sent_lossy = 0  # sent lossy after waiting in vain: a full subscriber lost them

    @property
    def held(self) -> int:
        return self._count

    def send(self, frames: list[bytes], now: float) -> None:
        """Send now, or hold behind what waits of the same topic."""
        queue = self._held.get(frames[0]) if self._count else None
        if queue is not None:
            self._hold(queue, frames, now)
            return
        try:
            self._send(frames)
        except zmq.Again:
            self._since[frames[0]] = now
            self._hold(self._held.setdefault(frames[0], deque()), frames, now)

    def flush(self, now: float) -> float | None:
        """Send what waits; returns when to try again (None: nothing waits).

        A topic whose head has waited HOLD_S with nothing of it sent: its head goes lossy,
        alone.  libzmq then leaves the full subscriber out (its pipe inactive, skipped by
        later sends until it has read its queue down), so the rest of the topic goes on
        with NODROP: a subscriber that reads gets it all, at the pace it reads."""
        if self._bytes > MAX_HELD_BYTES:
            self._shed()
        send, since = self._send, self._since
        budget = OVERFLOW_STEP  # sends per turn: the rest at the next turn, at once
        for topic, queue in list(self._held.items()):
            while queue and budget:
                budget -= 1
                try:
                    send(queue[0])
                except zmq.Again:
                    if now - since[topic] < HOLD_S:
                        break
                    self._lossy(queue[0])
                self._bytes -= _size(queue.popleft())
                self._count -= 1
                since[topic] = now
            if not queue:
                del self._held[topic], since[topic]
            if not budget:
                return now  # more to send: the next turn without waiting
        return now + RETRY_S if self._count else None

    def _hold(self, queue: deque[list[bytes]], frames: list[bytes], now: float) -> None:
        queue.append(frames)
        self._count += 1
        self._bytes += _size(frames)
        self.held_total += 1
        if self._bytes > MAX_HELD_BYTES:  # memory first: the oldest go, lossy, a step
            self._shed()

    def _shed(self) -> None:
        """Send lossy the oldest held notifications, topic by topic in the order they
        began to wait (each topic's in order), ``OVERFLOW_STEP`` at most, until what is
        held is down to three quarters of ``MAX_HELD_BYTES``."""
        budget, target = OVERFLOW_STEP, MAX_HELD_BYTES * 3 // 4
        for topic, queue in list(self._held.items()):
            while queue and budget and self._bytes > target:
                frames = queue.popleft()
                self._lossy(frames)
                self._bytes -= _size(frames)
                self._count -= 1
                budget -= 1
            if not queue:
                del self._held[topic], self._since[topic]
            if not budget or self._bytes <= target:
                return

    def _lossy(self, frames: list[bytes]) -> None:
        self._set_lossy(True)
        try:
            self._send(frames)
        finally:
            self._set_lossy(False)
        self.sent_lossy += 1


def _size(frames: list[bytes]) -> int:
    return sum(len(f) for f in frames)
