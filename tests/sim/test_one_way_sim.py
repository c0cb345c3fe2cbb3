"""Failure detection under one-way and partial link faults (review14c F1, F2, pair cuts).

Three nodes (four for the crossing cuts, five for the four cuts) at the short timings
of ``test_faults_sim`` (check 0.5 s, unhealthy 3 s, evict 6 s, peer timeout 1.5 s,
beats and renewals every 0.5 s); the roles ``a``, ``b`` (the two ends of the faulty
link) and ``c`` (the third node; with four, ``c`` and ``d`` the ends of the second cut;
with five, see 6) are drawn from the seed.
On every node, providers of both kinds talk to that node only (``Client([node])``):

* a session client (``test_sessions_sim.SessionClient``, renewing every beat);
* per-instance beaters (``test_faults_sim.Beater``, ``sessions=False``: the v1 beat);

all of them live, plus one session client and a few beaters per node that are killed
(stopped without deregistering, their instances spread over every service) while the
fault is on.  The faults, each longer than several ``evict_after``:

1. **a's replication PUB lost to b** (review14c F1): every message a's PUB (port P+2)
   sends b is lost; everything else works (b's requests to a and their replies, a
   hearing b, both hearing c);
2. **a's PUB lost to every peer** (review14c F2: a's P+2 closed; a hears everyone,
   requests work both ways);
3. **a pair cut** a <-> b (``oneway_loss`` 1.0 both ways; c hears both);
4. **a flapping pair cut**: the a <-> b cut toggling every 0.5-2 s (seeded) for 40 s;
5. **two cuts that cross** (review15 F2): four nodes, a <-> b and c <-> d cut, so no
   node hears every other; a session's renewals reach the judge of its services through
   a node that hears both ends (relayed);
6. **four cuts on five nodes** (review16 F3): a <-> b, a <-> d, b <-> c, b <-> e cut, so
   a is three hops from b and neither knows the other's view: the judge of a service
   may be three hops from the node its providers beat to, and its judgment three hops
   from the nodes that must show it (passed on by every node, news only);
7. **crossing cuts, then four cuts**: five nodes, a <-> b and c <-> d cut for 20 s (e
   hears everyone), then every rule out for up to 0.2 s (as a firewall is rewritten)
   and the four cuts of 6 for 20 s: the cuts change while the views never agree, and a
   path from the node applying a provider's beats to the judge breaks unnoticed for a
   peer timeout (before: a live beater marked by the full hearer, 1 seed in 50);
8. **the same with stalls**: every node stalls (SIGSTOP) three times around the change,
   each for 5-10 % of ``unhealthy_after`` (the 1 s stalls of 5 nodes with 20,000
   beaters on 2 cores); and with stalls of 30-35 % of it, pinned seeds only (below).

``MESHREG_SIM_ONEWAY_TIMINGS=default`` runs them at the product's timings (5 s beats,
15/30 s, peer timeout 3 s), the fault's times scaled by 5.

Checked (every ``SAMPLE`` s of simulated time):

(i) every live provider's instances are listed and healthy on every node, from the
    time every provider has registered (``CHECK_FROM``) to the end: no node is faulted
    (none is paused, down or cut off from the providers talking to it), so none is
    exempt;
(ii) the killed providers' instances are gone from every node within a bound of the
    kill, and stay gone, while the fault is still on (it lasts well past the kill plus
    the bound).  The last beat or renewal is at most one beat before the kill.

    * A fault that holds still (1-3): ``DEAD_BOUND`` = ``evict_after +
      unhealthy_after + peer_timeout + 2 x check_interval + beat`` (12 s here).
      Silent for ``evict_after``, an instance is evicted by its judge's next sweep
      (``check_interval``).  The fault began 5-10 s before the kill; should
      a judge take over services when the kill is near (a fix that hands disputed
      services to the nodes that hear everyone), an adopted service's grace or a run of
      member graces holds the judgment at most ``unhealthy_after`` longer (core/health
      ``grace_threshold``).  The eviction reaches the other nodes by replication or,
      where a PUB is lost, by a repair round (a peer timeout); one more check interval
      for a sweep done in steps, and the beat.
    * A flapping cut (4): ``FLAP_DEAD_BOUND`` = ``2 x evict_after + unhealthy_after +
      peer_timeout + 2 x check_interval + CUT_MAX`` (19.5 s here).  Every return of a
      peer starts a member grace, and a run of graces holds a judgment ``evict_after +
      unhealthy_after`` after *the later of the run's start and the death*
      (docs/DISTRO.md, "A run of graces is bounded").  A run may start after the death:
      a grace that comes ``evict_after`` or more after the last one starts a new run.
      But with no grace for ``evict_after`` the eviction falls due (the instance has
      been silent that long too, if the gap began after the death), so a run that still
      holds the instance starts at most ``evict_after`` after the death: ``2 x
      evict_after + unhealthy_after`` from the death.  Then the sweep, a repair round
      through c, and an eviction made while the pair is cut reaches the far end once
      the cut lifts (``CUT_MAX``, 2 s) at the latest.  (Not counted: a grace that lands
      in the check interval between the eviction falling due and the sweep that would
      make it, which starts yet another run; main did that once in 100 seeds, 1806:
      gone 19.45 s after the kill.)  The review's measurement of the same fault on
      real processes (pair-flap: 9.0-10.9 s) is inside both bounds.

(iii) the end invariants of ``test_distro_sim`` (same tables, every live instance
    listed and healthy, every dead one gone, members agree, quiet), after the fault
    and a settle period; and a dead instance gone from every node never comes back.

Each run also checks that its fault lost messages (the counts are in the report line):
a scenario that loses nothing tests nothing.

Replay one run with a trace (``MESHREG_SIM_TRACE=/tmp/t.txt`` writes it to a file)::

    MESHREG_SIM_ONEWAY_SEED=1500 MESHREG_SIM_ONEWAY_SCENARIO=pub-a-to-b \\
        pytest tests/sim/test_one_way_sim.py -k replay -s

(scenarios: ``pub-a-to-b``, ``pub-a-to-all``, ``pair-cut``, ``pair-flap``,
``ports-a-from-b``, ``cross-cuts``, ``five-cuts``, ``cross-then-five``,
``cross-then-five-stalls``, ``cross-then-five-long-stalls``; the seed is
the network seed the failure message prints).  The number of seeds follows
``MESHREG_SIM_FAULT_SEEDS``: an eighth of it (at least 3) per fault that holds still, a
quarter (at least 6) for the flapping cut, plus seed 1850 there (see its test).
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import pytest

from meshreg.addresses import PEER_PORT_OFFSET
from meshreg.core.effects import MemberState
from meshreg.transport.memory import MemChannel, MemPub

sys.path.insert(0, os.path.dirname(__file__))

from network import Network  # noqa: E402
from test_distro_sim import (  # noqa: E402
    TRACE_FILE,
    Probe,
    check_invariants,
    lookup,
    run_settled,
    scenario_message,
    watch_no_resurrection,
)
from test_faults_sim import SHORT, Bad, Beater  # noqa: E402
from test_faults_sim import TIMINGS as TIMINGS_BY_NAME  # noqa: E402
from test_sessions_sim import SessionClient, SessionInstance  # noqa: E402

FAULT_SEEDS = int(os.environ.get("MESHREG_SIM_FAULT_SEEDS", "24"))
SEEDS = max(3, FAULT_SEEDS // 8)  # per fault that holds still
FLAP_SEEDS = max(6, FAULT_SEEDS // 4)  # the flapping cut: timing matters more
# MESHREG_SIM_ONEWAY_TIMINGS=default runs the scenarios at the product's timings (5 s
# beats, 15/30 s, peer timeout 3 s), the fault's times scaled by 5: beats then come
# seldom against the peer timeout, as on real nodes
TIMINGS = TIMINGS_BY_NAME[os.environ.get("MESHREG_SIM_ONEWAY_TIMINGS", "short")]
SCALE = TIMINGS.health.unhealthy_after / SHORT.health.unhealthy_after
SERVICES = 8  # svc0..svc7: every node owns some of them in every view
SAMPLE = 0.1 * SCALE  # s between two samples
CHECK_FROM = 8.0 * SCALE  # s: every provider registered (they start at 1-3 s) and beating
FAULT_AT = 10.0 * SCALE  # s: the fault starts
FAULT_LENGTH = 40.0 * SCALE  # s: more than six evict_after
KILL_AFTER = (5.0 * SCALE, 10.0 * SCALE)  # s after the fault starts: views settled into it
SETTLE = 30.0 + 10 * TIMINGS.beat  # s after the fault: the last QUIET (20 s) of it quiet
_h, _c = TIMINGS.health, TIMINGS.cluster
CUT_MAX = 2.0  # s: the longest a flapping cut stays on (or off)
# (ii)'s bound from the kill, for a fault that holds still and for a flapping one
DEAD_BOUND = (
    _h.evict_after + _h.unhealthy_after + _c.peer_timeout + 2 * _h.check_interval + TIMINGS.beat
)
FLAP_DEAD_BOUND = (
    2 * _h.evict_after + _h.unhealthy_after + _c.peer_timeout + 2 * _h.check_interval + CUT_MAX
)
SCENARIOS = (
    "pub-a-to-b",
    "pub-a-to-all",
    "pair-cut",
    "pair-flap",
    "ports-a-from-b",
    "cross-cuts",
    "five-cuts",
    "cross-then-five",
    "cross-then-five-stalls",
    "cross-then-five-long-stalls",
)
REPLAY = (
    "MESHREG_SIM_ONEWAY_SEED={seed} MESHREG_SIM_ONEWAY_SCENARIO={scenario} "
    "pytest tests/sim/test_one_way_sim.py -k replay -s"
)


class PinnedSessions(SessionClient):
    """A session client that talks to one node only (``Client([node])``) and renews every
    ``interval`` s (the real client renews every beat interval)."""

    def __init__(
        self,
        net: Network,
        name: str,
        node: str,
        services: int,
        per_service: int,
        start: float,
        interval: float,
        stop_at: float | None = None,
    ) -> None:
        self.node = node
        self.interval = interval
        super().__init__(net, name, services, per_service, start, stop_at=stop_at)
        self.entry = node

    def send(self, op: str, fields: dict[str, Any], on_done: Any) -> None:
        net = self.net
        net.client_request(net.nodes[self.node], op, next(net.req_ids), fields, on_done)

    def _start(self) -> None:
        self.active = True
        self.net.log(f"session client {self.name} starts ({self.sid[:8]}) on {self.node}")
        self.send("session_open", {"session": self.sid}, lambda outcome: None)
        for i in range(len(self.fields)):
            self._register(i)
        self.net.after(self.interval, self._renew)

    def _renew(self, again: bool = False) -> None:
        if not self.active:
            return
        super()._renew(again=True)  # one renewal (no retry elsewhere: there is no elsewhere)
        if not again:
            self.net.after(self.interval, self._renew)


Instance = Beater | SessionInstance


class OneWay:
    """One scenario run: the cluster, its providers, the fault, the probe."""

    def __init__(self, scenario: str, seed: int, trace: bool = False) -> None:
        assert scenario in SCENARIOS, scenario
        self.scenario = scenario
        self.rng = random.Random(f"one-way-{scenario}-{seed}")  # the plan's own stream
        crossing = scenario == "cross-cuts"
        five = scenario.startswith(("five-cuts", "cross-then-five"))
        ids = [f"n{i}" for i in range(5 if five else 4 if crossing else 3)]
        self.net = net = Network(
            seed,
            ids,
            health=TIMINGS.health,
            cluster=TIMINGS.cluster,
            trace=trace or bool(TRACE_FILE),
        )
        if crossing:  # a <-> b and c <-> d cut: nobody hears everyone
            self.a, self.b, self.c, self.d = self.rng.sample(ids, 4)
        elif five:  # a <-> b, a <-> d, b <-> c, b <-> e cut: a is three hops from b
            self.a, self.b, self.c, self.d, self.e = self.rng.sample(ids, 5)
        else:
            self.a, self.b = self.rng.sample(ids, 2)
            self.c = next(n for n in ids if n not in (self.a, self.b))
        for i, node_id in enumerate(ids):
            net.at(0.1 * i, net.start, node_id)
        self.fault_end = FAULT_AT + FAULT_LENGTH
        self.kill_at = FAULT_AT + self.rng.uniform(*KILL_AFTER)
        self.bound = FLAP_DEAD_BOUND if scenario == "pair-flap" else DEAD_BOUND
        self.deadline = self.kill_at + self.bound
        self.end = self.fault_end + SETTLE
        # providers: on every node, live ones of both kinds and doomed ones of both kinds
        self.sessions: list[PinnedSessions] = []
        self.beaters: list[Beater] = []
        self.doomed_sessions: list[PinnedSessions] = []
        self.doomed_beaters: list[Beater] = []
        beat = TIMINGS.beat
        for k, node_id in enumerate(ids):
            start = self.rng.uniform(1.0, 3.0)
            self.sessions.append(
                PinnedSessions(net, f"live-{node_id}", node_id, SERVICES, 3, start, beat)
            )
            self.doomed_sessions.append(
                PinnedSessions(
                    net, f"killed-{node_id}", node_id, SERVICES, 1, start, beat, self.kill_at
                )
            )
            for s in range(SERVICES):
                self.beaters.append(self._beater(node_id, s, None))
            for s in range(SERVICES // 2):  # half of the services, a different half per node
                self.doomed_beaters.append(self._beater(node_id, (s + 2 * k) % SERVICES, True))
        self.live: list[Instance] = [*self.beaters]
        self.live += [inst for c in self.sessions for inst in c.instances]
        self.dead: list[Instance] = [*self.doomed_beaters]
        self.dead += [inst for c in self.doomed_sessions for inst in c.instances]
        # the probe
        self.probe = Probe(net)
        self.bad_live = Bad("live instances missing or unhealthy")
        self.bad_dead = Bad(f"killed instances still listed {self.bound:g}s after the kill")
        self.marked: dict[str, float] = {}  # dead instance -> unhealthy or gone everywhere
        self.gone: dict[str, float] = {}  # dead instance -> gone everywhere (first time)
        self.pub_lost: dict[str, int] = {}  # kind of PUB message -> lost by the fault
        roles = f"a={self.a} b={self.b} c={self.c}"
        if five:
            roles += f" d={self.d} e={self.e}"
        self.plan: list[str] = [roles, f"kill {self.kill_at:.2f}"]
        net.every(SAMPLE, self.sample, start=CHECK_FROM)
        watch_no_resurrection(net, self.dead, self.probe, self.kill_at)  # type: ignore[arg-type]
        getattr(self, "_plan_" + scenario.replace("-", "_"))()

    def _beater(self, node_id: str, service: int, doomed: bool | None) -> Beater:
        index = next(self.net.instance_ids)
        start = self.rng.uniform(1.0, 3.0)
        stop = self.kill_at if doomed else None
        return Beater(self.net, TIMINGS, index, f"svc{service}", node_id, start, stop)

    # -- faults ------------------------------------------------------------------------
    def _lose_pub(self, src: str, dsts: set[str], requests: bool = False) -> None:
        """From ``FAULT_AT`` to the fault's end: lose every message ``src``'s replication
        PUB (port P+2) sends a node in ``dsts``; with ``requests``, also every message
        between their DEALERs and ``src``'s peer port (P+3), both ways (TCP to a port a
        firewall drops carries nothing either way); every other message goes through."""
        net, inspect = self.net, self.net.drop
        assert inspect is not None
        on = [False]
        host, port = net.nodes[src].address.rsplit(":", 1)
        peer_port = f"{host}:{int(port) + PEER_PORT_OFFSET}"

        def to_peer_port(source: MemChannel, dest: MemChannel) -> bool:
            if source.name in dsts and dest.name == src:
                return dest.endpoint == peer_port
            return source.name == src and dest.name in dsts and source.endpoint == peer_port

        def drop(source: MemChannel, dest: MemChannel, frames: list[bytes]) -> bool:
            if requests and on[0] and to_peer_port(source, dest):
                self.pub_lost["request"] = self.pub_lost.get("request", 0) + 1
                return True
            if (
                on[0]
                and type(source) is MemPub
                and source.kind == "PUB"
                and source.name == src
                and dest.name in dsts
            ):
                kind = frames[0].decode(errors="replace")
                self.pub_lost[kind] = self.pub_lost.get(kind, 0) + 1
                return True
            return inspect(source, dest, frames)

        def switch(state: bool) -> None:
            on[0] = state
            net.log(f"PUB {src} -> {sorted(dsts)} {'lost' if state else 'back'}")

        net.drop = drop
        net.at(FAULT_AT, switch, True)
        net.at(self.fault_end, switch, False)

    def _cut(self, state: bool, a: str = "", b: str = "") -> None:
        a, b, net = a or self.a, b or self.b, self.net
        if state:
            net.oneway_loss[(a, b)] = net.oneway_loss[(b, a)] = 1.0
        else:
            net.oneway_loss.pop((a, b), None)
            net.oneway_loss.pop((b, a), None)
        net.log(f"CUT {a} <-> {b} {'on' if state else 'off'}")

    def _plan_pub_a_to_b(self) -> None:
        self.plan.append(f"PUB {self.a} -> {self.b} lost {FAULT_AT:g}+{FAULT_LENGTH:g}")
        self._lose_pub(self.a, {self.b})

    def _plan_ports_a_from_b(self) -> None:
        self.plan.append(
            f"{self.b} cannot reach {self.a}'s P+2 nor P+3 {FAULT_AT:g}+{FAULT_LENGTH:g}"
        )
        self._lose_pub(self.a, {self.b}, requests=True)

    def _plan_pub_a_to_all(self) -> None:
        self.plan.append(f"PUB {self.a} -> everyone lost {FAULT_AT:g}+{FAULT_LENGTH:g}")
        self._lose_pub(self.a, {self.b, self.c})

    def _plan_pair_cut(self) -> None:
        self.plan.append(f"cut {self.a} <-> {self.b} {FAULT_AT:g}+{FAULT_LENGTH:g}")
        self.net.at(FAULT_AT, self._cut, True)
        self.net.at(self.fault_end, self._cut, False)

    def _plan_cross_cuts(self) -> None:
        a, b, c, d = self.a, self.b, self.c, self.d
        self.plan.append(f"cut {a} <-> {b} and {c} <-> {d} {FAULT_AT:g}+{FAULT_LENGTH:g}")
        for x, y in ((a, b), (c, d)):
            self.net.at(FAULT_AT, self._cut, True, x, y)
            self.net.at(self.fault_end, self._cut, False, x, y)

    def _plan_five_cuts(self) -> None:
        a, b, c, d, e = self.a, self.b, self.c, self.d, self.e
        cuts = ((a, b), (a, d), (b, c), (b, e))
        self.plan.append(
            f"cut {', '.join(f'{x} <-> {y}' for x, y in cuts)} {FAULT_AT:g}+{FAULT_LENGTH:g}"
        )
        for x, y in cuts:
            self.net.at(FAULT_AT, self._cut, True, x, y)
            self.net.at(self.fault_end, self._cut, False, x, y)

    def _plan_cross_then_five(self) -> None:
        """The crossing cuts (a <-> b, c <-> d; e hears everyone) for the first half, then
        straight to the four cuts: the views disagree all along, but the full hearer goes
        and the judges change between the two disputes."""
        a, b, c, d, e = self.a, self.b, self.c, self.d, self.e
        switch = FAULT_AT + FAULT_LENGTH / 2
        self.plan.append(
            f"cut {a} <-> {b}, {c} <-> {d} {FAULT_AT:g}+{FAULT_LENGTH / 2:g}, then "
            f"{a} <-> {b}, {a} <-> {d}, {b} <-> {c}, {b} <-> {e} until {self.fault_end:g}"
        )
        for x, y in ((a, b), (c, d)):
            self.net.at(FAULT_AT, self._cut, True, x, y)
            self.net.at(switch, self._cut, False, x, y)
        # as a firewall is rewritten: every rule out, then the new ones, a moment later
        gap = self.rng.uniform(0.0, 0.2)
        for x, y in ((a, b), (a, d), (b, c), (b, e)):
            self.net.at(switch + gap, self._cut, True, x, y)
        for x, y in ((a, b), (a, d), (b, c), (b, e)):
            self.net.at(self.fault_end, self._cut, False, x, y)

    def _plan_cross_then_five_stalls(self, share: tuple[float, float] = (0.05, 0.1)) -> None:
        """``cross-then-five`` on a machine short of CPU: every node stalls three times
        around the change of cuts, each for ``share`` of ``unhealthy_after`` (5-10 %:
        0.75-1.5 s at the product's timings, the 1 s stalls seen on 5 nodes with 20,000
        beaters on 2 cores)."""
        self._plan_cross_then_five()
        switch = FAULT_AT + FAULT_LENGTH / 2
        p, u = TIMINGS.cluster.peer_timeout, TIMINGS.health.unhealthy_after
        for node_id in sorted(self.net.nodes):
            for _ in range(3):
                at = switch + self.rng.uniform(-2 * p, 6 * p)
                length = self.rng.uniform(share[0] * u, share[1] * u)
                self.net.at(at, self._stall, node_id, length)
                self.plan.append(f"stall {node_id} {at:.2f}+{length:.2f}")

    def _plan_cross_then_five_long_stalls(self) -> None:
        """The stalls of ``cross-then-five-stalls``, each 30-35 % of ``unhealthy_after``
        (4.5-5 s at the product's timings)."""
        self._plan_cross_then_five_stalls((0.3, 0.35))

    def _stall(self, node_id: str, length: float) -> None:
        net = self.net
        if net.nodes[node_id].runtime is None or net.is_paused(node_id):
            return
        net.pause(node_id)
        net.at(net.now + length, net.resume, node_id)

    def _plan_pair_flap(self) -> None:
        t, state, flips = FAULT_AT, True, 0
        while t < self.fault_end:
            self.net.at(t, self._cut, state)
            t += self.rng.uniform(0.5, 2.0)
            state, flips = not state, flips + 1
        self.net.at(self.fault_end, self._cut, False)
        self.plan.append(
            f"cut {self.a} <-> {self.b} flapping {FAULT_AT:g}+{FAULT_LENGTH:g} ({flips} flips)"
        )

    # -- the probe ---------------------------------------------------------------------
    def _registered(self, inst: Instance) -> bool:
        if isinstance(inst, Beater):
            return inst.registered_at is not None
        return True  # a session client's: acked long before CHECK_FROM (checked at the end)

    def sample(self) -> None:
        net, now = self.net, self.net.now
        cores = [(n.node_id, n.core) for n in net.live() if n.core is not None]
        tables = [(node_id, core.store.services) for node_id, core in cores]
        bad: list[str] = []
        for inst in self.live:
            if not self._registered(inst):
                bad.append(f"live {inst.name} not registered yet")
                continue
            key, iid = inst.key, inst.iid
            for node_id, services in tables:  # ``lookup``, inlined: the sample's hot loop
                svc = services.get(key)
                rec = svc.instances.get(iid) if svc is not None else None
                if rec is None or not rec.healthy:
                    bad.append(
                        f"{inst.name} {'missing' if rec is None else 'unhealthy'} on {node_id}"
                    )
        self.bad_live.add(now, bad)
        if now < self.kill_at:
            return
        kept: list[str] = []
        for inst in self.dead:
            recs = [(node_id, lookup(core, inst)) for node_id, core in cores]  # type: ignore[arg-type]
            if all(rec is None or not rec.healthy for _, rec in recs):
                self.marked.setdefault(inst.name, now)
            if all(rec is None for _, rec in recs):
                self.gone.setdefault(inst.name, now)
            elif self.deadline <= now < self.fault_end:
                shown = [f"{n}:{'healthy' if r.healthy else 'unhealthy'}" for n, r in recs if r]
                kept.append(f"{inst.name} on {', '.join(shown)}")
        self.bad_dead.add(now, kept)

    # -- running -----------------------------------------------------------------------
    def run(self) -> list[str]:
        net, probe = self.net, self.probe
        problems = run_settled(net, self.end)
        if self.bad_dead.samples:
            problems.insert(0, self.bad_dead.line())
        if self.bad_live.samples:
            problems.insert(0, self.bad_live.line())
        problems += probe.problems
        lost = sum(self.pub_lost.values()) + net.counts.get("lost_oneway", 0)
        if not lost:
            problems.append("the fault lost no message: the scenario tests nothing")
        problems += check_invariants(net, [*self.live, *self.dead])  # type: ignore[list-item]
        return problems

    def _late(self, times: dict[str, float]) -> str:
        if len(times) < len(self.dead):
            return f"{len(self.dead) - len(times)} of {len(self.dead)} never"
        worst = max(times.values()) - self.kill_at
        return f"all within {worst:.2f}s"

    def _downs(self) -> int:
        """Peers seen going down while the fault was on (every node, every incarnation)."""
        return sum(
            1
            for node in self.net.nodes.values()
            for t, event in node.member_events
            if event.state is MemberState.DOWN and FAULT_AT <= t <= self.fault_end
        )

    def report(self) -> str:
        counts = self.net.counts
        lost = (
            f"PUB lost {dict(sorted(self.pub_lost.items()))}"
            if self.pub_lost
            else f"lost one way {counts.get('lost_oneway', 0)}"
        )
        return (
            f"[{self.scenario} seed {self.net.seed}] {'; '.join(self.plan)} | {lost} | "
            f"live bad samples {self.bad_live.samples} (up to {self.bad_live.worst}) | "
            f"killed: marked {self._late(self.marked)}, gone {self._late(self.gone)} "
            f"(bound {self.bound:g}s) | peers seen down {self._downs()} | forwards applied locally "
            f"{counts.get('forward_fallback', 0)}, NOT_FOUND {counts.get('beat_not_found', 0)}"
        )


def check(scenario: str, seed: int, replay: str) -> None:
    run = OneWay(scenario, seed)
    problems = run.run()
    print(run.report())
    if problems:
        message = scenario_message(run.net, f"{scenario}: {'; '.join(run.plan)}", problems)
        pytest.fail(f"{message}\nreplay: {replay}\n{run.report()}", pytrace=False)


def replay_of(scenario: str, seed: int) -> str:
    return REPLAY.format(seed=seed, scenario=scenario)


def seeds(base: int, count: int, pinned: tuple[int, ...] = ()) -> list[int]:
    """Network seeds ``base``, ``base + 1``, ... (``count`` of them), and ``pinned``."""
    return sorted({base + i for i in range(count)} | set(pinned))


@pytest.mark.parametrize("seed", seeds(1500, SEEDS))
def test_replication_pub_lost_one_way_dead_removed_live_kept(seed: int) -> None:
    """review14c F1: b loses what a's replication PUB sends it, nothing else, for 40 s.
    A provider killed meanwhile is evicted everywhere within the bound while the fault
    lasts; no live instance is ever missing or unhealthy."""
    check("pub-a-to-b", seed, replay_of("pub-a-to-b", seed))


@pytest.mark.parametrize("seed", seeds(1900, SEEDS))
def test_peer_ports_unreachable_one_way_dead_removed_live_kept(seed: int) -> None:
    """review15 F1: b cannot reach a's P+2 nor P+3 (a firewall on a that misses b), a
    reaches b.  a's beacons reach b by request, so the views agree, but b can neither
    hear a's deltas nor pull them: a pushes them (b's beacons say it cannot reach a).  A
    provider killed meanwhile is evicted everywhere, b included, within the bound."""
    check("ports-a-from-b", seed, replay_of("ports-a-from-b", seed))


@pytest.mark.parametrize("seed", seeds(1600, SEEDS))
def test_replication_pub_lost_to_every_peer_beat_only_providers_stay_healthy(seed: int) -> None:
    """review14c F2: nobody hears a's PUB (a hears everyone; requests work both ways) for
    40 s.  The per-instance beaters talking to a stay healthy on every node; a provider
    killed meanwhile is evicted everywhere within the bound."""
    check("pub-a-to-all", seed, replay_of("pub-a-to-all", seed))


@pytest.mark.parametrize("seed", seeds(1700, SEEDS))
def test_pair_cut_dead_removed_live_kept_while_it_lasts(seed: int) -> None:
    """a and b cannot reach each other at all for 40 s, c hears both: a provider killed
    meanwhile is evicted everywhere within the bound while the cut lasts, and no live
    instance (of a provider talking to a, b or c) is ever missing or unhealthy."""
    check("pair-cut", seed, replay_of("pair-cut", seed))


@pytest.mark.parametrize("seed", seeds(2000, SEEDS))
def test_crossing_cuts_dead_removed_live_kept_while_they_last(seed: int) -> None:
    """review15 F2: four nodes, a <-> b and c <-> d cut for 40 s, so no node hears every
    other.  Each service is judged by its owner in every view a node knows; a killed
    session client's renewals reach that judge only through a node hearing both
    (relayed).  Killed providers of both kinds are gone everywhere within the bound
    while the cuts last; no live instance is ever missing or unhealthy.  Before: no node
    judged session instances while the views differed this way (dead ones stayed
    healthy cluster-wide for the whole fault)."""
    check("cross-cuts", seed, replay_of("cross-cuts", seed))


@pytest.mark.parametrize("seed", seeds(2100, SEEDS))
def test_five_nodes_four_cuts_dead_removed_live_kept_while_they_last(seed: int) -> None:
    """review16 F3: five nodes, a <-> b, a <-> d, b <-> c and b <-> e cut for 40 s: no
    node hears every other, a and b are three hops apart, and a (b) knows only views
    whose union lacks b (a).  Killed providers of both kinds are gone everywhere within
    the bound while the cuts last; no live instance is ever missing or unhealthy.
    Before: a and b each took peers for full hearers from the views they knew and
    judged nothing, their peers judged only what they owned in every view: the dead
    instances of the services owned by a or b stayed healthy for the whole fault."""
    check("five-cuts", seed, replay_of("five-cuts", seed))


@pytest.mark.parametrize("seed", seeds(1800, FLAP_SEEDS, (1850,)))
def test_flapping_pair_cut_dead_removed_live_never_judged(seed: int) -> None:
    """The a <-> b cut toggling every 0.5-2 s for 40 s: no live instance is ever missing
    or unhealthy, and a provider killed meanwhile is gone everywhere within
    ``FLAP_DEAD_BOUND`` while it flaps (the module's docstring says why that bound).
    Seed 1850 is pinned: in 100 seeds on main (611287b) the only run past the bound (its
    session instances gone 23 s after the kill: the owner, deaf to b at the moment the
    eviction fell due, judged no session, then a new run of graces began)."""
    check("pair-flap", seed, replay_of("pair-flap", seed))


def test_replay_one_way_seed() -> None:
    """Replays MESHREG_SIM_ONEWAY_SEED (the network seed, as the failure message prints
    it) of MESHREG_SIM_ONEWAY_SCENARIO with a trace (skipped when unset)."""
    if "MESHREG_SIM_ONEWAY_SEED" not in os.environ:
        pytest.skip("set MESHREG_SIM_ONEWAY_SEED (and MESHREG_SIM_ONEWAY_SCENARIO) to replay")
    seed = int(os.environ["MESHREG_SIM_ONEWAY_SEED"])
    scenario = os.environ.get("MESHREG_SIM_ONEWAY_SCENARIO", "pub-a-to-b")
    run = OneWay(scenario, seed, trace=True)
    problems = run.run()
    assert run.net.trace is not None
    out = open(TRACE_FILE, "w", encoding="utf-8") if TRACE_FILE else sys.stdout  # noqa: SIM115
    try:
        for line in run.net.trace:
            print(line, file=out)
        for p in problems:
            print(f"PROBLEM {p}", file=out)
        print(run.report(), file=out)
    finally:
        if out is not sys.stdout:
            out.close()
    assert not problems, f"{scenario} seed {seed}: {problems[:10]}"


@pytest.mark.parametrize("seed", seeds(2200, SEEDS))
def test_crossing_cuts_then_four_cuts_live_never_judged(seed: int) -> None:
    """The crossing cuts on five nodes (e hears everyone) for 20 s, then straight to the
    four cuts of ``five-cuts`` for 20 s: the full hearer goes and the judges change while
    the views never agree.  No live instance is ever missing or unhealthy; killed
    providers are gone everywhere within the bound."""
    check("cross-then-five", seed, replay_of("cross-then-five", seed))


@pytest.mark.parametrize("seed", seeds(2300, SEEDS))
def test_crossing_cuts_then_four_cuts_with_stalls_live_never_judged(seed: int) -> None:
    """``cross-then-five`` with every node stalling three times around the change."""
    check("cross-then-five-stalls", seed, replay_of("cross-then-five-stalls", seed))


@pytest.mark.parametrize("seed", (2308,))
def test_crossing_cuts_then_four_cuts_with_long_stalls_live_never_judged(seed: int) -> None:
    """``cross-then-five`` with every node stalling three times around the change, each
    stall 30-35 % of ``unhealthy_after``.  Pinned seed: it marked a live beater before
    beats served right after a stall were told to peers (core/registry ``renew``): the
    evidence froze for the stall and the stale window after it on the node applying
    the beats, and a judge elsewhere found it too old (so did 2317 and 2319 of
    ``cross-then-five-stalls`` with stalls this long).  Not every seed passes at these
    stalls: 2310 and 2344 remove killed instances late (marked in time; every stall
    starts a grace on its node), and with stalls this long in ``cross-then-five-stalls``
    2326 marks a live beater (three of its judge's four peers stalled at once: no path)."""
    check("cross-then-five-long-stalls", seed, replay_of("cross-then-five-long-stalls", seed))
