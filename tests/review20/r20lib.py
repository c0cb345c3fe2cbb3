"""review20 helpers: a cluster of real nodes on loopback with short timings, a sampler."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import HOST, NodeProcess, free_port_pair, raw_request  # noqa: E402

# beat 0.5 s, unhealthy 1.5 s, evict 3 s (README: defaults 5/15/30)
FAST = ("--check-interval", "0.2", "--unhealthy-after", "1.5", "--evict-after", "3",
        "--peer-timeout", "1.0")  # fmt: skip


def cluster(
    n: int, tmp: str, extra: tuple[str, ...] = FAST, more: tuple[str, ...] = ()
) -> list[NodeProcess]:
    ports = [free_port_pair() for _ in range(n)]
    peers = sum((["--peer", f"{HOST}:{p}"] for p in ports), [])
    nodes = []
    for i, p in enumerate(ports):
        d = os.path.join(tmp, f"data{i}")
        os.makedirs(d, exist_ok=True)
        nodes.append(NodeProcess(*extra, *peers, "--data-dir", d, *more, port=p))
    return nodes


def req(node: NodeProcess, op: str, timeout: float = 2.0, **fields: Any) -> dict[str, Any] | None:
    try:
        return raw_request(node.port, {"v": 1, "id": 1, "op": op, **fields}, timeout, node.curve)
    except zmq.Again:
        return None


def listing(node: NodeProcess, service: str, timeout: float = 1.0) -> dict[str, bool] | None:
    """address -> healthy, all instances (healthy_only false); None if no answer."""
    r = req(node, "instances", timeout, service=service, healthy_only=False)
    if not r or not r.get("ok"):
        return None
    return {f"{i['ip']}:{i['port']}": bool(i["healthy"]) for i in r["result"]["instances"]}


def members_up(nodes: list[NodeProcess], n: int | None = None) -> bool:
    n = n or len(nodes)
    for node in nodes:
        r = req(node, "cluster", 1.0)
        if not r or not r.get("ok"):
            return False
        ms = r["result"]["members"]
        if sum(1 for m in ms if m.get("state") == "up") != n:
            return False
    return True


def owner_of(node: NodeProcess, service: str) -> str | None:
    r = req(node, "cluster", 1.0)
    if not r or not r.get("ok"):
        return None
    for m in r["result"]["members"]:
        if service in (m.get("services") or []):
            return m["address"]
    return None


class Sampler:
    """Samples every node's listing of services every ``every`` s in a thread."""

    def __init__(self, nodes: list[NodeProcess], services: list[str], every: float = 0.2) -> None:
        self.nodes, self.services, self.every = nodes, services, every
        self.samples: list[tuple[float, int, str, dict[str, bool] | None]] = []
        self.skip: set[int] = set()
        self.gen: dict[int, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._t.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < end:
            for i, n in enumerate(self.nodes):
                if i in self.skip:
                    continue
                for s in self.services:
                    gen = self.gen.get(i, 0)
                    got = listing(n, s, 0.5)
                    if i in self.skip or self.gen.get(i, 0) != gen:
                        break  # faulted meanwhile: not a sample of the node judged
                    self.samples.append((time.monotonic(), i, s, got))
            self._stop.wait(self.every)

    def fault(self, i: int) -> None:
        self.skip.add(i)
        self.gen[i] = self.gen.get(i, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)
