"""review47 netns lab: tests/chaos/netlab.Lab (instantiated, never changed) with three
nodes, one r47_agent (provider + consumer + sampler of its node) per namespace, and
the agents' output gathered by threads."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "chaos"))
import netlab  # noqa: E402

PORT = 7470
SHORT = ["--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
         "--peer-timeout", "1.0"]  # fmt: skip


class Agent:
    def __init__(self, proc: netlab.Proc) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        stream = self.proc.popen.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(d)
                self.cond.notify_all()

    def send(self, line: str) -> None:
        assert self.proc.popen.stdin is not None
        self.proc.popen.stdin.write((line + "\n").encode())
        self.proc.popen.stdin.flush()

    def do(self, line: str, timeout: float = 15.0) -> dict[str, Any]:
        """Send a command and wait for its outcome line."""
        with self.cond:
            start = len(self.lines)
        self.send(line)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for d in self.lines[start:]:
                    if d.get("k") in ("ok", "err") and d.get("cmd") == line:
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no outcome for {line!r} in {timeout}s")
                self.cond.wait(left)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.lines if d.get("k") == kind]

    def last_view(self, svc: str) -> set[str] | None:
        ev = [d for d in self.of("E") if d["svc"] == svc]
        return set(ev[-1]["got"]) if ev else None

    def last_sample(self, svc: str) -> dict[str, bool] | None:
        ev = [d for d in self.of("S") if d["svc"] == svc]
        return ev[-1]["got"] if ev else None


class Net47:
    def __init__(self, workdir: Path, n: int = 3, timings: list[str] = SHORT,
                 spare: int = 0) -> None:  # fmt: skip
        """``spare``: namespaces beyond the nodes' (for clients only)."""
        self.workdir = workdir
        self.lab = netlab.Lab(n + spare, workdir)
        self.n = n
        self.timings = timings
        self.nodes: list[netlab.Proc | None] = [None] * n
        self.agents: list[Agent] = []

    def addr(self, j: int) -> str:
        return f"{self.lab.addresses[j]}:{PORT}"

    def up(self) -> Net47:
        netlab.sweep_stale()
        self.lab.up()
        for j in range(self.n):
            self.start_node(j)
        return self

    def start_node(self, j: int) -> None:
        peers: list[str] = []
        for i in range(self.n):
            peers += ["--peer", self.addr(i)]
        argv = [sys.executable, "-m", "meshreg", "node", "--host", self.lab.addresses[j],
                "--port", str(PORT), *peers, *self.timings, "--insecure",
                "--data-dir", str(self.workdir / f"data-n{j + 1}")]  # fmt: skip
        self.nodes[j] = self.lab.spawn(j, f"node-n{j + 1}", argv)

    def start_agent(self, j: int, services: list[str], max_seconds: float = 200.0,
                    servers: list[str] | None = None, sample: list[str] | None = None) -> Agent:
        if servers is None:
            servers = [self.addr(j)] + [self.addr(i) for i in range(self.n) if i != j]
        argv = [sys.executable, str(HERE / "r47_agent.py"), "--servers", ",".join(servers),
                "--node", ",".join(sample or [self.addr(j)]), "--services", ",".join(services),
                "--max-seconds", str(max_seconds)]  # fmt: skip
        proc = self.lab.spawn(j, f"agent-n{j + 1}", argv, pipe=True)
        ag = Agent(proc)
        deadline = time.monotonic() + 30
        while not ag.of("ready"):
            if time.monotonic() > deadline or not proc.alive():
                raise AssertionError(f"agent {j} not ready:\n{proc.log_tail()}")
            time.sleep(0.05)
        self.agents.append(ag)
        return ag

    def node_log(self, j: int) -> str:
        p = self.workdir / f"node-n{j + 1}.log"
        try:
            return p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        for ag in self.agents:
            try:
                ag.send("quit")
            except OSError:
                pass
        self.lab.close()


def wait(cond: Any, timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def unavailable() -> str | None:
    return netlab.unavailable_reason()
