"""Scale: resident memory of one node holding N instances, and the beat rate it sustains.

Run from the repository root with the project's interpreter::

    python -m bench.scale [--sizes 100000,1000000] [--seconds 3] [--json]

For every size N, on a fresh ``meshreg node`` (default settings, except that
nothing turns unhealthy or expires during the run):

1. the node's resident set (``VmRSS``) when empty, after its first ping;
2. N ``register`` requests, from ``--loaders`` processes in parallel (each
   pipelining ``--window`` requests), spread over N/100 services of 100
   instances each (``bench-svc-K``; one ``{"zone": "bench"}`` metadata entry,
   weight 1.0: what bench/load.py registers);
3. the resident set again, once the node's stats count N instances and its
   RSS has stopped moving: bytes per instance = (full - empty) / N;
4. ``beat`` load over all N instances, cycled through (each loader beats its
   own slice), for ``--seconds`` after ``--warmup``: beats/s, latency
   percentiles, the node's CPU;
5. the resident set after the beats (a beat replaces an instance's last-beat
   time, so the steady state of a beaten table can cost a little more).

The node is stopped between sizes.  Every process started here is stopped on
the way out (also on Ctrl-C and SIGTERM); everything binds and connects to
127.0.0.1 only; every wait is a poll with a deadline.  Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/scale.py
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

from bench.common import (
    HOST,
    OTHER_CPU_WARN,
    READY_SECONDS,
    NodeProc,
    Procs,
    call,
    collect,
    fmt_table,
    free_port_block,
    install_sigterm,
    machine_info,
    no_nan,
    ranged,
    rss_bytes,
    save_result,
    say_machine,
    wait_until,
)
from bench.load import SAMPLE_EVERY, drive, run_load, templates_for

PER_SERVICE = 100  # instances per service: N / 100 services
# Nothing turns unhealthy or is evicted during a run (a day); the sweep still runs
# every 5 s (the default check interval): it is part of what a big table costs.
QUIET = ["--unhealthy-after", "86400", "--evict-after", "86400"]
REGISTER_SECONDS = 300.0  # bound on registering one size (1M takes well under a minute)
COUNT_SECONDS = 60.0  # bound on the node's stats showing every instance
SETTLE_SECONDS = 10.0  # bound on the RSS settling after registration
SETTLE_INTERVAL = 0.25  # s between RSS reads while settling
SETTLE_TOLERANCE = 0.005  # RSS is settled when two reads differ by less than this share
MB = 1024 * 1024


def services_for(n: int) -> tuple[str, ...]:
    """N / PER_SERVICE service names (at least one); instance i is in service i % count."""
    return tuple(f"bench-svc-{k}" for k in range(max(1, n // PER_SERVICE)))


def slices(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (first, count) slices covering 0 .. n-1 (the last takes the remainder)."""
    parts = max(1, min(parts, n))
    size = n // parts
    return [(k * size, size if k < parts - 1 else n - k * size) for k in range(parts)]


def _register_main(
    port: int,
    n: int,
    services: tuple[str, ...],
    first: int,
    window: int,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One registering process: build its templates, wait for ``go``, send them all once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        result = drive(
            f"tcp://{HOST}:{port}",
            templates_for("register", n, services, first),
            window=window,
            seconds=REGISTER_SECONDS,
            max_ops=n,
            drain_seconds=30.0,
            go=go,
            ready=ready,
        )
        result.pop("latencies", None)
    except Exception as exc:  # report, do not hang the parent
        result = {"aborted": f"{type(exc).__name__}: {exc}"}
    out.put(result)


def register_parallel(
    procs: Procs,
    ctx: Any,
    port: int,
    n: int,
    services: tuple[str, ...],
    loaders: int,
    window: int,
) -> float:
    """Register instances 0 .. n-1 from ``loaders`` processes at once; seconds from go to done.

    Each process builds its templates before the start signal, so the time is
    the node's, not the template building's.  Raises unless every register got ok.
    """
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    children = [
        ctx.Process(
            target=_register_main,
            args=(port, count, services, first, window, ready, go, out),
            daemon=True,
        )
        for first, count in slices(n, loaders)
    ]
    procs.children.extend(children)
    for p in children:
        p.start()
    # template building: about 5 us per instance in each process, in parallel
    collect(ready, len(children), children, READY_SECONDS + n * 20e-6, "the registering processes")
    t0 = time.perf_counter()
    go.set()
    results = collect(out, len(children), children, REGISTER_SECONDS + 60, "the registrations")
    took = time.perf_counter() - t0
    for p in children:
        p.join(5)
    procs.stop_children()
    for r in results:
        if "aborted" in r:
            raise RuntimeError(f"a registering process failed: {r['aborted']}")
    ok = sum(r["ok_total"] for r in results)
    if ok != n:
        errors = {k: v for r in results for k, v in r["error_names"].items()}
        lost = sum(r["lost"] for r in results)
        raise RuntimeError(f"register of {n} instances: {ok} ok, errors {errors}, {lost} lost")
    return took


def node_instances(port: int) -> int:
    stats = call(port, "stats", timeout=10.0)["result"]
    return int(stats["instances"]["total"])


def settled_rss(pid: int, timeout: float = SETTLE_SECONDS) -> int:
    """The RSS of ``pid`` once two reads ``SETTLE_INTERVAL`` apart agree (or at the deadline)."""
    last = [rss_bytes(pid)]

    def steady() -> bool:
        now = rss_bytes(pid)
        before, last[0] = last[0], now
        return abs(now - before) <= SETTLE_TOLERANCE * max(before, 1)

    wait_until(steady, timeout, SETTLE_INTERVAL)
    return last[0]


def measure_size(
    procs: Procs,
    ctx: Any,
    n: int,
    log_dir: str,
    seconds: float,
    warmup: float,
    clients: int,
    window: int,
    loaders: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """One row: a fresh node, N registered instances, memory, then beats over all of them."""
    services = services_for(n)
    node = procs.add(NodeProc(free_port_block(), QUIET, log_dir).start())
    try:
        node.wait_ping()
        rss_empty = settled_rss(node.pid)
        say(f"  node {node.address} (pid {node.pid}): empty RSS {rss_empty / MB:.1f} MB")

        took = register_parallel(procs, ctx, node.port, n, services, loaders, window)
        if wait_until(lambda: node_instances(node.port) == n, COUNT_SECONDS) is None:
            raise RuntimeError(f"the node's stats did not show {n} instances in {COUNT_SECONDS}s")
        rss_full = settled_rss(node.pid)
        say(
            f"  registered {n:,} instances in {len(services):,} services in {took:.1f}s "
            f"({n / took:,.0f}/s): RSS {rss_full / MB:.1f} MB, "
            f"{(rss_full - rss_empty) / n:.0f} bytes/instance"
        )

        targets = [
            (node.port, ("beat", count, services, first)) for first, count in slices(n, clients)
        ]
        load = run_load(procs, ctx, targets, [node.pid], window, seconds, warmup)
        procs.stop_children()
        rss_beaten = rss_bytes(node.pid)
        stats = call(node.port, "stats", timeout=10.0)["result"]
        say(
            f"  beats: {load['ops_per_second']:,.0f}/s, p50 {load['p50_ms']:.2f} ms, "
            f"p99 {load['p99_ms']:.2f} ms, node CPU {load['server_cpu_busy']:.0%}, "
            f"RSS after {rss_beaten / MB:.1f} MB"
        )
    finally:
        procs.stop_all()
    return {
        "size": n,
        "services": len(services),
        "rss_empty_mb": round(rss_empty / MB, 1),
        "rss_full_mb": round(rss_full / MB, 1),
        "rss_after_beats_mb": round(rss_beaten / MB, 1),
        "bytes_per_instance": round((rss_full - rss_empty) / n),
        "bytes_per_instance_after_beats": round((rss_beaten - rss_empty) / n),
        "register_seconds": round(took, 2),
        "register_per_second": round(n / took),
        "beats_per_second": round(load["ops_per_second"]),
        "beat_p50_ms": round(load["p50_ms"], 3),
        "beat_p99_ms": round(load["p99_ms"], 3),
        "beat_errors": load["errors"],
        "beat_error_names": load["error_names"],
        "beat_lost": load["lost"],
        "beat_stalled": load["stalled"],
        "beats_sent": load["sent"],
        "node_cpu_busy": round(load["server_cpu_busy"], 3),
        "node_cpu_us_per_beat": round(load["server_cpu_us_per_op"], 2),
        "loader_cpu_busy": round(load["loader_cpu_busy"], 3),
        "other_cpu_busy": round(load["other_cpu_busy"], 3),
        "other_top": load["other_top"],
        "node_instances": stats["instances"]["total"],
        "node_beats_total": stats["beats_total"],
    }


def run(
    procs: Procs,
    ctx: Any,
    sizes: tuple[int, ...] = (100_000, 1_000_000),
    seconds: float = 3.0,
    warmup: float = 0.5,
    clients: int = 1,
    window: int = 256,
    say: Callable[[str], None] = print,
    loaders: int = 2,
) -> dict[str, Any]:
    """One row per size; returns {"rows": [...], "settings": {...}}."""
    rows: list[dict[str, Any]] = []
    log_dir = tempfile.mkdtemp(prefix="meshreg-bench-scale-")
    ok = False
    try:
        for n in sizes:
            say(f"size {n:,} ...")
            rows.append(
                measure_size(procs, ctx, n, log_dir, seconds, warmup, clients, window, loaders, say)
            )
        ok = True
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            say(f"node logs kept in {log_dir}")
    return {
        "rows": rows,
        "settings": {
            "sizes": list(sizes),
            "seconds": seconds,
            "warmup": warmup,
            "clients": clients,
            "window": window,
            "loaders": loaders,
            "instances_per_service": PER_SERVICE,
            "node_args": QUIET,
        },
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ["instances", "services", "RSS empty MB", "RSS full MB", "bytes/inst",
            "register s", "register/s", "beats/s", "p50 ms", "p99 ms", "node CPU",
            "node us/beat"]  # fmt: skip
    out = [
        [
            f"{r['size']:,}",
            f"{r['services']:,}",
            f"{r['rss_empty_mb']:.1f}",
            f"{r['rss_full_mb']:.1f}",
            f"{r['bytes_per_instance']:,}",
            f"{r['register_seconds']:.1f}",
            f"{r['register_per_second']:,}",
            f"{r['beats_per_second']:,}",
            f"{r['beat_p50_ms']:.2f}",
            f"{r['beat_p99_ms']:.2f}",
            f"{r['node_cpu_busy']:.0%}",
            f"{r['node_cpu_us_per_beat']:.1f}",
        ]
        for r in rows
    ]
    return fmt_table(head, out)


def report(result: dict[str, Any], say: Callable[[str], None]) -> None:
    rows = result["rows"]
    say(table(rows))
    for r in rows:
        say(
            f"  {r['size']:,}: RSS after the beats {r['rss_after_beats_mb']:.1f} MB "
            f"({r['bytes_per_instance_after_beats']:,} bytes/instance)"
        )
        if r["beat_errors"] or r["beat_lost"] or r["beat_stalled"]:
            say(
                f"  {r['size']:,}: {r['beat_errors']} error replies {r['beat_error_names']}, "
                f"{r['beat_lost']} lost, stalled={r['beat_stalled']}"
            )
        if r["other_cpu_busy"] > OTHER_CPU_WARN:
            say(
                f"  WARNING ({r['size']:,}): other processes used {r['other_cpu_busy']:.0%} "
                f"of a core during the beats: {', '.join(r['other_top'])}"
            )


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s.replace("_", "")) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of instance counts, e.g. 100000,1000000"
        ) from None
    if not sizes or not all(1 <= s <= 4_000_000 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be integers in 1..4000000, comma-separated")
    return sizes


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--sizes",
        type=parse_sizes,
        default=(100_000, 1_000_000),
        help="instance counts, comma-separated (100000,1000000)",
    )
    ap.add_argument(
        "--seconds", type=ranged(float, 0.1, 600), default=3.0, help="measured seconds of beats (3)"
    )
    ap.add_argument(
        "--warmup", type=ranged(float, 0, 60), default=0.5, help="unmeasured seconds first (0.5)"
    )
    ap.add_argument(
        "--clients", type=ranged(int, 1, 64), default=1, help="beat load-generator processes (1)"
    )
    ap.add_argument(
        "--window",
        type=ranged(int, 1, 10_000),
        default=256,
        help="requests in flight per loader (256)",
    )
    ap.add_argument(
        "--loaders", type=ranged(int, 1, 64), default=2, help="registering processes (2)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add_arguments(ap)
    ap.add_argument("--json", action="store_true", help="JSON on stdout; the report on stderr")
    opts = ap.parse_args(argv)
    install_sigterm()

    def say(line: str) -> None:
        print(line, file=sys.stderr if opts.json else sys.stdout, flush=True)

    ctx = mp.get_context("spawn")  # fresh children: no forked ZeroMQ state
    procs = Procs()
    machine = machine_info()
    say_machine(say, machine)
    say(
        f"settings: sizes={list(opts.sizes)} seconds={opts.seconds} warmup={opts.warmup} "
        f"clients={opts.clients} window={opts.window} loaders={opts.loaders} "
        f"(latency: 1 in {SAMPLE_EVERY} beats timed)"
    )
    templates_for("register", 1)  # fail early if the templates do not match encode_request
    try:
        result = run(
            procs,
            ctx,
            opts.sizes,
            opts.seconds,
            opts.warmup,
            opts.clients,
            opts.window,
            say,
            opts.loaders,
        )
    finally:
        procs.stop_all()
    report(result, say)
    path = save_result("scale", result, machine)
    say(f"result: {path}")
    if opts.json:
        print(json.dumps(no_nan({"machine": machine, **result}), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
