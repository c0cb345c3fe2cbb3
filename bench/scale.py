"""``scale``: resident memory of one node holding N instances, registrations/s and the beat
rate over all N (bench/README.md).  Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import (
    MB,
    OTHER_CPU_WARN,
    Procs,
    Say,
    Scenario,
    collect,
    rss_bytes,
    settings,
    stats,
    table,
    wait_until,
)
from bench.load import run_load, start_loaders

PER_SERVICE = 100  # instances per service: N / 100 services
# Nothing turns unhealthy or is evicted during a run (a day); the sweep still runs
# every 5 s (the default check interval): it is part of what a big table costs.
QUIET = ["--unhealthy-after", "86400", "--evict-after", "86400"]
REGISTER_SECONDS = 300.0  # bound on registering one size (1M takes well under a minute)
COUNT_SECONDS = 60.0  # bound on the node's stats showing every instance
SETTLE_SECONDS = 10.0  # bound on the RSS settling after registration
SETTLE_INTERVAL = 0.25  # s between RSS reads while settling
SETTLE_TOLERANCE = 0.005  # RSS is settled when two reads differ by less than this share


def slices(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (first, count) slices covering 0 .. n-1 (the last takes the remainder)."""
    parts = max(1, min(parts, n))
    size = n // parts
    return [(k * size, size if k < parts - 1 else n - k * size) for k in range(parts)]


def settled_rss(pid: int) -> int:
    """The RSS of ``pid`` once two reads ``SETTLE_INTERVAL`` apart agree (or at the deadline)."""
    last = [rss_bytes(pid)]

    def steady() -> bool:
        before, last[0] = last[0], rss_bytes(pid)
        return abs(last[0] - before) <= SETTLE_TOLERANCE * max(before, 1)

    wait_until(steady, SETTLE_SECONDS, SETTLE_INTERVAL)
    return last[0]


def register_parallel(
    procs: Procs, ctx: Any, port: int, n: int, services: tuple[str, ...], loaders: int,
    window: int,
) -> float:  # fmt: skip
    """Register instances 0 .. n-1 from ``loaders`` processes at once; seconds from go to
    done (the templates are built before the start signal).  Raises unless all got ok."""
    targets = [(port, ("register", count, services, first)) for first, count in slices(n, loaders)]
    kwargs = {"window": window, "seconds": REGISTER_SECONDS, "drain_seconds": 30.0, "once": True}
    # template building: about 5 us per instance in each process, in parallel
    children, go, out = start_loaders(procs, ctx, targets, kwargs, "the registering processes",
                                      setup=n * 20e-6)  # fmt: skip
    t0 = time.perf_counter()
    go.set()
    results = collect(out, len(children), children, REGISTER_SECONDS + 60, "the registrations")
    took = time.perf_counter() - t0
    procs.stop_children()
    aborted = [r["aborted"] for r in results if "aborted" in r]
    ok = sum(r.get("ok_total", 0) for r in results)
    if aborted or ok != n:
        errors = {k: v for r in results for k, v in r.get("error_names", {}).items()}
        raise RuntimeError(f"register of {n} instances: {ok} ok, errors {errors}, {aborted}")
    return took


def measure_size(procs: Procs, ctx: Any, n: int, log_dir: str, o: argparse.Namespace,
                 say: Say) -> dict[str, Any]:  # fmt: skip
    """One row: a fresh node, N registered instances, memory, then beats over all of them."""
    services = tuple(f"bench-svc-{k}" for k in range(max(1, n // PER_SERVICE)))
    node = procs.node(log_dir, QUIET)
    rss_empty = settled_rss(node.pid)
    say(f"  node {node.address} (pid {node.pid}): empty RSS {rss_empty / MB:.1f} MB")
    took = register_parallel(procs, ctx, node.port, n, services, o.loaders, o.window)
    if wait_until(lambda: stats(node.port)["instances"]["total"] == n, COUNT_SECONDS) is None:
        raise RuntimeError(f"the node's stats did not show {n} instances in {COUNT_SECONDS}s")
    rss_full = settled_rss(node.pid)
    say(f"  registered {n:,} instances in {len(services):,} services in {took:.1f}s "
        f"({n / took:,.0f}/s): RSS {rss_full / MB:.1f} MB, "
        f"{(rss_full - rss_empty) / n:.0f} bytes/instance")  # fmt: skip
    targets = [
        (node.port, ("beat", count, services, first)) for first, count in slices(n, o.clients)
    ]
    load = run_load(procs, ctx, targets, [node.pid], o.window, o.seconds, o.warmup)
    procs.stop_children()
    rss_beaten, node_stats = rss_bytes(node.pid), stats(node.port, 10.0)
    say(f"  beats: {load['ops_per_second']:,.0f}/s, p50 {load['p50_ms']:.2f} ms, p99 "
        f"{load['p99_ms']:.2f} ms, node CPU {load['server_cpu_busy']:.0%}, RSS after "
        f"{rss_beaten / MB:.1f} MB")  # fmt: skip
    procs.stop_all()
    return {
        "size": n, "services": len(services), "rss_empty_mb": round(rss_empty / MB, 1),
        "rss_full_mb": round(rss_full / MB, 1), "rss_after_beats_mb": round(rss_beaten / MB, 1),
        "bytes_per_instance": round((rss_full - rss_empty) / n),
        "bytes_per_instance_after_beats": round((rss_beaten - rss_empty) / n),
        "register_seconds": round(took, 2), "register_per_second": round(n / took),
        "beats_per_second": round(load["ops_per_second"]), "beat_p50_ms": round(load["p50_ms"], 3),
        "beat_p99_ms": round(load["p99_ms"], 3), "beat_errors": load["errors"],
        "beat_error_names": load["error_names"], "beat_lost": load["lost"],
        "beat_stalled": load["stalled"], "beats_sent": load["sent"],
        "node_cpu_busy": round(load["server_cpu_busy"], 3),
        "node_cpu_us_per_beat": round(load["server_cpu_us_per_op"], 2),
        "loader_cpu_busy": round(load["loader_cpu_busy"], 3),
        "other_cpu_busy": round(load["other_cpu_busy"], 3), "other_top": load["other_top"],
        "node_instances": node_stats["instances"]["total"],
        "node_beats_total": node_stats["beats_total"],
    }  # fmt: skip


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    """One row per size."""
    rows = []
    for n in opts.sizes:
        say(f"size {n:,} ...")
        rows.append(measure_size(procs, ctx, n, log_dir, opts, say))
    extra = {"instances_per_service": PER_SERVICE, "node_args": QUIET}
    return {"rows": rows, "settings": {**settings(opts), **extra}}


def report(result: dict[str, Any], say: Say) -> None:
    rows = result["rows"]
    say(table(rows, [
        ("instances", "size", "{:,}"), ("services", "services", "{:,}"),
        ("RSS empty MB", "rss_empty_mb", "{:.1f}"), ("RSS full MB", "rss_full_mb", "{:.1f}"),
        ("bytes/inst", "bytes_per_instance", "{:,}"), ("register s", "register_seconds", "{:.1f}"),
        ("register/s", "register_per_second", "{:,}"), ("beats/s", "beats_per_second", "{:,}"),
        ("p50 ms", "beat_p50_ms", "{:.2f}"), ("p99 ms", "beat_p99_ms", "{:.2f}"),
        ("node CPU", "node_cpu_busy", "{:.0%}"), ("node us/beat", "node_cpu_us_per_beat", "{:.1f}"),
    ]))  # fmt: skip
    for r in rows:
        say(f"  {r['size']:,}: RSS after the beats {r['rss_after_beats_mb']:.1f} MB "
            f"({r['bytes_per_instance_after_beats']:,} bytes/instance)")  # fmt: skip
        if r["beat_errors"] or r["beat_lost"] or r["beat_stalled"]:
            say(f"  {r['size']:,}: {r['beat_errors']} error replies {r['beat_error_names']}, "
                f"{r['beat_lost']} lost, stalled={r['beat_stalled']}")  # fmt: skip
        if r["other_cpu_busy"] > OTHER_CPU_WARN:
            say(f"  WARNING ({r['size']:,}): other processes used {r['other_cpu_busy']:.0%} "
                f"of a core during the beats: {', '.join(r['other_top'])}")  # fmt: skip


SCENARIOS = (
    Scenario("scale", run, report, "RSS of one node holding N instances, bytes/instance, "
             "register/s, beats/s over all N",
             {"sizes": ((100_000, 1_000_000), (20_000,)), "loaders": (2, 2)}, suite=True),
)  # fmt: skip
