"""What every benchmark shares: processes, ports, CPU and memory readings, machine, results.

Everything binds and connects to 127.0.0.1 only.  Every process a benchmark
starts is registered in a :class:`Procs`, whose ``stop_all`` ends them all
(SIGTERM, then SIGKILL), so that no run leaves anything behind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from meshreg import __version__ as MESHREG_VERSION
from meshreg.wire.replies import encode_request

HOST = "127.0.0.1"
NS, GROUP = "public", "DEFAULT_GROUP"
NODE_START_SECONDS = 20.0  # bound on a node answering its first ping
READY_SECONDS = 30.0  # bound on a spawned process starting (spawn + imports + connect)
OTHER_CPU_WARN = 0.10  # share of a core used by other processes that makes a run suspect
RESULTS_DIR = os.environ.get("MESHREG_BENCH_RESULTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results"
)
pc = time.perf_counter


# -- statistics ---------------------------------------------------------------------
def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile (nan for no samples)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def dist_ms(values: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds of durations in seconds."""
    v = sorted(values)
    return {
        "n": len(v),
        "p50": round(percentile(v, 50) * 1000, 3),
        "p99": round(percentile(v, 99) * 1000, 3),
        "max": round((v[-1] if v else float("nan")) * 1000, 3),
    }


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05
) -> float | None:
    """Poll ``predicate`` until truthy; the perf_counter time it held, or None on time-out.

    Exceptions from the predicate count as "not yet" (a node still starting).
    """
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


def free_port_block(span: int = 4) -> int:
    """A port P with P .. P+span-1 free on 127.0.0.1 and not handed out before here."""
    for _ in range(500):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        block = range(port, port + span)
        if port + span > 65535 or _handed_out.intersection(block):
            continue
        if all(port_free(p) for p in block[1:]):
            _handed_out.update(block)
            return port
    raise RuntimeError(f"no block of {span} free ports found on 127.0.0.1")


# -- CURVE keys ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """What a benchmark socket needs to speak CURVE to a node: its own key pair and the
    node's public key (z85).  Picklable, so it goes to spawned load generators."""

    public: bytes
    secret: bytes
    server: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


@dataclass(frozen=True)
class BenchKeys:
    """Key files for a benchmark run (made by :func:`make_keys`): the cluster key every node
    shares, ``app`` (in the ACL, admin on everything) and ``stranger`` (in no ACL)."""

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
        return {
            "key": os.path.join(self.directory, "app.key"),
            "server_key": os.path.join(self.directory, "cluster.pub"),
        }

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
def call(
    port: int, op: str, timeout: float = 2.0, curve: Curve | None = None, **fields: Any
) -> dict[str, Any]:
    """One request over a fresh REQ socket (CURVE with ``curve``); raises TimeoutError
    if no answer."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
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


def ping(port: int, timeout: float = 0.5, curve: Curve | None = None) -> bool:
    try:
        return bool(call(port, "ping", timeout, curve).get("ok"))
    except TimeoutError:
        return False


# -- CPU and memory (Linux /proc) ---------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all threads."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
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
    busy = sum(ticks[:8]) - idle
    return busy / os.sysconf("SC_CLK_TCK")


def process_cpu_table() -> dict[int, tuple[str, float]]:
    """{pid: (command, CPU seconds)} of every process now (best effort)."""
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


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (for servers started through a shell script)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:  # bounded: a tree of existing processes
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


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
    """A real ``meshreg node`` process on 127.0.0.1:port (restartable on the same port)."""

    def __init__(
        self,
        port: int,
        args: list[str],
        log_dir: str,
        prefix: list[str] | None = None,
        curve: Curve | None = None,
    ) -> None:
        """``curve``: the keys ``wait_ping`` uses (a node started with ``--key``)."""
        self.port = port
        self.curve = curve
        self.address = f"{HOST}:{port}"
        self.args = args
        self.log_dir = log_dir
        self.prefix = prefix or []  # e.g. ["-m", "cProfile", "-o", path]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_paths: list[str] = []
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> NodeProc:
        path = os.path.join(self.log_dir, f"node-{self.port}-{len(self.log_paths) + 1}.log")
        self.log_paths.append(path)
        cmd = [*die_with_parent(), sys.executable, *self.prefix, "-m", "meshreg", "node"]
        cmd += ["--host", HOST, "--port", str(self.port)]
        with open(path, "wb") as fh:
            self.started_at = pc()
            self.proc = subprocess.Popen(
                cmd + self.args,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self, limit: int = 4000) -> str:
        return "".join(read_log(p, 10_000_000) for p in self.log_paths)[-limit:]

    def log_lines(self) -> list[str]:
        return self.log(limit=10_000_000).splitlines()


class Procs:
    """Everything a benchmark started, so that ``stop_all`` can end it."""

    def __init__(self) -> None:
        self.children: list[Any] = []  # multiprocessing.Process
        self.nodes: list[NodeProc] = []
        self.popens: list[subprocess.Popen[bytes]] = []  # peer servers (etcd, ZooKeeper)

    def add(self, node: NodeProc) -> NodeProc:
        self.nodes.append(node)
        return node

    def stop_children(self) -> None:
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

    def stop_all(self) -> None:
        self.stop_children()
        for n in self.nodes:
            if n.alive():
                assert n.proc is not None
                n.proc.send_signal(signal.SIGTERM)
        deadline = pc() + 10.0
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.proc.wait(max(0.1, deadline - pc()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait(5)
        self.nodes.clear()
        for p in self.popens:
            if p.poll() is None:
                for pid in descendants(p.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.popens.clear()


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


def install_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, through every ``finally`` that stops processes."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


# -- machine and results ------------------------------------------------------------------
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
    mem = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "nproc": nproc,
        "memory": f"{mem / 2**30:.1f} GiB",
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
    doc = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine or machine_info(),
        "commit": git_revision(),
        **result,
    }
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(no_nan(doc), fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def say_machine(say: Callable[[str], None], machine: dict[str, Any]) -> None:
    say("machine:")
    for k, v in machine.items():
        say(f"  {k:<9} {v}")


def fmt_table(head: list[str], rows: list[list[Any]], right: set[int] | None = None) -> str:
    """A plain-text table; columns in ``right`` (default: all but the first) right-aligned."""
    right = set(range(1, len(head))) if right is None else right
    cells = [[str(c) for c in head]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return " | ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)
        )

    out = [line(cells[0]), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def with_log_dir(prefix: str, say: Callable[[str], None], body: Callable[[str], Any]) -> Any:
    """``body(log_dir)`` with a fresh directory for node logs: removed afterwards, kept
    (and named) when the body fails, so that the logs explain the failure."""
    log_dir = tempfile.mkdtemp(prefix=prefix)
    try:
        result = body(log_dir)
    except BaseException:
        say(f"node logs kept in {log_dir}")
        raise
    shutil.rmtree(log_dir, ignore_errors=True)
    return result


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
