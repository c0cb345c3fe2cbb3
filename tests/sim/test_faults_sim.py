"""Distro under real faults: pauses, long partitions, one-way loss (issue 9).

The faults that broke a three-node cluster of real processes, replayed on the
simulated network (``network.py``: ``pause``/``resume``, ``oneway_loss``,
``groups``) with providers that beat through their *local* node, so that
"live" is well defined:

* a provider is **live for node N** while it is active, registered (at
  least one beat interval ago) and a beat of the last ``unhealthy_after / 2``
  seconds went to an entry node that was neither paused nor cut off from N;
  it is **checked** on N once it has been live for N without a break for a
  grace of two beat intervals plus a peer request timeout (a provider whose
  node was just resumed or reconnected is still being re-registered);
* a node is **faulted** while it is paused, down, not ready, or outside the
  scenario's majority during a partition, and for a recovery budget after
  that (``Faults.budget``); one-way loss faults no node.

Per sample (every ``SAMPLE`` s of simulated time):

1. on every unfaulted node, every checked provider is listed and healthy;
2. on every node, a stopped provider's instance (deregistered or evicted),
   once gone from that node (this incarnation), never comes back;
3. after a fault ends, every active provider is listed and healthy on every
   node within ``budget`` seconds (the time it took is reported).

Faulted nodes are exempt from (1), but what they showed of the providers
checked elsewhere (healthy, unhealthy, missing) is recorded and reported.
At the end the invariants of ``test_distro_sim`` must hold as well (same
tables, no live instance lost, no dead one kept, quiet).

The scenarios (each over a few seeds, at the issue's short timings and, for
pause and partition, at the defaults):

* **pause** one node longer than ``evict_after`` (issue 9, bug 1), with its
  first tick before or after the messages held for it;
* **partition** one node longer than ``evict_after``, then heal (bug 2);
* **deregistration** on the majority side during a partition shorter than
  the minority's eviction time (bug 3);
* **one-way loss** with flapping peers and a short peer timeout (bug 4);
* providers whose beats go to different nodes over time, in all of them;
* a **random** mix of all of the above (``MESHREG_SIM_FAULT_SEEDS``, 16 by
  default).

Every run prints a one-line report (``pytest -s``).  A failure prints the
seed, the scenario, what went wrong (counts and times) and how to replay;
with ``MESHREG_SIM_TRACE=/tmp/trace.txt`` the trace goes to that file::

    MESHREG_SIM_TRACE=/tmp/t.txt pytest tests/sim/test_faults_sim.py -k 'pause and short-runtime'
    MESHREG_SIM_FAULT_SEED=7 pytest tests/sim/test_faults_sim.py -k replay -s
"""

from __future__ import annotations

import math
import os
import random
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshreg.core.distro import ClusterPolicy
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import responsible_node
from meshreg.errors import ErrorCode

sys.path.insert(0, os.path.dirname(__file__))

from network import Network, Outcome, SimKeys  # noqa: E402
from test_distro_sim import (  # noqa: E402
    TRACE_FILE,
    Provider,
    check_invariants,
    lookup,
    run_settled,
    scenario_message,
    set_groups,
    sweep_seeds,
)

# 16 in the suite (24 took 132 s of its workers' time, 2026-12-07); sweeps: =200
FAULT_SEEDS = int(os.environ.get("MESHREG_SIM_FAULT_SEEDS", "16"))
SAMPLE = 0.1  # s between two samples of the per-sample probe
REPLAY_RANDOM = "MESHREG_SIM_FAULT_SEED={seed} pytest tests/sim/test_faults_sim.py -k replay -s"


@dataclass(frozen=True)
class Timings:
    name: str
    health: HealthPolicy
    cluster: ClusterPolicy
    beat: float  # s between a provider's beats

    @property
    def window(self) -> float:
        """A provider is live for N while one of its beats of this window reached N's side."""
        return self.health.unhealthy_after / 2

    @property
    def grace(self) -> float:
        """How long a provider must be live for N before N is held to it."""
        return 2 * self.beat + self.cluster.peer_request_timeout

    @property
    def budget(self) -> float:
        """After a fault: every live instance back everywhere within this (a few beats)."""
        return 4 * self.beat + self.cluster.peer_timeout + self.cluster.anti_entropy_interval


# The configuration: check 0.5 s, unhealthy 3 s, evict 6 s, peer timeout 1.5 s.
SHORT = Timings(
    "short",
    HealthPolicy(check_interval=0.5, unhealthy_after=3, evict_after=6),
    ClusterPolicy(peer_timeout=1.5, beacon_interval=0.25),
    0.5,
)
DEFAULT = Timings("default", HealthPolicy(), ClusterPolicy(), 5.0)  # 5/15/30 s, 3 s
TIMINGS = {"short": SHORT, "default": DEFAULT}


# -- providers that beat through a node of their choosing ---------------------------------
class Beater(Provider):
    """A provider that beats every ``timings.beat`` s through its entry node.

    ``entry`` is a node id (pinned: its local node), ``"round_robin"`` (the
    next node at every request) or ``"random"``.  Every beat records when it
    was sent and which nodes could hear it then (none when the entry node is
    paused or down; those on the entry node's side of a partition otherwise).
    """

    def __init__(
        self,
        net: Network,
        timings: Timings,
        index: int,
        service: str,
        entry: str,
        start: float,
        stop_at: float | None = None,
        deregister: bool = False,
    ) -> None:
        self.timings = timings
        self.entry = entry
        self.turn = index
        self.registered_at: float | None = None
        self.stopped_at: float | None = None
        self.sends: deque[tuple[float, frozenset[str]]] = deque(maxlen=64)
        self.beats_sent = 0  # sends ever appended (the deque keeps the last 64)
        self._at_stop: tuple[Any, frozenset[str] | None] = (None, None)  # heard_at_stop's
        super().__init__(net, index, service, start, stop_at, deregister, smart=False)

    def entry_node(self) -> str:
        ids = list(self.net.nodes)
        if self.entry == "round_robin":
            self.turn += 1
            return ids[self.turn % len(ids)]
        if self.entry == "random":
            return self.net.rng.choice(ids)
        return self.entry

    def send(self, op: str, fields: dict[str, Any], on_done: Any) -> None:
        net = self.net
        node = net.nodes[self.entry_node()]
        if op == "beat":
            heard: frozenset[str] = frozenset()
            if node.core is not None and not net.is_paused(node.node_id):
                heard = frozenset(n for n in net.nodes if net.reachable(node.node_id, n))
            self.sends.append((net.now, heard))
            self.beats_sent += 1
        if node.core is None:  # connection refused: the client retries later
            net.after(1.0, on_done, ("timeout", None))
            return
        if op == "register":
            inner = on_done

            def on_done(outcome: Outcome) -> None:
                if outcome[0] == "ok" and self.registered_at is None:
                    self.registered_at = net.now
                inner(outcome)

        net.client_request(node, op, next(net.req_ids), fields, on_done)

    def _start(self) -> None:
        self.active = True
        self.net.log(f"provider {self.name} starts (entry {self.entry})")
        self._register(retry=True)
        self.net.after(self.timings.beat, self._beat)

    def _beat(self) -> None:
        if not self.active:
            return

        def done(outcome: Outcome) -> None:
            kind, value = outcome
            if kind != "error":
                return
            if value == ErrorCode.NOT_FOUND:
                self.not_found += 1
                self.net.count("beat_not_found")
                self.net.log(f"provider {self.name} beat: NOT_FOUND")
                self._register(retry=False)
            elif value == ErrorCode.UNAVAILABLE:
                self.net.count("beat_unavailable")
            else:
                self.unexpected.append(f"beat: {value!r} at {self.net.now:.3f}")

        self.send("beat", self.beat_fields, done)
        self.net.after(self.timings.beat, self._beat)

    def _stop(self) -> None:
        self.stopped_at = self.net.now
        super()._stop()

    def heard_at_stop(self, node_id: str) -> bool:
        """Whether the last beat before it stopped reached ``node_id``'s side.  (That
        beat found once per beat sent: the probe asks for every node every sample.)"""
        assert self.stopped_at is not None
        basis, heard = self._at_stop
        if basis != (self.beats_sent, self.stopped_at):
            heard = next((h for t, h in reversed(self.sends) if t <= self.stopped_at), None)
            self._at_stop = ((self.beats_sent, self.stopped_at), heard)
        return heard is None or node_id in heard

    def live_for(self, node_id: str, now: float) -> bool:
        return node_id in self.live_set(now)

    def live_set(self, now: float) -> frozenset[str]:
        """The nodes it is live for at ``now``: those one of its beats within the window
        reached (all of them at once: the probe asks for every node every sample)."""
        if not self.active or self.registered_at is None:
            return frozenset()
        if self.registered_at > now - self.timings.beat:
            return frozenset()
        since = now - self.timings.window
        live: frozenset[str] = frozenset()
        for t, heard in reversed(self.sends):
            if t <= since:
                break
            live |= heard
        return live


# -- the scenario: faults, probe, report ---------------------------------------------------
@dataclass
class Bad:
    """Samples in which some rule was broken: how many, when, worst, first examples."""

    what: str
    samples: int = 0
    pairs: int = 0
    worst: int = 0
    first: float = -1.0
    last: float = -1.0
    examples: list[str] = field(default_factory=list)

    def add(self, now: float, found: list[str]) -> None:
        if not found:
            return
        self.samples += 1
        self.pairs += len(found)
        self.worst = max(self.worst, len(found))
        if self.first < 0:
            self.first = now
        self.last = now
        for text in found:
            if len(self.examples) < 4:
                self.examples.append(f"t={now:.2f} {text}")

    def line(self) -> str:
        return (
            f"{self.samples} samples ({self.pairs} instance-samples, up to {self.worst} at once, "
            f"t={self.first:.2f}..{self.last:.2f}) with {self.what}; e.g. {self.examples}"
        )


@dataclass
class Shown:
    """What an exempt (faulted) node listed of the instances live elsewhere."""

    samples: int = 0
    healthy: int = 0
    unhealthy: int = 0
    missing: int = 0
    max_unhealthy: int = 0
    max_missing: int = 0
    of: int = 0

    def text(self) -> str:
        return (
            f"{self.samples} samples: at worst {self.max_unhealthy} unhealthy, "
            f"{self.max_missing} missing of {self.of}"
        )


class Faults:
    """A cluster at some timings, its providers, its fault schedule and its probe."""

    def __init__(
        self,
        name: str,
        seed: int,
        timings: Timings,
        n_nodes: int = 3,
        trace: bool = False,
        keys: SimKeys | None = None,
    ) -> None:
        self.name = name
        self.timings = timings
        ids = [f"n{i}" for i in range(n_nodes)]
        self.net = net = Network(
            seed,
            ids,
            health=timings.health,
            cluster=timings.cluster,
            trace=trace or bool(TRACE_FILE),
            keys=keys,
        )
        self.rng = random.Random(f"faults-{name}-{seed}")  # plans; the network has its own
        for i, node_id in enumerate(ids):
            net.at(0.1 * i, net.start, node_id)
        self.beaters: list[Beater] = []
        self.minority: frozenset[str] = frozenset()  # cut off from the majority now
        self.active: dict[str, float] = {}  # fault label -> start
        self.exempt_until: dict[str, float] = {}  # node -> end of its recovery
        self.was_ready: dict[str, bool] = {}  # node -> ready at the last sample
        self.open_ends: list[tuple[str, float]] = []  # faults over, cluster not converged yet
        self.converged: list[str] = []  # "label: 1.23s"
        self.slow: list[str] = []
        self.since: dict[tuple[int, str], float] = {}  # (provider, node) -> live since
        self.gone: dict[tuple[int, str, int], float] = {}  # (provider, node, gen) -> gone at
        self.bad_live = Bad("live instances missing or unhealthy on unfaulted nodes")
        self.bad_back = Bad("removed instances back")
        self.shown: dict[str, Shown] = {}
        self.problems: list[str] = []
        self.plan: list[str] = []
        self.end = 0.0  # when a planned run ends
        net.every(SAMPLE, self.sample, start=SAMPLE)

    # -- providers -------------------------------------------------------------------
    def add(
        self,
        services: int,
        per_service: int,
        entry: str | Callable[[int], str] = "pinned",
        start: tuple[float, float] = (1.0, 3.0),
        stop: tuple[float, float] | None = None,
        deregister: bool = False,
        service_base: int = 0,
    ) -> list[Beater]:
        """``per_service`` providers on each of ``services`` services.

        ``entry``: "pinned" (spread over the nodes in turn), a node id, a function
        of the provider's number, "round_robin" or "random".
        """
        net, rng, out = self.net, self.rng, []
        ids = list(net.nodes)
        for s in range(services):
            for _ in range(per_service):
                index = next(net.instance_ids)
                if callable(entry):
                    where = entry(index)
                elif entry == "pinned":
                    where = ids[index % len(ids)]
                else:
                    where = entry
                t0 = rng.uniform(*start)
                t1 = rng.uniform(*stop) if stop is not None else None
                svc = f"svc{service_base + s}"
                out.append(Beater(net, self.timings, index, svc, where, t0, t1, deregister))
        self.beaters += out
        return out

    # -- faults ------------------------------------------------------------------------
    def pause(self, node_id: str, at: float, length: float, order: str | None) -> None:
        label = f"pause {node_id} {at:.1f}+{length:.1f}"
        self.plan.append(label + (f" ({order})" if order else ""))

        def begin() -> None:
            if self.net.nodes[node_id].core is None or self.net.is_paused(node_id):
                return
            self.net.pause(node_id)
            self.active[label] = self.net.now

        def end() -> None:
            if label in self.active:
                self.net.resume(node_id, order)
                self._ended(label, [node_id])

        self.net.at(at, begin)
        self.net.at(at + length, end)

    def restart(self, node_id: str, at: float, down: float) -> None:
        """Kill ``node_id`` at ``at`` and start it again (empty, a new epoch) ``down`` s
        later; faulted meanwhile and until it is ready plus the recovery budget."""
        label = f"restart {node_id} {at:.1f}+{down:.1f}"
        self.plan.append(label)

        def begin() -> None:
            if self.net.nodes[node_id].core is None or self.net.is_paused(node_id):
                return
            self.net.crash(node_id)
            self.active[label] = self.net.now

        def end() -> None:
            if label in self.active:
                self.net.start(node_id)
                self._ended(label, [node_id])

        self.net.at(at, begin)
        self.net.at(at + down, end)

    def partition(self, minority: list[str], at: float, length: float) -> None:
        label = f"partition {sorted(minority)} {at:.1f}+{length:.1f}"
        self.plan.append(label)
        cut = frozenset(minority)

        def begin() -> None:
            if self.minority:
                return  # one partition at a time
            rest = frozenset(self.net.nodes) - cut
            set_groups(self.net, [cut, rest])
            self.minority = cut
            self.active[label] = self.net.now

        def end() -> None:
            if label in self.active:
                set_groups(self.net, None)
                self.minority = frozenset()
                self._ended(label, sorted(cut))

        self.net.at(at, begin)
        self.net.at(at + length, end)

    def oneway(self, src: str, dst: str, p: float, at: float, length: float) -> None:
        label = f"loss {src}->{dst} {p:.2f} {at:.1f}+{length:.1f}"
        self.plan.append(label)

        def begin() -> None:
            self.net.oneway_loss[(src, dst)] = p
            self.net.log(f"LOSS {src}->{dst} {p:.2f}")
            self.active[label] = self.net.now

        def end() -> None:
            self.net.oneway_loss.pop((src, dst), None)
            self.net.log(f"LOSS {src}->{dst} over")
            self._ended(label, [])

        self.net.at(at, begin)
        self.net.at(at + length, end)

    def _ended(self, label: str, nodes: list[str]) -> None:
        self.active.pop(label, None)
        now = self.net.now
        for node_id in nodes:
            self.exempt_until[node_id] = max(
                self.exempt_until.get(node_id, 0.0), now + self.timings.budget
            )
        self.open_ends.append((label, now))

    # -- the probe ---------------------------------------------------------------------
    def faulted(self, node_id: str) -> bool:
        node = self.net.nodes[node_id]
        return (
            node.core is None
            or not node.core.ready
            or self.net.is_paused(node_id)
            or node_id in self.minority
            or self.exempt_until.get(node_id, 0.0) > self.net.now
        )

    def _became_ready(self, live_nodes: list[Any]) -> None:
        """A node faulted while not ready is faulted for a recovery budget after it turns
        ready (a restarted node may be held out of the members a while first: core/distro
        ``flap_hold``), and a fault that left it not ready converges from then on."""
        now = self.net.now
        for node in live_nodes:
            ready = node.core.ready
            if ready and not self.was_ready.get(node.node_id, True):
                self.exempt_until[node.node_id] = max(
                    self.exempt_until.get(node.node_id, 0.0), now + self.timings.budget
                )
                self.open_ends = [
                    (label, max(t, now) if node.node_id in label.split() else t)
                    for label, t in self.open_ends
                ]
            self.was_ready[node.node_id] = ready

    def sample(self) -> None:
        net, now, grace = self.net, self.net.now, self.timings.grace
        live_nodes = [n for n in net.nodes.values() if n.core is not None]
        self._became_ready(live_nodes)
        missing: list[str] = []
        checked_anywhere: set[int] = set()
        exempt: list[str] = []
        live_sets = [p.live_set(now) for p in self.beaters]  # (per beater, not per pair)
        for node in live_nodes:
            core = node.core
            assert core is not None
            services = core.store.services  # (``lookup``, inlined: a sample's hot loop)
            node_id = node.node_id
            paused = net.is_paused(node_id)
            faulted = self.faulted(node_id)
            if faulted:
                exempt.append(node_id)
            for i, p in enumerate(self.beaters):
                pair = (i, node_id)
                if node_id in live_sets[i]:
                    since = self.since.setdefault(pair, now)
                else:
                    self.since.pop(pair, None)
                    since = now
                if not paused and p.stopped_at is not None:
                    self._watch_removal(i, p, node, core)
                if now - since < grace:
                    continue
                if faulted:
                    continue
                checked_anywhere.add(i)
                svc = services.get(p.key)
                rec = svc.instances.get(p.iid) if svc is not None else None
                if rec is None or not rec.healthy:
                    state = "missing" if rec is None else "unhealthy"
                    missing.append(f"{p.name} ({p.entry}) {state} on {node.node_id}")
        self.bad_live.add(now, missing)
        for node_id in exempt:
            core = net.nodes[node_id].core
            if core is None or not checked_anywhere:
                continue
            shown = self.shown.setdefault(node_id, Shown())
            shown.samples += 1
            shown.of = max(shown.of, len(checked_anywhere))
            unhealthy = gone = 0
            for i in checked_anywhere:
                rec = lookup(core, self.beaters[i])
                if rec is None:
                    gone += 1
                elif not rec.healthy:
                    unhealthy += 1
            shown.max_unhealthy = max(shown.max_unhealthy, unhealthy)
            shown.max_missing = max(shown.max_missing, gone)
        self._converge(live_nodes)

    def _watch_removal(self, i: int, p: Beater, node: Any, core: Any) -> None:
        if p.stopped_at is None:
            return
        if not p.deregister and not p.heard_at_stop(node.node_id):
            # It died while beating only on the other side of a fault: this node removed
            # it for want of evidence, and may take it back with the other side's newer
            # evidence at the heal (it was alive after this node's judgment), until its
            # owner judges that evidence stale. Only the final invariants apply.
            return
        key = (i, node.node_id, node.gen)
        rec = lookup(core, p)
        if rec is None:
            if core.ready:  # (an incarnation catching up is empty: absent says nothing)
                self.gone.setdefault(key, self.net.now)
        elif key in self.gone:
            gone_at = self.gone.pop(key)
            self.bad_back.add(
                self.net.now,
                [
                    f"{p.name} ({'deregistered' if p.deregister else 'stopped'} at "
                    f"{p.stopped_at:.2f}, gone at {gone_at:.2f}) back on {node.node_id} "
                    f"{'healthy' if rec.healthy else 'unhealthy'}"
                ],
            )

    def _converge(self, live_nodes: list[Any]) -> None:
        if not self.open_ends:
            return
        now = self.net.now
        label, t_end = self.open_ends[-1]
        if not self.active and self._all_present(live_nodes):
            for label, t in self.open_ends:
                self.converged.append(f"{label}: {now - t:.2f}s")
            self.open_ends.clear()
        elif any(n.core.held_by and not n.core.ready for n in live_nodes):
            return  # a restarted node held out of the members: its budget starts when ready
        elif not self.active and now - t_end > self.timings.budget and not self.slow:
            self.slow.append(
                f"t={now:.2f} not converged {now - t_end:.2f}s after {label} "
                f"(budget {self.timings.budget:g}s): {self._absent(live_nodes)[:4]}"
            )

    def _all_present(self, live_nodes: list[Any]) -> bool:
        return not self._absent(live_nodes, limit=1)

    def _absent(self, live_nodes: list[Any], limit: int = 10) -> list[str]:
        out: list[str] = []
        for node in live_nodes:
            if not node.core.ready or self.net.is_paused(node.node_id):
                out.append(f"{node.node_id} not ready")
                continue
            for p in self.beaters:
                if p.active and p.registered_at is not None:
                    rec = lookup(node.core, p)
                    if rec is None or not rec.healthy:
                        state = "unhealthy" if rec else "missing"
                        out.append(f"{p.name} {state} on {node.node_id}")
                        if len(out) >= limit:
                            return out
        return out

    # -- running -----------------------------------------------------------------------
    def run(self, end: float) -> list[str]:
        """Run to ``end`` (the last ``QUIET`` s quiet); return every problem."""
        problems = run_settled(self.net, end)
        if self.bad_live.samples:
            problems.insert(0, self.bad_live.line())
        if self.bad_back.samples:
            problems.insert(0, self.bad_back.line())
        problems += self.slow
        if self.open_ends:
            problems.append(f"never converged after {[label for label, _ in self.open_ends]}")
        problems += check_invariants(self.net, self.beaters)
        self.problems = problems
        return problems

    def report(self) -> str:
        shown = "; ".join(f"{n} showed {s.text()}" for n, s in sorted(self.shown.items()))
        return (
            f"[{self.name} seed {self.net.seed}] {'; '.join(self.plan)} | "
            f"bad samples: live {self.bad_live.samples} (up to {self.bad_live.worst}), "
            f"back {self.bad_back.samples} | converged: {self.converged} | "
            f"exempt: {shown or '-'} | NOT_FOUND {self.net.counts.get('beat_not_found', 0)}, "
            f"fallbacks {self.net.counts.get('forward_fallback', 0)}"
        )

    def check(self, end: float, replay: str) -> None:
        problems = self.run(end)
        print(self.report())
        if problems:
            message = scenario_message(self.net, f"{self.name}: {'; '.join(self.plan)}", problems)
            pytest.fail(f"{message}\nreplay: {replay}\n{self.report()}", pytrace=False)


def nodeid(test: str, params: str) -> str:
    return f"pytest 'tests/sim/test_faults_sim.py::{test}[{params}]'"


# -- targeted scenarios ------------------------------------------------------------------------
# (timings, resume order, pause length (s), seed).  The order places the resumed node's
# first tick (network.Network.resume): "runtime" after the held replication messages and
# before the held requests, as runtime/node.py does; "tick" before everything held;
# "held" after everything held.  The beats its peers forwarded to it before they saw it
# down (held meanwhile) refresh its instances unless its first sweep comes first.
PAUSE_CASES = [
    ("short", "runtime", 8.0, 1),
    ("short", "runtime", 8.0, 2),
    ("short", "tick", 8.0, 3),
    ("short", "held", 8.0, 4),
    ("default", "runtime", 40.0, 5),
    ("default", "tick", 40.0, 6),
    ("default", "held", 40.0, 7),
]


@pytest.mark.parametrize(
    ("timing", "order", "length", "seed"),
    PAUSE_CASES,
    ids=[f"{t}-{o}-{n:g}s-{s}" for t, o, n, s in PAUSE_CASES],
)
def test_pause_longer_than_evict_after(timing: str, order: str, length: float, seed: int) -> None:
    """Bug 1: a node paused past evict_after must not evict live instances on resume."""
    timings = TIMINGS[timing]
    sc = Faults("pause", seed, timings)
    t0 = 10 * timings.beat + 5.0
    sc.add(services=12, per_service=3, start=(1.0, 1.0 + 2 * timings.beat))
    sc.add(services=4, per_service=1, entry="round_robin", service_base=12)
    sc.add(services=4, per_service=1, entry="random", service_base=16)
    # and providers that join on the other nodes while n0 is paused (autoscaling): n0 merges
    # them as new when it resumes, so not all of its services' instances look silent to it
    # and self-preservation does not hide what its first sweep does
    others = ["n1", "n2"]
    sc.add(12, 2, entry=lambda i: others[i % 2], start=(t0 + 1.0, t0 + length - 1.0))
    sc.pause("n0", t0, length, order)
    end = t0 + length + timings.health.evict_after + 40.0
    params = f"{timing}-{order}-{length:g}s-{seed}"
    sc.check(end, nodeid("test_pause_longer_than_evict_after", params))


PARTITION_CASES = [("short", 11), ("short", 12), ("short", 13), ("default", 14), ("default", 15)]


@pytest.mark.parametrize(
    ("timing", "seed"), PARTITION_CASES, ids=[f"{t}-{s}" for t, s in PARTITION_CASES]
)
def test_partition_longer_than_evict_after(timing: str, seed: int) -> None:
    """Bug 2: after the heal the majority keeps every instance that kept beating there."""
    timings = TIMINGS[timing]
    sc = Faults("partition", seed, timings)
    t0 = 10 * timings.beat + 5.0
    sc.add(services=12, per_service=3, start=(1.0, 1.0 + 2 * timings.beat))
    sc.add(services=4, per_service=1, entry="round_robin", service_base=12)
    sc.add(services=4, per_service=1, entry="random", service_base=16)
    length = 10.0 if timing == "short" else 40.0
    sc.partition(["n0"], t0, length)
    end = t0 + length + timings.health.evict_after + 40.0
    sc.check(end, nodeid("test_partition_longer_than_evict_after", f"{timing}-{seed}"))


DEREGISTER_CASES = [("short", 21), ("short", 22), ("short", 23), ("default", 24)]


@pytest.mark.parametrize(
    ("timing", "seed"), DEREGISTER_CASES, ids=[f"{t}-{s}" for t, s in DEREGISTER_CASES]
)
def test_deregistration_during_a_partition_stays(timing: str, seed: int) -> None:
    """Bug 3: the minority's later unhealthy mark must not bring a deregistered one back.

    The partition outlasts the minority's unhealthy mark (peer timeout, then
    unhealthy_after) but not its eviction.
    """
    timings = TIMINGS[timing]
    h, c = timings.health, timings.cluster
    sc = Faults("deregister", seed, timings)
    t0 = 10 * timings.beat + 5.0
    majority = ["n1", "n2"]
    sc.add(services=10, per_service=3, start=(1.0, 1.0 + 2 * timings.beat))
    sc.add(services=4, per_service=1, entry="round_robin", service_base=10)
    # on the majority side, deregistering early in the partition
    early = (t0 + 0.2, t0 + c.peer_timeout)
    sc.add(10, 1, entry=lambda i: majority[i % 2], stop=early, deregister=True)
    # and a few that just stop (evicted by the majority, marked by the minority)
    sc.add(4, 1, entry=lambda i: majority[i % 2], stop=early, service_base=4)
    low = c.peer_timeout + h.unhealthy_after + 2 * h.check_interval
    high = c.peer_timeout + h.evict_after - h.check_interval
    length = sc.rng.uniform(low, high)
    sc.partition(["n0"], t0, length)
    end = t0 + length + h.evict_after + 40.0
    sc.check(end, nodeid("test_deregistration_during_a_partition_stays", f"{timing}-{seed}"))


LOSS_CASES = [(31, 0.3), (32, 0.5), (33, 0.4)]


@pytest.mark.parametrize(("seed", "loss"), LOSS_CASES, ids=[f"{s}-{p}" for s, p in LOSS_CASES])
def test_one_way_loss_with_flapping_peers(seed: int, loss: float) -> None:
    """Bug 4: beats applied by a node that thinks the owner is down must reach the sweeper.

    n0 -> n1 loses ``loss`` of its messages (n1 hears n0 badly: beacons, forward
    replies, reconcile answers), n2 -> n0 a little; every message takes 10-30 ms;
    peer timeout 1.5 s.  No node is faulted: every live instance must stay healthy
    on every node at every sample.
    """
    timings = SHORT
    sc = Faults("one-way loss", seed, timings)
    sc.net.min_delay, sc.net.max_delay = 0.01, 0.03
    sc.add(services=12, per_service=3, start=(1.0, 2.0))
    sc.add(services=4, per_service=1, entry="round_robin", service_base=12)
    sc.add(services=4, per_service=1, entry="random", service_base=16)
    sc.oneway("n0", "n1", loss, 10.0, 60.0)
    sc.oneway("n1", "n0", loss / 2, 10.0, 60.0)
    sc.oneway("n2", "n0", 0.2, 30.0, 30.0)
    sc.check(110.0, nodeid("test_one_way_loss_with_flapping_peers", f"{seed}-{loss}"))


# -- random mixes ------------------------------------------------------------------------------
def plan_random(seed: int, trace: bool = False, keys: SimKeys | None = None) -> Faults:
    """Pauses, long partitions, one-way loss and deregistrations, from one seed
    (``keys``: every node with CURVE and an ACL)."""
    rng = random.Random(f"fault-plan-{seed}")
    timings = SHORT
    h, c = timings.health, timings.cluster
    n_nodes = rng.choice((3, 3, 4, 5))
    sc = Faults("random", seed, timings, n_nodes, trace, keys)
    ids = list(sc.net.nodes)
    sc.net.max_delay = rng.choice((0.002, 0.02, 0.03))
    sc.plan.append(f"{n_nodes} nodes, delay <= {sc.net.max_delay}")
    sc.add(services=rng.randint(6, 10), per_service=3, start=(1.0, 3.0))
    sc.add(services=4, per_service=1, entry=rng.choice(("round_robin", "random")), service_base=10)
    # stops and deregistrations all along
    sc.add(8, 1, start=(1.0, 3.0), stop=(10.0, 60.0), deregister=True, service_base=2)
    sc.add(4, 1, start=(1.0, 3.0), stop=(10.0, 60.0), service_base=5)
    # faults one after another, sometimes before the cluster has recovered from the last
    t = rng.uniform(8.0, 12.0)
    while t < 60.0:
        kind = rng.choice(("pause", "partition", "loss"))
        if kind == "pause":
            length = rng.choice((rng.uniform(1.0, h.unhealthy_after), rng.uniform(4.0, 12.0)))
            sc.pause(rng.choice(ids), t, length, None)
        elif kind == "partition":
            cut = rng.randint(1, (n_nodes - 1) // 2)
            length = rng.choice((rng.uniform(2.0, 6.0), rng.uniform(6.0, 15.0)))
            sc.partition(rng.sample(ids, cut), t, length)
        else:
            length = rng.uniform(5.0, 20.0)
            a, b = rng.sample(ids, 2)
            sc.oneway(a, b, rng.uniform(0.2, 0.5), t, length)
            if rng.random() < 0.5:
                sc.oneway(b, a, rng.uniform(0.0, 0.3), t, length)
        t += length + rng.choice((rng.uniform(0.5, 3.0), rng.uniform(c.peer_timeout, 12.0)))
    sc.end = t + h.evict_after + 35.0
    return sc


@pytest.mark.parametrize("seed", sweep_seeds(FAULT_SEEDS))
def test_random_faults_never_lose_a_live_instance(seed: int) -> None:
    sc = plan_random(seed)
    sc.check(sc.end, REPLAY_RANDOM.format(seed=seed))


def plan_mismatched(seed: int, trace: bool = False) -> Faults:
    """Peer lists that differ (docs/DISTRO.md "Joining"), then one pause, partition or
    restart (a new incarnation: its first beacons name nobody yet):
    either the last node lists everyone and nobody lists it (a node added to its own list
    only), or it lists only itself and n0 (restarted with a shorter list).  Members must
    join each other before the providers' grace ends and hold every invariant after."""
    rng = random.Random(f"mismatch-plan-{seed}")
    timings = SHORT
    h = timings.health
    n_nodes = rng.choice((4, 5))
    sc = Faults("mismatched lists", seed, timings, n_nodes, trace)
    net, ids = sc.net, list(sc.net.nodes)
    addresses = net.peer_list
    if rng.random() < 0.5:
        for node_id in ids[:-1]:
            net.peer_lists[node_id] = addresses[:-1]
        sc.plan.append(f"{n_nodes} nodes; {ids[-1]} is in no list but its own")
    else:
        net.peer_lists[ids[-1]] = [addresses[-1], addresses[0]]
        sc.plan.append(f"{n_nodes} nodes; {ids[-1]} lists only itself and {ids[0]}")
    sc.add(services=rng.randint(6, 10), per_service=3, start=(1.0, 3.0))
    sc.add(services=4, per_service=1, entry="round_robin", service_base=10)
    sc.add(6, 1, start=(1.0, 3.0), stop=(10.0, 30.0), deregister=True, service_base=2)
    t = rng.uniform(10.0, 15.0)
    kind = rng.choice(("pause", "partition", "restart"))
    if kind == "pause":
        length = rng.choice((rng.uniform(1.0, h.unhealthy_after), rng.uniform(4.0, 12.0)))
        sc.pause(rng.choice(ids), t, length, None)
    elif kind == "partition":
        length = rng.uniform(2.0, 12.0)
        sc.partition([rng.choice(ids)], t, length)
    else:  # the odd one out (learned by the others, or learning them) most of the time
        length = rng.uniform(0.5, 6.0)
        sc.restart(ids[-1] if rng.random() < 0.7 else rng.choice(ids), t, length)
    sc.end = max(t + length, 30.0) + h.evict_after + 35.0  # the last stop's delta settles
    return sc


def plan_crash_loop(seed: int, trace: bool = False) -> tuple[Faults, float, float]:
    """One node in a crash loop (docs/DISTRO.md "A run of graces"): killed again and again
    a moment after it is ready, each time down long enough for the others to find it
    down, so every return is a member coming back.  Providers pinned to the steady nodes
    die meanwhile (no deregistration).  Returns the plan, the loop's first crash and its
    end."""
    rng = random.Random(f"crash-loop-plan-{seed}")
    timings = SHORT
    h, c = timings.health, timings.cluster
    n_nodes = rng.choice((3, 4))
    sc = Faults("crash loop", seed, timings, n_nodes, trace)
    ids = list(sc.net.nodes)
    steady = ids[:-1]
    sc.plan.append(f"{n_nodes} nodes, {ids[-1]} in a crash loop")
    sc.add(services=rng.randint(6, 10), per_service=3, start=(1.0, 3.0))
    sc.add(services=4, per_service=1, entry="round_robin", service_base=10)
    t0 = rng.uniform(8.0, 10.0)
    loop_end = t0 + rng.uniform(30.0, 40.0)
    # providers that die during the loop, beating through the steady nodes until then
    sc.add(
        10,
        1,
        entry=lambda i: steady[i % len(steady)],
        start=(1.0, 3.0),
        stop=(t0 + 1.0, loop_end - h.evict_after - 2 * h.unhealthy_after - 3.0),
        service_base=14,
    )
    t = t0
    while t < loop_end:
        down = rng.uniform(c.peer_timeout + 0.1, c.peer_timeout + 1.0)
        sc.restart(ids[-1], t, down)
        t += down + rng.uniform(0.5, 3.0)  # up (caught up and ready) for a moment
    sc.end = loop_end + h.evict_after + 35.0
    return sc, t0, loop_end


def judged_in_the_loop(sc: Faults, t0: float, loop_end: float) -> list[str]:
    """Each dead provider is marked unhealthy on every steady node within ``2 x
    unhealthy_after`` of the loop's start or of its death, whichever is later, and evicted
    within ``evict_after + unhealthy_after`` (plus a check interval, a peer timeout and
    the replication), while the node still loops: those of the services the steady nodes
    own (the run of member graces is bounded) and those of the looping node's own share
    (it is held out of the members after each quick restart: core/distro ``flap_hold``;
    before, each of its returns took its share back with a fresh grace)."""
    net, h, c = sc.net, sc.timings.health, sc.timings.cluster
    ids = list(net.nodes)
    steady = ids[:-1]
    slack = h.check_interval + c.peer_timeout + 1.0
    marked: dict[str, float] = {}
    evicted: dict[str, float] = {}
    dead = [p for p in sc.beaters if p.stop_at is not None and not p.deregister]
    looper_owns = sum(responsible_node(p.key, tuple(ids)) == ids[-1] for p in dead)
    assert looper_owns, "no dead provider in the looping node's share: nothing checked there"

    def probe() -> None:
        for p in dead:
            if not p.stopped:
                continue
            recs = [lookup(net.nodes[n].core, p) for n in steady if net.nodes[n].core]
            if all(r is None or not r.healthy for r in recs):
                marked.setdefault(p.name, net.now)
            if all(r is None for r in recs):
                evicted.setdefault(p.name, net.now)

    net.every(SAMPLE, probe, start=SAMPLE)
    problems = sc.run(sc.end)
    for p in dead:
        assert p.stop_at is not None
        start = max(p.stop_at, t0)
        late_mark = start + 2 * h.unhealthy_after + slack
        late_evict = start + h.evict_after + h.unhealthy_after + slack
        if late_evict > loop_end:
            continue
        if marked.get(p.name, math.inf) > late_mark:
            problems.append(
                f"dead {p.name} (stopped {p.stop_at:.2f}) not marked by {late_mark:.2f} "
                f"while {ids[-1]} looped (marked at {marked.get(p.name)})"
            )
        if evicted.get(p.name, math.inf) > late_evict:
            problems.append(
                f"dead {p.name} (stopped {p.stop_at:.2f}) not evicted by {late_evict:.2f} "
                f"while {ids[-1]} looped (evicted at {evicted.get(p.name)})"
            )
    sc.problems = problems
    return problems


REPLAY_CRASH_LOOP = (
    "MESHREG_SIM_FAULT_SEED={seed} pytest tests/sim/test_faults_sim.py -k replay_crash -s"
)


@pytest.mark.parametrize("seed", sweep_seeds(max(4, FAULT_SEEDS // 4)))
def test_a_node_in_a_crash_loop_stops_no_judging_and_loses_no_live_instance(seed: int) -> None:
    sc, t0, loop_end = plan_crash_loop(seed)
    problems = judged_in_the_loop(sc, t0, loop_end)
    print(sc.report())
    if problems:
        message = scenario_message(sc.net, f"{sc.name}: {'; '.join(sc.plan)}", problems)
        replay = REPLAY_CRASH_LOOP.format(seed=seed)
        pytest.fail(f"{message}\nreplay: {replay}\n{sc.report()}", pytrace=False)


def test_replay_crash_loop_seed() -> None:
    """Replays MESHREG_SIM_FAULT_SEED of the crash-loop plan (skipped when unset)."""
    if "MESHREG_SIM_FAULT_SEED" not in os.environ:
        pytest.skip("set MESHREG_SIM_FAULT_SEED to replay a crash-loop run")
    sc, t0, loop_end = plan_crash_loop(int(os.environ["MESHREG_SIM_FAULT_SEED"]), trace=True)
    problems = judged_in_the_loop(sc, t0, loop_end)
    assert sc.net.trace is not None
    print("\n".join(sc.net.trace[-400:]))
    print(sc.report())
    assert not problems, problems[:10]


REPLAY_MISMATCH = (
    "MESHREG_SIM_FAULT_SEED={seed} pytest tests/sim/test_faults_sim.py -k replay_mism -s"
)


@pytest.mark.parametrize("seed", sweep_seeds(max(4, FAULT_SEEDS // 4)))
def test_mismatched_peer_lists_join_and_never_lose_a_live_instance(seed: int) -> None:
    sc = plan_mismatched(seed)
    sc.check(sc.end, REPLAY_MISMATCH.format(seed=seed))


def test_replay_mismatched_seed() -> None:
    """Replays MESHREG_SIM_FAULT_SEED of the mismatched-lists plan (skipped when unset)."""
    if "MESHREG_SIM_FAULT_SEED" not in os.environ:
        pytest.skip("set MESHREG_SIM_FAULT_SEED to replay a mismatched-lists run")
    sc = plan_mismatched(int(os.environ["MESHREG_SIM_FAULT_SEED"]), trace=True)
    problems = sc.run(sc.end)
    assert sc.net.trace is not None
    print("\n".join(sc.net.trace[-400:]))
    print(sc.report())
    assert not problems, problems[:10]


def test_replay_random_seed() -> None:
    """Replays MESHREG_SIM_FAULT_SEED with a full trace (skipped when unset)."""
    if "MESHREG_SIM_FAULT_SEED" not in os.environ:
        pytest.skip("set MESHREG_SIM_FAULT_SEED to replay a random run")
    seed = int(os.environ["MESHREG_SIM_FAULT_SEED"])
    sc = plan_random(seed, trace=True)
    problems = sc.run(sc.end)
    assert sc.net.trace is not None
    out = open(TRACE_FILE, "w", encoding="utf-8") if TRACE_FILE else sys.stdout  # noqa: SIM115
    try:
        for line in sc.net.trace:
            print(line, file=out)
        for p in problems:
            print(f"PROBLEM {p}", file=out)
        print(sc.report(), file=out)
    finally:
        if out is not sys.stdout:
            out.close()
    assert not problems, f"seed {seed}: {problems[:10]}"


if __name__ == "__main__":
    sc = plan_random(int(sys.argv[1]), trace=True)
    print("\n".join(sc.run(sc.end)))
    print(sc.report())
