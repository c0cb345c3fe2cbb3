"""``baselines``: etcd and ZooKeeper driven like meshreg, with the same loader processes and
window (bench/README.md, "Baselines").  Each run starts its own server on free 127.0.0.1
ports with a fresh temporary data directory; etcd is spoken to with hand-written protobuf
over grpcio, ZooKeeper with kazoo.  Every process started is stopped (the servers also get
SIGKILL if this process dies); every loop is bounded in iterations and time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
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
    READY_SECONDS,
    Procs,
    Say,
    Scenario,
    collect,
    die_with_parent,
    free_port_block,
    read_log,
    table,
    wait_until,
)
from bench.load import (
    DRAIN_SECONDS,
    MAX_OPS_PER_SECOND,
    SAMPLE_EVERY,
    STALL_SECONDS,
    default_services,
    measure_cpu,
)

ETCD_BIN = "etcd"
ZK_JARS = "/usr/share/java"
ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
INSTALL_HINT = (
    "install with bin/meshreg-bench-peers "
    "(or: sudo apt-get install etcd-server zookeeper && pip install -e '.[bench]')"
)
SERVER_START_SECONDS = 60.0  # bound on a peer server becoming ready (a JVM, a raft election)
SERVER_STOP_SECONDS = 10.0  # SIGTERM, then SIGKILL after this
JVM_WARMUP_SECONDS = 3.0  # least warm-up for ZooKeeper: its JIT compiler needs a few seconds
CONNECT_SECONDS = 10.0  # bound on a loader connecting to the (already running) server
LEASE_TTL = 60  # seconds; longer than any setup, so the keep-alive leases do not expire first
SETUP_OPS_PER_SECOND = 500.0  # lower bound on lease grants per second in the set-up phase
RPC_SECONDS = STALL_SECONDS + DRAIN_SECONDS + 5.0  # deadline of one request

ETCD_GRANT = "/etcdserverpb.Lease/LeaseGrant"
ETCD_KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"
ETCD_PUT = "/etcdserverpb.KV/Put"
ETCD_RANGE = "/etcdserverpb.KV/Range"

W_ETCD_KEEPALIVE = "etcd lease keep-alive"
W_ETCD_REGISTER = "etcd register (lease grant + put)"
W_ZK_REGISTER = "zookeeper register (ephemeral create)"


# -- what is missing ----------------------------------------------------------------
def _have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def etcd_missing() -> str | None:
    """None if etcd can be benchmarked here, else why not (one line, with the fix)."""
    if shutil.which(ETCD_BIN) is None:
        return f"no etcd binary on PATH (Debian package etcd-server); {INSTALL_HINT}"
    if not _have_module("grpc"):
        return f"Python package grpcio is not installed; {INSTALL_HINT}"
    return None


def _zk_classpath() -> str | None:
    jar = os.path.join(ZK_JARS, "zookeeper.jar")  # its manifest names its dependencies
    if not os.path.exists(jar):
        return None
    logger = os.path.join(ZK_JARS, "slf4j-simple.jar")  # else slf4j falls back to no logging
    return jar + (os.pathsep + logger if os.path.exists(logger) else "")


def zookeeper_missing() -> str | None:
    """None if ZooKeeper can be benchmarked here, else why not (one line, with the fix)."""
    if _zk_classpath() is None:
        return f"no {ZK_JARS}/zookeeper.jar (Debian package zookeeper); {INSTALL_HINT}"
    if shutil.which("java") is None:
        return f"no java on PATH (ZooKeeper needs a JRE); {INSTALL_HINT}"
    if not _have_module("kazoo"):
        return f"Python package kazoo is not installed; {INSTALL_HINT}"
    return None


# -- protobuf, by hand (only the few etcd messages used here) ----------------------------
def _varint(n: int) -> bytes:
    """Base-128 varint; negative int64 as its two's complement (10 bytes), as protobuf does."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """(value, next index) of the varint at ``buf[i]``; bounded by the 10 bytes of a varint."""
    value = shift = 0
    for _ in range(10):
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Every (field number, value) of a message: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    i, end = 0, len(buf)
    while i < end:  # bounded: every step consumes at least one byte
        key, i = _read_varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _read_varint(buf, i)
            out.append((number, value))
        elif kind == 2:
            size, i = _read_varint(buf, i)
            if i + size > end:
                raise ValueError("truncated length-delimited field")
            out.append((number, buf[i : i + size]))
            i += size
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {kind}")
    return out


def _int64(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ValueError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes_field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def lease_grant_request(ttl: int, lease_id: int = 0) -> bytes:
    """LeaseGrantRequest{int64 TTL = 1; int64 ID = 2}."""
    return _int_field(1, ttl) + _int_field(2, lease_id)


def lease_grant_response(buf: bytes) -> tuple[int, int, str]:
    """LeaseGrantResponse{header = 1; int64 ID = 2; int64 TTL = 3; string error = 4}."""
    lease_id = ttl = 0
    error = ""
    for number, value in _fields(buf):
        if number == 2:
            lease_id = _int64(value)
        elif number == 3:
            ttl = _int64(value)
        elif number == 4 and isinstance(value, bytes):
            error = value.decode(errors="replace")
    return lease_id, ttl, error


def lease_keepalive_request(lease_id: int) -> bytes:
    """LeaseKeepAliveRequest{int64 ID = 1}."""
    return _int_field(1, lease_id)


def lease_keepalive_response(buf: bytes) -> tuple[int, int]:
    """(ID, TTL) of a LeaseKeepAliveResponse{header = 1; int64 ID = 2; int64 TTL = 3}.

    etcd answers a keep-alive of an unknown lease with TTL 0 (the field absent).
    """
    lease_id = ttl = 0
    for number, value in _fields(buf):
        if number == 2:
            lease_id = _int64(value)
        elif number == 3:
            ttl = _int64(value)
    return lease_id, ttl


def put_request(key: bytes, value: bytes, lease_id: int = 0) -> bytes:
    """PutRequest{bytes key = 1; bytes value = 2; int64 lease = 3}."""
    return _bytes_field(1, key) + _bytes_field(2, value) + _int_field(3, lease_id)


def range_request(key: bytes) -> bytes:
    """RangeRequest{bytes key = 1} (one key)."""
    return _bytes_field(1, key)


def range_response(buf: bytes) -> list[dict[str, Any]]:
    """The kvs of a RangeResponse{header = 1; repeated KeyValue kvs = 2; ...}.

    KeyValue{key = 1; create_revision = 2; mod_revision = 3; version = 4; value = 5; lease = 6}.
    """
    names = {1: "key", 2: "create_revision", 3: "mod_revision", 4: "version", 5: "value"}
    kvs = []
    for number, value in _fields(buf):
        if number == 2 and isinstance(value, bytes):
            kv: dict[str, Any] = {"lease": 0}
            for n, v in _fields(value):
                if n == 6:
                    kv["lease"] = _int64(v)
                elif n in names:
                    kv[names[n]] = v
            kvs.append(kv)
    return kvs


# -- instances ---------------------------------------------------------------------------
def instance_key(i: int, services: tuple[str, ...]) -> tuple[str, bytes]:
    """(service path, JSON-ish value) of instance ``i``: the address is unique for i < 2**24."""
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    port = 20000 + i % 40000
    svc = services[i % len(services)]
    value = (
        f'{{"ip":"{ip}","port":{port},"weight":1.0,"cluster":"DEFAULT",'
        f'"metadata":{{"zone":"bench"}}}}'
    )
    return f"/services/{svc}/{ip}:{port}", value.encode()


def loader_share(index: int, clients: int, instances: int) -> range:
    """Instance numbers of loader ``index``: every ``clients``-th one from ``index``."""
    return range(index, instances, clients)


# -- counting replies --------------------------------------------------------------------
class _Tally:
    """Replies and sampled latencies, like bench/load.py ``drive`` (thread-safe)."""

    def __init__(self, t_measure: float, t_end: float) -> None:
        self.t_measure, self.t_end = t_measure, t_end
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

    def result(
        self, sent: int, lost: int, stalled: bool, t_stop: float, cpu: float, elapsed: float
    ) -> dict[str, Any]:
        with self.lock:
            return {
                "sent": sent,
                "ok": self.ok,
                "errors": self.errors,
                "ok_total": self.ok_total,
                "errors_total": self.errors_total,
                "lost": lost,
                "stalled": stalled,
                "window_seconds": max(t_stop - self.t_measure, 0.0),
                "cpu_busy": cpu / max(elapsed, 1e-9),
                "cpu_seconds": cpu,
                "latencies": list(self.latencies),
                "error_names": dict(self.error_names),
            }


Finish = Callable[[float, bool, "str | None"], None]  # (t0, good, error name)


def _windowed(
    issue: Callable[[int, float, Finish], None],
    window: int,
    seconds: float,
    warmup: float,
    max_ops: int,
    drain_seconds: float = DRAIN_SECONDS,
) -> dict[str, Any]:
    """Keep ``window`` asynchronous operations in flight for ``warmup + seconds``.

    ``issue(seq, t0, finish)`` starts operation ``seq`` and arranges for
    ``finish(t0, good, error_name)`` to be called once, from any thread, when it
    completes.  ``t0`` is its send time if it is one of the sampled ones, else 0.
    Bounded: at most ``max_ops`` operations, at most ``warmup + seconds`` of
    issuing (or ``STALL_SECONDS`` without any completion), then at most
    ``drain_seconds`` waiting for the stragglers.
    """
    perf = time.perf_counter
    mask = SAMPLE_EVERY - 1
    sem = threading.Semaphore(window)
    idle = threading.Event()
    idle.set()
    state = {"outstanding": 0}
    cpu_start = time.process_time()
    t_start = perf()
    t_measure = t_start + warmup
    t_end = t_measure + seconds
    tally = _Tally(t_measure, t_end)

    def finish(t0: float, good: bool, name: str | None) -> None:
        tally.add(perf(), good, name, t0)
        with tally.lock:
            state["outstanding"] -= 1
            if not state["outstanding"]:
                idle.set()
        sem.release()

    sent = 0
    stalled = False
    while sent < max_ops:  # bounded: max_ops, the clock, and the stall time-out
        if not sem.acquire(timeout=STALL_SECONDS):
            stalled = True
            break
        now = perf()
        if now >= t_end:
            sem.release()
            break
        sent += 1
        t0 = now if not sent & mask else 0.0
        with tally.lock:
            state["outstanding"] += 1
            idle.clear()
        try:
            issue(sent - 1, t0, finish)
        except Exception as exc:  # could not even be sent
            finish(t0, False, type(exc).__name__)
    t_stop = min(perf(), t_end)
    cpu_used = time.process_time() - cpu_start
    elapsed = perf() - t_start
    if not stalled:
        idle.wait(drain_seconds)
    with tally.lock:
        lost = state["outstanding"]
    return tally.result(sent, lost, stalled, t_stop, cpu_used, elapsed)


# -- servers -----------------------------------------------------------------------------
def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _start_server(
    procs: Procs, cmd: list[str], work_dir: str, what: str, ready: Callable[[], bool],
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """``cmd`` in ``work_dir``, its output in ``<what>.log``, once ``ready()``: (process, log)."""
    log_path = os.path.join(work_dir, f"{what}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(die_with_parent() + cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=work_dir)  # fmt: skip
    procs.popens.append(proc)
    ok = wait_until(lambda: proc.poll() is not None or ready(), SERVER_START_SECONDS)
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n{read_log(log_path)}")
    if ok is None:
        raise RuntimeError(f"{what} not ready within {SERVER_START_SECONDS:g}s:\n"
                           + read_log(log_path))  # fmt: skip
    return proc, log_path


def start_etcd(procs: Procs, work_dir: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """etcd on 127.0.0.1 with its data in ``work_dir``: (process, client port, log path)."""
    port = free_port_block(2)
    client, peer = f"http://{HOST}:{port}", f"http://{HOST}:{port + 1}"
    name = "meshreg-bench"
    cmd = [
        shutil.which(ETCD_BIN) or ETCD_BIN,
        "--name", name,
        "--data-dir", os.path.join(work_dir, "data"),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}",
        "--initial-cluster-state", "new",
        "--initial-cluster-token", f"meshreg-bench-{os.getpid()}-{port}",
        "--logger", "zap",
        "--log-outputs", "stderr",
        "--log-level", "warn",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy

    def healthy() -> bool:
        with opener.open(f"{client}/health", timeout=1.0) as resp:
            return bool(json.loads(resp.read(4096)).get("health") == "true")

    proc, log_path = _start_server(procs, cmd, work_dir, "etcd", healthy, env)
    return proc, port, log_path


def _etcd_channel(port: int) -> Any:
    import grpc

    options = [("grpc.enable_http_proxy", 0)]  # loopback: never through a proxy
    return grpc.insecure_channel(f"{HOST}:{port}", options=options)


def etcd_selfcheck(port: int) -> None:
    """Checks the hand-made encoding against the server: grant, put, range, keep-alive."""
    import grpc

    channel = _etcd_channel(port)
    try:
        grpc.channel_ready_future(channel).result(timeout=READY_SECONDS)
        grant = channel.unary_unary(ETCD_GRANT)
        put = channel.unary_unary(ETCD_PUT)
        get = channel.unary_unary(ETCD_RANGE)
        keepalive = channel.stream_stream(ETCD_KEEPALIVE)
        lease_id, ttl, error = lease_grant_response(
            grant(lease_grant_request(LEASE_TTL), timeout=RPC_SECONDS)
        )
        if error or lease_id <= 0 or not 0 < ttl <= LEASE_TTL:
            raise RuntimeError(f"etcd LeaseGrant: id {lease_id}, TTL {ttl}, error {error!r}")
        key, value = instance_key(12345, ("bench-selfcheck",))
        put(put_request(key.encode(), value, lease_id), timeout=RPC_SECONDS)
        kvs = range_response(get(range_request(key.encode()), timeout=RPC_SECONDS))
        if len(kvs) != 1 or kvs[0].get("value") != value or kvs[0]["lease"] != lease_id:
            raise RuntimeError(f"etcd Range of {key} after Put: {kvs}")
        answers = list(keepalive(iter([lease_keepalive_request(lease_id)]), timeout=RPC_SECONDS))
        got = [lease_keepalive_response(a) for a in answers]
        if len(got) != 1 or got[0][0] != lease_id or got[0][1] <= 0:
            raise RuntimeError(f"etcd LeaseKeepAlive of {lease_id}: {got}")
        missing = [lease_keepalive_response(a) for a in keepalive(
            iter([lease_keepalive_request(lease_id + 1)]), timeout=RPC_SECONDS
        )]  # fmt: skip
        if len(missing) != 1 or missing[0][1] > 0:
            raise RuntimeError(f"etcd LeaseKeepAlive of an unknown lease: {missing}")
    finally:
        channel.close()


# -- etcd: loaders -----------------------------------------------------------------------
def _grant_leases(grant: Any, n: int, window: int) -> list[int]:
    """``n`` leases of LEASE_TTL, ``window`` grants in flight; their IDs."""
    ids: list[int] = []
    req = lease_grant_request(LEASE_TTL)
    while len(ids) < n:  # bounded: every round adds up to window IDs or raises
        futures = [grant.future(req, timeout=RPC_SECONDS) for _ in range(min(window, n - len(ids)))]
        for f in futures:
            lease_id, _, error = lease_grant_response(f.result(timeout=RPC_SECONDS))
            if error or lease_id <= 0:
                raise RuntimeError(f"LeaseGrant failed: {error!r} (id {lease_id})")
            ids.append(lease_id)
    return ids


def _keepalive_loop(
    channel: Any, ids: list[int], window: int, seconds: float, warmup: float, max_ops: int
) -> dict[str, Any]:
    """W keep-alives in flight on one LeaseKeepAlive stream, cycling over leases ``ids``.

    A generator, consumed by grpc's request thread, blocks on a semaphore of W
    permits; the response loop (this thread) releases one per answer.  etcd
    answers a stream's requests in order, so the sampled send times are
    matched with answers by position (and the lease ID of those checked).
    """
    import grpc

    perf = time.perf_counter
    mask = SAMPLE_EVERY - 1
    sem = threading.Semaphore(window)
    stamps: deque[tuple[int, float, int]] = deque()
    reqs = [lease_keepalive_request(i) for i in ids]
    n_reqs = len(reqs)
    st: dict[str, Any] = {"sent": 0, "stalled": False, "t_stop": None, "cpu": 0.0, "busy": 0.0}
    box: list[Any] = []
    cpu_start = time.process_time()
    t_start = perf()
    t_measure = t_start + warmup
    t_end = t_measure + seconds
    tally = _Tally(t_measure, t_end)

    def requests() -> Any:
        idx = sent = 0
        try:
            while sent < max_ops:  # bounded: max_ops, the clock, the stall time-out
                if not sem.acquire(timeout=STALL_SECONDS):
                    st["stalled"] = True
                    if box:
                        box[0].cancel()
                    return
                now = perf()
                if now >= t_end:
                    return
                sent += 1
                st["sent"] = sent
                if not sent & mask:
                    stamps.append((sent, now, ids[idx]))
                yield reqs[idx]
                idx += 1
                if idx == n_reqs:
                    idx = 0
        finally:  # the sending phase is over: its CPU, like drive's, excludes the drain
            st["cpu"], st["busy"] = time.process_time() - cpu_start, perf() - t_start
            st["t_stop"] = min(perf(), t_end)

    total = warmup + seconds + STALL_SECONDS + DRAIN_SECONDS + 5.0
    call = channel.stream_stream(ETCD_KEEPALIVE)(requests(), timeout=total)
    box.append(call)
    # The drain is bounded: the stream is cancelled DRAIN_SECONDS after the window.
    timer = threading.Timer(max(t_end + DRAIN_SECONDS - perf(), 0.0), call.cancel)
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
    if st["t_stop"] is None:  # the generator was never finished (a cancelled stream)
        st["cpu"], st["busy"] = time.process_time() - cpu_start, perf() - t_start
        st["t_stop"] = min(perf(), t_end)
    sent = int(st["sent"])
    return tally.result(
        sent, sent - received, bool(st["stalled"]), st["t_stop"], st["cpu"], st["busy"]
    )


def _etcd_loader(
    kind: str,
    port: int,
    index: int,
    clients: int,
    instances: int,
    window: int,
    seconds: float,
    warmup: float,
    *,
    announce: Callable[[], None],
    go: Any,
    cleanups: list[Callable[[], None]],
) -> dict[str, Any]:
    import grpc

    channel = _etcd_channel(port)
    cleanups.append(channel.close)
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_SECONDS)
    except grpc.FutureTimeoutError:
        raise RuntimeError(
            f"no connection to etcd on {HOST}:{port} within {CONNECT_SECONDS:g}s"
        ) from None
    grant = channel.unary_unary(ETCD_GRANT)
    max_ops = max(1, int((seconds + warmup) * MAX_OPS_PER_SECOND))
    share = loader_share(index, clients, instances)
    if kind == "keepalive":
        ids = _grant_leases(grant, len(share), window)
        announce()
        if not go.wait(READY_SECONDS):
            return {"aborted": "no start signal"}
        return _keepalive_loop(channel, ids, window, seconds, warmup, max_ops)

    # register: LeaseGrant, then Put with that lease, both requests pre-built
    services = default_services()
    grant_req = lease_grant_request(LEASE_TTL)
    heads = []
    for i in share:
        key, value = instance_key(i, services)
        heads.append(_bytes_field(1, key.encode()) + _bytes_field(2, value) + b"\x18")
    put = channel.unary_unary(ETCD_PUT)
    n_heads = len(heads)

    def issue(seq: int, t0: float, finish: Finish) -> None:
        head = heads[seq % n_heads]

        def on_put(f: Any) -> None:
            exc = f.exception()
            finish(t0, exc is None, None if exc is None else f.code().name)

        def on_grant(f: Any) -> None:
            try:
                if f.exception() is not None:
                    finish(t0, False, f"grant {f.code().name}")
                    return
                lease_id, _, error = lease_grant_response(f.result())
                if error or lease_id <= 0:
                    finish(t0, False, "LEASE_GRANT_ERROR")
                    return
                put.future(head + _varint(lease_id), timeout=RPC_SECONDS).add_done_callback(on_put)
            except Exception as exc:  # never lose a completion
                finish(t0, False, type(exc).__name__)

        grant.future(grant_req, timeout=RPC_SECONDS).add_done_callback(on_grant)

    announce()
    if not go.wait(READY_SECONDS):
        return {"aborted": "no start signal"}
    return _windowed(issue, window, seconds, warmup, max_ops)


# -- ZooKeeper ---------------------------------------------------------------------------
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
        fh.write(f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress={HOST}\n"
                 "maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n")  # fmt: skip
    classpath = _zk_classpath()
    if classpath is None:
        raise RuntimeError(f"ZooKeeper is not installed; {INSTALL_HINT}")
    cmd = [
        shutil.which("java") or "java",
        "-XX:-UsePerfData",  # no /tmp/hsperfdata_* file, which a SIGKILL would leave behind
        "-Dzookeeper.admin.enableServer=false",
        f"-Dzookeeper.globalOutstandingLimit={max(1000, outstanding)}",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp", classpath, ZK_MAIN, cfg,
    ]  # fmt: skip

    def ruok() -> bool:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"ruok")
            s.settimeout(1.0)
            return s.recv(16) == b"imok"

    proc, log_path = _start_server(procs, cmd, work_dir, "zookeeper", ruok)
    return proc, port, log_path


def _zk_loader(
    port: int,
    index: int,
    clients: int,
    window: int,
    seconds: float,
    warmup: float,
    *,
    announce: Callable[[], None],
    go: Any,
    cleanups: list[Callable[[], None]],
) -> dict[str, Any]:
    import logging

    from kazoo.client import KazooClient

    # kazoo logs "Connection dropped" when the run ends and its session closes: noise
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    zk = KazooClient(hosts=f"{HOST}:{port}", timeout=10.0)
    zk.start(timeout=CONNECT_SECONDS)  # on a time-out it stops and closes itself

    def close() -> None:
        zk.stop()
        zk.close()

    cleanups.append(close)
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

        zk.create_async(path, value, ephemeral=True).rawlink(done)

    announce()
    if not go.wait(READY_SECONDS):
        return {"aborted": "no start signal"}
    return _windowed(issue, window, seconds, warmup, max_ops)


# -- loader processes --------------------------------------------------------------------
def _loader_main(kind: str, args: tuple[Any, ...], ready: Any, go: Any, out: Any) -> None:
    """Entry point of one loader process: the result goes to ``out``, then clean-up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    cleanups: list[Callable[[], None]] = []
    announced = []

    def announce() -> None:
        ready.put(os.getpid())
        announced.append(True)

    try:
        if kind == "zookeeper":
            result = _zk_loader(*args, announce=announce, go=go, cleanups=cleanups)
        else:
            result = _etcd_loader(kind, *args, announce=announce, go=go, cleanups=cleanups)
    except Exception as exc:  # report, do not hang the parent
        result = {"aborted": f"{type(exc).__name__}: {exc}"}
    # before the start signal the parent is waiting on the ready queue, after it on out
    (out if announced else ready).put(result)
    for close in reversed(cleanups):  # after the report, so a slow close delays nothing
        try:
            close()
        except Exception:
            pass


def _run_loaders(
    procs: Procs, ctx: Any, kind: str, jobs: list[tuple[Any, ...]], server_pid: int,
    window: int, seconds: float, warmup: float, setup_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """One loader process per job, all started together; a row like bench/load.py's."""
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    loaders = procs.start_children([
        ctx.Process(target=_loader_main, args=(kind, job, ready, go, out), daemon=True)
        for job in jobs
    ])  # fmt: skip
    # A loader that fails in its set-up sends {"aborted": why} instead of its pid.
    started = collect(ready, len(loaders), loaders, READY_SECONDS + setup_seconds,
                      f"the {kind} loaders")  # fmt: skip
    for r in started:
        if isinstance(r, dict):
            raise RuntimeError(f"a {kind} loader failed to start: {r.get('aborted')}")
    budget = warmup + seconds + 2 * STALL_SECONDS + DRAIN_SECONDS + READY_SECONDS
    row = measure_cpu(loaders, go, out, [server_pid], budget, window, f"the {kind} loaders")
    procs.stop_children()
    return {**row, "warmup_seconds": warmup}


# -- the rows ----------------------------------------------------------------------------
def _measured(
    procs: Procs, what: str, start: Callable[[str], tuple[Any, int, str]],
    body: Callable[[int, int], list[dict[str, Any]]],
) -> list[dict[str, Any]]:  # fmt: skip
    """``body(port, server pid)`` against a server ``start(work_dir)`` made in a temporary
    directory; the server must still run afterwards; stopped and removed on the way out."""
    work = tempfile.mkdtemp(prefix=f"meshreg-bench-{what.lower()}-")
    proc = None
    try:
        proc, port, log_path = start(work)
        rows = body(port, proc.pid)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during the run:\n"
                               + read_log(log_path))  # fmt: skip
        return rows
    finally:
        if proc is not None:
            _stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)


def run_etcd(
    procs: Procs, ctx: Any, clients: int, window: int, seconds: float, warmup: float,
    instances: int, kinds: tuple[str, ...] = ("keepalive", "register"),
) -> list[dict[str, Any]]:  # fmt: skip
    """etcd's lease keep-alive and register rows (``kinds``), with ``clients`` loaders of
    ``window``, after checking the hand-made protobuf against the server.  ``instances``:
    the leases kept alive, and the keys the registers cycle over (granting the leases
    takes about ``instances / 10_000`` s, which the register row alone skips)."""
    instances = max(instances, clients)

    def body(port: int, pid: int) -> list[dict[str, Any]]:
        etcd_selfcheck(port)
        jobs = [(port, c, clients, instances, window, seconds, warmup) for c in range(clients)]
        setup = instances / SETUP_OPS_PER_SECOND
        return [{"workload": workload,
                 **_run_loaders(procs, ctx, kind, jobs, pid, window, seconds, warmup, setup)}
                for kind, workload in (("keepalive", W_ETCD_KEEPALIVE),
                                       ("register", W_ETCD_REGISTER)) if kind in kinds]  # fmt: skip

    return _measured(procs, "etcd", lambda work: start_etcd(procs, work), body)


def run_zookeeper(
    procs: Procs, ctx: Any, clients: int, window: int, seconds: float, warmup: float,
    instances: int = 0, kinds: tuple[str, ...] = ("register",),
) -> list[dict[str, Any]]:  # fmt: skip
    """ZooKeeper's register row (ephemeral creates, each a new instance: ``instances`` is not
    used), with ``clients`` loaders of ``window``.  The warm-up is at least
    JVM_WARMUP_SECONDS: a cold JIT costs about a quarter more CPU per create."""
    warmup = max(warmup, JVM_WARMUP_SECONDS)

    def body(port: int, pid: int) -> list[dict[str, Any]]:
        jobs = [(port, c, clients, window, seconds, warmup) for c in range(clients)]
        row = _run_loaders(procs, ctx, "zookeeper", jobs, pid, window, seconds, warmup, 0.0)
        return [{"workload": W_ZK_REGISTER, **row}]

    start = lambda work: start_zookeeper(procs, work, 2 * clients * window)  # noqa: E731
    return _measured(procs, "ZooKeeper", start, body)


RUNNERS: tuple[tuple[str, Callable[[], str | None], Any], ...] = (
    ("etcd", etcd_missing, run_etcd),
    ("zookeeper", zookeeper_missing, run_zookeeper),
)


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say) -> dict[str, Any]:
    """etcd and ZooKeeper with the same loader processes and window as meshreg's rows."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    only = [x.lower() for x in opts.only or ()]
    for name, missing, runner in RUNNERS:
        if only and name not in only:
            continue
        why = missing() if opts.peers else "not run (--no-peers)"
        if why:
            skipped.append(f"{name}: {why}")
            continue
        say(f"{name} on loopback ...")
        try:
            rows += runner(procs, ctx, opts.clients, opts.window, opts.seconds, opts.warmup,
                           opts.instances)  # fmt: skip
        except Exception as exc:  # a baseline failing must not cost meshreg's own figures
            skipped.append(f"{name}: failed: {type(exc).__name__}: {exc}")
        finally:
            procs.stop_all()
    zk = max(opts.warmup, JVM_WARMUP_SECONDS)
    settings = {"clients": opts.clients, "window": opts.window, "seconds": opts.seconds,
                "warmup": opts.warmup, "zookeeper_warmup": zk}  # fmt: skip
    return {"rows": rows, "skipped": skipped, "settings": settings}


def report(result: dict[str, Any], say: Say) -> None:
    rows = result["rows"]
    if rows:
        say(table(rows, [("workload", "workload", "{}"), ("ops/s", "ops_per_second", "{:,.0f}"),
                         *LOAD_COLUMNS, ("other CPU", "other_cpu_busy", "{:.0%}"),
                         ("errors", "errors", "{}"), ("lost", "lost", "{}")]))  # fmt: skip
    for r in rows:
        if r["errors"] or r["errors_total"] or r["lost"] or r["stalled"]:
            say(f"  {r['workload']}: {r['errors']} errors ({r['errors_total']} in all) "
                f"{r['error_names']}, {r['lost']} lost, stalled {r['stalled']}")  # fmt: skip
        if r["other_top"]:
            say(f"  {r['workload']}: other CPU {', '.join(r['other_top'])}")
    for line in result["skipped"]:
        say(f"  skipped {line}")


SCENARIOS = (
    Scenario("baselines", run, report, "etcd lease keep-alive and register, ZooKeeper "
             "ephemeral create (when installed: bin/meshreg-bench-peers)", suite=True),
)  # fmt: skip
