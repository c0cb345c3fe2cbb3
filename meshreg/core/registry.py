"""The single node's state machine: requests in, replies and effects out.

Theory of operation
-------------------
``handle(request, now)`` applies one validated request and answers one way:
a ``Reply`` with its typed result (core/results) or a ``Rejected`` with a
wire code (core/effects).  A rejected request never changes state.  Visible
changes, and revision syncs for new subscribers, queue up as effects; the
caller drains them with ``take_effects()`` after each batch and publishes
them (raft's ``Ready``).
``tick(now)`` runs the health sweep when due and returns when to wake next;
the sweep consults the node's self-preservation state (``core/preservation``),
whose transitions are queued as effects too, ahead of the sweep's changes.

The heartbeat is the hot path: one dict lookup to the service, one to the
instance, one float store; no allocation unless it heals an instance or
refreshes its liveness evidence (a record whose ``alive`` stamp is below
``alive_floor``: see core/distro, "Liveness evidence").

A node suspects itself first.  ``tick`` knows when it asked to be called
again; a call much later than that means the node itself was stopped (a
SIGSTOP, a VM freeze, a swap storm): beats and beacons may be waiting unread
in its sockets, or have gone to its peers.  It remembers the stall (from its
last loop turn to now; ``StallDetected`` is queued for the log) and judges
nobody for a grace period (``unhealthy_after``, ``evict_after`` for
evictions) but an instance silent for the timeout plus ``unhealthy_after``
of its awake time, the stalls' seconds not counted
(``health.silent_before``): a fresh grace after every stall, with no such
bound, let a node stalling once every ``unhealthy_after`` judge nobody, ever
(review F-starve).  For a short window after it, a beat counts as evidence
of life when the stall began, since it may have waited the stall out in the
socket (and so does a beat applied late, ``received_at``: it counts for its
time).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import replace
from operator import itemgetter
from typing import Any, Protocol

import xxhash

from meshreg import __version__
from meshreg.core import health
from meshreg.core.effects import (
    Answer,
    Effect,
    Rejected,
    Reply,
    ServiceChanged,
    StallDetected,
    SyncAnnounced,
)
from meshreg.core.health import HealthPolicy
from meshreg.core.instance_views import MIN_ROWS, InstanceViews
from meshreg.core.outbox import Outbox
from meshreg.core.overrides import CLEARED_TTL, MAX_OVERRIDES, MAX_OVERRIDES_PER_NAMESPACE
from meshreg.core.preservation import SelfPreservation
from meshreg.core.quotas import LimitsPolicy, QuotaExceeded, Quotas
from meshreg.core.requests import (
    SERVICES_SCAN_LIMIT,
    Beat,
    CheckRevisions,
    DeregisterInstance,
    EntryRejected,
    GetStats,
    ListNamespaces,
    ListServices,
    Ping,
    QueryInstances,
    RegisterBatch,
    RegisterInstance,
    Request,
    SessionClose,
    SessionOpen,
    SessionRenew,
    SetService,
    UpdateInstance,
    services_cursor,
)
from meshreg.core.results import (
    BatchResult,
    EntryRefused,
    EntryResult,
    InstanceCounts,
    InstanceRow,
    InstancesResult,
    MemberStats,
    NamespacesResult,
    PingResult,
    Result,
    RevisionsResult,
    ServicesResult,
    SessionClosed,
    SessionOpened,
    SessionRenewed,
    SessionStats,
    StatsResult,
    Timings,
    Usage,
    Written,
)
from meshreg.core.sessions import SessionRecord, session_label
from meshreg.core.stats import NodeStats
from meshreg.core.store import InstanceRecord, RegistryStore, ServiceRecord
from meshreg.core.subscriber_counts import SubscriberCounts
from meshreg.core.versions import TAG_BITS, HybridClock, highest_stamp_at, stamp_limit
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.model import InstanceId, ServiceKey, protection_active
from meshreg.text import printable

# s above the fastest member's clock up to which a write's ``after`` is observed: the
# error of the beacons' clock samples, and a lead under the measuring's dead band
AFTER_MARGIN = 1.0
_BY_ID = itemgetter(0, 1, 2)  # an instance row's (ip, port, cluster)
STALE_WINDOW = 1.0  # s after a stall during which a beat may be one that waited it out
STALE_FLOOR = 2**63  # alive_floor meanwhile: above every stamp, so no beat takes the fast path
# stalls of its own a node remembers, to bound a stall's grace in awake time
# (health.silent_before); an older one counts as awake time: 64 stalls within one
# evict_after + unhealthy_after is a node hardly ever awake, and judging it by what it saw
# then errs on the side of judging
STALLS_KEPT = 64
ELSEWHERE_SCAN = 10_000  # instances a NOT_FOUND update looks through for another cluster
HELD_SWEEP_RETRY = 0.25  # s; a sweep the node may not run yet (resyncing) is asked again then
EVIDENCE_MARGIN_US = 1000  # µs by which our own evidence must beat a judgment's basis
TOMBSTONE_TTL = 600.0  # s; removed instances are remembered this long (stale copies stay dead)
# a stall this share of TOMBSTONE_TTL or longer makes a node with peers start over (the
# removals made early in it may be forgotten by the time it ends: ``StallDetected``)
START_OVER_SHARE = 0.5
HELD_LIST_MAX = 1000  # instances a listed session renewal names (``SessionRenewed.held``)


class Role(Protocol):
    """What the registry asks of what surrounds it: which services and sessions it
    judges, when a beat refreshes liveness evidence, what a stall of its own means.
    ``LoneRole`` answers for a node alone; a cluster member (core/distro) answers from
    its member view.  These are the registry's only questions: it holds no cluster
    state, and the member holds no registry state (composition, not overrides)."""

    def sweep_scope(self) -> Callable[[ServiceKey], bool] | None:
        """The services a sweep judges (None: all)."""
        ...

    def judges_sessions(self) -> bool:
        """Whether a sweep starting now judges sessions."""
        ...

    def may_judge(self, now: float) -> tuple[bool, bool]:
        """(may mark unhealthy, may evict) in a sweep starting ``now``."""
        ...

    def evidence_floor(self, key: ServiceKey, now: float) -> int:
        """Liveness evidence older than this is refreshed by a beat of ``key`` served
        ``now``, besides what is older than ``alive_floor`` (0: nothing more)."""
        ...

    def view_floor(self) -> int:
        """``alive_floor`` outside a stale window: evidence from before this stamp is
        refreshed by the next beat (0: never)."""
        ...

    def evidence_lag(self) -> float:
        """s a sweep starting now adds to both timeouts: how long the evidence it judges
        may lag behind beats elsewhere beyond what the refresh rules allow for."""
        ...

    def stall_after(self) -> float:
        """s a tick may come later than asked before the node suspects it was stopped."""
        ...

    def stalled(self, now: float, silent_for: float) -> None:
        """The node found it was stopped (``check_stall``) after ``silent_for`` s without
        a turn: what else that means."""
        ...

    def has_peers(self) -> bool:
        """Whether there are peers to catch up from (``StallDetected.start_over``)."""
        ...


class LoneRole:
    """The ``Role`` of a node alone: it judges every service and session, and never
    refreshes evidence (nobody to tell)."""

    def __init__(self, policy: HealthPolicy) -> None:
        self.policy = policy

    def sweep_scope(self) -> Callable[[ServiceKey], bool] | None:
        return None

    def judges_sessions(self) -> bool:
        return True

    def may_judge(self, now: float) -> tuple[bool, bool]:
        return True, True

    def evidence_floor(self, key: ServiceKey, now: float) -> int:
        return 0

    def view_floor(self) -> int:
        return 0

    def evidence_lag(self) -> float:
        return 0.0

    def stall_after(self) -> float:
        return self.policy.unhealthy_after / 3

    def stalled(self, now: float, silent_for: float) -> None:
        pass

    def has_peers(self) -> bool:
        return False


class RegistryNode:
    """Registry state, health timers and request handling of one node.

    Alone it is the whole node; in a cluster a ``DistroNode`` owns one and answers its
    ``Role`` questions (core/distro)."""

    def __init__(
        self,
        policy: HealthPolicy,
        epoch: int,
        now: float,
        address: str = "",
        node_id: str = "",
        wall_offset: float = 0.0,
        detect_stalls: bool = True,
        limits: LimitsPolicy | None = None,
        role: Role | None = None,
    ) -> None:
        """``detect_stalls`` False: a tick far later than asked is taken as it comes (for
        tests that move a fake clock in leaps, as if the node had slept meanwhile).
        ``limits``: the quotas on client writes (core/quotas; None: the defaults).
        ``role``: what surrounds the registry (None: ``LoneRole``, a node alone)."""
        self.policy = policy
        self.role: Role = role if role is not None else LoneRole(policy)
        self.limits = limits if limits is not None else LimitsPolicy()
        self.quotas = Quotas(self.limits)
        self.detect_stalls = detect_stalls
        self.hlc = HybridClock(node_id)
        self.wall_offset = wall_offset  # wall clock = now + offset (skew in simulations)
        # s this node's wall clock runs ahead of its peers' (core/distro ``_check_clock``):
        # deadlines are judged by the cluster's clock, not a clock that runs ahead
        self.clock_lead = 0.0
        # s above this node's wall clock up to which a client's ``after`` is observed: how
        # far the fastest member's clock runs ahead of ours (core/distro ``_clock_lead``)
        # plus AFTER_MARGIN; a client cannot drag the node's clock further than a peer's
        self.after_ahead = AFTER_MARGIN
        # the key of the session ids this node chooses (``_new_session_id``): set by the
        # runtime from the OS's randomness (the core draws none: it is sans-IO)
        self.session_secret = b""
        # caught up from peers up at the start (core/distro), so its table is the cluster's
        self.synced = False
        # since when (our clock) the table has collected registrations: None since this
        # node's start; core/distro moves it back to the oldest start among the peers it
        # caught up from (-inf: one of them did not tell, an older node).  Reads say its
        # age (``table_age``): after a whole-cluster restart every table is young
        self.table_since: float | None = None
        # A beat for a record whose liveness evidence is older than this stamp refreshes it
        # (and the refresh is replicated); 0: never (a lone node has nobody to tell).
        self.alive_floor = 0
        # Every instance counts as beating at this time at the latest: cut off before it
        # (every peer down, a member coming back: core/distro), we cannot tell who was silent.
        # Set by ``start_grace``; a run of graces is bounded (core/health ``grace_threshold``).
        self.watching_since = -math.inf
        self.grace_run_began = -math.inf  # the first grace of the current run (grace_start)
        self.judged_in_member_grace = 0  # instances judged that a lone grace would have held
        self.wake_at = math.inf  # when the last tick asked to be called again (none yet)
        self.last_turn = now  # the loop's last turn (check_stall): a stall began after it
        # our own stalls, (stopped, resumed), oldest first: the last one's grace, and the
        # awake time that bounds it (health.silent_before)
        self.own_stalls: deque[tuple[float, float]] = deque(maxlen=STALLS_KEPT)
        self.resumed_at = -math.inf  # when the last stall was noticed (its grace began)
        self.judged_in_stall_grace = 0  # instances judged within a stall's grace (bound)
        # Right after a stall, requests that waited in the socket are served: a beat then
        # proves life when the stall began, not now (no heal, no refresh, that last beat).
        self._stall_began = -math.inf
        self._stale_until = -math.inf
        self.stalls = 0
        self.late_writes = 0  # writes refused past their deadline (``_past_deadline``)
        self.epoch = epoch  # this incarnation; watchers re-pull when it changes
        self.address = address
        self.store = RegistryStore(self.limits.max_tombstones)
        self.stats = NodeStats(now)
        self.subscriptions = SubscriberCounts()
        self.views = InstanceViews()  # large services' rows between reads (review52 F3)
        self.preservation = SelfPreservation(policy)
        self.next_check_at = now + policy.check_interval
        self.next_session_check = now + health.session_check_interval(policy)
        self._sweep: health.SweepPass | None = None  # a health check under way
        self._sessions_opened = 0  # ids chosen by this node (with node id and epoch: unique)
        self.session_renewals = 0  # renewals received from clients (stats)
        # the least unhealthy_after of the peers heard up (core/distro; None: none told)
        self.least_unhealthy_after: float | None = None
        self.silent_sessions = 0  # sessions found silent by the last sweep (stats)
        self._effects: list[Effect] = []  # drained by take_effects()
        # The fast beat's gate (core/distro keeps it): None, every service is judged here
        # (a lone node); False, none (catching up); else the owner cache, whose entry for
        # the service must name this node (``fast_self``).  Data, not a method: one call
        # less per beat.
        self.fast_gate: dict[ServiceKey, str] | bool | None = None
        self.fast_self = node_id
        # what peers must learn (core/outbox): a lone node has none, so it tells nobody
        self.outbox = Outbox(node_id, epoch, self.store, self.queue)

    # -- requests -------------------------------------------------------------
    def handle(
        self, req: Request, now: float, forwarded: bool = False, client: Hashable | None = None
    ) -> Answer:
        """Answer one request: a ``Reply``, or a ``Rejected`` that changed nothing (and,
        in a cluster, a ``Forward``: see core/distro).  Never raises for a request it
        refuses; the refusal is counted in ``stats``.  ``forwarded``: another node
        relayed it here (a lone node applies everything anyway).  ``client``: who sent
        it, for its share of the sessions (core/sessions, "Shares"): a key's name, or
        a connection's routing id (bytes); None: nobody's share (a peer)."""
        try:
            return Reply(req.req_id, self.apply(req, now, now, client))
        except RequestRejected as exc:
            return self.refused(exc)

    def refused(self, exc: RequestRejected) -> Rejected:
        self.stats.count_error(exc.code)
        return Rejected(exc.req_id, exc.code, exc.message, exc.op, exc.unwritten)

    def apply(
        self, req: Any, now: float, received_at: float, client: Hashable | None = None
    ) -> Result:
        """Apply one request here; return its result or raise RequestRejected.

        ``received_at``: when the request reached this node, earlier than ``now`` for a
        forward that failed and is applied here after all: a beat is evidence of life
        then, not now.  ``client``: as in ``handle``."""
        requests = self.stats.requests
        op = req.op
        requests[op] = requests.get(op, 0) + 1
        if type(req) is Beat:
            self._beat(req, now, received_at)
            return None
        if type(req) is RegisterInstance:
            if req.deadline is not None and now + self.wall_offset - self.clock_lead > req.deadline:
                self._past_deadline(req, now)
            exceeded = self.quotas.check_register(self.store, req.key, req.instance, req.metadata)
            if exceeded is not None:
                raise _over_quota(exceeded, req)
            if req.session is not None:  # a session it creates counts in the client's share
                self._session_for(req, req.session, req.key.namespace, now, True, client)
            restamp = False
            if req.after is not None:
                self._observe_after(req.after, now)
                # the client's previous write of it is newer than what is held here (its
                # deregistration, not here yet): a repeat must be a write too, stamped
                # above it, or that removal wins when it arrives (review74 F3)
                held = self.store.services.get(req.key)
                rec = held.instances.get(req.instance) if held is not None else None
                restamp = rec is not None and rec.version < req.after  # (equal: this is
                # that write, a redo of it: nothing newer to outrank, no write, as before)
            version = self.stamp(now)
            change = self.store.register(
                req.key,
                req.instance,
                req.weight,
                req.enabled,
                req.metadata,
                now,
                version,
                req.session,
                restamp,
            )
            self.emit(change)
            svc = self.store.services.get(req.key)
            rec = svc.instances.get(req.instance) if svc is not None else None
            return Written(rec.version if rec is not None else version)  # (a repeat: as it was)
        if type(req) is RegisterBatch:
            return BatchResult(self.register_entries(req.entries, now, client))
        if type(req) is SessionRenew:
            sess = self._session_for(req, req.session, req.namespace, now, create=False)
            known = sess is not None
            if sess is None:  # not (yet) here: a renewal opens it (the client holds the id)
                sess = self._session_for(req, req.session, req.namespace, now, True, client)
            self.renew_session(req.session, req.namespace, now, now)
            renewed = SessionRenewed(
                sess.count, known, unhealthy_after=self.advised_unhealthy(), digest=sess.digest
            )
            return renewed if not req.listed else _with_held(renewed, sess)
        if type(req) is SessionOpen:
            sid = req.session if req.session is not None else self._new_session_id()
            sess = self._session_for(req, sid, req.namespace, now, True, client)
            self.renew_session(sid, req.namespace, now, now)
            return SessionOpened(
                sid,
                sess.count,
                self.advised_unhealthy(),
                self.policy.evict_after,
                self.limits.write_rate_per_client,
            )
        if type(req) is SessionClose:
            if req.deadline is not None and now + self.wall_offset - self.clock_lead > req.deadline:
                self._past_deadline(req, now)  # (review20 F1: it undid a newer register)
            sess = self._session_for(req, req.session, req.namespace, now, create=False)
            return SessionClosed(0 if sess is None else self._close_session(sess, now))
        if type(req) is DeregisterInstance:
            if req.deadline is not None and now + self.wall_offset - self.clock_lead > req.deadline:
                self._past_deadline(req, now)
            if req.after is not None:
                self._observe_after(req.after, now)
            version = self.stamp(now)
            change = self.store.deregister(req.key, req.instance, version, now)
            if change is None and self.store.remember_removal(req.key, req.instance, version, now):
                # Not here (evicted, or not merged yet): copies elsewhere must still die.
                self.outbox.removed_absent(req.key, req.instance, version)
            self.emit(change)
            return Written(version)
        if type(req) is SetService:
            if req.deadline is not None and now + self.wall_offset - self.clock_lead > req.deadline:
                self._past_deadline(req, now)  # (review20 F2: it undid a later setting)
            exceeded = self.quotas.check_service_set(self.store, req.key, req.metadata)
            if exceeded is not None:
                raise _over_quota(exceeded, req)
            change = self.store.set_service(
                req.key, req.protect_threshold, req.metadata, self.stamp(now)
            )
            self.emit(change)
            return None
        if type(req) is UpdateInstance:
            if req.deadline is not None and now + self.wall_offset - self.clock_lead > req.deadline:
                self._past_deadline(req, now)
            self._update(req, now)
            return None
        if type(req) is QueryInstances:
            return self.instances_result(req.key, req.healthy_only, now)
        if type(req) is CheckRevisions:
            return self.revisions_result(req)
        if type(req) is ListServices:
            return self.services_result(req)
        if type(req) is ListNamespaces:
            return self.namespaces_result(req)
        if type(req) is GetStats:
            return self.stats_result(now)
        if type(req) is Ping:
            return PingResult(
                self.epoch, __version__, self.address, unhealthy_after=self.advised_unhealthy()
            )
        raise RequestRejected(ErrorCode.UNKNOWN_OP, f"unhandled op {op!r}", req.req_id)

    def _update(self, req: UpdateInstance, now: float) -> None:
        """An operator's override of an instance, or its clear (core/overrides)."""
        overrides = self.store.overrides
        held = overrides.get(req.key, req.instance)
        if held is None and not req.clear and len(overrides) >= MAX_OVERRIDES:
            raise RequestRejected(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"update: node {self.address} holds {len(overrides)} operator overrides "
                f"({overrides.active} in force, the others cleared in the last "
                f"{CLEARED_TTL:g} s), the most it takes ({MAX_OVERRIDES}): clear some "
                f"(instance-set --clear; their room comes back {CLEARED_TTL:g} s later) before "
                f"overriding {req.instance} of {req.key}",
                req.req_id,
                "update",
            )
        in_ns = overrides.by_namespace.get(req.key.namespace, 0)
        if held is None and not req.clear and in_ns >= MAX_OVERRIDES_PER_NAMESPACE:
            raise RequestRejected(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"update: namespace {req.key.namespace!r} holds {in_ns} operator overrides on "
                f"node {self.address}, the most one namespace takes "
                f"({MAX_OVERRIDES_PER_NAMESPACE}, a quarter of the node's {MAX_OVERRIDES}): "
                f"clear some of it (instance-set --clear) before overriding {req.instance} of "
                f"{req.key}",
                req.req_id,
                "update",
            )
        try:
            change = self.store.update(
                req.key,
                req.instance,
                req.weight,
                req.enabled,
                self.stamp(now),
                now,
                req.clear,
            )
        except KeyError:
            what = "is not registered" + (" and has no override" if req.clear else "")
            raise RequestRejected(
                ErrorCode.NOT_FOUND,
                f"update: instance {req.instance.ip}:{req.instance.port} (cluster "
                f"{req.instance.cluster}) of service {req.key} {what}"
                + self._elsewhere(req.key, req.instance),
                req.req_id,
                "update",
            ) from None
        if change is None and overrides.get(req.key, req.instance) is not held:
            # an absent instance's override cleared: nothing a watcher sees; peers learn it
            self.outbox.overrides_changed(req.key, overrides.entries(req.key, (req.instance,)))
        self.emit(change)

    def _elsewhere(self, key: ServiceKey, instance: InstanceId) -> str:
        """Where an instance not found is registered under another cluster (an instance's
        identity includes its cluster: review82 F1 said "not registered" of one in C1)."""
        svc = self.store.services.get(key)
        ids = svc.instances if svc is not None else ()
        others = sorted(  # (bounded: an error path a writer may repeat)
            iid.cluster
            for iid in itertools.islice(ids, ELSEWHERE_SCAN)
            if iid.ip == instance.ip and iid.port == instance.port
        )
        if others:
            return (
                f"; it is registered in cluster {', '.join(others)}: name that cluster "
                "(meshreg instance-set --cluster; the client's cluster=)"
            )
        return "; check the address, the namespace and group, and the cluster (--cluster)"

    def register_entries(
        self,
        entries: tuple[RegisterInstance | EntryRejected, ...],
        now: float,
        client: Hashable | None = None,
    ) -> tuple[EntryResult, ...]:
        """Apply a ``register_batch``'s entries here, one by one: each result is a
        ``Written`` (registered: the stamp it left) or an ``EntryRefused`` (by the wire
        checks or here; that entry changed nothing, the others still apply).

        Each entry is applied as a single ``register`` is (checks, quota, session), but
        the visible changes are coalesced per service (core/store, "Batches"): one
        revision, one notification and one replicated delta per service and batch."""
        results: list[EntryResult] = []
        append, apply, count_error = results.append, self.apply, self.stats.count_error
        store = self.store
        store.hold_changes()
        try:
            for entry in entries:
                if type(entry) is EntryRejected:
                    count_error(entry.code)
                    append(EntryRefused(entry.code, entry.message))
                    continue
                try:
                    written = apply(entry, now, now, client)  # (Written: the stamp it left)
                    append(written if type(written) is Written else None)
                except RequestRejected as exc:
                    count_error(exc.code)
                    append(EntryRefused(exc.code, exc.message))
        finally:
            for change in store.release_changes():
                self.emit(change)
        return tuple(results)

    def fast_beat(self, key: tuple[str, str, str], iid: tuple[str, int, str], now: float) -> bool:
        """Renew a registered, healthy instance: the whole effect of most beats.

        The heartbeat hot path: ``renew``'s common case inlined (one call per beat),
        with the plain tuples of ``beat_fields``; taken only where ``renew`` would do
        nothing more than note the beat (the floor and health checks below).  False
        (nothing done) for anything else - unknown, unhealthy - which the
        caller then hands to ``handle`` for the full path and its answer; and for a
        service another member judges, or while catching up (``fast_gate``).
        """
        gate = self.fast_gate
        if gate is not None and (gate is False or gate.get(key) != self.fast_self):  # type: ignore[union-attr, call-overload]
            return False
        svc = self.store.services.get(key)  # type: ignore[call-overload]
        if svc is None:
            return False
        rec = svc.instances.get(iid)
        if rec is None or not rec.healthy or rec.alive < self.alive_floor:
            return False
        rec.last_beat = now
        stats = self.stats
        stats.beats += 1
        requests = stats.requests
        requests["beat"] = requests.get("beat", 0) + 1
        return True

    # -- sessions (core/sessions) ------------------------------------------------------
    def _session_for(
        self,
        req: Any,
        sid: str,
        namespace: str,
        now: float,
        create: bool = True,
        client: Hashable | None = None,
    ) -> SessionRecord:
        """The session a request names, checked against its namespace and, when it is new
        here and ``create``, against ``client``'s share (core/sessions, "Shares"; None:
        nobody's) and ``max_sessions`` (None only when not ``create``)."""
        sessions = self.store.sessions
        sess = sessions.get(sid)
        if sess is not None and sess.namespace != namespace:
            raise RequestRejected(
                ErrorCode.NOT_FOUND if req.op != "register" else ErrorCode.INVALID_ARGUMENT,
                f"{req.op}: session {session_label(sid)} belongs to another namespace than "
                f"{namespace!r}; a session holds instances of one namespace: open one per "
                "namespace",
                req.req_id,
                req.op,
            )
        if sess is None and create:
            if client is not None:
                self._check_share(req, namespace, sessions.share_of(client), client)
            if len(sessions) >= self.limits.max_sessions:
                self.quotas.rejected["max_sessions"] = (
                    self.quotas.rejected.get("max_sessions", 0) + 1
                )
                raise RequestRejected(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"{req.op}: this node holds {len(sessions)} sessions, its limit "
                    f"([limits] max_sessions = {self.limits.max_sessions}); close sessions "
                    "no longer used, use one session per client process, or raise the limit",
                    req.req_id,
                    req.op,
                )
            sess = sessions.ensure(sid, namespace, now, client)
        return sess  # type: ignore[return-value]

    def charge_session(
        self, req: Any, sid: str, namespace: str, now: float, client: Hashable
    ) -> None:
        """A write another node will apply names session ``sid``: if it is new here, it
        is made here in ``client``'s share (RequestRejected over the share or the table)."""
        self._session_for(req, sid, namespace, now, True, client)

    def _check_share(self, req: Any, namespace: str, held: int, client: Hashable) -> None:
        """Refuse a new session over ``client``'s share (nothing changes; counted)."""
        share = self.limits.sessions_per_client
        if held < share:
            return
        rejected = self.quotas.rejected
        rejected["max_sessions_per_client"] = rejected.get("max_sessions_per_client", 0) + 1
        who = (
            f"connection {client.hex()} (a node without client keys counts per connection)"
            if isinstance(client, bytes)
            else f"client {client!r}"
        )
        derived = "" if self.limits.max_sessions_per_client else ", max_sessions // 16"
        raise RequestRejected(
            ErrorCode.RESOURCE_EXHAUSTED,
            f"{req.op} (namespace {namespace!r}): quota reached: {who} holds {held} "
            f"sessions opened through this node ([limits] max_sessions_per_client = "
            f"{share}{derived}); a client process needs one session per "
            "namespace: reuse it, close sessions no longer used (session_close), or raise "
            "[limits] max_sessions_per_client in the node config; meanwhile instances can "
            "be kept alive with per-instance beats",
            req.req_id,
            req.op,
        )

    def _new_session_id(self) -> str:
        """A session id for a client that lets the node choose: 128 bits of a keyed hash
        (BLAKE2b) of a counter under ``session_secret``, which the runtime draws from the
        OS at start.  The id is the capability to renew and close the session, so it must
        not be guessable: it was a plain hash of the node's address, node id, epoch and
        the counter, all of which any client reads from ``ping`` and ``cluster``, and a key
        allowed to write one service computed another app's id and closed its session
        (review23 F7).  Without a secret (a test's node): address, epoch and counter."""
        self._sessions_opened += 1
        count = self._sessions_opened.to_bytes(8, "big")
        if self.session_secret:
            return hashlib.blake2b(count, key=self.session_secret, digest_size=16).hexdigest()
        seed = f"{self.address}|{self.hlc.tag}|{self.epoch}|{self._sessions_opened}"
        return xxhash.xxh3_128_hexdigest(seed.encode())

    def _heal_session(self, sess: SessionRecord, now: float) -> None:
        """A renewal came: heal the session's unhealthy instances this node judges (their
        judges elsewhere heal theirs when the renewal reaches them)."""
        if not sess.suspect:
            return
        judged = self.role.sweep_scope()
        left = False
        for key, ids in list(sess.instances.items()):
            svc = self.store.services.get(key)
            if svc is None:
                continue
            sick = [i for i in ids if (r := svc.instances.get(i)) is not None and not r.healthy]
            if not sick:
                continue
            if judged is not None and not judged(key):
                left = True
                continue
            self.emit(self.store.set_health(key, sick, True, self.stamp(now)))
        sess.suspect = left

    def _close_session(self, sess: SessionRecord, now: float) -> int:
        """Deregister every instance of a session (a provider's shutdown) and forget it.
        Each removal is of the session's copy only (core/store ``_written_before``): this
        node's table may be stale (just back from a stall, or across a partition), and a
        fresh stamp must not remove a registration of the same address by a new process."""
        removed = 0
        for key, ids in list(sess.instances.items()):
            version = self.stamp(now)
            change = self.store.deregister_all(key, list(ids), version, now, scoped=True)
            if change is not None:
                removed += len(change.removed)
            self.emit(change)
        self.store.sessions.drop(sess.id)
        return removed

    def check_session_access(
        self,
        sid: str,
        namespace: str,
        generation: int,
        allowed: Callable[[ServiceKey], bool],
        now: float,
    ) -> int:
        """A renewal of session ``sid`` by its client, whose access (the runtime's ACL) is
        at ``generation``: once per generation, deregister (here, replicated as any write)
        each instance of the session in a service the client may no longer register in
        (``allowed`` False).  A renewal needs write on some service of the namespace only,
        so it kept every instance of the session alive after an ACL reload narrowed its
        client's access (review17 F8), also where the session was renewed after a
        fail-over or a restart, or under a renamed ACL entry (review18 F1, F2).  How many
        were removed.  A renewal naming the session under another ``namespace`` is refused
        (NOT_FOUND) and checks nothing: it deregistered the session's instances with the
        sender's rights, a key of another namespace (review23 F2)."""
        sess = self.store.sessions.get(sid)
        if sess is None or sess.namespace != namespace or sess.access_checked == generation:
            return 0
        sess.access_checked = generation
        removed = 0
        for key, ids in list(sess.instances.items()):
            if allowed(key):
                continue
            change = self.store.deregister_all(key, list(ids), self.stamp(now), now, scoped=True)
            if change is not None:
                removed += len(change.removed)
            self.emit(change)
        return removed

    def seen(self, rec: InstanceRecord) -> float:
        """When this node last saw ``rec`` alive: its last beat, or its session's latest
        renewal known (never the session's first sight here: ``SessionRecord.evidence``)."""
        sid = rec.session
        if sid is None:
            return rec.last_beat
        renewed = self.store.sessions.evidence(sid)
        return renewed if renewed > -math.inf else rec.last_beat

    def _beat(self, req: Beat, now: float, received_at: float) -> None:
        self.stats.beats += 1
        if self.renew(req.key, req.instance, now, received_at) is None:
            # a beat's names are only length-checked (the hot path): escaped here, so that
            # a control or bidi character is not echoed nor logged raw (a security review)
            what = printable(f"instance {req.instance} of service {req.key}")
            raise RequestRejected(
                ErrorCode.NOT_FOUND,
                f"beat: {what} is not registered (evicted or the node restarted); register "
                "it again",
                req.req_id,
                "beat",
            )

    # -- renewals: every sign of life is applied here ------------------------------
    # A client's beat (served here, or forwarded here and failed over), a beat this node
    # forwards to the owner (``judge`` False: it keeps its own evidence only), a session
    # renewal from a client or one a peer received (``renew_session``); ``fast_beat`` is
    # ``renew``'s common case inlined, taken only where ``renew`` would do nothing more
    # (tests/core/test_fast_beat.py).  The rules, here and nowhere else:
    # - a sign served right after a stall of ours proves life when the stall began (it may
    #   have waited the stall out in the socket): it heals nothing, and is told to peers
    #   as evidence of then where ours is older than ``Role.evidence_floor`` (a judge
    #   elsewhere must not find the stall's length added to the evidence's age);
    # - an instance in a session lives by its session's renewals, not by its beats;
    # - a sign of life heals what this node judges unhealthy (a visible change: watchers
    #   are notified and peers get the delta), stamped for when it was seen;
    # - else it stamps new liveness evidence when ours is older than the floor
    #   (``alive_floor``, ``Role.evidence_floor``; a late sign: whenever newer), told to peers.

    def renew(
        self, key: ServiceKey, iid: InstanceId, now: float, received_at: float, judge: bool = True
    ) -> InstanceRecord | None:
        """A beat of instance ``iid`` received at ``received_at`` and served ``now``:
        record it and apply the rules above (unless not ``judge``).  None: the instance
        is not held here."""
        beat_time = self.beat_time(now, received_at)
        rec = self.store.beat(key, iid, beat_time)
        if rec is None or not judge:
            return rec
        if rec.session is not None:
            return rec  # in a session: its session's renewals judge it (PROTOCOL.md 2.3a)
        if now < self._stale_until:  # it may have waited out our stall: it heals nothing
            if rec.healthy and rec.alive < self.role.evidence_floor(key, now):
                self._refresh_seen(key, rec)  # but proves life when the stall began
            return rec
        if beat_time < now:  # evidence of life a while ago: it counts for what it is
            if not rec.healthy:
                seen = self.local_evidence(rec)  # its latest beat here, maybe a later one
                if seen > rec.down:
                    self.emit(self.store.set_health(key, (iid,), True, seen))
            else:
                self._refresh_seen(key, rec)
            return rec
        if not rec.healthy:
            self.emit(self.store.set_health(key, (iid,), True, self.stamp(now)))
        elif rec.alive < max(self.alive_floor, self.role.evidence_floor(key, now)):
            self.refresh_evidence(key, rec, self.stamp(now))
        return rec

    def renew_session(
        self, sid: str, namespace: str, now: float, seen_at: float, alive: int | None = None
    ) -> SessionRecord:
        """A renewal of session ``sid`` seen at ``seen_at``: a client's here (``alive``
        None: stamped here and told to the peers, core/outbox), or one a peer received
        and stamped ``alive`` (its evidence is ours); then the rules above."""
        seen_at = self.beat_time(now, seen_at)
        sessions = self.store.sessions
        before = sessions.last_renewed(sid)
        if alive is None:
            self.session_renewals += 1
            alive = self.stamp(now) if seen_at >= now else self._evidence_stamp(seen_at)
            sess = sessions.renew(sid, namespace, seen_at, alive, now)
            sess.via = ""  # its client renews here (core/distro ``_relays_left``)
            self.outbox.session_renewed(sess)
        else:
            sess = sessions.renew(sid, namespace, seen_at, alive, now)
        # Heal only on news that the session lives now: a renewal newer than any known,
        # and recent.  An old one (a relayed renewal, a relay's first catch-up, a late
        # copy from the second path) must not undo a judgment of silence (it healed the
        # instances of dead sessions, and the healing write refuted their eviction).
        fresh = seen_at > before and seen_at > now - self.policy.unhealthy_after
        if fresh and now >= self._stale_until:  # else it may have waited out our stall
            self._heal_session(sess, now)
        return sess

    def _refresh_seen(self, key: ServiceKey, rec: InstanceRecord) -> None:
        """Tell our evidence of ``rec`` (its latest beat here) if it is newer than its own."""
        seen = self.local_evidence(rec)
        if seen > rec.alive:
            self.refresh_evidence(key, rec, seen)

    def refresh_evidence(self, key: ServiceKey, rec: InstanceRecord, alive: int) -> None:
        """Stamp ``alive`` as ``rec``'s liveness evidence if newer, and tell the peers
        (replicated, invisible to watchers: core/store ``refresh``)."""
        if self.store.refresh(key, rec, alive):
            self.outbox.refreshed(key, rec)

    def beat_time(self, now: float, received_at: float) -> float:
        """When a beat served ``now`` (received at ``received_at``) proves life."""
        if now < self._stale_until:  # just resumed: it may have waited out the stall
            return min(received_at, self._stall_began)
        return received_at

    def local_evidence(self, rec: InstanceRecord) -> int:
        """A stamp for the latest beat this node saw of ``rec`` (``_evidence_stamp``)."""
        return self._evidence_stamp(self.seen(rec))

    def _evidence_stamp(self, beat_time: float) -> int:
        """A stamp for a beat seen at ``beat_time``: that time on our wall clock, less
        ``EVIDENCE_MARGIN_US`` (evidence merged from a stamp, whose last beat is that
        stamp's time, never outranks the stamp itself)."""
        us = int((beat_time + self.wall_offset) * 1_000_000) - EVIDENCE_MARGIN_US
        return (max(us, 0) << TAG_BITS) | self.hlc.tag

    def wall_stamp(self, now: float) -> int:
        """The version stamp our wall clock gives ``now`` (no node tag, not issued)."""
        return int((now + self.wall_offset) * 1_000_000) << TAG_BITS

    def rejected(self, error: RequestRejected) -> None:
        """Count a request the caller rejected before it reached ``handle`` (validation,
        access control); ``handle`` counts its own ``Rejected`` answers."""
        self.count_error(error.code)

    def count_error(self, code: ErrorCode) -> None:
        """Count an error answered outside ``handle`` (``stats``: ``errors``)."""
        self.stats.count_error(code)

    def count_request(self, op: str) -> None:
        """Count a valid request served outside ``handle`` (the config center's:
        ``stats``: ``requests``)."""
        requests = self.stats.requests
        requests[op] = requests.get(op, 0) + 1

    # -- queries (for the runtime, which reads no core internals) ---------------------
    def holds(self, key: ServiceKey, iid: InstanceId) -> bool:
        """Whether this node holds instance ``iid`` of service ``key``."""
        return self.store.holds(key, iid)

    def service_count(self) -> int:
        """Services with at least one instance held here."""
        return len(self.store.services)

    def instances_result(
        self, key: ServiceKey, healthy_only: bool, now: float | None = None
    ) -> InstancesResult:
        """``key``'s instances (only the healthy, enabled ones if ``healthy_only``,
        unless protection is on), with its settings; ``now``: tell the uptime too."""
        svc = self.store.get(key)
        threshold, _, service_metadata = self.store.service_settings(key)
        protected = False
        rows: tuple[InstanceRow, ...] = ()
        if svc is not None:
            large = len(svc.instances) >= MIN_ROWS
            kept = self.views.get(key, healthy_only, svc.revision) if large else None
            if kept is not None:  # its rows at this revision (core/instance_views)
                protected, rows = kept
            else:
                protected, rows = self._instance_rows(svc, key, healthy_only, threshold)
                if large:
                    self.views.put(key, healthy_only, svc.revision, protected, rows)
        return InstancesResult(
            key,
            self.epoch,
            self.store.revision_of(key),
            threshold,
            protected,
            service_metadata,
            rows,
            round(self.stats.uptime(now), 3) if now is not None else None,
            self.synced if now is not None else None,
            self.table_age(now) if now is not None else None,
        )

    def _instance_rows(
        self, svc: ServiceRecord, key: ServiceKey, healthy_only: bool, threshold: float
    ) -> tuple[bool, tuple[InstanceRow, ...]]:
        """(protected, the rows of ``svc``'s instances ordered by (ip, port, cluster))."""
        protected = False
        if threshold > 0:
            healthy = sum(1 for r in svc.instances.values() if r.healthy)
            protected = protection_active(healthy, len(svc.instances), threshold)
        instances: list[InstanceRow] = []
        overrides = self.store.overrides.by_service.get(key)
        for rec in svc.instances.values():
            weight, enabled = rec.weight, rec.enabled
            if overrides is not None:  # an operator's drain or weight (core/overrides)
                weight, enabled = self.store.effective(key, rec)
            if healthy_only and not protected and not (rec.healthy and enabled):
                continue
            instances.append(rec.id + (weight, enabled, rec.healthy, rec.metadata))
        instances.sort(key=_BY_ID)  # (ip, port, cluster)
        return protected, tuple(instances)

    def table_age(self, now: float) -> float | None:
        """s the table has collected registrations (None: a source did not tell)."""
        since = self.table_since
        if since is None:
            return round(self.stats.uptime(now), 3)
        return round(max(now - since, 0.0), 3) if since > -math.inf else None

    def revisions_result(self, req: CheckRevisions) -> RevisionsResult:
        """The entries whose view a pull would change: another epoch (every one), a
        service held here at another revision, or one not held here (no instances, no
        settings) that the view holds instances of.  A view of a service absent here
        and empty there is current whatever revision it holds: an absent service's
        revision is the node-wide one, which moves with every change elsewhere."""
        if req.epoch != self.epoch:
            return RevisionsResult(self.epoch, tuple(range(len(req.entries))))
        ns, services, settings = req.namespace, self.store.services, self.store.settings
        visible = req.visible
        stale = []
        for i, (group, service, revision, held) in enumerate(req.entries):
            if visible is not None and not visible(group, service):
                stale.append(i)  # its pull is refused: the client learns it there
                continue
            key = ServiceKey(ns, group, service)
            svc = services.get(key)
            if svc is not None:
                if svc.revision != revision:
                    stale.append(i)
            elif held or key in settings:
                stale.append(i)
        return RevisionsResult(self.epoch, tuple(stale))

    def namespaces_result(self, req: ListNamespaces) -> NamespacesResult:
        """One page of the namespaces holding services (with instances or settings) or
        live configs, by name, after ``req.after``; those the client may not read are
        not named.  O(N log N) in namespaces (at most ``max_namespaces`` with services,
        configs' bounded by ``max_configs``): a rate-limited read, never on a hot path."""
        services, configs, visible = self.store.namespaces, req.configs, req.visible
        if req.readable is not None:  # a confined client: what it may read, counted
            services = self.store.count_by_namespace(req.readable, visible, req.whole)
        holding = {ns for ns, n in services.items() if n}
        holding.update(ns for ns, n in configs.items() if n)
        names = sorted(ns for ns in holding if ns > req.after and (visible is None or visible(ns)))
        page = names[: req.page_size]
        return NamespacesResult(
            tuple((ns, services.get(ns, 0), configs.get(ns, 0)) for ns in page),
            page[-1] if len(names) > len(page) else None,
        )

    def services_result(self, req: ListServices) -> ServicesResult:
        """One page of a namespace's services: O(log N + page), never O(N).  For a client
        that may read only some (``req.visible``): the page holds only those, ``count``
        counts only them (the total would say what exists), and the cursor is the last
        service examined (up to SERVICES_SCAN_LIMIT), which the runtime seals when the
        client may not read it: the cursor named it (review23 F5).  A full page always
        has a cursor (the next page may be empty): whether one followed said whether a
        service it may not read sorts after its last one, an oracle that recovered another
        team's group name in 506 requests (review83 F1)."""
        store = self.store
        visible = req.visible
        if visible is None:
            page, more = store.service_page(req.namespace, req.group, req.after, req.page_size)
            return ServicesResult(
                req.namespace,
                tuple(page),
                store.service_count(req.namespace, req.group),  # all pages together
                services_cursor(*page[-1]) if more else None,
            )
        keep: list[tuple[str, str]] = []
        after, examined, more = req.after, 0, True
        while more and len(keep) < req.page_size and examined < SERVICES_SCAN_LIMIT:
            chunk = min(req.page_size - len(keep), SERVICES_SCAN_LIMIT - examined)
            page, more = store.service_page(req.namespace, req.group, after, chunk)
            examined += len(page)
            keep.extend(e for e in page if visible(*e))
            if page:
                after = page[-1]
        full = len(keep) >= req.page_size  # (then ``after`` is the last one kept)
        cursor = services_cursor(*after) if (more or full) and after is not None else None
        return ServicesResult(req.namespace, tuple(keep), len(keep), cursor)

    def _past_deadline(self, req: Any, now: float) -> None:
        """Refuse a registry write that arrives after its ``deadline`` (the client's wall
        clock; PROTOCOL.md 2.1, "Deadline"): it waited (in a stopped node's socket, or in a forward
        whose owner did not answer) while the client went on, so applying it now, with a
        stamp newer than everything since, could undo a later write of the same client
        (a deregistration, a registration again).  Nothing changes; counted."""
        self.late_writes += 1
        late = now + self.wall_offset - self.clock_lead - req.deadline
        if type(req) is SessionClose:
            what = f"session {session_label(req.session)} of namespace {req.namespace}"
        else:
            what = f"{req.key}" + (f" {req.instance}" if hasattr(req, "instance") else "")
        raise RequestRejected(
            ErrorCode.UNAVAILABLE,
            f"{req.op}: {what} reached node {self.address} {late:.3g}s "
            "after its deadline (the client's clock): not applied (the client has sent it "
            "again or given up); if every write is refused so, this node's clock is ahead "
            "of the client's: check the clocks (NTP)",
            req.req_id,
            req.op,
            unwritten=True,  # (a forwarder whose copy it was applies it itself: runtime)
        )

    def stats_result(self, now: float, member: MemberStats | None = None) -> StatsResult:
        """The node's ``stats``; ``member``: a cluster member's part (core/distro)."""
        store = self.store
        healthy, unhealthy = store.instance_count()
        stats = self.stats
        policy = self.policy
        return StatsResult(
            address=self.address,
            version=__version__,
            epoch=self.epoch,
            uptime=round(stats.uptime(now), 3),
            services=len(store.services),
            instances=InstanceCounts(healthy + unhealthy, healthy, unhealthy),
            requests=dict(stats.requests),
            beats_total=stats.beats,
            beats_per_second=round(stats.beat_rate(now), 1),
            errors=dict(stats.errors),
            errors_total=sum(stats.errors.values()),
            notifications=stats.notifications,
            subscribers=self.subscriptions.total(),
            watched_services=self.subscriptions.watched_services(),
            revision=store.revision,
            timings=Timings(policy.check_interval, policy.unhealthy_after, policy.evict_after),
            self_preservation=self.preservation.result(now),
            stalls=self.stalls,
            judged_in_stall_grace=self.judged_in_stall_grace,
            judged_in_member_grace=self.judged_in_member_grace,
            late_writes=self.late_writes,
            # what clients grew, against [limits] (core/quotas); running counts: O(1)
            usage=Usage(
                len(store.namespaces),
                store.known_services,
                store.known_services - len(store.services),
                store.instance_total,
                store.metadata_bytes,
                store.tombstone_count,
                store.tombstones_dropped,
                store.overrides.active,
                store.overrides.expired,
                len(store.overrides) - store.overrides.active,
            ),
            limits=self.limits,
            rejected_quota=self.quotas.result(),
            # client sessions (core/sessions): bounded by [limits] max_sessions
            sessions=SessionStats(
                len(store.sessions),
                store.sessions.instance_count,
                self.session_renewals,
                self.silent_sessions,
                store.sessions.forgotten,
                round(stats.renewal_rate(now, self.session_renewals), 1),
            ),
            member=member,
        )

    # -- time ----------------------------------------------------------------
    def tick(self, now: float) -> float:
        """Run the health check if due; return the next time to call tick.

        A check is a :class:`~meshreg.core.health.SweepPass` judged in bounded
        steps, one per call: while one is under way the answer is ``now``
        (call again at once, after serving what is waiting).
        """
        self.check_stall(now)
        self.end_stale_window(now)
        wake = self.tick_health(now)
        self.wake_at = max(wake, now)  # (a timer past due asks for now: see check_stall)
        return wake

    def end_stale_window(self, now: float) -> None:
        if self.alive_floor == STALE_FLOOR and now >= self._stale_until:
            self.alive_floor = self.role.view_floor()

    def in_stale_window(self, now: float) -> bool:
        """Whether ``now`` is just after a stall of ours: a beat served now may have
        waited the stall out in the socket (evidence for then, not now)."""
        return now < self._stale_until

    def stall_after(self) -> float:
        """s a tick may come later than asked before the node suspects it was stopped."""
        return self.role.stall_after()

    def start_grace(self, now: float) -> None:
        """Judge nobody for a grace period from ``now`` (core/distro: every peer down at
        once, a member coming (back) into the view): we were cut off, so we cannot tell
        who was silent.  A grace starting within ``evict_after + unhealthy_after`` of the
        last one continues its *run*, which bounds it (core/health ``grace_threshold``):
        with ``evict_after`` alone, a grace that came just as the evictions the last one
        held fell due (a sweep had no time to make them, or its node was not judging)
        started a new run, and again and again: no bound from the death (oneway15)."""
        policy = self.policy
        if now >= self.watching_since + policy.evict_after + policy.unhealthy_after:
            self.grace_run_began = now
        self.watching_since = max(self.watching_since, now)

    def advised_unhealthy(self) -> float:
        """The ``unhealthy_after`` clients are told to renew or beat within: the least of
        the members this node hears up, its own included.  Any of them may judge a
        client's instances, and during a rolling restart that lowered it a client
        renewing through a node not yet restarted was marked by the restarted ones
        between its renewals (review27 F6's remainder)."""
        own, least = self.policy.unhealthy_after, self.least_unhealthy_after
        return own if least is None or least >= own else least

    def check_stall(self, now: float) -> bool:
        """Suspect ourselves first (every loop turn, before any input): True (and a
        grace period, ``health.silent_before``) when this turn comes ``stall_after`` or
        more later than the last tick asked for.  A tick that answers a time already
        past (a session check due while a mass expiry's sweep ran for seconds) asks for
        its own time, not that one: measured from it, the next turn, a millisecond
        later, was "stalled for 2.5 s" and the node stopped judging health for 15 s and
        refused reads while it resynced (review83 F2).  The stall is remembered from the last
        turn, when the loop may have been stopped, to now: its seconds are not awake
        time, which bounds the grace."""
        asked, last = self.wake_at, self.last_turn
        late = now - asked
        # (asked several times a turn: max() and the stall_after() wrapper spelled out)
        self.last_turn = last if last >= now else now
        stall_after = self.role.stall_after()
        if late < stall_after or not self.detect_stalls:
            return False
        self._stall_began = asked
        self._stale_until = now + min(STALE_WINDOW, stall_after)
        self.alive_floor = STALE_FLOOR  # every beat takes the full path meanwhile
        self.wake_at = now
        self.stalls += 1
        stopped = min(last, asked)  # stopped after its last turn, or it would have woken
        self.own_stalls.append((stopped, now))
        self.resumed_at = now
        silent = now - last
        start_over = silent >= TOMBSTONE_TTL * START_OVER_SHARE and self.role.has_peers()
        self._effects.append(
            StallDetected(round(late, 3), self.policy.unhealthy_after, round(silent, 3), start_over)
        )
        self.role.stalled(now, silent)
        return True

    def tick_health(self, now: float) -> float:
        run = self._sweep
        if run is None and now >= self.next_check_at:
            may_mark, may_evict = self.role.may_judge(now)
            self.next_session_check = now + health.session_check_interval(self.policy)
            if not may_mark:
                # Held (catching up, resyncing after a stall): ask again soon, not a whole
                # interval later.  Else a node stalling more often than check_interval finds
                # each sweep due just as it resumes, held by that stall's resync, again and
                # again, and judges nobody (review F-starve).
                self.next_check_at = now + min(self.policy.check_interval, HELD_SWEEP_RETRY)
                return self.next_check_at
            run = self._sweep = health.SweepPass(
                self.store,
                now,
                self.policy,
                self.role.sweep_scope(),
                watching_since=self.watching_since,
                grace_run_began=self.grace_run_began,
                may_evict=may_evict,
                judge_sessions=self.role.judges_sessions(),
                stalls=self.own_stalls,
                evidence_lag=self.role.evidence_lag(),
            )
            # Anchored on the start: after a stall we check once, not a burst of catch-ups.
            self.next_check_at = now + self.policy.check_interval
        elif run is None and now >= self.next_session_check:
            run = self._sweep = self._session_check(now)
        if run is not None:
            if not run.finishing:
                if not run.advance():
                    return now
                run.finishing = True
                preservation = None if run.sessions_only else self.preservation
                if preservation is not None:
                    self.silent_sessions = run.silent_sessions
                run.begin_finish(now, self.stamp(now), preservation, self.local_evidence)
                if preservation is not None:  # local news, not replicated
                    self._effects.extend(preservation.take_events())
            changes, done = run.finish_step()  # bounded too: a mass expiry takes turns
            for change in changes:
                self.emit(change)
            if not done:
                return now
            self._sweep = None
            self.judged_in_stall_grace += run.judged_in_stall_grace
            self.judged_in_member_grace += run.judged_in_member_grace
            if not run.sessions_only:
                self.store.purge_tombstones(now, TOMBSTONE_TTL)
                self._expire_overrides(now)
                self.store.sessions.collect(now, self.policy.empty_session_ttl)
                self.stats.sample(now, self.session_renewals)
        if not self.store.sessions:
            return self.next_check_at
        return min(self.next_check_at, self.next_session_check)

    def _expire_overrides(self, now: float) -> None:
        """Clear the overrides of instances absent for ``override_ttl`` in the services
        this node judges, and replicate the clears (core/overrides, "Expiry")."""
        scope = self.role.sweep_scope()
        cleared = self.store.overrides.sweep(
            now,
            self.policy.override_ttl,
            self.store.holds,
            scope if scope is not None else _everything,
            lambda: self.stamp(now),
        )
        for key, entry in cleared:
            svc = self.store.get(key)
            if svc is not None:
                svc.digest_cache = None  # (active overrides count in its digest)
            self.outbox.overrides_changed(key, (entry,))

    def _session_check(self, now: float) -> health.SweepPass | None:
        """A session check between sweeps (core/health ``SESSION_CHECK_INTERVAL``): marks
        the instances of silent sessions, under the sweep's rules; None if it may not."""
        self.next_session_check = now + health.session_check_interval(self.policy)
        role = self.role
        if not self.store.sessions or not role.judges_sessions() or not role.may_judge(now)[0]:
            return None
        return health.SweepPass(
            self.store,
            now,
            self.policy,
            self.role.sweep_scope(),
            watching_since=self.watching_since,
            grace_run_began=self.grace_run_began,
            sessions_only=True,
            stalls=self.own_stalls,
            evidence_lag=self.role.evidence_lag(),
        )

    # -- subscriptions -------------------------------------------------------
    def watched(self, key: ServiceKey) -> bool:
        """Whether any watcher may want ``key``'s changes (its topic or a prefix of it).

        The runtime encodes and publishes a change only then: most writes are to
        services nobody watches on this node.  A watcher whose subscription the
        node has not read yet misses nothing: reading it announces the current
        revision, and the watcher re-pulls if it is behind.
        """
        subs = self.subscriptions.by_service
        return key in subs or None in subs

    def subscription_changed(
        self, key: ServiceKey | None, subscribed: bool, sync: bool = True
    ) -> None:
        """A watcher (un)subscribed; a new one is told the current revision (``sync``
        False: by a sync the runtime defers, shared with the topic's other newcomers:
        runtime/sync_pacer, ``announce``)."""
        if subscribed:
            self.subscriptions.subscribed(key)
            if key is not None and sync:
                self.announce(key)
        else:
            self.subscriptions.unsubscribed(key)

    def compact(self) -> None:
        """Rebuild the subscription table at its present size, after a large release
        (runtime/memory_release)."""
        self.subscriptions.compact()

    def announce(self, key: ServiceKey) -> None:
        """Publish a sync of ``key`` (its current revision) to its watchers."""
        self._effects.append(SyncAnnounced(key, self.store.revision_of(key)))

    def _observe_after(self, after: int, now: float) -> None:
        """A write's ``after``: the stamp the client was told for its previous write of the
        instance, from whichever node stamped it.  Observed, it puts this write's stamp
        above that one, so a register a node with a clock ahead stamped (its fallback)
        does not win over the client's later deregistration (review72 F1).  One beyond
        ``stamp_limit`` (a node fenced for its clock stamped it) is not observed; one
        beyond the fastest member's clock (``after_ahead``) is observed up to it only: a
        client (an attacker with write access) cannot push every stamp of the cluster
        further ahead than a member's own clock already does."""
        wall = now + self.wall_offset
        if after <= stamp_limit(wall):
            self.hlc.observe(min(after, highest_stamp_at(wall + self.after_ahead)))

    # -- effects -------------------------------------------------------------
    def stamp(self, now: float) -> int:
        """Version stamp for a write: a health mark compares them (see core/store)."""
        return self.hlc.stamp(now + self.wall_offset)

    def emit(self, change: ServiceChanged | None) -> None:
        """A change made here: tell local watchers, and the peers (core/outbox)."""
        if change is not None:
            self._effects.append(change)
            self.outbox.changed(change)

    def queue(self, effect: Effect) -> None:
        self._effects.append(effect)

    def has_effects(self) -> bool:
        """Whether effects are queued (``take_effects`` without the outbox's flush)."""
        return bool(self._effects)

    def take_effects(self) -> list[Effect]:
        """Hand the queued effects to the caller (and forget them), with what the
        outbox batched since the last call."""
        self.outbox.flush()
        effects = self._effects
        if effects:
            self._effects = []
            self.stats.notifications += len(effects)
        return effects


def _everything(key: ServiceKey) -> bool:
    return True


def _over_quota(exceeded: QuotaExceeded, req: Request) -> RequestRejected:
    return RequestRejected(ErrorCode.RESOURCE_EXHAUSTED, exceeded.message, req.req_id, req.op)


def _with_held(renewed: SessionRenewed, sess: SessionRecord) -> SessionRenewed:
    """``renewed`` naming the session's instances here (at most HELD_LIST_MAX): its client
    deregisters those it no longer holds, whose deregistration this node never got (lost
    with the node that applied it, review36 F2)."""
    held: list[tuple[ServiceKey, InstanceId]] = []
    for key, ids in sess.instances.items():
        for iid in ids:
            if len(held) == HELD_LIST_MAX:
                return replace(renewed, held=tuple(held), held_more=True)
            held.append((key, iid))
    return replace(renewed, held=tuple(held))
