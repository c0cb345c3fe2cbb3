"""CURVE vs plain, side by side in one run: beats/s, register latency, propagation.

Run from the repository root::

    python -m bench curve [--seconds S] [--clients C] [--window W] [--changes K]
    python -m bench.curve --repeat 3

Every row is measured twice in the same run, against a node without a key
(``plain``) and against one started with ``--key cluster.key --acl acl.toml``
(``CURVE``; the loaders use a client key the ACL lets write and read), the two
runs of a row back to back (with ``--repeat``, interleaved; the median run
shown):

* ``raw zmq echo``: the bare ROUTER of the heartbeat benchmark, fed the same
  beat bytes, plain and as a CURVE server (no ZAP handler): what encryption
  costs pyzmq itself, the baseline of the beat rows;
* ``beat, 1 node``: ``beat`` for ``--instances`` registered instances, as in
  the heartbeat benchmark (the issue's goal: CURVE loses less than 10%);
* ``register, 1 node``: at the node's maximum rate, then paced at 50% of the
  plain node's maximum (the same rate for both, so that p50/p99 compare);
* ``propagation``: a 3-node cluster; a provider registers and deregisters
  through one node, subscribers on every node; the time from the call's
  return to the push on the slowest node that does not own the service (a
  watcher on another node: the change crossed the replication link) and on
  every node (bench/cluster.py ``run_propagation``).

Keys are made with ``meshreg keygen`` in a temporary directory for the run.
Everything binds and connects to 127.0.0.1; every process started is stopped
on the way out; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from typing import Any

from bench import cluster
from bench.common import (
    BenchKeys,
    Curve,
    NodeProc,
    Procs,
    fmt_table,
    free_port_block,
    install_sigterm,
    machine_info,
    make_keys,
    ranged,
    save_result,
    say_machine,
    with_log_dir,
)
from bench.heartbeat import QUIET, owned_services, start_cluster
from bench.load import preload, run_load, run_rows, start_background, start_echo
from bench.register import PER_LOADER

MODES = ("plain", "CURVE")
GOAL_LOST = 0.10  # the goal: CURVE costs less than 10% of the beats/s
SUITE_OPTIONS = ("seconds", "warmup", "clients", "window", "instances", "repeat", "changes")


def _measure_pair(repeat: int, run: Any, paced: bool = False) -> dict[str, dict[str, Any]]:
    """``run(mode)`` for both modes, interleaved ``repeat`` times; the median run of each."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(repeat):
        for mode in MODES:
            runs[mode].append(run(mode))
    return {m: run_rows(len(r), iter(r).__next__, paced) for m, r in runs.items()}


def _run(
    log_dir: str, procs: Procs, ctx: Any, opts: argparse.Namespace, say: Any
) -> dict[str, Any]:
    keys = make_keys(log_dir)
    curve: dict[str, Curve | None] = {"plain": None, "CURVE": keys.app}
    clients, window = opts.clients, opts.window
    rows: list[dict[str, Any]] = []

    def add(workload: str, pair: dict[str, dict[str, Any]], **extra: Any) -> None:
        for mode in MODES:
            rows.append({"workload": workload, "security": mode, **extra, **pair[mode]})

    def load(targets: list[Any], pids: dict[str, list[int]], rate: float | None = None,
             echo: bool = False) -> Any:  # fmt: skip
        return lambda mode: run_load(
            procs, ctx, targets[mode], pids[mode], window, opts.seconds, opts.warmup,
            echo=echo, rate=rate, curve=curve[mode],
        )  # fmt: skip

    per_loader = max(1, opts.instances // clients)

    def beats(port: int) -> list[Any]:
        return [(port, ("beat", per_loader, None, c * per_loader)) for c in range(clients)]

    # 1. the raw echo, plain and as a CURVE server
    lifetime = 2 * opts.repeat * (opts.warmup + opts.seconds + 10) + 120
    echo = {
        "plain": start_echo(procs, ctx, lifetime),
        "CURVE": start_echo(procs, ctx, lifetime, keys.server_pair()),
    }
    say("raw zmq echo, plain and CURVE ...")
    targets = {m: beats(echo[m][0]) for m in MODES}
    pids = {m: [echo[m][1]] for m in MODES}
    add("raw zmq echo", _measure_pair(opts.repeat, load(targets, pids, echo=True)))
    procs.stop_children()  # the echo servers must not compete with the nodes

    # 2. one node of each kind: beats, then registrations
    node = {
        "plain": NodeProc(free_port_block(), QUIET, log_dir),
        "CURVE": NodeProc(free_port_block(), QUIET + keys.node_args(), log_dir, curve=keys.app),
    }
    for mode in MODES:
        procs.add(node[mode].start())
    for mode in MODES:
        node[mode].wait_ping()
        preload(node[mode].port, "register", per_loader * clients, curve=curve[mode])
    say(f"meshreg nodes: plain {node['plain'].address}, CURVE {node['CURVE'].address} ...")
    pids = {m: [node[m].pid] for m in MODES}
    targets = {m: beats(node[m].port) for m in MODES}
    add("beat, 1 node", _measure_pair(opts.repeat, load(targets, pids)))
    targets = {
        m: [(node[m].port, ("register", PER_LOADER, None, c * PER_LOADER)) for c in range(clients)]
        for m in MODES
    }
    top = _measure_pair(opts.repeat, load(targets, pids))
    add("register, 1 node, max", top)
    rate = top["plain"]["ops_per_second"] * 0.5
    paced = _measure_pair(opts.repeat, load(targets, pids, rate=rate), paced=True)
    add(f"register, 1 node, {rate:,.0f}/s", paced, target_rate=round(rate))
    procs.stop_all()

    # 3. propagation in a 3-node cluster, to a watcher on another node
    prop: dict[str, dict[str, Any]] = {}
    if opts.changes:
        copts = cluster.parse_args(
            ["--changes", str(opts.changes), "--warmup-changes", "10", "--max-seconds", "60"]
        )
        for k, mode in enumerate(MODES):
            prop[mode] = _propagation(procs, ctx, opts, copts, log_dir, keys, mode, 73 + k, say)
    return {
        "rows": rows,
        "propagation": prop,
        "settings": {k: getattr(opts, k) for k in (*SUITE_OPTIONS, "load")},
    }


def _propagation(
    procs: Procs,
    ctx: Any,
    opts: argparse.Namespace,
    copts: argparse.Namespace,
    log_dir: str,
    keys: BenchKeys,
    mode: str,
    octet: int,
    say: Any,
) -> dict[str, Any]:
    secure = mode == "CURVE"
    extra = cluster.node_args(copts, []) + (keys.node_args() if secure else [])
    curve = keys.app if secure else None
    try:
        nodes = start_cluster(procs, 3, log_dir, extra, curve)
        say(f"3-node cluster, {mode}: {', '.join(n.address for n in nodes)} ...")
        bg = None
        if opts.load:
            owned = owned_services([n.address for n in nodes], 2)
            bg = start_background(
                procs, ctx, [(n.port, owned[n.address]) for n in nodes], opts.load, 500,
                curve=curve,
            )  # fmt: skip
        try:
            kw = keys.client_kwargs() if secure else None
            return cluster.run_propagation(f"3 nodes, {mode}", nodes, copts, octet, say, kw)
        finally:
            if bg is not None:
                bg.stop()
    finally:
        procs.stop_all()


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    """Every row plain and with CURVE: {"rows", "propagation", "settings"}."""
    return with_log_dir("meshreg-bench-curve-", say, lambda d: _run(d, procs, ctx, opts, say))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def summary(result: dict[str, Any]) -> list[list[str]]:
    """One line per figure: plain, CURVE, CURVE/plain."""
    by = {(r["workload"], r["security"]): r for r in result["rows"]}
    out: list[list[str]] = []
    workloads = list(dict.fromkeys(r["workload"] for r in result["rows"]))
    for w in workloads:
        p, c = by[(w, "plain")], by[(w, "CURVE")]
        figures = [
            ("ops/s", "ops_per_second", "{:,.0f}"),
            ("p50 ms", "p50_ms", "{:.2f}"),
            ("p99 ms", "p99_ms", "{:.2f}"),
        ]
        figures.append(("server us/op", "server_cpu_us_per_op", "{:.1f}"))
        for label, key, form in figures:
            out.append([w, label, form.format(p[key]), form.format(c[key]), _ratio(c[key], p[key])])
    echo = {m: by.get(("raw zmq echo", m)) for m in MODES}
    beat = {m: by.get(("beat, 1 node", m)) for m in MODES}
    if all(echo.values()) and all(beat.values()):
        vs = [beat[m]["ops_per_second"] / echo[m]["ops_per_second"] for m in MODES]
        out.append(["beat vs its raw echo", "ratio", f"{vs[0]:.2f}x", f"{vs[1]:.2f}x", "-"])
    prop = result.get("propagation") or {}
    if all(m in prop for m in MODES):  # the slowest node not owning the service
        for q in ("p50", "p99"):
            a, b = (prop[m]["remote_subscriber_ms"][q] for m in MODES)
            out.append(["propagation, watcher on another node", f"{q} ms", f"{a:.2f}", f"{b:.2f}",
                        _ratio(b, a)])  # fmt: skip
    return out


def lost(result: dict[str, Any]) -> float | None:
    """Share of the plain node's beats/s that CURVE loses (negative: it gained)."""
    by = {(r["workload"], r["security"]): r for r in result["rows"]}
    p, c = by.get(("beat, 1 node", "plain")), by.get(("beat, 1 node", "CURVE"))
    if not p or not c or not p["ops_per_second"]:
        return None
    return 1.0 - c["ops_per_second"] / p["ops_per_second"]


def report(result: dict[str, Any], say: Any) -> None:
    head = ["workload", "figure", "plain", "CURVE", "CURVE/plain"]
    say(fmt_table(head, summary(result), right={2, 3, 4}))
    share = lost(result)
    if share is not None:
        met = "met" if share < GOAL_LOST else "NOT MET"
        say(f"  beats/s lost with CURVE: {share:.1%} (goal < {GOAL_LOST:.0%}: {met})")
    for r in result["rows"]:
        if r["errors"] or r["lost"] or r["stalled"]:
            say(
                f"  {r['workload']} {r['security']}: errors {r['error_names']}, "
                f"{r['lost']} lost, stalled={r['stalled']}"
            )
    for mode, p in (result.get("propagation") or {}).items():
        if p["timeouts"] or p["errors"]:
            say(f"  propagation {mode}: timeouts {p['timeouts'][:3]} errors {p['errors'][:3]}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true", help="smoke run: 0.5 s rows, 20 changes")
    ap.add_argument("--seconds", type=ranged(float, 0.1, 600), default=None,
                    help="measured seconds per row (3; --quick 0.5)")  # fmt: skip
    ap.add_argument("--warmup", type=ranged(float, 0, 60), default=0.5,
                    help="unmeasured seconds per row (0.5)")  # fmt: skip
    ap.add_argument("--clients", type=ranged(int, 1, 64), default=2,
                    help="load-generator processes (2)")  # fmt: skip
    ap.add_argument("--window", type=ranged(int, 1, 10_000), default=128,
                    help="requests in flight per loader (128)")  # fmt: skip
    ap.add_argument("--instances", type=ranged(int, 1, 1_000_000), default=1000,
                    help="instances beaten (1000)")  # fmt: skip
    ap.add_argument("--repeat", type=ranged(int, 1, 20), default=1,
                    help="runs per row and mode, interleaved, the median shown (1)")  # fmt: skip
    ap.add_argument("--changes", type=ranged(int, 0, 100_000), default=None,
                    help="propagation changes per mode, 0 skips it (200; --quick 20)")  # fmt: skip
    ap.add_argument("--load", type=ranged(float, 0, 1_000_000), default=0,
                    help="background beats/s during propagation (0: none)")  # fmt: skip


def finish_args(opts: argparse.Namespace) -> argparse.Namespace:
    """The defaults that depend on --quick."""
    if opts.seconds is None:
        opts.seconds = 0.5 if opts.quick else 3.0
    if opts.changes is None:
        opts.changes = 20 if opts.quick else 200
    if opts.changes == 1:
        opts.changes = 2
    if opts.quick:
        opts.warmup = min(opts.warmup, 0.2)
    return opts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.curve", description=__doc__.split("\n")[0])
    add_arguments(ap)
    return finish_args(ap.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    install_sigterm()
    procs = Procs()
    machine = machine_info()
    say_machine(print, machine)
    print(f"settings: {vars(opts)}")
    try:
        result = run(procs, mp.get_context("spawn"), opts, print)
    finally:
        procs.stop_all()
    report(result, print)
    print(f"result: {save_result('curve', result, machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
