"""A node whose own loop stalls again and again still judges its instances (review F-starve).

Found by an outside review: every stall of its own made a node judge nobody for a fresh
``unhealthy_after``, so a node stopped (SIGSTOP, a freeze, a starved loop) for more than
its stall threshold at least once every ``unhealthy_after`` judged nobody at all: a dead
instance (its provider killed) stayed healthy for 44 s with ``unhealthy_after`` 3 s.

The rule now (docs/DISTRO.md, "Its own stalls"): a stall still starts a grace period (its
beats may have waited unread in the sockets, or gone to its peers), but the grace is
bounded in the node's *awake* time: an instance silent for the timeout plus
``unhealthy_after`` of awake time (the seconds stopped do not count) is judged even in a
grace.  So a dead instance is marked unhealthy after ``2 * unhealthy_after`` and evicted
after ``evict_after + unhealthy_after`` of awake time however often the node stalls,
and a live instance, whose beats waited out each stall in the socket, is never judged;
after one stall, no instance that was not already silent past ``unhealthy_after`` before
it is judged in the grace.

Driven on a fake clock as the runtime drives the core: the loop wakes at least every
0.1 s (input) and when the core asks; a stall is a leap of the clock with nothing read;
on resuming, the stall check comes first, then the input that waited (the live
instance's beat, the peers' beacons), then the tick.  The timings of the node in the
review (``unhealthy_after`` 3 s, ``evict_after`` 6 s), stopped for 1.6 s every 2.9 s
(``unhealthy_after`` - 0.1 s): awake 45 % of the time.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from answers import peer_reply, served_map, stats_map
from test_distro_faults import CLUSTER, Member, keys_owned_by

from meshreg.core.distro import CATCH_UP_PATIENCE, DistroNode
from meshreg.core.effects import PeerCall, ServiceChanged, StallDetected
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import HELD_SWEEP_RETRY, RegistryNode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import parse_request

POLICY = HealthPolicy(check_interval=0.5, unhealthy_after=3.0, evict_after=6.0)
PERIOD = POLICY.unhealthy_after - 0.1  # s between the starts of two stalls
STALL = 1.6  # s stopped each time: more than the stall threshold (1 s alone, 0.5 s member)
STEP = 0.1  # s: the loop wakes at least this often while awake (input arrives)
BEAT_EVERY = 0.5  # s between the live provider's beats
DEAD = InstanceId("10.9.0.1", 80, "DEFAULT")
LIVE = InstanceId("10.9.0.2", 80, "DEFAULT")
LONE_KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
Seen = tuple[float, float]  # (real, awake) s since the dead instance's last beat


def request(node: Any, op: str, key: ServiceKey, iid: InstanceId, now: float) -> Any:
    names = {"namespace": key.namespace, "group": key.group, "service": key.service}
    body = {"v": 1, "id": 1, "op": op, **names, "ip": iid.ip, "port": iid.port}
    return served_map(node, parse_request(msgpack.packb(body)), now)


class Stalling:
    """A node (a lone ``RegistryNode`` or a member) stopped for ``STALL`` s every
    ``PERIOD`` s, a dead and a live instance of ``key`` registered at 0; it records when
    the dead one is marked unhealthy and evicted, in real and in awake time."""

    def __init__(
        self, node: Any, key: ServiceKey, now: float = 0.0, member: Any = None, answer: bool = True
    ) -> None:
        """``member``: the test_distro_faults ``Member`` whose peers beacon; ``answer``
        False: they never answer a round (the resync after a stall ends at its deadline)."""
        self.node, self.key, self.now, self.member = node, key, now, member
        self.answer = answer
        self.registry: RegistryNode = node.registry if isinstance(node, DistroNode) else node
        for iid in (DEAD, LIVE):
            request(node, "register", key, iid, now)
        self.start = now
        self.awake = 0.0  # s the node was awake since the dead instance's last beat
        self.next_beat = now + BEAT_EVERY
        self.wake = node.tick(now)
        self.changes: list[tuple[float, float, ServiceChanged]] = []  # judgments: (real, awake, c)
        self.stalls_seen = 0
        self.take()

    def take(self) -> None:
        for effect in self.node.take_effects():
            if isinstance(effect, ServiceChanged) and effect.reason in ("unhealthy", "evicted"):
                self.changes.append((self.now - self.start, self.awake, effect))
            elif isinstance(effect, StallDetected):
                self.stalls_seen += 1
            elif isinstance(effect, PeerCall) and self.member is not None and self.answer:
                # the peers answer every round at once (nothing differs)
                page = {"node": effect.node_id, "digests": [], "more": False}
                peer_reply(self.node, effect.tag, page, self.now)

    def inputs(self, queued: bool = False) -> None:
        """What reaches the loop now: the live provider's beat if one is due (one that
        waited out a stall, ``queued``), the peers' beacons."""
        if self.member is not None:
            self.member.now = self.now
            self.member.beacons(("n1", "n2", "n3"))
        if self.now >= self.next_beat or queued:
            request(self.node, "beat", self.key, LIVE, self.now)
            self.next_beat = self.now + BEAT_EVERY
        self.take()

    def turn(self, dt: float) -> None:
        before = self.now
        self.now = min(before + dt, self.wake) if self.wake > before else before + dt
        self.awake += self.now - before
        self.inputs()
        self.wake = self.node.tick(self.now)
        self.take()

    def cycle(self) -> None:
        """``PERIOD - STALL`` s awake, then stopped for ``STALL`` s."""
        end = self.now + PERIOD - STALL
        while self.now < end - 1e-9:
            self.turn(min(STEP, end - self.now))
        self.now += STALL  # stopped: no tick, nothing read
        assert self.registry.check_stall(self.now)  # first, before any input (runtime)
        self.take()
        self.inputs(queued=True)  # the beat that waited in the socket
        self.wake = self.node.tick(self.now)
        self.take()

    def judged(self, iid: InstanceId) -> tuple[Seen | None, Seen | None]:
        """((real, awake) s when ``iid`` was marked unhealthy, ... when it was evicted)."""
        marked = evicted = None
        for real, awake, change in self.changes:
            if marked is None and any(
                InstanceId(v.ip, v.port, v.cluster) == iid and not v.healthy
                for v in change.upserted
            ):
                marked = (real, awake)
            if evicted is None and iid in change.removed:
                evicted = (real, awake)
        return marked, evicted

    def run(self, seconds: float) -> None:
        while self.now - self.start < seconds:
            self.cycle()


def lone(policy: HealthPolicy = POLICY) -> Stalling:
    return Stalling(RegistryNode(policy, 1, 0.0), LONE_KEY)


def member(policy: HealthPolicy = POLICY, answer: bool = True) -> Stalling:
    """n1 with peers n2 and n3 (test_distro_faults: peer timeout 1.5 s, so a stall
    threshold of 0.5 s), caught up; the instances are of a service n1 judges."""
    m = Member.__new__(Member)
    m.now, m.effects = 0.0, []
    peers = ["10.0.0.2:7800", "10.0.0.3:7800"]
    m.node = DistroNode(policy, CLUSTER, "n1", "10.0.0.1:7800", peers, 7, 0.0)
    m.beacons(("n1", "n2", "n3"))
    m.step()
    for call in [e for e in m.effects if isinstance(e, PeerCall) and e.op != "beacon"]:
        peer_reply(m.node, call.tag, {"node": call.node_id, "digests": [], "more": False}, 0)
    m.step()
    assert m.node.ready and m.node.members() == ("n1", "n2", "n3")
    (key,) = keys_owned_by("n1", ("n1", "n2", "n3"), 1)
    return Stalling(m.node, key, m.now, member=m, answer=answer)


def member_slow_sweeps() -> Stalling:
    """A sweep every 2 s: longer than the node stays awake (1.3 s), so each one falls due
    while it is stopped and comes up just as it resumes, held by that stall's resync.
    (A lone node asks to wake only for its sweeps: stopped less than the 2 s to the next
    one, it was not late, no stall, and it judges by real time as it should.)"""
    return member(replace(POLICY, check_interval=2.0))


CASES = {"lone": lone, "member": member, "member-slow-sweeps": member_slow_sweeps}


@pytest.mark.parametrize("case", list(CASES))
def test_a_node_that_stalls_every_unhealthy_after_still_judges_a_dead_instance(case: str) -> None:
    s = CASES[case]()
    s.run(40.0)  # the review saw a dead instance healthy for 44 s
    marked, evicted = s.judged(DEAD)
    cycles = s.stalls_seen
    assert cycles >= 13 and s.registry.stalls == cycles  # every stall was one
    # always in a stall's grace: marked once the node was awake 2 * unhealthy_after since
    # the last beat, evicted after evict_after + unhealthy_after, at the first sweep after
    # that: within a check_interval (or the rest of an awake spell, when the next sweep
    # falls in a stall), a held sweep's retry and a loop step; the seconds it was stopped
    # did not count
    policy = s.registry.policy
    u, e = policy.unhealthy_after, policy.evict_after
    late = min(policy.check_interval, PERIOD - STALL) + HELD_SWEEP_RETRY + STEP + 1e-6
    assert marked is not None, f"never marked in 40 s of {cycles} stalls: {s.changes}"
    assert 2 * u <= marked[1] <= 2 * u + late, marked
    assert evicted is not None, f"never evicted in 40 s of {cycles} stalls"
    assert e + u <= evicted[1] <= e + u + late, evicted
    # in real time: about 1 / 0.45 of that (awake 1.3 s of every 2.9 s), and bounded
    awake_share = (PERIOD - STALL) / PERIOD
    assert marked[0] <= (2 * u + late) / awake_share + PERIOD, marked
    assert evicted[0] <= (e + u + late) / awake_share + PERIOD, evicted
    # the live instance, whose beat waited out every stall in the socket: never judged
    assert s.judged(LIVE) == (None, None), s.changes
    stats = stats_map(s.node, s.now)
    # judged in a stall's grace (the old rule held them): the mark and the eviction
    assert stats["judged_in_stall_grace"] == 2, stats


def test_a_stall_while_resyncing_does_not_restart_the_resync_deadline() -> None:
    """The peers beacon but never answer a round: each stall's resync ends only at its
    deadline (``CATCH_UP_PATIENCE`` peer timeouts, 15 s here).  A stall while resyncing
    keeps that deadline: restarted at every stall, it never came, and nobody was judged."""
    s = member(answer=False)
    patience = CATCH_UP_PATIENCE * CLUSTER.peer_timeout
    s.run(2 * (patience + PERIOD))
    marked, evicted = s.judged(DEAD)
    assert s.stalls_seen >= 10
    assert marked is not None, f"never marked in {s.now:.1f} s: {s.changes}"
    assert marked[0] <= patience + PERIOD, marked  # when the first deadline has passed
    assert evicted is not None, f"never evicted in {s.now:.1f} s: {s.changes}"
    assert s.judged(LIVE) == (None, None), s.changes


@pytest.mark.parametrize("make", [lone, member], ids=["lone", "member"])
def test_one_long_stall_still_judges_nobody_on_the_time_it_was_stopped(make: Any) -> None:
    """The original protection: stopped past every timeout (a SIGSTOP of 20 s), the node
    marks and evicts nobody for that silence: the live instance's beat waited in the
    socket, and the dead one is judged only when the grace is over (``unhealthy_after``
    and ``evict_after`` after the stall)."""
    s = make()
    for _ in range(5):  # 0.5 s awake: both beat (the dead one for the last time)
        s.turn(STEP)
    request(s.node, "beat", s.key, DEAD, s.now)
    s.awake = 0.0
    s.now += 20.0  # stopped for longer than evict_after
    assert s.registry.check_stall(s.now)
    s.take()
    s.inputs(queued=True)
    s.wake = s.node.tick(s.now)
    s.take()
    resumed = s.now
    while s.now < resumed + 2.5:  # awake 2.5 s since its last beat: < unhealthy_after
        s.turn(STEP)
    assert s.changes == [], "judged on the seconds it was stopped"
    assert math.isclose(s.awake, 2.5, abs_tol=1e-6)
    while s.now < resumed + POLICY.evict_after + 1.0:
        s.turn(STEP)
    marked, evicted = s.judged(DEAD)
    assert marked is not None and evicted is not None  # judged when the grace is over
    assert POLICY.unhealthy_after <= marked[1] and POLICY.evict_after <= evicted[1]
    assert s.judged(LIVE) == (None, None)
    assert stats_map(s.node, s.now)["judged_in_stall_grace"] == 0


@pytest.mark.parametrize("make", [lone, member], ids=["lone", "member"])
def test_after_one_stall_an_instance_gets_the_whole_grace_to_be_heard_again(make: Any) -> None:
    """A stall's grace is not only for the seconds stopped: beats may have gone to the
    peers meanwhile (the client failed over), and the evidence takes a while to come back.
    An instance silent 1.5 s before a stall and 2.9 s after it (4.4 s of awake time, more
    than ``unhealthy_after``) is not judged while the grace lasts (3 s after the stall):
    only silence of ``2 * unhealthy_after`` of awake time cuts a grace short.  (Found by
    tests/integration/test_late_writes.py with a first version of the fix that counted
    only awake time: the owner briefly marked a live instance it had not heard of since
    before its stall, whose new registration was on its way from a peer.)"""
    s = make()
    while s.now < 1.5:  # the live one beats, the other one is heard of no more
        s.turn(STEP)
    s.now += 10.0
    assert s.registry.check_stall(s.now)
    s.take()
    s.inputs(queued=True)
    s.wake = s.node.tick(s.now)
    s.take()
    resumed = s.now
    while s.now < resumed + 2.9:
        s.turn(STEP)
    assert s.changes == [], "judged in the grace after one stall"
    while s.now < resumed + POLICY.unhealthy_after + POLICY.check_interval + STEP:
        s.turn(STEP)
    assert s.judged(DEAD)[0] is not None  # the grace is over: judged as before
    assert s.judged(LIVE) == (None, None)
