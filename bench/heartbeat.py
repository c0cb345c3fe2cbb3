"""Heartbeat throughput: one node and a 3-node cluster, against the raw ZeroMQ ceiling and etcd.

Run from the repository root with the project's interpreter::

    python -m bench heartbeat [--instances N] [--seconds S] [--clients C] [--window W]

Rows, each driven by the same load generator (bench/load.py: C processes, one
DEALER each, W requests in flight per DEALER):

* ``raw zmq echo``: a bare ROUTER that sends every message straight back,
  fed the very bytes of the beat requests: the ceiling of a pyzmq server;
* ``meshreg ping``: the node's ``ping`` (decode, validate, dispatch, reply);
* ``meshreg beat, 1 node``: ``beat`` for N registered instances, cycled
  through (one message renews one instance: the seed's model);
* ``meshreg beat, 3 nodes``: a 3-node cluster, the N instances spread over
  services owned by every node, each loader sending its beats straight to the
  responsible node (what the client does once it knows the members); the
  server CPU is the three nodes' together;
* ``etcd lease keep-alive``: one lease per instance, kept alive over one
  LeaseKeepAlive stream per loader (bench/peers.py; skipped if not installed).

The protocol has no batched beat: one message renews one instance.

Every process started here is stopped on the way out (also on Ctrl-C and
SIGTERM); everything binds and connects to 127.0.0.1 only; every loop is
bounded in both iterations and time.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/heartbeat.py
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

from bench.common import (
    GROUP,
    HOST,
    NS,
    OTHER_CPU_WARN,
    Curve,
    NodeProc,
    Procs,
    call,
    fmt_table,
    free_port_block,
    install_sigterm,
    machine_info,
    ranged,
    save_result,
    say_machine,
    wait_until,
    with_log_dir,
)
from bench.load import SAMPLE_EVERY, preload, run_load, run_rows, start_echo, templates_for
from meshreg.core.mapping import responsible_node
from meshreg.model import ServiceKey

CLUSTER_SIZE = 3
FORM_SECONDS = 30.0
QUIET = ["--unhealthy-after", "3600", "--evict-after", "7200"]  # nothing expires mid-run


def owned_services(addresses: list[str], per_node: int) -> dict[str, tuple[str, ...]]:
    """``per_node`` service names owned by each address (rendezvous hashing over them)."""
    out: dict[str, list[str]] = {a: [] for a in addresses}
    for k in range(100_000):  # bounded; ~per_node * len(addresses) draws suffice
        name = f"bench-svc-{k}"
        owner = responsible_node(ServiceKey(NS, GROUP, name), addresses)
        if len(out[owner]) < per_node:
            out[owner].append(name)
        if all(len(v) == per_node for v in out.values()):
            return {a: tuple(v) for a, v in out.items()}
    raise RuntimeError("could not find services owned by every node")


def start_cluster(
    procs: Procs, n: int, log_dir: str, extra: list[str], curve: Curve | None = None
) -> list[NodeProc]:
    """``n`` peers on fresh ports, returned once each reports every member up and ready
    (``curve``: the client keys to ask them with, for nodes started with ``--key``)."""
    ports = [free_port_block() for _ in range(n)]
    addresses = [f"{HOST}:{p}" for p in ports]
    peer_args = [x for a in addresses for x in ("--peer", a)]
    nodes = [procs.add(NodeProc(p, extra + peer_args, log_dir, curve=curve).start()) for p in ports]
    for node in nodes:
        node.wait_ping()

    def formed() -> bool:
        for node in nodes:
            view = call(node.port, "cluster", timeout=1.0, curve=curve)["result"]
            if not view["ready"] or sum(m["state"] == "up" for m in view["members"]) != n:
                return False
        return True

    if wait_until(formed, FORM_SECONDS) is None:
        raise RuntimeError(f"the {n}-node cluster did not form within {FORM_SECONDS:g}s")
    return nodes


def _run(
    log_dir: str,
    procs: Procs,
    ctx: Any,
    opts: argparse.Namespace,
    say: Any = print,
    profile: str | None = None,
    baselines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """All rows; returns {"rows": [...], "settings": ..., "node_stats": ..., "skipped": [...]}."""
    n, clients, window = opts.instances, opts.clients, opts.window
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    per_loader = max(1, n // clients)

    def measure(targets: list[tuple[int, Any]], pids: list[int], echo: bool = False) -> Any:
        return run_rows(
            opts.repeat,
            lambda: run_load(
                procs, ctx, targets, pids, window, opts.seconds, opts.warmup, echo=echo
            ),
        )

    def beat_targets(port: int, services: Any, base: int, loaders: int = clients) -> list[Any]:
        share = max(1, per_loader * clients // loaders)
        return [(port, ("beat", share, services, base + c * share)) for c in range(loaders)]

    # On a 2-core machine every extra loader process takes CPU from the server, so the
    # rows are also measured with a single loader when --clients is larger: that shows
    # how much of a shortfall is the box rather than the server.
    counts = [clients] + ([1] if clients > 1 else [])

    # 1. the ceiling: the beat bytes echoed by a bare ROUTER
    lifetime = 3 * opts.repeat * (opts.warmup + opts.seconds) * len(counts) + 120
    echo_port, echo_pid = start_echo(procs, ctx, lifetime)
    say(f"raw zmq echo on {HOST}:{echo_port} ...")
    for c in counts:
        row = measure(beat_targets(echo_port, None, 0, c), [echo_pid], True)
        rows.append({"workload": "raw zmq echo", **row})
    procs.stop_children()  # the echo server must not compete with the node for a core

    # 2. one node
    prefix = ["-m", "cProfile", "-o", profile] if profile else None
    node = procs.add(NodeProc(free_port_block(), QUIET, log_dir, prefix).start())
    node.wait_ping()
    say(f"meshreg node on {node.address} (pid {node.pid}) ...")
    ping_targets = [(node.port, ("ping", 1)) for _ in range(clients)]
    rows.append({"workload": "meshreg ping", **measure(ping_targets, [node.pid])})
    took = preload(node.port, "register", per_loader * clients)
    say(f"registered {per_loader * clients} instances in {took:.2f}s")
    for c in counts:
        row = measure(beat_targets(node.port, None, 0, c), [node.pid])
        rows.append({"workload": "meshreg beat, 1 node", **row})
    stats = call(node.port, "stats", timeout=5.0).get("result") or {}
    procs.stop_all()

    # 3. a 3-node cluster, beats spread over services owned by every node
    if opts.cluster:
        nodes = start_cluster(procs, CLUSTER_SIZE, log_dir, QUIET)
        addresses = [nd.address for nd in nodes]
        owned = owned_services(addresses, 2)
        say(f"{CLUSTER_SIZE}-node cluster on {', '.join(addresses)} ...")
        targets = []
        share = max(1, per_loader * clients // CLUSTER_SIZE)
        for k, nd in enumerate(nodes):
            preload(nd.port, "register", share, owned[nd.address], first=k * share)
            targets.append((nd.port, ("beat", share, owned[nd.address], k * share)))
        row = measure(targets, [nd.pid for nd in nodes])
        forwarded = sum(
            call(nd.port, "stats", timeout=5.0)["result"].get("forwarded", 0) for nd in nodes
        )
        rows.append(
            {"workload": f"meshreg beat, {CLUSTER_SIZE} nodes", **row, "forwarded": forwarded}
        )
        procs.stop_all()

    # 4. etcd's lease keep-alive with the same client processes
    if opts.peers:
        from bench import peers  # here: the peers' clients are optional

        missing = peers.etcd_missing()
    else:
        missing = "not run (--no-peers)"
    if baselines is not None:
        rows.extend(r for r in baselines if "keep-alive" in r["workload"])
    elif missing:
        skipped.append(f"etcd: {missing}")
    else:
        say("etcd on loopback ...")
        etcd_rows = peers.run_etcd(
            procs, ctx, clients, window, opts.seconds, opts.warmup, per_loader * clients,
            kinds=("keepalive",),
        )  # fmt: skip
        rows.extend(r for r in etcd_rows if "keep-alive" in r["workload"])
        procs.stop_all()
    return {
        "rows": rows,
        "skipped": skipped,
        "node_stats": stats,
        "settings": {
            k: getattr(opts, k)
            for k in ("instances", "seconds", "warmup", "clients", "window", "repeat")
        },
    }


def run(
    procs: Procs,
    ctx: Any,
    opts: argparse.Namespace,
    say: Any = print,
    profile: str | None = None,
    baselines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """All rows; returns {"rows": [...], "settings": ..., "node_stats": ..., "skipped": [...]}."""
    return with_log_dir(
        "meshreg-bench-hb-", say, lambda d: _run(d, procs, ctx, opts, say, profile, baselines)
    )


def table(rows: list[dict[str, Any]]) -> str:
    """Ratios are against the echo row with the same number of loaders, and etcd's row."""
    raw = {r["clients"]: r["ops_per_second"] for r in rows if r["workload"] == "raw zmq echo"}
    etcd = next((r["ops_per_second"] for r in rows if r["workload"].startswith("etcd")), 0.0)
    head = ["workload", "loaders", "ops/s", "p50 ms", "p99 ms", "vs raw echo", "vs etcd",
            "server CPU", "server us/op", "loader CPU", "other CPU"]  # fmt: skip
    out = []
    for r in rows:
        ops, ceiling = r["ops_per_second"], raw.get(r["clients"])
        r["ratio_vs_raw"] = round(ops / ceiling, 3) if ceiling else None
        r["ratio_vs_etcd"] = round(ops / etcd, 2) if etcd else None
        out.append(
            [
                r["workload"],
                r["clients"],
                f"{ops:,.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{ops / ceiling:.2f}x" if ceiling else "-",
                f"{ops / etcd:.1f}x" if etcd else "-",
                f"{r['server_cpu_busy']:.0%}",
                f"{r['server_cpu_us_per_op']:.1f}",
                f"{r['loader_cpu_busy']:.0%}",
                f"{r['other_cpu_busy']:.0%}",
            ]
        )
    return fmt_table(head, out)


def report(result: dict[str, Any], say: Any) -> None:
    rows = result["rows"]
    say(table(rows))
    for line in result["skipped"]:
        say(f"  skipped {line}")
    worst = max(rows, key=lambda r: r["other_cpu_busy"])
    if worst["other_cpu_busy"] > OTHER_CPU_WARN:
        say(
            f"  WARNING: other processes used up to {worst['other_cpu_busy']:.0%} of a core "
            "during the runs; ops/s and latency are disturbed (server us/op much less so)."
        )
        for line in worst["other_top"]:
            say(f"    {line}")
    for r in rows:
        if r["errors"] or r["lost"] or r["stalled"]:
            say(
                f"  {r['workload']}: {r['errors']} error replies {r['error_names']}, "
                f"{r['lost']} lost, stalled={r['stalled']}"
            )
    s = result["node_stats"]
    say(
        f"  1-node stats after the run: beats_total={s.get('beats_total')} "
        f"errors_total={s.get('errors_total')}"
    )


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--instances", type=ranged(int, 1, 1_000_000), default=1000, help="instances beaten (1000)"
    )
    ap.add_argument(
        "--seconds", type=ranged(float, 0.1, 600), default=3.0, help="measured seconds per row (3)"
    )
    ap.add_argument(
        "--warmup", type=ranged(float, 0, 60), default=0.5, help="unmeasured seconds first (0.5)"
    )
    ap.add_argument(
        "--clients", type=ranged(int, 1, 64), default=2, help="load-generator processes (2)"
    )
    ap.add_argument(
        "--window",
        type=ranged(int, 1, 10_000),
        default=128,
        help="requests in flight per loader (128)",
    )
    ap.add_argument(
        "--repeat", type=ranged(int, 1, 20), default=1, help="runs per row, median shown (1)"
    )
    ap.add_argument("--no-cluster", dest="cluster", action="store_false", help="skip 3-node row")
    ap.add_argument("--no-peers", dest="peers", action="store_false", help="skip etcd")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    ap.add_argument("--profile-node", metavar="PATH", help="run the 1-node row under cProfile")
    opts = ap.parse_args(argv)
    install_sigterm()
    ctx = mp.get_context("spawn")
    procs = Procs()
    machine = machine_info()
    say_machine(print, machine)
    print(f"settings: {vars(opts)} (latency: 1 in {SAMPLE_EVERY} requests timed)")
    templates_for("beat", 1)  # fail early if the templates do not match encode_request
    try:
        result = run(procs, ctx, opts, print, opts.profile_node)
    finally:
        procs.stop_all()
    report(result, print)
    print(f"result: {save_result('heartbeat', result, machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
