"""Everything the core hands back to its caller: one closed union, ``Effect``.

Theory of operation
-------------------
The core (``core/registry``, ``core/distro``) is sans-IO: inputs go in as method calls
(a validated request, a peer's message or reply, ``tick(now)``), and every output
comes back as one of the small frozen dataclasses below (raft's ``Ready``):

* ``handle(request, now)`` answers with exactly one :data:`Answer`: a ``Reply``
  (the result), a ``Rejected`` (a wire code; nothing changed), or a ``Forward``
  (relay it to the responsible node).  It never raises for a request it refuses.
  ``forward_failed(forward, now)`` answers a ``Forward`` the runtime could not
  deliver (or that timed out) with a ``Reply`` or ``Rejected``: the core decides
  whether to apply it here.
* ``take_effects()`` drains everything else the inputs caused, in the order they
  were made: publications to watchers (``ServiceChanged``, ``SyncAnnounced``),
  cluster traffic (``Broadcast``, ``PeerCall``) and news for the log
  (``StallDetected``, ``PeerDataRejected``, ``MemberChanged``, ``PeersNeverHeard``,
  ``SelfPreservation*``).

The union is closed: the runtime carries effects out with an exhaustive ``match``
ending in ``assert_never``, so a new effect that nobody carries out is a type error.
Effects are named as events (past tense) or as the command they ask for.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey, hot_value

if TYPE_CHECKING:
    from collections.abc import Sequence

    from meshreg.core.cluster_messages import Beacon, DigestSummary, ReplicatedDelta, SessionBeats
    from meshreg.core.requests import PeerRequest, Request
    from meshreg.core.results import EntryResult, Result


@hot_value  # frozen to mypy; made per instance of every change (meshreg/model)
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
    # the removals of ``removed`` that are of one session only: (id, session, base)
    removed_scopes: tuple[tuple[InstanceId, str, int], ...] = field(default=(), compare=False)
    protect_threshold: float = field(default=0.0, compare=False)  # the service's, after it
    settings_version: int = field(default=0, compare=False)  # stamp of that setting
    service_metadata: dict[str, str] = field(default_factory=dict, compare=False)
    # operator overrides of upserted instances (core/overrides): (id, weight, enabled,
    # version), None fields not overridden; watchers see them over the views' own values
    overrides: tuple[tuple[InstanceId, float | None, bool | None, int, int], ...] = field(
        default=(), compare=False
    )


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
    """The node's own loop was stopped: its tick came ``late`` s after the time it asked
    for (it judges nobody for ``grace`` s but instances silent for ``grace`` s more of its
    awake time: core/health ``silent_before``)."""

    late: float
    grace: float
    # s since its last turn before the stop: how long its peers may have gone without a
    # beacon from it (``late`` counts from the wake it asked for, up to a beacon interval
    # after that turn: a config plane judging its absence by ``late`` missed pauses just
    # past the peer timeout and served reads older than what was acknowledged meanwhile)
    silent_for: float = 0.0
    # the stall outlasted half of how long removals are remembered (core/registry
    # TOMBSTONE_TTL) on a node with peers: its table may hold instances removed meanwhile
    # whose tombstones are gone, and would bring them back on every node (review36 F3):
    # the node starts over, empty, and catches up from its peers as after a restart
    start_over: bool = False


@dataclass(frozen=True, slots=True)
class PeerDataRejected:
    """Data from a peer was rejected (nothing of what was rejected applied): log it.

    ``what``: ``delta``, ``reconcile``, ``reconcile reply`` or ``digests reply``
    (of a reconcile, only the services with a stamp too far ahead are rejected);
    ``reason`` names the service or field and what to check.  The core reports at most one per
    kind per ``REPORT_INTERVAL`` (core/distro); ``suppressed`` counts the others
    since the last report (every one is counted in ``stats``).  ``routine``: what a
    start or restart of a member makes (logged at INFO, not WARNING).
    """

    peer: str
    what: str
    reason: str
    suppressed: int = 0
    routine: bool = False


class MemberState(enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """A peer went up or down, or restarted (new epoch)."""

    node_id: str
    address: str
    state: MemberState
    restarted: bool = False
    left: bool = False  # down by its leave beacon (it stopped), not by silence
    # up again: it said it was leaving, yet beacons a peer timeout later (a forged leave
    # on a cluster without keys: review29 F3; before, it stayed down until it restarted)
    leave_revoked: bool = False
    # restarted after its previous incarnation said it was leaving (a planned restart:
    # SIGTERM, then a start); not counted towards a crash loop (review30 F3)
    after_leave: bool = False


@dataclass(frozen=True, slots=True)
class SelfPreservationStarted:
    """Most instances went silent at once: evictions are held (log loudly)."""

    silent: int
    total: int
    threshold: float
    min_instances: int


@dataclass(frozen=True, slots=True)
class SelfPreservationEnded:
    """Beats came back: the mode ended; still-silent instances are evicted later."""

    silent: int
    total: int
    lasted: float  # s in the mode
    evictions_resume_in: float  # s until held instances may be evicted


@dataclass(frozen=True, slots=True)
class SelfPreservationExpired:
    """The episode lasted ``self_preservation_max``: evictions resume now (log loudly)."""

    silent: int
    total: int
    lasted: float  # s in the mode
    held: int  # overdue instances that this sweep evicts


PreservationEvent = SelfPreservationStarted | SelfPreservationEnded | SelfPreservationExpired


# -- the answer to one request ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    """The request was served: send ``result`` back (core/results; wire encodes it)."""

    req_id: int
    result: Result = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request was refused with a wire code; nothing changed."""

    req_id: int
    code: ErrorCode
    message: str
    op: str | None = None
    unwritten: bool = False  # nothing was written (``error.written`` false on the wire)


@dataclass(frozen=True, slots=True)
class Forward:
    """Relay this write to the responsible node and its reply back.

    It carries what the core needs should the relay fail: hand it back with
    ``forward_failed(forward, now)`` (the core keeps no state per forward).
    ``received_at``: when the request reached this node; ``wait``: how long the runtime
    waits for the responsible node's reply before handing it back (the write's deadline
    bounds it: ``DistroNode.forward_wait``); ``copy_deadline``: the deadline the copy sent
    to the responsible node carries (wall clock; None: the write has none): the write's
    own, or the end of ``wait`` if earlier, so the owner refuses a copy it reads after
    this node gave up on it and applied the write itself (and answered the client).
    """

    node_id: str
    address: str
    request: Request  # a write (core/requests)
    received_at: float
    wait: float  # s
    copy_deadline: float | None = None


@dataclass(frozen=True, slots=True)
class SplitBatch:
    """A ``register_batch`` whose entries belong to several members: ``results`` holds
    (index, result) of the entries applied (or refused) here; each of ``parts`` is a
    ``Forward`` of a smaller ``RegisterBatch`` (one per responsible node, never one per
    instance) with the indices, in the client's batch, of its entries.  The runtime
    relays each part, hands one that fails back with ``forward_failed`` (the core
    applies it here), and answers the client once every entry has its result
    (``BatchJoin``)."""

    req_id: int
    size: int
    results: tuple[tuple[int, EntryResult], ...]
    parts: tuple[tuple[Forward, tuple[int, ...]], ...]


class BatchJoin:
    """The per-entry results of a split ``register_batch`` as its parts come back."""

    __slots__ = ("envelope", "req_id", "results", "outstanding")

    def __init__(self, envelope: Any, split: SplitBatch) -> None:
        self.envelope = envelope  # the client's, opaque here
        self.req_id = split.req_id
        self.results: list[EntryResult] = [None] * split.size
        for index, result in split.results:
            self.results[index] = result
        self.outstanding = len(split.parts)

    def fill(self, indices: tuple[int, ...], results: Sequence[EntryResult]) -> bool:
        """One part's results (parallel to ``indices``); True when every part is in."""
        for index, result in zip(indices, results, strict=True):
            self.results[index] = result
        self.outstanding -= 1
        return self.outstanding == 0


Answer = Reply | Rejected | Forward | SplitBatch


# -- cluster traffic ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Broadcast:
    """Publish a message on the replication channel."""

    message: Beacon | ReplicatedDelta | DigestSummary | SessionBeats


@dataclass(frozen=True, slots=True)
class PeerCall:
    """Send ``request`` (core/requests; its id is ``tag``, wire/peer encodes it) to a
    peer; answer with ``peer_reply``/``peer_failed``(tag)."""

    tag: int
    node_id: str
    address: str
    request: PeerRequest

    @property
    def op(self) -> str:
        return self.request.op


@dataclass(frozen=True, slots=True)
class PeerIntroduced:
    """A member that lists this node, which does not list it, introduced itself
    (``join``): subscribe to its replication stream (its beacons then bring it up like
    any peer) and warn the operator that the peer lists differ."""

    address: str
    by: str  # its id, as its join says


@dataclass(frozen=True, slots=True)
class PeerForgotten:
    """A learned member is dropped (``why``): unsubscribe from it, close its link."""

    address: str
    why: str


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Caught up, this node stays out of the members: the peers ``by`` hold it (it
    restarted again and again; core/distro "A node that keeps restarting")."""

    by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """A clock verdict changed: ``skewed`` True, this node's clock is ``offset`` s off
    the median of the ``of`` nodes it hears (itself included); False with a ``peer``:
    that peer's clock is ``offset`` s off ours (counted out); False alone: ours is back."""

    skewed: bool
    offset: float
    of: int
    peer: str = ""
    counted_out: bool = False  # (with ``peer``) a majority agrees with us: it is out


@dataclass(frozen=True, slots=True)
class PeerHeld:
    """A peer restarted ``restarts`` times within ``window`` s: held out of the members
    until it has stayed up ``hold`` s (its beacons' epoch unchanged)."""

    node_id: str
    address: str
    restarts: int
    window: float
    hold: float


@dataclass(frozen=True, slots=True)
class ReplicationStream:
    """A peer's replication stream (its PUB, port P+2) has been silent ``silent`` s while
    its beacons arrive over the request path (``lost`` True), or is heard again (False):
    a firewall or a flow dropping P+2 one way; its changes reach us by repair only."""

    node_id: str
    address: str
    lost: bool
    silent: float
    repair_failing: bool = False  # and our repair rounds with it fail: nothing reaches us


@dataclass(frozen=True, slots=True)
class RepairFailing:
    """Requests to a peer that is up failed ``failures`` times in a row (its P+3 does not
    answer this node: a firewall one way?), or succeed again (``failures`` 0).  ``what``:
    which requests ("repair rounds", or "beacon requests": sent every beacon interval,
    they find it even when no round is due: review15 F4)."""

    node_id: str
    address: str
    failures: int
    what: str = "repair rounds"


@dataclass(frozen=True, slots=True)
class PeerListing:
    """A configured peer's list came to name this node, or stopped naming it (its beacons'
    ``configured``): a node some configured peers do not list is their config learner
    (docs/CONFIG.md "A new node: learner")."""

    address: str
    lists_us: bool


@dataclass(frozen=True, slots=True)
class PeersNeverHeard:
    """Configured peers this node has not heard from once since it started (a typo in
    the peer list, a firewall): ``addresses`` (their listed ``host:port``), ``waited`` s
    after the start; reported again every ``again_in`` s while any stays silent."""

    addresses: tuple[str, ...]
    waited: float
    again_in: float


@dataclass(frozen=True, slots=True)
class PeerHeardAtLast:
    """A configured peer reported as never heard (``PeersNeverHeard``) answered at last,
    ``waited`` s after this node started."""

    node_id: str
    address: str
    waited: float


@dataclass(frozen=True, slots=True)
class PaceAdvised:
    """What this node tells its clients to renew or beat within changed (a member heard
    up judges by a lower ``unhealthy_after`` than ours: a rolling restart that lowered
    it, or one node set apart): ``advised`` s now, ``own`` ours; ``member`` the one whose
    value it is ("" when back to our own), ``told`` its value (below ``advised`` when
    bounded by ``own / ADVISE_FLOOR``)."""

    advised: float
    own: float
    member: str = ""
    told: float = 0.0


Effect = (
    Reply
    | Rejected
    | Forward
    | Broadcast
    | PeerCall
    | ServiceChanged
    | SyncAnnounced
    | StallDetected
    | PeerDataRejected
    | MemberChanged
    | PeerIntroduced
    | PeerForgotten
    | PeerListing
    | PeersNeverHeard
    | PeerHeardAtLast
    | ReplicationStream
    | RepairFailing
    | HeldOut
    | PeerHeld
    | ClockSkew
    | PaceAdvised
    | SelfPreservationStarted
    | SelfPreservationEnded
    | SelfPreservationExpired
)
"""Every output of the core (closed: carry each one out, see the module docstring)."""
