"""``baselines``: etcd (hand-written protobuf over grpcio) and ZooKeeper (kazoo) driven with
the same loader processes and window as meshreg (bench/README.md, "Baselines").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from bench.common import (
    HOST,
    LOAD_COLUMNS,
    LOAD_TAIL,
    READY_SECONDS,
    Procs,
    Say,
    Scenario,
    die_with_parent,
    free_port_block,
    load_notes,
    read_log,
    settings,
    table,
    terminate,
    wait_until,
)
from bench.load import (
    DRAIN_SECONDS,
    MAX_OPS_PER_SECOND,
    SAMPLE_EVERY,
    STALL_SECONDS,
    default_services,
    run_loaders,
)

ZK_JARS = "/usr/share/java"
ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
INSTALL_HINT = (
    "install with bin/meshreg-bench-peers "
    "(or: sudo apt-get install etcd-server zookeeper && pip install -e '.[bench]')"
)
SERVER_START_SECONDS = 60.0  # bound on a server becoming ready (a JVM, a raft election)
SERVER_STOP_SECONDS = 10.0  # SIGTERM, then SIGKILL after this
JVM_WARMUP_SECONDS = 3.0  # least warm-up for ZooKeeper: its JIT compiler needs a few seconds
CONNECT_SECONDS = 10.0  # bound on a loader connecting to the (already running) server
LEASE_TTL = 60  # seconds; longer than any setup, so the keep-alive leases do not expire first
SETUP_OPS_PER_SECOND = 500.0  # lower bound on lease grants per second in the set-up phase
RPC_SECONDS = STALL_SECONDS + DRAIN_SECONDS + 5.0  # deadline of one request
ETCD = "/etcdserverpb."
W_ETCD_KEEPALIVE = "etcd lease keep-alive"
W_ETCD_REGISTER = "etcd register (lease grant + put)"
W_ZK_REGISTER = "zookeeper register (ephemeral create)"


# -- what is missing ----------------------------------------------------------------
def _have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _zk_classpath() -> str | None:
    jar = os.path.join(ZK_JARS, "zookeeper.jar")  # its manifest names its dependencies
    logger = os.path.join(ZK_JARS, "slf4j-simple.jar")  # else slf4j falls back to no logging
    if not os.path.exists(jar):
        return None
    return jar + (os.pathsep + logger if os.path.exists(logger) else "")


def _first_missing(checks: list[tuple[bool, str]]) -> str | None:
    return next((f"{why}; {INSTALL_HINT}" for bad, why in checks if bad), None)


def etcd_missing() -> str | None:
    """None if etcd can be benchmarked here, else why not (one line, with the fix)."""
    return _first_missing([
        (shutil.which("etcd") is None, "no etcd binary on PATH (Debian package etcd-server)"),
        (not _have_module("grpc"), "Python package grpcio is not installed"),
    ])  # fmt: skip


def zookeeper_missing() -> str | None:
    """None if ZooKeeper can be benchmarked here, else why not (one line, with the fix)."""
    return _first_missing([
        (_zk_classpath() is None, f"no {ZK_JARS}/zookeeper.jar (Debian package zookeeper)"),
        (shutil.which("java") is None, "no java on PATH (ZooKeeper needs a JRE)"),
        (not _have_module("kazoo"), "Python package kazoo is not installed"),
    ])  # fmt: skip


# -- protobuf, by hand (only the few etcd messages used here) ----------------------------
def _varint(n: int) -> bytes:
    """Base-128 varint; negative int64 as its two's complement (10 bytes), as protobuf does."""
    n += 1 << 64 if n < 0 else 0
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """(value, next index) of the varint at ``buf[i]``; bounded by the 10 bytes of a varint."""
    value = 0
    for shift in range(0, 70, 7):
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
    raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Every (field number, value) of a message: varints as signed int64, length-delimited
    as bytes."""
    out: list[tuple[int, int | bytes]] = []
    i, end = 0, len(buf)
    while i < end:  # bounded: every step consumes at least one byte
        key, i = _read_varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _read_varint(buf, i)
            out.append((number, value - (1 << 64) if value >= 1 << 63 else value))
        elif kind == 2:
            size, i = _read_varint(buf, i)
            if i + size > end:
                raise ValueError("truncated length-delimited field")
            out.append((number, buf[i : i + size]))
            i += size
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {kind}")
    return out


def _field(number: int, value: int | bytes) -> bytes:
    """One field: bytes length-delimited, an int as a varint (omitted if 0, as protobuf does)."""
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value) if value else b""


def _ints(buf: bytes) -> dict[int, Any]:
    """The message's fields by number (the last of a repeated one)."""
    return dict(_fields(buf))


def put_request(key: bytes, value: bytes, lease: int = 0) -> bytes:
    """PutRequest{key = 1; value = 2; lease = 3} (no lease: 0, omitted)."""
    return _field(1, key) + _field(2, value) + _field(3, lease)


def range_request(key: bytes, end: bytes = b"", count_only: bool = False) -> bytes:
    """RangeRequest{key = 1; range_end = 2; count_only = 9}: one key, or [key, end)."""
    return _field(1, key) + (_field(2, end) if end else b"") + _field(9, int(count_only))


def lease_request(number: int) -> bytes:
    """LeaseGrantRequest{TTL = 1} or LeaseKeepAliveRequest{ID = 1}: one int, field 1."""
    return _field(1, number)


def lease_grant_response(buf: bytes) -> tuple[int, int, str]:
    """(ID, TTL, error) of LeaseGrantResponse{header = 1; ID = 2; TTL = 3; error = 4}."""
    f = _ints(buf)
    return f.get(2, 0), f.get(3, 0), bytes(f.get(4, b"")).decode(errors="replace")


def lease_keepalive_response(buf: bytes) -> tuple[int, int]:
    """(ID, TTL) of a LeaseKeepAliveResponse{header = 1; ID = 2; TTL = 3}; etcd answers a
    keep-alive of an unknown lease with TTL 0 (the field absent)."""
    f = _ints(buf)
    return f.get(2, 0), f.get(3, 0)


def range_response(buf: bytes) -> list[dict[int, Any]]:
    """The kvs of a RangeResponse{repeated KeyValue kvs = 2}, each {field number: value}
    (KeyValue{key = 1; ...; value = 5; lease = 6})."""
    return [_ints(v) for n, v in _fields(buf) if n == 2 and isinstance(v, bytes)]


def instance_key(i: int, services: tuple[str, ...]) -> tuple[bytes, bytes]:
    """(service path, JSON-ish value) of instance ``i``: the address is unique for i < 2**24."""
    ip, port = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 20000 + i % 40000
    value = (f'{{"ip":"{ip}","port":{port},"weight":1.0,"cluster":"DEFAULT",'
             f'"metadata":{{"zone":"bench"}}}}')  # fmt: skip
    return f"/services/{services[i % len(services)]}/{ip}:{port}".encode(), value.encode()


# -- counting replies --------------------------------------------------------------------
class _Tally:
    """Replies and sampled latencies, like bench/load.py ``drive`` (thread-safe)."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.t_start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.t_measure = self.t_start + warmup
        self.t_end = self.t_measure + seconds
        self.lock = threading.Lock()
        self.ok = self.errors = self.ok_total = self.errors_total = 0
        self.latencies: list[float] = []
        self.error_names: Counter[str] = Counter()

    def add(self, now: float, good: bool, name: str | None, t0: float) -> None:
        counting = self.t_measure <= now < self.t_end
        with self.lock:
            if good:
                self.ok_total += 1
                self.ok += counting
            else:
                self.errors_total += 1
                self.errors += counting
                self.error_names[name or "?"] += 1
            if t0 and counting:
                self.latencies.append(now - t0)

    def sent_all(self) -> tuple[float, float, float]:
        """At the end of the sending phase: (its CPU seconds, its seconds, the window's end)."""
        now = time.perf_counter()
        return time.process_time() - self.cpu_start, now - self.t_start, min(now, self.t_end)

    def result(self, sent: int, lost: int, stalled: bool, ended: tuple[float, ...]) -> Any:
        cpu, elapsed, t_stop = ended
        with self.lock:
            return {"sent": sent, "ok": self.ok, "errors": self.errors, "ok_total": self.ok_total,
                    "errors_total": self.errors_total, "lost": lost, "stalled": stalled,
                    "window_seconds": max(t_stop - self.t_measure, 0.0),
                    "cpu_busy": cpu / max(elapsed, 1e-9), "cpu_seconds": cpu,
                    "latencies": list(self.latencies),
                    "error_names": dict(self.error_names)}  # fmt: skip


Finish = Callable[[float, bool, "str | None"], None]  # (t0, good, error name)


def _windowed(
    issue: Callable[[int, float, Finish], None], window: int, seconds: float, warmup: float,
    max_ops: int,
) -> dict[str, Any]:  # fmt: skip
    """Keep ``window`` asynchronous operations in flight for ``warmup + seconds``.
    ``issue(seq, t0, finish)`` starts operation ``seq`` and arranges for ``finish(t0, good,
    error_name)`` to be called once, from any thread, when it completes (``t0``: its send
    time if sampled, else 0).  Bounded: ``max_ops``, the clock and STALL_SECONDS without a
    completion, then DRAIN_SECONDS for the stragglers."""
    perf = time.perf_counter
    sem, idle = threading.Semaphore(window), threading.Event()
    idle.set()
    tally = _Tally(warmup, seconds)
    outstanding = [0]

    def finish(t0: float, good: bool, name: str | None) -> None:
        tally.add(perf(), good, name, t0)
        with tally.lock:
            outstanding[0] -= 1
            if not outstanding[0]:
                idle.set()
        sem.release()

    sent, stalled = 0, False
    while sent < max_ops:  # bounded: max_ops, the clock, and the stall time-out
        if not sem.acquire(timeout=STALL_SECONDS):
            stalled = True
            break
        now = perf()
        if now >= tally.t_end:
            sem.release()
            break
        sent += 1
        t0 = now if not sent & (SAMPLE_EVERY - 1) else 0.0
        with tally.lock:
            outstanding[0] += 1
            idle.clear()
        try:
            issue(sent - 1, t0, finish)
        except Exception as exc:  # could not even be sent
            finish(t0, False, type(exc).__name__)
    ended = tally.sent_all()
    if not stalled:
        idle.wait(DRAIN_SECONDS)
    with tally.lock:
        lost = outstanding[0]
    return tally.result(sent, lost, stalled, ended)  # type: ignore[no-any-return]


# -- servers -----------------------------------------------------------------------------
def _start_servers(
    procs: Procs, cmds: list[list[str]], work_dir: str, what: str, ready: Callable[[], bool],
    env: dict[str, str] | None = None,
) -> list[tuple[subprocess.Popen[bytes], str]]:  # fmt: skip
    """Every command in ``work_dir``, output in ``<what>[-i].log``, once ``ready()``:
    [(process, log path)]."""
    out = []
    for i, cmd in enumerate(cmds):
        log_path = os.path.join(work_dir, f"{what}{'-m' + str(i) if len(cmds) > 1 else ''}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(die_with_parent() + cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=work_dir)  # fmt: skip
        procs.popens.append(proc)
        out.append((proc, log_path))
    ok = wait_until(lambda: any(p.poll() is not None for p, _ in out) or ready(),
                    SERVER_START_SECONDS)  # fmt: skip
    for proc, log_path in out:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{read_log(log_path)}")
    if ok is None:
        raise RuntimeError(f"{what} not ready within {SERVER_START_SECONDS:g}s:\n"
                           + read_log(out[0][1]))  # fmt: skip
    return out


def start_etcd(
    procs: Procs, work_dir: str, members: int = 1
) -> list[tuple[subprocess.Popen[bytes], int, str]]:
    """``members`` etcd members on 127.0.0.1, data under ``work_dir``, all healthy (a leader
    elected): [(process, client port, log path)]."""
    ports = [free_port_block(2) for _ in range(members)]
    cluster = ",".join(f"m{i}=http://{HOST}:{p + 1}" for i, p in enumerate(ports))
    cmds = [[
        shutil.which("etcd") or "etcd", "--name", f"m{i}",
        "--data-dir", os.path.join(work_dir, f"data-m{i}"),
        "--listen-client-urls", f"http://{HOST}:{port}",
        "--advertise-client-urls", f"http://{HOST}:{port}",
        "--listen-peer-urls", f"http://{HOST}:{port + 1}",
        "--initial-advertise-peer-urls", f"http://{HOST}:{port + 1}",
        "--initial-cluster", cluster, "--initial-cluster-state", "new",
        "--initial-cluster-token", f"meshreg-bench-{os.getpid()}-{ports[0]}",
        "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
    ] for i, port in enumerate(ports)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy

    def healthy() -> bool:
        for port in ports:
            with opener.open(f"http://{HOST}:{port}/health", timeout=1.0) as resp:
                if json.loads(resp.read(4096)).get("health") != "true":
                    return False
        return True

    started = _start_servers(procs, cmds, work_dir, "etcd", healthy, env)
    return [(proc, port, log) for (proc, log), port in zip(started, ports, strict=True)]


def start_zookeeper(
    procs: Procs, work_dir: str, outstanding: int = 1000
) -> tuple[subprocess.Popen[bytes], int, str]:
    """ZooKeeper standalone on 127.0.0.1, data in ``work_dir``: (JVM, client port, log path).
    ``outstanding`` raises ZooKeeper's global limit of requests in flight (1000 by default,
    beyond which it stops reading from clients) to cover every loader's window."""
    port = free_port_block(1)
    data = os.path.join(work_dir, "data")
    os.makedirs(data, exist_ok=True)
    cfg = os.path.join(work_dir, "zoo.cfg")
    with open(cfg, "w", encoding="utf-8") as fh:
        fh.write(f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress={HOST}\n")
        fh.write("maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n")
    classpath = _zk_classpath()
    if classpath is None:
        raise RuntimeError(f"ZooKeeper is not installed; {INSTALL_HINT}")
    cmd = [
        shutil.which("java") or "java",
        "-XX:-UsePerfData",  # no /tmp/hsperfdata_* file, which a SIGKILL would leave behind
        "-Dzookeeper.admin.enableServer=false",
        f"-Dzookeeper.globalOutstandingLimit={max(1000, outstanding)}",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath, ZK_MAIN, cfg,
    ]  # fmt: skip

    def ruok() -> bool:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"ruok")
            s.settimeout(1.0)
            return s.recv(16) == b"imok"

    ((proc, log_path),) = _start_servers(procs, [cmd], work_dir, "zookeeper", ruok)
    return proc, port, log_path


# -- etcd: the client side -------------------------------------------------------------------
def _etcd_channel(port: int, timeout: float) -> Any:
    """A gRPC channel to etcd, connected within ``timeout``."""
    import grpc

    options = [("grpc.enable_http_proxy", 0)]  # loopback: never through a proxy
    channel = grpc.insecure_channel(f"{HOST}:{port}", options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise RuntimeError(f"no connection to etcd on {HOST}:{port} within {timeout:g}s") from None
    return channel


def etcd_selfcheck(port: int) -> None:
    """Checks the hand-made encoding against the server: grant, put, range, keep-alive."""
    channel = _etcd_channel(port, READY_SECONDS)
    try:
        rpc = {m: channel.unary_unary(ETCD + m) for m in ("Lease/LeaseGrant", "KV/Put", "KV/Range")}
        keepalive = channel.stream_stream(ETCD + "Lease/LeaseKeepAlive")
        reply = rpc["Lease/LeaseGrant"](lease_request(LEASE_TTL), timeout=RPC_SECONDS)
        lease_id, ttl, error = lease_grant_response(reply)
        if error or lease_id <= 0 or not 0 < ttl <= LEASE_TTL:
            raise RuntimeError(f"etcd LeaseGrant: id {lease_id}, TTL {ttl}, error {error!r}")
        key, value = instance_key(12345, ("bench-selfcheck",))
        rpc["KV/Put"](put_request(key, value, lease_id), timeout=RPC_SECONDS)
        kvs = range_response(rpc["KV/Range"](range_request(key), timeout=RPC_SECONDS))
        if len(kvs) != 1 or kvs[0].get(5) != value or kvs[0].get(6) != lease_id:
            raise RuntimeError(f"etcd Range of {key!r} after Put: {kvs}")
        for lease, alive in ((lease_id, True), (lease_id + 1, False)):
            answers = keepalive(iter([lease_request(lease)]), timeout=RPC_SECONDS)
            got = [lease_keepalive_response(a) for a in answers]
            bad = got[0][0] != lease or got[0][1] <= 0 if alive else got[0][1] > 0
            if len(got) != 1 or bad:
                raise RuntimeError(f"etcd LeaseKeepAlive of lease {lease} (known: {alive}): {got}")
    finally:
        channel.close()


def _keepalive_loop(
    channel: Any, ids: list[int], window: int, seconds: float, warmup: float, max_ops: int
) -> dict[str, Any]:
    """W keep-alives in flight on one LeaseKeepAlive stream, cycling over leases ``ids``.
    A generator, consumed by grpc's request thread, blocks on a semaphore of W permits; the
    response loop (this thread) releases one per answer.  etcd answers a stream's requests
    in order, so the sampled send times are matched with answers by position (and the lease
    ID of those checked)."""
    import grpc

    perf = time.perf_counter
    sem = threading.Semaphore(window)
    stamps: deque[tuple[int, float, int]] = deque()
    reqs = [lease_request(i) for i in ids]
    st: dict[str, Any] = {"sent": 0, "stalled": False, "ended": None}
    box: list[Any] = []
    tally = _Tally(warmup, seconds)

    def requests() -> Any:
        sent = 0
        try:
            while sent < max_ops:  # bounded: max_ops, the clock, the stall time-out
                if not sem.acquire(timeout=STALL_SECONDS):
                    st["stalled"] = True
                    if box:
                        box[0].cancel()
                    return
                now = perf()
                if now >= tally.t_end:
                    return
                if not (sent + 1) & (SAMPLE_EVERY - 1):
                    stamps.append((sent + 1, now, ids[sent % len(ids)]))
                yield reqs[sent % len(reqs)]
                sent = st["sent"] = sent + 1
        finally:  # the sending phase is over: its CPU, like drive's, excludes the drain
            st["ended"] = tally.sent_all()

    total = warmup + seconds + STALL_SECONDS + DRAIN_SECONDS + 5.0
    call = channel.stream_stream(ETCD + "Lease/LeaseKeepAlive")(requests(), timeout=total)
    box.append(call)
    # The drain is bounded: the stream is cancelled DRAIN_SECONDS after the window.
    timer = threading.Timer(max(tally.t_end + DRAIN_SECONDS - perf(), 0.0), call.cancel)
    timer.daemon = True
    timer.start()
    received = 0
    try:
        for answer in call:  # bounded: one per request sent, and the stream's deadline
            now = perf()
            received += 1
            try:
                lease_id, ttl = lease_keepalive_response(answer)
                name = None if ttl > 0 else "LEASE_NOT_FOUND"
            except (ValueError, IndexError):
                lease_id, name = 0, "BAD_REPLY"
            t0 = 0.0
            if stamps and stamps[0][0] == received:
                _, t0, expected = stamps.popleft()
                if name is None and lease_id != expected:
                    name = "OUT_OF_ORDER"  # would make the sampled latencies wrong
            tally.add(now, name is None, name, t0)
            sem.release()
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:  # cancelled: by the drain timer or a stall
            tally.add(perf(), False, f"stream {exc.code().name}", 0.0)
    finally:
        timer.cancel()
    ended = st["ended"] or tally.sent_all()  # None: a cancelled stream never finished it
    sent = int(st["sent"])
    return tally.result(sent, sent - received, bool(st["stalled"]), ended)  # type: ignore[no-any-return]


def _etcd_loader(
    kind: str, port: int, index: int, clients: int, instances: int, window: int,
    seconds: float, warmup: float, cleanups: list[Callable[[], None]],
) -> Callable[[], dict[str, Any]]:  # fmt: skip
    """Set up one etcd loader (its leases, or its pre-built requests); the measuring call."""
    channel = _etcd_channel(port, CONNECT_SECONDS)
    cleanups.append(channel.close)
    grant = channel.unary_unary(ETCD + "Lease/LeaseGrant")
    grant_req = lease_request(LEASE_TTL)
    max_ops = max(1, int((seconds + warmup) * MAX_OPS_PER_SECOND))
    share = range(index, instances, clients)  # every clients-th instance from index
    if kind == "keepalive":
        ids: list[int] = []
        while len(ids) < len(share):  # bounded: every round adds up to window IDs or raises
            for f in [grant.future(grant_req, timeout=RPC_SECONDS)
                      for _ in range(min(window, len(share) - len(ids)))]:  # fmt: skip
                lease_id, _, error = lease_grant_response(f.result(timeout=RPC_SECONDS))
                if error or lease_id <= 0:
                    raise RuntimeError(f"LeaseGrant failed: {error!r} (id {lease_id})")
                ids.append(lease_id)
        return lambda: _keepalive_loop(channel, ids, window, seconds, warmup, max_ops)

    # register: LeaseGrant, then Put with that lease, both requests pre-built
    heads = [_field(1, k) + _field(2, v) + b"\x18"
             for k, v in (instance_key(i, default_services()) for i in share)]  # fmt: skip
    put = channel.unary_unary(ETCD + "KV/Put")

    def issue(seq: int, t0: float, finish: Finish) -> None:
        head = heads[seq % len(heads)]

        def on_put(f: Any) -> None:
            exc = f.exception()
            finish(t0, exc is None, None if exc is None else f.code().name)

        def on_grant(f: Any) -> None:
            try:
                if f.exception() is not None:
                    return finish(t0, False, f"grant {f.code().name}")
                lease_id, _, error = lease_grant_response(f.result())
                if error or lease_id <= 0:
                    return finish(t0, False, "LEASE_GRANT_ERROR")
                put.future(head + _varint(lease_id), timeout=RPC_SECONDS).add_done_callback(on_put)
            except Exception as exc:  # never lose a completion
                finish(t0, False, type(exc).__name__)

        grant.future(grant_req, timeout=RPC_SECONDS).add_done_callback(on_grant)

    return lambda: _windowed(issue, window, seconds, warmup, max_ops)


def _zk_loader(
    port: int, index: int, clients: int, window: int, seconds: float, warmup: float,
    cleanups: list[Callable[[], None]],
) -> Callable[[], dict[str, Any]]:  # fmt: skip
    """Set up one kazoo session and the services' parents; the measuring call."""
    import logging

    from kazoo.client import KazooClient

    # kazoo logs "Connection dropped" when the run ends and its session closes: noise
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    zk = KazooClient(hosts=f"{HOST}:{port}", timeout=10.0)
    zk.start(timeout=CONNECT_SECONDS)  # on a time-out it stops and closes itself
    cleanups += [zk.close, zk.stop]  # run in reverse order
    services = default_services()
    for svc in services:
        zk.ensure_path(f"/services/{svc}")
    # every create is a new instance: the address is unique below 2**24 instances
    max_ops = max(1, min(int((seconds + warmup) * MAX_OPS_PER_SECOND), (2**24 - index) // clients))

    def issue(seq: int, t0: float, finish: Finish) -> None:
        path, value = instance_key(index + clients * seq, services)

        def done(result: Any) -> None:
            exc = result.exception
            finish(t0, exc is None, None if exc is None else type(exc).__name__)

        zk.create_async(path.decode(), value, ephemeral=True).rawlink(done)

    return lambda: _windowed(issue, window, seconds, warmup, max_ops)


def _run_loaders(
    procs: Procs, ctx: Any, setup: Callable[..., Any], jobs: list[tuple[Any, ...]],
    pids: list[int], window: int, seconds: float, warmup: float, setup_seconds: float, what: str,
) -> dict[str, Any]:  # fmt: skip
    """One loader process per job (``setup(*job, cleanups)``), all started together, against
    the servers ``pids``; a row like bench/load.py's."""
    budget = warmup + seconds + 2 * STALL_SECONDS + DRAIN_SECONDS + READY_SECONDS
    row = run_loaders(procs, ctx, setup, jobs, pids, window, budget, f"the {what} loaders",
                      setup_seconds)  # fmt: skip
    procs.stop_children()
    return {**row, "warmup_seconds": warmup}


# -- the rows ----------------------------------------------------------------------------
def _measured(
    what: str, start: Callable[[str], list[tuple[Any, int, str]]],
    body: Callable[[list[int], list[int]], Any],
) -> Any:  # fmt: skip
    """``body(ports, server pids)`` against the servers ``start(work_dir)`` made in a temporary
    directory ([(process, port, log path)]); each must still run afterwards; stopped and
    removed on the way out."""
    work = tempfile.mkdtemp(prefix=f"meshreg-bench-{what.lower()}-")
    servers: list[tuple[Any, int, str]] = []
    try:
        servers = start(work)
        result = body([port for _, port, _ in servers], [proc.pid for proc, _, _ in servers])
        for proc, _, log_path in servers:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} during the run:\n"
                                   + read_log(log_path))  # fmt: skip
        return result
    finally:
        for proc, _, _ in servers:
            terminate(proc, SERVER_STOP_SECONDS)
        shutil.rmtree(work, ignore_errors=True)


def with_etcd(procs: Procs, body: Callable[[list[int], list[int]], Any], members: int = 1) -> Any:
    """``body(client ports, pids)`` against ``members`` etcd members started here, after
    checking the hand-made protobuf against them (:func:`_measured`)."""

    def checked(ports: list[int], pids: list[int]) -> Any:
        etcd_selfcheck(ports[0])
        return body(ports, pids)

    return _measured("etcd", lambda work: start_etcd(procs, work, members), checked)


def run_etcd(
    procs: Procs, ctx: Any, clients: int, window: int, seconds: float, warmup: float,
    instances: int, kinds: tuple[str, ...] = ("keepalive", "register"),
) -> list[dict[str, Any]]:  # fmt: skip
    """etcd's lease keep-alive and register rows (``kinds``), with ``clients`` loaders of
    ``window``, after checking the hand-made protobuf against the server.  ``instances``:
    the leases kept alive, and the keys the registers cycle over (granting the leases
    takes about ``instances / 10_000`` s, which the register row alone skips)."""
    instances = max(instances, clients)

    def body(ports: list[int], pids: list[int]) -> list[dict[str, Any]]:
        jobs = [(ports[0], c, clients, instances, window, seconds, warmup) for c in range(clients)]
        rows = []
        for kind, workload in (("keepalive", W_ETCD_KEEPALIVE), ("register", W_ETCD_REGISTER)):
            if kind in kinds:
                etcd_jobs = [(kind, *j) for j in jobs]
                setup = instances / SETUP_OPS_PER_SECOND
                row = _run_loaders(
                    procs, ctx, _etcd_loader, etcd_jobs, pids, window, seconds, warmup, setup, kind
                )
                rows.append({"workload": workload, **row})
        return rows

    return with_etcd(procs, body)


def run_zookeeper(
    procs: Procs, ctx: Any, clients: int, window: int, seconds: float, warmup: float,
    instances: int = 0, kinds: tuple[str, ...] = ("register",),
) -> list[dict[str, Any]]:  # fmt: skip
    """ZooKeeper's register row (ephemeral creates, each a new instance: ``instances`` is not
    used), with ``clients`` loaders of ``window``.  The warm-up is at least
    JVM_WARMUP_SECONDS: a cold JIT costs about a quarter more CPU per create."""
    warmup = max(warmup, JVM_WARMUP_SECONDS)

    def body(ports: list[int], pids: list[int]) -> list[dict[str, Any]]:
        jobs = [(ports[0], c, clients, window, seconds, warmup) for c in range(clients)]
        row = _run_loaders(procs, ctx, _zk_loader, jobs, pids, window, seconds, warmup, 0.0,
                           "zookeeper")  # fmt: skip
        return [{"workload": W_ZK_REGISTER, **row}]

    return _measured("ZooKeeper", lambda work: [start_zookeeper(procs, work, 2 * clients * window)],
                     body)  # fmt: skip


RUNNERS: tuple[tuple[str, Callable[[], str | None], Any], ...] = (
    ("etcd", etcd_missing, run_etcd),
    ("zookeeper", zookeeper_missing, run_zookeeper),
)


def peer_rows(
    procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, instances: int,
    kinds: tuple[str, ...] = ("keepalive", "register"),
) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """(rows, skipped): etcd's ``kinds`` rows and ZooKeeper's register row (``--only``,
    ``--no-peers``), each server started and stopped here; one failing costs only its rows."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    only = [x.lower() for x in opts.only or () if x.lower() in ("etcd", "zookeeper")]
    for name, missing, runner in RUNNERS:
        if (only and name not in only) or (name == "zookeeper" and "register" not in kinds):
            continue
        why = "not run (--no-peers)" if not opts.peers else missing()
        if why:
            skipped.append(f"{name}: {why}")
            continue
        say(f"{name} on loopback ...")
        try:
            rows += runner(procs, ctx, opts.clients, opts.window, opts.seconds, opts.warmup,
                           instances, kinds=kinds)  # fmt: skip
        except Exception as exc:  # a baseline failing must not cost meshreg's own figures
            skipped.append(f"{name}: failed: {type(exc).__name__}: {exc}")
        finally:
            procs.stop_all()
    return rows, skipped


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, _: str) -> dict[str, Any]:
    """etcd and ZooKeeper with the same loader processes and window as meshreg's rows."""
    rows, skipped = peer_rows(procs, ctx, opts, say, opts.instances)
    zk_warmup = max(opts.warmup, JVM_WARMUP_SECONDS)
    return {"rows": rows, "skipped": skipped,
            "settings": {**settings(opts), "zookeeper_warmup": zk_warmup}}  # fmt: skip


def report(result: dict[str, Any], say: Say) -> None:
    rows = result["rows"]
    if rows:
        say(table(rows, [("workload", "workload", "{}"), ("ops/s", "ops_per_second", "{:,.0f}"),
                         *LOAD_COLUMNS, *LOAD_TAIL]))  # fmt: skip
    load_notes(rows, say, skipped=result["skipped"])


SCENARIOS = (
    Scenario("baselines", run, report, "etcd lease keep-alive and register, ZooKeeper "
             "ephemeral create (when installed: bin/meshreg-bench-peers)", suite=True),
)  # fmt: skip
