"""Deterministic simulation of a Distro cluster: node cores on a simulated network.

Every random run is a pure function of its seed (see ``network.py``): the
fault plan (message loss, delays and reordering, crashes and restarts,
partitions), the providers (which service, when they start, whether they keep
beating, stop or deregister) and every delivery.  After ``FAULT_END`` the
faults stop (crashed nodes restart, partitions heal, no more loss) and the
cluster gets ``SETTLE`` seconds; then the invariants must hold:

1. convergence: every node holds the same table (services, instance ids,
   fields, healthy flags, version stamps);
2. no live instance lost: every provider still beating is listed, healthy,
   on every node;
3. no dead instance kept: every provider that stopped beating (or
   deregistered) before the settle period is listed on no node;
4. one responsible node per service: every node is ready and all agree on
   the member list;
5. quiet: in the last ``QUIET`` seconds a converged cluster repairs nothing
   (no anti-entropy round, no replicated delta, no forward applied locally,
   no beat answered NOT_FOUND or UNAVAILABLE).

And all along, faults or not:

6. last writer wins: on every node, each change of an instance carries a
   higher version stamp than the last one that node applied to it (record or
   tombstone), so a stale copy never overwrites a newer state or brings an
   evicted instance back;
7. after the faults stop, an instance that is gone from every node stays
   gone unless its provider registers it again.

Targeted deterministic scenarios check stronger properties while they run:
killing a service's responsible node (nothing lost, nothing marked
unhealthy, no NOT_FOUND on any survivor), a restart (the node is ready only
with the full table), a peer that never answers a starting node, a
partition {A}|{B,C} for 60 s (no live instance lost, no evicted one back),
message loss only, a short blip (no member flaps) and a fault-free run (no
repair traffic at all).

A failing seed is replayed, with a trace of every change, member event and
peer call, by::

    MESHREG_SIM_SEED=123 pytest tests/sim -k replay -s

(``MESHREG_SIM_TRACE=/tmp/trace.txt`` writes the trace to a file instead; a
failing targeted scenario writes its trace there too.)  ``python
tests/sim/test_distro_sim.py 123`` prints the same trace.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshreg.core import distro
from meshreg.core.distro import DistroNode
from meshreg.core.mapping import responsible_node
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey

sys.path.insert(0, os.path.dirname(__file__))

from network import Network, Outcome  # noqa: E402

# 160 in the suite (about 1.8 s each beside the suite's other workers; 400 took the suite
# to 18:50 of its 20 min on the 2-core machine of 2026-12-06, 250 to 19:38 on 2026-12-07);
# sweeps: MESHREG_SIM_SEEDS=3000
SEEDS = int(os.environ.get("MESHREG_SIM_SEEDS", "160"))
# sweeps of seeds not run before: MESHREG_SIM_SEED_FROM=3000 starts every random plan there
SEED_FROM = int(os.environ.get("MESHREG_SIM_SEED_FROM", "0"))


def sweep_seeds(count: int) -> range:
    """The seeds of a random plan: ``count`` of them from ``MESHREG_SIM_SEED_FROM`` (0)."""
    return range(SEED_FROM, SEED_FROM + count)


FAULT_END = 100.0  # s of simulated time with faults
SETTLE = 75.0  # s without faults before the invariants are checked
QUIET = 20.0  # s at the end of the settle period without any repair traffic
BEAT_INTERVAL = 5.0  # s, the client's default
REPLAY = "MESHREG_SIM_SEED={seed} pytest tests/sim -k replay -s"
TEST_ID = "test_random_faults_converge"
TRACE_FILE = os.environ.get("MESHREG_SIM_TRACE")

Table = dict[ServiceKey, dict[InstanceId, tuple[Any, ...]]]


# -- providers ---------------------------------------------------------------------------
class Provider:
    """A simulated client that registers one instance and keeps it alive.

    Like ``meshreg.client``: it registers (retrying until a reply comes),
    beats every 5 s through a random live node, and registers again when a
    beat answers NOT_FOUND (UNAVAILABLE, from a node catching up, is
    ignored).  It may stop beating at ``stop_at`` (after a deregister when
    ``deregister`` is set).  A ``smart`` provider also does
    what the client library does: it refreshes the cluster view (op
    ``cluster``) every 10 s and sends writes straight to the responsible node
    it computes, or through a random node when that one is down.
    """

    def __init__(
        self,
        net: Network,
        index: int,
        service: str,
        start: float,
        stop_at: float | None,
        deregister: bool = False,
        smart: bool = False,
    ) -> None:
        self.net = net
        self.smart = smart
        self.view: tuple[str, ...] = ()
        self.view_addresses: dict[str, str] = {}
        self.key = ServiceKey("public", "DEFAULT_GROUP", service)
        self.iid = InstanceId(f"10.1.{index // 200}.{index % 200 + 1}", 8000 + index, "DEFAULT")
        self.name = f"{service}/{self.iid.ip}:{self.iid.port}"
        self.start = start
        self.stop_at = stop_at
        self.deregister = deregister
        self.active = False
        self.stopped = False
        self.unexpected: list[str] = []
        self.not_found = 0
        where = {"namespace": self.key.namespace, "group": self.key.group}
        where.update(service=service, ip=self.iid.ip, port=self.iid.port)
        self.beat_fields = dict(where)
        self.register_fields = dict(where, weight=1.0, metadata={"p": str(index)})
        net.at(start, self._start)
        if stop_at is not None:
            net.at(stop_at, self._stop)

    @property
    def keeps_beating(self) -> bool:
        return self.stop_at is None

    def send(self, op: str, fields: dict[str, Any], on_done: Any) -> None:
        live = self.net.live()
        if not live:
            self.net.after(1.0, on_done, ("timeout", None))
            return
        entry = self.net.rng.choice(live)
        if self.smart and op != "cluster" and len(self.view) > 1:
            owner = self.view_addresses.get(responsible_node(self.key, self.view))
            direct = self.net.by_address.get(owner or "")
            if direct is not None and direct.core is not None:
                entry = direct
        self.net.client_request(entry, op, next(self.net.req_ids), fields, on_done)

    def _refresh_view(self) -> None:
        if not self.active:
            return

        def done(outcome: Outcome) -> None:
            if outcome[0] == "ok":
                members = [m for m in outcome[1]["members"] if m["state"] == "up"]
                self.view = tuple(sorted(m["id"] for m in members))
                self.view_addresses = {m["id"]: m["address"] for m in members}

        self.send("cluster", {}, done)
        self.net.after(10.0, self._refresh_view)

    def _start(self) -> None:
        self.active = True
        self.net.log(f"provider {self.name} starts")
        self._register(retry=True)
        self.net.after(BEAT_INTERVAL, self._beat)
        if self.smart:
            self._refresh_view()

    def _register(self, retry: bool) -> None:
        def done(outcome: Outcome) -> None:
            kind, value = outcome
            if kind == "error":
                self.unexpected.append(f"register: {value!r} at {self.net.now:.3f}")
            elif kind == "timeout" and retry and self.active:
                self.net.after(1.0, self._register, True)

        if self.active:
            self.send("register", self.register_fields, done)

    def _beat(self) -> None:
        if not self.active:
            return

        def done(outcome: Outcome) -> None:
            kind, value = outcome
            if kind == "error":
                if value == ErrorCode.NOT_FOUND:
                    self.not_found += 1
                    self.net.count("beat_not_found")
                    self.net.log(f"provider {self.name} beat: NOT_FOUND")
                    self._register(retry=False)
                elif value == ErrorCode.UNAVAILABLE:  # a node catching up: beat again later
                    self.net.count("beat_unavailable")
                    self.net.log(f"provider {self.name} beat: UNAVAILABLE")
                else:
                    self.unexpected.append(f"beat: {value!r} at {self.net.now:.3f}")

        self.send("beat", self.beat_fields, done)
        self.net.after(BEAT_INTERVAL, self._beat)

    def _stop(self) -> None:
        self.active = False
        self.stopped = True
        self.net.log(f"provider {self.name} stops" + (" (deregisters)" if self.deregister else ""))
        if self.deregister:
            self._deregister(3)

    def _deregister(self, tries: int) -> None:
        def done(outcome: Outcome) -> None:
            kind, value = outcome
            if kind == "error":
                self.unexpected.append(f"deregister: {value!r} at {self.net.now:.3f}")
            elif kind == "timeout" and tries > 1:
                self._deregister(tries - 1)

        fields = {k: v for k, v in self.register_fields.items() if k in self.beat_fields}
        self.send("deregister", fields, done)


# -- invariants ----------------------------------------------------------------------------
def table_of(core: DistroNode) -> Table:
    return {
        key: {
            iid: (r.weight, r.enabled, r.healthy, tuple(sorted(r.metadata.items())), r.version)
            for iid, r in svc.instances.items()
        }
        for key, svc in core.store.services.items()
    }


def lookup(core: DistroNode, p: Provider) -> Any:
    svc = core.store.services.get(p.key)  # (store.get's own look-up: probes call it a lot)
    return svc.instances.get(p.iid) if svc is not None else None


def diff_tables(a: Table, b: Table, limit: int = 6) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        ia, ib = a.get(key, {}), b.get(key, {})
        for iid in sorted(set(ia) | set(ib)):
            if ia.get(iid) != ib.get(iid):
                out.append(f"{key.service} {iid}: {ia.get(iid)} vs {ib.get(iid)}")
                if len(out) >= limit:
                    return out
    return out


def check_invariants(
    net: Network, providers: list[Provider], down: tuple[str, ...] = ()
) -> list[str]:
    """The end-of-run invariants over the live nodes (``down``: nodes meant to be down)."""
    problems: list[str] = []
    live = net.live()
    missing = [n for n in net.nodes if n not in down and net.nodes[n].core is None]
    if missing:
        problems.append(f"nodes down at the end: {missing}")
    for n in live:
        assert n.core is not None
        if not n.core.ready:
            problems.append(f"{n.node_id} is not ready")
    # (4) one responsible node per service: everyone hashes over the same members
    ids = tuple(sorted(n.node_id for n in live))
    for n in live:
        assert n.core is not None
        if n.core.members() != ids:
            problems.append(f"{n.node_id} members {n.core.members()} != {ids}")
    # (1) convergence
    tables = {n.node_id: table_of(n.core) for n in live if n.core is not None}
    first = live[0].node_id
    for node_id, table in tables.items():
        if table != tables[first]:
            problems.append(
                f"tables differ, {first} vs {node_id}: {diff_tables(tables[first], table)}"
            )
    # (2) and (3)
    for p in providers:
        for n in live:
            assert n.core is not None
            rec = lookup(n.core, p)
            if p.keeps_beating:
                if rec is None:
                    problems.append(f"live {p.name} missing on {n.node_id}")
                elif not rec.healthy:
                    problems.append(f"live {p.name} unhealthy on {n.node_id}")
            elif rec is not None:
                problems.append(f"dead {p.name} (stopped at {p.stop_at:.1f}) kept on {n.node_id}")
        if p.unexpected:
            problems.append(f"{p.name} got unexpected replies: {p.unexpected[:3]}")
    problems += net.violations[:10]
    return problems


class Probe:
    """Periodic checks during a run; collects what went wrong, with the time."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.problems: list[str] = []

    def fail(self, text: str) -> None:
        if len(self.problems) < 30:
            self.problems.append(f"t={self.net.now:.2f} {text}")


def watch_no_resurrection(
    net: Network, providers: list[Provider], probe: Probe, start: float
) -> None:
    """From ``start`` on: a stopped provider's instance, once gone from every node, stays gone."""
    gone: list[Provider] = []

    def check() -> None:
        live = [n.core for n in net.live() if n.core is not None]
        for p in gone:
            for core in live:
                if lookup(core, p) is not None:
                    probe.fail(f"evicted {p.name} resurrected on {core.node_id}")
        for p in providers:
            if p.stopped and p not in gone and all(lookup(c, p) is None for c in live):
                gone.append(p)

    net.every(0.5, check, start=start)


# -- random runs ---------------------------------------------------------------------------
@dataclass
class Run:
    seed: int
    net: Network
    providers: list[Provider]
    plan: list[str] = field(default_factory=list)
    small_pages: bool = False  # tiny digest pages and reconcile chunks: exercise paging

    def summary(self) -> str:
        return "; ".join(self.plan)


def plan_random_run(seed: int, trace: bool = False) -> Run:
    """Build the cluster, providers and fault plan of one seed (nothing run yet)."""
    rng = random.Random(f"plan-{seed}")  # the network draws from its own stream
    n_nodes = rng.choice((3, 3, 4, 5))
    node_ids = [f"n{i}" for i in range(n_nodes)]
    max_skew = rng.choice((0.0, 0.05, 2.0, 10.0))
    net = Network(seed, node_ids, max_skew=max_skew, trace=trace)
    loss = rng.choice((0.0, 0.01, 0.05, 0.1, 0.2))
    net.loss = loss
    net.max_delay = rng.choice((0.002, 0.02, 0.1))
    net.slow_prob = rng.choice((0.0, 0.01, 0.05))
    net.slow_max = rng.uniform(0.3, 2.5)
    run = Run(seed, net, [], small_pages=rng.random() < 0.3)
    run.plan.append(
        f"{n_nodes} nodes, loss {loss}, delay <= {net.max_delay}, "
        f"slow {net.slow_prob} <= {net.slow_max:.2f}, skew <= {max_skew}"
        + (", small pages" if run.small_pages else "")
    )
    for node_id in node_ids:  # staggered start
        net.at(rng.uniform(0.0, 2.0), net.start, node_id)

    # crashes and restarts; at least one node always stays up
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        t = rng.uniform(5.0, FAULT_END - 5.0)
        down = rng.choice((rng.uniform(0.5, 3.0), rng.uniform(3.0, 40.0)))
        victim = rng.choice(node_ids)
        run.plan.append(f"crash {victim} at {t:.1f} for {down:.1f}s")

        def crash(victim: str = victim, down: float = down) -> None:
            node = net.nodes[victim]
            if node.core is None or len(net.live()) < 2:
                net.log(f"crash of {victim} skipped")
                return
            net.crash(victim)
            net.at(min(net.now + down, FAULT_END), restart, victim, node.gen)

        net.at(t, crash)

    if n_nodes > 3 and rng.random() < 0.2:  # several nodes at once (a rack), one survives
        t = rng.uniform(5.0, FAULT_END - 5.0)
        down = rng.uniform(0.5, 30.0)
        victims = rng.sample(node_ids, n_nodes - 1 - rng.randrange(n_nodes - 2))
        run.plan.append(f"crash {victims} at {t:.1f} for {down:.1f}s")

        def crash_group(victims: list[str] = victims, down: float = down) -> None:
            for victim in victims:
                node = net.nodes[victim]
                if node.core is not None and len(net.live()) > 1:
                    net.crash(victim)
                    net.at(min(net.now + down, FAULT_END), restart, victim, node.gen)

        net.at(t, crash_group)

    def restart(node_id: str, gen: int) -> None:
        node = net.nodes[node_id]
        if node.core is None and node.gen == gen:
            net.start(node_id)

    # partitions: non-overlapping episodes, each splitting the nodes in two
    t = rng.uniform(5.0, 40.0)
    for _ in range(rng.choice((0, 1, 1, 2))):
        length = rng.uniform(5.0, 45.0)
        if t + length > FAULT_END - 2.0:
            break
        shuffled = node_ids[:]
        rng.shuffle(shuffled)
        cut = rng.randint(1, n_nodes - 1)
        groups = [frozenset(shuffled[:cut]), frozenset(shuffled[cut:])]
        run.plan.append(
            f"partition {sorted(groups[0])}|{sorted(groups[1])} {t:.1f}..{t + length:.1f}"
        )
        net.at(t, set_groups, net, groups)
        net.at(t + length, set_groups, net, None)
        t += length + rng.uniform(3.0, 30.0)

    # one-way trouble: one node's requests to another are lost for a while
    if rng.random() < 0.2:
        caller, callee = rng.sample(node_ids, 2)
        t = rng.uniform(5.0, FAULT_END - 10.0)
        length = rng.uniform(5.0, 40.0)
        run.plan.append(f"requests {caller}->{callee} lost {t:.1f}..{t + length:.1f}")
        net.at(t, net.blocked_calls.add, (caller, callee))
        net.at(min(t + length, FAULT_END), net.blocked_calls.discard, (caller, callee))

    # providers
    services = [f"svc{i}" for i in range(rng.randint(5, 10))]
    for _ in range(rng.randint(12, 30)):
        start = rng.uniform(0.0, FAULT_END * 0.8)
        kind = rng.random()
        stop_at = rng.uniform(start + 1.0, FAULT_END) if kind < 0.4 else None
        service = rng.choice(services)
        smart = rng.random() < 0.5
        run.providers.append(
            Provider(net, next(net.instance_ids), service, start, stop_at, kind < 0.2, smart=smart)
        )
    run.plan.append(
        f"{len(run.providers)} providers on {len(services)} services, "
        f"{sum(not p.keeps_beating for p in run.providers)} stop"
    )

    def faults_end() -> None:
        net.log("FAULTS END")
        net.loss = 0.0
        net.slow_prob = 0.0
        net.groups = None
        net.blocked_calls.clear()
        for node_id, node in net.nodes.items():
            if node.core is None:
                net.start(node_id)

    net.at(FAULT_END, faults_end)
    # deltas held for a busy runtime's turn (last: the draws above replay as before)
    net.batch_hold = rng.choice((0.0, 0.0, 0.001, 0.005))
    if net.batch_hold:
        run.plan.append(f"deltas batched for {net.batch_hold * 1000:g} ms")
    return run


def set_groups(net: Network, groups: list[frozenset[str]] | None) -> None:
    net.groups = groups
    net.log(f"PARTITION {[sorted(g) for g in groups]}" if groups else "PARTITION healed")


def run_settled(net: Network, end: float) -> list[str]:
    """Run to ``end``; complain about repair traffic in the last ``QUIET`` s.  A node held
    out of the members (restarted twice lately: core/distro "A node that keeps restarting")
    takes its share when the hold ends, which may be later, and judges the dead instances
    of it a grace period after: the quiet window then starts ``evict_after +
    unhealthy_after`` after the last hold ended (bounded: a hold lasts that long)."""
    net.run_until(end - QUIET)
    h = net.health
    limit = net.now + 2 * (h.evict_after + h.unhealthy_after)
    while net.now < limit and any(n.core.held_by for n in net.live()):
        net.run_until(net.now + 0.5)
    # a member that came in (its hold over) started a grace: evictions a grace later
    joined = max((n.core.ready_at for n in net.live()), default=0.0)
    settled = joined + h.evict_after + h.unhealthy_after + 2 * h.check_interval
    if settled > net.now and any(n.core.ready_at > 0 and n.gen > 1 for n in net.live()):
        net.run_until(min(settled, limit))
    before = dict(net.counts)
    net.run_until(max(end, net.now + QUIET))
    busy = {
        what: net.counts.get(what, 0) - before.get(what, 0)
        for what in (
            "call_digests",
            "call_reconcile",
            "pub_delta",
            "pub_deltas",
            "forward_fallback",
            "beat_not_found",
            "beat_unavailable",
        )
    }
    if any(busy.values()):
        return [f"not quiet in the last {QUIET:g}s of settling: {busy}"]
    return []


@contextlib.contextmanager
def small_pages(enabled: bool = True) -> Iterator[None]:
    """Digest pages of 2 services, reconcile chunks of 2 services or 3 entries."""
    names = ("MAX_DIGEST_PAGE", "MAX_RECONCILE_SERVICES", "RECONCILE_CHUNK_ENTRIES")
    saved = {name: getattr(distro, name) for name in names}
    if enabled:
        distro.MAX_DIGEST_PAGE, distro.MAX_RECONCILE_SERVICES = 2, 2
        distro.RECONCILE_CHUNK_ENTRIES = 3
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(distro, name, value)


def run_seed(seed: int, trace: bool = False) -> tuple[Run, list[str]]:
    run = plan_random_run(seed, trace)
    probe = Probe(run.net)
    # in flight at the end of the faults: slow messages, a forward's fallback, a client retry
    watch_no_resurrection(run.net, run.providers, probe, FAULT_END + 5.0)
    with small_pages(run.small_pages):
        problems = run_settled(run.net, FAULT_END + SETTLE)
    return run, check_invariants(run.net, run.providers) + problems + probe.problems


def failure_message(run: Run, problems: list[str]) -> str:
    lines = [f"seed {run.seed} failed ({run.summary()}):"]
    lines += [f"  {p}" for p in problems[:15]]
    if len(problems) > 15:
        lines.append(f"  ... and {len(problems) - 15} more")
    lines.append("replay with: " + REPLAY.format(seed=run.seed))
    lines.append(f"or rerun: pytest 'tests/sim/test_distro_sim.py::{TEST_ID}[{run.seed}]'")
    return "\n".join(lines)


@pytest.mark.parametrize("seed", sweep_seeds(SEEDS))
def test_random_faults_converge(seed: int) -> None:
    run, problems = run_seed(seed)
    assert not problems, failure_message(run, problems)


# -- targeted scenarios -----------------------------------------------------------------------
def start_cluster(seed: int, n: int = 3) -> Network:
    net = Network(seed, [f"n{i}" for i in range(n)], trace=bool(TRACE_FILE))
    for i, node_id in enumerate(net.nodes):
        net.at(0.1 * i, net.start, node_id)
    return net


def add_providers(
    net: Network,
    services: int,
    per_service: int,
    start: tuple[float, float] = (3.0, 10.0),
    stop: tuple[float, float] | None = None,
    deregister: bool = False,
) -> list[Provider]:
    """``per_service`` providers on each of ``services`` services (``stop``: when they stop)."""
    rng = net.rng
    out = []
    for s in range(services):
        for _ in range(per_service):
            index = next(net.instance_ids)
            t0 = rng.uniform(*start)
            t1 = rng.uniform(*stop) if stop is not None else None
            smart = rng.random() < 0.5
            out.append(Provider(net, index, f"svc{s}", t0, t1, deregister, smart))
    return out


def core_of(net: Network, node_id: str) -> DistroNode:
    core = net.nodes[node_id].core
    assert core is not None, f"{node_id} is down"
    return core


def scenario_message(net: Network, name: str, problems: list[str]) -> str:
    lines = [f"{name} (seed {net.seed}) failed:"] + [f"  {p}" for p in problems[:20]]
    if TRACE_FILE and net.trace is not None:
        with open(TRACE_FILE, "w", encoding="utf-8") as fh:
            fh.write("\n".join(net.trace + [f"PROBLEM {p}" for p in problems]) + "\n")
        lines.append(f"trace written to {TRACE_FILE}")
    else:
        lines.append("trace: rerun with MESHREG_SIM_TRACE=/tmp/trace.txt")
    return "\n".join(lines)


@pytest.mark.parametrize(("seed", "n_nodes"), [(1, 3), (2, 3), (3, 4), (4, 5), (5, 5)])
def test_killing_a_responsible_node_loses_nothing_and_marks_nothing_unhealthy(
    seed: int, n_nodes: int
) -> None:
    net = start_cluster(seed, n_nodes)
    providers = add_providers(net, services=6, per_service=4)
    net.run_until(30.0)
    probe = Probe(net)
    probe.problems += check_invariants(net, providers)
    key = providers[0].key
    owner = core_of(net, "n0").owner_of(key)
    assert all(core_of(net, n).owner_of(key) == owner for n in net.nodes)
    net.crash(owner)
    survivors = [n for n in net.nodes.values() if n.node_id != owner]
    not_found_before = sum(p.not_found for p in providers)

    def check() -> None:
        for node in survivors:
            assert node.core is not None
            for p in providers:
                rec = lookup(node.core, p)
                if rec is None or not rec.healthy:
                    probe.fail(f"{p.name} {'unhealthy' if rec else 'missing'} on {node.node_id}")

    net.every(0.1, check, start=30.0)
    probe.problems += run_settled(net, 100.0)
    for node in survivors:
        for t, change in node.changes:
            if t >= 30.0 and (change.removed or any(not v.healthy for v in change.upserted)):
                probe.fail(f"{node.node_id} at {t:.2f}: {change.reason} {change.key.service}")
    if sum(p.not_found for p in providers) != not_found_before:
        probe.fail("a beat got NOT_FOUND after the crash (an instance was missing somewhere)")
    probe.problems += check_invariants(net, providers, down=(owner,))
    new_owner = {core_of(net, n.node_id).owner_of(key) for n in survivors}
    if len(new_owner) != 1 or owner in new_owner:
        probe.fail(f"owners of {key} after the crash: {new_owner}")
    assert not probe.problems, scenario_message(net, "kill the responsible node", probe.problems)


@pytest.mark.parametrize(("seed", "n_nodes"), [(11, 3), (12, 3), (13, 4), (14, 5)])
def test_a_restarted_node_catches_up_before_it_reports_ready(seed: int, n_nodes: int) -> None:
    net = start_cluster(seed, n_nodes)
    providers = add_providers(net, services=8, per_service=3)
    net.run_until(30.0)
    victim = "n1"
    net.crash(victim)
    net.run_until(40.0)
    net.start(victim)
    assert not core_of(net, victim).ready
    probe = Probe(net)
    ready_at: list[float] = []
    not_found_before = sum(p.not_found for p in providers)

    def check() -> None:
        core = net.nodes[victim].core
        if ready_at or core is None or not core.ready:
            return
        ready_at.append(net.now)
        mine, theirs = table_of(core), table_of(core_of(net, "n0"))
        if mine != theirs:
            probe.fail(f"{victim} ready with a partial table: {diff_tables(theirs, mine)}")

    net.every(0.01, check, start=40.0)
    probe.problems += run_settled(net, 90.0)
    if not ready_at:
        probe.fail(f"{victim} never became ready")
    elif ready_at[0] - 40.0 > 2.0:
        probe.fail(f"{victim} took {ready_at[0] - 40.0:.2f}s to catch up")
    if sum(p.not_found for p in providers) != not_found_before:
        probe.fail("a beat got NOT_FOUND after the restart (an instance was missing somewhere)")
    probe.problems += check_invariants(net, providers)
    assert not probe.problems, scenario_message(net, "restart and catch up", probe.problems)


@pytest.mark.parametrize("seed", [15, 16])
def test_a_peer_that_never_answers_does_not_keep_a_node_catching_up(seed: int) -> None:
    """n1 restarts; its requests to n0 are lost for a while (all else flows)."""
    net = start_cluster(seed, 3)
    providers = add_providers(net, services=8, per_service=2)
    net.run_until(30.0)
    net.crash("n1")
    net.run_until(35.0)
    net.blocked_calls.add(("n1", "n0"))
    net.start("n1")
    net.run_until(35.0 + distro.CATCH_UP_PATIENCE * net.cluster.peer_timeout + 1.0)
    problems = [] if core_of(net, "n1").ready else ["n1 is still catching up"]
    net.blocked_calls.clear()
    problems += run_settled(net, net.now + SETTLE)
    problems += check_invariants(net, providers)
    assert not problems, scenario_message(net, "a peer that never answers", problems)


@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25])
def test_partition_heals_without_losing_live_or_resurrecting_evicted(seed: int) -> None:
    net = start_cluster(seed, 3)
    keep = add_providers(net, services=6, per_service=3)
    early = add_providers(net, services=6, per_service=1, stop=(12.0, 18.0))
    during = add_providers(net, services=6, per_service=1, stop=(24.0, 30.0))
    gone = add_providers(net, services=6, per_service=1, stop=(24.0, 30.0), deregister=True)
    providers = keep + early + during + gone
    stopped = early + during + gone
    net.at(20.0, set_groups, net, [frozenset({"n0"}), frozenset({"n1", "n2"})])
    net.at(80.0, set_groups, net, None)
    net.run_until(80.0)
    probe = Probe(net)
    # The majority evicts them; the isolated n0 (no peer up) evicts nobody: it cannot
    # tell its own isolation from everyone's death, so it only marks them unhealthy.
    majority = [core_of(net, "n1"), core_of(net, "n2")]
    kept = [p for p in stopped if any(lookup(core, p) is not None for core in majority)]
    if kept:
        probe.fail(f"{len(kept)} stopped providers not evicted on the majority side")
    alive_on_n0 = [p for p in stopped if (r := lookup(core_of(net, "n0"), p)) and r.healthy]
    if alive_on_n0:
        probe.fail(f"{len(alive_on_n0)} stopped providers still healthy on the isolated n0")
    watch_no_resurrection(net, stopped, probe, 80.0)
    probe.problems += run_settled(net, 80.0 + SETTLE)
    probe.problems += check_invariants(net, providers)
    assert not probe.problems, scenario_message(net, "partition {A}|{B,C}", probe.problems)


@pytest.mark.parametrize(("seed", "n_nodes", "loss"), [(31, 3, 0.2), (32, 4, 0.3), (33, 5, 0.1)])
def test_message_loss_only(seed: int, n_nodes: int, loss: float) -> None:
    net = start_cluster(seed, n_nodes)
    net.loss = loss
    providers = add_providers(net, services=8, per_service=3, start=(0.0, 60.0))
    providers += add_providers(net, services=8, per_service=1, stop=(20.0, FAULT_END))
    net.at(FAULT_END, setattr, net, "loss", 0.0)
    problems = run_settled(net, FAULT_END + SETTLE)
    problems += check_invariants(net, providers)
    assert not problems, scenario_message(net, f"loss {loss}", problems)


@pytest.mark.parametrize("seed", [51, 52, 53])
def test_a_short_blip_moves_no_responsibility(seed: int) -> None:
    """Hysteresis: 1.5 s of silence plus 10% loss (beacons lost too) flap nothing."""
    net = start_cluster(seed, 4)
    providers = add_providers(net, services=8, per_service=2)
    net.run_until(20.0)
    members = {n: core_of(net, n).members() for n in net.nodes}
    net.loss = 0.1
    net.at(30.0, set_groups, net, [frozenset({"n1"}), frozenset({"n0", "n2", "n3"})])
    net.at(31.5, set_groups, net, None)
    net.at(60.0, setattr, net, "loss", 0.0)
    problems = run_settled(net, 90.0)
    for node in net.nodes.values():
        for t, event in node.member_events:
            if t >= 20.0:
                problems.append(f"t={t:.2f} {node.node_id} saw {event.node_id} {event.state.value}")
    problems += [
        f"{n} members changed to {core_of(net, n).members()}"
        for n in net.nodes
        if core_of(net, n).members() != members[n]
    ]
    problems += check_invariants(net, providers)
    assert not problems, scenario_message(net, "short blip", problems)


@pytest.mark.parametrize("seed", [41, 42])
def test_no_faults_no_repairs_and_nothing_unhealthy(seed: int) -> None:
    net = start_cluster(seed, 4)
    net.run_until(3.0)
    providers = add_providers(net, services=8, per_service=3, start=(3.0, 20.0))
    problems = run_settled(net, 60.0)
    problems += check_invariants(net, providers)
    if any(p.not_found for p in providers):
        problems.append("a beat got NOT_FOUND without any fault")
    for node in net.nodes.values():
        for _, change in node.changes:
            if change.removed or any(not v.healthy for v in change.upserted):
                problems.append(f"{node.node_id}: {change.reason} {change.key.service}")
    for what in ("forward_fallback", "call_reconcile"):
        if net.counts.get(what):
            problems.append(f"{what} happened {net.counts[what]} times without any fault")
    assert not problems, scenario_message(net, "no faults", problems)


@pytest.mark.parametrize("seed", [43, 44])
def test_batched_deltas_bring_no_repairs(seed: int) -> None:
    """Deltas held and sent many to a message, no faults: no delta is missed, so no
    gap and no digest difference ever starts a round after the catch-up."""
    net = start_cluster(seed, 3)
    net.batch_hold = 0.02  # busy turns: a turn's inputs share its messages of deltas
    net.min_delay = net.max_delay = 0.002  # in order, as on one TCP connection
    net.run_until(3.0)
    pulls = {n: core_of(net, n).counters["snapshot_pulls"] for n in net.nodes}
    providers = add_providers(
        net, services=6, per_service=8, start=(3.0, 4.0), stop=(20.0, 30.0), deregister=True
    )
    # a lone write's delta leaves at once (runtime/node ``_after_write``): a burst (many
    # registrations in one turn of their owner) shares messages
    providers += add_providers(net, services=2, per_service=10, start=(4.5, 4.52))
    problems = run_settled(net, 60.0)
    problems += check_invariants(net, providers)
    for n in net.nodes:
        core = core_of(net, n)
        if core.counters["snapshot_pulls"] != pulls[n]:
            problems.append(f"{n}: {core.counters['snapshot_pulls'] - pulls[n]} repair rounds")
        if core.counters["replication_errors"]:
            problems.append(f"{n}: {core.counters['replication_errors']} replication errors")
    if not net.counts.get("pub_deltas"):
        problems.append("no message carried more than one delta: batching not exercised")
    assert not problems, scenario_message(net, "batched deltas", problems)


def trace_digest(seed: int) -> str:
    run, _ = run_seed(seed, trace=True)
    assert run.net.trace is not None
    return hashlib.sha256("\n".join(run.net.trace).encode()).hexdigest()


def test_a_seed_replays_exactly_in_another_process() -> None:
    """Same seed, same run: also under another PYTHONHASHSEED (set iteration order)."""
    seed = 7
    here = trace_digest(seed)
    code = (
        f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
        f"import test_distro_sim as t; print(t.trace_digest({seed}))"
    )
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here, (
            f"seed {seed} ran differently (PYTHONHASHSEED={hash_seed})"
        )


def replay(seed: int, out: Any = None) -> list[str]:
    """Run one seed with tracing; print the trace and the problems; return them."""
    run, problems = run_seed(seed, trace=True)
    assert run.net.trace is not None
    print(f"seed {seed}: {run.summary()}", file=out)
    for line in run.net.trace:
        print(line, file=out)
    print(f"counts: {run.net.counts}", file=out)
    for p in problems:
        print(f"PROBLEM {p}", file=out)
    return problems


def test_replay_seed() -> None:
    """Replays MESHREG_SIM_SEED with a full trace (seed 0 when unset, so it always runs)."""
    seed = int(os.environ.get("MESHREG_SIM_SEED", "0"))
    if TRACE_FILE:
        with open(TRACE_FILE, "w", encoding="utf-8") as fh:
            problems = replay(seed, fh)
    else:
        problems = replay(seed)
    assert not problems, f"seed {seed}: {problems[:10]}"


if __name__ == "__main__":
    replay(int(sys.argv[1]))
