"""``curve``: CURVE vs plain, side by side in one run, each row against a node without a key
and one started with ``--key --acl`` (bench/README.md, "Security").
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import cluster
from bench.common import (
    LOAD_COLUMNS,
    QUIET,
    BenchKeys,
    Curve,
    NodeProc,
    Procs,
    Say,
    Scenario,
    fmt_table,
    free_port_block,
    load_notes,
    make_keys,
    met,
    node_args,
    ratio,
    start_cluster,
)
from bench.load import preload, run_load, run_rows, start_background, start_echo
from bench.runner import run_alone
from bench.throughput import beat_targets, register_targets

MODES = ("plain", "CURVE")
GOAL_LOST = 0.10  # the goal: CURVE costs less than 10% of the beats/s


def _measure_pair(repeat: int, run: Any, paced: bool = False) -> dict[str, dict[str, Any]]:
    """``run(mode)`` for both modes, interleaved ``repeat`` times; the median run of each."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(repeat):
        for mode in MODES:
            runs[mode].append(run(mode))
    return {m: run_rows(len(r), iter(r).__next__, paced) for m, r in runs.items()}


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    """Every row plain and with CURVE: {"rows", "propagation"}."""
    keys = make_keys(log_dir)
    curve: dict[str, Curve | None] = {"plain": None, "CURVE": keys.app}
    clients, window = opts.clients, opts.window
    rows: list[dict[str, Any]] = []

    def add(workload: str, pair: dict[str, dict[str, Any]], **extra: Any) -> None:
        for mode in MODES:
            rows.append({"workload": workload, "security": mode, **extra, **pair[mode]})

    def load(targets: dict[str, Any], pids: dict[str, list[int]], rate: float | None = None,
             echo: bool = False) -> Any:  # fmt: skip
        return lambda mode: run_load(
            procs, ctx, targets[mode], pids[mode], window, opts.seconds, opts.warmup,
            echo=echo, rate=rate, curve=curve[mode],
        )  # fmt: skip

    per_loader = max(1, opts.instances // clients)

    # 1. the raw echo, plain and as a CURVE server
    lifetime = 2 * opts.repeat * (opts.warmup + opts.seconds + 10) + 120
    echo = {
        "plain": start_echo(procs, ctx, lifetime),
        "CURVE": start_echo(procs, ctx, lifetime, keys.server_pair()),
    }
    say("raw zmq echo, plain and CURVE ...")
    targets = {m: beat_targets(echo[m][0], opts, clients) for m in MODES}
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
    targets = {m: beat_targets(node[m].port, opts, clients) for m in MODES}
    add("beat, 1 node", _measure_pair(opts.repeat, load(targets, pids)))
    targets = {m: register_targets(node[m].port, opts) for m in MODES}
    top = _measure_pair(opts.repeat, load(targets, pids))
    add("register, 1 node, max", top)
    rate = top["plain"]["ops_per_second"] * 0.5
    paced = _measure_pair(opts.repeat, load(targets, pids, rate=rate), paced=True)
    add(f"register, 1 node, {rate:,.0f}/s", paced, target_rate=round(rate))
    procs.stop_all()

    # 3. propagation in a 3-node cluster, to a watcher on another node
    prop: dict[str, dict[str, Any]] = {}
    for k, mode in enumerate(MODES if opts.changes else ()):
        prop[mode] = _propagation(procs, ctx, opts, log_dir, keys, mode, 73 + k, say)
    return {"rows": rows, "propagation": prop}


def _propagation(
    procs: Procs, ctx: Any, opts: argparse.Namespace, log_dir: str, keys: BenchKeys, mode: str,
    octet: int, say: Say,
) -> dict[str, Any]:  # fmt: skip
    secure = mode == "CURVE"
    extra = node_args(opts) + (keys.node_args() if secure else [])
    curve = keys.app if secure else None
    try:
        nodes = start_cluster(procs, 3, log_dir, extra, curve)
        say(f"3-node cluster, {mode}: {', '.join(n.address for n in nodes)} ...")
        if opts.load:  # stopped with the nodes
            start_background(procs, ctx, nodes, opts.load, 500, curve=curve)
        kw = keys.client_kwargs() if secure else None
        return cluster.run_propagation(f"3 nodes, {mode}", nodes, opts, octet, say, kw)
    finally:
        procs.stop_all()


def summary(result: dict[str, Any]) -> list[list[str]]:
    """One line per figure: plain, CURVE, CURVE/plain."""
    by = {(r["workload"], r["security"]): r for r in result["rows"]}
    out: list[list[str]] = []
    workloads = list(dict.fromkeys(r["workload"] for r in result["rows"]))
    for w in workloads:
        p, c = by[(w, "plain")], by[(w, "CURVE")]
        # ops/s, then the load columns p50, p99 and server us/op
        for label, key, form in (("ops/s", "ops_per_second", "{:,.0f}"), *LOAD_COLUMNS[:2],
                                 LOAD_COLUMNS[3]):  # fmt: skip
            out.append([w, label, form.format(p[key]), form.format(c[key]), ratio(c[key], p[key])])
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
                        ratio(b, a)])  # fmt: skip
    return out


def lost_share(result: dict[str, Any]) -> float | None:
    """Share of the plain node's beats/s that CURVE loses (negative: it gained)."""
    by = {(r["workload"], r["security"]): r for r in result["rows"]}
    p, c = by.get(("beat, 1 node", "plain")), by.get(("beat, 1 node", "CURVE"))
    if not p or not c or not p["ops_per_second"]:
        return None
    return 1.0 - c["ops_per_second"] / p["ops_per_second"]


def report(result: dict[str, Any], say: Say) -> None:
    head = ["workload", "figure", "plain", "CURVE", "CURVE/plain"]
    say(fmt_table(head, summary(result), right={2, 3, 4}))
    share = lost_share(result)
    if share is not None:
        say(
            f"  beats/s lost with CURVE: {share:.1%} (goal < {GOAL_LOST:.0%}: "
            f"{met(share < GOAL_LOST)})"
        )
    load_notes(result["rows"], say, lambda r: f"{r['workload']} {r['security']}")
    for mode, p in (result.get("propagation") or {}).items():
        if p["timeouts"] or p["errors"]:
            say(f"  propagation {mode}: timeouts {p['timeouts'][:3]} errors {p['errors'][:3]}")


SCENARIOS = (
    Scenario("curve", run, report, "CURVE vs plain: raw echo, beats/s, register p50/p99, "
             "propagation (issue 10)",
             {**cluster.PROP, "seconds": (3.0, 0.5), "warmup": (0.5, 0.2), "changes": (200, 20),
              "load": (0.0, 0.0), "max_seconds": (60.0, 60.0)}),
)  # fmt: skip

if __name__ == "__main__":  # python -m bench.curve
    run_alone("curve")
