"""Listeners that stop at once: nothing of a subscription is called after its removal.

A change is queued for the client's notifier thread with the listener to call; the I/O
thread drops the listener on ``unsubscribe``, but calls queued before then were still
made, after ``unsubscribe`` (or ``config_unlisten``) had returned: a callback of 50 ms
behind 20 quick changes was called 15 more times over a second, each with a list
already stale (review48 F3).  So the I/O thread is handed a :class:`LiveListener`, and
the caller's thread mutes it (:class:`ListenerTable`) before the removal returns: a call
still queued then does nothing (one already running finishes, as with Nacos).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any


class LiveListener:
    """A user's callback as the I/O thread holds it; equal to that callback (removals
    name the callback), called only while ``live``."""

    __slots__ = ("fn", "live", "pending", "taken")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.live = True
        self.pending = 0  # its subscriptions not answered yet (``add``)
        self.taken = False  # one of them was answered: it stays (``discard``)

    def __call__(self, *args: Any) -> None:
        if self.live:
            self.fn(*args)

    def __eq__(self, other: object) -> bool:
        return bool(self.fn == (other.fn if isinstance(other, LiveListener) else other))

    __hash__ = object.__hash__  # (identity: held in lists, looked up by equality)

    def __repr__(self) -> str:
        return repr(self.fn)


class ListenerTable:
    """The live listeners of each service or data id, for muting on the caller's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[Hashable, list[LiveListener]] = {}

    def add(self, key: Hashable, fn: Callable[..., Any]) -> LiveListener:
        """``fn``'s listener of ``key``: the one held if ``fn`` (an equal callback) was
        added before, else a new one (review55 F4: one more per repeated subscribe, for
        good)."""
        with self._lock:
            held = self._by_key.setdefault(key, [])
            live = next((x for x in held if x == fn), None)
            if live is None:
                live = LiveListener(fn)
                held.append(live)
            live.pending += 1
        return live

    def take(self, live: LiveListener) -> None:
        """A subscription of ``live`` (``add``) was answered: it stays until muted."""
        with self._lock:
            live.pending -= 1
            live.taken = True

    def mute(self, key: Hashable, fn: Callable[..., Any] | None) -> None:
        """``fn``'s listeners of ``key`` (None: all of them) are called no more."""
        with self._lock:
            held = self._by_key.pop(key, [])
            kept = []
            for live in held:
                if fn is None or live == fn:
                    live.live = False
                else:
                    kept.append(live)
            if kept:
                self._by_key[key] = kept

    def discard(self, key: Hashable, live: LiveListener) -> None:
        """A subscription of ``live`` failed: forget it, unless another one of the same
        callback was answered or is still on its way."""
        with self._lock:
            live.pending -= 1
            if live.taken or live.pending > 0:
                return
            held = self._by_key.get(key, [])
            self._by_key[key] = [x for x in held if x is not live]
            if not self._by_key[key]:
                del self._by_key[key]
