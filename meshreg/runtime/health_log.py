"""Bounded logging of health transitions: at most a few lines per loop turn (issue 10, M9).

A sweep may mark or evict thousands of services at once (600k one-shot
registrations expiring wrote 72 MB of log in 60 s, one line per service, and
stalled the node).  :class:`HealthLog` is fed the ``ServiceChanged`` effects
of one turn and yields at most ``max_lines`` lines naming services, then one
summary line: "... and K more services: X instances unhealthy, Y evicted".
Each named line itself names at most ``LOGGED_NAMES`` instances.
"""

from __future__ import annotations

from meshreg.core.effects import ServiceChanged

LOGGED_SERVICES = 20  # services named per loop turn; the rest are summed up in one line
LOGGED_NAMES = 10  # instances named in one "unhealthy"/"evicted" line; the rest counted
HEALTH_REASONS = frozenset(("unhealthy", "evicted"))  # the transitions that are logged


def some_names(change: ServiceChanged) -> str:
    """The first instances of a health change, and how many more: one bounded line
    even when a mass expiry marks thousands at once."""
    count = len(change.removed) + len(change.upserted)
    names = [str(i) for i in change.removed[:LOGGED_NAMES]]
    names += [f"{v.ip}:{v.port}" for v in change.upserted[: LOGGED_NAMES - len(names)]]
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


class HealthLog:
    """Collects one turn's health transitions; ``lines()`` gives what to log, then resets."""

    def __init__(self, max_lines: int = LOGGED_SERVICES) -> None:
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._more_services = 0  # services beyond max_lines this turn
        self._more: dict[str, int] = {}  # reason -> instances of those services

    def add(self, change: ServiceChanged) -> None:
        """One ServiceChanged of the turn (ignored unless it is a health transition)."""
        reason = change.reason
        if reason not in HEALTH_REASONS:
            return
        if len(self._lines) < self.max_lines:
            self._lines.append(
                f"{change.key}: {reason} {some_names(change)} (revision {change.revision})"
            )
            return
        self._more_services += 1
        count = len(change.removed) + len(change.upserted)
        self._more[reason] = self._more.get(reason, 0) + count

    def lines(self) -> list[str]:
        """The lines for this turn (at most ``max_lines + 1``), and start a new turn."""
        lines = self._lines
        if self._more_services:
            lines.append(
                f"and {self._more_services} more services: "
                f"{self._more.get('unhealthy', 0)} instances unhealthy, "
                f"{self._more.get('evicted', 0)} evicted"
            )
        self._lines, self._more_services, self._more = [], 0, {}
        return lines
