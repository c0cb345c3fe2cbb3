"""At most one subscription sync per topic per ``SYNC_EVERY``: a new watcher's sync goes to
every watcher of the topic, so it must not be the client's to repeat at will.

A subscription to an exact topic makes the node publish the topic's current state (a
service's ``sync``, a config's current version: PROTOCOL.md 4.2, 4.5), so a watcher that
(re)connects learns what it missed.  PUB/SUB cannot address one subscriber: the sync goes
to every subscriber of the topic.  A connection that subscribes and unsubscribes in a
loop (review29 F2: one read key, 461,300 pairs in 10 s) made the node send each of 50
watchers 35,000-54,000 syncs of an unchanged service, at 87 % CPU, with real changes lost
and beats 100 ms late at p99; on a config topic with a gray version, every listener pulled
the whole content each time.

So a topic's first sync in a while goes at once; one asked within ``SYNC_EVERY`` of the
last is deferred to the end of that window, and every subscription meanwhile shares it
(the watchers that came in the window get one sync, as late as ``SYNC_EVERY``).  However
fast a client loops, a topic's watchers get at most one sync per ``SYNC_EVERY``.  A
deferred sync is counted (``deferred``); the runtime logs a topic that keeps asking.
Memory: one time per topic synced lately, oldest first; once there are many, the oldest
whose window is over are dropped, a bounded number per subscription.  Pure: the time is an argument.
"""

from __future__ import annotations

SYNC_EVERY = 0.2  # s between two syncs of one topic, at least
PRUNE_ABOVE = 4096  # remembered topics beyond which the stale ones are dropped
PRUNE_STEP = 1024  # entries examined per prune (bounded work per subscription)


class SyncPacer:
    """Decides when each topic's subscription sync is published."""

    def __init__(self, every: float = SYNC_EVERY) -> None:
        self.every = every
        self._last: dict[bytes, float] = {}  # topic -> when its last sync went
        self._due: dict[bytes, float] = {}  # topic -> when its deferred sync goes
        self.deferred = 0  # subscriptions whose sync was deferred (shared with others)

    def admit(self, topic: bytes, now: float) -> bool:
        """A subscription to ``topic``: True to publish its sync now; False: it goes with
        the topic's deferred sync (``take_due``)."""
        if topic in self._due:
            self.deferred += 1
            return False
        last = self._last.get(topic)
        if last is None or now - last >= self.every:
            if len(self._last) > PRUNE_ABOVE:
                self._prune(now)
            self._sent(topic, now)
            return True
        self._due[topic] = last + self.every
        self.deferred += 1
        return False

    def take_due(self, now: float) -> list[bytes]:
        """The topics whose deferred sync is due now (each is then counted as sent)."""
        if not self._due:
            return []
        due = [t for t, at in self._due.items() if at <= now]
        for topic in due:
            del self._due[topic]
            self._sent(topic, now)
        return due

    def next_due(self) -> float | None:
        return min(self._due.values()) if self._due else None

    def _sent(self, topic: bytes, now: float) -> None:
        self._last.pop(topic, None)  # to the end: the dict stays oldest first
        self._last[topic] = now

    def _prune(self, now: float) -> None:
        """Drop the oldest entries whose window is over (at most ``PRUNE_STEP``)."""
        stale: list[bytes] = []
        for topic, at in self._last.items():
            if now - at < self.every or len(stale) >= PRUNE_STEP:
                break
            stale.append(topic)
        for topic in stale:
            del self._last[topic]


__all__ = ["SYNC_EVERY", "SyncPacer"]
