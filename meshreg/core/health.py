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

Cost: a service keeps a lower bound of its instances' last beats
(``ServiceRecord.oldest_beat``); while that is newer than the silence threshold
- every instance beating, the usual case - the sweep skips the service without
reading a record.  Only services with a silent instance are read.  A pass runs
in bounded steps (``SweepPass``) between requests, so even a table of a million
instances never stalls the node for more than about a millisecond at a time.

Sessions (``core/sessions``): an instance registered in a client session is
judged by its session's last renewal, not its own beats, and the per-instance
pass skips it.  After the services, a pass visits the *sessions* (one step of
the budget each): a session renewed within ``unhealthy_after`` costs one
comparison, whatever it holds; only the instances of a silent session are
read, and they are marked unhealthy, then evicted, exactly as silent
instances are (same changes, same notifications, the same grace after an
adoption or a stall, counted by self-preservation alike).  So a pass over a
million live instances held by a few sessions reads a few records per
service and one per session.

Between sweeps, a *session check* runs every ``SESSION_CHECK_INTERVAL`` (1 s):
a pass over the sessions alone (``sessions_only``), which marks the instances
of a silent session unhealthy under the same rules and gates, and evicts
nothing (evictions and self-preservation's count stay with the sweep).  So a
dead client's instances turn unhealthy about ``unhealthy_after`` + 1 s after
its last renewal instead of up to ``unhealthy_after + check_interval``; a
session it already marked at its last renewal costs it one comparison.

After a stall of the node's own (a SIGSTOP, a freeze, a starved loop:
core/registry ``check_stall``) it judges nobody for a grace period
(``unhealthy_after`` for marks, ``evict_after`` for evictions), except an
instance silent for the timeout plus ``unhealthy_after`` of the node's
*awake* time, its stalls' seconds not counted (``silent_before``): so a node
that stalls again and again still judges, after that much awake time.

Self-preservation (``core/preservation``): the sweep first counts the silent
instances among those it judges and lets the node's
:class:`~meshreg.core.preservation.SelfPreservation` decide whether this
sweep may evict.  When most of them went silent at once it may not: overdue
instances are then only marked unhealthy (if they were not yet) and kept.
Instances that never beat after registering here (``unproven``) are left out
of that count and are evicted when overdue even then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshreg.core.effects import ServiceChanged
from meshreg.core.store import InstanceRecord, RegistryStore
from meshreg.errors import ConfigError
from meshreg.model import InstanceId, ServiceKey

if TYPE_CHECKING:
    from meshreg.core.preservation import SelfPreservation


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Timings of the health rules, all in seconds."""

    check_interval: float = 5.0  # s; how often the node sweeps (seed: 5 s)
    unhealthy_after: float = 15.0  # s without a beat -> unhealthy (seed: 15 s)
    evict_after: float = 30.0  # s without a beat -> removed (seed: 30 s)
    # Self-preservation (core/preservation): when more than this share of the instances
    # this node judges, and at least this many, go silent at once, the node blames its own
    # network and evicts nothing until beats come back (Eureka's rule and default share).
    self_preservation: bool = True  # on: a registry that empties itself helps nobody
    self_preservation_threshold: float = 0.85  # share of silent instances, in (0, 1) (Eureka)
    self_preservation_min: int = 10  # instances; fewer dying together is normal: evicted
    # s; an episode lasts at most this long, then evictions resume (core/preservation):
    # a fault of a quarter of an hour is no blip, and junk that trips the mode cannot
    # hold dead instances for good (issue 10, M3). Eureka's renewal-threshold period.
    self_preservation_max: float = 900.0
    # s a session holding no instance lasts without a renewal (at most ``evict_after``):
    # an empty session keeps nothing alive, so a flood of empty ``session_open``s must
    # not hold the table for ``evict_after`` (review finding F-sessflood).  Two default
    # beat intervals: a client renews every 5 s, and one that opens a session and
    # registers right away fills it within a round trip (core/sessions, "Forgetting").
    empty_session_after: float = 10.0
    # s an operator's override (instance-set: a drain, a weight) of an instance registered
    # nowhere is kept before the responsible node clears it (core/overrides): long enough
    # for a maintenance restart (a reboot, a redeploy: minutes); Nacos keeps 60 s, which a
    # host reboot outlasts.  The cost of a long one: a drained address reused within it
    # by another instance comes up drained (README, "Draining").
    override_ttl: float = 600.0

    @property
    def empty_session_ttl(self) -> float:
        """s an empty session lasts without a renewal: ``empty_session_after``, capped by
        ``evict_after`` (a session never outlives what its instances would)."""
        return min(self.empty_session_after, self.evict_after)

    def __post_init__(self) -> None:
        for name in (
            "check_interval",
            "unhealthy_after",
            "evict_after",
            "empty_session_after",
            "override_ttl",
        ):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
        if not self.check_interval > 0:
            raise ConfigError(f"check_interval must be > 0 s, got {self.check_interval}")
        if not self.override_ttl > 0:
            raise ConfigError(f"override_ttl must be > 0 s, got {self.override_ttl}")
        if not self.empty_session_after > 0:
            raise ConfigError(f"empty_session_after must be > 0 s, got {self.empty_session_after}")
        if not self.unhealthy_after > 0:
            raise ConfigError(f"unhealthy_after must be > 0 s, got {self.unhealthy_after}")
        if not self.evict_after >= self.unhealthy_after:
            raise ConfigError(
                f"evict_after ({self.evict_after} s) must be >= unhealthy_after "
                f"({self.unhealthy_after} s)"
            )
        if type(self.self_preservation) is not bool:
            raise ConfigError(
                f"self_preservation must be true or false, got {self.self_preservation!r}"
            )
        share = self.self_preservation_threshold
        if type(share) not in (int, float) or not 0 < share < 1:
            raise ConfigError(
                f"self_preservation_threshold must be a share between 0 and 1 (exclusive), "
                f"e.g. 0.85, got {share!r}; to turn self-preservation off, set "
                "self_preservation = false (--no-self-preservation)"
            )
        least = self.self_preservation_min
        if type(least) is not int or least < 1:
            raise ConfigError(
                f"self_preservation_min must be a whole number of instances >= 1, got {least!r}"
            )
        longest = self.self_preservation_max
        if type(longest) not in (int, float) or not 0 < longest < math.inf:
            raise ConfigError(
                f"self_preservation_max must be a finite number of seconds > 0, e.g. 900, "
                f"got {longest!r}"
            )


def grace_threshold(before: float, grace: float, run_began: float, recovery: float) -> float:
    """The silence threshold ``before`` (``now - timeout``, or a stall's) in a member grace
    started at ``grace``, the last of a run of graces that began at ``run_began``
    (core/registry ``start_grace``): every instance counts as beating at ``grace`` at the
    latest, but no later than ``recovery`` (``unhealthy_after``) after its own last beat
    or the run's start, whichever is later.

    One grace (``run_began == grace``): nobody silent is judged before it is ``timeout``
    old, as ever.  In a run (a peer dropping out and coming back again and again, a crash
    loop, a flapping link), an instance silent for ``timeout + recovery`` is judged once
    the run is that old: before, each grace restarted the wait, and a peer flapping faster
    than ``evict_after`` held every eviction cluster-wide (docs/DISTRO.md, "A run of
    graces is bounded")."""
    if grace <= before:
        return before
    if run_began <= before - recovery:
        return before - recovery
    return -math.inf


def awake_since(stalls: Sequence[tuple[float, float]], now: float, span: float) -> float:
    """The time since which the node has been awake for ``span`` s until ``now``: ``now -
    span``, moved back by the length of every stall of its own (``stalls``: (stopped,
    resumed) times, oldest first, not overlapping) that falls in that time."""
    cursor, need = now, span
    for stopped, resumed in reversed(stalls):  # bounded: the node keeps STALLS_KEPT
        if resumed <= cursor - need:
            break  # the rest of the span fits between this stall and the next
        need -= max(0.0, cursor - resumed)
        cursor = stopped
    return cursor - need


def silent_before(
    stalls: Sequence[tuple[float, float]], now: float, timeout: float, recovery: float
) -> float:
    """The silence threshold for ``timeout`` (``unhealthy_after`` or ``evict_after``) given
    the node's own stalls: ``now - timeout`` when none ended within it; else (the stall's
    grace: the node cannot tell who was silent, its beats may have waited in the sockets
    or gone to its peers) the time since which the node has been awake ``timeout +
    recovery`` s (``recovery``: ``unhealthy_after``).

    Before (review F-starve), the grace judged nobody, so a node stalling once every
    ``unhealthy_after`` judged nobody, ever.  Now a silence of the timeout plus a whole
    recovery period of the node's *awake* time (its stalls' seconds do not count) is
    judged even then: after one stall, that is no live instance (its pre-stall silence
    was below the timeout, and the grace gives it ``recovery`` more to be heard again);
    however often the node stalls, a dead one is judged after ``timeout + recovery`` s of
    awake time."""
    if not stalls or stalls[-1][1] <= now - timeout:
        return now - timeout
    return awake_since(stalls, now, timeout + recovery)


SWEEP_STEP = 5_000  # instances judged per step of a pass: about 1 ms of pause per loop turn
# s between session checks.  A check reads one field per session, and sessions are few (a
# client process holds one), so it runs more often than the sweep: a silent session's
# instances turn unhealthy about ``unhealthy_after`` + this after its last renewal, not
# up to ``unhealthy_after + check_interval``.  It only marks: evictions, and the count
# self-preservation judges by, stay with the sweep every ``check_interval``.
SESSION_CHECK_INTERVAL = 1.0


def session_check_interval(policy: HealthPolicy) -> float:
    """s between session checks (never longer than the sweep's interval)."""
    return min(SESSION_CHECK_INTERVAL, policy.check_interval)


class SweepPass:
    """One health pass over the table, judged in steps of at most ``step`` instances.

    At a million instances a whole pass costs hundreds of milliseconds (the
    records are all over memory); done at once it would stall every request
    for that long every ``check_interval``.  The node runs one step per loop
    turn instead and serves requests in between.  Everything is judged
    against the pass's start time; ``finish`` re-checks each instance found
    silent, since it may have beaten, been deregistered or registered again
    while the pass ran, and is applied in steps as well (``begin_finish``,
    ``finish_step``): a mass expiry marks or evicts a step's worth per turn.
    A table of at most ``step`` instances is judged in one step, exactly as a
    single sweep would.
    """

    def __init__(
        self,
        store: RegistryStore,
        now: float,
        policy: HealthPolicy,
        owns: Callable[[ServiceKey], bool] | None = None,
        step: int | None = None,
        watching_since: float = -math.inf,
        grace_run_began: float = -math.inf,
        may_evict: bool = True,
        judge_sessions: bool = True,
        sessions_only: bool = False,
        stalls: Sequence[tuple[float, float]] = (),
        evidence_lag: float = 0.0,
    ) -> None:
        """``watching_since``: the node counts every instance as beating at that time at
        the latest (it was cut off before: it cannot tell who was silent);
        ``grace_run_began``: when the first of the run of graces ``watching_since`` ends
        began (``grace_threshold``); ``stalls``: the node's own stalls, (stopped,
        resumed), oldest first: a grace after the last, bounded in awake time
        (``silent_before``); ``evidence_lag``: s added to both timeouts (the evidence
        judged comes from other nodes over paths that may break unnoticed: ``Role``);
        ``may_evict`` False: overdue instances are only marked unhealthy;
        ``judge_sessions`` False: sessions are left unjudged this pass (their renewals
        may be landing on a node this one cannot hear); ``sessions_only``: the session
        check between sweeps (``SESSION_CHECK_INTERVAL``): no service is read, nothing
        is evicted, and a session already marked at its last renewal is skipped."""
        self.store = store
        self.started = now
        # Silent means: no beat since the threshold (in a stall's grace: for the timeout
        # and a recovery period of our awake time), and we were watching since before it.
        u, e = policy.unhealthy_after + evidence_lag, policy.evict_after + evidence_lag
        run = grace_run_began if grace_run_began > -math.inf else watching_since
        before_u, before_e = silent_before(stalls, now, u, u), silent_before(stalls, now, e, u)
        self.unhealthy_before = grace_threshold(before_u, watching_since, run, u)
        self.evict_before = grace_threshold(before_e, watching_since, run, u)
        # In a stall's grace: what this pass judges, the rule before held (stats)
        resumed = stalls[-1][1] if stalls else -math.inf
        self._marks_capped = resumed > now - u
        self._evictions_capped = resumed > now - e
        self.judged_in_stall_grace = 0
        # ... and in a run of member graces (judged only because the run is bounded)
        self._marks_run_capped = watching_since > before_u
        self._evictions_run_capped = watching_since > before_e
        self.judged_in_member_grace = 0
        if not may_evict or sessions_only:
            self.evict_before = -math.inf
        self.owns = owns
        self.step = SWEEP_STEP if step is None else step
        self.total = self.silent = self.overdue = 0
        self.unproven = 0  # silent instances that never beat after registering here
        self.found: list[tuple[ServiceKey, list[InstanceId], list[InstanceRecord]]] = []
        self.sessions_only = sessions_only
        # the services as they stand at the start
        self._todo = [] if sessions_only else list(store.records())
        self._next = 0
        # ... and the sessions
        self._sessions = list(store.sessions.by_id.values()) if judge_sessions else []
        self._next_session = 0
        self.finishing = False  # begin_finish called: applying in steps (the node sets it)
        self._evicting = True
        self._finish_args: tuple[float, int, Callable[[InstanceRecord], int] | None] = (
            now,
            0,
            None,
        )
        self._to_apply: list[tuple[ServiceKey, tuple[list[InstanceId], list[InstanceRecord]]]]
        self._to_apply = []
        self._applied = 0
        self.silent_sessions = 0  # sessions found silent (their instances judged)
        # beat streams the silent instances came from: each instance beating on its own,
        # each renewed session (core/preservation MIN_SILENT_STREAMS)
        self.silent_streams = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self._todo) and self._next_session >= len(self._sessions)

    def advance(self) -> bool:
        """Judge the next services, at least one and about ``step`` instances; True when done."""
        todo, owns = self._todo, self.owns
        unhealthy_before, evict_before = self.unhealthy_before, self.evict_before
        budget = self.step
        while self._next < len(todo) and budget > 0:  # bounded: each turn consumes a service
            svc = todo[self._next]
            self._next += 1
            if owns is not None and not owns(svc.key):
                continue
            count = len(svc.instances)
            self.total += count
            watched = svc.watched_since
            if svc.oldest_beat > unhealthy_before or watched > unhealthy_before:
                budget -= 4  # every instance beat recently (or adopted): nothing to read
                continue
            budget -= count
            evict_svc = evict_before if watched <= evict_before else -math.inf
            to_evict: list[InstanceRecord] = []
            to_mark: list[InstanceId] = []
            oldest = math.inf
            silent = unproven = 0
            for rec in svc.instances.values():
                if rec.session is not None:
                    continue  # judged by its session (below), not by its own beats
                beat = rec.last_beat
                if beat < oldest:
                    oldest = beat
                if beat <= unhealthy_before:
                    silent += 1
                    if beat <= rec.registered_at:
                        unproven += 1  # never beat: no beat stream stopped (preservation)
                    if beat <= evict_svc:
                        to_evict.append(rec)
                    elif rec.healthy:
                        to_mark.append(rec.id)
            svc.oldest_beat = oldest  # exact now; beats only raise it
            self.silent += silent - unproven
            self.silent_streams += silent - unproven
            self.total -= unproven
            self.unproven += unproven
            if to_mark or to_evict:
                self.found.append((svc.key, to_mark, to_evict))
                self.overdue += sum(1 for rec in to_evict if rec.last_beat > rec.registered_at)
        if self._next >= len(todo):
            budget = self._advance_sessions(budget)
        return self.done

    def _advance_sessions(self, budget: int) -> int:
        """Judge the next sessions: one step each, plus the instances of a silent one."""
        sessions, owns, store = self._sessions, self.owns, self.store
        held = store.sessions.by_id
        unhealthy_before, evict_before = self.unhealthy_before, self.evict_before
        quick = self.sessions_only
        while self._next_session < len(sessions) and budget > 0:
            sess = sessions[self._next_session]
            self._next_session += 1
            budget -= 1
            last = sess.last_renewed
            if last > unhealthy_before or held.get(sess.id) is not sess:
                continue  # renewed recently (the usual case), or gone meanwhile
            if quick and sess.marked_at == last:
                continue  # marked already at this renewal: the sweep evicts it
            judged = False
            streamed = False
            # every instance this node judges is lined up or already unhealthy (those of
            # services another node owns are its to judge; an adopted service gets a
            # grace period, and the sweep reads it when that ends)
            whole = True
            for key, ids in list(sess.instances.items()):
                if owns is not None and not owns(key):
                    continue
                svc = store.services.get(key)
                if svc is None:
                    continue
                watched = svc.watched_since
                if watched > unhealthy_before:
                    whole = False
                    continue  # adopted recently: its renewals may have gone elsewhere
                budget -= len(ids)
                evict_svc = evict_before if watched <= evict_before else -math.inf
                to_evict: list[InstanceRecord] = []
                to_mark: list[InstanceId] = []
                silent = 0
                for iid in ids:
                    rec = svc.instances.get(iid)
                    if rec is None or rec.session != sess.id:
                        continue
                    silent += 1
                    if last <= evict_svc:
                        to_evict.append(rec)
                    elif rec.healthy:
                        to_mark.append(rec.id)
                judged = judged or silent > 0
                if sess.renewed:
                    self.silent += silent
                    self.overdue += len(to_evict)
                    if silent and not streamed:
                        streamed = True
                        self.silent_streams += 1
                else:  # never renewed since first seen here: no stream stopped
                    self.total -= silent
                    self.unproven += silent
                if to_mark or to_evict:
                    self.found.append((key, to_mark, to_evict))
            if judged:
                self.silent_sessions += 1
            if whole:
                sess.marked_at = last
        return budget

    def finish(
        self,
        now: float,
        version: int = 0,
        preservation: SelfPreservation | None = None,
        evidence: Callable[[InstanceRecord], int] | None = None,
    ) -> list[ServiceChanged]:
        """Apply the pass (after ``advance`` returned True): the changes, one or two per service.

        ``evidence(record)``: the stamp of the latest beat this node saw of it, which
        each mark and eviction records as the evidence it judged (core/store).  All at
        once: ``begin_finish`` and ``finish_step`` do the same in bounded steps."""
        self.begin_finish(now, version, preservation, evidence)
        changes: list[ServiceChanged] = []
        while True:  # bounded: each step consumes at least one service
            more, done = self.finish_step(2**62)
            changes += more
            if done:
                return changes

    def begin_finish(
        self,
        now: float,
        version: int = 0,
        preservation: SelfPreservation | None = None,
        evidence: Callable[[InstanceRecord], int] | None = None,
    ) -> None:
        """Decide whether this pass may evict (self-preservation, once) and line up what
        it found, one entry per service (its own silent instances and its sessions'), a
        service with more than ``step`` of them in entries of ``step``: one change of
        40,000 instances (a client's session lapsing) took 0.5 s of the owner's loop and,
        replicated as one delta, 1-3 s of each peer's, and every node counted itself
        stalled (review83 F2)."""
        self._evicting = preservation is None or preservation.assess(
            now, self.silent, self.total, self.overdue, self.silent_streams
        )
        self._finish_args = (now, version, evidence)
        grouped: dict[ServiceKey, tuple[list[InstanceId], list[InstanceRecord]]] = {}
        for key, marked, overdue in self.found:
            entry = grouped.get(key)
            if entry is None:
                grouped[key] = (list(marked), list(overdue))
            else:
                entry[0].extend(marked)
                entry[1].extend(overdue)
        step = max(1, self.step)
        self._to_apply = []
        for key, (marked, overdue) in grouped.items():
            if len(marked) + len(overdue) <= step:
                self._to_apply.append((key, (marked, overdue)))
                continue
            for i in range(0, len(marked), step):
                self._to_apply.append((key, (marked[i : i + step], [])))
            for i in range(0, len(overdue), step):
                self._to_apply.append((key, ([], overdue[i : i + step])))
        self._applied = 0

    def finish_step(self, budget: int | None = None) -> tuple[list[ServiceChanged], bool]:
        """Apply the next services' marks and evictions, about ``budget`` instances (at
        least one service); (changes, done).  Each is re-checked against the table as it
        is now: a session renewed or an instance beaten since the pass began is spared,
        so a mass expiry (a client holding 250,000 instances killed) is applied over
        several loop turns without stalling the node."""
        store, sessions = self.store, self.store.sessions
        now, version, evidence = self._finish_args
        evicting = self._evicting
        left = self.step if budget is None else budget

        renewed: dict[str, float] = {}  # per session: its last renewal (looked up once)

        def seen(rec: InstanceRecord) -> float:  # its last beat, or its session's renewal
            sid = rec.session
            if sid is None:
                return rec.last_beat
            last = renewed.get(sid)
            if last is None:
                last = renewed[sid] = sessions.last_renewed(sid)
            return last

        if evidence is not None:
            per_record = evidence
            stamps: dict[str, int] = {}  # per session: one evidence stamp for all its records

            def session_evidence(rec: InstanceRecord) -> int:
                sid = rec.session
                if sid is None or sid not in sessions.by_id:
                    return per_record(rec)  # beats (or a session gone: its record's own)
                stamp = stamps.get(sid)
                if stamp is None:
                    stamp = stamps[sid] = per_record(rec)
                return stamp

            evidence = session_evidence

        def proven(rec: InstanceRecord) -> bool:  # beat (renewed) since registered here
            sid = rec.session
            if sid is None:
                return rec.last_beat > rec.registered_at
            sess = sessions.get(sid)
            return sess is not None and sess.renewed

        changes: list[ServiceChanged] = []
        todo = self._to_apply
        while self._applied < len(todo) and left > 0:
            key, (marked, overdue) = todo[self._applied]
            self._applied += 1
            left -= len(marked) + len(overdue) + 1
            svc = store.services.get(key)
            if svc is None:
                continue
            current = svc.instances
            # Still silent, and still the record that was judged (not re-registered since,
            # nor the service adopted meanwhile).
            unhealthy_before = self.unhealthy_before
            evict_before = self.evict_before
            if svc.watched_since > unhealthy_before:
                continue
            to_mark = [
                i
                for i in marked
                if (r := current.get(i)) is not None and r.healthy and seen(r) <= unhealthy_before
            ]
            to_evict = [
                rec
                for rec in overdue
                if current.get(rec.id) is rec
                and seen(rec) <= evict_before
                and svc.watched_since <= evict_before
            ]
            if not evicting:  # held: overdue instances are only marked unhealthy ...
                held = [rec for rec in to_evict if proven(rec)]
                to_mark += [rec.id for rec in held if rec.healthy]
                # ... but one that never beat after registering is evicted as usual
                to_evict = [rec for rec in to_evict if not proven(rec)]
            if to_mark:
                change = store.set_health(key, to_mark, False, version, evidence)
                if change is not None:
                    changes.append(change)
                    if self._marks_capped:
                        self.judged_in_stall_grace += len(to_mark)
                    elif self._marks_run_capped:
                        self.judged_in_member_grace += len(to_mark)
            if to_evict:
                ids = [rec.id for rec in to_evict]
                change = store.remove(key, ids, "evicted", version, now, evidence)
                if change is not None:
                    changes.append(change)
                    if self._evictions_capped:
                        self.judged_in_stall_grace += len(to_evict)
                    elif self._evictions_run_capped:
                        self.judged_in_member_grace += len(to_evict)
        return changes, self._applied >= len(todo)


def sweep(
    store: RegistryStore,
    now: float,
    policy: HealthPolicy,
    version: int = 0,
    owns: Callable[[ServiceKey], bool] | None = None,
    preservation: SelfPreservation | None = None,
) -> list[ServiceChanged]:
    """Mark silent instances unhealthy and evict dead ones; return the changes.

    A whole pass at once.  ``version`` stamps every change of this sweep;
    ``owns`` limits the sweep to the services this node is responsible for
    (None: all of them); ``preservation`` decides whether this sweep may
    evict (None: always).
    """
    run = SweepPass(store, now, policy, owns, step=2**62)
    run.advance()
    return run.finish(now, version, preservation)
