"""A peer that keeps dropping out and coming back does not stop the judging cluster-wide.

Found last stop (starve13's notice, left open): every member coming (back) into the view
starts a grace period on every other node (its beats may have gone to that member while
we could not hear it), and each grace restarted the wait.  So a peer in a crash loop (or
behind a flapping link) coming back faster than ``unhealthy_after`` made every other node
judge nobody at all, and faster than ``evict_after`` evict nobody: a dead instance of any
service stayed healthy cluster-wide for as long as the peer flapped.

The rule now (core/health ``grace_threshold``, docs/DISTRO.md "A run of graces is
bounded"): a grace starting while the last one still holds evictions continues its *run*,
and every instance counts as beating at the last grace's start, but no later than
``unhealthy_after`` after its own last beat or the run's start, whichever is later.
One grace is unchanged; however often a peer flaps, a dead instance is marked after
``2 x unhealthy_after`` from the run's start and evicted after ``evict_after +
unhealthy_after``, and a live one (beating here) is never judged.

Driven on a fake clock as the runtime drives the core: n1 with peers n2 (always up) and
n3, which restarts again and again (a new epoch each time: it is up for ``UP`` s, then
silent until n1 finds it down and a little more); the service is n1's in every view.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from answers import peer_reply, served_map, stats_map
from test_distro_faults import CLUSTER, POLICY, Member, keys_owned_by

from meshreg.core.distro import PeerCall
from meshreg.core.effects import ServiceChanged
from meshreg.core.health import grace_threshold
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import parse_request
from meshreg.wire.peer import Beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"
DEAD = InstanceId("10.9.0.1", 80, "DEFAULT")
LIVE = InstanceId("10.9.0.2", 80, "DEFAULT")
STEP = 0.1  # s between loop turns (input arrives at least this often)
BEAT_EVERY = 0.5  # s between the live provider's beats
UP = 1.0  # s n3 is up in each of its lives
DOWN = CLUSTER.peer_timeout + 0.5  # s silent: n1 finds it down, then it is back
U, E = POLICY.unhealthy_after, POLICY.evict_after


def request(node: Any, op: str, key: ServiceKey, iid: InstanceId, now: float) -> Any:
    names = {"namespace": key.namespace, "group": key.group, "service": key.service}
    body = {"v": 1, "id": 1, "op": op, **names, "ip": iid.ip, "port": iid.port}
    return served_map(node, parse_request(msgpack.packb(body)), now)


class Flapping:
    """n1 (a ready ``Member``) holding a dead and a live instance of a service it owns in
    every view, while n3 restarts every ``UP + DOWN`` s; records n1's judgments."""

    def __init__(self, restarts: bool = True) -> None:
        self.restarts = restarts  # False: a flapping link (the same incarnation back)
        self.m = Member()
        self.node = self.m.node
        # n1's with n3 or without it (a member leaving moves only its own services)
        (self.key,) = keys_owned_by("n1", ("n1", "n2", "n3"), 1)
        for iid in (DEAD, LIVE):
            request(self.node, "register", self.key, iid, self.m.now)
        self.judged: list[tuple[float, InstanceId, str]] = []  # (time, instance, reason)
        self.epoch = 9
        self.joins = 0

    def pump(self) -> None:
        for effect in self.node.take_effects():
            if isinstance(effect, ServiceChanged) and effect.reason in ("unhealthy", "evicted"):
                ids = [InstanceId(v.ip, v.port, v.cluster) for v in effect.upserted]
                ids += list(effect.removed)
                for iid in ids:
                    self.judged.append((self.m.now, iid, effect.reason))
            elif isinstance(effect, PeerCall):  # every round answered at once: nothing differs
                page = {"node": effect.node_id, "digests": [], "more": False}
                peer_reply(self.node, effect.tag, page, self.m.now)

    def run(self, seconds: float, flapping: bool = True, dead_beats_until: float = 0.0) -> None:
        """Turns of ``STEP`` s for ``seconds``: n2 beacons, n3 too while up (each life a
        new epoch), LIVE beats every ``BEAT_EVERY`` s, DEAD until ``dead_beats_until``."""
        m, start = self.m, self.m.now
        next_beat = m.now
        was_up = True
        for _ in range(round(seconds / STEP)):
            m.now = round(m.now + STEP, 6)
            phase = (m.now - start) % (UP + DOWN) if flapping else 0.0
            up = phase < UP
            if up and not was_up and self.restarts:
                self.epoch += 1  # a restart: a new incarnation
            was_up = up
            view = ("n1", "n2", "n3") if up else ("n1", "n2")
            self.node.on_replication(Beacon("n2", A, 9, True, 0, view), m.now)
            if up:
                self.node.on_replication(Beacon("n3", B, self.epoch, True, 0, view), m.now)
            if m.now >= next_beat:
                request(self.node, "beat", self.key, LIVE, m.now)
                if m.now <= dead_beats_until:
                    request(self.node, "beat", self.key, DEAD, m.now)
                next_beat = m.now + BEAT_EVERY
            self.node.tick(m.now)
            self.pump()

    def first(self, iid: InstanceId, reason: str) -> float | None:
        return next((t for t, i, r in self.judged if i == iid and r == reason), None)


@pytest.mark.parametrize("restarts", [True, False], ids=["crash loop", "flapping link"])
def test_a_peer_in_a_crash_loop_does_not_stop_the_judging_of_a_dead_instance(
    restarts: bool,
) -> None:
    f = Flapping(restarts)
    start = f.m.now
    f.run(1.0, flapping=False, dead_beats_until=start + 1.0)  # both beat, n3 steady
    last_dead_beat = f.m.now
    f.run(30.0)  # n3 restarts every 3 s: a run of graces from its first return
    marked, evicted = f.first(DEAD, "unhealthy"), f.first(DEAD, "evicted")
    run_start = last_dead_beat + UP + DOWN  # its first return: the run's first grace
    slack = POLICY.check_interval + 2 * STEP
    assert marked is not None, f"never marked unhealthy while n3 flapped: {f.judged}"
    assert marked <= run_start + 2 * U + slack, (marked, run_start)
    assert evicted is not None, f"never evicted while n3 flapped: {f.judged}"
    assert evicted <= run_start + E + U + slack, (evicted, run_start)
    assert not [j for j in f.judged if j[1] == LIVE], f"a live instance was judged: {f.judged}"
    stats = stats_map(f.node, f.m.now)
    if restarts:  # held out from its second restart: its returns start no grace here
        assert stats["peers_held"] == 1
    else:  # a link: never held; the run of graces is bounded
        assert stats["peers_held"] == 0 and stats["judged_in_member_grace"] >= 1


def test_one_return_still_gives_every_instance_the_whole_grace() -> None:
    """A lone grace is what it was: nothing judged for ``unhealthy_after`` after the
    member came back, evictions for ``evict_after`` (the run bound never cuts it)."""
    f = Flapping()
    # steady for longer than evict_after: n1's own start (a grace too) is a run of its own
    f.run(E + 1.0, flapping=False, dead_beats_until=f.m.now + E + 1.0)
    m = f.m
    # n3 goes away once, and comes back after DOWN s (a new incarnation)
    for _ in range(round(DOWN / STEP)):
        m.now = round(m.now + STEP, 6)
        f.node.on_replication(Beacon("n2", A, 9, True, 0, ("n1", "n2")), m.now)
        f.node.tick(m.now)
        f.pump()
    back = m.now
    f.epoch += 1
    f.run(E + U + 2.0, flapping=False)
    marked, evicted = f.first(DEAD, "unhealthy"), f.first(DEAD, "evicted")
    assert marked is not None and marked >= back + U, (marked, back)
    assert evicted is not None and evicted >= back + E, (evicted, back)
    assert not [j for j in f.judged if j[1] == LIVE]
    assert stats_map(f.node, f.m.now)["judged_in_member_grace"] == 0


@pytest.mark.parametrize("gap", [E + U + 0.5, 2 * (E + U)])
def test_a_grace_after_the_run_ended_starts_a_new_run(gap: float) -> None:
    """Graces less than ``evict_after + unhealthy_after`` apart are one run (a sweep has
    had time to make the evictions the last one held); further apart, a new one."""
    f = Flapping()
    reg = f.node.registry
    reg.start_grace(100.0)
    assert reg.grace_run_began == 100.0
    reg.start_grace(102.0)  # within the run
    reg.start_grace(104.0)
    assert (reg.watching_since, reg.grace_run_began) == (104.0, 100.0)
    reg.start_grace(104.0 + E + 0.5)  # as the evictions it held fall due: the same run
    assert reg.grace_run_began == 100.0
    reg.start_grace(104.0 + E + 0.5 + gap)
    t = 104.0 + E + 0.5 + gap
    assert (reg.watching_since, reg.grace_run_began) == (t, t)


def test_the_threshold_in_a_run_of_graces() -> None:
    """``grace_threshold``: one grace holds everyone for the timeout; in a run, a silence
    of the timeout plus ``unhealthy_after`` is judged once the run is that old."""
    now = 100.0
    before = now - U
    assert grace_threshold(before, before - 1, before - 1, U) == before  # no grace now
    assert grace_threshold(before, now - 1, now - 1, U) == -math.inf  # one grace: nobody
    assert grace_threshold(before, now - 1, now - 2 * U + 0.5, U) == -math.inf  # run young
    assert grace_threshold(before, now - 1, now - 2 * U, U) == before - U  # run old enough
    assert grace_threshold(-math.inf, now - 1, now - 9 * U, U) == -math.inf  # (held anyway)
