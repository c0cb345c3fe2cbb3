"""Heartbeat throughput of one meshreg node, against a raw ZeroMQ echo baseline.

Run from the repository root with the project's interpreter::

    python bench/heartbeat.py [--instances N] [--seconds S] [--clients C] [--window W]

Three workloads, each driven by the same load generator (C processes, one
DEALER each, W requests outstanding per DEALER, ``[b"", body]`` frames as a
REQ socket would send them):

* ``raw zmq echo``: a bare ROUTER that sends every message straight back
  (``recv_multipart``/``send_multipart``, the calls the node's loop makes), fed
  the very bytes of the beat requests: the floor for a pyzmq server;
* ``meshreg ping``: the node's ``ping`` (decode, validate, dispatch, reply);
* ``meshreg beat``: the node's ``beat`` for N registered instances, cycled
  through (the hot path of a real deployment).

Every process this script starts is stopped on the way out (also on Ctrl-C or
SIGTERM); everything binds and connects to 127.0.0.1 only; every loop is
bounded in both iterations and time.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import msgpack
import zmq
from zmq.backend import Socket as _Base

from meshreg import __version__ as MESHREG_VERSION
from meshreg.wire.replies import encode_request

HOST = "127.0.0.1"
SAMPLE_EVERY = 16  # one request in this many is timed for the latency percentiles
STALL_SECONDS = 5.0  # no reply at all for this long: the run is declared stalled
DRAIN_SECONDS = 3.0  # after the window closes, how long to wait for outstanding replies
READY_SECONDS = 30.0  # bound on process start-up (spawn + imports + connect)
NODE_START_SECONDS = 15.0  # bound on the node answering its first ping
MAX_OPS_PER_SECOND = 2_000_000  # count bound per loader: seconds * this
OTHER_CPU_WARN = 0.10  # share of a core used by other processes that makes a run suspect
SERVICES = 4  # the registered instances are spread over this many services
_NOBLOCK, _SNDMORE, _RCVMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.RCVMORE)
_SENTINEL_ID = 0xFEEDFACECAFEBEEF  # packs as 9 bytes that cannot occur elsewhere


# -- request templates ----------------------------------------------------------
def make_template(op: str, check: bool = True, **fields: Any) -> tuple[bytes, bytes]:
    """(head, tail) with ``head + packb(id) + tail == encode_request(op, id, **fields)``.

    The loader then builds a request with one int pack and two concatenations
    instead of packing a whole map, so the load generator stays cheap.
    """
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


def instance_fields(i: int) -> dict[str, Any]:
    """Fields naming instance ``i`` (what the real client puts in a beat)."""
    return {
        "namespace": "public",
        "group": "DEFAULT_GROUP",
        "service": f"bench-svc-{i % SERVICES}",
        "ip": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "port": 20000 + i % 40000,
        "cluster": "DEFAULT",
    }


def templates_for(kind: str, n: int) -> list[tuple[bytes, bytes]]:
    """Request templates of one workload: ``ping``, or ``beat``/``register`` of n instances.

    Built where they are used: a spawned process gets only ``(kind, n)``, since
    a large pickled argument can block ``Process.start`` if the child dies early.
    """
    if kind == "ping":
        return [make_template("ping")]
    extra: dict[str, Any] = {}
    if kind == "register":
        extra = {"weight": 1.0, "metadata": {"zone": "bench"}}
    elif kind != "beat":
        raise ValueError(f"unknown workload {kind!r}")
    return [make_template(kind, i < 4, **extra, **instance_fields(i)) for i in range(n)]


# -- the load generator ---------------------------------------------------------
def drive(
    endpoint: str,
    templates: list[tuple[bytes, bytes]],
    window: int,
    seconds: float,
    warmup: float = 0.0,
    max_ops: int | None = None,
    echo: bool = False,
    drain_seconds: float = DRAIN_SECONDS,
    go: Any = None,
    ready: Any = None,
) -> dict[str, Any]:
    """Keep ``window`` requests in flight on one DEALER for ``warmup + seconds``.

    Replies received inside the measuring window (after the warm-up) count
    towards ``ok``/``errors``; ``ok_total``/``errors_total`` count everything.
    Bounded: at most ``max_ops`` requests, at most ``warmup + seconds`` of
    sending, then at most ``drain_seconds`` waiting for the stragglers.
    """
    if max_ops is None:
        max_ops = max(1, int((seconds + warmup) * MAX_OPS_PER_SECOND))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, max(1000, 2 * window))
    sock.setsockopt(zmq.RCVHWM, max(1000, 2 * window))
    sock.connect(endpoint)
    try:
        if ready is not None:
            ready.put(os.getpid())
        if go is not None and not go.wait(READY_SECONDS):
            return {"aborted": "no start signal"}
        return _drive_loop(sock, templates, window, seconds, warmup, max_ops, echo, drain_seconds)
    finally:
        sock.close(linger=0)
        ctx.term()


def _drive_loop(
    sock: zmq.Socket,
    templates: list[tuple[bytes, bytes]],
    window: int,
    seconds: float,
    warmup: float,
    max_ops: int,
    echo: bool,
    drain_seconds: float,
) -> dict[str, Any]:
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
    sent = outstanding = ok = errors = ok_total = errors_total = 0
    next_id = 1
    idx = 0
    stalled = False

    cpu_start = time.process_time()
    t_start = perf()
    t_measure = t_start + warmup
    t_end = t_measure + seconds
    now = t_start

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

    # Main phase: fill the window, wait for at least one reply, drain what arrived.
    while now < t_end and sent < max_ops:
        while outstanding < window and sent < max_ops:
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
        if not poll(STALL_SECONDS * 1000.0):
            stalled = True
            break
        now = perf()
        counting = t_measure <= now < t_end
        for _ in range(outstanding):  # bounded: at most what is in flight
            try:
                frames = recv()
            except again:
                break
            outstanding -= 1
            take(frames, counting)
    t_stop = min(perf(), t_end)
    cpu_used = time.process_time() - cpu_start
    cpu_busy = cpu_used / max(perf() - t_start, 1e-9)

    # Drain phase: collect the replies still in flight (not counted in the window).
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

    return {
        "sent": sent,
        "ok": ok,
        "errors": errors,
        "ok_total": ok_total,
        "errors_total": errors_total,
        "lost": outstanding,
        "stalled": stalled,
        "window_seconds": max(t_stop - t_measure, 0.0),
        "cpu_busy": cpu_busy,
        "cpu_seconds": cpu_used,
        "latencies": latencies,
        "error_names": dict(error_names),
    }


def _loader_main(
    spec: tuple[str, int], args: tuple[Any, ...], ready: Any, go: Any, out: Any
) -> None:
    """Entry point of one load-generator process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        endpoint, *rest = args
        result = drive(endpoint, templates_for(*spec), *rest, go=go, ready=ready)
    except Exception as exc:  # report, do not hang the parent
        result = {"aborted": f"{type(exc).__name__}: {exc}"}
    out.put(result)


def _echo_main(port: int, lifetime: float, ready: Any) -> None:
    """The baseline: a bare ROUTER that returns every message as received."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)  # the node's ROUTER settings
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.RCVTIMEO, 100)  # ms; lets the loop notice its deadline
    sock.bind(f"tcp://{HOST}:{port}")
    ready.put(os.getpid())
    recv, send, again = sock.recv_multipart, sock.send_multipart, zmq.Again
    deadline = time.monotonic() + lifetime
    parent = os.getppid()
    try:
        while True:  # bounded by the deadline (checked at least every 100 ms idle)
            try:
                send(recv())
                continue
            except again:
                pass
            if time.monotonic() >= deadline or os.getppid() != parent:
                break
    finally:
        sock.close(linger=0)
        ctx.term()


# -- processes ------------------------------------------------------------------
class Procs:
    """Everything started here, so that ``stop_all`` can end it."""

    def __init__(self) -> None:
        self.children: list[Any] = []  # multiprocessing.Process
        self.node: subprocess.Popen[bytes] | None = None
        self.node_log = ""

    def stop_all(self) -> None:
        for p in self.children:
            if p.is_alive():
                p.terminate()
        for p in self.children:
            if p.pid is None:
                continue  # never started
            p.join(3)
            if p.is_alive():
                p.kill()
                p.join(3)
        self.children.clear()
        node = self.node
        if node is not None and node.poll() is None:
            node.send_signal(signal.SIGTERM)  # graceful: lets --profile-node write
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(5)
        self.node = None


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port p with p and p+1 both free on 127.0.0.1 (node: requests + notifications)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port < 65534 and port_free(port + 1):
            return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


def call(port: int, op: str, timeout: float = 2.0, **fields: Any) -> dict[str, Any]:
    """One request over a fresh REQ socket; raises TimeoutError if no answer."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://{HOST}:{port}")
        sock.send(encode_request(op, 1, **fields))
        if not sock.poll(timeout * 1000.0):
            raise TimeoutError(f"no answer to {op!r} from {HOST}:{port} within {timeout}s")
        reply: dict[str, Any] = msgpack.unpackb(sock.recv())
        return reply
    finally:
        sock.close(linger=0)
        ctx.term()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all threads (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_table() -> dict[int, tuple[str, float]]:
    """{pid: (command, CPU seconds)} of every process now (Linux /proc; best effort)."""
    table: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read(200).replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        comm, rest = stat.rsplit(")", 1)
        fields = rest.split()
        table[int(name)] = (
            cmd or f"[{comm.split('(', 1)[-1]}]",
            (int(fields[11]) + int(fields[12])) / tick,
        )
    return table


def top_other(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], mine: set[int]
) -> list[tuple[str, float]]:
    """The processes, not ours, that used the most CPU between two tables."""
    used = []
    for pid, (cmd, cpu) in after.items():
        if pid in mine:
            continue
        delta = cpu - before.get(pid, (cmd, 0.0))[1]
        if delta > 0:
            used.append((f"{pid} {cmd[:70]}", delta))
    return sorted(used, key=lambda u: -u[1])[:3]


def system_busy_seconds() -> float:
    """CPU seconds all processors spent not idle since boot (Linux /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def start_echo(procs: Procs, ctx: Any, lifetime: float) -> tuple[int, int]:
    port = free_port_pair()
    ready = ctx.Queue()
    p = ctx.Process(target=_echo_main, args=(port, lifetime, ready), daemon=True)
    procs.children.append(p)
    p.start()
    collect(ready, 1, [p], READY_SECONDS, "the echo server to start")
    assert p.pid is not None
    return port, p.pid


def start_node(procs: Procs, profile: str | None) -> int:
    port = free_port_pair()
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", profile]
    cmd += ["-m", "meshreg", "node", "--host", HOST, "--port", str(port)]
    fd, procs.node_log = tempfile.mkstemp(prefix="meshreg-bench-node-", suffix=".log")
    try:
        procs.node = subprocess.Popen(
            cmd, stdout=fd, stderr=fd, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + NODE_START_SECONDS
    while True:  # bounded by the deadline
        if procs.node.poll() is not None:
            raise RuntimeError(
                f"the node exited early ({procs.node.returncode}):\n{read_log(procs.node_log)}"
            )
        try:
            if call(port, "ping", timeout=0.5).get("ok"):
                return port
        except TimeoutError:
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the node did not answer ping within {NODE_START_SECONDS}s")
        time.sleep(0.05)


def read_log(path: str, limit: int = 4000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-limit:]
    except OSError:
        return ""


def collect(q: Any, n: int, children: list[Any], timeout: float, what: str) -> list[Any]:
    """``n`` items from ``q`` within ``timeout``; fails fast if a child died without one."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(items) < n:  # bounded by the deadline
        try:
            items.append(q.get(timeout=0.2))
            continue
        except queue.Empty:
            pass
        dead = [p.exitcode for p in children if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(
                f"a child process exited with {dead[0]} while waiting for {what} "
                "(its traceback, if any, is above)"
            )
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
    return items


def run_load(
    procs: Procs,
    ctx: Any,
    port: int,
    server_pid: int,
    spec: tuple[str, int],
    opts: argparse.Namespace,
    echo: bool = False,
) -> dict[str, Any]:
    """Run the load generator in ``opts.clients`` processes; merge their results.

    Also measures the server's CPU use over the run (``/proc``): utilisation of
    one core and CPU microseconds per reply, the cost that does not depend on
    how the loaders and the server share the cores.
    """
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    args = (
        f"tcp://{HOST}:{port}",
        opts.window,
        opts.seconds,
        opts.warmup,
        None,
        echo,
    )
    loaders = [
        ctx.Process(target=_loader_main, args=(spec, args, ready, go, out), daemon=True)
        for _ in range(opts.clients)
    ]
    procs.children.extend(loaders)
    for p in loaders:
        p.start()
    collect(ready, len(loaders), loaders, READY_SECONDS, "the load generators to start")
    table0 = process_cpu_table()
    cpu0, sys0, t0 = cpu_seconds(server_pid), system_busy_seconds(), time.perf_counter()
    go.set()
    budget = opts.warmup + opts.seconds + STALL_SECONDS + DRAIN_SECONDS + READY_SECONDS
    results = collect(out, len(loaders), loaders, budget, "the load generators' results")
    cpu1, sys1, t1 = cpu_seconds(server_pid), system_busy_seconds(), time.perf_counter()
    mine = {os.getpid(), server_pid, *(p.pid for p in loaders if p.pid is not None)}
    others = top_other(table0, process_cpu_table(), mine)
    for p in loaders:
        p.join(5)
    for r in results:
        if "aborted" in r:
            raise RuntimeError(f"a load generator failed: {r['aborted']}")
    merged = merge(results)
    replies = sum(r["ok_total"] + r["errors_total"] for r in results)
    merged["server_cpu_busy"] = (cpu1 - cpu0) / (t1 - t0)
    merged["server_cpu_us_per_op"] = (cpu1 - cpu0) / replies * 1e6 if replies else float("nan")
    # Whatever else ran meanwhile (other programs; this script's parent, which only
    # waits): system busy time minus the server's and the loaders' own.
    loaders_cpu = sum(r["cpu_seconds"] for r in results)
    merged["other_cpu_busy"] = max(sys1 - sys0 - (cpu1 - cpu0) - loaders_cpu, 0.0) / (t1 - t0)
    merged["other_top"] = [
        f"{cmd} ({cpu / (t1 - t0):.0%})" for cmd, cpu in others if cpu / (t1 - t0) >= 0.005
    ]
    return merged


def run_rows(
    procs: Procs,
    ctx: Any,
    port: int,
    server_pid: int,
    spec: tuple[str, int],
    opts: argparse.Namespace,
    echo: bool = False,
) -> dict[str, Any]:
    """``opts.repeat`` runs of one workload; the run with the median ops/s stands for it."""
    runs = [run_load(procs, ctx, port, server_pid, spec, opts, echo) for _ in range(opts.repeat)]
    median = sorted(runs, key=lambda r: r["ops_per_second"])[(len(runs) - 1) // 2]
    return {**median, "runs_ops_per_second": [round(r["ops_per_second"]) for r in runs]}


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(x for r in results for x in r["latencies"])
    names: Counter[str] = Counter()
    for r in results:
        names.update(r["error_names"])
    ops = sum(r["ok"] / r["window_seconds"] for r in results if r["window_seconds"] > 0)
    return {
        "ops_per_second": ops,
        "ok": sum(r["ok"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "errors_total": sum(r["errors_total"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "stalled": any(r["stalled"] for r in results),
        "sent": sum(r["sent"] for r in results),
        "window_seconds": max(r["window_seconds"] for r in results),
        "p50_ms": percentile(lat, 50) * 1000.0,
        "p99_ms": percentile(lat, 99) * 1000.0,
        "latency_samples": len(lat),
        "error_names": dict(names),
        "loader_cpu_busy": sum(r["cpu_busy"] for r in results),
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile (nan for no samples)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


# -- machine --------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        nproc = os.cpu_count() or 0
    try:
        from msgpack import _cmsgpack  # noqa: F401

        msgpack_impl = "C extension"
    except ImportError:
        msgpack_impl = "pure Python"
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "nproc": nproc,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "msgpack": f"{'.'.join(map(str, msgpack.version))} ({msgpack_impl})",
        "meshreg": f"{MESHREG_VERSION} ({git_revision()})",
    }


def git_revision() -> str:
    """Commit of the meshreg being measured, and whether its sources differ from it."""
    import meshreg

    root = os.path.dirname(os.path.dirname(os.path.abspath(meshreg.__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "meshreg"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "no git"
    if not head:
        return "no git"
    return f"git {head}" + (", meshreg/ has uncommitted changes" if dirty else "")


# -- report ---------------------------------------------------------------------
def _no_nan(value: Any) -> Any:
    """``value`` with NaN floats as None, so that the JSON is standard."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def table(rows: list[dict[str, Any]]) -> str:
    raw = next((r["ops_per_second"] for r in rows if r["workload"] == "raw zmq echo"), 0.0)
    head = (
        f"{'workload':<14} | {'ops/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'vs raw echo':>11}"
        f" | {'server CPU':>10} | {'server us/op':>12} | {'loader CPU':>10} | {'other CPU':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = r["ops_per_second"] / raw if raw else float("nan")
        r["ratio_vs_raw"] = round(ratio, 3)
        lines.append(
            f"{r['workload']:<14} | {r['ops_per_second']:>9,.0f} | {r['p50_ms']:>7.2f} | "
            f"{r['p99_ms']:>7.2f} | {ratio:>10.2f}x | {r['server_cpu_busy']:>10.0%} | "
            f"{r['server_cpu_us_per_op']:>12.1f} | {r['loader_cpu_busy']:>10.0%} | "
            f"{r['other_cpu_busy']:>9.0%}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Heartbeat throughput of a meshreg node vs a raw ZeroMQ echo server."
    )
    ap.add_argument("--instances", type=int, default=1000, help="instances registered (1000)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row (5)")
    ap.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first (0.5)")
    ap.add_argument("--clients", type=int, default=1, help="load-generator processes (1)")
    ap.add_argument(
        "--window",
        type=int,
        default=256,
        help="requests in flight per load generator (256: also saturates the echo "
        "baseline; 64 gives the node the same beats/s at a quarter of the latency)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per workload, the median run is shown (3; single runs are noisy)",
    )
    ap.add_argument("--json", action="store_true", help="JSON on stdout; the report on stderr")
    ap.add_argument(
        "--profile-node",
        metavar="PATH",
        help="run the node under cProfile and write the profile to PATH (slows it down)",
    )
    opts = ap.parse_args(argv)
    if not 1 <= opts.instances <= 1_000_000:
        ap.error("--instances must be in 1..1000000")
    if not 0 < opts.seconds <= 600:
        ap.error("--seconds must be in (0, 600]")
    if not 0 <= opts.warmup <= 60:
        ap.error("--warmup must be in [0, 60]")
    if not 1 <= opts.clients <= 64:
        ap.error("--clients must be in 1..64")
    if not 1 <= opts.repeat <= 20:
        ap.error("--repeat must be in 1..20")
    if not 1 <= opts.window <= 10_000:
        ap.error("--window must be in 1..10000")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    out = sys.stderr if opts.json else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below

    signal.signal(signal.SIGTERM, on_sigterm)
    ctx = mp.get_context("spawn")  # fresh children: no forked ZeroMQ state
    procs = Procs()
    machine = machine_info()
    say("machine:")
    for k, v in machine.items():
        say(f"  {k:<9} {v}")
    say(
        f"settings: instances={opts.instances} seconds={opts.seconds} warmup={opts.warmup} "
        f"clients={opts.clients} window={opts.window} repeat={opts.repeat} "
        f"(latency: 1 in {SAMPLE_EVERY} requests timed)"
    )
    say()
    templates_for("beat", 1)  # fail early if the templates do not match encode_request
    beats = ("beat", opts.instances)
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    keep_log = False
    try:
        lifetime = 3 * opts.repeat * (opts.warmup + opts.seconds) + 120
        echo_port, echo_pid = start_echo(procs, ctx, lifetime)
        say(f"raw zmq echo on {HOST}:{echo_port} ...")
        echo_row = run_rows(procs, ctx, echo_port, echo_pid, beats, opts, echo=True)
        rows.append({"workload": "raw zmq echo", **echo_row})
        procs.stop_all()  # the echo server must not compete with the node for a core

        port = start_node(procs, opts.profile_node)
        assert procs.node is not None
        node_pid = procs.node.pid
        say(f"meshreg node on {HOST}:{port} (pid {node_pid}) ...")
        ping_row = run_rows(procs, ctx, port, node_pid, ("ping", 1), opts)
        rows.append({"workload": "meshreg ping", **ping_row})

        t0 = time.perf_counter()
        reg = drive(
            f"tcp://{HOST}:{port}",
            templates_for("register", opts.instances),
            window=256,
            seconds=60.0,
            max_ops=opts.instances,
            drain_seconds=30.0,
        )
        if reg["ok_total"] != opts.instances:
            raise RuntimeError(
                f"registration: {reg['ok_total']} of {opts.instances} ok, "
                f"errors {reg['error_names']}, {reg['lost']} unanswered"
            )
        say(f"registered {opts.instances} instances in {time.perf_counter() - t0:.2f}s")

        beat_row = run_rows(procs, ctx, port, node_pid, beats, opts)
        rows.append({"workload": "meshreg beat", **beat_row})
        reply = call(port, "stats", timeout=5.0)
        stats = reply.get("result") or {}
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    except (RuntimeError, TimeoutError, queue.Empty) as exc:
        failed = str(exc) or type(exc).__name__
        if procs.node is not None and procs.node.poll() is not None:
            failed += f" (the node had exited with {procs.node.returncode})"
        say(f"benchmark failed: {failed}")
        keep_log = True
        return 1
    finally:
        procs.stop_all()
        if procs.node_log:
            log_tail = read_log(procs.node_log)
            if keep_log or any(w in log_tail for w in ("ERROR", "Traceback")):
                say(f"node log ({procs.node_log}):\n{log_tail}")
            else:
                os.unlink(procs.node_log)

    say()
    say(table(rows))
    worst = max(rows, key=lambda r: r["other_cpu_busy"])
    if worst["other_cpu_busy"] > OTHER_CPU_WARN:
        say(
            f"  WARNING: other processes used up to {worst['other_cpu_busy']:.0%} of a core "
            "during the runs; ops/s and latency are disturbed (server us/op much less so). "
            "Rerun on a quiet box."
        )
        for line in worst["other_top"]:
            say(f"    {line}")
    for r in rows:
        if r["errors"] or r["lost"] or r["stalled"]:
            say(
                f"  {r['workload']}: {r['errors']} error replies {r['error_names']}, "
                f"{r['lost']} lost, stalled={r['stalled']}"
            )
    say()
    say(
        f"node stats: beats_total={stats.get('beats_total')} "
        f"beats_per_second={stats.get('beats_per_second')} "
        f"errors_total={stats.get('errors_total')} errors={stats.get('errors')} "
        f"requests={stats.get('requests')}"
    )
    say("  (beats_per_second is the node's own average over its last ~10 s, idle time included)")
    if opts.json:
        doc = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine,
            "settings": {
                k: getattr(opts, k)
                for k in ("instances", "seconds", "warmup", "clients", "window", "repeat")
            },
            "rows": rows,
            "node_stats": stats,
        }
        print(json.dumps(_no_nan(doc), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
