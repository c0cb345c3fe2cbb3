"""The etcd row of ``liveness`` (issue 13): etcd holding the same N keys on K leases, with
the same K client processes as meshreg's session rows (bench/README.md).

Each client process does what an etcd client keeping a session does (clientv3
``concurrency.Session``): one lease per process, granted with TTL 15 s (meshreg's
unhealthy-after) and kept alive on one LeaseKeepAlive stream every TTL/3 = 5 s (clientv3's
interval, meshreg's beat interval), started right after the grant so that a long
registration does not outlive the lease.  Its share of the N keys is put on that lease in
transactions of TXN_OPS puts (etcd's default ``--max-txn-ops``), TXN_WINDOW transactions
in flight: the fastest a bulk client can register, as meshreg's ``register_many`` batches.
Then etcd's CPU share and RSS over the same window as meshreg's rows, the clients' CPU, and
(as meshreg's expiry) the time from SIGKILLing one client until etcd has deleted its keys.
etcd is started on 127.0.0.1 with a temporary data dir (bench/baselines.py); every wait
is bounded.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections import deque
from typing import Any

from bench.baselines import (
    CONNECT_SECONDS,
    ETCD,
    _etcd_channel,
    _field,
    _ints,
    _measured,
    etcd_missing,
    etcd_selfcheck,
    lease_grant_response,
    lease_keepalive_response,
    start_etcd,
)
from bench.common import MB, Procs, Say, collect, cpu_seconds, rss_bytes, wait_until

__all__ = ["etcd_missing", "run_etcd_row"]

LEASE_TTL = 15  # s: meshreg's unhealthy-after
KEEPALIVE_INTERVAL = LEASE_TTL / 3  # s: clientv3's keep-alive interval, meshreg's beat interval
TXN_OPS = 128  # puts per transaction: etcd's default --max-txn-ops
TXN_WINDOW = 8  # transactions in flight per client process
RPC_SECONDS = 60.0  # deadline of one request
PREFIX = b"/live/"  # every key of the row; the range [PREFIX, PREFIX_END) counts them
PREFIX_END = b"/live0"


def key_value(i: int) -> tuple[bytes, bytes]:
    """Instance ``i`` as meshreg's liveness rows name it (100 per service), as a key and a
    JSON value of the size a registry stores."""
    ip, port = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 8000 + (i >> 24)
    value = (f'{{"ip":"{ip}","port":{port},"weight":1.0,"healthy":true,'
             f'"cluster":"DEFAULT","metadata":{{}}}}')  # fmt: skip
    return PREFIX + f"live-svc-{i // 100}/{ip}:{port}".encode(), value.encode()


def _keepalive(channel: Any, lease_id: int, stop: threading.Event, hold: float) -> dict[str, int]:
    """Keep ``lease_id`` alive on one stream, one request every KEEPALIVE_INTERVAL, until
    ``stop`` or ``hold`` seconds; answers counted in the returned dict (a daemon thread)."""
    import grpc

    st = {"sent": 0, "answered": 0, "expired": 0}
    request = _field(1, lease_id)

    def requests() -> Any:
        for _ in range(int(hold / KEEPALIVE_INTERVAL) + 1):  # bounded: the hold time
            st["sent"] += 1
            yield request
            if stop.wait(KEEPALIVE_INTERVAL):
                return

    def consume() -> None:
        call = channel.stream_stream(ETCD + "Lease/LeaseKeepAlive")(requests(), timeout=hold + 60)
        try:
            for answer in call:  # bounded: one per request, and the stream's deadline
                st["answered"] += 1
                if lease_keepalive_response(answer)[1] <= 0:
                    st["expired"] += 1
        except grpc.RpcError:
            pass

    threading.Thread(target=consume, daemon=True, name="etcd-keepalive").start()
    return st


def _holder_main(
    port: int, first: int, count: int, hold: float, ready: Any, go: Any, out: Any
) -> None:
    """One client process: one lease, its keep-alive stream, ``count`` keys put on it in
    pipelined transactions; report, then hold until killed or ``hold`` seconds pass."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        channel = _etcd_channel(port, CONNECT_SECONDS)
        grant = channel.unary_unary(ETCD + "Lease/LeaseGrant")
        txn = channel.unary_unary(ETCD + "KV/Txn")
        pairs = [key_value(i) for i in range(first, first + count)]
        ready.put(os.getpid())
        go.wait(120)
        t0 = time.perf_counter()
        lease_id, _, error = lease_grant_response(grant(_field(1, LEASE_TTL), timeout=RPC_SECONDS))
        if error or lease_id <= 0:
            raise RuntimeError(f"LeaseGrant failed: {error!r} (id {lease_id})")
        stop = threading.Event()
        alive = _keepalive(channel, lease_id, stop, hold)
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
        out.put({"pid": os.getpid(), "count": count, "failed": failed,
                 "seconds": time.perf_counter() - t0, "lease": lease_id})  # fmt: skip
    except Exception as exc:  # report, do not hang the parent
        out.put({"pid": os.getpid(), "count": count, "aborted": f"{type(exc).__name__}: {exc}"})
        return
    time.sleep(hold)
    os._exit(0 if not alive["expired"] else 3)  # no close: the parent ends the row by a kill


def _counter(port: int) -> Any:
    """``count()``: the keys under PREFIX now (a RangeRequest with count_only)."""
    channel = _etcd_channel(port, CONNECT_SECONDS)
    rng = channel.unary_unary(ETCD + "KV/Range")
    request = _field(1, PREFIX) + _field(2, PREFIX_END) + _field(9, 1)

    def count() -> int:
        return int(_ints(rng(request, timeout=RPC_SECONDS)).get(4, 0))  # RangeResponse.count

    return channel, count


def run_etcd_row(
    procs: Procs, ctx: Any, n: int, clients: int, opts: argparse.Namespace, say: Say,
    bounds: dict[str, float], expiry: bool,
) -> dict[str, Any]:  # fmt: skip
    """The etcd row for ``n`` keys held by ``clients`` processes (``bounds``: register,
    hold, expiry and warm-up seconds, the same as meshreg's rows)."""
    row: dict[str, Any] = {"mode": "etcd", "instances": n, "clients": clients, "leases": clients}

    def body(port: int, pid: int) -> list[dict[str, Any]]:
        etcd_selfcheck(port)  # the hand-made protobuf against this server
        rss_empty = rss_bytes(pid)
        channel, count = _counter(port)
        ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        share = n // clients
        children = procs.start_children([
            ctx.Process(target=_holder_main, daemon=True, args=(
                port, k * share, share if k < clients - 1 else n - k * share,
                bounds["hold"], ready, go, out))
            for k in range(clients)
        ])  # fmt: skip
        try:
            collect(ready, clients, children, 120 + n * 50e-6, "the etcd client processes")
            cpu0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            go.set()
            done = collect(out, clients, children, bounds["register"] + 60, "the etcd puts")
            row["register_s"] = round(time.perf_counter() - t0, 2)
            row["register_node_cpu_s"] = round(cpu_seconds(pid) - cpu0, 2)
            aborted = [d["aborted"] for d in done if "aborted" in d]
            failed = row["register_failed"] = sum(d.get("failed", 0) for d in done)
            if aborted:
                row["aborted"] = aborted[0]
                return [row]
            say(f"  etcd, {n:,} keys on {clients} leases: put in {row['register_s']} s")
            held = n - failed
            if wait_until(lambda: count() >= held, 60) is None:
                raise RuntimeError(f"etcd did not hold {held:,} keys within 60 s")
            time.sleep(bounds["warmup"])  # one keep-alive interval, as meshreg's rows
            before = count()
            pids = {d["pid"]: d["count"] for d in done}
            c0, k0, w0 = cpu_seconds(pid), sum(cpu_seconds(p) for p in pids), time.perf_counter()
            time.sleep(opts.seconds)
            c1, k1, w1 = cpu_seconds(pid), sum(cpu_seconds(p) for p in pids), time.perf_counter()
            after = count()
            rss = rss_bytes(pid)
            row.update(
                node_cpu=round((c1 - c0) / (w1 - w0), 4),
                clients_cpu=round((k1 - k0) / (w1 - w0), 4),
                rss_mb=round(rss / MB, 1),
                rss_empty_mb=round(rss_empty / MB, 1),
                bytes_per_instance=round((rss - rss_empty) / max(1, n)),
                all_healthy=before == after == held,
                healthy_at_end=after,
            )
            say(f"    etcd CPU {row['node_cpu']:.1%}, RSS {row['rss_mb']:,.0f} MB, clients CPU "
                f"{row['clients_cpu']:.1%}, all keys held: {row['all_healthy']}")  # fmt: skip
            if expiry:
                victim, owned = next(iter(pids.items()))
                os.kill(victim, signal.SIGKILL)
                killed = time.perf_counter()
                t = wait_until(lambda: count() <= held - owned, bounds["expiry"], 0.25)
                row["expiry_s"] = None if t is None else round(t - killed, 2)
                row["expired_instances"] = owned
                say(f"    SIGKILL of a client holding {owned:,}: its keys gone after "
                    f"{row['expiry_s']} s")  # fmt: skip
            return [row]
        finally:
            procs.stop_children()
            channel.close()

    try:
        return _measured(procs, "etcd", lambda work: start_etcd(procs, work), body)[0]
    except Exception as exc:  # the row records why; meshreg's rows are not lost
        return {**row, "aborted": f"{type(exc).__name__}: {exc}"}
