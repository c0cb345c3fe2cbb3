"""review27 helpers: a 3-node cluster of real processes on loopback, default timings
unless told, each node with its own data dir (a rolling restart keeps it)."""

from __future__ import annotations

import os
import sys
from typing import Any

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import HOST, NodeProcess, free_port_pair, raw_request, start_all, wait_until  # noqa: E402,F401


def cluster(n: int, tmp: str, extra: tuple[str, ...] = ()) -> list[NodeProcess]:
    """n nodes naming each other (README "A cluster"), default timings, started together."""
    ports = [free_port_pair() for _ in range(n)]
    peers = sum((["--peer", f"{HOST}:{p}"] for p in ports), [])
    nodes = [
        NodeProcess(*extra, *peers, "--data-dir", os.path.join(tmp, f"data{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    return start_all(nodes)


def req(node: NodeProcess, op: str, timeout: float = 1.0, **fields: Any) -> dict[str, Any] | None:
    try:
        return raw_request(node.port, {"v": 1, "id": 1, "op": op, **fields}, timeout, node.curve)
    except zmq.Again:
        return None


def fully_ready(node: NodeProcess) -> bool:
    """What `meshreg ping --ready` checks: the registry and the configs caught up."""
    r = req(node, "ping", 0.5)
    return bool(r and r.get("ok") and r["result"].get("ready") and r["result"].get("config_ready"))


def all_ready(nodes: list[NodeProcess]) -> bool:
    for node in nodes:
        if not fully_ready(node):
            return False
        r = req(node, "cluster")
        if not r or not r.get("ok"):
            return False
        if sum(1 for m in r["result"]["members"] if m.get("state") == "up") != len(nodes):
            return False
    return True
