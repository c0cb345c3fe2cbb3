"""Failover: SIGKILL one node of a loaded 3-node cluster; survivors take over, nothing lost.

Run from the repository root::

    python -m bench failover [--instances M] [--load BEATS_PER_S]

A 3-node cluster (real processes on 127.0.0.1) carries a background load of
``--load`` heartbeats per second over services owned by every node.  M
instances, registered through a Client whose server list starts with the
victim, beat every second.  The node responsible for most of their services
is SIGKILLed.  Every survivor is sampled every 50 ms (its cluster view and the
full listing of every service) and watched by a subscriber.  Figures:

* when the survivors' views mark the victim down: from then on the rendezvous
  hash runs over the survivors only, so they own its services;
* whether any of the M instances was ever missing or unhealthy on a
  survivor (the "nothing lost" check), and when the provider failed over;
* the restarted node: answers, reports ready (caught up), lists everything.

The node settings are shortened so that the run is short: the peer timeout
is 1 s (default 3 s), health sweeps every 1 s, unhealthy after 6 s (15 s).
The measurement itself lives in bench/cluster.py (``run_kill``).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import shutil
import sys
import tempfile
from typing import Any

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

from bench import cluster
from bench.common import (
    Procs,
    fmt_table,
    install_sigterm,
    machine_info,
    ranged,
    save_result,
    say_machine,
)
from bench.heartbeat import owned_services
from bench.load import start_background

NODES = 3


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    copts = cluster.parse_args(
        [
            "--nodes", str(NODES),
            "--instances", str(opts.instances),
            "--services", str(opts.services),
            "--peer-timeout", str(opts.peer_timeout),
            "--unhealthy-after", str(opts.unhealthy_after),
            "--evict-after", str(2 * opts.unhealthy_after),
            "--observe", str(opts.unhealthy_after + 2),
        ]
    )  # fmt: skip
    log_dir = tempfile.mkdtemp(prefix="meshreg-bench-failover-")
    client_log = cluster.ClientLog()
    mlog = logging.getLogger("meshreg")
    mlog.addHandler(client_log)
    propagate, mlog.propagate = mlog.propagate, False  # recorded, reported below
    failed = True
    try:
        nodes, _ = cluster.start_cluster(procs, copts, NODES, log_dir)
        owned = owned_services([n.address for n in nodes], 2)
        say(f"{NODES}-node cluster; background load {opts.load:,.0f} beats/s ...")
        bg = start_background(
            procs, ctx, [(n.port, owned[n.address]) for n in nodes], opts.load, opts.load_instances
        )
        try:
            result = cluster.run_kill(nodes, copts, client_log, say)
        finally:
            bg.stop()
        k = result["kill"]
        failed = bool(k["ever_missing"] or k["ever_unhealthy"])
        result["log_events_since_kill"] = cluster.interesting_log_lines(nodes, k["kill_wall"])
        result["settings"] = {**vars(opts), "node_flags": cluster.node_args(copts, [])}
    finally:
        procs.stop_all()
        mlog.removeHandler(client_log)
        mlog.propagate = propagate
        if failed:
            say(f"node logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return result


def summary(r: dict[str, Any]) -> list[list[Any]]:
    k, s = r["kill"], r.get("restart", {})
    return [
        ["survivors own the victim's services (all see it down)", k["all_survivors_see_down_s"]],
        ["provider client failed over", k["provider_failover_s"]],
        ["instance ever missing on a survivor", "yes" if k["ever_missing"] else "no"],
        ["instance ever unhealthy on a survivor", "yes" if k["ever_unhealthy"] else "no"],
        ["restarted node answers ping", s.get("answers_ping_s")],
        ["restarted node ready (caught up)", s.get("ready_s")],
        ["restarted node lists all M instances", s.get("lists_all_healthy_s")],
    ]


def report(result: dict[str, Any], say: Any) -> None:
    say(
        f"victim {result['victim']} (responsible for {result['victim_services']} of "
        f"{result['services']} services), {result['instances']} instances"
    )
    say(fmt_table(["event", "seconds after the kill / the restart"], summary(result)))
    say("detail:")
    say(cluster.kill_table(result))
    for line in result.get("log_events_since_kill", [])[:30]:
        say("  " + line)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--instances", type=ranged(int, 1, 10_000), default=200, help="watched instances (200)"
    )
    ap.add_argument("--services", type=ranged(int, 1, 1000), default=20, help="their services (20)")
    ap.add_argument(
        "--load",
        type=ranged(float, 100, 1_000_000),
        default=20_000,
        help="background beats/s (20000)",
    )
    ap.add_argument(
        "--load-instances",
        type=ranged(int, 1, 100_000),
        default=2000,
        help="background instances per node (2000)",
    )
    ap.add_argument(
        "--peer-timeout", type=ranged(float, 0.2, 60), default=1.0, help="node --peer-timeout (1)"
    )
    ap.add_argument(
        "--unhealthy-after", type=ranged(float, 1, 600), default=6.0, help="node setting (6)"
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
    print(f"result: {save_result('failover', result, machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
