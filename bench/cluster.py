"""Cluster scenarios on real ``meshreg node`` processes: ``propagation``, ``failover``,
``cluster`` and ``catchup`` (bench/README.md, "Cluster", says what each measures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import (
    GROUP,
    NS,
    NodeProc,
    Procs,
    Say,
    Scenario,
    dist_ms,
    fmt_table,
    node_args,
    percentile,
    settings,
    start_cluster,
    stats,
    table,
    wait_until,
)
from bench.load import preload, start_background
from meshreg import Client, Instance, MeshregError, ServiceKey
from meshreg.core.mapping import responsible_node

LISTED_SECONDS = 30.0  # bound on every node listing every registered instance
RESTART_SECONDS = 60.0  # bound on the restarted node being ready and listing everything
SAMPLER_MAX_SECONDS = 900.0  # a sampler thread never runs longer than this
MAX_BAD_KEPT = 5000  # imperfect samples / pushes kept per node (beyond: counted only)
CATCHUP_SECONDS = 300.0  # bound on each wait of the catch-up scenario
pc = time.perf_counter


# -- small helpers ------------------------------------------------------------------
def wall(t_wall: float) -> str:
    """A wall-clock time formatted like the nodes' log lines (asctime)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t_wall))
    return stamp + f",{int((t_wall % 1) * 1000):03d}"


def rel(t: float | None, origin: float) -> float | None:
    return None if t is None else round(t - origin, 3)


def new_client(address: str | list[str], **kw: Any) -> Client:
    kw.setdefault("timeout", 3.0)
    kw.setdefault("attempt_timeout", 1.0)
    return Client([address] if isinstance(address, str) else address, **kw)


def close_quietly(client: Client | None, timeout: float = 1.0) -> None:
    try:
        if client is not None:
            client.close(timeout=timeout)
    except Exception:  # cleanup must go on
        pass


class ClientLog(logging.Handler):
    """Keeps the meshreg client's log records (failovers, re-registrations) with times."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # called by Handler.handle, which holds self.lock
        if len(self.records) < 10_000:
            self.records.append((pc(), record.levelname, record.getMessage()))

    def between(self, t0: float, t1: float) -> list[tuple[float, str, str]]:
        """The records of [t0, t1), times relative to t0."""
        with self.lock:  # type: ignore[union-attr]  # the handler's own RLock, made in __init__
            return [(round(t - t0, 3), lvl, m) for t, lvl, m in self.records if t0 <= t < t1]


@contextmanager
def client_log() -> Iterator[ClientLog]:
    """The meshreg client's log records, kept (and reported) instead of printed."""
    handler, mlog = ClientLog(), logging.getLogger("meshreg")
    level, propagate = mlog.level, mlog.propagate
    mlog.addHandler(handler)
    mlog.setLevel(logging.INFO)
    mlog.propagate = False
    try:
        yield handler
    finally:
        mlog.removeHandler(handler)
        mlog.setLevel(level)
        mlog.propagate = propagate


LOG_WORDS = ("unhealthy", "evicted", " is down", " is up", "restarted", "serving", "WARN",
             "ERROR", "Trace")  # fmt: skip


def interesting_log_lines(nodes: list[NodeProc], since: str = "", limit: int = 200) -> list[str]:
    """Node log lines about peers, health and problems, in time order (``since``: asctime)."""
    out = [(line[:23], f"[{n.address}] {line}") for n in nodes for line in n.log_lines()
           if any(w in line for w in LOG_WORDS) and line[:23] >= since]  # fmt: skip
    return [text for _, text in sorted(out)][:limit]


# -- change propagation -------------------------------------------------------------
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
                if any(i.address == target[1] for i in instances) == target[2]:
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


class Changes:
    """What K changes measured: seconds per kind (``call``: the call itself; ``all``,
    ``first``: its return to the push on every node / the first node; ``start``: the call's
    start to every node; ``remote``: to the slowest node not owning the service)."""

    def __init__(self, n_nodes: int) -> None:
        self.got: dict[str, list[float]] = {k: [] for k in ("call", "all", "first", "start",
                                                            "remote")}  # fmt: skip
        self.per_node: list[list[float]] = [[] for _ in range(n_nodes)]
        self.timeouts: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stopped_early = False

    def add(self, t0: float, t1: float, seen: list[float], owner: int) -> None:
        times = [s - t1 for s in seen]
        for key, value in (("call", t1 - t0), ("all", max(times)), ("first", min(times)),
                           ("start", max(times) + t1 - t0)):  # fmt: skip
            self.got[key].append(value)
        for k, d in enumerate(times):
            self.per_node[k].append(d)
        others = [d for k, d in enumerate(times) if k != owner]
        if others:  # the slowest subscriber on a node other than the owner
            self.got["remote"].append(max(others))


def _changes(
    provider: Client, tracker: Tracker, nodes: list[NodeProc], services: list[str],
    opts: argparse.Namespace, octet: int, first: int, count: int,
) -> Changes:  # fmt: skip
    """Changes ``first .. first+count-1``, alternately a register and a deregister of distinct
    instances, one at a time, each waited for on every node (bounded by --change-timeout and
    --max-seconds)."""
    addresses = [n.address for n in nodes]
    owner = {s: addresses.index(responsible_node(ServiceKey(NS, GROUP, s), addresses))
             for s in services}  # fmt: skip
    out = Changes(len(nodes))
    t_start = pc()
    for i in range(first, first + count):
        if pc() - t_start > opts.max_seconds:
            out.stopped_early = True
            break
        pair, deregister = divmod(i, 2)
        service = services[pair % len(services)]
        ip, port = f"10.{octet}.{pair // 250}.{pair % 250 + 1}", 9000 + pair % 1000
        tracker.expect(service, f"{ip}:{port}", not deregister)
        t0 = pc()
        try:
            (provider.deregister if deregister else provider.register)(service, ip, port)
        except MeshregError as exc:
            out.errors.append(f"change {i}: {exc}")
            continue
        t1 = pc()
        seen = tracker.wait(opts.change_timeout)
        if None in seen:
            missing = [nodes[k].address for k, s in enumerate(seen) if s is None]
            out.timeouts.append({"change": i, "service": service, "not_seen_on": missing})
        else:
            out.add(t0, t1, [s for s in seen if s is not None], owner[service])
    return out


def run_propagation(
    label: str, nodes: list[NodeProc], opts: argparse.Namespace, octet: int, say: Say,
    client_kw: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """K alternating register/deregister changes through nodes[0], a subscriber on every
    node (``client_kw``: more ``Client`` arguments, keys for nodes started with ``--key``)."""
    client_kw = client_kw or {}
    warmup, changes = opts.warmup_changes + opts.warmup_changes % 2, opts.changes + opts.changes % 2
    services = [f"prop-{i:02d}" for i in range(opts.prop_services)]
    tracker = Tracker(len(nodes))
    subs: list[Client] = []
    provider: Client | None = None
    try:
        for idx, node in enumerate(nodes):
            subs.append(new_client(node.address, timeout=5.0, **client_kw))
            for s in services:
                subs[-1].subscribe(s, tracker.listener(idx, s))
        provider = new_client(nodes[0].address, timeout=5.0, **client_kw)
        # One permanent instance per service: a change never empties a service, so no
        # change waits for the subscribers' push-empty confirmation (a separate query).
        for s in services:
            provider.register(s, f"10.{octet}.255.254", 9999)
        # the warm-up changes first: then count only what A forwards in the measured part
        early = _changes(provider, tracker, nodes, services, opts, octet, 0, warmup)
        forwarded0, t_start = provider.stats().get("forwarded", 0), pc()
        run = _changes(provider, tracker, nodes, services, opts, octet, warmup, changes)
        elapsed = pc() - t_start
        forwarded = provider.stats().get("forwarded", 0) - forwarded0
    finally:
        for c in subs:  # first: the provider's goodbye empties the services they watch
            close_quietly(c)
        close_quietly(provider)
    got, measured = run.got, len(run.got["all"])
    result = {
        "label": label, "nodes": len(nodes), "changes_measured": measured,
        "changes_planned": changes, "warmup_changes": warmup, "timeouts": run.timeouts,
        "errors": early.errors + run.errors, "stopped_early": run.stopped_early,
        "elapsed_s": round(elapsed, 3), "all_nodes_ms": dist_ms(got["all"]),
        "first_node_ms": dist_ms(got["first"]), "remote_subscriber_ms": dist_ms(got["remote"]),
        "call_ms": dist_ms(got["call"]), "all_nodes_from_call_start_ms": dist_ms(got["start"]),
        "per_node_p50_ms": {nodes[k].address: round(percentile(sorted(v), 50) * 1000, 3)
                            for k, v in enumerate(run.per_node)},
        "negative_all": sum(1 for d in got["all"] if d < 0), "forwarded_by_a": forwarded,
    }  # fmt: skip
    say(f"  {label}: {measured} changes in {elapsed:.1f}s, all nodes p50 "
        f"{result['all_nodes_ms']['p50']:.2f} ms, {len(run.timeouts)} timed out")  # fmt: skip
    return result


# -- convergence after a kill ------------------------------------------------------------
def _first(changes: list[tuple[float, Any]], value: Any, after: float) -> float | None:
    return next((t for t, v in changes if v == value and t >= after), None)


class Sampler:
    """Samples one node every ``interval``: its cluster view and every service's listing.
    Keeps the changes of the watched member's state, of the node's own ready flag and of
    "lists every expected instance, all healthy" (``perfect``), and the imperfect samples."""

    def __init__(
        self, node: NodeProc, services: list[str], expected: dict[str, set[str]],
        watch_address: str, interval: float,
    ) -> None:  # fmt: skip
        self.node, self.services, self.expected = node, services, expected
        self.watch_address, self.interval = watch_address, interval
        self.client = new_client(node.address, timeout=2.0)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.samples, self.bad_count, self.longest_gap = 0, 0, 0.0
        self.long_gaps: list[tuple[float, float]] = []  # (start, length) of gaps > 3 intervals
        self.errors: list[tuple[float, str]] = []
        self.states: list[tuple[float, str]] = []
        self.ready: list[tuple[float, bool]] = []
        self.perfect: list[tuple[float, bool]] = []
        self.bad: list[dict[str, Any]] = []  # imperfect samples (the first MAX_BAD_KEPT)
        self.thread = threading.Thread(target=self._run, name=f"sampler-{node.port}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5.0)
        close_quietly(self.client, 0.5)

    def _run(self) -> None:
        deadline = pc() + SAMPLER_MAX_SECONDS
        next_t, last = pc(), None
        while not self.stop_event.is_set() and pc() < deadline:  # bounded
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
            next_t = max(next_t + self.interval, pc())  # behind: no catching up in a burst
            self.stop_event.wait(max(0.0, next_t - pc()))

    def _sample(self) -> None:
        view = self.client.cluster()
        t_view = pc()
        state = next((m["state"] for m in view["members"]
                      if m["address"] == self.watch_address), "absent")  # fmt: skip
        bad: dict[str, dict[str, list[str]]] = {"missing": {}, "unhealthy": {}, "unexpected": {}}
        listed_total = 0
        for s in self.services:
            listed = {i.address: i.healthy for i in self.client.instances(s, healthy_only=False)}
            listed_total += len(listed)
            want = self.expected[s]
            for kind, found in (("missing", want - listed.keys()),
                                ("unhealthy", {a for a, ok in listed.items() if not ok}),
                                ("unexpected", listed.keys() - want)):  # fmt: skip
                if found:
                    bad[kind][s] = sorted(found)
        t_list = pc()
        good = not any(bad.values())
        with self.lock:
            self.samples += 1
            for changes, t, value in ((self.states, t_view, state),
                                      (self.ready, t_view, bool(view["ready"])),
                                      (self.perfect, t_list, good)):  # fmt: skip
                if not changes or changes[-1][1] != value:
                    changes.append((t, value))
            if not good:
                self.bad_count += 1
                if len(self.bad) < MAX_BAD_KEPT:
                    self.bad.append({"t": t_list, "ready": bool(view["ready"]),
                                     "listed": listed_total, **bad})  # fmt: skip

    def first(self, what: str, value: Any, after: float) -> float | None:
        """When ``what`` (states, ready, perfect) first took ``value`` at or after ``after``."""
        with self.lock:
            return _first(getattr(self, what), value, after)

    def is_perfect(self) -> bool:
        with self.lock:
            return bool(self.perfect) and self.perfect[-1][1]

    def bad_between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.bad if t0 <= b["t"] < t1]

    def recovered_at(self, after: float, until: float) -> float | None:
        """After the last imperfect sample in [after, until): the next perfect one (None: none)."""
        with self.lock:
            bad = [t for t, g in self.perfect if after <= t < until and not g]
            if not bad:
                return None
            return next((t for t, g in self.perfect if g and t > bad[-1]), float("inf"))


class Witness:
    """A subscriber Client on one node: records every pushed listing that is not complete."""

    def __init__(self, node: NodeProc, services: list[str], expected: dict[str, set[str]]) -> None:
        self.expected = expected
        self.lock = threading.Lock()
        self.armed = False
        self.callbacks = self.bad_count = 0
        self.bad: list[dict[str, Any]] = []
        self.client = new_client(node.address, timeout=5.0)
        for s in services:
            self.client.subscribe(s, lambda instances, s=s: self._changed(s, instances))

    def _changed(self, service: str, instances: list[Instance]) -> None:
        t = pc()
        listed = {i.address: i.healthy for i in instances}
        missing = sorted(self.expected[service] - listed.keys())
        sick = sorted(a for a, ok in listed.items() if not ok)
        with self.lock:
            self.callbacks += 1
            if self.armed and (missing or sick):
                self.bad_count += 1
                if len(self.bad) < MAX_BAD_KEPT:
                    self.bad.append({"t": t, "service": service, "missing": missing,
                                     "unhealthy": sick})  # fmt: skip


def _relative(examples: Any, origin: float) -> Any:
    if isinstance(examples, dict):
        return {k: _relative(v, origin) for k, v in examples.items()}
    return [{**e, "t": round(e["t"] - origin, 3)} for e in examples]


class KillRun:
    """M instances over S services registered through a provider Client whose first server
    is the victim (the node owning most services); survivors sampled and watched; the
    victim SIGKILLed, then restarted on the same port.  ``run()`` returns the figures."""

    def __init__(
        self, nodes: list[NodeProc], opts: argparse.Namespace, log: ClientLog, say: Say
    ) -> None:
        self.nodes, self.opts, self.log, self.say = nodes, opts, log, say
        s_count = min(opts.services, opts.instances)
        self.services = [f"conv-{i:02d}" for i in range(s_count)]
        addresses = [n.address for n in nodes]
        self.owner = {s: responsible_node(ServiceKey(NS, GROUP, s), addresses)
                      for s in self.services}  # fmt: skip
        owned = Counter(self.owner.values())
        self.victim = max(nodes, key=lambda n: (owned.get(n.address, 0), -nodes.index(n)))
        self.survivors = [n for n in nodes if n is not self.victim]
        self.regs = [(self.services[i % s_count], f"10.88.{i // 250}.{i % 250 + 1}", 7000 + i)
                     for i in range(opts.instances)]  # fmt: skip
        self.expected: dict[str, set[str]] = {s: set() for s in self.services}
        for s, ip, port in self.regs:
            self.expected[s].add(f"{ip}:{port}")
        self.samplers: dict[str, Sampler] = {}
        self.witnesses: list[Witness] = []
        self.restarted: Sampler | None = None
        self.provider: Client | None = None
        self.result: dict[str, Any] = {
            "victim": self.victim.address, "victim_services": owned.get(self.victim.address, 0),
            "ownership": dict(owned), "services": s_count, "instances": opts.instances,
            "provider_servers": [self.victim.address] + [n.address for n in self.survivors],
        }  # fmt: skip
        say(f"  victim {self.victim.address} (responsible for {owned.get(self.victim.address, 0)} "
            f"of {s_count} services; ownership {dict(owned)})")  # fmt: skip

    def sampler(self, node: NodeProc) -> Sampler:
        return Sampler(node, self.services, self.expected, self.victim.address,
                       self.opts.sample_interval)  # fmt: skip

    def run(self) -> dict[str, Any]:
        try:
            self.register()
            t_kill = self.kill()
            self.restart(t_kill)
        finally:
            for s in [*self.samplers.values(), *([self.restarted] if self.restarted else [])]:
                s.stop()
            for w in self.witnesses:
                close_quietly(w.client, 0.5)
            close_quietly(self.provider, 2.0)
        return self.result

    def register(self) -> None:
        """Register every instance; once every node lists them all, start watching."""
        self.provider = new_client(self.result["provider_servers"],
                                   beat_interval=self.opts.beat_interval)  # fmt: skip
        t0 = pc()
        for s, ip, port in self.regs:
            self.provider.register(s, ip, port)
        self.result["register_all_s"] = round(pc() - t0, 3)
        probes = [new_client(n.address, timeout=2.0) for n in self.nodes]
        try:
            t_listed = wait_until(lambda: all(
                {i.address for i in c.instances(s, healthy_only=True)} == self.expected[s]
                for c in probes for s in self.services), LISTED_SECONDS)  # fmt: skip
        finally:
            for c in probes:
                close_quietly(c)
        if t_listed is None:
            raise RuntimeError(f"not every node listed all {len(self.regs)} instances "
                               f"within {LISTED_SECONDS:g}s")  # fmt: skip
        self.result["listed_everywhere_s"] = round(t_listed - t0, 3)
        for n in self.survivors:
            self.samplers[n.address] = self.sampler(n)
            self.witnesses.append(Witness(n, self.services, self.expected))
        time.sleep(0.5)  # the witnesses' first (complete) listings come in
        for w in self.witnesses:
            with w.lock:
                w.armed = True
        time.sleep(1.0)  # a second of samples before the kill: all must be perfect too

    def kill(self) -> float:
        """SIGKILL the victim; watch until the survivors see it down and list everything."""
        assert self.provider is not None
        samplers = self.samplers
        t_kill, wall_kill = pc(), time.time()
        self.victim.kill()
        self.say(f"  SIGKILL {self.victim.address} at {wall(wall_kill)}")
        failover_at = None
        observe_until, hard_until = t_kill + self.opts.observe, t_kill + max(self.opts.observe, 60)
        while pc() < hard_until:  # bounded
            if failover_at is None and self.provider.server != self.victim.address:
                failover_at = pc()
            down = [s.first("states", "down", t_kill) for s in samplers.values()]
            healthy = all(s.is_perfect() for s in samplers.values())
            if pc() >= observe_until and None not in down and healthy:
                break
            time.sleep(0.02)
        self.t_restart = t_end = pc()
        downs = {a: rel(s.first("states", "down", t_kill), t_kill) for a, s in samplers.items()}
        seen = [t for t in downs.values() if t is not None]
        recovered = [s.recovered_at(t_kill, t_end) for s in samplers.values()]
        bad_kill = {a: s.bad_between(t_kill, t_end) for a, s in samplers.items()}
        everything = [b for s in samplers.values() for b in s.bad_between(0.0, t_end)]
        everything += [b for w in self.witnesses for b in w.bad]
        if all(r is None for r in recovered):
            healthy_again: float | None = 0.0
        elif float("inf") in recovered:
            healthy_again = None
        else:
            healthy_again = round(max(r - t_kill for r in recovered if r is not None), 3)
        k = self.result["kill"] = {
            "kill_wall": wall(wall_kill), "observed_s": round(t_end - t_kill, 3),
            "survivors_see_down_s": downs,
            "all_survivors_see_down_s": None if len(seen) < len(downs) else max(seen),
            "first_survivor_sees_down_s": min(seen, default=None),
            "provider_failover_s": rel(failover_at, t_kill),
            "all_listed_healthy_again_s": healthy_again,
            "survivor_bad_samples": sum(len(b) for b in bad_kill.values()),
            "survivor_bad_samples_before_kill": sum(len(s.bad_between(0.0, t_kill))
                                                    for s in samplers.values()),
            "survivor_bad_examples": _relative({a: b[:5] for a, b in bad_kill.items() if b},
                                               t_kill),
            "witness_bad_callbacks": sum(w.bad_count for w in self.witnesses),
            "witness_callbacks": sum(w.callbacks for w in self.witnesses),
            "witness_bad_examples": _relative([b for w in self.witnesses for b in w.bad[:5]],
                                              t_kill),
            "client_log": self.log.between(t_kill, t_end),
            "ever_missing": any(b["missing"] for b in everything),
            "ever_unhealthy": any(b["unhealthy"] for b in everything),
        }  # fmt: skip
        self.say(
            f"  survivors saw it down after {k['all_survivors_see_down_s']}s; bad samples "
            f"{k['survivor_bad_samples']}, bad pushes {k['witness_bad_callbacks']}"
        )
        return t_kill

    def restart(self, t_kill: float) -> None:
        """Restart the victim; time its ping, ready flag and complete listing, then watch."""
        t_restart, wall_restart = self.t_restart, time.time()
        bad_before = sum(w.bad_count for w in self.witnesses)
        self.victim.start()
        try:
            t_ping = self.victim.wait_ping()
        except RuntimeError as exc:  # keep what the kill phase measured
            self.result["restart"] = {"error": str(exc)}
            self.say(f"  restart failed: {exc}")
            return
        back = self.restarted = self.sampler(self.victim)
        ready_at = lists_at = None
        seen_up: dict[str, float | None] = {}
        hard_until = t_restart + RESTART_SECONDS
        while pc() < hard_until:  # bounded
            ready_at = ready_at or back.first("ready", True, t_restart)
            lists_at = lists_at or back.first("perfect", True, t_restart)
            seen_up = {a: s.first("states", "up", t_restart) for a, s in self.samplers.items()}
            if ready_at and lists_at and all(seen_up.values()):
                time.sleep(self.opts.observe)  # keep watching (health sweeps, ownership moves)
                break
            time.sleep(0.02)
        t_end = pc()
        up = [rel(t, t_restart) for t in seen_up.values()]
        bad = {a: s.bad_between(t_restart, t_end) for a, s in self.samplers.items()}
        after = back.bad_between(lists_at + 1e-9, t_end) if lists_at is not None else []
        gap = [{"t": round(b["t"] - t_restart, 3), "listed": b["listed"],
                "services_missing": sorted(b["missing"]),
                "of_them_its_own": sorted(k for k in b["missing"]
                                          if self.owner[k] == self.victim.address)}
               for b in back.bad_between(t_restart, lists_at or t_end) if b["ready"]]  # fmt: skip
        restart = self.result["restart"] = {
            "restart_wall": wall(wall_restart), "observed_s": round(t_end - t_restart, 3),
            "answers_ping_s": rel(t_ping, t_restart), "ready_s": rel(ready_at, t_restart),
            "lists_all_healthy_s": rel(lists_at, t_restart),
            "survivors_see_up_s": dict(zip(seen_up, up, strict=True)),
            "all_survivors_see_up_s": None if None in up else max(up, default=None),
            "survivor_bad_samples": sum(len(b) for b in bad.values()),
            "survivor_bad_examples": _relative({a: b[:5] for a, b in bad.items() if b}, t_restart),
            "restarted_ready_but_incomplete_samples": gap[:20],
            "restarted_bad_after_listing_all": len(after),
            "restarted_bad_examples": _relative(after[:5], t_restart),
            "witness_bad_callbacks": sum(w.bad_count for w in self.witnesses) - bad_before,
            "client_log": self.log.between(t_restart, t_end),
        }  # fmt: skip
        self.say(f"  restarted node ready after {restart['ready_s']}s, lists all after "
                 f"{restart['lists_all_healthy_s']}s")  # fmt: skip
        self.result["sampling"] = {  # how many samples, and the longest gap between two
            s.node.address + ("(restarted)" if s is back else ""): {
                "samples": s.samples, "longest_gap_ms": round(s.longest_gap * 1000, 1),
                "gaps_over_3_intervals": [{"after_kill_s": round(g0 - t_kill, 3),
                                           "ms": round(g * 1000, 1)} for g0, g in s.long_gaps[:10]],
                "errors": len(s.errors),
            } for s in [*self.samplers.values(), back]
        }  # fmt: skip


def kill_problem(result: dict[str, Any]) -> bool:
    k, s = result["kill"], result.get("restart", {})
    return bool(k["ever_missing"] or k["ever_unhealthy"] or s.get("survivor_bad_samples")
                or s.get("restarted_bad_after_listing_all"))  # fmt: skip


# -- the scenarios ------------------------------------------------------------------------
def propagation(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    say("baseline: one node, no load ...")
    lone = procs.node(log_dir, node_args(opts))
    rows = [run_propagation("single node, no load", [lone], opts, 71, say)]
    lone.stop()
    nodes = start_cluster(procs, 3, log_dir, node_args(opts, cluster=True))

    def counted(kind: str, rate: float, label: str, octet: int) -> dict[str, Any]:
        """One run under background ``kind`` load, with what the nodes counted
        meanwhile: beats, or replication deltas and the messages carrying them."""

        def count() -> tuple[int, int]:
            s = [stats(nd.port) for nd in nodes]
            if kind == "beat":
                return sum(x["beats_total"] for x in s), 1
            deltas = sum(x.get("replication_out", 0) for x in s)
            return deltas, sum(x.get("replication_messages_out", 0) for x in s) or deltas

        what = "beats" if kind == "beat" else "changes"
        say(f"3 nodes; background load {rate:,.0f} {what}/s ...")
        stop_load = start_background(procs, ctx, nodes, rate, opts.load_instances, kind=kind)
        (c0, m0), t0 = count(), pc()
        try:
            row = run_propagation(label, nodes, opts, octet, say)
        finally:
            (c1, m1), took = count(), pc() - t0
            stop_load()
        row[f"background_{what}_per_second"] = round((c1 - c0) / took)
        if kind == "churn":
            row["deltas_per_message"] = round((c1 - c0) / max(1, m1 - m0), 2)
        return row

    rows.append(counted("beat", opts.load, f"3 nodes, {opts.load:,.0f} beats/s background", 72))
    if opts.write_load:  # changes, every one replicated: what batching is for
        label = f"3 nodes, {opts.write_load:,.0f} changes/s background"
        rows.append(counted("churn", opts.write_load, label, 73))
    procs.stop_all()
    return {"rows": rows}


def failover(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    opts.evict_after = opts.evict_after or 2 * opts.unhealthy_after
    opts.observe = opts.observe or opts.unhealthy_after + 2
    with client_log() as log:
        nodes = start_cluster(procs, 3, log_dir, node_args(opts, cluster=True))
        say(f"3-node cluster; background load {opts.load:,.0f} beats/s ...")
        stop_load = start_background(procs, ctx, nodes, opts.load, opts.load_instances)
        try:
            result = KillRun(nodes, opts, log, say).run()
        finally:
            stop_load()
    since = result["kill"]["kill_wall"]
    result["log_events_since_kill"] = interesting_log_lines(nodes, since)
    result["settings"] = {**settings(opts), "node_flags": node_args(opts, cluster=True)}
    procs.stop_all()
    return result


def cluster(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    opts.observe = opts.observe or opts.unhealthy_after + 3
    say(f"nodes={opts.nodes} changes={opts.changes} (+{opts.warmup_changes} warm-up) over "
        f"{opts.prop_services} services; kill: {opts.instances} instances over "
        f"{min(opts.services, opts.instances)} services, beat {opts.beat_interval:g}s, sampled "
        f"every {opts.sample_interval * 1000:g} ms, observed {opts.observe:g}s; node flags "
        f"{' '.join(node_args(opts, cluster=True))}")  # fmt: skip
    doc: dict[str, Any] = {"propagation": []}
    with client_log() as log:
        if not opts.skip_baseline:
            say("change propagation, single node (baseline) ...")
            lone = procs.node(log_dir, node_args(opts))
            doc["propagation"].append(run_propagation("single node", [lone], opts, 71, say))
            lone.stop()
        t0 = pc()
        nodes = start_cluster(procs, opts.nodes, log_dir, node_args(opts, cluster=True))
        doc["cluster_formed_s"] = round(pc() - t0, 3)
        doc["cluster"] = [n.address for n in nodes]
        say(f"  formed in {doc['cluster_formed_s']:.2f}s: {', '.join(doc['cluster'])}")
        label = f"{opts.nodes}-node cluster"
        doc["propagation"].append(run_propagation(label, nodes, opts, 72, say))
        if not opts.skip_kill:
            say("kill and restart ...")
            doc["kill"] = KillRun(nodes, opts, log, say).run()
    procs.stop_all()
    doc["node_log_events"] = interesting_log_lines(nodes)
    since = doc.get("kill", {}).get("kill", {}).get("kill_wall", "")
    doc["node_log_events_since_kill"] = interesting_log_lines(nodes, since) if since else []
    doc["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    doc["rows"] = doc["propagation"]
    return doc


def catchup(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    total = opts.services * opts.instances
    say(f"{opts.nodes} nodes, {opts.services} services x {opts.instances} = {total} instances, "
        f"peer timeout {opts.peer_timeout:g}s")  # fmt: skip

    def waited(what: str, predicate: Callable[[], Any]) -> float:
        t0 = pc()
        if wait_until(predicate, CATCHUP_SECONDS, 0.1) is None:
            raise RuntimeError(f"timed out after {CATCHUP_SECONDS:g}s waiting for {what}")
        return pc() - t0

    def held(node: NodeProc) -> int:
        return int(stats(node.port)["instances"]["total"])

    args = ["--peer-timeout", f"{opts.peer_timeout:g}", "--unhealthy-after", "120",
            "--evict-after", "240"]  # fmt: skip
    nodes = start_cluster(procs, opts.nodes, log_dir, args)
    services = tuple(f"svc{s}" for s in range(opts.services))
    reg_s = preload(nodes[0].port, "register", total, services, window=opts.window,
                    timeout=CATCHUP_SECONDS)  # fmt: skip
    repl_s = waited("every node to hold every instance",
                    lambda: all(held(n) == total for n in nodes))  # fmt: skip
    victim = nodes[-1]
    victim.kill()
    waited("the survivors to see the victim down",
           lambda: len(stats(nodes[0].port)["members"]) == opts.nodes - 1)  # fmt: skip
    t1 = pc()
    victim.start().wait_ping()
    waited("the restarted node to be ready", lambda: stats(victim.port)["ready"])
    ready_s, at_ready = pc() - t1, held(victim)
    waited("the restarted node to hold every instance", lambda: held(victim) == total)
    full_s = pc() - t1
    flaps = sum(line.count("is down") for n in nodes[:-1] for line in n.log_lines()
                if victim.address not in line)  # fmt: skip
    procs.stop_all()
    rows = [[f"register {total} through node A", f"{reg_s:.1f} s ({total / reg_s:,.0f}/s)"],
            ["replicated to every node after the last reply", f"{repl_s:.2f} s"],
            ["restarted node ready (from its start)", f"{ready_s:.2f} s, holding {at_ready}"],
            [f"restarted node holds all {total} (from its start)", f"{full_s:.2f} s"],
            ["false 'peer down' among survivors", flaps]]  # fmt: skip
    return {"rows": [{"measure": m, "value": v} for m, v in rows]}


# -- reports ---------------------------------------------------------------------------
def fmt(v: Any) -> str:
    return "never" if v is None else f"{v:.2f} s" if isinstance(v, float) else str(v)


def report_propagation(result: dict[str, Any], say: Say) -> None:
    def opt(r: dict[str, Any], key: str, q: str) -> Any:
        return r[key][q] if r[key]["n"] else None

    cols: list[tuple[str, Any, str]] = [
        ("run", "label", "{}"),
        ("changes", "changes_measured", "{}"),
    ]
    for head, key in (("every node ", "all_nodes_ms"), ("remote sub ", "remote_subscriber_ms")):
        cols += [(f"{head}p50" if q == "p50" else q, lambda r, k=key, q=q: opt(r, k, q), "{:.2f}")
                 for q in ("p50", "p99", "max")]  # fmt: skip
    cols += [("background beats/s", lambda r: r.get("background_beats_per_second", 0), "{:,}"),
             ("changes/s", lambda r: r.get("background_changes_per_second", 0), "{:,}"),
             ("deltas/msg", "deltas_per_message", "{:g}"),
             ("timeouts", lambda r: len(r["timeouts"]) + len(r["errors"]), "{}")]  # fmt: skip
    say("milliseconds from the write call's return\n" + table(result["rows"], cols))
    for r in result["rows"]:
        if r["timeouts"] or r["errors"]:
            say(f"  {r['label']}: timeouts {r['timeouts'][:3]} errors {r['errors'][:3]}")


def ready_gap(restart: dict[str, Any], m_count: int) -> str:
    """The restarted node's samples that said ready while its listing was incomplete."""
    gap = restart.get("restarted_ready_but_incomplete_samples") or []
    if not gap:
        return "0"
    g = gap[0]
    return (f"{len(gap)} (first at {g['t']:.2f} s: listed {g['listed']}/{m_count}, "
            f"{len(g['services_missing'])} services missing, "
            f"{len(g['of_them_its_own'])} of them its own)")  # fmt: skip


def kill_table(r: dict[str, Any]) -> str:
    k, s = r["kill"], r.get("restart", {})
    rows = [
        ("survivors' cluster view shows the victim down (last / first)",
         f"{fmt(k['all_survivors_see_down_s'])} / {fmt(k['first_survivor_sees_down_s'])}"),
        ("provider Client failed over from the victim", fmt(k["provider_failover_s"])),
        ("every survivor lists all M instances healthy again",
         fmt(k["all_listed_healthy_again_s"])
         + (" (never stopped)" if k["survivor_bad_samples"] == 0 else "")),
        ("instance ever missing on a survivor (samples / pushes)",
         "yes" if k["ever_missing"] else "no"),
        ("instance ever unhealthy on a survivor", "yes" if k["ever_unhealthy"] else "no"),
        ("imperfect survivor samples / pushed listings",
         f"{k['survivor_bad_samples']} / {k['witness_bad_callbacks']}"),
        ("restart: answers ping",
         fmt(s.get("answers_ping_s")) + (f" (failed: {s['error']})" if "error" in s else "")),
        ("restart: reports ready", fmt(s.get("ready_s"))),
        ("restart: lists all M instances healthy", fmt(s.get("lists_all_healthy_s"))),
        ("restart: samples 'ready' but not listing all M", ready_gap(s, r["instances"])),
        ("restart: every survivor sees it up and ready", fmt(s.get("all_survivors_see_up_s"))),
        ("after restart: imperfect samples survivors / restarted / pushes",
         f"{s.get('survivor_bad_samples')} / {s.get('restarted_bad_after_listing_all')} / "
         f"{s.get('witness_bad_callbacks')}"),
    ]  # fmt: skip
    head = ["event (seconds after the SIGKILL, restart rows after the restart)", "value"]
    return fmt_table(head, [list(x) for x in rows], right=set())


def report_failover(result: dict[str, Any], say: Say) -> None:
    k, s = result["kill"], result.get("restart", {})
    say(f"victim {result['victim']} (responsible for {result['victim_services']} of "
        f"{result['services']} services), {result['instances']} instances")  # fmt: skip
    rows = [
        ["survivors own the victim's services (all see it down)", k["all_survivors_see_down_s"]],
        ["provider client failed over", k["provider_failover_s"]],
        ["instance ever missing on a survivor", "yes" if k["ever_missing"] else "no"],
        ["instance ever unhealthy on a survivor", "yes" if k["ever_unhealthy"] else "no"],
        ["restarted node answers ping", s.get("answers_ping_s")],
        ["restarted node ready (caught up)", s.get("ready_s")],
        ["restarted node lists all M instances", s.get("lists_all_healthy_s")],
    ]
    say(fmt_table(["event", "seconds after the kill / the restart"], rows))
    say("detail:\n" + kill_table(result))
    for line in result.get("log_events_since_kill", [])[:30]:
        say("  " + line)


def propagation_table(rows: list[dict[str, Any]]) -> str:
    qs = ("p50", "p90", "p99", "max")
    head = ["setup", "changes", *(f"{q} ms" for q in qs), "1st node p50", "call p50",
            "start->all p50", "timeouts"]  # fmt: skip
    out = [[r["label"], r["changes_measured"], *(f"{r['all_nodes_ms'][q]:.2f}" for q in qs),
            f"{r['first_node_ms']['p50']:.2f}", f"{r['call_ms']['p50']:.2f}",
            f"{r['all_nodes_from_call_start_ms']['p50']:.2f}", len(r["timeouts"])]
           for r in rows]  # fmt: skip
    if len(rows) == 2:
        one, many = rows

        def ratio(key: str, q: str) -> str:
            a, b = one[key][q], many[key][q]
            return f"{b / a:.2f}x" if a else "nanx"

        key = "all_nodes_from_call_start_ms"
        out.append(["ratio", "", *(ratio("all_nodes_ms", q) for q in qs), "", "",
                    ratio(key, "p50"), ""])  # fmt: skip
    return fmt_table(head, out, right=set(range(1, len(head))))


def report_cluster(doc: dict[str, Any], say: Say) -> None:
    rows = doc["propagation"]
    say("1. change propagation: ms from register()/deregister() returning until the")
    say("   subscriber callback on every node showed it (1st node: the earliest node)")
    say(propagation_table(rows))
    for r in rows:
        if r["negative_all"]:
            say(f"   {r['label']}: in {r['negative_all']} changes every callback ran before "
                "the call returned (negative times are kept as measured)")  # fmt: skip
        if r["timeouts"] or r["errors"] or r["stopped_early"]:
            say(f"   {r['label']}: timeouts {r['timeouts'][:5]} errors {r['errors'][:5]}")
    if rows and rows[-1]["nodes"] > 1:
        say(f"   per-node p50 ms (node A first): {json.dumps(rows[-1]['per_node_p50_ms'])}")
        say(f"   writes node A forwarded during the cluster run: {rows[-1]['forwarded_by_a']}")
    r = doc.get("kill")
    if r is not None:
        say(f"\n2. kill -9 of {r['victim']} (responsible for {r['victim_services']} of "
            f"{r['services']} services), {r['instances']} instances, provider servers "
            f"{','.join(r['provider_servers'])}")  # fmt: skip
        say(kill_table(r))
        say("   sampling: " + json.dumps(r.get("sampling")))
        for phase in ("kill", "restart"):
            entries = r.get(phase, {}).get("client_log", [])
            if entries:
                say(f"   client log during the {phase} phase ({len(entries)} records):")
                for t, lvl, msg in entries[:20]:
                    say(f"     +{t:7.3f}s {lvl} {msg}")
        if kill_problem(r) or r["kill"]["survivor_bad_samples"]:
            say("   PROBLEM: an instance was missing or unhealthy; examples:")
            for phase, key in (("kill", "survivor_bad_examples"), ("kill", "witness_bad_examples"),
                               ("restart", "survivor_bad_examples"),
                               ("restart", "restarted_bad_examples")):  # fmt: skip
                say(f"     {phase} {key}: {json.dumps(r.get(phase, {}).get(key))[:2000]}")
        say("   node log events from the kill on (peers up/down, unhealthy, evicted, warnings):")
        for line in doc["node_log_events_since_kill"][:60]:
            say("     " + line)
    say(f"load average at the end: {doc['loadavg_after']}")


def report_catchup(result: dict[str, Any], say: Say) -> None:
    say(fmt_table(["measure", "value"], [[r["measure"], r["value"]] for r in result["rows"]],
                  right=set()))  # fmt: skip


PROP = {"changes": (200, 40), "warmup_changes": (10, 10), "prop_services": (10, 10),
        "change_timeout": (10.0, 10.0), "max_seconds": (120.0, 120.0), "peer_timeout": (1.0, 1.0),
        "check_interval": (1.0, 1.0), "unhealthy_after": (15.0, 15.0),
        "evict_after": (30.0, 30.0)}  # fmt: skip
KILL = {"instances": (50, 50), "services": (10, 10), "beat_interval": (1.0, 1.0),
        "sample_interval": (0.05, 0.05), "observe": (None, None)}  # fmt: skip
LOAD = {"load": (20_000.0, 20_000.0), "load_instances": (2000, 500)}
SCENARIOS = (
    Scenario("propagation", propagation, report_propagation,
             "write's return -> push on every node and a remote subscriber, 3 nodes under "
             "background beats, then changes", {**PROP, **LOAD, "write_load": (5000.0, 5000.0)},
             suite=True),
    Scenario("failover", failover, report_failover,
             "SIGKILL of a loaded cluster's busiest node: take-over, nothing lost, catch-up",
             {**PROP, **KILL, **LOAD, "instances": (200, 50), "services": (20, 20),
              "unhealthy_after": (6.0, 6.0), "evict_after": (None, None), "observe": (None, None)},
             suite=True, problem=kill_problem),
    Scenario("cluster", cluster, report_cluster,
             "propagation and kill/restart without load, the detailed report",
             {**PROP, **KILL, "nodes": (3, 3)},
             problem=lambda doc: "kill" in doc and kill_problem(doc["kill"])),
    Scenario("catchup", catchup, report_catchup,
             "a restarted node catching up with a large registry (instances per service)",
             {"nodes": (3, 3), "services": (20, 4), "instances": (10_000, 2000),
              "peer_timeout": (3.0, 3.0), "window": (500, 500)}),
)  # fmt: skip
