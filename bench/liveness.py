"""``liveness`` (issue 13): what keeping N instances alive costs, sessions vs per-instance
beats, beside etcd holding the same keys on one lease per client process as clientv3's
``concurrency.Session`` does (bench/README.md says what each row does).  Linux (``/proc``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bench.baselines import (
    CONNECT_SECONDS,
    ETCD,
    _etcd_channel,
    _field,
    _ints,
    etcd_missing,
    lease_grant_response,
    lease_keepalive_response,
    lease_request,
    range_request,
    with_etcd,
)
from bench.common import (
    MB,
    Procs,
    Say,
    Scenario,
    collect,
    cpu_seconds,
    fmt_table,
    met,
    node_args,
    ratio,
    rss_bytes,
    stats,
    wait_until,
    worker_main,
)
from bench.runner import run_alone

REGISTER_SECONDS = 600.0  # bound on one row's registrations (a million take about a minute)
HOLD_SECONDS = 1800.0  # bound on how long a client process holds its instances
GOAL_CPU = 0.10  # share of one core: the node at 1M, one client at 100k (issue 13)
GOAL_RSS_MB = 1000.0  # the node at 1M
TXN_OPS = 128  # etcd puts per transaction: etcd's default --max-txn-ops
TXN_WINDOW = 8  # etcd transactions in flight per client process
RPC_SECONDS = 60.0  # deadline of one etcd request
PREFIX = b"/live/"  # every etcd key of the row; the range [PREFIX, PREFIX_END) counts them
PREFIX_END = b"/live0"
NODE_DEFAULTS = (15.0, 5.0)  # s: the node's unhealthy-after and check interval


def instance(i: int) -> tuple[str, str, int]:
    """(service, ip, port) of instance ``i``: 100 per service, unique below 2**32."""
    return f"live-svc-{i // 100}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 8000 + (i >> 24)


def _meshreg_holder(
    address: str, sessions: bool, beat_interval: float, first: int, count: int
) -> Callable[[], int]:
    """A meshreg client process's set-up: its registration, which returns the failures."""
    from meshreg import Client

    client = Client([address], timeout=10.0, attempt_timeout=2.0, sessions=sessions,
                    beat_interval=beat_interval)  # fmt: skip
    items = [dict(zip(("service", "ip", "port"), instance(i), strict=True))
             for i in range(first, first + count)]  # fmt: skip
    return lambda: len(client.register_many(items, timeout=REGISTER_SECONDS))


def _etcd_holder(port: int, ttl: int, interval: float, first: int, count: int) -> Any:
    """An etcd client process's set-up: one lease, its keep-alive stream, ``count`` keys put
    on it in pipelined transactions, which return the failures."""
    channel = _etcd_channel(port, CONNECT_SECONDS)
    grant = channel.unary_unary(ETCD + "Lease/LeaseGrant")
    txn = channel.unary_unary(ETCD + "KV/Txn")
    pairs = []
    for i in range(first, first + count):
        service, ip, p = instance(i)
        value = (f'{{"ip":"{ip}","port":{p},"weight":1.0,"healthy":true,'
                 f'"cluster":"DEFAULT","metadata":{{}}}}')  # fmt: skip
        pairs.append((PREFIX + f"{service}/{ip}:{p}".encode(), value.encode()))

    def register() -> int:
        lease_id, _, error = lease_grant_response(grant(lease_request(ttl), timeout=RPC_SECONDS))
        if error or lease_id <= 0:
            raise RuntimeError(f"LeaseGrant failed: {error!r} (id {lease_id})")
        _keepalive(channel, lease_id, interval)
        lease = _field(3, lease_id)
        pending: deque[tuple[Any, int]] = deque()
        failed = 0
        for start in range(0, count, TXN_OPS):  # bounded: count / TXN_OPS transactions
            batch = pairs[start : start + TXN_OPS]
            body = b"".join(_field(2, _field(2, _field(1, k) + _field(2, v) + lease))
                            for k, v in batch)  # fmt: skip  # TxnRequest.success[].request_put
            pending.append((txn.future(body, timeout=RPC_SECONDS), len(batch)))
            while len(pending) >= TXN_WINDOW or (start + TXN_OPS >= count and pending):
                future, size = pending.popleft()
                if future.exception() is not None or not _ints(future.result()).get(2):
                    failed += size  # TxnResponse.succeeded (field 2) is true without compares
        return failed

    return register


def _keepalive(channel: Any, lease_id: int, interval: float) -> None:
    """Keep ``lease_id`` alive on one stream, one request every ``interval`` s, for at most
    HOLD_SECONDS (a daemon thread; the process is killed at the end of the row)."""
    import grpc

    def requests() -> Any:
        for _ in range(int(HOLD_SECONDS / interval) + 1):  # bounded: the hold time
            yield lease_request(lease_id)
            time.sleep(interval)

    def consume() -> None:
        call = channel.stream_stream(ETCD + "Lease/LeaseKeepAlive")(
            requests(), timeout=HOLD_SECONDS + 60)  # fmt: skip
        try:
            for answer in call:  # bounded: one per request, and the stream's deadline
                lease_keepalive_response(answer)  # an expired lease: its keys go, as the row shows
        except grpc.RpcError:
            pass

    threading.Thread(target=consume, daemon=True, name="etcd-keepalive").start()


def _holder(setup: Any, args: tuple[Any, ...], cleanups: list[Any]) -> Callable[[], Any]:
    """One client process's set-up (``setup(*args)``) and its timed registration."""
    register = setup(*args)

    def measure() -> dict[str, Any]:
        t0 = time.perf_counter()
        failed = register()
        return {"pid": os.getpid(), "count": args[-1], "failed": failed,
                "seconds": time.perf_counter() - t0}  # fmt: skip

    return measure


def _holder_main(*args: Any) -> None:
    """A client process: :func:`worker_main` (set up, register on ``go``, report), then hold
    the instances (beats, renewals or keep-alives from its threads) until killed or
    HOLD_SECONDS pass."""
    worker_main(*args)
    time.sleep(HOLD_SECONDS)
    os._exit(0)  # no close: the parent ends the row by killing us


def hold_row(
    procs: Procs, ctx: Any, row: dict[str, Any], pid: int, setup: Any, args: tuple[Any, ...],
    held: Callable[[], int], gone: Callable[[int, int], bool], expiry: bool,
    opts: argparse.Namespace, say: Say,
) -> dict[str, Any]:  # fmt: skip
    """K client processes (``setup(*args, first, count)``) register N instances on the
    server ``pid``; then its CPU share and RSS and the clients' CPU over ``--seconds``,
    whether ``held()`` (instances held healthy) stays N, and with ``expiry`` (not with
    ``--no-expiry``; ``--quick``: one client only) the time from SIGKILLing one client until
    ``gone(N, its count)``.  Fills ``row``."""
    n, clients, label = row["instances"], row["clients"], row["mode"]
    ctx = mp.get_context("spawn")  # as a user's client process starts (not the fork server)
    rss_empty = rss_bytes(pid)
    share = n // clients
    jobs = [(setup, (*args, k * share, share if k < clients - 1 else n - k * share))
            for k in range(clients)]  # fmt: skip
    try:
        what = "the client processes to start"
        timeout = 120 + n * 50e-6
        children, go, out = procs.start_workers(ctx, _holder, jobs, what, timeout, _holder_main)
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        go.set()
        done = collect(out, clients, children, REGISTER_SECONDS + 60, "the registrations")
        row["register_s"] = round(time.perf_counter() - t0, 2)
        row["register_node_cpu_s"] = round(cpu_seconds(pid) - cpu0, 2)
        aborted = [d["aborted"] for d in done if "aborted" in d]
        failed = row["register_failed"] = sum(d.get("failed", 0) for d in done)
        if aborted:
            row["aborted"] = aborted[0]
            return row
        say(f"  {label}, {n:,} instances, {clients} clients: registered in {row['register_s']} s")
        pids = {d["pid"]: d["count"] for d in done}
        if wait_until(lambda: held() >= n - failed, 60) is None:
            raise RuntimeError(f"{label}: {n - failed:,} instances not held within 60 s")
        time.sleep(opts.beat_interval)  # warm-up: one beat interval (a bench, not a test)
        before = held()
        c0, k0, w0 = cpu_seconds(pid), sum(cpu_seconds(p) for p in pids), time.perf_counter()
        time.sleep(opts.seconds)
        c1, k1, w1 = cpu_seconds(pid), sum(cpu_seconds(p) for p in pids), time.perf_counter()
        after = held()
        rss = rss_bytes(pid)
        row.update(
            node_cpu=round((c1 - c0) / (w1 - w0), 4),
            clients_cpu=round((k1 - k0) / (w1 - w0), 4),
            rss_mb=round(rss / MB, 1),
            rss_empty_mb=round(rss_empty / MB, 1),
            bytes_per_instance=round((rss - rss_empty) / max(1, n)),
            all_healthy=before == after == n - failed,
            healthy_at_end=after,
        )
        say(f"    {label}: server CPU {row['node_cpu']:.1%}, RSS {row['rss_mb']:,.0f} MB, clients "
            f"CPU {row['clients_cpu']:.1%}, all healthy: {row['all_healthy']}")  # fmt: skip
        if expiry and opts.expiry and not (opts.quick and clients > 1):
            victim, owned = next(iter(pids.items()))
            os.kill(victim, signal.SIGKILL)
            killed = time.perf_counter()
            limit = opts.unhealthy_after + opts.check_interval + 40.0
            t = wait_until(lambda: gone(n - failed, owned), limit, 0.25)
            row["expiry_s"] = None if t is None else round(t - killed, 2)
            row["expired_instances"] = owned
            say(f"    SIGKILL of a client holding {owned:,}: gone after {row['expiry_s']} s")
        return row
    finally:
        procs.stop_children()


def run_row(
    procs: Procs, ctx: Any, log_dir: str, n: int, clients: int, sessions: bool,
    opts: argparse.Namespace, say: Say,
) -> dict[str, Any]:  # fmt: skip
    timings = []  # the node exactly as a user starts it, unless told otherwise
    if (opts.unhealthy_after, opts.check_interval) != NODE_DEFAULTS:
        opts.evict_after = 2 * opts.unhealthy_after
        timings = node_args(opts)
    node = procs.node(log_dir, timings)
    port = node.port
    row: dict[str, Any] = {"mode": "session" if sessions else "beats", "instances": n,
                           "clients": clients}  # fmt: skip
    try:
        setup = (node.address, sessions, opts.beat_interval)
        hold_row(procs, ctx, row, node.pid, _meshreg_holder, setup,
                 lambda: int(stats(port)["instances"]["healthy"]),
                 lambda _, owned: int(stats(port)["instances"]["unhealthy"]) >= owned,
                 sessions, opts, say)  # fmt: skip
        if "aborted" not in row:
            node_stats = stats(port)
            row.update(beats_per_s=node_stats["beats_per_second"],
                       sessions=node_stats.get("sessions", {}).get("count"))  # fmt: skip
        return row
    finally:
        node.stop()
        procs.nodes.remove(node)


def run_etcd_row(
    procs: Procs, ctx: Any, n: int, clients: int, opts: argparse.Namespace, say: Say
) -> dict[str, Any]:
    """The etcd row for ``n`` keys held by ``clients`` processes, one lease each."""
    row: dict[str, Any] = {"mode": "etcd", "instances": n, "clients": clients, "leases": clients}
    ttl = max(2, round(opts.unhealthy_after))  # etcd's least TTL is about 2 s

    def body(ports: list[int], pids: list[int]) -> dict[str, Any]:
        port, pid = ports[0], pids[0]
        channel = _etcd_channel(port, CONNECT_SECONDS)
        rng = channel.unary_unary(ETCD + "KV/Range")
        request = range_request(PREFIX, PREFIX_END, count_only=True)

        def count() -> int:
            return int(_ints(rng(request, timeout=RPC_SECONDS)).get(4, 0))  # RangeResponse.count

        try:
            hold_row(procs, ctx, row, pid, _etcd_holder, (port, ttl, opts.beat_interval), count,
                     lambda held, owned: count() <= held - owned, True, opts, say)  # fmt: skip
            return row
        finally:
            channel.close()

    try:
        return with_etcd(procs, body)  # type: ignore[no-any-return]
    except Exception as exc:  # the row records why; meshreg's rows are not lost
        return {**row, "aborted": f"{type(exc).__name__}: {exc}"}


def _etcd_plan(opts: argparse.Namespace) -> tuple[bool, bool, list[str]]:
    """(meshreg rows, etcd rows, why etcd is skipped) from ``--only etcd``, ``--no-peers``."""
    only_etcd = "etcd" in [x.lower() for x in opts.only or ()]
    if not opts.peers:
        return True, False, ["etcd: not run (--no-peers)"]
    why = etcd_missing()
    return not only_etcd, why is None, [] if why is None else [f"etcd: {why}"]


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
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

    rows: list[dict[str, Any]] = []
    for n, k, mode in plan:
        what = {"session": "sessions", "beats": "per-instance beats", "etcd": "etcd leases"}
        say(f"liveness: {what[mode]}, {n:,} "
            f"instances, {k} client process{'es' if k > 1 else ''} ...")  # fmt: skip
        try:
            if mode == "etcd":
                rows.append(run_etcd_row(procs, ctx, n, k, opts, say))
                continue
            rows.append(run_row(procs, ctx, log_dir, n, k, mode == "session", opts, say))
        except Exception as exc:  # a row failing must not cost the others
            rows.append({"mode": mode, "instances": n, "clients": k,
                         "aborted": f"{type(exc).__name__}: {exc}"})  # fmt: skip
            say(f"  aborted: {exc}")
    timings = (opts.beat_interval, opts.check_interval, opts.unhealthy_after)
    return {"rows": rows, "seconds": opts.seconds, "skipped": skipped,
            "unhealthy_after": opts.unhealthy_after, "check_interval": opts.check_interval,
            "timings": "beat / check / unhealthy-after / evict-after {:g}/{:g}/{:g}/{:g} s"
            .format(*timings, 2 * opts.unhealthy_after),
            "etcd": {"lease_ttl_s": max(2, round(opts.unhealthy_after)), "txn_ops": TXN_OPS,
                     "keepalive_s": opts.beat_interval}}  # fmt: skip


def _ratio(r: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """An etcd row against meshreg's session row of the same size and clients: etcd's node
    CPU, node RSS, clients' CPU and registration time, each as a multiple of meshreg's."""
    same = (r["instances"], r["clients"])
    mesh = next((m for m in rows if m["mode"] == "session" and "aborted" not in m
                 and (m["instances"], m["clients"]) == same), None)  # fmt: skip
    if r["mode"] != "etcd" or mesh is None:
        return ""

    keys = ("node_cpu", "rss_mb", "clients_cpu", "register_s")
    return " / ".join(ratio(r[k], mesh[k], "{:.1f}x") for k in keys)


def table(result: dict[str, Any]) -> str:
    head = ["liveness", "instances", "clients", "register s", "node CPU", "node RSS MB",
            "bytes/inst", "clients CPU", "all healthy", "SIGKILL->unhealthy s",
            "etcd/meshreg CPU / RSS / clients / register"]  # fmt: skip
    out = []
    for r in result["rows"]:
        first = [r["mode"], f"{r['instances']:,}", r["clients"]]
        if "aborted" in r:  # why, and the other cells empty
            out.append([*first, "aborted: " + r["aborted"][:60], *[""] * (len(head) - 4)])
            continue
        out.append([
            *first, f"{r['register_s']:.1f}", f"{r['node_cpu']:.1%}", f"{r['rss_mb']:,.0f}",
            f"{r['bytes_per_instance']:,}", f"{r['clients_cpu']:.1%}",
            "yes" if r["all_healthy"] else f"no ({r['healthy_at_end']:,})",
            str(r.get("expiry_s", "")), _ratio(r, result["rows"]),
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
                    figure, met(ok)])  # fmt: skip
    single = next((r for r in rows if r["clients"] == 1), None)
    if single is not None:
        ok = single["clients_cpu"] < GOAL_CPU and single["all_healthy"]
        out.append([f"{single['instances']:,} kept alive by one client process < 10% of a core",
                    f"{single['clients_cpu']:.1%}", met(ok)])  # fmt: skip
    expiries = [r["expiry_s"] for r in rows if r.get("expiry_s") is not None]
    if expiries or any("expiry_s" in r for r in rows):
        worst = max(expiries) if expiries else None
        limit = result["unhealthy_after"] + result["check_interval"]
        ok = worst is not None and len(expiries) == sum("expiry_s" in r for r in rows)
        out.append([f"session expiry within unhealthy_after + check_interval ({limit:g} s)",
                    f"{worst} s", met(ok and worst <= limit)])  # fmt: skip
    return out


def report(result: dict[str, Any], say: Say) -> None:
    if result["rows"]:
        say(table(result))
    for goal, figure, verdict in goals(result):
        say(f"  {goal}: {figure} ({verdict})")
    if any(r["mode"] == "etcd" for r in result["rows"]):
        say(
            f"  etcd: one lease per client process (TTL {result['etcd']['lease_ttl_s']} s, "
            f"keep-alive every {result['etcd']['keepalive_s']:g} s), keys put in transactions "
            f"of {TXN_OPS}; 'all healthy': "
            "every key still there; SIGKILL: until etcd deleted the client's keys"
        )
    for line in result.get("skipped", []):
        say(f"  skipped {line}")


SCENARIOS = (
    Scenario("liveness", run, report, "what keeping N instances alive costs: sessions vs "
             "per-instance beats, SIGKILL expiry, next to etcd leases (issue 13)",
             {"sizes": ((100_000,), (4000,)), "clients": (4, 4), "seconds": (10.0, 2.0),
              "unhealthy_after": (15.0, 15.0), "check_interval": (5.0, 5.0),
              "beat_interval": (5.0, 5.0)}),
)  # fmt: skip

if __name__ == "__main__":  # python -m bench.liveness
    run_alone("liveness")
