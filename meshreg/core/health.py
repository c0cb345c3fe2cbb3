"""Health checking: beats, unhealthy and eviction deadlines.

Theory of operation
-------------------
Providers beat every ``beat_interval`` (client side, default 5 s).  Every
``check_interval`` the node sweeps its table:

* no beat for ``unhealthy_after`` (15 s)  -> marked unhealthy (watchers told);
* no beat for ``evict_after``     (30 s)  -> removed (watchers told).

A beat for an unhealthy instance heals it at once (the node does that on the
beat, not here).  In one sweep, the instances of a service newly marked
unhealthy become one change and those evicted another (one revision each).
The sweep is O(instances); at 5 s per sweep that stays far below the beat
traffic it judges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from meshreg.core.events import ServiceChanged
from meshreg.core.store import RegistryStore
from meshreg.errors import ConfigError
from meshreg.model import ServiceKey


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Timings of the health rules, all in seconds."""

    check_interval: float = 5.0  # s; how often the node sweeps (seed: 5 s)
    unhealthy_after: float = 15.0  # s without a beat -> unhealthy (seed: 15 s)
    evict_after: float = 30.0  # s without a beat -> removed (seed: 30 s)

    def __post_init__(self) -> None:
        for name in ("check_interval", "unhealthy_after", "evict_after"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
        if not self.check_interval > 0:
            raise ConfigError(f"check_interval must be > 0 s, got {self.check_interval}")
        if not self.unhealthy_after > 0:
            raise ConfigError(f"unhealthy_after must be > 0 s, got {self.unhealthy_after}")
        if not self.evict_after >= self.unhealthy_after:
            raise ConfigError(
                f"evict_after ({self.evict_after} s) must be >= unhealthy_after "
                f"({self.unhealthy_after} s)"
            )


def sweep(
    store: RegistryStore,
    now: float,
    policy: HealthPolicy,
    version: int = 0,
    owns: Callable[[ServiceKey], bool] | None = None,
) -> list[ServiceChanged]:
    """Mark silent instances unhealthy and evict dead ones; return the changes.

    ``version`` stamps every change of this sweep; ``owns`` limits the sweep
    to the services this node is responsible for (None: all of them).
    """
    unhealthy_before = now - policy.unhealthy_after
    evict_before = now - policy.evict_after
    changes: list[ServiceChanged] = []
    for svc in store.records():
        if owns is not None and not owns(svc.key):
            continue
        to_evict = []
        to_mark = []
        for rec in svc.instances.values():
            if rec.last_beat <= evict_before:
                to_evict.append(rec.id)
            elif rec.healthy and rec.last_beat <= unhealthy_before:
                to_mark.append(rec.id)
        if to_mark:
            change = store.set_health(svc.key, to_mark, False, version)
            if change is not None:
                changes.append(change)
        if to_evict:
            change = store.remove(svc.key, to_evict, "evicted", version, now)
            if change is not None:
                changes.append(change)
    return changes
