"""Cluster benchmark: change propagation across nodes, and convergence after a node is killed.

Run from the repository root with the project's interpreter::

    python bench/cluster.py [--nodes N] [--changes K] [--instances M] [--json]

Two measurements, on real ``meshreg node`` processes bound to 127.0.0.1 only:

1. **Change propagation.**  One subscriber Client per node (each one talking
   only to its own node) subscribes to a few services; a provider Client whose
   server is node A alternately registers and deregisters distinct instances.
   For each change we take the time from ``register()``/``deregister()``
   returning until the callback on *every* node has shown the change (and on
   the first node, for reference).  The same run on a lone node (subscriber
   on the same node) is the baseline.  Note: once the provider Client has
   learned the cluster view it sends writes straight to each service's
   responsible node (the client's documented behaviour), so "through A" means
   "a Client configured with A"; the report counts what A itself forwarded.
2. **Convergence after a node is killed.**  M instances over S services are
   registered through one Client whose server list is every node, the node to
   be killed first (so the provider also has to fail over), beating every
   ``--beat-interval``.  Once every node lists all of them, the node
   responsible for the most services (``responsible_node`` over the node
   addresses, which are the default node ids) is SIGKILLed.  Every survivor is
   sampled every ``--sample-interval`` (its ``cluster`` view and the full
   listing of every service, asked of that node alone) and watched by a
   subscriber Client; any instance missing or unhealthy on a survivor at any
   time is reported with the node log lines.  The node is then restarted on
   the same port and timed until it answers, is ready and lists everything.

Every process started here is killed on the way out (also on Ctrl-C and
SIGTERM); every loop is bounded in iterations or time.  Results and method:
bench/README_cluster.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/cluster.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    GROUP,
    HOST,
    NS,
    NodeProc,
    Procs,
    dist_ms,
    free_port_block,
    machine_info,
    percentile,
    wait_until,
)
from meshreg import Client, Instance, MeshregError, ServiceKey  # noqa: E402
from meshreg.core.mapping import responsible_node  # noqa: E402

FORM_SECONDS = 30.0  # bound on the cluster agreeing that every member is up and ready
LISTED_SECONDS = 30.0  # bound on every node listing every registered instance
RESTART_SECONDS = 60.0  # bound on the restarted node being ready and listing everything
SAMPLER_MAX_SECONDS = 900.0  # a sampler thread never runs longer than this
MAX_BAD_KEPT = 5000  # imperfect samples / pushes kept per node (beyond: counted only)
pc = time.perf_counter


# -- small helpers ------------------------------------------------------------------
def wall(t_wall: float) -> str:
    """A wall-clock time formatted like the nodes' log lines (asctime)."""
    lt = time.localtime(t_wall)
    return time.strftime("%Y-%m-%d %H:%M:%S", lt) + f",{int((t_wall % 1) * 1000):03d}"


def new_client(address: str | list[str], **kw: Any) -> Client:
    kw.setdefault("timeout", 3.0)
    kw.setdefault("attempt_timeout", 1.0)
    return Client([address] if isinstance(address, str) else address, **kw)


def close_quietly(client: Client | None, timeout: float = 1.0) -> None:
    if client is None:
        return
    try:
        client.close(timeout=timeout)
    except Exception:  # cleanup must go on
        pass


class ClientLog(logging.Handler):
    """Keeps the meshreg client's log records (failovers, re-registrations) with times."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[float, str, str]] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            if len(self.records) < 10_000:
                self.records.append((pc(), record.levelname, record.getMessage()))

    def between(self, t0: float, t1: float) -> list[tuple[float, str, str]]:
        with self._lock2:
            return [r for r in self.records if t0 <= r[0] < t1]


def node_args(opts: argparse.Namespace, peers: list[str]) -> list[str]:
    args = [
        "--check-interval",
        f"{opts.check_interval:g}",
        "--unhealthy-after",
        f"{opts.unhealthy_after:g}",
        "--evict-after",
        f"{opts.evict_after:g}",
    ]
    if peers:
        args += ["--peer-timeout", f"{opts.peer_timeout:g}"]
        for p in peers:
            args += ["--peer", p]
    return args


def start_cluster(
    procs: Procs, opts: argparse.Namespace, n: int, log_dir: str
) -> tuple[list[NodeProc], float]:
    """Start ``n`` peers; returns them and the seconds until all agreed they are up."""
    ports = [free_port_block() for _ in range(n)]
    peers = [f"{HOST}:{p}" for p in ports]
    t0 = pc()
    nodes = [procs.add(NodeProc(p, node_args(opts, peers), log_dir).start()) for p in ports]
    for node in nodes:
        node.wait_ping()
    probes = [new_client(node.address, timeout=2.0) for node in nodes]
    try:

        def formed() -> bool:
            ids = None
            for c in probes:
                view = c.cluster()
                members = view["members"]
                if not view["ready"] or len(members) != n:
                    return False
                if any(m["state"] != "up" for m in members):
                    return False
                these = sorted(m["id"] for m in members)
                if ids is not None and these != ids:
                    return False
                ids = these
            return True

        t = wait_until(formed, FORM_SECONDS)
    finally:
        for c in probes:
            close_quietly(c)
    if t is None:
        raise RuntimeError(f"the {n}-node cluster did not form within {FORM_SECONDS}s")
    return nodes, t - t0


# -- 1. change propagation -------------------------------------------------------------
class Tracker:
    """Which subscriber (one per node) has seen the expected change, and when."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cond = threading.Condition()
        self.target: tuple[str, str, bool] | None = None  # (service, address, present)
        self.seen: list[float | None] = [None] * n

    def expect(self, service: str, address: str, present: bool) -> None:
        with self.cond:
            self.target = (service, address, present)
            self.seen = [None] * self.n

    def listener(self, idx: int, service: str) -> Callable[[list[Instance]], None]:
        def changed(instances: list[Instance]) -> None:
            t = pc()
            with self.cond:
                target = self.target
                if target is None or target[0] != service or self.seen[idx] is not None:
                    return
                present = any(i.address == target[1] for i in instances)
                if present == target[2]:
                    self.seen[idx] = t
                    if all(s is not None for s in self.seen):
                        self.cond.notify_all()

        return changed

    def wait(self, timeout: float) -> list[float | None]:
        deadline = pc() + timeout
        with self.cond:
            while not all(s is not None for s in self.seen):  # bounded by the deadline
                left = deadline - pc()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.seen)


def run_propagation(
    label: str,
    nodes: list[NodeProc],
    opts: argparse.Namespace,
    octet: int,
    say: Callable[[str], None],
    client_kw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """K alternating register/deregister changes through nodes[0]; every node subscribed.

    ``client_kw``: more ``Client`` arguments (keys, for nodes started with ``--key``)."""
    client_kw = client_kw or {}
    services = [f"prop-{i:02d}" for i in range(opts.prop_services)]
    tracker = Tracker(len(nodes))
    subs: list[Client] = []
    provider: Client | None = None
    calls: list[float] = []
    to_all: list[float] = []
    to_first: list[float] = []
    from_start: list[float] = []  # from the call's start instead of its return
    per_node: list[list[float]] = [[] for _ in nodes]
    remote: list[float] = []  # the slowest subscriber on a node other than the owner
    addresses = [n.address for n in nodes]
    owner_idx = {
        s: addresses.index(responsible_node(ServiceKey(NS, GROUP, s), addresses)) for s in services
    }
    timeouts: list[dict[str, Any]] = []
    errors: list[str] = []
    stopped_early = False
    try:
        for idx, node in enumerate(nodes):
            c = new_client(node.address, timeout=5.0, **client_kw)
            subs.append(c)
            for s in services:
                c.subscribe(s, tracker.listener(idx, s))
        provider = new_client(nodes[0].address, timeout=5.0, **client_kw)
        # One permanent instance per service: a change never empties a service, so no
        # change waits for the subscribers' push-empty confirmation (a separate query).
        for s in services:
            provider.register(s, f"10.{octet}.255.254", 9999)
        forwarded0 = provider.stats().get("forwarded", 0)
        total = opts.warmup_changes + opts.changes
        t_start = pc()
        for i in range(total):
            if i == opts.warmup_changes:  # count only what A forwards during the measured part
                forwarded0 = provider.stats().get("forwarded", 0)
            if pc() - t_start > opts.max_seconds:
                stopped_early = True
                break
            pair, deregister = divmod(i, 2)
            service = services[pair % len(services)]
            ip = f"10.{octet}.{pair // 250}.{pair % 250 + 1}"
            port = 9000 + pair % 1000
            tracker.expect(service, f"{ip}:{port}", not deregister)
            t0 = pc()
            try:
                if deregister:
                    provider.deregister(service, ip, port)
                else:
                    provider.register(service, ip, port)
            except MeshregError as exc:
                errors.append(f"change {i}: {exc}")
                continue
            t1 = pc()
            seen = tracker.wait(opts.change_timeout)
            if i < opts.warmup_changes:
                continue
            if any(s is None for s in seen):
                missing = [nodes[k].address for k, s in enumerate(seen) if s is None]
                timeouts.append({"change": i, "service": service, "not_seen_on": missing})
                continue
            times = [s - t1 for s in seen if s is not None]
            calls.append(t1 - t0)
            from_start.append(max(times) + (t1 - t0))
            to_all.append(max(times))
            to_first.append(min(times))
            for k, d in enumerate(times):
                per_node[k].append(d)
            others = [d for k, d in enumerate(times) if k != owner_idx[service]]
            if others:
                remote.append(max(others))
        elapsed = pc() - t_start
        forwarded = provider.stats().get("forwarded", 0) - forwarded0
    finally:
        for c in subs:  # first: the provider's goodbye empties the services they watch
            close_quietly(c)
        close_quietly(provider)
    result = {
        "label": label,
        "nodes": len(nodes),
        "changes_measured": len(to_all),
        "changes_planned": opts.changes,
        "warmup_changes": opts.warmup_changes,
        "timeouts": timeouts,
        "errors": errors,
        "stopped_early": stopped_early,
        "elapsed_s": round(elapsed, 3),
        "all_nodes_ms": dist_ms(to_all),
        "first_node_ms": dist_ms(to_first),
        "remote_subscriber_ms": dist_ms(remote),
        "call_ms": dist_ms(calls),
        "all_nodes_from_call_start_ms": dist_ms(from_start),
        "per_node_p50_ms": {
            nodes[k].address: round(percentile(sorted(v), 50) * 1000, 3)
            for k, v in enumerate(per_node)
        },
        "negative_all": sum(1 for d in to_all if d < 0),
        "forwarded_by_a": forwarded,
    }
    say(
        f"  {label}: {len(to_all)} changes in {elapsed:.1f}s, all nodes p50 "
        f"{result['all_nodes_ms']['p50']:.2f} ms, {len(timeouts)} timed out"
    )
    return result


# -- 2. convergence after a kill ------------------------------------------------------
class Sampler:
    """Samples one node every ``interval``: its cluster view and every service's listing."""

    def __init__(
        self,
        node: NodeProc,
        services: list[str],
        expected: dict[str, set[str]],
        watch_address: str,
        interval: float,
    ) -> None:
        self.node = node
        self.client = new_client(node.address, timeout=2.0)
        self.services = services
        self.expected = expected
        self.watch_address = watch_address
        self.interval = interval
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.samples = 0
        self.longest_gap = 0.0
        self.long_gaps: list[tuple[float, float]] = []  # (start, length) of gaps > 3 intervals
        self.errors: list[tuple[float, str]] = []
        self.states: list[tuple[float, str]] = []  # changes of watch_address's state in the view
        self.ready: list[tuple[float, bool]] = []  # changes of this node's own ready flag
        self.perfect: list[tuple[float, bool]] = []  # changes of "lists all M, all healthy"
        self.bad: list[dict[str, Any]] = []  # imperfect samples (the first MAX_BAD_KEPT)
        self.bad_count = 0
        self.thread = threading.Thread(target=self._run, name=f"sampler-{node.port}", daemon=True)

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5.0)
        close_quietly(self.client, 0.5)

    def _run(self) -> None:
        deadline = pc() + SAMPLER_MAX_SECONDS
        next_t = pc()
        last = None
        while not self.stop_event.is_set() and pc() < deadline:
            t = pc()
            if last is not None:
                self.longest_gap = max(self.longest_gap, t - last)
                if t - last > 3 * self.interval and len(self.long_gaps) < MAX_BAD_KEPT:
                    self.long_gaps.append((last, t - last))
            last = t
            try:
                self._sample()
            except MeshregError as exc:
                with self.lock:
                    if len(self.errors) < MAX_BAD_KEPT:
                        self.errors.append((pc(), str(exc)))
            next_t += self.interval
            if next_t < pc():
                next_t = pc()  # behind: do not try to catch up in a burst
            self.stop_event.wait(max(0.0, next_t - pc()))

    def _sample(self) -> None:
        view = self.client.cluster()
        t_view = pc()
        state = "absent"
        for m in view["members"]:
            if m["address"] == self.watch_address:
                state = m["state"]
        missing: dict[str, list[str]] = {}
        unhealthy: dict[str, list[str]] = {}
        unexpected: dict[str, list[str]] = {}
        listed_total = 0
        for s in self.services:
            listed = {i.address: i.healthy for i in self.client.instances(s, healthy_only=False)}
            listed_total += len(listed)
            want = self.expected[s]
            if want - listed.keys():
                missing[s] = sorted(want - listed.keys())
            sick = sorted(a for a, ok in listed.items() if not ok)
            if sick:
                unhealthy[s] = sick
            if listed.keys() - want:
                unexpected[s] = sorted(listed.keys() - want)
        t_list = pc()
        good = not (missing or unhealthy or unexpected)
        with self.lock:
            self.samples += 1
            if not self.states or self.states[-1][1] != state:
                self.states.append((t_view, state))
            if not self.ready or self.ready[-1][1] != bool(view["ready"]):
                self.ready.append((t_view, bool(view["ready"])))
            if not self.perfect or self.perfect[-1][1] != good:
                self.perfect.append((t_list, good))
            if not good:
                self.bad_count += 1
                if len(self.bad) < MAX_BAD_KEPT:
                    self.bad.append(
                        {
                            "t": t_list,
                            "ready": bool(view["ready"]),
                            "listed": listed_total,
                            "missing": missing,
                            "unhealthy": unhealthy,
                            "unexpected": unexpected,
                        }
                    )

    # -- queries (after or during the run) --
    def first_state(self, state: str, after: float) -> float | None:
        with self.lock:
            return next((t for t, s in self.states if s == state and t >= after), None)

    def first_ready(self, after: float) -> float | None:
        with self.lock:
            return next((t for t, r in self.ready if r and t >= after), None)

    def first_perfect(self, after: float) -> float | None:
        with self.lock:
            return next((t for t, g in self.perfect if g and t >= after), None)

    def is_perfect(self) -> bool:
        with self.lock:
            return bool(self.perfect) and self.perfect[-1][1]

    def bad_between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.bad if t0 <= b["t"] < t1]

    def bad_count_between(self, t0: float, t1: float) -> int:
        """Imperfect samples in [t0, t1) (of the first MAX_BAD_KEPT)."""
        with self.lock:
            return sum(1 for b in self.bad if t0 <= b["t"] < t1)

    def recovered_at(self, after: float, until: float) -> float | None:
        """After the last imperfect sample in [after, until): the next perfect one (None: none)."""
        with self.lock:
            last_bad = None
            for t, g in self.perfect:
                if after <= t < until and not g:
                    last_bad = t
            if last_bad is None:
                return None
            return next((t for t, g in self.perfect if g and t > last_bad), float("inf"))


class Witness:
    """A subscriber Client on one node: records every pushed listing that is not complete."""

    def __init__(self, node: NodeProc, services: list[str], expected: dict[str, set[str]]) -> None:
        self.node = node
        self.expected = expected
        self.lock = threading.Lock()
        self.armed = False
        self.callbacks = 0
        self.bad: list[dict[str, Any]] = []
        self.bad_count = 0
        self.client = new_client(node.address, timeout=5.0)
        for s in services:
            self.client.subscribe(s, self._listener(s))

    def _listener(self, service: str) -> Callable[[list[Instance]], None]:
        return lambda instances: self._changed(service, instances)

    def _changed(self, service: str, instances: list[Instance]) -> None:
        t = pc()
        listed = {i.address: i.healthy for i in instances}
        want = self.expected[service]
        missing = sorted(want - listed.keys())
        sick = sorted(a for a, ok in listed.items() if not ok)
        with self.lock:
            self.callbacks += 1
            if self.armed and (missing or sick):
                self.bad_count += 1
                if len(self.bad) < MAX_BAD_KEPT:
                    self.bad.append(
                        {"t": t, "service": service, "missing": missing, "unhealthy": sick}
                    )

    def arm(self) -> None:
        with self.lock:
            self.armed = True

    def close(self) -> None:
        close_quietly(self.client, 0.5)


def rel(t: float | None, origin: float) -> float | None:
    return None if t is None else round(t - origin, 3)


def run_kill(
    nodes: list[NodeProc],
    opts: argparse.Namespace,
    client_log: ClientLog,
    say: Callable[[str], None],
) -> dict[str, Any]:
    m_count = opts.instances
    s_count = min(opts.services, m_count)
    services = [f"conv-{i:02d}" for i in range(s_count)]
    addresses = [n.address for n in nodes]
    owner = {s: responsible_node(ServiceKey(NS, GROUP, s), addresses) for s in services}
    owned = Counter(owner.values())
    victim = max(nodes, key=lambda n: (owned.get(n.address, 0), -nodes.index(n)))
    survivors = [n for n in nodes if n is not victim]
    expected: dict[str, set[str]] = {s: set() for s in services}
    regs = []
    for i in range(m_count):
        s = services[i % s_count]
        ip, port = f"10.88.{i // 250}.{i % 250 + 1}", 7000 + i
        regs.append((s, ip, port))
        expected[s].add(f"{ip}:{port}")
    say(
        f"  victim {victim.address} (responsible for {owned.get(victim.address, 0)} of "
        f"{s_count} services; ownership {dict(owned)})"
    )
    provider_servers = [victim.address] + [n.address for n in survivors]
    provider: Client | None = None
    samplers: dict[str, Sampler] = {}
    restarted: Sampler | None = None
    witnesses: list[Witness] = []
    result: dict[str, Any] = {
        "victim": victim.address,
        "victim_services": owned.get(victim.address, 0),
        "ownership": dict(owned),
        "services": s_count,
        "instances": m_count,
        "provider_servers": provider_servers,
    }
    try:
        provider = new_client(provider_servers, beat_interval=opts.beat_interval)
        t0 = pc()
        for s, ip, port in regs:
            provider.register(s, ip, port)
        result["register_all_s"] = round(pc() - t0, 3)
        probes = [new_client(n.address, timeout=2.0) for n in nodes]
        try:

            def listed_everywhere() -> bool:
                for c in probes:
                    for s in services:
                        got = {i.address for i in c.instances(s, healthy_only=True)}
                        if got != expected[s]:
                            return False
                return True

            t_listed = wait_until(listed_everywhere, LISTED_SECONDS)
        finally:
            for c in probes:
                close_quietly(c)
        if t_listed is None:
            raise RuntimeError(f"not every node listed all {m_count} instances within 30s")
        result["listed_everywhere_s"] = round(t_listed - t0, 3)
        for n in survivors:
            samplers[n.address] = Sampler(
                n, services, expected, victim.address, opts.sample_interval
            ).start()
            witnesses.append(Witness(n, services, expected))
        time.sleep(0.5)  # the witnesses' first (complete) listings come in
        for w in witnesses:
            w.arm()
        time.sleep(1.0)  # a second of samples before the kill: all must be perfect too

        # -- the kill --
        t_kill, wall_kill = pc(), time.time()
        victim.kill()
        say(f"  SIGKILL {victim.address} at {wall(wall_kill)}")
        failover_at = None
        observe_until = t_kill + opts.observe
        hard_until = t_kill + max(opts.observe, 60.0)
        while pc() < hard_until:  # bounded
            if failover_at is None and provider.server != victim.address:
                failover_at = pc()
            down_now = [s.first_state("down", t_kill) for s in samplers.values()]
            healthy = all(s.is_perfect() for s in samplers.values())
            if pc() >= observe_until and all(d is not None for d in down_now) and healthy:
                break
            time.sleep(0.02)
        t_restart = pc()
        downs = {a: s.first_state("down", t_kill) for a, s in samplers.items()}
        down_times = [rel(t, t_kill) for t in downs.values()]
        recovered = [s.recovered_at(t_kill, t_restart) for s in samplers.values()]
        bad_kill = {a: s.bad_between(t_kill, t_restart) for a, s in samplers.items()}
        kill = {
            "kill_wall": wall(wall_kill),
            "observed_s": round(t_restart - t_kill, 3),
            "survivors_see_down_s": {a: rel(t, t_kill) for a, t in downs.items()},
            "all_survivors_see_down_s": None
            if any(t is None for t in down_times)
            else max(t for t in down_times if t is not None),
            "first_survivor_sees_down_s": min(
                (t for t in down_times if t is not None), default=None
            ),
            "provider_failover_s": rel(failover_at, t_kill),
            "all_listed_healthy_again_s": 0.0
            if all(r is None for r in recovered)
            else None
            if float("inf") in recovered
            else round(max(r - t_kill for r in recovered if r is not None), 3),
            "survivor_bad_samples": sum(
                s.bad_count_between(t_kill, t_restart) for s in samplers.values()
            ),
            "survivor_bad_samples_before_kill": sum(
                s.bad_count_between(0.0, t_kill) for s in samplers.values()
            ),
            "survivor_bad_examples": {a: b[:5] for a, b in bad_kill.items() if b},
            "witness_bad_callbacks": sum(w.bad_count for w in witnesses),
            "witness_callbacks": sum(w.callbacks for w in witnesses),
            "witness_bad_examples": [b for w in witnesses for b in w.bad[:5]],
            "client_log": [
                (round(t - t_kill, 3), lvl, msg)
                for t, lvl, msg in client_log.between(t_kill, t_restart)
            ],
        }
        kill["ever_missing"] = any(
            b["missing"] for s in samplers.values() for b in s.bad_between(0.0, t_restart)
        ) or any(b["missing"] for w in witnesses for b in w.bad)
        kill["ever_unhealthy"] = any(
            b["unhealthy"] for s in samplers.values() for b in s.bad_between(0.0, t_restart)
        ) or any(b["unhealthy"] for w in witnesses for b in w.bad)
        result["kill"] = kill
        say(
            f"  survivors saw it down after {kill['all_survivors_see_down_s']}s; "
            f"bad samples {kill['survivor_bad_samples']}, bad pushes "
            f"{kill['witness_bad_callbacks']}"
        )
        witness_bad_before = sum(w.bad_count for w in witnesses)

        # -- the restart --
        wall_restart = time.time()
        victim.start()
        try:
            t_ping = victim.wait_ping()
        except RuntimeError as exc:  # keep what the kill phase measured
            result["restart"] = {"error": str(exc)}
            say(f"  restart failed: {exc}")
            return result
        restarted = Sampler(
            victim, services, expected, victim.address, opts.sample_interval
        ).start()
        samplers_all = [*samplers.values(), restarted]
        ready_at = lists_at = None
        seen_up: dict[str, float | None] = {}
        done_at = None
        hard_until = t_restart + RESTART_SECONDS
        while pc() < hard_until:  # bounded
            ready_at = ready_at or restarted.first_ready(t_restart)
            lists_at = lists_at or restarted.first_perfect(t_restart)
            seen_up = {a: s.first_state("up", t_restart) for a, s in samplers.items()}
            if ready_at and lists_at and all(seen_up.values()):
                done_at = pc()
                break
            time.sleep(0.02)
        if done_at is not None:  # keep watching everyone (health sweeps, ownership moves)
            end = done_at + opts.observe
            while pc() < end:  # bounded
                time.sleep(0.05)
        t_end = pc()
        up_times = [rel(t, t_restart) for t in seen_up.values()]
        restart = {
            "restart_wall": wall(wall_restart),
            "observed_s": round(t_end - t_restart, 3),
            "answers_ping_s": rel(t_ping, t_restart),
            "ready_s": rel(ready_at, t_restart),
            "lists_all_healthy_s": rel(lists_at, t_restart),
            "survivors_see_up_s": {a: rel(t, t_restart) for a, t in seen_up.items()},
            "all_survivors_see_up_s": None
            if any(t is None for t in up_times)
            else max(t for t in up_times if t is not None),
            "survivor_bad_samples": sum(
                s.bad_count_between(t_restart, t_end) for s in samplers.values()
            ),
            "survivor_bad_examples": {
                a: s.bad_between(t_restart, t_end)[:5]
                for a, s in samplers.items()
                if s.bad_between(t_restart, t_end)
            },
            "restarted_ready_but_incomplete_samples": [
                {
                    "t": round(b["t"] - t_restart, 3),
                    "listed": b["listed"],
                    "services_missing": sorted(b["missing"]),
                    "of_them_its_own": sorted(
                        k for k in b["missing"] if owner[k] == victim.address
                    ),
                }
                for b in restarted.bad_between(t_restart, lists_at or t_end)
                if b["ready"]
            ][:20],
            "restarted_bad_after_listing_all": 0
            if lists_at is None
            else restarted.bad_count_between(lists_at + 1e-9, t_end),
            "restarted_bad_examples": []
            if lists_at is None
            else restarted.bad_between(lists_at + 1e-9, t_end)[:5],
            "witness_bad_callbacks": sum(w.bad_count for w in witnesses) - witness_bad_before,
            "client_log": [
                (round(t - t_restart, 3), lvl, msg)
                for t, lvl, msg in client_log.between(t_restart, t_end)
            ],
        }
        result["restart"] = restart
        say(
            f"  restarted node ready after {restart['ready_s']}s, lists all after "
            f"{restart['lists_all_healthy_s']}s"
        )
        # Sampling quality: how many samples and the longest gap between two of them.
        result["sampling"] = {
            s.node.address + ("(restarted)" if s is restarted else ""): {
                "samples": s.samples,
                "longest_gap_ms": round(s.longest_gap * 1000, 1),
                "gaps_over_3_intervals": [
                    {"after_kill_s": round(g0 - t_kill, 3), "ms": round(g * 1000, 1)}
                    for g0, g in s.long_gaps[:10]
                ],
                "errors": len(s.errors),
            }
            for s in samplers_all
        }
        for b in (result["kill"], restart):
            for key in ("survivor_bad_examples", "restarted_bad_examples", "witness_bad_examples"):
                shift = t_kill if b is result["kill"] else t_restart
                if key in b:
                    b[key] = _relative_examples(b[key], shift)
    finally:
        for s in [*samplers.values(), *([restarted] if restarted is not None else [])]:
            s.stop()
        for w in witnesses:
            w.close()
        close_quietly(provider, 2.0)
    return result


def _relative_examples(examples: Any, origin: float) -> Any:
    if isinstance(examples, dict):
        return {k: _relative_examples(v, origin) for k, v in examples.items()}
    return [{**e, "t": round(e["t"] - origin, 3)} for e in examples]


# -- machine and report -------------------------------------------------------------------
def fmt(v: Any, unit: str = "s") -> str:
    if v is None:
        return "never"
    if isinstance(v, float):
        return f"{v:.2f} {unit}" if unit else f"{v:.2f}"
    return str(v)


def propagation_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'setup':<16} | {'changes':>7} | {'p50 ms':>7} | {'p90 ms':>7} | {'p99 ms':>7} | "
        f"{'max ms':>7} | {'1st node p50':>12} | {'call p50':>8} | {'start->all p50':>14} | "
        f"{'timeouts':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        a, f, c = r["all_nodes_ms"], r["first_node_ms"], r["call_ms"]
        st = r["all_nodes_from_call_start_ms"]
        lines.append(
            f"{r['label']:<16} | {r['changes_measured']:>7} | {a['p50']:>7.2f} | "
            f"{a['p90']:>7.2f} | {a['p99']:>7.2f} | {a['max']:>7.2f} | {f['p50']:>12.2f} | "
            f"{c['p50']:>8.2f} | {st['p50']:>14.2f} | {len(r['timeouts']):>8}"
        )
    if len(rows) == 2:
        single, multi = rows
        ratio = {
            k: multi["all_nodes_ms"][k] / single["all_nodes_ms"][k]
            if single["all_nodes_ms"][k]
            else float("nan")
            for k in ("p50", "p90", "p99", "max")
        }
        s0, s1 = single["all_nodes_from_call_start_ms"], multi["all_nodes_from_call_start_ms"]
        start_ratio = s1["p50"] / s0["p50"] if s0["p50"] else float("nan")
        lines.append(
            f"{'ratio':<16} | {'':>7} | {ratio['p50']:>6.2f}x | {ratio['p90']:>6.2f}x | "
            f"{ratio['p99']:>6.2f}x | {ratio['max']:>6.2f}x | {'':>12} | {'':>8} | "
            f"{start_ratio:>13.2f}x |"
        )
    return "\n".join(lines)


def ready_gap(restart: dict[str, Any], m_count: int) -> str:
    """The restarted node's samples that said ready while its listing was incomplete."""
    gap = restart.get("restarted_ready_but_incomplete_samples") or []
    if not gap:
        return "0"
    first = gap[0]
    return (
        f"{len(gap)} (first at {first['t']:.2f} s: listed {first['listed']}/{m_count}, "
        f"{len(first['services_missing'])} services missing, "
        f"{len(first['of_them_its_own'])} of them its own)"
    )


def kill_table(r: dict[str, Any]) -> str:
    k, s = r["kill"], r.get("restart", {})
    rows = [
        (
            "survivors' cluster view shows the victim down (last / first)",
            f"{fmt(k['all_survivors_see_down_s'])} / {fmt(k['first_survivor_sees_down_s'])}",
        ),
        ("provider Client failed over from the victim", fmt(k["provider_failover_s"])),
        (
            "every survivor lists all M instances healthy again",
            fmt(k["all_listed_healthy_again_s"])
            + (" (never stopped)" if k["survivor_bad_samples"] == 0 else ""),
        ),
        (
            "instance ever missing on a survivor (samples / pushes)",
            "yes" if k["ever_missing"] else "no",
        ),
        ("instance ever unhealthy on a survivor", "yes" if k["ever_unhealthy"] else "no"),
        (
            "imperfect survivor samples / pushed listings",
            f"{k['survivor_bad_samples']} / {k['witness_bad_callbacks']}",
        ),
        (
            "restart: answers ping",
            fmt(s.get("answers_ping_s")) + (f" (failed: {s['error']})" if "error" in s else ""),
        ),
        ("restart: reports ready", fmt(s.get("ready_s"))),
        ("restart: lists all M instances healthy", fmt(s.get("lists_all_healthy_s"))),
        ("restart: samples 'ready' but not listing all M", ready_gap(s, r["instances"])),
        ("restart: every survivor sees it up and ready", fmt(s.get("all_survivors_see_up_s"))),
        (
            "after restart: imperfect samples survivors / restarted / pushes",
            f"{s.get('survivor_bad_samples')} / {s.get('restarted_bad_after_listing_all')} / "
            f"{s.get('witness_bad_callbacks')}",
        ),
    ]
    width = max(len(a) for a, _ in rows)
    head = f"{'event (seconds after the SIGKILL, restart rows after the restart)':<{width}} | value"
    return "\n".join([head, "-" * (len(head) + 8)] + [f"{a:<{width}} | {b}" for a, b in rows])


LOG_WORDS = (
    "unhealthy",
    "evicted",
    " is down",
    " is up",
    "restarted",
    "serving",
    "WARN",
    "ERROR",
    "Trace",
)


def interesting_log_lines(nodes: list[NodeProc], since: str = "", limit: int = 200) -> list[str]:
    """Node log lines about peers, health and problems, in time order (``since``: asctime)."""
    out = []
    for n in nodes:
        for line in n.log_lines():
            if any(w in line for w in LOG_WORDS) and line[:23] >= since:
                out.append((line[:23], f"[{n.address}] {line}"))
    return [text for _, text in sorted(out)][:limit]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="meshreg cluster benchmark: change propagation and kill/restart convergence."
    )
    ap.add_argument("--nodes", type=int, default=3, help="cluster size (3)")
    ap.add_argument("--changes", type=int, default=200, help="measured changes (200)")
    ap.add_argument("--warmup-changes", type=int, default=10, help="unmeasured changes first (10)")
    ap.add_argument("--prop-services", type=int, default=10, help="services changes cycle (10)")
    ap.add_argument("--change-timeout", type=float, default=10.0, help="s per change (10)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="s per propagation run")
    ap.add_argument("--instances", type=int, default=50, help="M providers for the kill (50)")
    ap.add_argument("--services", type=int, default=10, help="services they spread over (10)")
    ap.add_argument("--beat-interval", type=float, default=1.0, help="providers' beat (1 s)")
    ap.add_argument("--peer-timeout", type=float, default=1.0, help="node --peer-timeout (1 s)")
    ap.add_argument("--check-interval", type=float, default=1.0, help="node health sweep (1 s)")
    ap.add_argument("--unhealthy-after", type=float, default=15.0, help="node setting (15 s)")
    ap.add_argument("--evict-after", type=float, default=30.0, help="node setting (30 s)")
    ap.add_argument(
        "--observe",
        type=float,
        default=None,
        help="s to watch after the kill and after the restart (unhealthy-after + 3)",
    )
    ap.add_argument("--sample-interval", type=float, default=0.05, help="s between samples")
    ap.add_argument("--skip-baseline", action="store_true", help="no single-node baseline")
    ap.add_argument("--skip-kill", action="store_true", help="no kill/restart measurement")
    ap.add_argument("--keep-logs", action="store_true", help="keep the node logs")
    ap.add_argument("--json", action="store_true", help="JSON on stdout; the report on stderr")
    opts = ap.parse_args(argv)
    if opts.observe is None:
        opts.observe = opts.unhealthy_after + 3.0
    checks = [
        (2 <= opts.nodes <= 9, "--nodes must be in 2..9"),
        (2 <= opts.changes <= 100_000, "--changes must be in 2..100000"),
        (0 <= opts.warmup_changes <= 1000, "--warmup-changes must be in 0..1000"),
        (1 <= opts.prop_services <= 100, "--prop-services must be in 1..100"),
        (0 < opts.change_timeout <= 60, "--change-timeout must be in (0, 60]"),
        (0 < opts.max_seconds <= 3600, "--max-seconds must be in (0, 3600]"),
        (1 <= opts.instances <= 10_000, "--instances must be in 1..10000"),
        (1 <= opts.services <= 1000, "--services must be in 1..1000"),
        (0.1 <= opts.beat_interval <= 60, "--beat-interval must be in [0.1, 60]"),
        (0.2 <= opts.peer_timeout <= 60, "--peer-timeout must be in [0.2, 60]"),
        (0 < opts.observe <= 600, "--observe must be in (0, 600]"),
        (0.01 <= opts.sample_interval <= 5, "--sample-interval must be in [0.01, 5]"),
    ]
    for ok, message in checks:
        if not ok:
            ap.error(message)
    opts.warmup_changes += opts.warmup_changes % 2  # keep register/deregister pairs aligned
    opts.changes += opts.changes % 2
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    out = sys.stderr if opts.json else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below

    signal.signal(signal.SIGTERM, on_sigterm)
    client_log = ClientLog()
    mlog = logging.getLogger("meshreg")
    mlog.addHandler(client_log)
    mlog.setLevel(logging.INFO)
    mlog.propagate = False  # recorded and reported, not printed as they happen

    machine = machine_info()
    settings = {
        k: getattr(opts, k)
        for k in (
            "nodes",
            "changes",
            "warmup_changes",
            "prop_services",
            "instances",
            "services",
            "beat_interval",
            "peer_timeout",
            "check_interval",
            "unhealthy_after",
            "evict_after",
            "observe",
            "sample_interval",
        )
    }
    say("machine:")
    for k, v in machine.items():
        say(f"  {k:<9} {v}")
    say(
        f"settings: nodes={opts.nodes} changes={opts.changes} (+{opts.warmup_changes} warm-up) "
        f"over {opts.prop_services} services; kill: {opts.instances} instances over "
        f"{min(opts.services, opts.instances)} services, beat {opts.beat_interval:g}s, "
        f"sampled every {opts.sample_interval * 1000:g} ms, observed {opts.observe:g}s"
    )
    say(
        f"node flags: --peer-timeout {opts.peer_timeout:g} --check-interval "
        f"{opts.check_interval:g} --unhealthy-after {opts.unhealthy_after:g} "
        f"--evict-after {opts.evict_after:g}"
    )
    say()
    log_dir = tempfile.mkdtemp(prefix="meshreg-bench-cluster-")
    procs = Procs()
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "settings": settings,
    }
    rows: list[dict[str, Any]] = []
    keep_logs = opts.keep_logs
    cluster: list[NodeProc] = []
    try:
        if not opts.skip_baseline:
            say("change propagation, single node (baseline) ...")
            lone = procs.add(NodeProc(free_port_block(), node_args(opts, []), log_dir).start())
            lone.wait_ping()
            rows.append(run_propagation("single node", [lone], opts, 71, say))
            lone.stop()
        say(f"starting a {opts.nodes}-node cluster ...")
        cluster, formed_s = start_cluster(procs, opts, opts.nodes, log_dir)
        doc["cluster_formed_s"] = round(formed_s, 3)
        doc["cluster"] = [n.address for n in cluster]
        say(f"  formed in {formed_s:.2f}s: {', '.join(n.address for n in cluster)}")
        say(f"change propagation, {opts.nodes} nodes (provider's server: {cluster[0].address}) ...")
        rows.append(run_propagation(f"{opts.nodes}-node cluster", cluster, opts, 72, say))
        doc["propagation"] = rows
        if not opts.skip_kill:
            say("kill and restart ...")
            doc["kill"] = run_kill(cluster, opts, client_log, say)
    except KeyboardInterrupt:
        say("interrupted; stopping every node")
        return 130
    except (RuntimeError, MeshregError) as exc:
        say(f"benchmark failed: {exc}")
        keep_logs = True
        return 1
    finally:
        procs.stop_all()
        mlog.removeHandler(client_log)
        doc["node_log_events"] = interesting_log_lines(cluster) if cluster else []
        since = doc.get("kill", {}).get("kill", {}).get("kill_wall", "")
        doc["node_log_events_since_kill"] = interesting_log_lines(cluster, since) if since else []
        failed = "kill" in doc and (
            doc["kill"]["kill"]["ever_missing"]
            or doc["kill"]["kill"]["ever_unhealthy"]
            or doc["kill"].get("restart", {}).get("survivor_bad_samples")
            or doc["kill"].get("restart", {}).get("restarted_bad_after_listing_all")
        )
        if keep_logs or failed:
            say(f"node logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)

    say()
    say("1. change propagation: ms from register()/deregister() returning until the")
    say("   subscriber callback on every node showed it (1st node: the earliest node)")
    say(propagation_table(rows))
    for r in rows:
        if r["negative_all"]:
            say(
                f"   {r['label']}: in {r['negative_all']} changes every callback ran before the "
                "call returned (negative times are kept as measured)"
            )
    if rows and rows[-1]["nodes"] > 1:
        r = rows[-1]
        say(f"   per-node p50 ms (node A first): {json.dumps(r['per_node_p50_ms'])}")
        say(f"   writes node A forwarded during the cluster run: {r['forwarded_by_a']}")
    for r in rows:
        if r["timeouts"] or r["errors"] or r["stopped_early"]:
            say(f"   {r['label']}: timeouts {r['timeouts'][:5]} errors {r['errors'][:5]}")
    if "kill" in doc:
        r = doc["kill"]
        say()
        say(
            f"2. kill -9 of {r['victim']} (responsible for {r['victim_services']} of "
            f"{r['services']} services), {r['instances']} instances, provider servers "
            f"{','.join(r['provider_servers'])}"
        )
        say(kill_table(r))
        say("   sampling: " + json.dumps(r.get("sampling")))
        problems = bool(failed) or r["kill"]["survivor_bad_samples"]
        for phase in ("kill", "restart"):
            entries = r.get(phase, {}).get("client_log", [])
            if entries:
                say(f"   client log during the {phase} phase ({len(entries)} records):")
                for t, lvl, msg in entries[:20]:
                    say(f"     +{t:7.3f}s {lvl} {msg}")
        if problems:
            say("   PROBLEM: an instance was missing or unhealthy; examples:")
            for key in ("survivor_bad_examples", "witness_bad_examples"):
                say(f"     kill {key}: {json.dumps(r['kill'].get(key))[:2000]}")
            for key in ("survivor_bad_examples", "restarted_bad_examples"):
                say(f"     restart {key}: {json.dumps(r['restart'].get(key))[:2000]}")
        say("   node log events from the kill on (peers up/down, unhealthy, evicted, warnings):")
        for line in doc["node_log_events_since_kill"][:60]:
            say("     " + line)
    doc["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    say(f"load average at the end: {doc['loadavg_after']}")
    if opts.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
