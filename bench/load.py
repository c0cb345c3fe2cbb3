"""The load generator (C processes, one DEALER each, W requests in flight, request bodies
pre-built as templates) and the raw ZeroMQ echo ceiling (bench/README.md, "The load
generator").
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import zmq
from zmq.backend import Socket as _Base

from bench.common import (
    GROUP,
    HOST,
    NS,
    READY_SECONDS,
    Curve,
    NodeProc,
    Procs,
    collect,
    connect,
    cpu_seconds,
    free_port_block,
    owned_services,
    percentile,
    process_table,
    stop_processes,
    system_busy_seconds,
    top_other,
)
from meshreg.wire.replies import encode_request

SAMPLE_EVERY = 16  # one request in this many is timed for the latency percentiles
STALL_SECONDS = 5.0  # no reply at all for this long: the run is declared stalled
DRAIN_SECONDS = 3.0  # after the window closes, how long to wait for outstanding replies
MAX_OPS_PER_SECOND = 2_000_000  # count bound per loader: seconds * this
SERVICES = 4  # by default the instances are spread over this many services
_NOBLOCK, _SNDMORE, _RCVMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.RCVMORE)
BACKGROUND_FIRST = 5_000_000  # instance numbers of background load (apart from the rest)
_SENTINEL_ID = 0xFEEDFACECAFEBEEF  # packs as 9 bytes that cannot occur elsewhere


# -- request templates ----------------------------------------------------------
def make_template(op: str, check: bool = True, **fields: Any) -> tuple[bytes, bytes]:
    """(head, tail) with ``head + packb(id) + tail == encode_request(op, id, **fields)``:
    a request then costs the loader one int pack and two concatenations."""
    body = encode_request(op, _SENTINEL_ID, **fields)
    mark = msgpack.packb(_SENTINEL_ID)
    if body.count(mark) != 1:
        raise RuntimeError(f"cannot template {op!r}: id marker not unique")
    head, _, tail = body.partition(mark)
    if check:
        for rid in (0, 1, 200, 70_000, 2**40):
            if head + msgpack.packb(rid) + tail != encode_request(op, rid, **fields):
                raise RuntimeError(f"template for {op!r} does not reproduce encode_request")
    return head, tail


def default_services(count: int = SERVICES) -> tuple[str, ...]:
    return tuple(f"bench-svc-{k}" for k in range(count))


def instance_fields(i: int, services: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Fields naming instance ``i``, of ``services[i % len(services)]``; the address is
    unique for i < 2**24."""
    services = services or default_services()
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return {"namespace": NS, "group": GROUP, "service": services[i % len(services)],
            "ip": ip, "port": 20000 + i % 40000, "cluster": "DEFAULT"}  # fmt: skip


Spec = tuple[Any, ...]  # (kind, n[, services[, first]]): what templates_for takes


def templates_for(
    kind: str | Callable[..., list[tuple[bytes, bytes]]], n: int,
    services: tuple[Any, ...] | None = None, first: int = 0,
) -> list[tuple[bytes, bytes]]:  # fmt: skip
    """Request templates of one workload: ``ping``, ``stats`` or ``services`` (of the
    default namespace), or ``beat``/``register``/``deregister`` of instances
    ``first .. first+n-1`` spread over ``services``, or ``churn``: each of them
    registered then deregistered (two changes per instance).  Built where they are used:
    a spawned process gets only the spec (a large pickled argument can block
    ``Process.start`` if the child dies early).  ``kind`` may also be another module's
    workload: a module-level function (picklable), called as ``kind(n, services, first)``."""
    if callable(kind):  # e.g. bench/config.py's config_templates
        return kind(n, services, first)
    if kind in ("ping", "stats"):
        return [make_template(kind)]
    if kind == "services":
        return [make_template(kind, namespace=NS)]
    if kind == "churn":
        reg, dereg = (templates_for(k, n, services, first) for k in ("register", "deregister"))
        return [t for pair in zip(reg, dereg, strict=True) for t in pair]
    if kind not in ("beat", "register", "deregister"):
        raise ValueError(f"unknown workload {kind!r}")
    extra = {"weight": 1.0, "metadata": {"zone": "bench"}} if kind == "register" else {}
    return [make_template(kind, i < first + 4, **extra, **instance_fields(i, services))
            for i in range(first, first + n)]  # fmt: skip


# -- the load generator ---------------------------------------------------------
def loader(
    endpoint: str, templates: list[tuple[bytes, bytes]], window: int, seconds: float,
    cleanups: list[Callable[[], Any]], warmup: float = 0.0, echo: bool = False,
    drain_seconds: float = DRAIN_SECONDS, rate: float | None = None, curve: Curve | None = None,
    once: bool = False,
) -> Callable[[], dict[str, Any]]:  # fmt: skip
    """A DEALER connected to ``endpoint`` (CURVE with ``curve``; closed by ``cleanups``) and
    the call that keeps ``window`` requests in flight on it for ``warmup + seconds`` (paced
    at ``rate`` requests/s if given; each template sent once with ``once``).  Replies inside
    the measuring window (after the warm-up) count towards ``ok``/``errors``;
    ``ok_total``/``errors_total`` count everything.  Bounded: at most MAX_OPS_PER_SECOND
    requests a second, ``warmup + seconds`` of sending, then ``drain_seconds``."""
    max_ops = len(templates) if once else max(1, int((seconds + warmup) * MAX_OPS_PER_SECOND))
    ctx = zmq.Context()
    hwm = max(1000, 2 * window)
    sock = connect(ctx, zmq.DEALER, endpoint, curve, SNDHWM=hwm, RCVHWM=hwm)
    cleanups += [ctx.term, lambda: sock.close(linger=0)]
    return lambda: _drive_loop(
        sock, templates, window, seconds, warmup, max_ops, echo, drain_seconds, rate
    )


def drive(endpoint: str, templates: list[tuple[bytes, bytes]], **kwargs: Any) -> dict[str, Any]:
    """:func:`loader`, run at once in this process."""
    cleanups: list[Callable[[], Any]] = []
    try:
        return loader(endpoint, templates, cleanups=cleanups, **kwargs)()
    finally:
        for close in reversed(cleanups):
            close()


def _drive_loop(
    sock: zmq.Socket, templates: list[tuple[bytes, bytes]], window: int, seconds: float,
    warmup: float, max_ops: int, echo: bool, drain_seconds: float, rate: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    perf = time.perf_counter
    packb, unpackb = msgpack.packb, msgpack.unpackb
    # pyzmq's send_multipart/recv_multipart cost several Python calls and zmq.Flag
    # arithmetic per message; the loader calls the Cython methods with int flags.
    bsend, brecv, bget, poll = _Base.send, _Base.recv, _Base.get, sock.poll
    noblock, sndmore, rcvmore, again = _NOBLOCK, _SNDMORE, _RCVMORE, zmq.Again

    def recv() -> list[bytes]:
        """One whole message without blocking (raises zmq.Again if none)."""
        frames = [brecv(sock, noblock)]
        while bget(sock, rcvmore):
            frames.append(brecv(sock, noblock))
        return frames

    empty = b""
    mask = SAMPLE_EVERY - 1
    n_templates = len(templates)
    stamps: dict[int, float] = {}
    latencies: list[float] = []
    error_names: Counter[str] = Counter()
    sent = outstanding = ok = errors = ok_total = errors_total = idx = 0
    next_id = 1
    stalled = False
    cpu_start = time.process_time()
    now = last_reply = t_start = perf()
    t_measure = t_start + warmup
    t_end = t_measure + seconds

    def take(frames: list[bytes], counting: bool) -> None:
        nonlocal ok, errors, ok_total, errors_total
        try:
            msg = unpackb(frames[-1])
            rid = msg["id"]
            good = echo or msg.get("ok") is True
        except Exception:
            msg, rid, good = None, 0, False
        if good:
            ok_total += 1
            ok += counting
        else:
            errors_total += 1
            errors += counting
            err = msg.get("error") if isinstance(msg, dict) else None
            error_names[err.get("name", "?") if isinstance(err, dict) else "BAD_REPLY"] += 1
        if not rid & mask:
            t0 = stamps.pop(rid, None)
            if t0 is not None and counting:
                latencies.append(perf() - t0)

    # Fill the window (paced: up to what is due by now), wait for a reply, take what
    # arrived.  The send block is inline: a call per request would cost more than a send.
    while now < t_end and sent < max_ops:  # bounded by t_end and max_ops
        due = min(max_ops, int((now - t_start) * rate) + 1) if rate else max_ops
        while outstanding < window and sent < due:
            head, tail = templates[idx]
            idx += 1
            if idx == n_templates:
                idx = 0
            rid = next_id
            next_id += 1
            if not rid & mask:
                stamps[rid] = perf()
            bsend(sock, empty, sndmore)
            bsend(sock, head + packb(rid) + tail, 0)
            outstanding += 1
            sent += 1
        # paced: zmq's poll counts whole ms: sleep >= 1 ms when nothing is due, never spin
        # (a full window behind schedule, a server slower than the rate, waits for a reply)
        if rate and outstanding < window:
            wait = (sent / rate) - (perf() - t_start)
            timeout = 0 if wait <= 0 else max(1, int(min(wait, 0.1) * 1000.0))
        else:
            timeout = int(STALL_SECONDS * 1000.0)
        if poll(timeout):
            last_reply = perf()
            counting = t_measure <= last_reply < t_end
            for _ in range(outstanding):  # bounded: at most what is in flight
                try:
                    frames = recv()
                except again:
                    break
                outstanding -= 1
                take(frames, counting)
        now = perf()
        if outstanding and now - last_reply > STALL_SECONDS:
            stalled = True
            break
    t_stop = min(perf(), t_end)
    cpu_used = time.process_time() - cpu_start
    cpu_busy = cpu_used / max(perf() - t_start, 1e-9)

    # Drain: collect the replies still in flight (not counted in the window).
    drain_deadline = perf() + drain_seconds
    while outstanding and not stalled:
        left = drain_deadline - perf()
        if left <= 0 or not poll(left * 1000.0):
            break
        for _ in range(outstanding):
            try:
                frames = recv()
            except again:
                break
            outstanding -= 1
            take(frames, False)
    return {"sent": sent, "ok": ok, "errors": errors, "ok_total": ok_total,
            "errors_total": errors_total, "lost": outstanding, "stalled": stalled,
            "window_seconds": max(t_stop - t_measure, 0.0), "cpu_busy": cpu_busy,
            "cpu_seconds": cpu_used, "latencies": latencies,
            "error_names": dict(error_names)}  # fmt: skip


def _loader(
    spec: Spec, endpoint: str, kwargs: dict[str, Any], cleanups: list[Callable[[], Any]]
) -> Callable[[], dict[str, Any]]:
    """A load-generator process's set-up (:func:`worker_main`)."""
    return loader(endpoint, templates_for(*spec), cleanups=cleanups, **kwargs)


def echo_batch(sock: Any, limit: int = 512) -> int:
    """Send back up to ``limit`` waiting messages as received (at most a batch, as the
    node does); how many.  The echo server's loop turn (also bench/beatloop's)."""
    brecv, bsend, bget = _Base.recv, _Base.send, _Base.get
    noblock, sndmore, rcvmore, again = _NOBLOCK, _SNDMORE, _RCVMORE, zmq.Again
    n = 0
    for _ in range(limit):
        try:
            frames = [brecv(sock, noblock)]
        except again:
            break
        while bget(sock, rcvmore):
            frames.append(brecv(sock, 0))
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            bsend(sock, frame, 0 if i == last else sndmore)
        n += 1
    return n


def _echo(
    port: int, lifetime: float, server: tuple[bytes, bytes] | None,
    cleanups: list[Callable[[], Any]],
) -> Callable[[], None]:  # fmt: skip
    """The ceiling: a bare ROUTER returning every message as received (a CURVE server that
    lets any client key in with ``server`` = (public, secret)).  It uses the same lean
    calls as the node's request loop: the fastest a pyzmq server can answer these bytes."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    cleanups += [ctx.term, lambda: sock.close(linger=0)]
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)  # the node's ROUTER settings
    sock.setsockopt(zmq.RCVHWM, 100_000)
    if server is not None:
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = server
    sock.bind(f"tcp://{HOST}:{port}")
    parent = os.getppid()

    def serve() -> None:
        deadline = time.monotonic() + lifetime
        while time.monotonic() < deadline and os.getppid() == parent:  # bounded
            if sock.poll(100):  # ms; lets the loop notice its deadline
                echo_batch(sock)

    return serve


def start_loaders(
    procs: Procs, ctx: Any, targets: list[tuple[int, Spec]], kwargs: dict[str, Any], what: str,
    setup: float = 0.0,
) -> tuple[list[Any], Any, Any]:  # fmt: skip
    """One load-generator process per ``(port, spec)``, ready to go (``setup``: seconds they
    may take beyond starting, to build their templates): (processes, go, out)."""
    jobs = [(spec, f"tcp://{HOST}:{port}", kwargs) for port, spec in targets]
    return procs.start_workers(ctx, _loader, jobs, what, READY_SECONDS + setup)


def run_load(
    procs: Procs, ctx: Any, targets: list[tuple[int, Spec]], server_pids: list[int],
    window: int, seconds: float, warmup: float, echo: bool = False, rate: float | None = None,
    curve: Curve | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One load-generator process per ``(port, spec)`` target, all started together;
    ``rate`` (requests/s, all loaders together) paces them instead of keeping their
    windows full.  Also measures the servers' CPU over the run (``/proc``)."""
    rate = rate / len(targets) if rate else None
    kwargs = {"window": window, "seconds": seconds, "warmup": warmup, "echo": echo, "rate": rate,
              "curve": curve}  # fmt: skip
    jobs = [(spec, f"tcp://{HOST}:{port}", kwargs) for port, spec in targets]
    budget = warmup + seconds + STALL_SECONDS + DRAIN_SECONDS + READY_SECONDS
    return run_loaders(
        procs, ctx, _loader, jobs, server_pids, window, budget, "the load generators"
    )


def run_loaders(
    procs: Procs, ctx: Any, setup: Callable[..., Any], jobs: list[tuple[Any, ...]],
    server_pids: list[int], window: int, budget: float, what: str, setup_seconds: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """One loader process per job (``setup(*job, cleanups)``, :func:`worker_main`), let go
    together once all are ready; their results merged, with the servers' CPU over the run:
    a share of one core and CPU microseconds per reply (the cost that does not depend on
    how loaders and servers share the cores), and what everything else used."""
    loaders, go, out = procs.start_workers(
        ctx, setup, jobs, f"{what} to start", READY_SECONDS + setup_seconds
    )
    table0 = process_table()

    def server_cpu() -> float:
        return sum(cpu_seconds(pid) for pid in server_pids)

    cpu0, sys0, t0 = server_cpu(), system_busy_seconds(), time.perf_counter()
    go.set()
    results = collect(out, len(loaders), loaders, budget, f"{what}' results")
    cpu1, sys1, elapsed = server_cpu(), system_busy_seconds(), time.perf_counter() - t0
    mine = {os.getpid(), *server_pids, *(p.pid for p in loaders if p.pid is not None)}
    others = top_other(table0, process_table(), mine)
    for p in loaders:
        p.join(5)
    for r in results:
        if "aborted" in r:
            raise RuntimeError(f"{what} failed: {r['aborted']}")
    row = merge(results)
    replies = sum(r["ok_total"] + r["errors_total"] for r in results)
    row["server_cpu_busy"] = (cpu1 - cpu0) / elapsed
    row["server_cpu_us_per_op"] = (cpu1 - cpu0) / replies * 1e6 if replies else float("nan")
    # whatever else ran meanwhile: system busy time minus the servers' and the loaders' own
    loaders_cpu = sum(r["cpu_seconds"] for r in results)
    row["other_cpu_busy"] = max(sys1 - sys0 - (cpu1 - cpu0) - loaders_cpu, 0.0) / elapsed
    row["other_top"] = [f"{c} ({u / elapsed:.0%})" for c, u in others if u / elapsed >= 0.005]
    row["clients"], row["window"] = len(results), window
    return row


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(x for r in results for x in r["latencies"])
    names: Counter[str] = Counter()
    for r in results:
        names.update(r["error_names"])

    def total(key: str) -> Any:
        return sum(r[key] for r in results)

    return {
        "ops_per_second": sum(
            r["ok"] / r["window_seconds"] for r in results if r["window_seconds"] > 0
        ),  # fmt: skip
        **{k: total(k) for k in ("ok", "errors", "errors_total", "lost", "sent")},
        "stalled": any(r["stalled"] for r in results),
        "window_seconds": max(r["window_seconds"] for r in results),
        "p50_ms": percentile(lat, 50) * 1000.0,
        "p99_ms": percentile(lat, 99) * 1000.0,
        "latency_samples": len(lat),
        "error_names": dict(names),
        "loader_cpu_busy": total("cpu_busy"),
    }


def run_rows(repeat: int, run: Any, paced: bool = False) -> dict[str, Any]:
    """``repeat`` calls of ``run()``; the median run stands for them: by ops/s, or for a
    paced load (every run at the same rate) by p99 latency."""
    runs = [run() for _ in range(repeat)]
    key = "p99_ms" if paced else "ops_per_second"
    median = sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2]
    return {**median, "runs_ops_per_second": [round(r["ops_per_second"]) for r in runs],
            "runs_p99_ms": [round(r["p99_ms"], 3) for r in runs]}  # fmt: skip


def start_echo(
    procs: Procs, ctx: Any, lifetime: float, server: tuple[bytes, bytes] | None = None
) -> tuple[int, int]:
    """The raw ceiling's server in its own process: (port, pid); a CURVE server with
    ``server`` (its public and secret key)."""
    port = free_port_block(1)
    what = "the echo server to start"
    (p,), go, _ = procs.start_workers(ctx, _echo, [(port, lifetime, server)], what)
    go.set()
    return port, p.pid


def preload(
    port: int, kind: str, n: int, services: tuple[str, ...] | None = None, first: int = 0,
    window: int = 256, timeout: float = 120.0, curve: Curve | None = None,
) -> float:  # fmt: skip
    """Send ``n`` register (or other) requests from this process; seconds taken.
    Raises if any is not answered ok."""
    t0 = time.perf_counter()
    r = drive(f"tcp://{HOST}:{port}", templates_for(kind, n, services, first), window=window,
              seconds=timeout, drain_seconds=30.0, curve=curve, once=True)  # fmt: skip
    if r["ok_total"] != n:
        raise RuntimeError(f"{kind} of {n} instances on {HOST}:{port}: {r['ok_total']} ok, "
                           f"errors {r['error_names']}, {r['lost']} unanswered")  # fmt: skip
    return time.perf_counter() - t0


def start_background(
    procs: Procs, ctx: Any, nodes: list[NodeProc], rate: float, per_node: int,
    limit: float = 900.0, curve: Curve | None = None, kind: str = "beat",
    services: tuple[str, ...] | None = None,
) -> Callable[[], None]:  # fmt: skip
    """Register ``per_node`` instances on each node (of ``services``, by default two it
    owns) and beat them all at ``rate`` beats/s in total, one paced loader per node, until
    the function returned is called (or ``limit`` s).  ``kind="churn"``: register and
    deregister them in turn instead (``rate`` changes/s, every one replicated)."""
    owned = owned_services([n.address for n in nodes], 2)
    targets: list[tuple[int, Spec]] = []
    for k, node in enumerate(nodes):
        spec = (kind, per_node, services or owned[node.address], BACKGROUND_FIRST + k * per_node)
        if kind == "beat":
            preload(node.port, "register", *spec[1:], curve=curve)
        targets.append((node.port, spec))
    kwargs = {"window": 256, "seconds": limit, "rate": rate / len(targets), "curve": curve}
    loaders, go, _ = start_loaders(procs, ctx, targets, kwargs, "background loaders")
    go.set()
    return lambda: stop_processes(loaders)
