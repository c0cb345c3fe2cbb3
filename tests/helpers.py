"""Test helpers: free ports, bounded waits, real node processes."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

HOST = "127.0.0.1"
_pause = threading.Event()  # never set: .wait(t) is an interruptible poll interval


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        _pause.wait(interval)


_handed_out: set[int] = set()


def holds_for(
    predicate: Callable[[], Any], seconds: float, interval: float = 0.1, what: str = ""
) -> None:
    """Check that ``predicate`` stays truthy for ``seconds`` (an observation window: that
    something does *not* happen, e.g. a late write resurfacing), polled every
    ``interval``; fails at the first falsy value, naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if not value:
            held = seconds - (deadline - time.monotonic())
            raise AssertionError(f"no longer holds after {held:.2f}s: {what or predicate}")
        if time.monotonic() >= deadline:
            return
        _pause.wait(interval)


def _ports_below_ephemeral() -> range:
    """Where to look: below the kernel's ephemeral range, from which every outgoing
    connection on the machine draws its local port (one could take a node's port between
    the check here and the node's bind: "Address already in use")."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    # bench/common.py draws from [low - 12000, low); the tests take the range below it,
    # so a benchmark the tests start never races a node of the test itself.
    ports = range(max(1024, low - 22_000), max(2048, low - 12_000))
    # Under pytest-xdist each worker takes its own slice: two workers checking the same
    # port free at the same moment would both hand it out.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        size = len(ports) // count
        start = ports.start + int(worker[2:]) % count * size
        ports = range(start, start + size)
    return ports


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


# Ports claimed machine-wide: two test sessions on one machine (a developer's run beside
# CI's, or parallel worktrees) draw from the same slices, and a node of one could take a
# port another session's stopped node had, and answer that session's clients (seen once:
# a config read answered NOT_FOUND by another session's node, 2026-12-02).  A claim is a
# file naming the claiming process; a claim whose process is gone is taken over.
_CLAIMS = os.path.join(os.environ.get("TMPDIR", "/tmp"), "meshreg-test-ports")
_claimed: list[str] = []


def _claim(port: int) -> bool:
    path = os.path.join(_CLAIMS, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="ascii") as fh:
                    owner = int(fh.read() or 0)
                os.kill(owner, 0)  # alive: the port is someone else's
                return False
            except (OSError, ValueError):  # gone (or unreadable): take it over
                try:
                    os.unlink(path)
                except OSError:
                    return False
                continue
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(str(os.getpid()))
        _claimed.append(path)
        return True
    return False


@atexit.register
def _release_claims() -> None:
    for path in _claimed:
        try:
            os.unlink(path)
        except OSError:
            pass


def free_port_pair(span: int = 4) -> int:
    """A port p such that p .. p+span-1 are free on 127.0.0.1 right now.

    A node uses p (requests), p+1 (notifications), p+2 and p+3 (peers). Ports handed out
    before in this process are skipped, so nodes started together never collide; ports
    another live process on the machine claimed are skipped too (``_claim``).
    """
    os.makedirs(_CLAIMS, exist_ok=True)
    ports, rng = _ports_below_ephemeral(), random.Random()
    for _ in range(500):
        port = rng.randrange(ports.start, ports.stop - span)
        block = range(port, port + span)
        if _handed_out.intersection(block) or not all(_bindable(p) for p in block):
            continue
        if all(_claim(p) for p in block):  # (a partial claim stays ours: harmless)
            _handed_out.update(block)
            return port
        _handed_out.update(p for p in block if os.path.join(_CLAIMS, str(p)) in _claimed)
    raise RuntimeError(f"no block of {span} free ports found on 127.0.0.1 in {ports}")


def meshreg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshreg", *args]


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``meshreg ARGS`` run in this process (click's runner), answered as
    ``subprocess.run(meshreg_cmd(*args), capture_output=True, text=True)`` would be.

    Why: a ``python -m meshreg`` costs an interpreter start and meshreg's imports (0.5-5 s
    here, with the machine loaded) for a command that runs in milliseconds; the command's
    own code is the same.  An exception that escapes the command is printed to stderr with
    its traceback and exits 1, as the interpreter does, so "no Traceback" checks still hold.
    Not for commands that serve or wait for a signal (node, register, watch): those run as
    processes.  The entry point ``python -m meshreg`` itself stays covered by the tests that
    start processes."""
    import traceback

    from click.testing import CliRunner

    from meshreg.cli import main

    result = CliRunner(env=env).invoke(main, list(args), input=stdin, catch_exceptions=True)
    stderr = result.stderr
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        assert result.exc_info is not None
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(*result.exc_info)
        )
    return subprocess.CompletedProcess(meshreg_cmd(*args), result.exit_code, result.stdout, stderr)


def raw_request(
    port: int,
    body: dict[str, Any] | bytes,
    timeout: float = 5.0,
    curve: tuple[bytes, bytes, bytes] | None = None,
) -> dict[str, Any]:
    """One request over a fresh REQ socket; returns the decoded reply.

    ``curve``: (client public, client secret, server public), z85.
    """
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve
    try:
        sock.connect(f"tcp://{HOST}:{port}")
        sock.send(body if isinstance(body, bytes) else msgpack.packb(body))
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close()


def forged_reconcile_services(namespaces: list[str], subnet: int) -> list[dict[str, Any]]:
    """A ``reconcile``'s services as a program that is not a node forges them (review52
    F2, review53): a service "svc" in each namespace, 50 healthy instances each, stamped
    now, at ``10.<subnet>.<index>.<n>``."""
    stamp = time.time_ns()
    services = []
    for s, namespace in enumerate(namespaces):
        ups = [
            {"ip": f"10.{subnet}.{s}.{i + 1}", "port": 80, "cluster": "DEFAULT", "weight": 1.0,
             "enabled": True, "healthy": True, "metadata": {}, "version": stamp,
             "alive": stamp, "down": 0}
            for i in range(50)
        ]  # fmt: skip
        services.append({"namespace": namespace, "group": "DEFAULT_GROUP", "service": "svc",
                         "upsert": ups, "remove": [], "settings": None})  # fmt: skip
    return services


def replication_barrier(ports: list[int], timeout: float = 10.0, service: str = "barrier") -> None:
    """A register on each node, waited for on every other one: what a node replicated
    before it has arrived everywhere (one ordered replication stream per pair), so a
    test that checks that nothing was replicated waits no fixed time."""
    for k, port in enumerate(ports):
        body = {"v": 1, "id": 1, "op": "register", "namespace": "public", "service": service,
                "ip": "10.99.0.1", "port": 1000 + k}  # fmt: skip
        reply = raw_request(port, body)
        assert reply["ok"], f"the barrier's register on :{port} was refused: {reply}"
        for other in ports:
            wait_until(
                lambda o=other, p=1000 + k: any(
                    i["port"] == p
                    for i in raw_request(o, {"v": 1, "id": 2, "op": "instances", "namespace":
                                             "public", "service": service})["result"]["instances"]
                ),  # fmt: skip
                timeout,
                0.05,
                f"the barrier's register on :{port} seen on :{other}",
            )


def service_owned_by(owner: str, members: list[str], prefix: str) -> str:
    """The first service name ``prefix<i>`` that ``owner`` is responsible for among
    ``members`` (rendezvous hashing, core/mapping)."""
    from meshreg.core.mapping import responsible_node
    from meshreg.model import ServiceKey

    for i in range(1000):
        name = f"{prefix}{i}"
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", name), members) == owner:
            return name
    raise AssertionError(f"no service name maps to {owner}")


class RawDealer:
    """One raw client-protocol DEALER connection (optionally CURVE: client public,
    client secret, server public) that sends requests and reads replies in order."""

    def __init__(self, port: int, curve: tuple[bytes, bytes, bytes] | None = None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self.sock.curve_publickey, self.sock.curve_secretkey, self.sock.curve_serverkey = curve
        self.sock.connect(f"tcp://{HOST}:{port}")
        self.ids = itertools.count(1)

    def send(self, op: str, **fields: Any) -> None:
        body = {"v": 1, "id": next(self.ids), "op": op, **fields}
        self.sock.send_multipart([b"", msgpack.packb(body)])

    def replies(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` replies (failing after ``timeout`` s)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(out)} of {count} replies within {timeout}s"
            if self.sock.poll(int(left * 1000) + 1):
                out.append(msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False))
        return out

    def call(self, op: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        return self.replies(1, timeout)[0]

    def close(self) -> None:
        self.sock.close()


def process_stopped(pid: int) -> bool:
    """Every thread of process ``pid`` is stopped (state T: a SIGSTOP took effect)."""
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "T":
                    return False
    except FileNotFoundError:  # a thread that exited while we looked: look again
        return False
    return True


class NodeProcess:
    """A real ``meshreg node`` process on free loopback ports."""

    def __init__(
        self, *extra: str, port: int | None = None, curve: tuple[bytes, bytes, bytes] | None = None
    ) -> None:
        """``curve``: the keys a readiness ping uses on a node started with ``--key``."""
        self.curve = curve
        self.port = port or free_port_pair()
        self.address = f"{HOST}:{self.port}"
        self.extra = extra  # the node's arguments besides --host/--port (to restart it)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = ""

    def start(self, timeout: float = 15.0) -> NodeProcess:
        """Start the process and wait until it answers a ping."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> NodeProcess:
        """Start the process without waiting for it (``wait_ready`` does): nodes launched
        together import and bind side by side (see ``start_all``)."""
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-node-", suffix=".log")
        self.proc = subprocess.Popen(
            meshreg_cmd("node", "--host", HOST, "--port", str(self.port), *self.extra),
            stdout=fd,
            stderr=fd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        os.close(fd)
        return self

    def wait_ready(self, timeout: float = 15.0) -> NodeProcess:
        """Wait until the launched process answers a ping (or fail with its log)."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited early ({self.proc.returncode}):\n{self.log()}")
            try:
                ping = {"v": 1, "id": 1, "op": "ping"}
                return raw_request(self.port, ping, 0.5, self.curve)["ok"]
            except zmq.Again:
                return False

        try:
            wait_until(ready, timeout, what=f"node on {self.address} to answer ping")
        except AssertionError as exc:  # a time-out: the log goes with the node, keep it here
            if str(exc).startswith("timed out"):
                raise AssertionError(f"{exc}; its log so far:\n{self.log()}") from None
            raise
        return self

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stopped(self) -> bool:
        """Every thread of the process is stopped (SIGSTOP delivered): a message sent
        now waits unread.  ``kill`` returns before the target's threads stop: on a loaded
        machine a thread still in the kernel can read a few more bytes (CI on 49566a4: a
        write sent right after SIGSTOP was read by the "stopped" node)."""
        assert self.proc is not None
        return process_stopped(self.proc.pid)

    def freeze(self) -> None:
        """SIGSTOP, and wait until it has taken effect (``stopped``)."""
        self.signal(signal.SIGSTOP)
        wait_until(self.stopped, 5, 0.005, f"node {self.address} stopped (SIGSTOP)")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def cleanup(self) -> None:
        self.kill()
        if self.log_path and not os.environ.get("MESHREG_TEST_KEEP_LOGS"):  # keep: to debug
            try:
                os.unlink(self.log_path)
            except OSError:
                pass


def start_all(nodes: list[NodeProcess], timeout: float = 15.0) -> list[NodeProcess]:
    """Start several nodes at once and wait until each answers a ping.

    Why: one after the other, each start costs an interpreter start and meshreg's imports
    (0.7-1.5 s of wall here, mostly CPU); launched together the processes overlap on the
    cores and in their waits, so a 3-node cluster is up in about the time of one or two.
    On a failure every node of the list is killed."""
    try:
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready(timeout)
    except BaseException:
        for node in nodes:
            node.cleanup()
        raise
    return nodes


def fuzz_settings(max_examples: int) -> Any:
    """Hypothesis settings for the fuzz tests: bounded, and the same examples on every run
    (derandomize), so CI is deterministic and a failure replays."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def serves_config_revision(address: str, data_id: str, revision: int) -> bool:
    """Whether the node at ``address`` itself serves ``data_id`` at ``revision`` (a
    one-shot ``meshreg config get``): a version acknowledged by a majority may not be on
    every node yet (a snapshot of one node holds what that node holds)."""
    out = run_cli("config", "get", data_id, "--json", "-s", address, "--timeout", "1")
    return out.returncode == 0 and json.loads(out.stdout).get("revision") == revision


class TinyDiskNode(NodeProcess):
    """A node whose data dir is a small tmpfs in its own mount namespace."""

    def __init__(self, *extra: str, port: int, ddir: str, size: str) -> None:
        super().__init__(*extra, port=port)
        self.ddir, self.size = ddir, size

    def launch(self) -> NodeProcess:
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-node-", suffix=".log")
        cmd = " ".join(meshreg_cmd("node", "--host", HOST, "--port", str(self.port), *self.extra))
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs -o size={self.size} tmpfs {self.ddir} && exec {cmd}"],
            stdout=fd, stderr=fd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        os.close(fd)
        return self


def config_stats(n: NodeProcess) -> dict[str, Any]:
    """A node's ``stats.config`` ({} if it does not answer in 1 s)."""
    try:
        r = raw_request(n.port, {"v": 1, "id": 1, "op": "stats"}, 1.0)
    except Exception:  # noqa: BLE001
        return {}
    return r.get("result", {}).get("config", {}) if r.get("ok") else {}
