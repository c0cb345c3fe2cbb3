"""``heartbeat`` and ``register``: requests a node (and a 3-node cluster) answers per second,
against the raw ZeroMQ echo ceiling and etcd / ZooKeeper (bench/README.md says what each
row is).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bench import baselines
from bench.common import (
    LOAD_COLUMNS,
    QUIET,
    Procs,
    Say,
    Scenario,
    forwarded,
    load_notes,
    owned_services,
    start_cluster,
    stats,
    table,
)
from bench.load import preload, run_load, run_rows, start_echo

CLUSTER_SIZE = 3
PER_LOADER = 50_000  # distinct instances a register loader sends before it cycles
PER_LOADER_RATE = 40_000  # registers/s one loader never reaches: sizes a short row's share


def register_share(opts: argparse.Namespace) -> int:
    """Distinct instances per register loader: PER_LOADER, fewer for a row too short to send
    them at PER_LOADER_RATE (building a template costs the loader ~30 us before the row)."""
    return min(PER_LOADER, max(1000, int((opts.warmup + opts.seconds) * PER_LOADER_RATE)))


def beat_targets(port: int, o: argparse.Namespace, loaders: int) -> Any:
    """``loaders`` beat loaders on ``port`` sharing the instances registered there
    (``--instances`` rounded to ``--clients`` loaders' shares)."""
    share = max(1, max(1, o.instances // o.clients) * o.clients // loaders)
    return [(port, ("beat", share, None, c * share)) for c in range(loaders)]


def register_targets(port: int, o: argparse.Namespace) -> Any:
    """``--clients`` register loaders on ``port``, each over its own instances."""
    return [(port, ("register", register_share(o), None, c * PER_LOADER)) for c in range(o.clients)]


class Bench:
    """What both scenarios share: the options, the rows, one measuring call."""

    def __init__(self, procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say) -> None:
        self.procs, self.ctx, self.opts, self.say = procs, ctx, opts, say
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[str] = []

    def measure(
        self, targets: list[Any], pids: list[int], rate: float | None = None, echo: bool = False
    ) -> dict[str, Any]:
        o = self.opts
        return run_rows(o.repeat, lambda: run_load(
            self.procs, self.ctx, targets, pids, o.window, o.seconds, o.warmup, echo=echo,
            rate=rate,
        ), paced=rate is not None)  # fmt: skip

    def add(self, workload: str, row: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self.rows.append({"workload": workload, **row, **extra})
        return row

    def max_and_paced(self, label: str, targets: list[Any], pids: list[int], shares: Any) -> None:
        """A row at the highest rate, then one paced at each share (%) of it."""
        top = self.add(label, self.measure(targets, pids))
        for pct in shares:
            rate = top["ops_per_second"] * pct / 100
            self.add(f"{label} at {pct}% rate", self.measure(targets, pids, rate),
                     target_rate=round(rate))  # fmt: skip

    def cluster(
        self, log_dir: str, extra: tuple[str, ...] = ()
    ) -> tuple[list[Any], dict[str, tuple[str, ...]]]:
        nodes = start_cluster(self.procs, CLUSTER_SIZE, log_dir, QUIET + list(extra))
        self.say(f"{CLUSTER_SIZE}-node cluster on {', '.join(n.address for n in nodes)} "
                 f"{' '.join(extra)}...")  # fmt: skip
        return nodes, owned_services([n.address for n in nodes], 4)

    def peers(self, keep: str, kinds: tuple[str, ...], instances: int) -> None:
        """The baselines' rows whose workload has ``keep``: those of this run's
        ``baselines`` scenario, else measured here with the same loaders."""
        if self.opts.baseline_rows is not None:
            self.rows.extend(r for r in self.opts.baseline_rows if keep in r["workload"])
            return
        rows, skipped = baselines.peer_rows(self.procs, self.ctx, self.opts, self.say, instances,
                                            kinds)  # fmt: skip
        self.rows.extend(r for r in rows if keep in r["workload"])
        self.skipped += skipped

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"rows": self.rows, "skipped": self.skipped, **extra}


def _heartbeat(log_dir: str, b: Bench) -> dict[str, Any]:
    o, procs = b.opts, b.procs
    clients = o.clients
    per_loader = max(1, o.instances // clients)

    # On 2 cores every extra loader process takes CPU from the server: the rows are also
    # measured with one loader when --clients is larger (how much of a shortfall is the box).
    counts = [clients] + ([1] if clients > 1 else [])
    lifetime = 3 * o.repeat * (o.warmup + o.seconds) * len(counts) + 120
    echo_port, echo_pid = start_echo(procs, b.ctx, lifetime)
    b.say(f"raw zmq echo on port {echo_port} ...")
    for c in counts:
        b.add("raw zmq echo", b.measure(beat_targets(echo_port, o, c), [echo_pid], echo=True))
    procs.stop_children()  # the echo server must not compete with the node for a core

    prefix = ["-m", "cProfile", "-o", o.profile_node] if o.profile_node else None
    node = procs.node(log_dir, QUIET, prefix=prefix)
    b.say(f"meshreg node on {node.address} (pid {node.pid}) ...")
    b.add("meshreg ping", b.measure([(node.port, ("ping", 1))] * clients, [node.pid]))
    took = preload(node.port, "register", per_loader * clients)
    b.say(f"registered {per_loader * clients} instances in {took:.2f}s")
    for c in counts:
        b.add("meshreg beat, 1 node", b.measure(beat_targets(node.port, o, c), [node.pid]))
    node_stats = stats(node.port)
    procs.stop_all()

    if o.cluster:  # beats spread over services owned by every node, sent to the owner
        nodes, owned = b.cluster(log_dir)
        share = max(1, per_loader * clients // CLUSTER_SIZE)
        targets = []
        for k, nd in enumerate(nodes):
            services = owned[nd.address][:2]
            preload(nd.port, "register", share, services, first=k * share)
            targets.append((nd.port, ("beat", share, services, k * share)))
        row = b.measure(targets, [nd.pid for nd in nodes])
        b.add(f"meshreg beat, {CLUSTER_SIZE} nodes", row, forwarded=forwarded(nodes))
        procs.stop_all()
    b.peers("keep-alive", ("keepalive",), per_loader * clients)
    return b.result(node_stats=node_stats)


def _register(log_dir: str, b: Bench) -> dict[str, Any]:
    o, procs = b.opts, b.procs

    node = procs.node(log_dir, QUIET)
    b.say(f"meshreg node on {node.address} (pid {node.pid}) ...")
    b.max_and_paced(
        "meshreg register, 1 node", register_targets(node.port, o), [node.pid], (50, 25)
    )
    procs.stop_all()

    # direct to the owner, and through a node that forwards; --unbatched: also as before
    # replication batched deltas (every delta in a PUB message of its own)
    for extra, tag in (((), ""), (("--replication-batch", "1"), ", one delta per message")):
        if o.cluster and (not extra or o.unbatched):
            _register_cluster(log_dir, b, extra, tag)
    b.peers("register", ("register",), 1000)
    return b.result()


def _register_cluster(log_dir: str, b: Bench, extra: tuple[str, ...], tag: str) -> None:
    o = b.opts
    nodes, owned = b.cluster(log_dir, extra)
    pids = [nd.pid for nd in nodes]

    def spread(shift: int, base: int) -> list[Any]:
        """Loader c registers services owned by node c % 3, sending to node (c + shift) % 3."""
        n = CLUSTER_SIZE
        return [(nodes[(c + shift) % n].port, ("register", register_share(o),
                 owned[nodes[c % n].address], base + c * PER_LOADER))
                for c in range(max(o.clients, n))]  # fmt: skip

    label = f"meshreg register, {CLUSTER_SIZE} nodes"
    b.max_and_paced(f"{label}, direct{tag}", spread(0, 1_000_000), pids, (50,))
    before = forwarded(nodes)
    row = b.measure(spread(1, 3_000_000), pids)
    b.add(f"{label}, via forwarder{tag}", row, forwarded=forwarded(nodes) - before)
    b.procs.stop_all()


def _runner(body: Callable[[str, Bench], dict[str, Any]]) -> Any:
    def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
        return body(log_dir, Bench(procs, ctx, opts, say))

    return run


def report_heartbeat(result: dict[str, Any], say: Say) -> None:
    """Ratios are against the echo row with the same number of loaders, and etcd's row."""
    rows = result["rows"]
    raw = {r["clients"]: r["ops_per_second"] for r in rows if r["workload"] == "raw zmq echo"}
    etcd = next((r["ops_per_second"] for r in rows if r["workload"].startswith("etcd")), 0.0)
    for r in rows:
        ceiling = raw.get(r["clients"])
        r["ratio_vs_raw"] = round(r["ops_per_second"] / ceiling, 3) if ceiling else None
        r["ratio_vs_etcd"] = round(r["ops_per_second"] / etcd, 2) if etcd else None
    say(table(rows, [("workload", "workload", "{}"), ("loaders", "clients", "{}"),
                     ("ops/s", "ops_per_second", "{:,.0f}"), *LOAD_COLUMNS[:2],
                     ("vs raw echo", "ratio_vs_raw", "{:.2f}x"),
                     ("vs etcd", "ratio_vs_etcd", "{:.1f}x"), *LOAD_COLUMNS[2:],
                     ("other CPU", "other_cpu_busy", "{:.0%}")]))  # fmt: skip
    load_notes(result["rows"], say, skipped=result["skipped"])
    s = result["node_stats"]
    say(f"  1-node stats after the run: beats_total={s.get('beats_total')} "
        f"errors_total={s.get('errors_total')}")  # fmt: skip


def report_register(result: dict[str, Any], say: Say) -> None:
    say(table(result["rows"], [("workload", "workload", "{}"),
                               ("registers/s", "ops_per_second", "{:,.0f}"), *LOAD_COLUMNS,
                               ("errors", lambda r: r["errors"] + r["lost"], "{}")]))  # fmt: skip
    load_notes(result["rows"], say, skipped=result["skipped"])


SCENARIOS = (
    Scenario("heartbeat", _runner(_heartbeat), report_heartbeat,
             "beats/s: 1 node, 3 nodes, the raw zmq echo ceiling, etcd keep-alives", suite=True),
    Scenario("register", _runner(_register), report_register,
             "registrations/s and p50/p99: 1 node, 3 nodes direct and via forwarder, etcd, "
             "ZooKeeper", suite=True),
)  # fmt: skip
