"""Liveness at scale (issue 13): what keeping N instances alive costs, sessions vs beats.

Run from the repository root with the project's interpreter::

    python -m bench liveness [--sizes 100000,1000000] [--clients 4] [--seconds 10]
    python -m bench.liveness --quick

For each row, on a fresh ``meshreg node`` with the default timings (beat 5 s,
check 5 s, unhealthy after 15 s, evicted after 30 s):

1. K client processes each register N/K instances through the public
   ``Client`` (``register_many``: pipelined), in one session per process
   (``session`` rows, the default client) or with per-instance beats
   (``beats`` rows, ``Client(sessions=False)``, the old way);
   the registration time is from the start signal to the last process done;
2. after a warm-up of one beat interval, the node's CPU share (``/proc``
   user + system over ``--seconds``, of one core), its RSS, the client
   processes' CPU (all of them together, of one core) and whether the node
   lists every instance healthy at the start and the end of the window;
3. ``session`` rows: one client process is SIGKILLed; the time until the
   node lists all its instances unhealthy (the goal: within
   ``unhealthy_after + check_interval`` = 20 s), polled every 0.25 s.

Rows: for each size, sessions with ``--clients`` processes; at the smallest
size also sessions from a single process (issue 13: "100,000 instances kept
alive by a single client process") and per-instance beats with ``--clients``
processes.  Every load is bounded in count and time (``REGISTER_SECONDS``,
``EXPIRY_SECONDS``); every process started is stopped on the way out; 127.0.0.1
only.  Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/liveness.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    NodeProc,
    Procs,
    call,
    collect,
    cpu_seconds,
    fmt_table,
    free_port_block,
    install_sigterm,
    machine_info,
    ranged,
    rss_bytes,
    save_result,
    say_machine,
    wait_until,
)

BEAT_INTERVAL = 5.0  # s; the client default
UNHEALTHY_AFTER, CHECK_INTERVAL = 15.0, 5.0  # s; the node defaults
REGISTER_SECONDS = 600.0  # bound on one row's registrations (a million take about a minute)
HOLD_SECONDS = 1800.0  # bound on how long a client process holds its instances
EXPIRY_SECONDS = UNHEALTHY_AFTER + CHECK_INTERVAL + 40.0  # bound on the expiry measurement
GOAL_CPU = 0.10  # share of one core: the node at 1M, one client at 100k (issue 13)
GOAL_RSS_MB = 1000.0  # the node at 1M
MB = 1024 * 1024


def parse_sizes(text: str) -> list[int]:
    sizes = [int(x) for x in text.split(",") if x.strip()]
    if not sizes or any(not 1 <= s <= 2_000_000 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be counts in 1..2000000, e.g. 100000,1000000")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench liveness", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 4000 instances, 2 s windows")
    ap.add_argument("--sizes", type=parse_sizes, default=None,
                    help="instance counts (100000; --quick 4000)")  # fmt: skip
    ap.add_argument("--clients", type=ranged(int, 1, 32), default=4,
                    help="client processes holding them (4)")  # fmt: skip
    ap.add_argument("--seconds", type=ranged(float, 1, 600), default=None,
                    help="measured seconds per row (10; --quick 2)")  # fmt: skip
    ap.add_argument("--no-beats", dest="beats", action="store_false",
                    help="skip the per-instance beat row")  # fmt: skip
    ap.add_argument("--no-single", dest="single", action="store_false",
                    help="skip the single-client row at the smallest size")  # fmt: skip
    ap.add_argument("--no-expiry", dest="expiry", action="store_false",
                    help="skip the SIGKILL expiry measurement")  # fmt: skip
    opts = ap.parse_args(argv)
    if opts.sizes is None:
        opts.sizes = [4000] if opts.quick else [100_000]
    if opts.seconds is None:
        opts.seconds = 2.0 if opts.quick else 10.0
    return opts


def _holder_main(
    address: str, first: int, count: int, sessions: bool, ready: Any, go: Any, out: Any
) -> None:
    """One client process: register ``count`` instances, report, hold them (beats or
    renewals from its I/O thread) until killed or HOLD_SECONDS pass."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    from meshreg import Client

    try:
        client = Client([address], timeout=10.0, attempt_timeout=2.0, sessions=sessions)
        items = [
            {
                "service": f"live-svc-{i // 100}",  # 100 instances per service
                "ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                "port": 8000 + (i >> 24),
            }
            for i in range(first, first + count)
        ]
        ready.put(os.getpid())
        go.wait(120)
        t0 = time.perf_counter()
        failed = client.register_many(items, timeout=REGISTER_SECONDS)
        out.put(
            {"pid": os.getpid(), "count": count, "failed": len(failed),
             "seconds": time.perf_counter() - t0}
        )  # fmt: skip
    except Exception as exc:  # report, do not hang the parent
        out.put({"pid": os.getpid(), "count": count, "aborted": f"{type(exc).__name__}: {exc}"})
        return
    time.sleep(HOLD_SECONDS)
    os._exit(0)  # no close: the parent ends the row by killing us


def _instances(port: int) -> dict[str, int]:
    result: dict[str, int] = call(port, "stats", timeout=5.0)["result"]["instances"]
    return result


def run_row(
    procs: Procs, ctx: Any, log_dir: str, n: int, clients: int, sessions: bool,
    opts: argparse.Namespace, say: Any,
) -> dict[str, Any]:  # fmt: skip
    mode = "session" if sessions else "beats"
    port = free_port_block()
    node = procs.add(NodeProc(port, [], log_dir))
    node.start()
    node.wait_ping()
    rss_empty = rss_bytes(node.pid)
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    share = n // clients
    children = [
        ctx.Process(
            target=_holder_main,
            args=(
                node.address,
                k * share,
                share if k < clients - 1 else n - k * share,
                sessions,
                ready,
                go,
                out,
            ),
            daemon=True,
        )  # fmt: skip
        for k in range(clients)
    ]
    procs.children.extend(children)
    for p in children:
        p.start()
    row: dict[str, Any] = {"mode": mode, "instances": n, "clients": clients}
    try:
        collect(ready, clients, children, 120 + n * 50e-6, "the client processes to start")
        cpu0 = cpu_seconds(node.pid)
        t0 = time.perf_counter()
        go.set()
        done = collect(out, clients, children, REGISTER_SECONDS + 60, "the registrations")
        row["register_s"] = round(time.perf_counter() - t0, 2)
        row["register_node_cpu_s"] = round(cpu_seconds(node.pid) - cpu0, 2)
        aborted = [d["aborted"] for d in done if "aborted" in d]
        failed = sum(d.get("failed", 0) for d in done)
        row["register_failed"] = failed
        if aborted:
            row["aborted"] = aborted[0]
            return row
        say(f"  {mode}, {n:,} instances, {clients} clients: registered in {row['register_s']} s")
        pids = {d["pid"]: d["count"] for d in done}
        if wait_until(lambda: _instances(port)["total"] >= n - failed, 60) is None:
            raise RuntimeError(f"the node did not list {n - failed:,} instances within 60 s")
        time.sleep(BEAT_INTERVAL)  # warm-up: one beat interval (a bench, not a test)
        before = _instances(port)
        c0, k0, w0 = cpu_seconds(node.pid), sum(cpu_seconds(p) for p in pids), time.perf_counter()
        time.sleep(opts.seconds)
        c1, k1, w1 = cpu_seconds(node.pid), sum(cpu_seconds(p) for p in pids), time.perf_counter()
        after = _instances(port)
        stats = call(port, "stats", timeout=5.0)["result"]
        row.update(
            node_cpu=round((c1 - c0) / (w1 - w0), 4),
            clients_cpu=round((k1 - k0) / (w1 - w0), 4),
            rss_mb=round(rss_bytes(node.pid) / MB, 1),
            rss_empty_mb=round(rss_empty / MB, 1),
            bytes_per_instance=round((rss_bytes(node.pid) - rss_empty) / max(1, n)),
            all_healthy=before["healthy"] == after["healthy"] == n - failed,
            healthy_at_end=after["healthy"],
            beats_per_s=stats["beats_per_second"],
            sessions=stats.get("sessions", {}).get("count"),
        )
        say(
            f"    node CPU {row['node_cpu']:.1%}, RSS {row['rss_mb']:,.0f} MB, clients CPU "
            f"{row['clients_cpu']:.1%}, all healthy: {row['all_healthy']}"
        )
        if sessions and opts.expiry and not (opts.quick and clients > 1):  # quick: once
            victim, held = next(iter(pids.items()))
            os.kill(victim, signal.SIGKILL)
            killed = time.perf_counter()
            deadline = killed + EXPIRY_SECONDS
            took = None
            while time.perf_counter() < deadline:  # bounded: EXPIRY_SECONDS
                if _instances(port)["unhealthy"] >= held:
                    took = round(time.perf_counter() - killed, 2)
                    break
                time.sleep(0.25)
            row["expiry_s"] = took
            row["expired_instances"] = held
            say(f"    SIGKILL of a client holding {held:,}: all unhealthy after {took} s")
        return row
    finally:
        procs.stop_children()
        node.stop()
        procs.nodes.remove(node)


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Any) -> dict[str, Any]:
    log_dir = tempfile.mkdtemp(prefix="meshreg-bench-liveness-")
    rows: list[dict[str, Any]] = []
    try:
        smallest = min(opts.sizes)
        plan = []
        for n in sorted(opts.sizes):
            if n == smallest and opts.single:
                plan.append((n, 1, True))  # one process keeps them all alive
            plan.append((n, max(opts.clients, n // 250_000), True))
        if opts.beats:
            plan.append((smallest, opts.clients, False))  # the old way, same run
        for n, k, sessions in plan:
            say(f"liveness: {'sessions' if sessions else 'per-instance beats'}, {n:,} "
                f"instances, {k} client process{'es' if k > 1 else ''} ...")  # fmt: skip
            try:
                rows.append(run_row(procs, ctx, log_dir, n, k, sessions, opts, say))
            except Exception as exc:  # a row failing must not cost the others
                rows.append({"mode": "session" if sessions else "beats", "instances": n,
                             "clients": k, "aborted": f"{type(exc).__name__}: {exc}"})  # fmt: skip
                say(f"  aborted: {exc}")
    finally:
        procs.stop_all()
        shutil.rmtree(log_dir, ignore_errors=True)
    return {"rows": rows, "seconds": opts.seconds, "timings": "default (5/5/15/30 s)"}


def table(result: dict[str, Any]) -> str:
    head = ["liveness", "instances", "clients", "register s", "node CPU", "node RSS MB",
            "bytes/inst", "clients CPU", "all healthy", "SIGKILL->unhealthy s"]  # fmt: skip
    out = []
    for r in result["rows"]:
        if "aborted" in r:
            why = "aborted: " + r["aborted"][:60]
            out.append(
                [r["mode"], f"{r['instances']:,}", r["clients"], why, "", "", "", "", "", ""]
            )
            continue
        out.append([
            r["mode"], f"{r['instances']:,}", r["clients"], f"{r['register_s']:.1f}",
            f"{r['node_cpu']:.1%}", f"{r['rss_mb']:,.0f}", f"{r['bytes_per_instance']:,}",
            f"{r['clients_cpu']:.1%}",
            "yes" if r["all_healthy"] else f"no ({r['healthy_at_end']:,})",
            "" if r.get("expiry_s", "") == "" else str(r["expiry_s"]),
        ])  # fmt: skip
    return fmt_table(head, out, right={1, 2, 3, 4, 5, 6, 7})


def goals(result: dict[str, Any]) -> list[list[str]]:
    """Issue 13's targets against this run's rows."""
    rows = [r for r in result["rows"] if "aborted" not in r and r["mode"] == "session"]
    out: list[list[str]] = []
    big = max(rows, key=lambda r: r["instances"], default=None)
    if big is not None:
        ok = big["node_cpu"] < GOAL_CPU and big["rss_mb"] < GOAL_RSS_MB
        figure = f"{big['node_cpu']:.1%}, {big['rss_mb']:,.0f} MB"
        out.append([f"{big['instances']:,} live instances: node < 10% of a core, < 1 GB",
                    figure, "met" if ok else "NOT MET"])  # fmt: skip
    single = next((r for r in rows if r["clients"] == 1), None)
    if single is not None:
        ok = single["clients_cpu"] < GOAL_CPU and single["all_healthy"]
        out.append([f"{single['instances']:,} kept alive by one client process < 10% of a core",
                    f"{single['clients_cpu']:.1%}", "met" if ok else "NOT MET"])  # fmt: skip
    expiries = [r["expiry_s"] for r in rows if r.get("expiry_s") is not None]
    if expiries or any("expiry_s" in r for r in rows):
        worst = max(expiries) if expiries else None
        limit = UNHEALTHY_AFTER + CHECK_INTERVAL
        ok = worst is not None and len(expiries) == sum("expiry_s" in r for r in rows)
        out.append([f"session expiry within unhealthy_after + check_interval ({limit:g} s)",
                    f"{worst} s", "met" if ok and worst <= limit else "NOT MET"])  # fmt: skip
    return out


def report(result: dict[str, Any], say: Any) -> None:
    say(table(result))
    for goal, figure, verdict in goals(result):
        say(f"  {goal}: {figure} ({verdict})")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    install_sigterm()
    machine = machine_info()
    say_machine(print, machine)
    procs = Procs()
    ctx = mp.get_context("spawn")
    try:
        result = run(procs, ctx, opts, print)
    finally:
        procs.stop_all()
    report(result, print)
    print(save_result("liveness", result, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
