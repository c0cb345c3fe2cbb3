"""What a node tells its peers: the replication side of a registry node, as a component.

Theory of operation
-------------------
The registry node (core/registry) calls its outbox for every fact a peer must learn,
and never needs to know whether it has peers: a lone node's outbox has none
(``peers`` False) and drops everything.  A cluster member (core/distro) turns
``peers`` on and publishes through the same outbox what it learns from its peers
and passes on.

* ``changed(change)``: a visible change made here goes out at once as a delta
  numbered ``seq`` (node, epoch, seq: peers detect a gap and repair it).
* ``removed_absent``: a deregistration of an instance not held here still goes
  out as a tombstone, so copies elsewhere die.
* ``refreshed(key, record)``: new liveness evidence is invisible to watchers and
  frequent; it is batched per service until ``flush``, one delta per service.
* ``session_renewed(session)``: a client session's renewal, batched until
  ``flush`` into ``SessionBeats`` messages of at most ``MAX_SESSION_ENTRIES``,
  each also handed to ``push_sessions`` (a cluster member sends it to every peer
  over the request path as well: two paths, DISTRO.md "Sessions").

Everything becomes a ``Broadcast`` effect handed to ``emit``, in the order it was
made (the node's ``take_effects`` calls ``flush`` first), so the deltas keep their
place among the node's other effects.
"""

from __future__ import annotations

from collections.abc import Callable

from meshreg.core.cluster_messages import (
    MAX_SESSION_ENTRIES,
    ReplicatedDelta,
    ServicePayload,
    SessionBeats,
)
from meshreg.core.effects import Broadcast, Effect, ServiceChanged
from meshreg.core.overrides import WireOverride
from meshreg.core.sessions import SessionRecord
from meshreg.core.store import InstanceRecord, RegistryStore
from meshreg.model import InstanceId, ServiceKey


class Outbox:
    """The deltas, refreshes and session renewals this node publishes to its peers."""

    def __init__(
        self,
        node_id: str,
        epoch: int,
        store: RegistryStore,
        emit: Callable[[Effect], None],
        counters: dict[str, int] | None = None,
    ) -> None:
        """``emit``: queue an effect on the node; ``counters``: where
        ``replication_out`` (deltas published) is counted, for ``stats``."""
        self.node_id = node_id
        self.epoch = epoch
        self.store = store
        self.emit = emit
        self.counters = counters if counters is not None else {"replication_out": 0}
        self.peers = False  # a lone node tells nobody
        self.seq = 0  # of the last delta published
        self._refreshes: dict[ServiceKey, dict[InstanceId, InstanceRecord]] = {}
        self._sessions: dict[str, tuple[str, int]] = {}  # renewals to replicate
        # also sends each SessionBeats to the peers over the request path (core/distro)
        self.push_sessions: Callable[[SessionBeats], None] | None = None
        # a cluster member with peers that cannot reach it: every delta also goes there
        self.push_deltas: Callable[[ServicePayload], None] | None = None

    def changed(self, change: ServiceChanged) -> None:
        """A change made here (or passed on by the owner): publish it as it is."""
        if not self.peers:
            return
        removals = tuple(
            (iid, t_version, t_alive)
            for iid, (t_version, t_alive) in zip(
                change.removed, change.removed_versions, strict=True
            )
        )
        settings = (
            (change.protect_threshold, change.settings_version, change.service_metadata)
            if change.settings_version
            else None
        )
        self.publish(
            ServicePayload(
                change.key,
                change.upserted,
                removals,
                settings,
                change.overrides,
                change.removed_scopes,
            )
        )

    def overrides_changed(self, key: ServiceKey, entries: tuple[WireOverride, ...]) -> None:
        """Operator overrides of instances not held here changed (a clear, an expiry):
        nothing a watcher sees, but peers must learn them (core/overrides)."""
        if self.peers and entries:
            self.publish(ServicePayload(key, (), (), None, entries))

    def removed_absent(self, key: ServiceKey, iid: InstanceId, version: int) -> None:
        """A deregistration of an instance not held here: copies elsewhere must die."""
        if self.peers:
            self.publish(ServicePayload(key, (), ((iid, version, 0),), None))

    def refreshed(self, key: ServiceKey, rec: InstanceRecord) -> None:
        """A record's liveness evidence was refreshed: published at the next ``flush``."""
        if self.peers:
            self._refreshes.setdefault(key, {})[rec.id] = rec

    def session_renewed(self, sess: SessionRecord) -> None:
        """A client renewed a session here: published at the next ``flush``."""
        if self.peers:
            self._sessions[sess.id] = (sess.namespace, sess.alive)

    def publish(self, payload: ServicePayload) -> None:
        """One delta, the next in this node's sequence."""
        self.seq += 1
        self.counters["replication_out"] += 1
        self.emit(Broadcast(ReplicatedDelta(self.node_id, self.epoch, self.seq, payload)))
        if self.push_deltas is not None:
            self.push_deltas(payload)

    def flush(self) -> None:
        """The session renewals received since the last flush in one message (or a few),
        then the pending refreshes as one delta per service (of records still held)."""
        if self._sessions:
            beats = [(sid, ns, alive) for sid, (ns, alive) in self._sessions.items()]
            self._sessions = {}
            for start in range(0, len(beats), MAX_SESSION_ENTRIES):
                chunk = tuple(beats[start : start + MAX_SESSION_ENTRIES])
                message = SessionBeats(self.node_id, self.epoch, chunk)
                self.emit(Broadcast(message))
                if self.push_sessions is not None:
                    self.push_sessions(message)
        if self._refreshes:
            queued, self._refreshes = self._refreshes, {}
            for key, recs in queued.items():
                svc = self.store.get(key)
                live = [
                    r for r in recs.values() if svc is not None and svc.instances.get(r.id) is r
                ]
                if live:
                    self.publish(ServicePayload(key, tuple(r.view() for r in live), (), None))
