"""Operator overrides: an instance's weight and enabled flag as an operator set them.

Theory of operation
-------------------
* An operator's ``update`` (``meshreg instance-set``: drain with ``enabled=False``,
  ``weight``) is kept here, apart from the provider's registration (the record in
  core/store keeps the provider's own values).  What watchers, reads and ``select``
  see is the *effective* value: the override's field where it sets one, else the
  provider's.  So a provider that registers again (its app restarts: deregister,
  register; a session redo; a new process) never undoes an operator's drain: the
  layer of Nacos 2's instance metadata (``NamingMetadataManager``).
* An entry is ``(weight, enabled, weight_version, enabled_version, at)``: a field None
  is not overridden; both None is a *cleared* entry (``instance-set --clear``), kept
  so that a stale copy of the override does not come back in a merge.  **Each field
  has its own stamp** (core/versions; 0: never written) and merges on its own, the
  higher stamp winning (as records do): a drain through one node and a weight set
  through another before either reached the other both survive (review13b: with one
  stamp per entry, the later write, made without the earlier one, dropped it); a
  write sets only the fields it names.  So two overrides made on two sides of a
  partition both survive unless they set the same field, and every node that has
  seen the same entries holds the same ones.  ``at`` is local (this node's clock):
  when it was last stored.
* Entries travel with the service's deltas (the entries of the instances a change
  upserts), in full with its anti-entropy payload, and in a delta of their own when
  only they change (a clear or an expiry of an absent instance's entry).  Active
  entries are part of the service's digest (``digest``); cleared ones are not (each
  node forgets them on its own clock, as tombstones: core/digests).
* Expiry (bounded, replicated): an active entry of an instance that is absent from
  the table (not registered anywhere) for ``ttl`` seconds is cleared by the node
  responsible for its service, with a new stamp, and the clear is replicated; a
  cleared entry is forgotten ``CLEARED_TTL`` after it was stored, on every node.  The
  default ``ttl`` (``DEFAULT_OVERRIDE_TTL``) covers a maintenance restart (README,
  "Draining").  Absence is watched at most every ``ABSENCE_CHECK_INTERVAL``, by a
  walk over the entries (few: operators write them by hand; at most
  ``MAX_OVERRIDES``), never on the beat path.
* Bounds: at most ``MAX_OVERRIDES`` entries (active and cleared) are written by
  clients (an ``update`` over it is refused); replicated entries are never refused
  (a peer's client was admitted there).  ``len`` is in ``stats``.
* ``changed``: the entries (by service) that changed since the runtime last persisted
  them (runtime/registry_state, the data dir): the runtime writes those rows alone, off
  the beat path, so a write costs the same however many overrides its service holds
  (review13b F3: rewriting a service's every row made a drain in a service holding
  3,800 overrides 20 times slower).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import xxhash

from meshreg.model import InstanceId, ServiceKey

# s an override of an instance that is registered nowhere is kept (then cleared by the
# responsible node): a maintenance restart (a host reboot, a redeploy) takes minutes, not
# seconds; Nacos clears such metadata after 60 s, which a reboot outlasts (README, "Draining")
DEFAULT_OVERRIDE_TTL = 600.0
CLEARED_TTL = 600.0  # s a cleared entry is remembered (stale copies stay cleared; as tombstones)
ABSENCE_CHECK_INTERVAL = 5.0  # s between walks over the entries (expiry is coarse on purpose)
MAX_OVERRIDES = 100_000  # entries written by clients, in all (~200 bytes each: ~20 MB)
# of them in one namespace: an admin of one namespace cannot take them all, and leave
# every other tenant unable to drain an instance (review23 F6)
MAX_OVERRIDES_PER_NAMESPACE = MAX_OVERRIDES // 4

# (weight, enabled, weight's stamp, enabled's stamp, stored at)
Entry = tuple[float | None, bool | None, int, int, float]
# (instance, weight, enabled, weight's stamp, enabled's stamp), as replicated
WireOverride = tuple[InstanceId, float | None, bool | None, int, int]


def newest(o: WireOverride) -> int:
    """The highest stamp an override carries."""
    return o[3] if o[3] > o[4] else o[4]


class Overrides:
    """Every operator override a node holds, by service and instance."""

    def __init__(self) -> None:
        self.by_service: dict[ServiceKey, dict[InstanceId, Entry]] = {}
        self.count = 0  # entries held (active and cleared)
        self.by_namespace: dict[str, int] = {}  # the same, per namespace
        self.active = 0  # entries that override something
        self.expired = 0  # cleared here because their instance stayed absent (stats)
        self.changed: dict[ServiceKey, set[InstanceId]] = {}  # to persist (runtime)
        self._absent_since: dict[tuple[ServiceKey, InstanceId], float] = {}
        self.next_check = 0.0

    def __len__(self) -> int:
        return self.count

    def get(self, key: ServiceKey, iid: InstanceId) -> Entry | None:
        held = self.by_service.get(key)
        return held.get(iid) if held is not None else None

    def effective(
        self, key: ServiceKey, iid: InstanceId, weight: float, enabled: bool
    ) -> tuple[float, bool]:
        """What watchers see of an instance whose provider registered ``weight, enabled``."""
        held = self.by_service.get(key)
        if held is None:
            return weight, enabled
        entry = held.get(iid)
        if entry is None:
            return weight, enabled
        return (
            weight if entry[0] is None else entry[0],
            enabled if entry[1] is None else entry[1],
        )

    def entries(
        self, key: ServiceKey, iids: Iterable[InstanceId] | None = None
    ) -> tuple[WireOverride, ...]:
        """The entries of ``key`` (of the instances ``iids`` only, if given), as replicated."""
        held = self.by_service.get(key)
        if not held:
            return ()
        if iids is None:
            return tuple((iid, e[0], e[1], e[2], e[3]) for iid, e in held.items())
        return tuple(
            (iid, e[0], e[1], e[2], e[3]) for iid in iids if (e := held.get(iid)) is not None
        )

    def put(
        self,
        key: ServiceKey,
        iid: InstanceId,
        weight: float | None,
        enabled: bool | None,
        weight_version: int,
        enabled_version: int,
        now: float,
    ) -> bool:
        """Merge a write or a copy: each field is taken if its stamp is higher than the
        one held (a stamp 0 carries nothing); True when anything was taken."""
        held = self.by_service.get(key)
        if held is None:
            held = self.by_service[key] = {}
        entry = held.get(iid)
        if entry is None:
            entry = (None, None, 0, 0, now)
            new = True
        else:
            new = False
        w, e, wv, ev = entry[0], entry[1], entry[2], entry[3]
        taken = False
        if weight_version > wv:
            w, wv, taken = weight, weight_version, True
        if enabled_version > ev:
            e, ev, taken = enabled, enabled_version, True
        if not taken:
            if new and not held:
                del self.by_service[key]
            return False
        if new:
            self.count += 1
            ns = key.namespace
            self.by_namespace[ns] = self.by_namespace.get(ns, 0) + 1
        elif entry[0] is not None or entry[1] is not None:
            self.active -= 1
        if w is not None or e is not None:
            self.active += 1
        held[iid] = (w, e, wv, ev, now)
        self.changed.setdefault(key, set()).add(iid)
        return True

    def _forget(self, key: ServiceKey, iid: InstanceId) -> None:
        held = self.by_service[key]
        entry = held.pop(iid)
        self.count -= 1
        ns = key.namespace
        if self.by_namespace[ns] > 1:
            self.by_namespace[ns] -= 1
        else:
            del self.by_namespace[ns]
        if entry[0] is not None or entry[1] is not None:
            self.active -= 1
        if not held:
            del self.by_service[key]
        self.changed.setdefault(key, set()).add(iid)

    def active_keys(self) -> set[ServiceKey]:
        """Services with an active entry (anti-entropy repairs them, core/distro)."""
        return {
            key
            for key, held in self.by_service.items()
            if any(e[0] is not None or e[1] is not None for e in held.values())
        }

    def digest(self, key: ServiceKey) -> int:
        """The share of ``key``'s active entries in its digest (0: none)."""
        held = self.by_service.get(key)
        if not held:
            return 0
        total = 0
        for iid, e in held.items():
            if e[0] is not None or e[1] is not None:
                total += xxhash.xxh64_intdigest(
                    f"{iid.ip}\x00{iid.port}\x00{iid.cluster}\x00{e[2]}\x00{e[3]}".encode()
                )
        return total & (2**64 - 1)

    def sweep(
        self,
        now: float,
        ttl: float,
        holds: Callable[[ServiceKey, InstanceId], bool],
        owns: Callable[[ServiceKey], bool],
        stamp: Callable[[], int],
    ) -> list[tuple[ServiceKey, WireOverride]]:
        """Expire what is due (module docstring, "Expiry"); at most every
        ``ABSENCE_CHECK_INTERVAL``.  Returns the entries cleared here, to replicate."""
        if now < self.next_check or not self.by_service:
            return []
        self.next_check = now + ABSENCE_CHECK_INTERVAL
        cleared: list[tuple[ServiceKey, WireOverride]] = []
        absent = self._absent_since
        seen: set[tuple[ServiceKey, InstanceId]] = set()
        for key, held in list(self.by_service.items()):
            for iid, e in list(held.items()):
                if e[0] is None and e[1] is None:
                    if now - e[4] >= CLEARED_TTL:
                        self._forget(key, iid)
                    continue
                if holds(key, iid):
                    continue
                since = absent.setdefault((key, iid), now)
                seen.add((key, iid))
                if now - since >= ttl and owns(key):
                    version = stamp()
                    self.put(key, iid, None, None, version, version, now)
                    self.expired += 1
                    cleared.append((key, (iid, None, None, version, version)))
        for gone in [k for k in absent if k not in seen]:
            del absent[gone]
        return cleared


__all__ = [
    "ABSENCE_CHECK_INTERVAL",
    "CLEARED_TTL",
    "DEFAULT_OVERRIDE_TTL",
    "MAX_OVERRIDES",
    "MAX_OVERRIDES_PER_NAMESPACE",
    "Entry",
    "Overrides",
    "WireOverride",
    "newest",
]
