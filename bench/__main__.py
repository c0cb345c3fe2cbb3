"""The whole benchmark suite in one command: ``python -m bench`` (or ``bin/meshreg-bench``).

    python -m bench                      # all six, short default durations (about 5 minutes)
    python -m bench heartbeat register   # some of them
    python -m bench --quick              # a smoke run: 1 s rows, 100k-instance scale only
    python -m bench scale --sizes 100000,1000000
    python -m bench curve attacks        # not in the default set: CURVE vs plain, attack replay
    python -m bench replication          # replication CPU per delta, one per message vs batched

Order: ``baselines`` (etcd and ZooKeeper, when installed), ``heartbeat`` (with
the raw ZeroMQ ceiling), ``register``, ``propagation``, ``failover``,
``scale``.  Each prints its table and writes ``bench/results/<name>-<date>.json``;
the suite also writes ``bench/results/suite-<date>.json`` with every result and
the targets table printed at the end.  Every process started is stopped on
the way out (also on Ctrl-C and SIGTERM); 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from typing import Any

from bench import attacks, curve, failover, heartbeat, liveness, propagation, register, scale
from bench.common import (
    Procs,
    fmt_table,
    install_sigterm,
    machine_info,
    ranged,
    save_result,
    say_machine,
)

NAMES = ("baselines", "heartbeat", "register", "propagation", "failover", "scale")
EXTRA = ("curve", "attacks", "replication", "liveness")  # run only when named (issues 10, 13)


def run_baselines(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Any) -> dict[str, Any]:
    """etcd and ZooKeeper with the same client processes and window as meshreg's rows."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        from bench import peers
    except ImportError as exc:  # the peers' Python clients are not installed
        return {"rows": [], "skipped": [f"etcd, zookeeper: {exc}; run bin/meshreg-bench-peers"]}
    for name, missing, runner in (
        ("etcd", peers.etcd_missing(), peers.run_etcd),
        ("zookeeper", peers.zookeeper_missing(), peers.run_zookeeper),
    ):
        if missing:
            skipped.append(f"{name}: {missing}")
            continue
        say(f"{name} on loopback ...")
        try:
            rows.extend(
                runner(
                    procs, ctx, opts.clients, opts.window, opts.seconds, opts.warmup, opts.instances
                )
            )
        except Exception as exc:  # a peer failing must not cost meshreg's own figures
            skipped.append(f"{name}: failed: {type(exc).__name__}: {exc}")
        finally:
            procs.stop_all()
    return {"rows": rows, "skipped": skipped}


def baselines_table(result: dict[str, Any]) -> str:
    head = ["workload", "ops/s", "p50 ms", "p99 ms", "server CPU", "server us/op", "loader CPU"]
    out = [
        [
            r["workload"],
            f"{r['ops_per_second']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['server_cpu_busy']:.0%}",
            f"{r['server_cpu_us_per_op']:.1f}",
            f"{r['loader_cpu_busy']:.0%}",
        ]
        for r in result["rows"]
    ]
    lines = [fmt_table(head, out)] if out else []
    lines += [f"  skipped {s}" for s in result["skipped"]]
    return "\n".join(lines)


def _row(result: dict[str, Any] | None, prefix: str) -> dict[str, Any] | None:
    if not result:
        return None
    return next((r for r in result["rows"] if r.get("workload", "").startswith(prefix)), None)


def targets(results: dict[str, Any]) -> list[list[str]]:
    """The issue's targets with the figure measured in this run next to each."""
    out: list[list[str]] = []
    hb = results.get("heartbeat")
    beats = [r for r in (hb or {}).get("rows", []) if r["workload"] == "meshreg beat, 1 node"]
    echo = {r["clients"]: r for r in (hb or {}).get("rows", []) if r["workload"] == "raw zmq echo"}
    etcd = _row(hb, "etcd lease keep-alive")
    if beats:
        best = max(beats, key=lambda r: r["ops_per_second"])
        figs = ", ".join(f"{r['ops_per_second']:,.0f}/s with {_n(r['clients'])}" for r in beats)
        out.append(["1 node absorbs >= 100,000 beats/s", figs, _met(best["ops_per_second"] >= 1e5)])
        ratios = [
            (r["ops_per_second"] / echo[r["clients"]]["ops_per_second"], r["clients"])
            for r in beats
            if r["clients"] in echo
        ]
        if ratios:
            figs = ", ".join(f"{x:.2f}x with {_n(c)}" for x, c in ratios)
            out.append([">= 0.5x the raw pyzmq echo ceiling", figs, _met(min(ratios)[0] >= 0.5)])
        same = next((r for r in beats if etcd and r["clients"] == etcd["clients"]), None)
        if etcd and same:
            ratio = same["ops_per_second"] / etcd["ops_per_second"]
            fig = f"{ratio:.1f}x ({etcd['ops_per_second']:,.0f}/s, {_n(etcd['clients'])})"
            out.append([">= 5x etcd lease keep-alives/s", fig, _met(ratio >= 5)])
        else:
            out.append([">= 5x etcd lease keep-alives/s", "etcd not measured", "-"])
    half = _row(results.get("register"), "meshreg register, 1 node at 50% rate")
    if half:
        p99 = half["p99_ms"]
        out.append(["register p99 < 1 ms at 50% of max rate", f"{p99:.2f} ms", _met(p99 < 1.0)])
    prop = results.get("propagation")
    if prop and prop["rows"]:
        loaded = prop["rows"][1:] or prop["rows"]  # under beats, and under changes
        worst = max(max(r["all_nodes_ms"]["p99"], r["remote_subscriber_ms"]["p99"]) for r in loaded)
        out.append(
            [
                "propagation p99 < 5 ms (every node, remote subscriber)",
                f"{worst:.2f} ms",
                _met(worst < 5),
            ]
        )
    fo = results.get("failover")
    if fo and "kill" in fo:
        k = fo["kill"]
        own = k["all_survivors_see_down_s"]
        lost = k["ever_missing"] or k["ever_unhealthy"]
        fig = f"{own} s, {'LOST/UNHEALTHY' if lost else 'nothing lost'}"
        out.append(
            ["failover < 5 s, nothing lost", fig, _met(own is not None and own < 5 and not lost)]
        )
    share = curve.lost(results["curve"]) if results.get("curve") else None
    if share is not None:
        fig = f"{share:.1%} lost"
        out.append(["CURVE costs < 10% of beats/s", fig, _met(share < curve.GOAL_LOST)])
    sc = results.get("scale")
    if sc:
        big = next((r for r in sc["rows"] if r["size"] == 1_000_000), None)
        if big:
            mb = big["rss_full_mb"]
            out.append(["1,000,000 instances in < 1 GB", f"{mb:,.0f} MB RSS", _met(mb < 1000)])
    return out


def _n(loaders: int) -> str:
    return f"{loaders} loader" + ("s" if loaders != 1 else "")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default all): {', '.join(NAMES)}; "
        f"only when named: {', '.join(EXTRA)}",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: short rows, small scale")
    ap.add_argument("--seconds", type=ranged(float, 0.1, 600), default=None,
                    help="measured seconds per row (3; --quick 1)")  # fmt: skip
    ap.add_argument("--warmup", type=ranged(float, 0, 60), default=0.5,
                    help="unmeasured seconds per row (0.5)")  # fmt: skip
    ap.add_argument("--clients", type=ranged(int, 1, 64), default=2,
                    help="load-generator processes (2)")  # fmt: skip
    ap.add_argument("--window", type=ranged(int, 1, 10_000), default=128,
                    help="requests in flight per loader (128)")  # fmt: skip
    ap.add_argument("--instances", type=ranged(int, 1, 1_000_000), default=1000,
                    help="instances beaten (1000)")  # fmt: skip
    ap.add_argument("--repeat", type=ranged(int, 1, 20), default=1,
                    help="runs per row, the median run shown (1)")  # fmt: skip
    ap.add_argument("--changes", type=ranged(int, 2, 100_000), default=None,
                    help="propagation changes (200; --quick 40)")  # fmt: skip
    ap.add_argument("--load", type=ranged(float, 100, 1_000_000), default=20_000,
                    help="background beats/s in propagation and failover (20000)")  # fmt: skip
    ap.add_argument("--write-load", type=ranged(float, 0, 1_000_000), default=5000,
                    help="propagation: background changes/s, third run (5000)")  # fmt: skip
    ap.add_argument("--sizes", type=scale.parse_sizes, default=None,
                    help="scale: instance counts (100000,1000000; --quick 20000)")  # fmt: skip
    ap.add_argument("--no-peers", dest="peers", action="store_false", help="skip etcd/ZooKeeper")
    opts = ap.parse_args(argv)
    unknown = [n for n in opts.names if n not in NAMES + EXTRA]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES + EXTRA)}")
    opts.names = [n for n in NAMES + EXTRA if n in opts.names or (not opts.names and n in NAMES)]
    if opts.seconds is None:
        opts.seconds = 1.0 if opts.quick else 3.0
    if opts.changes is None:
        opts.changes = 40 if opts.quick else 200
    opts.size_list = opts.sizes or ((20_000,) if opts.quick else (100_000, 1_000_000))
    if opts.quick:
        opts.warmup = min(opts.warmup, 0.3)
    # what the individual benchmarks expect
    opts.cluster = True
    opts.load_instances = 500 if opts.quick else 2000
    opts.services, opts.peer_timeout, opts.unhealthy_after = 20, 1.0, 6.0
    opts.fo_instances = 50 if opts.quick else 200
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    install_sigterm()
    ctx = mp.get_context("spawn")
    procs = Procs()
    machine = machine_info()
    say = print
    say_machine(say, machine)
    say(
        f"suite: {', '.join(opts.names)}; clients={opts.clients} window={opts.window} "
        f"seconds={opts.seconds} warmup={opts.warmup}"
    )
    results: dict[str, Any] = {}
    failed: list[str] = []
    t0 = time.monotonic()
    for name in opts.names:
        say(f"\n== {name} " + "=" * (60 - len(name)))
        try:
            if name == "baselines":
                if not opts.peers:
                    results[name] = {
                        "rows": [],
                        "skipped": ["etcd, zookeeper: not run (--no-peers)"],
                    }
                else:
                    results[name] = run_baselines(procs, ctx, opts, say)
                say(baselines_table(results[name]))
            elif name == "heartbeat":
                base = results.get("baselines", {}).get("rows") if "baselines" in results else None
                results[name] = heartbeat.run(procs, ctx, opts, say, baselines=base)
                heartbeat.report(results[name], say)
            elif name == "register":
                base = results.get("baselines", {}).get("rows") if "baselines" in results else None
                results[name] = register.run(procs, ctx, opts, say, baselines=base)
                register.report(results[name], say)
            elif name == "propagation":
                results[name] = propagation.run(procs, ctx, opts, say)
                propagation.report(results[name], say)
            elif name == "failover":
                fo = argparse.Namespace(**{**vars(opts), "instances": opts.fo_instances})
                results[name] = failover.run(procs, ctx, fo, say)
                failover.report(results[name], say)
            elif name == "curve":
                cv = curve.parse_args(["--quick"] if opts.quick else [])
                for k in curve.SUITE_OPTIONS:  # the suite's settings, not curve's own
                    setattr(cv, k, getattr(opts, k))
                results[name] = curve.run(procs, ctx, cv, say)
                curve.report(results[name], say)
            elif name == "liveness":  # its own --clients etc.: python -m bench.liveness
                lv = liveness.parse_args(["--quick"] if opts.quick else [])
                if opts.sizes:
                    lv.sizes = opts.sizes
                results[name] = liveness.run(procs, ctx, lv, say)
                liveness.report(results[name], say)
            elif name == "attacks":
                results[name] = attacks.run(
                    procs, ctx, attacks.parse_args(["--quick"] if opts.quick else []), say
                )
                attacks.report(results[name], say)
                failed += [f"attacks: {line}" for line in results[name]["failed"]]
            elif name == "replication":
                from bench import replication  # here: it needs this version's meshreg

                rp = argparse.Namespace(deltas=5000 if opts.quick else 20_000, repeat=opts.repeat)
                results[name] = replication.run(rp, say)
                say(replication.table(results[name]["rows"]))
            elif name == "scale":
                results[name] = scale.run(
                    procs, ctx, sizes=opts.size_list, seconds=opts.seconds, warmup=opts.warmup,
                    clients=opts.clients, window=opts.window, say=say,
                )  # fmt: skip
                scale.report(results[name], say)
            say(f"result: {save_result(name, results[name], machine)}")
        except KeyboardInterrupt:
            say("interrupted; stopping everything")
            procs.stop_all()
            return 130
        except Exception as exc:  # report and go on with the next benchmark
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
            say(f"{name} FAILED: {type(exc).__name__}: {exc}")
        finally:
            procs.stop_all()
    say("\n== targets " + "=" * 53)
    rows = targets(results)
    if rows:
        say(fmt_table(["target", "measured", "result"], rows, right=set()))
    for line in failed:
        say(f"  failed: {line}")
    total = time.monotonic() - t0
    path = save_result("suite", {"results": results, "targets": rows, "failed": failed,
                                 "seconds": round(total, 1)}, machine)  # fmt: skip
    say(f"suite took {total:.0f}s; all results: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
