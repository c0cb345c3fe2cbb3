"""``python -m bench [NAME ...] [options]``: the options every scenario shares, the
scenarios' registry, and the run: each named scenario (default: the suite) in turn, its
table, ``bench/results/<name>-<date>.json``, then the targets table and
``bench/results/suite-<date>.json``.  Every process started is stopped on the way out
(also on Ctrl-C and SIGTERM); 127.0.0.1 only.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import sys
import textwrap
import time
from typing import Any

from bench.common import (
    Procs,
    Scenario,
    fmt_table,
    install_sigterm,
    machine_info,
    met,
    no_nan,
    parse_rates,
    parse_sizes,
    ranged,
    save_result,
    settings,
    with_log_dir,
)

MODULES = ("baselines", "throughput", "cluster", "scale", "curve", "attacks", "replication",
           "liveness", "beatloop", "config")  # fmt: skip
# what the child processes run (imported once, in the fork server)
CHILD_MODULES = ("bench.load", "bench.attacks", "bench.baselines", "bench.config")
# option -> (default, default under --quick), unless the scenario has its own
DEFAULTS: dict[str, tuple[Any, Any]] = {
    "seconds": (3.0, 1.0), "warmup": (0.5, 0.3), "clients": (2, 2), "window": (128, 128),
    "instances": (1000, 1000), "repeat": (1, 1),
}  # fmt: skip


def scenarios() -> dict[str, Scenario]:
    """Every scenario, in the order a run takes them."""
    out: dict[str, Scenario] = {}
    for module in MODULES:
        for sc in importlib.import_module(f"bench.{module}").SCENARIOS:
            out[sc.name] = sc
    return out


def parser(known: dict[str, Scenario]) -> argparse.ArgumentParser:
    suite = [n for n, sc in known.items() if sc.suite]
    ap = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"scenarios (default {suite})")

    def opt(flag: str, kind: Any, low: float, high: float, text: str, *alias: str) -> None:
        ap.add_argument(flag, *alias, type=ranged(kind, low, high), help=text)

    ap.add_argument("--quick", action="store_true", help="smoke run: short rows, small sizes")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, the rest on stderr")
    opt("--seconds", float, 0.1, 600, "measured seconds per row (3; --quick 1)", "--duration")
    opt("--warmup", float, 0, 60, "unmeasured seconds per row (0.5; --quick 0.3)")
    opt("--clients", int, 1, 64, "load-generator (client) processes (2)")
    opt("--window", int, 1, 10_000, "requests in flight per loader (128)")
    opt("--instances", int, 1, 1_000_000, "instances beaten / watched / per service (1000)")
    opt("--repeat", int, 1, 20, "runs per row, the median (or best) shown (1)")
    ap.add_argument("--no-peers", dest="peers", action="store_false", help="skip etcd/ZooKeeper")
    ap.add_argument("--no-cluster", dest="cluster", action="store_false", help="skip 3-node rows")
    ap.add_argument("--unbatched", action="store_true",
                    help="register: 3-node rows also with --replication-batch 1")  # fmt: skip
    ap.add_argument("--profile-node", metavar="PATH", help="heartbeat: 1-node rows under cProfile")
    opt("--changes", int, 0, 100_000, "propagation changes per run (0: curve skips it)")
    opt("--load", float, 0, 1_000_000, "background beats/s during propagation and failover")
    opt("--write-load", float, 0, 1_000_000, "propagation: background changes/s, third run")
    opt("--load-instances", int, 1, 100_000, "background instances per node")
    ap.add_argument("--sizes", type=parse_sizes, help="scale, liveness: instance counts")
    opt("--loaders", int, 1, 64, "scale: registering processes")
    opt("--nodes", int, 2, 9, "cluster size")
    opt("--services", int, 1, 1000, "services the instances spread over")
    opt("--peer-timeout", float, 0.2, 60, "node --peer-timeout")
    opt("--check-interval", float, 0.1, 60, "node --check-interval")
    opt("--unhealthy-after", float, 1, 600, "node --unhealthy-after")
    opt("--evict-after", float, 1, 1200, "node --evict-after (failover: 2 x unhealthy-after)")
    opt("--beat-interval", float, 0.1, 60, "cluster: providers' beat interval")
    opt("--observe", float, 0.1, 600, "s watched after the kill and the restart")
    opt("--sample-interval", float, 0.01, 5, "s between samples of a survivor")
    opt("--warmup-changes", int, 0, 1000, "unmeasured changes first")
    opt("--prop-services", int, 1, 100, "services the changes cycle over")
    opt("--change-timeout", float, 0.1, 60, "s a change may take to reach every node")
    opt("--max-seconds", float, 1, 3600, "s per propagation run")
    ap.add_argument("--skip-baseline", action="store_true", help="cluster: no single node")
    ap.add_argument("--skip-kill", action="store_true", help="cluster: no kill and restart")
    ap.add_argument(
        "--no-beats", dest="beat_row", action="store_false", help="liveness: no beat row"
    )
    ap.add_argument("--no-single", dest="single", action="store_false",
                    help="liveness: no single-client row")  # fmt: skip
    ap.add_argument("--no-expiry", dest="expiry", action="store_false",
                    help="liveness: no SIGKILL expiry")  # fmt: skip
    ap.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                    help="attacks: H1,M4,...; baselines: etcd or zookeeper; "
                    "liveness: etcd; config: meshreg or etcd")  # fmt: skip
    ap.add_argument("--no-secure", dest="secure", action="store_false",
                    help="attacks: skip the nodes with a key")  # fmt: skip
    opt("--ping-rate", float, 1, 2000, "attacks: bystander pings/s")
    opt("--sub-seconds", float, 0.1, 120, "attacks: H3 duration")
    opt("--slow-seconds", float, 0.1, 300, "attacks: M4 duration")
    opt("--junk-seconds", float, 0.1, 300, "attacks: M2 duration per kind")
    opt("--flood-seconds", float, 0.1, 300, "attacks: M6 duration")
    opt("--m6-services", int, 1, 1_000_000, "attacks: services registered before M6")
    opt("--f2-instances", int, 500, 1_000_000, "attacks: instances of F2's burst")
    ap.add_argument("--share-nodes", action="store_true",
                    help="attacks: one node per kind for every attack (a smoke run: its RSS "
                    "figures carry the earlier attacks')")  # fmt: skip
    opt("--settle", float, 0, 60, "attacks: s after an attack before the 'after' RSS (1)")
    opt("--busy-rate", float, 100, 1_000_000, "attacks: beats/s keeping the node busy in M1")
    opt("--max-attack-seconds", float, 1, 600, "attacks: bound on one attack's sending")
    opt("--deltas", int, 1, 200_000, "replication: deltas per run")
    opt("--beats", int, 1, 200_000, "beatloop: beats per run")
    opt("--data-ids", int, 1, 100_000, "config: data ids (etcd keys) the load cycles over")
    opt("--content-bytes", int, 1, 1_000_000, "config: bytes of each published content")
    opt("--rate", float, 1, 1_000_000, "config: publishes (puts)/s of the paced row")
    opt("--listen-rate", float, 1, 10_000, "config: changes/s of the listener row")
    ap.add_argument("--rates", type=parse_rates,
                    help="config: more paced publish (put) rows, at these rates/s (the knee: "
                    "where p99 leaves the no-load latency), e.g. 500,1000,1500,2000")  # fmt: skip
    dests = {a.dest for a in ap._actions}
    ap.epilog = "scenarios, and their defaults (full/--quick):\n" + "\n".join(
        f"  {n:<12} {sc.about}" + ("" if sc.suite else " [only when named]") + "\n" + textwrap.fill(
            " ".join(f"--{k.replace('_', '-')} {a}" + ("" if a == b else f"/{b}")
                     for k, (a, b) in sc.defaults.items() if k in dests and a is not None),
            width=96, initial_indent=" " * 15, subsequent_indent=" " * 15)
        for n, sc in known.items()
    )  # fmt: skip
    return ap


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Scenario]]:
    known = scenarios()
    ap = parser(known)
    opts = ap.parse_args(argv)
    unknown = [n for n in opts.names if n not in known]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = [sc for n, sc in known.items() if n in opts.names or (not opts.names and sc.suite)]
    return opts, chosen


def options_for(sc: Scenario, opts: argparse.Namespace) -> argparse.Namespace:
    """``opts`` with every option not given set to the scenario's default."""
    own = argparse.Namespace(**vars(opts))
    for key, pair in {**DEFAULTS, **sc.defaults}.items():
        if getattr(own, key, None) is None:
            setattr(own, key, pair[1] if opts.quick else pair[0])
    return own


def _row(result: dict[str, Any] | None, prefix: str) -> dict[str, Any] | None:
    rows = (result or {}).get("rows", [])
    return next((r for r in rows if r.get("workload", "").startswith(prefix)), None)


def _n(loaders: int) -> str:
    return f"{loaders} loader" + ("s" if loaders != 1 else "")


def targets(results: dict[str, Any]) -> list[list[str]]:
    """The issue's targets with the figure measured in this run next to each."""
    out: list[list[str]] = []
    hb = results.get("heartbeat") or {}
    beats = [r for r in hb.get("rows", []) if r["workload"] == "meshreg beat, 1 node"]
    echo = {r["clients"]: r for r in hb.get("rows", []) if r["workload"] == "raw zmq echo"}
    etcd = _row(hb, "etcd lease keep-alive")
    if beats:
        best = max(beats, key=lambda r: r["ops_per_second"])
        figs = ", ".join(f"{r['ops_per_second']:,.0f}/s with {_n(r['clients'])}" for r in beats)
        out.append(["1 node absorbs >= 100,000 beats/s", figs, met(best["ops_per_second"] >= 1e5)])
        ratios = [(r["ops_per_second"] / echo[r["clients"]]["ops_per_second"], r["clients"])
                  for r in beats if r["clients"] in echo]  # fmt: skip
        if ratios:
            figs = ", ".join(f"{x:.2f}x with {_n(c)}" for x, c in ratios)
            out.append([">= 0.5x the raw pyzmq echo ceiling", figs, met(min(ratios)[0] >= 0.5)])
        same = next((r for r in beats if etcd and r["clients"] == etcd["clients"]), None)
        if etcd and same:
            ratio = same["ops_per_second"] / etcd["ops_per_second"]
            fig = f"{ratio:.1f}x ({etcd['ops_per_second']:,.0f}/s, {_n(etcd['clients'])})"
            out.append([">= 5x etcd lease keep-alives/s", fig, met(ratio >= 5)])
        else:
            out.append([">= 5x etcd lease keep-alives/s", "etcd not measured", "-"])
    half = _row(results.get("register"), "meshreg register, 1 node at 50% rate")
    if half:
        p99 = half["p99_ms"]
        out.append(["register p99 < 1 ms at 50% of max rate", f"{p99:.2f} ms", met(p99 < 1.0)])
    prop = results.get("propagation")
    if prop and prop["rows"]:
        loaded = prop["rows"][1:] or prop["rows"]  # under beats, and under changes
        worst = max(max(r["all_nodes_ms"]["p99"], r["remote_subscriber_ms"]["p99"]) for r in loaded)
        out.append(["propagation p99 < 5 ms (every node, remote subscriber)", f"{worst:.2f} ms",
                    met(worst < 5)])  # fmt: skip
    fo = results.get("failover")
    if fo and "kill" in fo:
        k = fo["kill"]
        own, lost = k["all_survivors_see_down_s"], k["ever_missing"] or k["ever_unhealthy"]
        fig = f"{own} s, {'LOST/UNHEALTHY' if lost else 'nothing lost'}"
        out.append(["failover < 5 s, nothing lost", fig,
                    met(own is not None and own < 5 and not lost)])  # fmt: skip
    if results.get("curve"):
        from bench.curve import GOAL_LOST, lost_share

        share = lost_share(results["curve"])
        if share is not None:
            out.append(
                ["CURVE costs < 10% of beats/s", f"{share:.1%} lost", met(share < GOAL_LOST)]
            )
    if results.get("config"):
        from bench.config import config_targets

        out += config_targets(results["config"])
    big = next((r for r in (results.get("scale") or {}).get("rows", []) if r["size"] == 1_000_000),
               None)  # fmt: skip
    if big:
        mb = big["rss_full_mb"]
        out.append(["1,000,000 instances in < 1 GB", f"{mb:,.0f} MB RSS", met(mb < 1000)])
    return out


def main(argv: list[str] | None = None) -> int:
    opts, chosen = parse_args(argv)
    install_sigterm()
    out = sys.stderr if opts.json else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    # Children (loaders, echo, bystanders; not liveness's clients) are forked from one fork
    # server that imported their modules once and never made a ZeroMQ context or a thread:
    # as clean as spawned ones, without an interpreter start and imports each (1-2 s on a
    # busy 2-core machine, every row).
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(CHILD_MODULES))
    procs = Procs()
    machine = machine_info()
    say("machine:")
    for k, v in machine.items():
        say(f"  {k:<9} {v}")
    given = {k: v for k, v in vars(opts).items() if v not in (None, False, True) and k != "names"}
    say(f"scenarios: {', '.join(sc.name for sc in chosen)}; options given: {given}")
    results: dict[str, Any] = {}
    failed: list[str] = []
    t0 = time.monotonic()
    for sc in chosen:
        say(f"\n== {sc.name} " + "=" * (60 - len(sc.name)))
        own = options_for(sc, opts)
        # heartbeat and register reuse the baselines' rows of this run
        own.baseline_rows = results["baselines"]["rows"] if "baselines" in results else None
        try:
            run = lambda d, sc=sc, own=own: sc.run(procs, ctx, own, say, d)  # noqa: E731
            results[sc.name] = with_log_dir(f"meshreg-bench-{sc.name}-", say, run, sc.problem)
            results[sc.name].setdefault("settings", settings(own))
            sc.report(results[sc.name], say)
            failed += [f"{sc.name}: {line}" for line in results[sc.name].get("failed", [])]
            say(f"result: {save_result(sc.name, results[sc.name], machine)}")
        except KeyboardInterrupt:
            say("interrupted; stopping everything")
            return 130
        except Exception as exc:  # report and go on with the next scenario
            failed.append(f"{sc.name}: {type(exc).__name__}: {exc}")
            say(f"{sc.name} FAILED: {type(exc).__name__}: {exc}")
        finally:
            procs.stop_all()
    rows = targets(results)
    say("\n== targets " + "=" * 53)
    if rows:
        say(fmt_table(["target", "measured", "result"], rows, right=set()))
    for line in failed:
        say(f"  failed: {line}")
    total = time.monotonic() - t0
    doc = {"results": results, "targets": rows, "failed": failed, "seconds": round(total, 1)}
    say(f"took {total:.0f}s; all results: {save_result('suite', doc, machine)}")
    if opts.json:
        print(json.dumps(no_nan({"machine": machine, **doc}), indent=2, default=str))
    return 1 if failed else 0


def run_alone(name: str) -> None:
    """``python -m bench.NAME [options]``: the same as ``python -m bench NAME [options]``."""
    sys.exit(main([name, *sys.argv[1:]]))
