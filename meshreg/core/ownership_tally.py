"""Services and instances per responsible member, for ``cluster``, counted in steps.

Counting who owns what hashes every service over the members: 0.5 s of CPU at 200k
services (issue 10, M6), which every client used to trigger every 10 s through
``cluster``.  A small registry is counted when asked; a large one in bounded steps
from the node's tick, and ``cluster`` answers with the last complete count (at most
one pass old: a pass of N services takes N / STEP ticks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from meshreg.core.store import RegistryStore
from meshreg.model import ServiceKey

STEP = 1_000  # services hashed per tick (about 2.6 ms at 3 members, uncached)
COUNT_AT_ONCE = 5_000  # a registry this small is counted on each ``cluster``
PASS_EVERY = 30.0  # s between the starts of two passes

Counts = dict[str, list[int]]  # node id -> [services, instances]


def count_owned(store: RegistryStore, owner_of: Callable[[ServiceKey], str]) -> Counts:
    owned: Counts = {}
    for svc in store.services.values():
        counts = owned.setdefault(owner_of(svc.key), [0, 0])
        counts[0] += 1
        counts[1] += len(svc.instances)
    return owned


class OwnershipTally:
    """The last complete count, and the pass in progress."""

    __slots__ = ("last", "_keys", "_partial", "_members", "_next_pass")

    def __init__(self) -> None:
        self.last: Counts = {}
        self._keys: Iterator[ServiceKey] | None = None
        self._partial: Counts = {}
        self._members: tuple[str, ...] = ()
        self._next_pass = float("-inf")

    def counts(self, store: RegistryStore, owner_of: Callable[[ServiceKey], str]) -> Counts:
        if len(store.services) <= COUNT_AT_ONCE:
            return count_owned(store, owner_of)
        return self.last

    def step(
        self,
        store: RegistryStore,
        owner_of: Callable[[ServiceKey], str],
        members: tuple[str, ...],
        now: float,
        budget: int = STEP,
    ) -> None:
        """Hash up to ``budget`` services; a membership change restarts the pass."""
        if len(store.services) <= COUNT_AT_ONCE:
            self._keys = None
            return
        if self._keys is None and now < self._next_pass and members == self._members:
            return
        if self._keys is None or members != self._members:
            self._next_pass = now + PASS_EVERY
            self._keys = iter(list(store.services))  # keys only: a pass sees removals
            self._partial = {}
            self._members = members
        services = store.services
        partial = self._partial
        for _ in range(budget):
            key = next(self._keys, None)
            if key is None:
                self.last, self._keys = partial, None
                return
            svc = services.get(key)
            if svc is not None:
                counts = partial.setdefault(owner_of(key), [0, 0])
                counts[0] += 1
                counts[1] += len(svc.instances)
