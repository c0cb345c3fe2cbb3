"""Effects the core hands back to its caller (small frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshreg.model import InstanceId, ServiceKey


@dataclass(frozen=True, slots=True)
class InstanceView:
    """An immutable copy of an instance's visible fields (what watchers see)."""

    ip: str
    port: int
    cluster: str
    weight: float
    enabled: bool
    healthy: bool
    metadata: dict[str, str]
    version: int = field(default=0, compare=False)  # stamp of the last write (core/versions)
    alive: int = field(default=0, compare=False)  # stamp of the latest liveness evidence
    down: int = field(default=0, compare=False)  # the ``alive`` an unhealthy mark judged stale
    # the client session that keeps it alive (core/sessions); None: its own beats. Peers
    # only: never shown to watchers (a session id is its holder's capability)
    session: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ServiceChanged:
    """A visible change of one service, to publish to its watchers.

    ``base`` is the service's revision before the change (0 when the service
    did not exist); ``revision`` after it.  A subscriber whose revision equals
    ``base`` applies ``upserted``/``removed``; one behind it has a gap.
    """

    key: ServiceKey
    base: int
    revision: int
    upserted: tuple[InstanceView, ...]
    removed: tuple[InstanceId, ...]
    reason: str  # registered, deregistered, unhealthy, recovered, evicted, updated, replicated
    # parallel to removed: each removal's tombstone, (write stamp, alive stamp) (core/store)
    removed_versions: tuple[tuple[int, int], ...] = field(default=(), compare=False)
    protect_threshold: float = field(default=0.0, compare=False)  # the service's, after it
    settings_version: int = field(default=0, compare=False)  # stamp of that setting
    service_metadata: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class SyncAnnounced:
    """Tell a service's watchers its current revision (after a new subscription).

    Closes the subscribe/snapshot race of PUB/SUB: a watcher whose revision
    differs re-pulls the list.
    """

    key: ServiceKey
    revision: int


@dataclass(frozen=True, slots=True)
class StallDetected:
    """The node's own loop was stopped for ``late`` s (it judges nobody for ``grace`` s)."""

    late: float
    grace: float


@dataclass(frozen=True, slots=True)
class PeerDataRejected:
    """Data from a peer was rejected (nothing of what was rejected applied): log it.

    ``what``: ``delta``, ``reconcile``, ``reconcile reply`` or ``digests reply``
    (of a reconcile, only the services with a stamp too far ahead are rejected);
    ``reason`` names the service or field and what to check.  The core reports at most one per
    kind per ``REPORT_INTERVAL`` (core/distro); ``suppressed`` counts the others
    since the last report (every one is counted in ``stats``).
    """

    peer: str
    what: str
    reason: str
    suppressed: int = 0


Effect = ServiceChanged | SyncAnnounced | StallDetected | PeerDataRejected
