"""Registration throughput and latency: one node, a 3-node cluster direct and through a forwarder.

Run from the repository root::

    python -m bench register [--seconds S] [--clients C] [--window W]

Rows (the same load generator as the heartbeat benchmark, bench/load.py):

* ``meshreg register, 1 node``: registrations of distinct instances (50,000
  per loader, then the same ones again), as fast as the node answers (C
  loaders, W in flight each): the maximum rate, its latency mostly queueing;
* ``... at 50% rate`` (and 25% on one node): the same, paced at that share
  of the maximum just measured, so that the latency is service time plus
  the queueing of a busy but not saturated node; with ``--repeat`` the run
  with the median p99 stands;
* ``3 nodes, direct``: each loader registers instances of services owned by
  the node it sends to (what the client does once it knows the members); each
  registration is replicated to the two other nodes;
* ``3 nodes, via forwarder``: each loader sends to a node that does not own
  the services, which forwards to the owner over DEALER and relays the reply;
* ``etcd register (lease grant + put)`` and ``zookeeper register (ephemeral
  create)``: bench/peers.py, with the same number of client processes and
  the same window (skipped with a line saying how to install when absent).
  Both write their log to disk (fsync) before answering; meshreg keeps
  registrations in memory, as Nacos does its ephemeral instances and Eureka
  all of them, and relies on the providers' re-registration after a restart.

Every process started here is stopped on the way out; 127.0.0.1 only; every
loop bounded in count and time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/register.py
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

from bench.common import (
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
    with_log_dir,
)
from bench.heartbeat import CLUSTER_SIZE, QUIET, owned_services, start_cluster
from bench.load import run_load, run_rows

PER_LOADER = 50_000  # distinct instances a loader registers before it cycles (re-registers)


def _run(
    log_dir: str,
    procs: Procs,
    ctx: Any,
    opts: argparse.Namespace,
    say: Any = print,
    baselines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    clients, window = opts.clients, opts.window
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []

    def measure(targets: list[Any], pids: list[int], rate: float | None = None) -> Any:
        return run_rows(
            opts.repeat,
            lambda: run_load(
                procs, ctx, targets, pids, window, opts.seconds, opts.warmup, rate=rate
            ),
            paced=rate is not None,
        )

    def half(
        label: str, targets: list[Any], pids: list[int], top: dict[str, Any], shares: Any = (50,)
    ) -> None:
        for pct in shares:
            rate = top["ops_per_second"] * pct / 100
            row = measure(targets, pids, rate)
            rows.append({"workload": f"{label} at {pct}% rate", "target_rate": round(rate), **row})

    # 1. one node
    node = procs.add(NodeProc(free_port_block(), QUIET, log_dir).start())
    node.wait_ping()
    say(f"meshreg node on {node.address} (pid {node.pid}) ...")
    targets = [(node.port, ("register", PER_LOADER, None, c * PER_LOADER)) for c in range(clients)]
    top = measure(targets, [node.pid])
    rows.append({"workload": "meshreg register, 1 node", **top})
    half("meshreg register, 1 node", targets, [node.pid], top, (50, 25))
    procs.stop_all()

    # 2. three nodes: direct to the owner, and through a node that forwards
    if opts.cluster:
        nodes = start_cluster(procs, CLUSTER_SIZE, log_dir, QUIET)
        addresses = [nd.address for nd in nodes]
        owned = owned_services(addresses, 4)
        pids = [nd.pid for nd in nodes]
        say(f"{CLUSTER_SIZE}-node cluster on {', '.join(addresses)} ...")

        def spread(shift: int, base: int) -> list[Any]:
            """Loader c registers services owned by node c % 3, sending to node (c + shift) % 3."""
            out = []
            for c in range(max(clients, CLUSTER_SIZE)):
                owner = nodes[c % CLUSTER_SIZE]
                via = nodes[(c + shift) % CLUSTER_SIZE]
                out.append(
                    (
                        via.port,
                        ("register", PER_LOADER, owned[owner.address], base + c * PER_LOADER),
                    )
                )
            return out

        direct = spread(0, 1_000_000)
        top = measure(direct, pids)
        rows.append({"workload": f"meshreg register, {CLUSTER_SIZE} nodes, direct", **top})
        half(f"meshreg register, {CLUSTER_SIZE} nodes, direct", direct, pids, top)
        before = sum(
            call(nd.port, "stats", timeout=5.0)["result"].get("forwarded", 0) for nd in nodes
        )
        top = measure(spread(1, 3_000_000), pids)
        after = sum(
            call(nd.port, "stats", timeout=5.0)["result"].get("forwarded", 0) for nd in nodes
        )
        rows.append(
            {
                "workload": f"meshreg register, {CLUSTER_SIZE} nodes, via forwarder",
                **top,
                "forwarded": after - before,
            }  # fmt: skip
        )
        procs.stop_all()

    # 3. peers
    if baselines is not None:
        rows.extend(r for r in baselines if "register" in r["workload"])
    elif opts.peers:
        from bench import peers  # here: the peers' clients are optional

        for name, missing, runner in (
            ("etcd", peers.etcd_missing(), peers.run_etcd),
            ("zookeeper", peers.zookeeper_missing(), peers.run_zookeeper),
        ):
            if missing:
                skipped.append(f"{name}: {missing}")
                continue
            say(f"{name} on loopback ...")
            if runner is peers.run_etcd:
                got = peers.run_etcd(
                    procs,
                    ctx,
                    clients,
                    window,
                    opts.seconds,
                    opts.warmup,
                    1000,
                    kinds=("register",),
                )
            else:
                got = runner(procs, ctx, clients, window, opts.seconds, opts.warmup, PER_LOADER)
            rows.extend(r for r in got if "register" in r["workload"])
            procs.stop_all()
    return {
        "rows": rows,
        "skipped": skipped,
        "settings": {
            k: getattr(opts, k) for k in ("seconds", "warmup", "clients", "window", "repeat")
        },
    }


def run(
    procs: Procs,
    ctx: Any,
    opts: argparse.Namespace,
    say: Any = print,
    baselines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return with_log_dir(
        "meshreg-bench-reg-", say, lambda d: _run(d, procs, ctx, opts, say, baselines)
    )


def table(rows: list[dict[str, Any]]) -> str:
    head = ["workload", "registers/s", "p50 ms", "p99 ms", "server CPU", "server us/op",
            "loader CPU", "errors"]  # fmt: skip
    out = [
        [
            r["workload"],
            f"{r['ops_per_second']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['server_cpu_busy']:.0%}",
            f"{r['server_cpu_us_per_op']:.1f}",
            f"{r['loader_cpu_busy']:.0%}",
            r["errors"] + r["lost"],
        ]
        for r in rows
    ]
    return fmt_table(head, out)


def report(result: dict[str, Any], say: Any) -> None:
    say(table(result["rows"]))
    for line in result["skipped"]:
        say(f"  skipped {line}")
    for r in result["rows"]:
        if r["errors"] or r["lost"] or r["stalled"]:
            say(f"  {r['workload']}: errors {r['error_names']}, {r['lost']} lost")


def add_arguments(ap: argparse.ArgumentParser) -> None:
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
    ap.add_argument("--no-cluster", dest="cluster", action="store_false", help="skip 3-node rows")
    ap.add_argument("--no-peers", dest="peers", action="store_false", help="skip etcd, ZooKeeper")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    opts = ap.parse_args(argv)
    install_sigterm()
    ctx = mp.get_context("spawn")
    procs = Procs()
    machine = machine_info()
    say_machine(print, machine)
    try:
        result = run(procs, ctx, opts, print)
    finally:
        procs.stop_all()
    report(result, print)
    print(f"result: {save_result('register', result, machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
