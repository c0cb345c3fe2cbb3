"""When to say that configured peers' lists do not name this node (docs/CONFIG.md, "A new
node: learner").

A running peer names only the node ids it has heard, so a node joining it is unnamed for a
beacon or two although the lists are alike (review61 F1: the warning "give every node the
same peer list" read as a typo hunt).  A peer is said once it has left this node out for
``UNLISTED_SAID_AFTER``, with those that have for half as long (one line for peers heard
a beacon apart), never one unnamed for less (review62); once each while it lasts.  Pure:
the time comes in, the peers to name go out; the caller logs.
"""

from __future__ import annotations

import math

UNLISTED_SAID_AFTER = 5.0  # s; a peer list not naming this node is said once it lasts this long


class UnlistedNotice:
    """The peers whose lists leave this node out, and when each is due to be said."""

    def __init__(self) -> None:
        self.due_at = math.inf  # the next time ``due`` may name someone
        self._since: dict[str, float] = {}  # peer -> when first seen unlisting us
        self._said: frozenset[str] = frozenset()
        self.was_said = False  # (then "a full member" is worth saying when it ends)

    def update(self, unlisted: frozenset[str], now: float) -> None:
        """The peers up whose lists do not name this node, as of ``now``."""
        since = self._since
        for peer in unlisted - since.keys():
            since[peer] = now
        for peer in since.keys() - unlisted:
            del since[peer]
        self._said &= since.keys()
        self._arm()

    def ended(self) -> bool:
        """No peer leaves this node out any more, after one was said to (said once)."""
        if self._since or not self.was_said:
            return False
        self.was_said = False
        return True

    def due(self, now: float) -> frozenset[str]:
        """The peers to name now (empty: none new to say)."""
        due = frozenset(p for p, t in self._since.items() if now - t >= UNLISTED_SAID_AFTER / 2)
        say = due if due - self._said else frozenset()
        self.was_said = self.was_said or bool(say)
        self._said |= due
        self._arm()
        return say

    def _arm(self) -> None:
        waiting = [t for p, t in self._since.items() if p not in self._said]
        self.due_at = min(waiting) + UNLISTED_SAID_AFTER if waiting else math.inf
