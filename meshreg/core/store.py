"""The registry table: services, their instances and revisions.

Theory of operation
-------------------
* A node-wide revision counter grows by one on every visible change; the
  changed service takes the new value as its revision.  Revisions are thus
  monotonic per service even when a service is emptied, dropped and created
  again (a watcher with an old revision then sees a gap and re-pulls).
* A change is *visible* when anything a watcher sees changes: the set of
  instances or any of weight, enabled, healthy, metadata.  A beat only moves
  ``last_beat`` and is invisible unless it heals an unhealthy instance.
* A service with no instance left is dropped from the table.  Asked for,
  a missing service reports the node-wide revision: never below any
  revision it had, so a watcher that missed its last delta still accepts the
  empty list (and one created again later shows up as a gap, then a pull).
* Time is an argument (``now``, monotonic seconds); the store keeps no clock.
* Replication (see ``core/versions``): every record carries the stamp of
  its last state change; a removal leaves a tombstone with its stamp for
  ``tombstone_ttl`` seconds.  ``merge`` applies a peer's records and
  tombstones per instance, keeping whichever stamp is higher, so merges
  commute and every node that has seen the same records holds the same table.
  A tombstone is what stops a stale copy from resurrecting an evicted
  instance.
* Memory (a node holds up to millions of records; see bench/scale.py): a
  record keeps no more than its fields.  The instances of a service mostly
  carry equal metadata, so a service shares one dict among the instances
  whose metadata is equal to one of its last few distinct ones (record
  metadata is never changed in place: a change replaces the dict).  Cluster
  names are interned and the default weight is one float object.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator

from meshreg.core.events import InstanceView, ServiceChanged
from meshreg.model import InstanceId, ServiceKey

Settings = tuple[float, int, dict[str, str]]  # (protect_threshold, version, service metadata)
NO_SETTINGS: Settings = (0.0, 0, {})
SHARED_METADATA = 4  # distinct metadata dicts a service offers for sharing (most recent)
_ONE = 1.0  # the default weight: one float object for every record that has it


class InstanceRecord:
    """One registered instance; mutable, owned by the store."""

    __slots__ = (
        "id",
        "weight",
        "enabled",
        "healthy",
        "metadata",
        "registered_at",
        "last_beat",
        "version",
    )

    def __init__(
        self,
        iid: InstanceId,
        weight: float,
        enabled: bool,
        metadata: dict[str, str],
        now: float,
        version: int = 0,
    ) -> None:
        self.id = iid
        self.version = version
        self.weight = weight
        self.enabled = enabled
        self.healthy = True
        self.metadata = metadata
        self.registered_at = now
        self.last_beat = now

    def view(self) -> InstanceView:
        iid = self.id
        return InstanceView(
            iid.ip,
            iid.port,
            iid.cluster,
            self.weight,
            self.enabled,
            self.healthy,
            dict(self.metadata),
            self.version,
        )


class ServiceRecord:
    """One service: its instances by id and its revision."""

    __slots__ = ("key", "revision", "instances", "digest_cache", "metadata_seen", "oldest_beat")

    def __init__(self, key: ServiceKey) -> None:
        self.key = key
        self.revision = 0
        self.instances: dict[InstanceId, InstanceRecord] = {}
        # A lower bound of the instances' last beats (time only moves forward and a beat
        # only raises one): the health check skips the service, records untouched,
        # while it is newer than the silence threshold. Lowered when a record is stored.
        self.oldest_beat = math.inf
        self.digest_cache: int | None = None  # see core/digests; reset on every change
        # the last few distinct metadata dicts stored here, shared by equal ones
        self.metadata_seen: tuple[dict[str, str], ...] = ()

    def shared_metadata(self, metadata: dict[str, str], copy: bool = False) -> dict[str, str]:
        """An equal metadata dict already held by this service, else ``metadata``
        (a copy of it with ``copy``), which is then offered for sharing.

        Bounded: at most SHARED_METADATA comparisons and dicts kept per service.
        """
        seen = self.metadata_seen
        for held in seen:
            if held == metadata:
                return held
        if copy:
            metadata = dict(metadata)
        self.metadata_seen = (*seen[-(SHARED_METADATA - 1) :], metadata)
        return metadata


def _stored_id(iid: InstanceId) -> InstanceId:
    """``iid`` with its cluster name interned (a handful of names, held by every record)."""
    cluster = iid.cluster
    if type(cluster) is not str or sys.intern(cluster) is cluster:
        return iid
    return InstanceId(iid.ip, iid.port, sys.intern(cluster))


def _stored_weight(weight: float) -> float:
    """The weight to keep: the shared object for the default 1.0 (each decoded one is new)."""
    return _ONE if type(weight) is float and weight == _ONE else weight


class RegistryStore:
    """All services of a node."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, ServiceRecord] = {}
        self.revision = 0
        # service settings: (protect threshold, version stamp, metadata); kept when emptied
        self.settings: dict[ServiceKey, Settings] = {}
        # (version, removed_at) of removed instances, so stale copies stay dead
        self.tombstones: dict[ServiceKey, dict[InstanceId, tuple[int, float]]] = {}

    # -- queries -------------------------------------------------------------
    def get(self, key: ServiceKey) -> ServiceRecord | None:
        return self.services.get(key)

    def revision_of(self, key: ServiceKey) -> int:
        """A service's revision; the node-wide one for a service not in the table."""
        svc = self.services.get(key)
        return svc.revision if svc is not None else self.revision

    def instance_count(self) -> tuple[int, int]:
        """(healthy, unhealthy) instance counts."""
        healthy = unhealthy = 0
        for svc in self.services.values():
            for rec in svc.instances.values():
                if rec.healthy:
                    healthy += 1
                else:
                    unhealthy += 1
        return healthy, unhealthy

    def service_names(self, namespace: str, group: str | None) -> list[tuple[str, str]]:
        """Sorted (group, service) pairs of a namespace, optionally one group."""
        return sorted(
            (k.group, k.service)
            for k in self.services
            if k.namespace == namespace and (group is None or k.group == group)
        )

    def records(self) -> Iterator[ServiceRecord]:
        return iter(list(self.services.values()))

    # -- writes --------------------------------------------------------------
    def register(
        self,
        key: ServiceKey,
        iid: InstanceId,
        weight: float,
        enabled: bool,
        metadata: dict[str, str],
        now: float,
        version: int = 0,
    ) -> ServiceChanged | None:
        """Add or update an instance; a repeat with equal fields only refreshes its beat."""
        svc = self.services.get(key)
        if svc is None:
            svc = self.services[key] = ServiceRecord(key)
        rec = svc.instances.get(iid)
        if rec is None:
            iid = _stored_id(iid)
            rec = svc.instances[iid] = InstanceRecord(
                iid, _stored_weight(weight), enabled, svc.shared_metadata(metadata), now, version
            )
            if now < svc.oldest_beat:
                svc.oldest_beat = now
            self._forget_tombstone(key, iid)
            return self._changed(svc, (rec,), (), "registered")
        rec.last_beat = now
        if now < svc.oldest_beat:
            svc.oldest_beat = now
        if (
            rec.healthy
            and rec.weight == weight
            and rec.enabled == enabled
            and rec.metadata == metadata
        ):
            return None
        rec.weight, rec.enabled, rec.healthy = _stored_weight(weight), enabled, True
        rec.metadata = svc.shared_metadata(metadata)
        rec.version = version
        return self._changed(svc, (rec,), (), "updated")

    def update(
        self,
        key: ServiceKey,
        iid: InstanceId,
        weight: float | None,
        enabled: bool | None,
        version: int = 0,
    ) -> ServiceChanged | None:
        """Change weight and/or enabled of a registered instance (KeyError: not there)."""
        svc = self.services.get(key)
        rec = svc.instances.get(iid) if svc is not None else None
        if svc is None or rec is None:
            raise KeyError(iid)
        new_weight = rec.weight if weight is None else weight
        new_enabled = rec.enabled if enabled is None else enabled
        if (new_weight, new_enabled) == (rec.weight, rec.enabled):
            return None
        rec.weight, rec.enabled, rec.version = _stored_weight(new_weight), new_enabled, version
        return self._changed(svc, (rec,), (), "updated")

    def deregister(
        self, key: ServiceKey, iid: InstanceId, version: int = 0, now: float = 0.0
    ) -> ServiceChanged | None:
        """Remove an instance; None when it was not there (deregister is idempotent)."""
        return self.remove(key, (iid,), "deregistered", version, now)

    def beat(self, key: ServiceKey, iid: InstanceId, now: float) -> InstanceRecord | None:
        """Record a beat. Returns the record (None: unknown, the client must register)."""
        svc = self.services.get(key)
        if svc is None:
            return None
        rec = svc.instances.get(iid)
        if rec is not None:
            rec.last_beat = now
        return rec

    def set_health(
        self, key: ServiceKey, iids: Iterable[InstanceId], healthy: bool, version: int = 0
    ) -> ServiceChanged | None:
        """Set ``healthy`` on instances; one change (one revision) for all of them."""
        svc = self.services.get(key)
        if svc is None:
            return None
        changed = []
        for iid in iids:
            rec = svc.instances.get(iid)
            if rec is not None and rec.healthy != healthy:
                rec.healthy = healthy
                rec.version = version
                changed.append(rec)
        if not changed:
            return None
        return self._changed(svc, tuple(changed), (), "recovered" if healthy else "unhealthy")

    def remove(
        self,
        key: ServiceKey,
        iids: Iterable[InstanceId],
        reason: str,
        version: int = 0,
        now: float = 0.0,
    ) -> ServiceChanged | None:
        """Remove instances; one change for all of them; drops an emptied service."""
        svc = self.services.get(key)
        if svc is None:
            return None
        pop = svc.instances.pop
        removed = tuple(rec.id for iid in iids if (rec := pop(iid, None)) is not None)
        if not removed:
            return None
        tombs = self.tombstones.setdefault(key, {})
        for iid in removed:
            tombs[iid] = (version, now)
        change = self._changed(svc, (), removed, reason, (version,) * len(removed))
        if not svc.instances:
            del self.services[key]
        return change

    # -- replication -----------------------------------------------------------
    def version_of(self, key: ServiceKey, iid: InstanceId) -> int:
        """The stamp of what we hold for an instance (record or tombstone); -1: nothing."""
        svc = self.services.get(key)
        rec = svc.instances.get(iid) if svc is not None else None
        if rec is not None:
            return rec.version
        tomb = self.tombstones.get(key, {}).get(iid)
        return tomb[0] if tomb is not None else -1

    def merge(
        self,
        key: ServiceKey,
        upserts: Iterable[InstanceView],
        removals: Iterable[tuple[InstanceId, int]],
        now: float,
        settings: Settings | None = None,
    ) -> ServiceChanged | None:
        """Apply a peer's records, tombstones and settings where their stamps are higher.

        New records get ``now`` as their last beat (a fresh grace period).
        """
        changed: list[InstanceRecord] = []
        removed: list[InstanceId] = []
        removed_versions: list[int] = []
        svc = self.services.get(key)
        for v in upserts:
            iid = InstanceId(v.ip, v.port, v.cluster)
            if v.version <= self.version_of(key, iid):
                continue
            if svc is None:
                svc = self.services[key] = ServiceRecord(key)
            rec = svc.instances.get(iid)
            metadata = svc.shared_metadata(v.metadata, copy=True)  # never the view's own
            if rec is None:
                iid = _stored_id(iid)
                rec = svc.instances[iid] = InstanceRecord(
                    iid, _stored_weight(v.weight), v.enabled, metadata, now, v.version
                )
                if now < svc.oldest_beat:
                    svc.oldest_beat = now
                rec.healthy = v.healthy
                self._forget_tombstone(key, iid)
            else:
                rec.weight, rec.enabled = _stored_weight(v.weight), v.enabled
                rec.healthy, rec.metadata, rec.version = v.healthy, metadata, v.version
            changed.append(rec)
        tombs = None
        for iid, version in removals:
            if version <= self.version_of(key, iid):
                continue
            if tombs is None:
                tombs = self.tombstones.setdefault(key, {})
            tombs[iid] = (version, now)
            if svc is not None and svc.instances.pop(iid, None) is not None:
                removed.append(iid)
                removed_versions.append(version)
        settings_changed = settings is not None and self._take_settings(key, settings)
        if not (changed or removed or settings_changed):
            return None
        if svc is None:
            svc = self.services[key] = ServiceRecord(key)
        change = self._changed(
            svc, tuple(changed), tuple(removed), "replicated", tuple(removed_versions)
        )
        if not svc.instances:
            del self.services[key]
        return change

    def tombstones_of(self, key: ServiceKey) -> list[tuple[InstanceId, int]]:
        return [(iid, v) for iid, (v, _) in self.tombstones.get(key, {}).items()]

    def purge_tombstones(self, now: float, ttl: float) -> int:
        """Forget tombstones older than ``ttl`` seconds; returns how many."""
        purged = 0
        for key in list(self.tombstones):
            tombs = self.tombstones[key]
            for iid in [i for i, (_, at) in tombs.items() if at <= now - ttl]:
                del tombs[iid]
                purged += 1
            if not tombs:
                del self.tombstones[key]
        return purged

    def _forget_tombstone(self, key: ServiceKey, iid: InstanceId) -> None:
        tombs = self.tombstones.get(key)
        if tombs is not None and tombs.pop(iid, None) is not None and not tombs:
            del self.tombstones[key]

    def _take_settings(self, key: ServiceKey, settings: Settings) -> bool:
        """Keep ``settings`` if newer; True when what watchers see changed."""
        current = self.settings.get(key)
        if current is not None and settings[1] <= current[1]:
            return False
        self.settings[key] = settings
        svc = self.services.get(key)
        if svc is not None:
            svc.digest_cache = None
        before = current or NO_SETTINGS
        return (settings[0], settings[2]) != (before[0], before[2])

    def protect_threshold(self, key: ServiceKey) -> float:
        return self.settings.get(key, NO_SETTINGS)[0]

    def service_settings(self, key: ServiceKey) -> Settings:
        return self.settings.get(key, NO_SETTINGS)

    def set_service(
        self,
        key: ServiceKey,
        threshold: float | None,
        metadata: dict[str, str] | None,
        version: int,
    ) -> ServiceChanged | None:
        """Set a service's threshold and/or metadata (None: keep); applied if newer."""
        current = self.settings.get(key, NO_SETTINGS)
        new: Settings = (
            current[0] if threshold is None else threshold,
            version,
            current[2] if metadata is None else dict(metadata),
        )
        if not self._take_settings(key, new):
            return None
        svc = self.services.get(key)
        temporary = svc is None
        if svc is None:
            svc = self.services[key] = ServiceRecord(key)
        change = self._changed(svc, (), (), "settings")
        if temporary:
            del self.services[key]
        return change

    def _changed(
        self,
        svc: ServiceRecord,
        upserted: tuple[InstanceRecord, ...],
        removed: tuple[InstanceId, ...],
        reason: str,
        removed_versions: tuple[int, ...] = (),
    ) -> ServiceChanged:
        base = svc.revision
        svc.digest_cache = None
        self.revision += 1
        svc.revision = self.revision
        threshold, settings_version, service_metadata = self.settings.get(svc.key, NO_SETTINGS)
        return ServiceChanged(
            svc.key,
            base,
            svc.revision,
            tuple(r.view() for r in upserted),
            removed,
            reason,
            removed_versions,
            threshold,
            settings_version,
            service_metadata,
        )
