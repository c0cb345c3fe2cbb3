"""review36 helpers: a cluster of real `meshreg node` processes (each in its own process
group) whose members can be restarted, added and removed with new peer lists; providers
and consumers through the Python client; a sampler of every node's listings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from helpers import HOST, free_port_pair, meshreg_cmd, raw_request, wait_until  # noqa: E402

# README defaults are 5/15/30 s with a 3 s peer timeout; the tests' cluster timings
SHORT = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
         "--peer-timeout", "1.0")  # fmt: skip


class Node:
    """One member: a port, a data dir, and the process currently running it."""

    def __init__(self, port: int, data_dir: str, timings: tuple[str, ...] = SHORT) -> None:
        self.port = port
        self.address = f"{HOST}:{port}"
        self.data_dir = data_dir
        self.timings = timings
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[str] = []
        self.peers: list[str] = []

    def launch(self, peers: list[str]) -> Node:
        self.peers = list(peers)
        os.makedirs(self.data_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"r36-node-{self.port}-", suffix=".log")
        self.logs.append(path)
        args = ["node", "--host", HOST, "--port", str(self.port), *self.timings,
                "--data-dir", self.data_dir]  # fmt: skip
        for p in peers:
            args += ["--peer", p]
        self.proc = subprocess.Popen(meshreg_cmd(*args), stdout=fd, stderr=fd,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     start_new_session=True)  # fmt: skip
        os.close(fd)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (what systemctl stop/restart sends) and wait."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def log(self) -> str:
        out = []
        for p in self.logs:
            try:
                with open(p, encoding="utf-8", errors="replace") as fh:
                    out.append(fh.read())
            except OSError:
                pass
        return "\n".join(out)

    def cleanup(self) -> None:
        self.kill()
        if not os.environ.get("R36_KEEP_LOGS"):
            for p in self.logs:
                try:
                    os.unlink(p)
                except OSError:
                    pass

    def req(self, op: str, timeout: float = 1.0, **fields: Any) -> dict[str, Any] | None:
        try:
            return raw_request(self.port, {"v": 1, "id": 1, "op": op, **fields}, timeout)
        except zmq.Again:
            return None

    def ping_ready(self) -> bool:
        r = self.req("ping", 1.0)
        if not r or not r.get("ok"):
            return False
        res = r["result"]
        return res.get("ready") is not False and res.get("config_ready") is not False

    def listing(self, service: str, timeout: float = 1.0) -> dict[str, bool] | None:
        r = self.req("instances", timeout, service=service, healthy_only=False)
        if not r or not r.get("ok"):
            return None
        return {f"{i['ip']}:{i['port']}": bool(i["healthy"]) for i in r["result"]["instances"]}

    def cluster(self) -> dict[str, Any] | None:
        r = self.req("cluster", 1.0)
        return r["result"] if r and r.get("ok") else None

    def stats(self) -> dict[str, Any]:
        r = self.req("stats", 1.0)
        return r["result"] if r and r.get("ok") else {}


def new_nodes(n: int, tmp: str, timings: tuple[str, ...] = SHORT) -> list[Node]:
    out = []
    for _ in range(n):
        p = free_port_pair()
        out.append(Node(p, os.path.join(tmp, f"data-{p}"), timings))
    return out


def cli_ready(node: Node, timeout: float = 5.0) -> bool:
    """`meshreg ping --ready -s NODE` as the README's rolling restart loop runs it."""
    try:
        r = subprocess.run(meshreg_cmd("ping", "--ready", "-s", node.address, "--timeout", "1"),
                           capture_output=True, text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def wait_ready(node: Node, timeout: float = 30.0) -> None:
    wait_until(node.ping_ready, timeout, 0.1, f"{node.address} ready")


def members_up(nodes: list[Node], n: int) -> bool:
    for node in nodes:
        c = node.cluster()
        if not c:
            return False
        if sum(1 for m in c["members"] if m.get("state") == "up") != n:
            return False
    return True


class Sampler:
    """Every node's full listing of every service, every ``every`` s, in a thread:
    (t, node address, service, {addr: healthy} or None)."""

    def __init__(self, nodes: list[Node], services: list[str], every: float = 0.25,
                 limit: float = 400.0) -> None:  # fmt: skip
        self.nodes, self.services, self.every, self.limit = nodes, services, every, limit
        self.samples: list[tuple[float, str, str, dict[str, bool] | None]] = []
        self.rounds = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._t.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            for n in list(self.nodes):
                if not n.alive():
                    continue
                for s in self.services:
                    got = n.listing(s, 0.3)
                    self.samples.append((time.monotonic(), n.address, s, got))
                    if got is None:
                        break  # not answering (starting, catching up): the next round
            self.rounds += 1
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(10)


class Watcher:
    """A consumer: one Client subscribed to every service; records every callback."""

    def __init__(self, servers: list[str], services: list[str], **kw: Any) -> None:
        from meshreg.client import Client

        self.client = Client(servers, handle_sigterm=False, **kw)
        self.events: list[tuple[float, str, frozenset[str]]] = []
        self.lock = threading.Lock()
        for s in services:
            self.client.subscribe(s, self._cb(s))

    def _cb(self, service: str):  # type: ignore[no-untyped-def]
        def cb(xs: list[Any]) -> None:
            with self.lock:
                self.events.append((time.monotonic(), service,
                                    frozenset(i.address for i in xs if i.healthy)))  # fmt: skip

        return cb

    def close(self) -> None:
        try:
            self.client.close(2.0)
        except Exception:  # noqa: BLE001
            pass


@contextmanager
def running(nodes: list[Node]) -> Iterator[list[Node]]:
    """``nodes`` launched as one cluster, once every one counts the others up; cleaned
    up (killed) on the way out."""
    try:
        peers = [n.address for n in nodes]
        for n in nodes:
            n.launch(peers)
        wait_until(lambda: members_up(nodes, len(nodes)), 40, 0.2, f"{len(nodes)} members up")
        yield nodes
    finally:
        for n in nodes:
            n.cleanup()
