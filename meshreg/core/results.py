"""What the core answers: the typed result of every request it serves.

Theory of operation
-------------------
A ``Reply`` (core/effects) carries one of the results below, or None for a write that
returns nothing.  They are values, not wire shapes: the core says *what* it answers,
and meshreg/wire (``wire/result_maps``) says how that travels, key by key, in the map
docs/PROTOCOL.md documents.  So the core builds no reply dicts, and a change of the
wire format is a change in wire alone (its byte dumps are checked by
tests/wire/test_protocol_doc.py).

Results are frozen: made once per request and encoded once.  Two exceptions to "a dataclass all
the way down": a table of named counters (``requests``, ``errors``, ``rejected_quota``,
a member's ``counters``) is a mapping of names to counts, since that is what it is and
new names may appear; and the instances of an ``instances`` result are ``InstanceRow``
tuples, made and encoded fast (a list may hold thousands).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshreg.core.cluster_messages import DigestPage, ReconcileReply
from meshreg.model import InstanceId, ServiceKey

if TYPE_CHECKING:
    from meshreg.core.quotas import LimitsPolicy


# -- reads ---------------------------------------------------------------------------------
InstanceRow = tuple[str, int, str, float, bool, bool, Mapping[str, str]]
"""One instance of an ``instances`` result: (ip, port, cluster, weight, enabled, healthy,
metadata).  A plain tuple, not a dataclass: a list may hold thousands, and a tuple is
made in C (a slotted dataclass costs about twice as much per instance, measured)."""


@dataclass(frozen=True, slots=True)
class InstancesResult:
    """A service's instances at (epoch, revision), with its settings."""

    key: ServiceKey
    epoch: int
    revision: int
    protect_threshold: float
    protected: bool  # protection is on: the list holds unhealthy instances too
    service_metadata: Mapping[str, str]
    instances: tuple[InstanceRow, ...]  # ordered by (ip, port, cluster)
    # s the answering node has been up (None: not told): an empty list from a node that
    # has just (re)started may only mean its providers have not registered again yet
    uptime: float | None = None
    # the node caught up from peers up when it started (its table is the cluster's, not
    # only what was registered here since): a client trusts it however young (None: not
    # told; review24 F1: a consumer kept a deregistered list 15 s after its node restarted)
    synced: bool | None = None
    # s its table has collected registrations: since its start, or since the oldest start
    # of the peers it caught up from (None: not told, or a source did not tell).  Young
    # after a whole-cluster restart though ``synced`` (review33 F1)
    table_age: float | None = None


@dataclass(frozen=True, slots=True)
class RevisionsResult:
    """The entries of a ``revisions`` request whose view is stale here (their indices,
    ascending): pull those again."""

    epoch: int
    stale: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ServicesResult:
    """One page of a namespace's services."""

    namespace: str
    services: tuple[tuple[str, str], ...]  # (group, service), in order
    count: int  # services of the namespace (and group) on all pages together
    next_cursor: str | None  # None: the last page


@dataclass(frozen=True, slots=True)
class NamespacesResult:
    """One page of namespaces: (name, services, live data ids), by name."""

    namespaces: tuple[tuple[str, int, int], ...]
    next_after: str | None  # the ``after`` of the next page; None: the last page


@dataclass(frozen=True, slots=True)
class PingResult:
    epoch: int
    version: str
    address: str
    # a cluster member's (configured members it sees up, itself included; configured
    # members): whether it sees a majority (a client cut off from one moves to it)
    members: tuple[int, int] | None = None
    ready: bool = True  # False while the node catches up from its peers (registry)
    # not ready because these peers hold it out of the members (it restarted again and
    # again: DISTRO.md "A node that keeps restarting"), not because it is catching up
    held_by: tuple[str, ...] = ()
    # not ready because, back from a stall its peers noticed, it refuses registry reads
    # until a round with each peer (review56 F1: ping said ready meanwhile)
    resyncing: bool = False
    config_ready: bool | None = None  # the config center's ready gate (runtime's; None: none)
    # config_ready False and the wait does not end by itself: why (peers down; runtime's)
    config_waiting: str | None = None
    # why this node refuses config writes although it is ready: its disk (runtime's)
    config_writes_refused: str | None = None
    # s without a beat before it marks an instance unhealthy: a client that beats per
    # instance learns it here (a session's open says it too) and beats often enough
    unhealthy_after: float | None = None


# -- sessions and batches --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionOpened:
    session: str
    instances: int  # instances the node holds in it
    unhealthy_after: float  # s: the node's timings, for the client's renewal interval
    evict_after: float
    # [limits] write_rate_per_client (0: none): the time a client's re-registration needs
    write_rate: int = 0


@dataclass(frozen=True, slots=True)
class SessionRenewed:
    instances: int
    known: bool  # False: the node had not heard of the session (it opened it now)
    ready: bool = True  # False: a member still catching up (``known``/``instances`` may lag)
    # (configured members this node sees up, itself included; configured members) when
    # that is no majority: cut off from the others, the client had better renew elsewhere
    minority: tuple[int, int] | None = None
    # s, the node's ``unhealthy_after``: a client that opened its session before an
    # operator lowered it renews fast enough again (review27 F6: its instances flapped)
    unhealthy_after: float | None = None
    # asked for (``SessionRenew.listed``): the session's instances here, at most
    # HELD_LIST_MAX (``held_more``: there are more); None: not asked
    held: tuple[tuple[ServiceKey, InstanceId], ...] | None = None
    held_more: bool = False
    # the session's instance set here as one number (``SessionRecord.digest``): a client
    # holding as many but other instances repairs it (review78 F4); None: not told
    digest: int | None = None


@dataclass(frozen=True, slots=True)
class SessionClosed:
    deregistered: int  # instances removed with it


@dataclass(frozen=True, slots=True)
class Written:
    """A ``register`` or ``deregister`` applied: the version stamp it left (the
    instance's, or its removal's).  The client sends it back as ``after`` with its next
    write of the instance, so that write is stamped above it whatever the clocks of the
    nodes that stamp the two (review72 F1)."""

    stamp: int


@dataclass(frozen=True, slots=True)
class EntryRefused:
    """One ``register_batch`` entry that was refused (it changed nothing)."""

    code: int  # an ErrorCode (or, relayed from a newer owner, a code this node lacks)
    message: str


EntryResult = EntryRefused | Written | None
"""A ``register_batch`` entry's result: registered (``Written``: the stamp it left; None:
registered, the stamp not told, an older owner's answer) or refused."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The per-entry results of a ``register_batch``, in the request's order."""

    results: tuple[EntryResult, ...]


# -- monitoring ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InstanceCounts:
    total: int
    healthy: int
    unhealthy: int


@dataclass(frozen=True, slots=True)
class Timings:
    """The health rules' timings, s."""

    check_interval: float
    unhealthy_after: float
    evict_after: float


@dataclass(frozen=True, slots=True)
class PreservationStats:
    """Self-preservation (core/preservation), counts as of the last sweep."""

    enabled: bool
    state: str
    active: bool
    active_for: float | None  # s since it turned on (None: never on)
    evicting: bool
    silent: int
    total: int  # instances judged by the last sweep ("of")
    held: int
    threshold: float
    min_instances: int
    times_entered: int
    max_duration: float
    times_expired: int


@dataclass(frozen=True, slots=True)
class Usage:
    """What clients grew, against ``[limits]`` (core/quotas); running counts."""

    namespaces: int
    services: int
    empty_services: int
    instances: int
    metadata_bytes: int
    tombstones: int
    tombstones_dropped: int
    overrides: int = 0  # operator overrides in force (core/overrides)
    overrides_expired: int = 0  # cleared here: their instance stayed absent override_ttl
    overrides_cleared: int = 0  # cleared ones remembered CLEARED_TTL for the merge


@dataclass(frozen=True, slots=True)
class SessionStats:
    count: int
    instances: int
    renewals: int
    silent: int
    forgotten: int = 0  # empty sessions dropped (core/sessions, "Forgetting")
    renewals_per_second: float = 0.0  # over about the last RATE_WINDOW (core/stats)


@dataclass(frozen=True, slots=True)
class MemberStats:
    """What a cluster member adds to ``stats`` (core/distro)."""

    counters: Mapping[str, int]  # forwarded, replication_in, ... (names may be added)
    node_id: str
    ready: bool
    health_judgment: str
    disputed_views: int
    members: tuple[str, ...]
    clock_skewed: bool = False  # its clock is off a majority's: no reads, owns nothing
    clock_lead: float = 0.0  # s its clock runs ahead of the cluster's (< 0: behind; deadlines)


@dataclass(frozen=True, slots=True)
class StatsResult:
    """A node's ``stats``: the registry's, a member's (``member``), and what the
    runtime adds (``runtime``: security, sockets, config; reported as it keeps it)."""

    address: str
    version: str
    epoch: int
    uptime: float
    services: int
    instances: InstanceCounts
    requests: Mapping[str, int]
    beats_total: int
    beats_per_second: float
    errors: Mapping[str, int]
    errors_total: int
    notifications: int
    subscribers: int
    watched_services: int
    revision: int
    timings: Timings
    self_preservation: PreservationStats
    stalls: int
    # instances marked unhealthy or evicted within a stall's grace: silent for the timeout
    # plus unhealthy_after of the node's awake time (docs/DISTRO.md, "Its own stalls")
    judged_in_stall_grace: int
    # ... within a run of member graces (a peer flapping): judged only because a run of
    # graces is bounded (docs/DISTRO.md, "A run of graces")
    judged_in_member_grace: int
    late_writes: int  # writes refused past their client deadline (registry.apply)
    usage: Usage
    limits: LimitsPolicy
    rejected_quota: Mapping[str, int]
    sessions: SessionStats
    member: MemberStats | None = None
    runtime: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member of a ``cluster`` result, as the answering node sees it."""

    id: str  # "" for a configured peer not heard from yet
    address: str
    state: str  # "up", "catching up", "down", ...
    self: bool
    services: int  # services it is responsible for, and their instances
    instances: int
    lag: int  # deltas it announced that this node has not applied
    last_heard: float | None  # s ago (None: never)
    configured: bool = True  # False: not in this node's peer list (learned from a join)
    clock_offset: float | None = None  # its wall clock minus ours, s (None: not told)
    stream_silent: float | None = None  # s its replication stream has been silent while
    # its beacons arrive by request (None: the stream is heard)
    # the address it announces (its beacons'; the answering node's own): the name data
    # ids are hashed under, whatever the peer list's spelling (None: never heard)
    announced: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterResult:
    node: str
    ready: bool
    members: tuple[MemberRow, ...]  # this node first, then its peers by address
    runtime: Mapping[str, Any] | None = None  # the runtime's additions (config readiness)


Result = (
    InstancesResult
    | RevisionsResult
    | ServicesResult
    | NamespacesResult
    | PingResult
    | SessionOpened
    | SessionRenewed
    | SessionClosed
    | Written
    | BatchResult
    | StatsResult
    | ClusterResult
    | DigestPage
    | ReconcileReply
    | None
)
"""Every result a ``Reply`` carries (closed: wire/result_maps encodes each)."""
