"""Baselines: etcd and ZooKeeper driven like meshreg, with the same client processes.

Run from the repository root with the project's interpreter::

    python -m bench.peers [--clients 1] [--window 256] [--seconds 3] [--instances 1000]

The peers are Debian's packages (``etcd-server`` 3.4, ``zookeeper`` 3.8 on
Java 17) and two Python clients from PyPI (``grpcio``, ``kazoo``):
``bin/meshreg-bench-peers`` installs all of them.  Each run starts its own
server on free 127.0.0.1 ports with a fresh temporary data directory (removed
afterwards), and the same shape of load as bench/load.py: C loader processes
(``multiprocessing`` spawn), each keeping W requests in flight, one request in
16 timed, only replies inside the measured window (after the warm-up) counted.

Rows:

* ``etcd lease keep-alive``: the heartbeat.  ``instances`` leases are granted
  first (spread over the loaders); then each loader keeps W LeaseKeepAlive
  requests in flight on one bidirectional stream (one stream per client
  process is what etcd's own clients do), cycling over its leases.
* ``etcd register (lease grant + put)``: a registration as etcd-based
  registries do it: LeaseGrant, then Put(``/services/<svc>/<ip:port>``, a small
  JSON value, lease=ID).  One register is both round trips, timed from the
  grant being sent to the put being answered; W registers in flight per loader
  (gRPC futures).  The keys cycle over ``instances`` addresses (Put upserts).
* ``zookeeper register (ephemeral create)``: each loader's kazoo session
  creates ephemeral znodes ``/services/<svc>/<ip:port>`` with W ``create_async``
  in flight.  A create of an existing path fails, so every create names a new
  instance (unique for fewer than 2**24 per run); the parents are made first.

ZooKeeper has no per-instance heartbeat: liveness is the client session's
ping (a few per session timeout, whatever the number of ephemeral nodes the
session owns), so there is no ZooKeeper heartbeat row.

ZooKeeper's warm-up is at least 3 s (``JVM_WARMUP_SECONDS``), whatever the
caller asks: with a cold JIT compiler a create costs about a quarter more
server CPU than in a ZooKeeper that has run for a while.

Both servers are run with their defaults for durability: etcd and ZooKeeper
fsync their logs (group commit) before they answer a write, on the disk the
temporary directory is on.  etcd's lease keep-alive is not a write (the leader
renews the lease in memory); its lease grant and put are.  etcd is talked to
with hand-written protobuf encoding of the handful of messages needed
(grpcio's generic method handlers, no generated stubs, no ``protobuf``
package), pre-built per instance so that the Python client stays cheap.
Even so, grpcio's streaming costs the client about as much CPU per
keep-alive as etcd spends answering it (~50 us), and kazoo spends about as
much per create as ZooKeeper: on a 2-core machine those rows are limited by
how the cores are shared, and ``server_cpu_us_per_op`` is the figure to compare.

Every process started here is registered in :class:`bench.common.Procs` and
stopped on the way out; the servers also get SIGKILL if this process dies
(``setpriv --pdeathsig``).  Everything binds and connects to 127.0.0.1 only;
every loop is bounded in iterations and in time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/peers.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    HOST,
    READY_SECONDS,
    Procs,
    collect,
    cpu_seconds,
    die_with_parent,
    fmt_table,
    free_port_block,
    install_sigterm,
    process_cpu_table,
    read_log,
    system_busy_seconds,
    top_other,
    wait_until,
)
from bench.load import (
    DRAIN_SECONDS,
    MAX_OPS_PER_SECOND,
    SAMPLE_EVERY,
    STALL_SECONDS,
    default_services,
    row_of,
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


# -- etcd: server ------------------------------------------------------------------------
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


def _http_get(url: str, timeout: float) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    with opener.open(url, timeout=timeout) as resp:
        body: bytes = resp.read(4096)
        return body


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
    log_path = os.path.join(work_dir, "etcd.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            die_with_parent() + cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=work_dir,
        )
    procs.popens.append(proc)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {proc.returncode}:\n{read_log(log_path)}")
        return bool(json.loads(_http_get(f"{client}/health", 1.0)).get("health") == "true")

    deadline = time.perf_counter() + SERVER_START_SECONDS
    while True:  # bounded by the deadline; exits early if etcd dies
        try:
            if healthy():
                break
        except RuntimeError:
            raise
        except Exception:
            pass
        if time.perf_counter() >= deadline:
            raise RuntimeError(
                f"etcd on {client} not healthy within {SERVER_START_SECONDS:g}s:\n"
                + read_log(log_path)
            )
        time.sleep(0.05)
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
def _ruok(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1.0) as s:
        s.sendall(b"ruok")
        s.settimeout(1.0)
        return s.recv(16) == b"imok"


def start_zookeeper(
    procs: Procs, work_dir: str, outstanding: int = 1000
) -> tuple[subprocess.Popen[bytes], int, str]:
    """ZooKeeper standalone on 127.0.0.1, data in ``work_dir``: (JVM, client port, log path).

    ``outstanding`` raises ZooKeeper's global limit of requests in flight (1000
    by default, beyond which it stops reading from clients) to cover every
    loader's window.
    """
    port = free_port_block(1)
    data = os.path.join(work_dir, "data")
    os.makedirs(data, exist_ok=True)
    cfg = os.path.join(work_dir, "zoo.cfg")
    with open(cfg, "w", encoding="utf-8") as fh:
        fh.write(
            "tickTime=2000\n"
            f"dataDir={data}\n"
            f"clientPort={port}\n"
            f"clientPortAddress={HOST}\n"
            "maxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok\n"
        )
    classpath = _zk_classpath()
    if classpath is None:
        raise RuntimeError(f"ZooKeeper is not installed; {INSTALL_HINT}")
    cmd = [
        shutil.which("java") or "java",
        "-XX:-UsePerfData",  # no /tmp/hsperfdata_* file, which a SIGKILL would leave behind
        "-Dzookeeper.admin.enableServer=false",
        f"-Dzookeeper.globalOutstandingLimit={max(1000, outstanding)}",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp", classpath,
        ZK_MAIN,
        cfg,
    ]  # fmt: skip
    log_path = os.path.join(work_dir, "zookeeper.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            die_with_parent() + cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=work_dir,
        )
    procs.popens.append(proc)

    def ready() -> bool:
        if proc.poll() is not None:
            return True  # reported just below
        return _ruok(port)

    ok = wait_until(ready, SERVER_START_SECONDS)
    if proc.poll() is not None:
        raise RuntimeError(f"ZooKeeper exited with {proc.returncode}:\n{read_log(log_path)}")
    if ok is None:
        raise RuntimeError(
            f"ZooKeeper on {HOST}:{port} not ready within {SERVER_START_SECONDS:g}s:\n"
            + read_log(log_path)
        )
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
    procs: Procs,
    ctx: Any,
    kind: str,
    jobs: list[tuple[Any, ...]],
    server_pid: int,
    window: int,
    seconds: float,
    warmup: float,
    setup_seconds: float,
) -> dict[str, Any]:
    """One loader process per job, all started together; a row like bench/load.py's."""
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    loaders = [
        ctx.Process(target=_loader_main, args=(kind, job, ready, go, out), daemon=True)
        for job in jobs
    ]
    procs.children.extend(loaders)
    try:
        for p in loaders:
            p.start()
        # A loader that fails in its set-up sends {"aborted": why} instead of its pid.
        started = collect(
            ready, len(loaders), loaders, READY_SECONDS + setup_seconds, f"the {kind} loaders"
        )
        for r in started:
            if isinstance(r, dict):
                raise RuntimeError(f"a {kind} loader failed to start: {r.get('aborted')}")
        table0 = process_cpu_table()
        cpu0, sys0, t0 = cpu_seconds(server_pid), system_busy_seconds(), time.perf_counter()
        go.set()
        budget = warmup + seconds + 2 * STALL_SECONDS + DRAIN_SECONDS + READY_SECONDS
        results = collect(out, len(loaders), loaders, budget, f"the {kind} loaders' results")
        cpu1, sys1, t1 = cpu_seconds(server_pid), system_busy_seconds(), time.perf_counter()
        mine = {os.getpid(), server_pid, *(p.pid for p in loaders if p.pid is not None)}
        others = top_other(table0, process_cpu_table(), mine)
        for p in loaders:
            p.join(READY_SECONDS)
    finally:
        for p in loaders:
            if p.pid is not None and p.is_alive():
                p.terminate()
                p.join(3)
                if p.is_alive():
                    p.kill()
                    p.join(3)
    for r in results:
        if "aborted" in r:
            raise RuntimeError(f"a {kind} loader failed: {r['aborted']}")
    row = row_of(results, cpu1 - cpu0, sys1 - sys0, t1 - t0, others, window)
    row["warmup_seconds"] = warmup
    return row


# -- the rows ----------------------------------------------------------------------------
def _check_alive(proc: subprocess.Popen[bytes], what: str, log_path: str) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode} during the run:\n"
                           + read_log(log_path))  # fmt: skip


def run_etcd(
    procs: Procs,
    ctx: Any,
    clients: int,
    window: int,
    seconds: float,
    warmup: float,
    instances: int,
    *,
    kinds: tuple[str, ...] = ("keepalive", "register"),
) -> list[dict[str, Any]]:
    """etcd's lease keep-alive and register rows, with ``clients`` loaders of ``window``.

    Starts etcd on free 127.0.0.1 ports with a temporary data directory, checks
    the hand-made protobuf encoding against it, measures, then stops etcd and
    removes the directory.  ``instances`` is the total number of leases kept
    alive, and of keys the registers cycle over.  ``kinds`` chooses the rows
    (``"keepalive"``, ``"register"``): granting the keep-alive's leases first
    takes about ``instances / 10_000`` seconds, which a caller that only wants
    the register row can skip.
    """
    unknown = set(kinds) - {"keepalive", "register"}
    if unknown:
        raise ValueError(f"unknown etcd rows {sorted(unknown)}")
    instances = max(instances, clients)
    work = tempfile.mkdtemp(prefix="meshreg-bench-etcd-")
    proc = None
    try:
        proc, port, log_path = start_etcd(procs, work)
        etcd_selfcheck(port)
        jobs = [(port, c, clients, instances, window, seconds, warmup) for c in range(clients)]
        setup = instances / SETUP_OPS_PER_SECOND
        rows = []
        for kind, workload in (("keepalive", W_ETCD_KEEPALIVE), ("register", W_ETCD_REGISTER)):
            if kind not in kinds:
                continue
            row = _run_loaders(procs, ctx, kind, jobs, proc.pid, window, seconds, warmup, setup)
            _check_alive(proc, "etcd", log_path)
            rows.append({"workload": workload, **row})
        return rows
    finally:
        if proc is not None:
            _stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)


def run_zookeeper(
    procs: Procs,
    ctx: Any,
    clients: int,
    window: int,
    seconds: float,
    warmup: float,
    instances: int,
) -> list[dict[str, Any]]:
    """ZooKeeper's register row (ephemeral creates), with ``clients`` loaders of ``window``.

    Starts ZooKeeper standalone on a free 127.0.0.1 port with a temporary data
    directory, measures, then stops the JVM and removes the directory.  Every
    create names a new instance (a create of an existing znode fails), so
    ``instances`` is not used: it is there for the same signature as :func:`run_etcd`.
    The warm-up is at least JVM_WARMUP_SECONDS: a cold JIT costs about a quarter
    more CPU per create, which a long-running ZooKeeper does not pay.
    """
    del instances
    warmup = max(warmup, JVM_WARMUP_SECONDS)
    work = tempfile.mkdtemp(prefix="meshreg-bench-zookeeper-")
    proc = None
    try:
        proc, port, log_path = start_zookeeper(procs, work, outstanding=2 * clients * window)
        jobs = [(port, c, clients, window, seconds, warmup) for c in range(clients)]
        row = _run_loaders(procs, ctx, "zookeeper", jobs, proc.pid, window, seconds, warmup, 0.0)
        _check_alive(proc, "ZooKeeper", log_path)
        return [{"workload": W_ZK_REGISTER, **row}]
    finally:
        if proc is not None:
            _stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["workload", "ops/s", "p50 ms", "p99 ms", "server CPU", "server us/op",
            "loader CPU", "other CPU", "errors", "lost"]  # fmt: skip
    return fmt_table(
        head,
        [
            [
                r["workload"],
                f"{r['ops_per_second']:,.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{r['server_cpu_busy']:.0%}",
                f"{r['server_cpu_us_per_op']:.1f}",
                f"{r['loader_cpu_busy']:.0%}",
                f"{r['other_cpu_busy']:.0%}",
                r["errors"],
                r["lost"],
            ]
            for r in rows
        ],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=1, help="loader processes (1)")
    ap.add_argument("--window", type=int, default=256, help="requests in flight per loader (256)")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per row (3)")
    ap.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first (0.5)")
    ap.add_argument("--instances", type=int, default=1000, help="etcd leases / keys (1000)")
    ap.add_argument("--only", choices=("etcd", "zookeeper"), help="run one peer only")
    opts = ap.parse_args(argv)
    if opts.clients < 1 or opts.window < 1 or opts.seconds <= 0 or opts.warmup < 0:
        ap.error("--clients and --window must be >= 1, --seconds > 0, --warmup >= 0")
    if opts.instances < 1 or opts.seconds + opts.warmup > 600:
        ap.error("--instances must be >= 1 and --seconds + --warmup at most 600")
    install_sigterm()
    ctx = mp.get_context("spawn")
    procs = Procs()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        for name, missing, runner in (
            ("etcd", etcd_missing(), run_etcd),
            ("zookeeper", zookeeper_missing(), run_zookeeper),
        ):
            if opts.only not in (None, name):
                continue
            if missing:
                skipped.append(f"{name}: {missing}")
                continue
            print(f"{name} on loopback ...", file=sys.stderr, flush=True)
            got = runner(procs, ctx, opts.clients, opts.window, opts.seconds, opts.warmup,
                         opts.instances)  # fmt: skip
            rows.extend(got)
            procs.stop_all()
    finally:
        procs.stop_all()
    zk_warmup = max(opts.warmup, JVM_WARMUP_SECONDS)
    print(
        f"clients {opts.clients}, window {opts.window}, {opts.seconds:g} s measured "
        f"after {opts.warmup:g} s warm-up ({zk_warmup:g} s for ZooKeeper)"
    )
    if rows:
        print(table(rows))
    for r in rows:
        if r["errors"] or r["errors_total"] or r["lost"] or r["stalled"]:
            print(f"  {r['workload']}: {r['errors']} errors ({r['errors_total']} in all) "
                  f"{r['error_names']}, {r['lost']} lost, stalled {r['stalled']}")  # fmt: skip
        if r["other_top"]:
            print(f"  {r['workload']}: other CPU {', '.join(r['other_top'])}")
    for s in skipped:
        print(f"skipped {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
