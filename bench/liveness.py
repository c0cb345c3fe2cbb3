"""``liveness`` (issue 13): what keeping N instances alive costs, sessions vs per-instance
beats (bench/README.md).  Per row, on a fresh node with the default timings: K client
processes register N/K instances (``register_many``), then the node's CPU share and RSS,
the clients' CPU, and for session rows the time until a SIGKILLed client's instances turn
unhealthy; beside each session row, etcd holding the same N keys on K leases with the same
client processes (bench/liveness_etcd.py; ``--only etcd`` runs only those rows,
``--no-peers`` skips them; skipped, saying how to install it, when etcd is absent).
Every load is bounded in count and time; 127.0.0.1 only; Linux (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

from bench.common import (
    MB,
    Procs,
    Say,
    Scenario,
    collect,
    cpu_seconds,
    fmt_table,
    rss_bytes,
    stats,
    wait_until,
    with_log_dir,
)
from bench.liveness_etcd import (
    KEEPALIVE_INTERVAL,
    LEASE_TTL,
    TXN_OPS,
    etcd_missing,
    run_etcd_row,
)

BEAT_INTERVAL = 5.0  # s; the client default
UNHEALTHY_AFTER, CHECK_INTERVAL = 15.0, 5.0  # s; the node defaults
REGISTER_SECONDS = 600.0  # bound on one row's registrations (a million take about a minute)
HOLD_SECONDS = 1800.0  # bound on how long a client process holds its instances
EXPIRY_SECONDS = UNHEALTHY_AFTER + CHECK_INTERVAL + 40.0  # bound on the expiry measurement
GOAL_CPU = 0.10  # share of one core: the node at 1M, one client at 100k (issue 13)
GOAL_RSS_MB = 1000.0  # the node at 1M


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
    return dict(stats(port)["instances"])


def run_row(
    procs: Procs, ctx: Any, log_dir: str, n: int, clients: int, sessions: bool,
    opts: argparse.Namespace, say: Say,
) -> dict[str, Any]:  # fmt: skip
    mode = "session" if sessions else "beats"
    node = procs.node(log_dir, [])
    port = node.port
    rss_empty = rss_bytes(node.pid)
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    share = n // clients
    children = procs.start_children([
        ctx.Process(target=_holder_main, daemon=True, args=(
            node.address, k * share, share if k < clients - 1 else n - k * share, sessions,
            ready, go, out))
        for k in range(clients)
    ])  # fmt: skip
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
        node_stats = stats(port)
        row.update(
            node_cpu=round((c1 - c0) / (w1 - w0), 4),
            clients_cpu=round((k1 - k0) / (w1 - w0), 4),
            rss_mb=round(rss_bytes(node.pid) / MB, 1),
            rss_empty_mb=round(rss_empty / MB, 1),
            bytes_per_instance=round((rss_bytes(node.pid) - rss_empty) / max(1, n)),
            all_healthy=before["healthy"] == after["healthy"] == n - failed,
            healthy_at_end=after["healthy"],
            beats_per_s=node_stats["beats_per_second"],
            sessions=node_stats.get("sessions", {}).get("count"),
        )
        say(
            f"    node CPU {row['node_cpu']:.1%}, RSS {row['rss_mb']:,.0f} MB, clients CPU "
            f"{row['clients_cpu']:.1%}, all healthy: {row['all_healthy']}"
        )
        if sessions and opts.expiry and not (opts.quick and clients > 1):  # quick: once
            row.update(_expiry(port, pids, say))
        return row
    finally:
        procs.stop_children()
        node.stop()
        procs.nodes.remove(node)


def _expiry(port: int, pids: dict[int, int], say: Say) -> dict[str, Any]:
    """SIGKILL one client process: the time until the node lists its instances unhealthy."""
    victim, held = next(iter(pids.items()))
    os.kill(victim, signal.SIGKILL)
    killed = time.perf_counter()
    t = wait_until(lambda: _instances(port)["unhealthy"] >= held, EXPIRY_SECONDS, 0.25)
    took = None if t is None else round(t - killed, 2)
    say(f"    SIGKILL of a client holding {held:,}: all unhealthy after {took} s")
    return {"expiry_s": took, "expired_instances": held}


def _etcd_plan(opts: argparse.Namespace) -> tuple[bool, bool, list[str]]:
    """(meshreg rows, etcd rows, why etcd is skipped) from ``--only etcd``, ``--no-peers``."""
    only_etcd = "etcd" in [x.lower() for x in opts.only or ()]
    if not opts.peers:
        return True, False, ["etcd: not run (--no-peers)"]
    why = etcd_missing()
    return not only_etcd, why is None, [] if why is None else [f"etcd: {why}"]


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say) -> dict[str, Any]:
    smallest = min(opts.sizes)
    mesh, etcd, skipped = _etcd_plan(opts)
    plan = []
    for n in sorted(opts.sizes):
        if n == smallest and opts.single and mesh:
            plan.append((n, 1, "session"))  # one process keeps them all alive
        k = max(opts.clients, n // 250_000)
        plan += [(n, k, "session")] * mesh + [(n, k, "etcd")] * etcd  # side by side
    if opts.beat_row and mesh:
        plan.append((smallest, opts.clients, "beats"))  # the old way, same run
    bounds = {"register": REGISTER_SECONDS, "hold": HOLD_SECONDS, "expiry": EXPIRY_SECONDS,
              "warmup": BEAT_INTERVAL}  # fmt: skip

    def body(log_dir: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for n, k, mode in plan:
            what = {"session": "sessions", "beats": "per-instance beats", "etcd": "etcd leases"}
            say(f"liveness: {what[mode]}, {n:,} "
                f"instances, {k} client process{'es' if k > 1 else ''} ...")  # fmt: skip
            try:
                if mode == "etcd":
                    expiry = opts.expiry and not (opts.quick and k > 1)  # as meshreg's rows
                    rows.append(run_etcd_row(procs, ctx, n, k, opts, say, bounds, expiry))
                    continue
                rows.append(run_row(procs, ctx, log_dir, n, k, mode == "session", opts, say))
            except Exception as exc:  # a row failing must not cost the others
                rows.append({"mode": mode, "instances": n, "clients": k,
                             "aborted": f"{type(exc).__name__}: {exc}"})  # fmt: skip
                say(f"  aborted: {exc}")
        return rows

    rows = with_log_dir("meshreg-bench-liveness-", say, body)
    return {"rows": rows, "seconds": opts.seconds, "timings": "default (5/5/15/30 s)",
            "skipped": skipped, "etcd": {"lease_ttl_s": LEASE_TTL, "txn_ops": TXN_OPS,
                                         "keepalive_s": KEEPALIVE_INTERVAL}}  # fmt: skip


def _ratio(r: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """An etcd row against meshreg's session row of the same size and clients: etcd's node
    CPU, node RSS, clients' CPU and registration time, each as a multiple of meshreg's."""
    same = (r["instances"], r["clients"])
    mesh = next((m for m in rows if m["mode"] == "session" and "aborted" not in m
                 and (m["instances"], m["clients"]) == same), None)  # fmt: skip
    if r["mode"] != "etcd" or mesh is None:
        return ""

    def x(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b > 0 else "-"

    return " / ".join([x(r["node_cpu"], mesh["node_cpu"]), x(r["rss_mb"], mesh["rss_mb"]),
                       x(r["clients_cpu"], mesh["clients_cpu"]),
                       x(r["register_s"], mesh["register_s"])])  # fmt: skip


def table(result: dict[str, Any]) -> str:
    head = ["liveness", "instances", "clients", "register s", "node CPU", "node RSS MB",
            "bytes/inst", "clients CPU", "all healthy", "SIGKILL->unhealthy s",
            "etcd/meshreg CPU / RSS / clients / register"]  # fmt: skip
    out = []
    for r in result["rows"]:
        if "aborted" in r:
            why = "aborted: " + r["aborted"][:60]
            out.append(
                [r["mode"], f"{r['instances']:,}", r["clients"], why, "", "", "", "", "", "", ""]
            )
            continue
        out.append([
            r["mode"], f"{r['instances']:,}", r["clients"], f"{r['register_s']:.1f}",
            f"{r['node_cpu']:.1%}", f"{r['rss_mb']:,.0f}", f"{r['bytes_per_instance']:,}",
            f"{r['clients_cpu']:.1%}",
            "yes" if r["all_healthy"] else f"no ({r['healthy_at_end']:,})",
            "" if r.get("expiry_s", "") == "" else str(r["expiry_s"]),
            _ratio(r, result["rows"]),
        ])  # fmt: skip
    return fmt_table(head, out, right={1, 2, 3, 4, 5, 6, 7, 10})


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


def report(result: dict[str, Any], say: Say) -> None:
    if result["rows"]:
        say(table(result))
    for goal, figure, verdict in goals(result):
        say(f"  {goal}: {figure} ({verdict})")
    if any(r["mode"] == "etcd" for r in result["rows"]):
        say(
            f"  etcd: one lease per client process (TTL {LEASE_TTL} s, keep-alive every "
            f"{KEEPALIVE_INTERVAL:g} s), keys put in transactions of {TXN_OPS}; 'all healthy': "
            "every key still there; SIGKILL: until etcd deleted the client's keys"
        )
    for line in result.get("skipped", []):
        say(f"  skipped {line}")


SCENARIOS = (
    Scenario("liveness", run, report, "what keeping N instances alive costs: sessions vs "
             "per-instance beats, SIGKILL expiry, next to etcd leases (issue 13)",
             {"sizes": ((100_000,), (4000,)), "clients": (4, 4), "seconds": (10.0, 2.0)}),
)  # fmt: skip

if __name__ == "__main__":  # python -m bench.liveness
    from bench.runner import run_alone

    run_alone("liveness")
