"""Propagation: from a write's acknowledgement to every node and to a remote subscriber, under load.

Run from the repository root::

    python -m bench propagation [--changes K] [--load BEATS_PER_S]

A 3-node cluster (real processes on 127.0.0.1) carries a background load of
``--load`` heartbeats per second spread over services owned by every node.
One subscriber Client per node (each talking only to its own node) watches a
few services; a provider Client alternately registers and deregisters
distinct instances (it sends each write straight to the responsible node,
as the client does once it knows the members).  For each change: the time
from ``register()``/``deregister()`` returning until the push reached the
subscriber on *every* node, and on the slowest node that does not own the
service (the "remote subscriber": the change crossed the replication link and
the remote node's push).  A lone node, no load, is the baseline.

The measurement itself lives in bench/cluster.py (``run_propagation``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

from bench import cluster
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
)
from bench.heartbeat import owned_services
from bench.load import start_background

NODES = 3


def beats_total(nodes: list[NodeProc]) -> int:
    total = 0
    for nd in nodes:
        if nd.alive():
            try:
                total += call(nd.port, "stats", timeout=2.0)["result"]["beats_total"]
            except TimeoutError:
                pass
    return total


def replication_out(nodes: list[NodeProc]) -> tuple[int, int]:
    """(deltas, replication messages carrying them) the nodes have published so far."""
    deltas = messages = 0
    for nd in nodes:
        if nd.alive():
            try:
                stats = call(nd.port, "stats", timeout=2.0)["result"]
            except TimeoutError:
                continue
            deltas += stats.get("replication_out", 0)
            messages += stats.get("replication_messages_out", stats.get("replication_out", 0))
    return deltas, messages


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    copts = cluster.parse_args(
        ["--nodes", str(NODES), "--changes", str(opts.changes), "--warmup-changes", "10"]
    )
    log_dir = tempfile.mkdtemp(prefix="meshreg-bench-prop-")
    rows = []
    try:
        say("baseline: one node, no load ...")
        lone = procs.add(NodeProc(free_port_block(), cluster.node_args(copts, []), log_dir).start())
        lone.wait_ping()
        rows.append(cluster.run_propagation("single node, no load", [lone], copts, 71, say))
        lone.stop()

        nodes, _ = cluster.start_cluster(procs, copts, NODES, log_dir)
        owned = owned_services([n.address for n in nodes], 2)
        targets = [(n.port, owned[n.address]) for n in nodes]

        def under(kind: str, rate: float, label: str, seed: int) -> tuple[dict[str, Any], Any]:
            """One propagation run under background ``kind`` load: the row, and the
            beats (or (deltas, messages)) counted before and after, and the seconds."""
            count: Any = replication_out if kind == "churn" else beats_total
            bg = start_background(procs, ctx, targets, rate, opts.load_instances, kind=kind)
            c0, t0 = count(nodes), time.perf_counter()
            try:
                row = cluster.run_propagation(label, nodes, copts, seed, say)
            finally:
                c1, t1 = count(nodes), time.perf_counter()
                bg.stop()
            return row, (c0, c1, t1 - t0)

        say(f"{NODES}-node cluster; background load {opts.load:,.0f} beats/s ...")
        label = f"{NODES} nodes, {opts.load:,.0f} beats/s background"
        row, (b0, b1, took) = under("beat", opts.load, label, 72)
        row["background_beats_per_second"] = round((b1 - b0) / took)
        rows.append(row)
        if opts.write_load:  # changes, every one replicated: what batching is for
            say(f"background load {opts.write_load:,.0f} changes/s (register/deregister) ...")
            label = f"{NODES} nodes, {opts.write_load:,.0f} changes/s background"
            row, (r0, r1, took) = under("churn", opts.write_load, label, 73)
            row["background_changes_per_second"] = round((r1[0] - r0[0]) / took)
            row["deltas_per_message"] = round((r1[0] - r0[0]) / max(1, r1[1] - r0[1]), 2)
            rows.append(row)
    finally:
        procs.stop_all()
        shutil.rmtree(log_dir, ignore_errors=True)
    return {"rows": rows, "settings": vars(opts)}


def table(rows: list[dict[str, Any]]) -> str:
    head = ["run", "changes", "every node p50", "p99", "max", "remote sub p50", "p99", "max",
            "background beats/s", "changes/s", "deltas/msg", "timeouts"]  # fmt: skip
    out = []
    for r in rows:
        a, m = r["all_nodes_ms"], r["remote_subscriber_ms"]
        out.append(
            [
                r["label"],
                r["changes_measured"],
                f"{a['p50']:.2f}",
                f"{a['p99']:.2f}",
                f"{a['max']:.2f}",
                "-" if not m["n"] else f"{m['p50']:.2f}",
                "-" if not m["n"] else f"{m['p99']:.2f}",
                "-" if not m["n"] else f"{m['max']:.2f}",
                f"{r.get('background_beats_per_second', 0):,}",
                f"{r.get('background_changes_per_second', 0):,}",
                f"{r.get('deltas_per_message', 0):g}" if "deltas_per_message" in r else "-",
                len(r["timeouts"]) + len(r["errors"]),
            ]
        )
    return "milliseconds from the write call's return\n" + fmt_table(head, out)


def report(result: dict[str, Any], say: Any) -> None:
    say(table(result["rows"]))
    for r in result["rows"]:
        if r["timeouts"] or r["errors"]:
            say(f"  {r['label']}: timeouts {r['timeouts'][:3]} errors {r['errors'][:3]}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--changes", type=ranged(int, 2, 100_000), default=200, help="measured changes (200)"
    )
    ap.add_argument(
        "--load",
        type=ranged(float, 100, 1_000_000),
        default=20_000,
        help="background beats/s (20000)",
    )
    ap.add_argument(
        "--write-load",
        type=ranged(float, 0, 1_000_000),
        default=5000,
        help="background changes/s (register/deregister, replicated) in a third run; 0: none"
        " (5000)",
    )
    ap.add_argument(
        "--load-instances",
        type=ranged(int, 1, 100_000),
        default=2000,
        help="background instances per node (2000)",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    opts = ap.parse_args(argv)
    install_sigterm()
    procs = Procs()
    machine = machine_info()
    say_machine(print, machine)
    try:
        result = run(procs, mp.get_context("spawn"), opts, print)
    finally:
        procs.stop_all()
    report(result, print)
    print(f"result: {save_result('propagation', result, machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
