"""Who watches what: subscription counts per topic, from XPUB events.

ZeroMQ's XPUB (verbose) hands the node every (un)subscription; this keeps a
count per service so ``stats`` can report subscribers and so a new
subscription can be answered with the service's current revision.
"""

from __future__ import annotations

from meshreg.model import ServiceKey


class SubscriberCounts:
    """Subscription counts by service (``None``: a prefix, e.g. a namespace)."""

    def __init__(self) -> None:
        self.by_service: dict[ServiceKey | None, int] = {}
        self._total = 0  # running sum of by_service's counts: ``stats`` costs O(1)

    def subscribed(self, key: ServiceKey | None) -> None:
        self.by_service[key] = self.by_service.get(key, 0) + 1
        self._total += 1

    def unsubscribed(self, key: ServiceKey | None) -> None:
        count = self.by_service.get(key, 0) - 1
        if count >= 0:
            self._total -= 1
        if count > 0:
            self.by_service[key] = count
        else:
            self.by_service.pop(key, None)

    def compact(self) -> None:
        """Rebuild the table at its present size (a dict keeps the table of its largest
        size: 10 MB, empty, after a flood of 200,000 subscriptions ended)."""
        self.by_service = dict(self.by_service)

    def total(self) -> int:
        return self._total

    def watched_services(self) -> int:
        return len(self.by_service) - (None in self.by_service)
