"""The client's view of one service: snapshot + revision, deltas, gap detection.

Pure: no sockets, no threads.  Rules (the zguide's Clone pattern):

* a snapshot (reply to ``instances``) replaces the view when it is from
  another epoch (node incarnation) or not older than what we hold;
* a delta applies when its ``base`` equals our revision; one with a revision
  not above ours is old news; anything else is a gap -> pull a snapshot;
* a sync applies nothing; it is a gap when epoch or revision differ;
* a notification that arrives before the first snapshot is remembered as a
  hint: if it is newer than the snapshot (same epoch), the snapshot is
  already stale and ``apply_snapshot`` says GAP so the caller pulls again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from meshreg.client.messages import (
    InstancesSnapshot,
    Notification,
    ServiceDelta,
    ServiceSync,
    notification_from_map,
    snapshot_from_map,
)
from meshreg.model import Instance, InstanceId, InstanceList, ServiceKey, protection_active


class Outcome(enum.Enum):
    APPLIED = "applied"  # the view changed
    UNCHANGED = "unchanged"  # accepted, nothing visible changed (or old news)
    GAP = "gap"  # we missed something: pull a snapshot


class ServiceView:
    """Instances of one service as last known, with their epoch and revision."""

    def __init__(self, key: ServiceKey) -> None:
        self.key = key
        self.epoch: int | None = None
        self.revision = 0
        self.instances: dict[InstanceId, Instance] = {}
        self.loaded = False  # True once a snapshot was applied (or a disk copy preloaded)
        self.from_disk = False  # the view is a disk copy, not yet confirmed by a node
        self.disk_age: float | None = None  # s: how old that copy was when it was read
        self.protect_threshold = 0.0  # the service's protection threshold, as last heard
        self.service_metadata: dict[str, str] = {}  # the service's metadata, as last heard
        self._hint: tuple[int, int] | None = None  # newest (epoch, revision) heard before loading

    def apply_snapshot(self, snapshot: InstancesSnapshot | Mapping[str, Any]) -> Outcome:
        """Apply an ``instances`` result (a checked map is decoded first)."""
        snap = snapshot if isinstance(snapshot, InstancesSnapshot) else snapshot_from_map(snapshot)
        epoch, revision = snap.epoch, snap.revision
        if self.loaded and epoch == self.epoch and revision < self.revision:
            return Outcome.UNCHANGED  # an older answer overtaken by a delta
        new = {inst.id: inst for inst in snap.instances}
        self._take_settings(snap.protect_threshold, snap.service_metadata)
        changed = not self.loaded or self.from_disk or new != self.instances
        self.epoch, self.revision, self.instances, self.loaded = epoch, revision, new, True
        self.from_disk = False
        hint, self._hint = self._hint, None
        if hint is not None and hint[0] == epoch and hint[1] > revision:
            return Outcome.GAP  # a change we heard of is missing from this snapshot
        return Outcome.APPLIED if changed else Outcome.UNCHANGED

    def _take_settings(self, threshold: float | None, metadata: dict[str, str] | None) -> None:
        """A service's settings as last heard; None: not sent, keep what we have."""
        if threshold is not None:
            self.protect_threshold = threshold
        if metadata is not None:
            self.service_metadata = dict(metadata)

    def preload(self, instances: list[Instance], age: float | None = None) -> None:
        """Start from a disk copy (``age`` seconds old); the first snapshot from a node
        replaces it."""
        self.disk_age = age
        self.instances = {i.id: i for i in instances}
        self.epoch, self.revision, self.loaded, self.from_disk = None, 0, True, True

    def apply_notification(self, notification: Notification | Mapping[str, Any]) -> Outcome:
        """Apply a delta or sync (a checked map is decoded first)."""
        msg = (
            notification
            if isinstance(notification, (ServiceDelta, ServiceSync))
            else notification_from_map(notification)
        )
        epoch, revision = msg.epoch, msg.revision
        if not self.loaded:  # the snapshot pull in flight should cover it; remember it
            if self._hint is None or self._hint[0] != epoch or self._hint[1] < revision:
                self._hint = (epoch, revision)
            return Outcome.UNCHANGED
        if isinstance(msg, ServiceSync):
            if epoch != self.epoch or revision != self.revision:
                return Outcome.GAP
            return Outcome.UNCHANGED
        if epoch != self.epoch:
            return Outcome.GAP
        if revision <= self.revision:
            return Outcome.UNCHANGED
        if msg.base != self.revision:
            return Outcome.GAP
        for inst in msg.upsert:
            self.instances[inst.id] = inst
        for iid in msg.remove:
            self.instances.pop(iid, None)
        self._take_settings(msg.protect_threshold, msg.service_metadata)
        self.revision = revision
        return Outcome.APPLIED

    def would_be_emptied_by(self, delta: ServiceDelta) -> bool:
        """A delta that applies on top of this view and removes every instance in it."""
        if not (self.loaded and self.instances) or delta.upsert:
            return False
        if delta.epoch != self.epoch or delta.base != self.revision:
            return False
        return set(self.instances) <= set(delta.remove)

    def listing(self, healthy_only: bool = False) -> InstanceList:
        """Instances sorted by (ip, port, cluster); healthy_only keeps healthy+enabled."""
        items = sorted(self.instances.values(), key=lambda i: (i.ip, i.port, i.cluster))
        healthy = sum(1 for i in items if i.healthy)
        protected = protection_active(healthy, len(items), self.protect_threshold)
        if healthy_only and not protected:
            items = [i for i in items if i.healthy and i.enabled]
        return InstanceList(items, self.revision, self.epoch, protected, self.service_metadata,
                            self.from_disk)  # fmt: skip
