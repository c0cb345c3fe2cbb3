"""review24 helpers: a cluster of real nodes on loopback with short health timings."""

from __future__ import annotations

import os
import sys
from typing import Any

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import HOST, NodeProcess, free_port_pair, raw_request, start_all  # noqa: E402

# sweep 0.2 s, unhealthy 3 s, evict 6 s, peer timeout 1 s (README defaults: 5/15/30, 3)
FAST = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
        "--peer-timeout", "1.0")  # fmt: skip


def cluster(n: int, tmp: str, extra: tuple[str, ...] = FAST) -> list[NodeProcess]:
    """n nodes naming each other, each with its own data dir, started together."""
    ports = [free_port_pair() for _ in range(n)]
    peers = sum((["--peer", f"{HOST}:{p}"] for p in ports), [])
    nodes = []
    for i, p in enumerate(ports):
        d = os.path.join(tmp, f"data{i}")
        nodes.append(NodeProcess(*extra, *peers, "--data-dir", d, port=p))
    return start_all(nodes)


def req(node: NodeProcess, op: str, timeout: float = 1.0, **fields: Any) -> dict[str, Any] | None:
    try:
        return raw_request(node.port, {"v": 1, "id": 1, "op": op, **fields}, timeout, node.curve)
    except zmq.Again:
        return None


def addresses(node: NodeProcess, service: str, healthy_only: bool = True) -> list[str] | None:
    r = req(node, "instances", service=service, healthy_only=healthy_only)
    if not r or not r.get("ok"):
        return None
    return sorted(f"{i['ip']}:{i['port']}" for i in r["result"]["instances"])


def all_up(nodes: list[NodeProcess]) -> bool:
    for node in nodes:
        r = req(node, "cluster")
        if not r or not r.get("ok"):
            return False
        if sum(1 for m in r["result"]["members"] if m.get("state") == "up") != len(nodes):
            return False
    return True


def ready(node: NodeProcess) -> bool:
    r = req(node, "stats")
    return bool(r and r.get("ok") and r["result"].get("ready"))
