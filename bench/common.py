"""What every benchmark shares: processes, ports, CPU and memory readings, clusters, keys,
the machine, results and tables.  Everything binds and connects to 127.0.0.1 only; every
process a benchmark starts is registered in a :class:`Procs`, whose ``stop_all`` (run
after every scenario, also on Ctrl-C and SIGTERM) ends them all; every loop is bounded in
count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from meshreg import __version__ as MESHREG_VERSION
from meshreg.core.mapping import responsible_node
from meshreg.model import ServiceKey
from meshreg.wire.replies import encode_request

HOST = "127.0.0.1"
NS, GROUP = "public", "DEFAULT_GROUP"
NODE_START_SECONDS = 20.0  # bound on a node answering its first ping
READY_SECONDS = 30.0  # bound on a spawned process starting (spawn + imports + connect)
FORM_SECONDS = 30.0  # bound on a cluster agreeing that every member is up and ready
OTHER_CPU_WARN = 0.10  # share of a core used by other processes that makes a run suspect
QUIET = ["--unhealthy-after", "3600", "--evict-after", "7200"]  # nothing expires mid-run
MB = 1024 * 1024
RESULTS_DIR = os.environ.get("MESHREG_BENCH_RESULTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results"
)
pc = time.perf_counter
Say = Callable[..., None]


# -- scenarios ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One ``python -m bench NAME``: ``run(procs, ctx, opts, say, log_dir)`` returns the
    result (``rows`` and the rest, saved as JSON; the runner adds ``settings`` if it has
    none), ``report(result, say)`` prints its tables.  ``log_dir``: a fresh directory for
    node logs, removed afterwards unless the run failed or ``problem(result)``.
    ``defaults``: option -> (default, default under --quick), for options not given."""

    name: str
    run: Callable[[Procs, Any, argparse.Namespace, Say, str], dict[str, Any]]
    report: Callable[[dict[str, Any], Say], None]
    about: str
    defaults: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    suite: bool = False  # in the default set (``python -m bench`` with no name)
    problem: Callable[[dict[str, Any]], bool] | None = None


# -- statistics ---------------------------------------------------------------------
def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile (nan for no samples)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def dist_ms(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of durations in seconds."""
    v = sorted(values)
    out: dict[str, float] = {"n": len(v)}
    for q in (50, 90, 99):
        out[f"p{q}"] = round(percentile(v, q) * 1000, 3)
    out["max"] = round((v[-1] if v else float("nan")) * 1000, 3)
    return out


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05
) -> float | None:
    """Poll ``predicate`` until truthy; the perf_counter time it held, or None on time-out.
    Exceptions from the predicate count as "not yet" (a node still starting)."""
    deadline = pc() + timeout
    while True:  # bounded by the deadline
        try:
            ok = predicate()
        except Exception:
            ok = False
        if ok:
            return pc()
        if pc() >= deadline:
            return None
        time.sleep(interval)


# -- ports --------------------------------------------------------------------------
def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()


def _port_range() -> range:
    """Ports below the kernel's ephemeral range (32768-60999 by default), which every
    outgoing connection on the machine draws its local port from: one of those could take
    a node's port between the check here and the node's bind ("Address already in use")."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12_000), max(1024 + 1000, low))


def free_port_block(span: int = 4) -> int:
    """A port P with P .. P+span-1 free on 127.0.0.1, below the ephemeral range, and not
    handed out before here."""
    ports, rng = _port_range(), random.Random()
    for _ in range(500):
        port = rng.randrange(ports.start, ports.stop - span)
        block = range(port, port + span)
        if not _handed_out.intersection(block) and all(port_free(p) for p in block):
            _handed_out.update(block)
            return port
    raise RuntimeError(f"no block of {span} free ports found on 127.0.0.1 in {ports}")


# -- CURVE keys ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """A benchmark socket's CURVE keys: its own pair and the node's public key (z85).
    Picklable, so it goes to spawned load generators."""

    public: bytes
    secret: bytes
    server: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


@dataclass(frozen=True)
class BenchKeys:
    """Key files made by :func:`make_keys`: the cluster key every node shares, ``app``
    (in the ACL, admin on everything) and ``stranger`` (in no ACL)."""

    directory: str
    cluster: str  # path of cluster.key
    cluster_public: bytes
    app: Curve
    stranger: Curve
    acl: str  # path of acl.toml

    def node_args(self) -> list[str]:
        return ["--key", self.cluster, "--acl", self.acl]

    def client_kwargs(self) -> dict[str, str]:
        """``Client(servers, **kw)`` arguments for the ``app`` key."""
        d = self.directory
        return {"key": os.path.join(d, "app.key"), "server_key": os.path.join(d, "cluster.pub")}

    def server_pair(self) -> tuple[bytes, bytes]:
        """(public, secret) of the cluster key: a raw CURVE server (the echo baseline)."""
        from meshreg.security.keys import load_secret_key

        pair = load_secret_key(self.cluster)
        assert pair.secret is not None
        return pair.public, pair.secret


def make_keys(directory: str) -> BenchKeys:
    """``meshreg keygen`` cluster, app and stranger in ``directory``, and an ACL granting
    ``app`` admin on every namespace (so it may beat, register and read ``stats``)."""
    from meshreg.security.keys import generate_key_files, load_secret_key

    pairs = {}
    for name in ("cluster", "app", "stranger"):
        key_path, _ = generate_key_files(os.path.join(directory, name))
        pairs[name] = load_secret_key(key_path)
    acl = os.path.join(directory, "acl.toml")
    with open(acl, "w", encoding="utf-8") as fh:
        fh.write('[[client]]\nname = "bench-app"\nkey_file = "app.pub"\n')
        fh.write('allow = [{ namespace = "*", access = "admin" }]\n')
    server = pairs["cluster"].public

    def curve(name: str) -> Curve:
        secret = pairs[name].secret
        assert secret is not None
        return Curve(pairs[name].public, secret, server)

    cluster = os.path.join(directory, "cluster.key")
    return BenchKeys(directory, cluster, server, curve("app"), curve("stranger"), acl)


# -- one request --------------------------------------------------------------------
def connect(
    ctx: zmq.Context[Any], kind: int, port: int | str, curve: Curve | None = None,
    monitors: list[zmq.Socket[Any]] | None = None, **options: Any,
) -> zmq.Socket[Any]:  # fmt: skip
    """A ``kind`` socket connected to 127.0.0.1:``port`` (or to an endpoint), no linger,
    ``options`` (by name: ``SNDHWM=0``) and CURVE ``curve`` set before it connects; with
    ``monitors``, its monitor socket is added there first (it sees every event)."""
    sock: zmq.Socket[Any] = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    if curve is not None:
        curve.apply(sock)
    if monitors is not None:
        monitors.append(sock.get_monitor_socket())
    sock.connect(port if isinstance(port, str) else f"tcp://{HOST}:{port}")
    return sock


def request(port: int, body: bytes, curve: Curve | None = None, timeout: float = 5.0) -> Any:
    """One raw request over a fresh REQ socket (CURVE with ``curve``): the decoded reply,
    None if unanswered within ``timeout``."""
    ctx = zmq.Context()
    sock = connect(ctx, zmq.REQ, port, curve)
    try:
        sock.send(body)
        return msgpack.unpackb(sock.recv()) if sock.poll(timeout * 1000.0) else None
    finally:
        sock.close(linger=0)
        ctx.term()


def call(
    port: int, op: str, timeout: float = 2.0, curve: Curve | None = None, **fields: Any
) -> dict[str, Any]:
    """One request ``op``; raises TimeoutError if no answer."""
    reply = request(port, encode_request(op, 1, **fields), curve, timeout)
    if reply is None:
        raise TimeoutError(f"no answer to {op!r} from {HOST}:{port} within {timeout}s")
    return dict(reply)


def ping(port: int, timeout: float = 0.5, curve: Curve | None = None) -> bool:
    try:
        return bool(call(port, "ping", timeout, curve).get("ok"))
    except TimeoutError:
        return False


def stats(port: int, timeout: float = 5.0, curve: Curve | None = None) -> dict[str, Any]:
    return dict(call(port, "stats", timeout, curve)["result"])


# -- CPU and memory (Linux /proc) ---------------------------------------------------------
def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all threads."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def system_busy_seconds() -> float:
    """CPU seconds all processors spent not idle since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, tuple[str, float, int]]:
    """{pid: (command, CPU seconds, parent pid)} of every process now (best effort)."""
    table: dict[int, tuple[str, float, int]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = _stat_fields(name)
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read(200).replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        table[int(name)] = (cmd or f"[pid {name}]", cpu, int(fields[1]))
    return table


def top_other(
    before: dict[int, tuple[str, float, int]],
    after: dict[int, tuple[str, float, int]],
    mine: set[int],
) -> list[tuple[str, float]]:
    """The processes, not ours, that used the most CPU between two tables."""
    used = []
    for pid, (cmd, cpu, _) in after.items():
        delta = cpu - before.get(pid, (cmd, 0.0, 0))[1]
        if pid not in mine and delta > 0:
            used.append((f"{pid} {cmd[:70]}", delta))
    return sorted(used, key=lambda u: -u[1])[:3]


# -- processes -----------------------------------------------------------------------
def read_log(path: str, limit: int = 4000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-limit:]
    except OSError:
        return ""


def die_with_parent() -> list[str]:
    """A command prefix that SIGKILLs the child if this process dies, even by SIGKILL
    (util-linux ``setpriv --pdeathsig``); empty where setpriv is missing."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class NodeProc:
    """A real ``meshreg node`` process on 127.0.0.1:port (restartable on the same port);
    ``curve``: the keys ``wait_ping`` uses (a node started with ``--key``)."""

    def __init__(
        self, port: int, args: list[str], log_dir: str, prefix: list[str] | None = None,
        curve: Curve | None = None,
    ) -> None:  # fmt: skip
        self.port, self.args, self.log_dir, self.curve = port, args, log_dir, curve
        self.address = f"{HOST}:{port}"
        self.prefix = prefix or []  # e.g. ["-m", "cProfile", "-o", path]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_paths: list[str] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> NodeProc:
        path = os.path.join(self.log_dir, f"node-{self.port}-{len(self.log_paths) + 1}.log")
        self.log_paths.append(path)
        cmd = [*die_with_parent(), sys.executable, *self.prefix, "-m", "meshreg", "node"]
        cmd += ["--host", HOST, "--port", str(self.port), *self.args]
        # a node without --data-dir keeps its state under the run's log directory, not in
        # the user's ~/.local/state (where every bench port left a directory behind)
        state = os.path.join(self.log_dir, "state")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_STATE_HOME": state}
        with open(path, "wb") as fh:
            self.proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        return self

    def wait_ping(self, timeout: float = NODE_START_SECONDS) -> float:
        """Block until the node answers ping; the perf_counter time it did."""
        deadline = pc() + timeout
        while True:  # bounded by the deadline
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"node {self.address} exited early ({code}):\n{self.log()}")
            if ping(self.port, 0.3, self.curve):
                return pc()
            if pc() >= deadline:
                raise RuntimeError(f"node {self.address} did not answer ping within {timeout}s")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (no goodbye to peers or clients) and reap."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (lets a profiler write its file), then SIGKILL after ``timeout``."""
        if self.proc is not None:
            terminate(self.proc, timeout)

    def log(self, limit: int = 4000) -> str:
        return "".join(read_log(p, 10_000_000) for p in self.log_paths)[-limit:]

    def log_lines(self) -> list[str]:
        return self.log(limit=10_000_000).splitlines()


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _reap(proc, timeout)


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(max(0.1, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


class Procs:
    """Everything a benchmark started, so that ``stop_all`` can end it."""

    def __init__(self) -> None:
        self.children: list[Any] = []  # multiprocessing.Process
        self.nodes: list[NodeProc] = []
        self.popens: list[subprocess.Popen[bytes]] = []  # baseline servers (etcd, ZooKeeper)

    def add(self, node: NodeProc) -> NodeProc:
        self.nodes.append(node)
        return node

    def node(self, log_dir: str, args: list[str], **kw: Any) -> NodeProc:
        """A node on fresh ports, started and answering ping."""
        node = self.add(NodeProc(free_port_block(), args, log_dir, **kw).start())
        node.wait_ping()
        return node

    def start_children(self, children: list[Any]) -> list[Any]:
        self.children.extend(children)
        for p in children:
            p.start()
        return children

    def start_workers(
        self, ctx: Any, setup: Callable[..., Any], jobs: list[tuple[Any, ...]], what: str,
        timeout: float = READY_SECONDS, target: Callable[..., None] | None = None,
    ) -> tuple[list[Any], Any, Any]:  # fmt: skip
        """One process per job running :func:`worker_main` (or ``target``) with ``setup(*job,
        cleanups)``, started together; returns (processes, go, out) once each is ready, so
        that ``go.set()`` starts them all at once."""
        ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        children = self.start_children([
            ctx.Process(target=target or worker_main, args=(setup, job, ready, go, out),
                        daemon=True) for job in jobs
        ])  # fmt: skip
        for r in collect(ready, len(children), children, timeout, what):
            if isinstance(r, dict):
                raise RuntimeError(f"{what}: one failed to start: {r.get('aborted')}")
        return children, go, out

    def stop_children(self) -> None:
        stop_processes(self.children)
        self.children.clear()

    def stop_all(self) -> None:
        self.stop_children()
        for n in self.nodes:
            if n.alive():
                assert n.proc is not None
                n.proc.send_signal(signal.SIGTERM)
        deadline = pc() + 10.0
        for n in self.nodes:
            if n.proc is not None:
                _reap(n.proc, deadline - pc())
        self.nodes.clear()
        for p in self.popens:
            if p.poll() is None:
                p.kill()
            _reap(p, 5)
        self.popens.clear()


def stop_processes(processes: list[Any]) -> None:
    """Terminate (then kill) multiprocessing children and reap them."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        if p.pid is not None:  # else never started
            p.join(3)
            if p.is_alive():
                p.kill()
                p.join(3)


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


def worker_main(
    setup: Callable[..., Callable[[], Any]], args: tuple[Any, ...], ready: Any, go: Any, out: Any
) -> None:
    """A child process of :meth:`Procs.start_workers`: ``setup(*args, cleanups)`` gets it
    ready and returns the measuring call; then its pid goes to ``ready`` (a failed set-up:
    why, there, where the parent waits), the measurement's result (or why it failed) to
    ``out`` once ``go`` is set, and the ``cleanups`` run, last first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    cleanups: list[Callable[[], Any]] = []
    queue = ready
    try:
        measure = setup(*args, cleanups)
        ready.put(os.getpid())
        queue = out
        result = measure() if go.wait(READY_SECONDS) else {"aborted": "no start signal"}
    except Exception as exc:  # report, do not hang the parent
        result = {"aborted": f"{type(exc).__name__}: {exc}"}
    queue.put(result)
    for close in reversed(cleanups):  # after the report, so a slow close delays nothing
        try:
            close()
        except Exception:
            pass


def install_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, through every ``finally`` that stops processes."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def node_args(opts: argparse.Namespace, cluster: bool = False) -> list[str]:
    """The node's timing flags from the options (``cluster``: with its peer time-out)."""
    args = ["--check-interval", f"{opts.check_interval:g}", "--unhealthy-after",
            f"{opts.unhealthy_after:g}", "--evict-after", f"{opts.evict_after:g}"]  # fmt: skip
    return args + (["--peer-timeout", f"{opts.peer_timeout:g}"] if cluster else [])


# -- clusters -------------------------------------------------------------------------------
def start_cluster(
    procs: Procs, n: int, log_dir: str, extra: list[str], curve: Curve | None = None,
    setup: Callable[[int, NodeProc], None] | None = None,
) -> list[NodeProc]:  # fmt: skip
    """``n`` peers on fresh ports, returned once each reports every member up and ready and
    all agree on the members (``curve``: the client keys, for nodes started with ``--key``;
    ``setup(i, node)``: adjusts node i's ``args`` or ``prefix`` before it starts)."""
    ports = [free_port_block() for _ in range(n)]
    peer_args = [x for p in ports for x in ("--peer", f"{HOST}:{p}")]
    nodes = [procs.add(NodeProc(p, extra + peer_args, log_dir, curve=curve)) for p in ports]
    for i, node in enumerate(nodes):
        if setup is not None:
            setup(i, node)
        node.start()
    for node in nodes:
        node.wait_ping()

    def formed() -> bool:
        views = [call(node.port, "cluster", 1.0, curve)["result"] for node in nodes]
        ids = {tuple(sorted(m["id"] for m in v["members"])) for v in views}
        up = all(v["ready"] and [m["state"] for m in v["members"]] == ["up"] * n for v in views)
        return up and len(ids) == 1

    if wait_until(formed, FORM_SECONDS) is None:
        raise RuntimeError(f"the {n}-node cluster did not form within {FORM_SECONDS:g}s")
    return nodes


def owned_services(
    addresses: list[str], per_node: int, prefix: str = "bench-svc-",
    owner: Callable[[str], str] | None = None,
) -> dict[str, tuple[str, ...]]:  # fmt: skip
    """``per_node`` names ``<prefix><k>`` owned by each address: services by rendezvous
    hashing over the addresses, or by ``owner(name)``."""
    out: dict[str, list[str]] = {a: [] for a in addresses}
    for k in range(1_000_000):  # bounded; ~per_node * len(addresses) draws suffice
        name = f"{prefix}{k}"
        at = owner(name) if owner else responsible_node(ServiceKey(NS, GROUP, name), addresses)
        if len(out[at]) < per_node:
            out[at].append(name)
        if all(len(v) == per_node for v in out.values()):
            return {a: tuple(v) for a, v in out.items()}
    raise RuntimeError("could not find names owned by every node")


def forwarded(nodes: list[NodeProc]) -> int:
    """Writes the nodes have forwarded to the owner so far."""
    return sum(stats(nd.port).get("forwarded", 0) for nd in nodes)


# -- machine and results ------------------------------------------------------------------
def git_revision() -> str:
    """Commit of the meshreg being measured, and whether its sources differ from it."""
    import meshreg

    root = os.path.dirname(os.path.dirname(os.path.abspath(meshreg.__file__)))

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=5)
        return done.stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "meshreg")
    except (OSError, subprocess.TimeoutExpired):
        return "no git"
    if not head:
        return "no git"
    return f"git {head}" + (", meshreg/ has uncommitted changes" if dirty else "")


def _first_line(path: str, prefix: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith(prefix)), "")
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        nproc = os.cpu_count() or 0
    try:
        from msgpack import _cmsgpack  # noqa: F401

        msgpack_impl = "C extension"
    except ImportError:
        msgpack_impl = "pure Python"
    mem = _first_line("/proc/meminfo", "MemTotal").split(" ")[0]
    return {
        "platform": platform.platform(),
        "cpu": _first_line("/proc/cpuinfo", "model name") or "unknown",
        "nproc": nproc,
        "memory": f"{int(mem or 0) * 1024 / 2**30:.1f} GiB",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "msgpack": f"{'.'.join(map(str, msgpack.version))} ({msgpack_impl})",
        "meshreg": f"{MESHREG_VERSION} ({git_revision()})",
    }


def no_nan(value: Any) -> Any:
    """``value`` with NaN floats as None, so that the JSON is standard."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [no_nan(v) for v in value]
    return value


def save_result(name: str, result: dict[str, Any], machine: dict[str, Any] | None = None) -> str:
    """Write ``result`` as ``bench/results/<name>-<date>.json`` (with the machine); its path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(RESULTS_DIR, f"{name}-{stamp}.json")
    for n in range(2, 100):  # bounded: two runs in one second do not overwrite each other
        if not os.path.exists(path):
            break
        path = os.path.join(RESULTS_DIR, f"{name}-{stamp}-{n}.json")
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": machine or machine_info(), "commit": git_revision(), **result}  # fmt: skip
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(no_nan(doc), fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(path + ".tmp", path)
    return path


def met(ok: bool) -> str:
    """A target's verdict."""
    return "met" if ok else "NOT MET"


def ratio(a: float | None, b: float | None, form: str = "{:.2f}x") -> str:
    """``a / b`` formatted; "-" when either is missing or NaN, or ``b`` is 0."""
    if a is None or b is None or a != a or b != b or not b:
        return "-"
    return form.format(a / b)


def fmt_table(head: list[str], rows: list[list[Any]], right: set[int] | None = None) -> str:
    """A plain-text table; columns in ``right`` (default: all but the first) right-aligned."""
    right = set(range(1, len(head))) if right is None else right
    cells = [[str(c) for c in head]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return " | ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                          for i, c in enumerate(r))  # fmt: skip

    out = [line(cells[0]), "-+-".join("-" * w for w in widths)]
    return "\n".join(out + [line(r) for r in cells[1:]])


Column = tuple[str, Any, str]  # (head, key or function of the row, format)
LOAD_COLUMNS: list[Column] = [
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server CPU", "server_cpu_busy", "{:.0%}"),
    ("server us/op", "server_cpu_us_per_op", "{:.1f}"),
    ("loader CPU", "loader_cpu_busy", "{:.0%}"),
]


# the columns of a loaded row after its p50 ... loader CPU
LOAD_TAIL: list[Column] = [("other CPU", "other_cpu_busy", "{:.0%}"), ("errors", "errors", "{}"),
                           ("lost", "lost", "{}")]  # fmt: skip


def load_notes(rows: list[dict[str, Any]], say: Say, name: Callable[[Any], str] | None = None,
               skipped: list[str] | None = None) -> None:  # fmt: skip
    """The lines under a table of loaded rows: errors, losses, stalls, busy other processes,
    what was skipped (``name(row)``: the row's name, default its workload)."""
    for r in rows:
        label = name(r) if name else r["workload"]
        if r["errors"] or r.get("errors_total") or r["lost"] or r["stalled"]:
            say(f"  {label}: {r['errors']} errors ({r.get('errors_total', '?')} in all) "
                f"{r['error_names']}, {r['lost']} lost, stalled {r['stalled']}")  # fmt: skip
        if r.get("other_cpu_busy", 0) > OTHER_CPU_WARN:
            say(f"  {label}: other processes used {r['other_cpu_busy']:.0%} of a core "
                f"({', '.join(r['other_top'])}): figures are suspect")  # fmt: skip
    for line in skipped or ():
        say(f"  skipped {line}")


def table(rows: list[dict[str, Any]], columns: list[Column], right: set[int] | None = None) -> str:
    """:func:`fmt_table` of ``rows`` by ``columns``; a missing value shows as "-"."""

    def cell(r: dict[str, Any], key: Any, form: str) -> str:
        value = key(r) if callable(key) else r.get(key)
        return "-" if value is None else form.format(value)

    out = [[cell(r, key, form) for _, key, form in columns] for r in rows]
    return fmt_table([c[0] for c in columns], out, right)


def with_log_dir(
    prefix: str, say: Say, body: Callable[[str], Any], problem: Callable[[Any], bool] | None = None
) -> Any:
    """``body(log_dir)`` with a fresh directory for node logs: removed afterwards, kept (and
    named) when the body fails or ``problem(result)``, so that the logs explain it."""
    log_dir = tempfile.mkdtemp(prefix=prefix)
    keep = True
    try:
        result = body(log_dir)
        keep = problem is not None and problem(result)
        return result
    finally:
        if keep:
            say(f"node logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


def settings(opts: argparse.Namespace) -> dict[str, Any]:
    """The options a scenario ran with, for its result."""
    return {k: v for k, v in vars(opts).items() if k not in ("names", "baseline_rows")}


def ranged(kind: Any, low: float, high: float) -> Any:
    """An argparse type: ``kind`` within [low, high], else an error naming the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse


def parse_list(kind: Any, low: float, high: float, what: str, example: str) -> Any:
    """An argparse type: comma-separated ``kind`` values in [low, high] (``_`` allowed)."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(s.replace("_", "")) for s in text.split(",") if s.strip())
        except ValueError:
            values = ()
        if not values or not all(low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(
                f"{text!r}: {what} in {low:.0f}..{high:.0f}, comma-separated, e.g. {example}"
            )
        return values

    return parse


parse_rates = parse_list(float, 1, 1_000_000, "rates are requests/s", "500,1000")
parse_sizes = parse_list(int, 1, 4_000_000, "sizes are instance counts", "100000")
